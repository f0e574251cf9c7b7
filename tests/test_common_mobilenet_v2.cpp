// examples/common/mobilenet_v2.hpp: the shipped MobileNetV2 networks with their exits against
// PyTorch's logits (tests/data/<net>/reference.json, written by examples/train/imagenet_exits.py
// from the same weight file), from the decoded pixels (PNG, so no JPEG decoder differences):
// the 1000-class network with distilled exits and the Imagenette one (10 classes, fitted exits).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>
#include <nlohmann/json.hpp>

#include "common/image.hpp"
#include "common/mobilenet_v2.hpp"
#include "common/preprocess.hpp"
#include "error_text.hpp"
#include "safetensors_writer.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit::demo;
namespace fs = std::filesystem;

namespace {

const fs::path root = EARLYEXIT_SOURCE_DIR;

nlohmann::json reference(const fs::path& data) {
    std::ifstream in(data / "reference.json");
    REQUIRE(in);
    return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("MobileNetV2 exits equal PyTorch's logits on the reference images") {
    const std::string name = GENERATE(as<std::string>{}, "imagenet", "imagenette");
    const fs::path data = root / "tests" / "data" / name;
    const mobilenet_v2 model(root / "models" / ("mobilenet_v2_" + name + ".safetensors"));
    const auto net = model.network();
    auto state = model.make_state();
    const auto ref = reference(data);
    CHECK(ref.at("weights").get<std::string>() == "models/mobilenet_v2_" + name + ".safetensors");
    REQUIRE(ref.at("images").size() >= 2);
    double worst = 0;
    for (const auto& img : ref.at("images")) {
        const image_u8 full = read_image(data / img.at("image_png").get<std::string>());
        const image_u8 crop = read_image(data / img.at("crop224_png").get<std::string>());
        // The preprocessing first: resize + center crop equal torchvision's byte for byte.
        const image_u8 mine = center_crop(resize_shorter_side(full, 256), {224, 224});
        REQUIRE(mine.pixels == crop.pixels);

        const auto& exits = img.at("exits");
        REQUIRE(exits.size() == net.num_heads());
        for (std::size_t k = 0; k < net.num_heads(); ++k) {
            const auto want = exits[k].at("logits").get<std::vector<float>>();
            CHECK(exits[k].at("after_stage").get<std::size_t>() == model.head_after(k));
            auto runner = make_runner(net, policy::fixed{k});
            model.set_input(state, full);
            const auto r = runner.run(state);
            REQUIRE(r.head == k);
            CHECK(r.positions_run == model.head_after(k) + 1);
            REQUIRE(r.logits.size() == want.size());
            for (std::size_t c = 0; c < want.size(); ++c) worst = std::max(worst, double(std::abs(r.logits[c] - want[c])));
            CHECK(r.predicted == exits[k].at("top5")[0].get<std::size_t>());
        }
    }
    INFO(name << ": max |logit difference| = " << worst);
    CHECK(worst <= 1e-3);
}

TEST_CASE("The Imagenette MobileNetV2 has 10 classes, at least 6 exits and its first exit before a third of the compute") {
    const mobilenet_v2 model(root / "models" / "mobilenet_v2_imagenette.safetensors");
    const auto net = model.network();
    CHECK(model.num_classes() == 10);
    CHECK(model.class_names().size() == 10);
    CHECK(net.num_heads() >= 7);  // 6 exits and the final classifier
    double total = 0, first = 0;
    for (std::size_t s = 0; s < net.num_stages(); ++s) {
        total += net.stage_macs(s);
        if (s <= model.head_after(0)) first += net.stage_macs(s);
    }
    CHECK(first < total / 2);
}

TEST_CASE("MobileNetV2 exit heads: the shared classifier or logits straight from fc, checked against the classes") {
    const earlyexit_test::temp_dir dir("earlyexit_mobilenet_v2_heads");
    const fs::path imagenet = root / "models" / "mobilenet_v2_imagenet.safetensors";
    const fs::path nette = root / "models" / "mobilenet_v2_imagenette.safetensors";
    // A 1000-class exit that drops the shared classifier: its fc gives 1280 values, not 1000 logits.
    const auto p1 = earlyexit_test::with_architecture(imagenet, dir / "no_classifier.safetensors",
                                                      [](nlohmann::json& a) { a["heads"][0]["classifier"] = nullptr; });
    CHECK(earlyexit_test::what_of([&] { mobilenet_v2 m(p1); }) ==
          p1.string() + ": head 'heads.0': fc_out 1280 differs from the 1000 classes (a head without the shared classifier "
                         "gives the logits)");
    const auto p2 = earlyexit_test::with_architecture(imagenet, dir / "other_classifier.safetensors",
                                                      [](nlohmann::json& a) { a["heads"][0]["classifier"] = "fc"; });
    CHECK(earlyexit_test::what_of([&] { mobilenet_v2 m(p2); }) ==
          p2.string() + ": head 'heads.0': classifier \"fc\" is not \"classifier\" (the backbone's) or null");
    // A 10-class exit told to end in the classifier: its fc has 10 outputs, not the classifier's 1280 inputs.
    const auto p3 = earlyexit_test::with_architecture(nette, dir / "shared.safetensors",
                                                      [](nlohmann::json& a) { a["heads"][0]["classifier"] = "classifier"; });
    CHECK(earlyexit_test::what_of([&] { mobilenet_v2 m(p3); }) ==
          p3.string() + ": head 'heads.0': fc_out 10 differs from the classifier's 1280 inputs");
}

TEST_CASE("MobileNetV2 declares the MACs of its layers and a final exit on the last stage") {
    const mobilenet_v2 model(root / "models" / "mobilenet_v2_imagenet.safetensors");
    const auto net = model.network();
    CHECK(model.num_classes() == 1000);
    CHECK(model.input_shape() == nn::shape3{3, 224, 224});
    CHECK(model.head_after(model.num_heads() - 1) == model.num_stages() - 1);
    double stages = 0;
    for (std::size_t s = 0; s < net.num_stages(); ++s) stages += net.stage_macs(s);
    // torchvision's MobileNetV2 at 224x224: about 300 M multiply-accumulates.
    CHECK(stages > 290e6);
    CHECK(stages < 320e6);
}

TEST_CASE("MobileNetV2 refuses an unsorted head list with the shared loader's message, naming heads and stages") {
    const earlyexit_test::temp_dir dir("earlyexit_mobilenet_v2");
    const auto p = earlyexit_test::with_architecture(root / "models" / "mobilenet_v2_imagenet.safetensors",
                                                     dir / "edited.safetensors",
                                                     [](nlohmann::json& a) { std::swap(a["heads"][0], a["heads"][1]); });
    CHECK(earlyexit_test::what_of([&] { mobilenet_v2 m(p); }) ==
          p.string() + ": head 'heads.0' after stage 9 is listed after head 'heads.1' after stage 13: heads must be listed "
                       "in the order of their stages");
}

TEST_CASE("MobileNetV2 rejects a file of another format") {
    CHECK(earlyexit_test::what_of([] { mobilenet_v2 m(root / "models" / "cifar10_multiexit.safetensors"); }) ==
          fmt::format("{}: metadata format is 'earlyexit-cifar10-multiexit', expected 'earlyexit-imagenet-mobilenet-v2'",
                      (root / "models" / "cifar10_multiexit.safetensors").string()));
}
