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
    std::ifstream in(weights, std::ios::binary);
    std::uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    std::string header(n, ' ');
    in.read(header.data(), static_cast<std::streamsize>(n));
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto h = nlohmann::json::parse(header);
    auto arch = nlohmann::json::parse(h["__metadata__"]["architecture"].get<std::string>());
    edit(arch);
    h["__metadata__"]["architecture"] = arch.dump();
    header = h.dump();
    header.append((8 - header.size() % 8) % 8, ' ');
    n = header.size();
    const fs::path p = dir / "edited.safetensors";
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << data;
    return p;
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

TEST_CASE("CIFAR-10 network declares the architecture's MACs and one exit per block") {
    const cifar_net model(weights);
    const auto net = model.network();
    CHECK(model.num_classes() == 10);
    CHECK(model.class_names().front() == "airplane");
    CHECK(model.input_shape() == nn::shape3{3, 32, 32});
    CHECK(net.num_heads() >= 6);
    // The final exit's cost: every stage plus the last head (GAP over 8x8x128 + 128x10 linear).
    double stages = 0;
    for (std::size_t s = 0; s < net.num_stages(); ++s) stages += net.stage_macs(s);
    CHECK(net.full_macs() >= stages);
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

TEST_CASE("CIFAR-10 network rejects a file of another format") {
    const fs::path dir = fs::temp_directory_path() / "earlyexit-cifar-net-test";
    fs::create_directories(dir);
    const fs::path p = dir / "other.safetensors";
    {
        const std::string header = R"({"__metadata__":{"format":"something-else"}})";
        const std::uint64_t n = header.size();
        std::ofstream out(p, std::ios::binary);
        out.write(reinterpret_cast<const char*>(&n), 8);
        out << header;
    }
    CHECK(earlyexit_test::what_of([&] { cifar_net m(p); }) ==
          fmt::format("{}: metadata format is 'something-else', expected 'earlyexit-cifar10-multiexit'", p.string()));
    fs::remove_all(dir);
}
