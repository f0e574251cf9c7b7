#pragma once
// The program of the MobileNetV2 demos, earlyexit-imagenet (05_imagenet.cpp, 1000 classes) and
// earlyexit-imagenette (08_imagenette.cpp, 10 classes): the same network code, preprocessing,
// image loading and demo driver; each program names its defaults (imagenet_demo_config).
//
// The defaults (images, weights, calibration trace) are found at run time under a folder holding
// data/ and models/: --data-root, EARLYEXIT_DATA_DIR, or share/earlyexit beside the program
// (resources.hpp).
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "datasets.hpp"
#include "demo_driver.hpp"
#include "mobilenet_v2.hpp"
#include "resources.hpp"

namespace earlyexit::demo {

/// What differs between the MobileNetV2 demos.
struct imagenet_demo_config {
    std::string program;      ///< e.g. "earlyexit-imagenet"
    std::string description;  ///< the --help title
    std::string data;         ///< default --data, relative to the resource root (a folder with labels.txt)
    std::string data_help;    ///< what the default data is, for --help
    std::string labels_help;  ///< what the labels are, for --help
    std::string weights;      ///< default --weights, relative to the resource root
    std::string calibration;  ///< default --calibration (fp32; "_bf16" appended for bf16)
    std::string dataset;      ///< dataset name for the tables ("ImageNet", "Imagenette")
    std::string model;        ///< model description for the tables
};

/// main() of a MobileNetV2 demo: parses the flags, loads the network and the images, and runs
/// the demo driver on the chosen backend. Returns the exit code.
inline int run_imagenet_demo(int argc, char** argv, const imagenet_demo_config& cfg) {
    namespace fs = std::filesystem;
    fs::path data, labels, weights, data_root;  // empty: the default, looked up under the resource root
    demo_options opt;
    opt.program = cfg.program;
    opt.points = 1.0;  // the goal of both MobileNetV2 demos: the compute saving at <= 1 point of accuracy loss

    CLI::App app{cfg.description};
    app.add_option("--data", data, "a folder or .tar of JPEGs (any size, RGB or grayscale); default: " + cfg.data_help);
    app.add_option("--labels", labels, "`filename label` list, " + cfg.labels_help + " (default: labels.txt inside --data)");
    app.add_option("--weights", weights, "network weights (safetensors from examples/train/; default: the shipped ones)");
    app.add_option("--data-root", data_root, data_root_help);
    std::size_t cache_mib = 1024;
    app.add_option("--image-cache-mb", cache_mib,
                   "keep the resized and cropped images in memory when they fit in this many MiB, so each JPEG is "
                   "decoded once instead of once per policy run (0: never)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 30))
        ->capture_default_str();
    add_demo_flags(app, opt);
    CLI11_PARSE(app, argc, argv);

    try {
        check_demo_flags(opt);
        const resource_finder resources(data_root, argc > 0 ? argv[0] : nullptr);
        if (data.empty()) data = resources.find(cfg.data, "--data");
        if (weights.empty()) weights = resources.find(cfg.weights, "--weights");
        if (opt.calibration.empty() && !opt.record_only)  // recording calibrates nothing
            opt.calibration = resources.find(cfg.calibration + (opt.precision == precision_bf16 ? "_bf16" : ""), "--calibration");
        if (opt.dvfs_table.empty()) opt.dvfs_table = resources.find("data/dvfs/exynos5422_a15.json", "--dvfs-table");
        if (labels.empty()) {
            if (!fs::is_directory(data))
                earlyexit::fail("--labels is needed for {} (only a folder can hold its own labels.txt)", display_path(data).string());
            labels = data / "labels.txt";
            if (!fs::exists(labels)) earlyexit::fail("no --labels given and {} does not exist", display_path(labels).string());
        }
        const mobilenet_v2 model(weights);
        dataset_options dopt;
        dopt.labels = labels;
        const image_dataset dataset = open_dataset(data, dopt);
        const std::size_t n = images_to_run(opt, dataset.size(), data);
        for (std::size_t i = 0; i < n; ++i)
            if (dataset.label(i) < 0 || static_cast<std::size_t>(dataset.label(i)) >= model.num_classes())
                earlyexit::fail("image {}: label {} is not a class index in [0, {})", dataset.name(i), dataset.label(i),
                                model.num_classes());

        opt.dataset = fmt::format("{} {}", cfg.dataset, data.filename().string());
        opt.model = cfg.model;
        // Decoding and preprocessing happen before each run, outside the timed inference. The
        // 8-bit crops are kept (--image-cache-mb) when they fit: the recording and every policy
        // run then only normalize; otherwise each run decodes, resizes and crops again.
        const std::size_t square_bytes = model.transform().output_size();  // 3 x crop x crop bytes
        const bool cached = n <= cache_mib * (std::size_t{1} << 20) / square_bytes;
        std::vector<image_u8> squares(cached ? n : 0);
        fmt::print("images: {}, {}\n", n,
                   cached ? fmt::format("each decoded once, its {}x{} crop kept in memory ({:.0f} MiB)", model.transform().crop,
                                        model.transform().crop, static_cast<double>(n * square_bytes) / (1 << 20))
                          : fmt::format("decoded again for every run (their crops do not fit in --image-cache-mb {} MiB)",
                                        cache_mib));
        const auto label = [&](std::size_t i) { return std::optional<std::size_t>(static_cast<std::size_t>(dataset.label(i))); };
        const auto put = [&](std::size_t i, feature_state& s) {
            if (cached) {
                if (squares[i].pixels.empty()) squares[i] = model.transform().resize_and_crop(dataset.load(i));
                model.set_cropped_input(s, squares[i]);
            } else {
                model.set_input(s, dataset.load(i));
            }
            return label(i);
        };
        // The batched network for --batch and the throughput grid. The workers fill rows at once:
        // they read the crops (every one is made by the recording that runs first, which on
        // oneDNN fills one row at a time through this same function) and never write them.
        std::size_t capacity = opt.batch.value_or(1);
        for (const std::size_t b : opt.throughput_batches) capacity = std::max(capacity, b);
        const auto fill = [&](auto& s, std::size_t first, std::size_t count) {
            for (std::size_t r = 0; r < count; ++r) {
                const std::size_t i = first + r;
                if (cached) {
                    if (squares[i].pixels.empty()) squares[i] = model.transform().resize_and_crop(dataset.load(i));
                    model.set_cropped_input_row(s, r, squares[i]);
                } else {
                    model.set_input_row(s, r, dataset.load(i));
                }
            }
            s.begin(model.input_shape(), count);
        };
        return with_backend(model, capacity, opt.backend, opt.precision, put, fill, label,
                            [&](const auto& net, auto& state, const auto& prepare, const auto& rows) {
                                return run_demo(net, state, n, prepare, rows, opt);
                            });
    } catch (const std::exception& e) {
        fmt::print(stderr, "{}: {}\n", cfg.program, e.what());
        return 1;
    }
}

}  // namespace earlyexit::demo
