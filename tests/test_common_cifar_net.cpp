// examples/common/cifar_net.hpp: the shipped CIFAR-10 network against PyTorch's logits
// (tests/data/cifar10/reference_logits.json, written by examples/train/train_cifar10.py from the
// same weight file), and the runner really skipping its blocks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>
#include <nlohmann/json.hpp>

#include "common/cifar_net.hpp"
#include "error_text.hpp"
#include "safetensors_writer.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit::demo;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const fs::path root = EARLYEXIT_SOURCE_DIR;
const fs::path weights = root / "models" / "cifar10_multiexit.safetensors";

nlohmann::json reference() {
    std::ifstream in(root / "tests" / "data" / "cifar10" / "reference_logits.json");
    REQUIRE(in);
    return nlohmann::json::parse(in);
}

/// A copy of the shipped weight file in `dir` whose architecture metadata `edit` changed.
template <class Edit>
fs::path with_architecture(const fs::path& dir, Edit edit) {
    return earlyexit_test::with_architecture(weights, dir / "edited.safetensors", edit);
}

}  // namespace

TEST_CASE("CIFAR-10 network logits equal PyTorch's on the reference images") {
    const cifar_net model(weights);
    const auto net = model.network();
    const auto ref = reference();
    auto state = model.make_state();
    REQUIRE(ref.at("images").size() >= 4);
    REQUIRE(net.num_heads() == model.num_heads());
    double worst = 0;
    for (const auto& img : ref.at("images")) {
        const auto pixels = img.at("pixels_hwc").get<std::vector<std::uint8_t>>();
        const auto want = img.at("logits").get<std::vector<std::vector<float>>>();
        REQUIRE(want.size() == net.num_heads());
        // policy::fixed{k} exits at head k: its logits, after running only the stages up to it.
        for (std::size_t k = 0; k < net.num_heads(); ++k) {
            auto runner = make_runner(net, policy::fixed{k});
            model.set_input(state, pixels);
            const auto r = runner.run(state);
            REQUIRE(r.head == k);
            CHECK(r.positions_run == model.head_after(k) + 1);
            CHECK(r.heads_evaluated == 1);
            REQUIRE(r.logits.size() == want[k].size());
            for (std::size_t c = 0; c < r.logits.size(); ++c)
                worst = std::max(worst, double(std::abs(r.logits[c] - want[k][c])));
        }
    }
    INFO("max |logit difference| = " << worst);
    CHECK(worst <= 1e-3);
}

TEST_CASE("CIFAR-10 network: its stages' MACs, head positions and head MACs as computed by hand") {
    const cifar_net model(weights);
    const auto net = model.network();
    CHECK(model.num_classes() == 10);
    CHECK(model.class_names().front() == "airplane");
    CHECK(model.input_shape() == nn::shape3{3, 32, 32});
    // A conv costs H_out * W_out * C_out * C_in * k * k. Stem 3->32 at 32x32; blocks 0-1: two
    // 32->32 3x3 at 32x32; block 2: 32->64 and 64->64 at 16x16 + 1x1 shortcut 32->64; block 3:
    // two 64->64 at 16x16; block 4: 64->192 and 192->192 at 8x8 + shortcut 64->192; block 5: two
    // 192->192 at 8x8.
    const double conv32 = 32 * 32 * 32 * 32 * 9.0, conv64 = 16 * 16 * 64 * 64 * 9.0, conv192 = 8 * 8 * 192 * 192 * 9.0;
    const std::vector<double> stage_macs = {
        32 * 32 * 32 * 3 * 9.0,                                          // 884 736
        2 * conv32,                                                      // 18 874 368
        2 * conv32,                                                      // 18 874 368
        16 * 16 * 64 * 32 * 9.0 + conv64 + 16 * 16 * 64 * 32,           // 14 680 064
        2 * conv64,                                                      // 18 874 368
        8 * 8 * 192 * 64 * 9.0 + conv192 + 8 * 8 * 192 * 64,             // 29 097 984
        2 * conv192};                                                    // 42 467 328
    REQUIRE(net.num_stages() == 7);
    REQUIRE(model.num_stages() == 7);
    for (std::size_t s = 0; s < 7; ++s) {
        INFO("stage " << s);
        CHECK(net.stage_macs(s) == stage_macs[s]);
    }
    CHECK(stage_macs == std::vector<double>{884736, 18874368, 18874368, 14680064, 18874368, 29097984, 42467328});
    // One exit after every block: heads 0..5 after stages 1..6.
    REQUIRE(model.num_heads() == 6);
    REQUIRE(net.num_heads() == 6);
    for (std::size_t k = 0; k < 6; ++k) {
        CHECK(model.head_after(k) == k + 1);
        CHECK(net.head_position(k) == k + 1);
    }
    // A head as grid_pooled_head counts it: mixed pooling 2 per input value (average and max),
    // global average pooling 1, plus the linear layer's weights and biases. Heads 0-1 read
    // 32x32x32 with 10x512 weights, 2-3 16x16x64 with 10x1024, head 4 8x8x192 with 10x3072, and
    // head 5 pools 8x8x192 globally into 10x192. (The file's own "macs" leave out the 10 biases.)
    const std::vector<double> head_macs = {2 * 32768 + 5130, 2 * 32768 + 5130, 2 * 16384 + 10250,
                                           2 * 16384 + 10250, 2 * 12288 + 30730, 12288 + 1930};
    for (std::size_t k = 0; k < 6; ++k) {
        INFO("head " << k);
        CHECK(net.head_macs_at(k) == head_macs[k]);
    }
    // The plain network: every stage plus the final head (README: 143.77 M).
    CHECK(net.full_macs() == 143753216.0 + 14218.0);
}

TEST_CASE("CIFAR-10 weight file holds 1 351 873 parameters, as its metadata says") {
    const safetensors_file f(weights);
    std::size_t total = 0;
    for (const auto& name : f.names()) total += f.tensor(name).numel();
    // By hand: a conv has C_out * C_in * k * k weights + C_out biases; a head 10 x features + 10,
    // and a mixed-pooling head one max_weight.
    const std::size_t c32 = 32 * 32 * 9 + 32, c64 = 64 * 64 * 9 + 64, c192 = 192 * 192 * 9 + 192;
    const std::size_t stem = 32 * 3 * 9 + 32;                                          // 896
    const std::size_t blocks = 2 * c32 + 2 * c32 + (64 * 32 * 9 + 64) + c64 + (64 * 32 + 64) + 2 * c64 +
                               (192 * 64 * 9 + 192) + c192 + (192 * 64 + 192) + 2 * c192;  // 1 287 552
    const std::size_t heads = 2 * (10 * 512 + 10 + 1) + 2 * (10 * 1024 + 10 + 1) + (10 * 3072 + 10 + 1) +
                              (10 * 192 + 10);  // 63 425
    CHECK(stem + blocks + heads == 1351873);
    CHECK(total == 1351873);
    CHECK(f.metadata("parameters") == "1351873");
    CHECK(f.names().size() == 47);  // 2 (stem) + 4 + 4 + 6 + 4 + 6 + 4 (blocks) + 5 x 3 + 2 (heads)
}

TEST_CASE("CIFAR-10 network: early heads pool to a 4x4 grid, the final head globally") {
    const cifar_net model(weights);
    for (std::size_t k = 0; k + 1 < model.num_heads(); ++k) CHECK(model.head_grid(k) == 4);
    CHECK(model.head_grid(model.num_heads() - 1) == 1);
}

TEST_CASE("CIFAR-10 network refuses heads it cannot build, naming the head and the value") {
    const earlyexit_test::temp_dir dir("earlyexit_cifar_net");
    const auto p = with_architecture(dir.path, [](nlohmann::json& a) { a["heads"][0]["pool"] = "median"; });
    CHECK_THAT(earlyexit_test::what_of([&] { cifar_net m(p); }), Contains("head 'heads.0' has unknown pooling 'median'"));
    const auto q = with_architecture(dir.path, [](nlohmann::json& a) { a["heads"][1]["type"] = "attention"; });
    CHECK_THAT(earlyexit_test::what_of([&] { cifar_net m(q); }), Contains("head 'heads.1' has unknown type 'attention'"));
    // A grid of 2 reads 32 x 2 x 2 = 128 features; the file's tensor has 512.
    const auto r = with_architecture(dir.path, [](nlohmann::json& a) { a["heads"][0]["grid"] = 2; });
    CHECK_THAT(earlyexit_test::what_of([&] { cifar_net m(r); }), Contains("heads.0.weight"));
}

TEST_CASE("CIFAR-10 network refuses an unsorted head list and two heads on one stage, naming heads and stages") {
    const earlyexit_test::temp_dir dir("earlyexit_cifar_net");
    // The old loader accepted this list and its network() then failed with "no head at the last position".
    const auto p = with_architecture(dir.path, [](nlohmann::json& a) { std::swap(a["heads"][1], a["heads"][2]); });
    CHECK(earlyexit_test::what_of([&] { cifar_net m(p); }) ==
          p.string() + ": head 'heads.1' after stage 2 is listed after head 'heads.2' after stage 3: heads must be listed "
                       "in the order of their stages");
    const auto q = with_architecture(dir.path, [](nlohmann::json& a) { a["heads"][3]["after_stage"] = 3; });
    CHECK(earlyexit_test::what_of([&] { cifar_net m(q); }) ==
          q.string() + ": heads 'heads.2' and 'heads.3' both follow stage 3: at most one head per stage");
    const auto r = with_architecture(dir.path, [](nlohmann::json& a) { a["heads"].erase(5); });
    CHECK(earlyexit_test::what_of([&] { cifar_net m(r); }) ==
          r.string() + ": the last head 'heads.4' follows stage 5, but the final head must follow the last stage 6 ('blocks.5')");
    const auto t = with_architecture(dir.path, [](nlohmann::json& a) { a["stages"][3]["macs"] = 14680000; });
    CHECK(earlyexit_test::what_of([&] { cifar_net m(t); }) ==
          t.string() + ": stage 'blocks.2' declares 14680000 MACs, its layers have 14680064");
}

TEST_CASE("CIFAR-10 network rejects a file of another format") {
    const earlyexit_test::temp_dir dir("earlyexit_cifar_net");
    const fs::path p = dir / "other.safetensors";
    earlyexit_test::write_safetensors(p, {{"format", "something-else"}}, {});
    CHECK(earlyexit_test::what_of([&] { cifar_net m(p); }) ==
          fmt::format("{}: metadata format is 'something-else', expected 'earlyexit-cifar10-multiexit'", p.string()));
}
