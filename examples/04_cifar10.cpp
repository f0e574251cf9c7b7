// 04_cifar10 (program: earlyexit-cifar10): early exit on CIFAR-10 with a trained multi-exit
// ResNet (6 exits, examples/train/train_cifar10.py), run in C++ with Eigen.
// --fine-grained runs its fine-grained variant instead: the same frozen backbone with an exit
// after every convolution (13 exits, heads fitted by examples/train/fit_fine_heads.py), each
// block cut into two stages, and its own validation trace.
//
// Every policy is calibrated on the shipped validation trace (5 000 training images held out
// from training), then run live on the test images with real skipped work, and by replay.
//
//   earlyexit-cifar10                               all 10 000 shipped test images
//   earlyexit-cifar10 --data test_batch.bin         the official binary CIFAR-10 test batch
//   earlyexit-cifar10 --data DIR                    class folders DIR/<class>/*.png|jpg
//   earlyexit-cifar10 --limit 500 --policy max_prob,entropy --json out.json --plots out/
//   earlyexit-cifar10 --fine-grained                13 exits: after the stem and every conv
// The images are evaluated in a fixed random order (--shuffle-seed; the shipped test set is
// sorted by class), the same for every policy.
//   earlyexit-cifar10 --corrupt noise:0.08,blur:1.0 --corrupt-from 5000
//                                                   drift: test images 0..4999 clean, then the
//                                                   same 5000 images corrupted (10 000 samples)
//
// The defaults (test images, weights, validation trace) are found at run time under a folder
// holding data/ and models/: --data-root, EARLYEXIT_DATA_DIR, or share/earlyexit beside the
// program (common/resources.hpp).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "common/cifar_net.hpp"
#include "common/corrupt.hpp"
#include "common/datasets.hpp"
#include "common/demo_driver.hpp"
#include "common/resources.hpp"

namespace fs = std::filesystem;
using namespace earlyexit::demo;

int main(int argc, char** argv) {
    fs::path data, weights, data_root;  // empty: the default, looked up under the resource root
    std::string corrupt_spec;
    std::uint64_t shuffle_seed = 1;
    std::optional<std::size_t> corrupt_from;
    bool fine_grained = false, corrupt_first = false;
    demo_options opt;
    opt.program = "earlyexit-cifar10";

    CLI::App app{"earlyexit-cifar10: early-exit policies on CIFAR-10 with a trained 6-exit ResNet (live and replayed)"};
    app.add_option("--data", data,
                   "test images: a folder or .tar of class folders (airplane/, automobile/, ...), or the CIFAR-10 binary "
                   "test_batch.bin (default: the shipped 10 000 test images)");
    app.add_option("--weights", weights,
                   "network weights (safetensors from examples/train/train_cifar10.py, or fit_fine_heads.py with "
                   "--fine-grained; default: the shipped ones)");
    app.add_flag("--fine-grained", fine_grained,
                 "the fine-grained network: an exit after every convolution (13 exits, the same frozen backbone; "
                 "models/cifar10_fine_exits.safetensors) with its own validation trace (data/cifar10/val_trace_fine)");
    app.add_option("--data-root", data_root, data_root_help);
    add_demo_flags(app, opt);
    app.add_option("--shuffle-seed", shuffle_seed,
                   "the images are evaluated in a random order drawn from this seed (0: the dataset's own order; the "
                   "shipped test set is sorted by class, which the learning rows would see as a changing stream)")
        ->capture_default_str();
    app.add_option("--corrupt", corrupt_spec,
                   "drift experiment: corrupt the second part of the stream, e.g. noise:0.08,blur:1.0 (Gaussian noise "
                   "std on the [0, 1] pixel scale, Gaussian blur sigma in pixels); needs --corrupt-from");
    app.add_option("--corrupt-from", corrupt_from,
                   "drift experiment: the stream is test images 0..N-1 clean, then the same N images corrupted")
        ->check(CLI::PositiveNumber);
    app.add_flag("--corrupt-first", corrupt_first,
                 "drift experiment, the recovery case: the stream starts with the N corrupted images and turns to "
                 "the same N clean (with --corrupt and --corrupt-from)");
    CLI11_PARSE(app, argc, argv);

    try {
        check_demo_flags(opt);
        const resource_finder resources(data_root, argc > 0 ? argv[0] : nullptr);
        if (data.empty()) data = resources.find("data/cifar10/test.tar", "--data");
        if (weights.empty())
            weights = resources.find(fine_grained ? "models/cifar10_fine_exits.safetensors" : "models/cifar10_multiexit.safetensors",
                                     "--weights");
        if (opt.calibration.empty() && !opt.record_only)  // recording calibrates nothing
            opt.calibration = resources.find(std::string(fine_grained ? "data/cifar10/val_trace_fine" : "data/cifar10/val_trace") +
                                                 (opt.precision == precision_bf16 ? "_bf16" : ""),
                                             "--calibration");
        if (opt.dvfs_table.empty()) opt.dvfs_table = resources.find("data/dvfs/exynos5422_a15.json", "--dvfs-table");
        const cifar_net model(weights);
        const image_dataset dataset = open_dataset(data, {.classes = model.class_names()});
        const bool drift = !corrupt_spec.empty() || corrupt_from;
        if (corrupt_first && !drift) earlyexit::fail("--corrupt-first needs --corrupt and --corrupt-from");
        if (drift && (corrupt_spec.empty() || !corrupt_from))
            earlyexit::fail("--corrupt and --corrupt-from go together (given: {})",
                            corrupt_spec.empty() ? fmt::format("--corrupt-from {}", *corrupt_from)
                                                 : fmt::format("--corrupt {}", corrupt_spec));
        corruption corrupted_by;
        if (drift) {
            corrupted_by = parse_corruption(corrupt_spec);
            if (opt.limit != 0) earlyexit::fail("--limit {}: with --corrupt-from the stream length is twice N", opt.limit);
            if (*corrupt_from > dataset.size())
                earlyexit::fail("--corrupt-from {}: the dataset has only {} images", *corrupt_from, dataset.size());
            opt.limit = *corrupt_from;
        }
        const std::size_t n = images_to_run(opt, dataset.size(), data);
        // The evaluation order: a Fisher-Yates shuffle of the whole dataset driven by splitmix64
        // (the same on every platform), then the first n (--limit).
        std::vector<std::size_t> order(dataset.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        if (shuffle_seed != 0)
            for (std::size_t i = order.size(); i > 1; --i) {
                const auto u = earlyexit::detail::uniform01(shuffle_seed, i, 7);
                std::swap(order[i - 1], order[std::min(i - 1, static_cast<std::size_t>(u * static_cast<double>(i)))]);
            }

        // Decode once (32x32 images are small); the timed runs read from memory.
        std::vector<image_u8> images(n);
        std::vector<std::size_t> labels(n);
        {
            earlyexit::progress_line decoding("decoding", n);
            for (std::size_t j = 0; j < n; ++j) {
                const std::size_t i = order[j];
                images[j] = dataset.load(i);
                if (images[j].width != 32 || images[j].height != 32)
                    earlyexit::fail("image {} of {} is {}x{}; the CIFAR-10 network takes 32x32", dataset.name(i),
                                    display_path(data).string(), images[j].width, images[j].height);
                if (dataset.label(i) < 0)
                    earlyexit::fail("image {} of {} has no label", dataset.name(i), display_path(data).string());
                labels[j] = static_cast<std::size_t>(dataset.label(i));
                decoding.tick(j + 1);
            }
        }
        // Drift: the same images again, corrupted (computed once: the timed runs read memory).
        std::vector<image_u8> corrupted;
        if (drift) {
            corrupted.reserve(n);
            for (std::size_t i = 0; i < n; ++i) corrupted.push_back(corrupt(images[i], corrupted_by, i));
            opt.drift_from = n;
            opt.drift_what = corrupt_first ? fmt::format("the same images clean (before: corrupted, {})", describe(corrupted_by))
                                           : fmt::format("the same images corrupted ({})", describe(corrupted_by));
        }
        opt.dataset = fmt::format("CIFAR-10 {}{}", data.filename().string(),
                                  !drift ? "" : corrupt_first ? ", a corrupted copy first" : " + corrupted copy");
        opt.model = fmt::format("{} (ResNet, {} exits{})", weights.stem().string(), model.num_heads(),
                                fine_grained ? ": after every conv" : "");
        // Sample i of the stream: image i % n, clean or corrupted by which half it is in.
        const auto pixels = [&](std::size_t i) {
            const bool is_corrupted = (i >= n) != corrupt_first;
            return std::span<const std::uint8_t>(is_corrupted ? corrupted[i % n].pixels : images[i % n].pixels);
        };
        const auto label = [&](std::size_t i) { return std::optional<std::size_t>(labels[i % n]); };
        const auto put = [&](std::size_t i, feature_state& s) {
            model.set_input(s, pixels(i));
            return label(i);
        };
        // The batched network for --batch and the throughput grid: rows filled from the same images.
        std::size_t capacity = opt.batch.value_or(1);
        for (const std::size_t b : opt.throughput_batches) capacity = std::max(capacity, b);
        const auto fill = [&](auto& s, std::size_t first, std::size_t count) {
            for (std::size_t r = 0; r < count; ++r) model.set_input_row(s, r, pixels(first + r));
            s.begin(model.input_shape(), count);
        };
        return with_backend(model, capacity, opt.backend, opt.precision, put, fill, label,
                            [&](const auto& net, auto& state, const auto& prepare, const auto& rows) {
                                return run_demo(net, state, drift ? 2 * n : n, prepare, rows, opt);
                            });
    } catch (const std::exception& e) {
        fmt::print(stderr, "earlyexit-cifar10: {}\n", e.what());
        return 1;
    }
}
