// examples/common/staged_model.hpp: the checked loader both demo networks use, on a toy model
// defined here (a third model in a few lines) and small weight files written by the test.
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>
#include <nlohmann/json.hpp>

#include "common/staged_model.hpp"
#include "error_text.hpp"
#include "safetensors_writer.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit::demo;
using earlyexit_test::f32_tensor;
using earlyexit_test::what_of;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

/// Stage "gain": multiplies channel c of the map by <name>.gain[c] (one MAC per value).
struct gain_stage {
    std::vector<float> gain;
    nn::shape3 shape;
    void operator()(feature_state& s) const noexcept {
        const float* x = s.data();
        float* y = s.next();
        for (std::size_t c = 0; c < gain.size(); ++c)
            for (std::size_t p = 0; p < shape.positions(); ++p) y[c * shape.positions() + p] = gain[c] * x[c * shape.positions() + p];
        s.advance(shape);
    }
};

/// Head "mean_linear": the channel means, then logits = weight * means + bias.
struct mean_head {
    std::vector<float> weight, bias;  // classes x channels, classes
    nn::shape3 in;
    [[nodiscard]] std::size_t num_classes() const noexcept { return bias.size(); }
    void operator()(const feature_state& s, std::span<float> logits, std::span<float>) const noexcept {
        const std::size_t c = static_cast<std::size_t>(in.c), n = in.positions();
        for (std::size_t k = 0; k < bias.size(); ++k) {
            float z = bias[k];
            for (std::size_t ch = 0; ch < c; ++ch) {
                float m = 0;
                for (std::size_t p = 0; p < n; ++p) m += s.data()[ch * n + p];
                z += weight[k * c + ch] * (m / static_cast<float>(n));
            }
            logits[k] = z;
        }
    }
};

struct toy_model : staged_model<gain_stage, mean_head> {
    explicit toy_model(const fs::path& p) : staged_model(safetensors_file(p), "toy", &load_stage, &load_head) {}

    static stage_part<gain_stage> load_stage(const safetensors_file& f, const nlohmann::json&, const stage_site& s) {
        gain_stage st{f.floats(s.name + ".gain", {std::size_t(s.in.c)}), s.in};
        return {std::move(st), s.in, static_cast<double>(s.in.size()), 0, 0};
    }
    static mean_head load_head(const safetensors_file& f, const nlohmann::json&, const head_site& h) {
        return {f.floats(h.name + ".weight", {h.classes, std::size_t(h.in.c)}), f.floats(h.name + ".bias", {h.classes}), h.in};
    }
};

/// The toy architecture: input [3, 2, 2], 2 classes, stages s0 s1 s2 (12 MACs each: 3x2x2
/// values), heads h0 h1 h2 after stages 0, 1, 2.
nlohmann::json toy_architecture() {
    nlohmann::json a;
    a["input"] = {3, 2, 2};
    a["classes"] = 2;
    for (int i = 0; i < 3; ++i) {
        a["stages"].push_back({{"name", "s" + std::to_string(i)}, {"macs", 12}});
        a["heads"].push_back({{"name", "h" + std::to_string(i)}, {"after_stage", i}});
    }
    return a;
}

/// Writes the toy weight file with this architecture into dir.
fs::path toy_file(const earlyexit_test::temp_dir& dir, const nlohmann::json& arch, const std::string& name = "toy.safetensors") {
    const nlohmann::json metadata = {{"format", "toy"},
                                     {"architecture", arch.dump()},
                                     {"mean", "[0.5, 0.5, 0.5]"},
                                     {"std", "[0.25, 0.25, 0.25]"},
                                     {"class_names", R"(["yes", "no"])"}};
    const std::vector<f32_tensor> tensors = {
        {"s0.gain", {3}, {1, 2, 3}},        {"s1.gain", {3}, {2, 1, 0.5f}},      {"s2.gain", {3}, {1, 1, 2}},
        {"h0.weight", {2, 3}, {1, 0, 0, 0, 0, 1}}, {"h0.bias", {2}, {0, 0.5f}},
        {"h1.weight", {2, 3}, {1, 1, 1, 1, -1, 0}}, {"h1.bias", {2}, {0, 0}},
        {"h2.weight", {2, 3}, {0, 1, 0, 0, 0, 1}}, {"h2.bias", {2}, {1, 1}}};
    const fs::path p = dir / name;
    earlyexit_test::write_safetensors(p, metadata, tensors);
    return p;
}

/// The loader's error for the toy file with the architecture that edit(arch) changed.
template <class Edit>
std::string refusal(const earlyexit_test::temp_dir& dir, Edit edit) {
    auto arch = toy_architecture();
    edit(arch);
    const fs::path p = toy_file(dir, arch);
    return what_of([&] { toy_model m(p); });
}

}  // namespace

TEST_CASE("staged_model loads a toy file: metadata, stages, heads and a network that runs them in order") {
    const earlyexit_test::temp_dir dir("earlyexit_staged_model");
    const toy_model model(toy_file(dir, toy_architecture()));
    CHECK(model.num_classes() == 2);
    CHECK(model.input_shape() == nn::shape3{3, 2, 2});
    CHECK(model.mean() == std::array<float, 3>{0.5f, 0.5f, 0.5f});
    CHECK(model.stddev() == std::array<float, 3>{0.25f, 0.25f, 0.25f});
    CHECK(model.class_names() == std::vector<std::string>{"yes", "no"});
    REQUIRE(model.num_stages() == 3);
    REQUIRE(model.num_heads() == 3);
    CHECK(model.stage(1).name == "s1");
    CHECK(model.head_at(2).name == "h2");
    for (std::size_t k = 0; k < 3; ++k) CHECK(model.head_after(k) == k);

    const auto net = model.network();
    REQUIRE(net.num_stages() == 3);
    REQUIRE(net.num_heads() == 3);
    CHECK(net.head_position(1) == 1);
    CHECK(net.stage_macs(2) == 12.0);
    // Input channel c holds c + 1 everywhere (means 1, 2, 3). After s0 (gains 1, 2, 3) the means
    // are 1, 4, 9: h0 = [1, 9 + 0.5]. After s1 (gains 2, 1, 0.5): 2, 4, 4.5: h1 = [10.5, -2].
    // After s2 (gains 1, 1, 2): 2, 4, 9: h2 = [4 + 1, 9 + 1].
    auto state = model.make_state();
    for (std::size_t i = 0; i < 12; ++i) state.input()[i] = static_cast<float>(i / 4 + 1);
    state.begin(model.input_shape());
    const std::vector<std::vector<float>> want = {{1, 9.5f}, {10.5f, -2}, {5, 10}};
    std::vector<float> logits(2), ws(net.workspace_size());
    for (std::size_t p = 0; p < 3; ++p) {
        net.run_stage(p, state);
        net.run_head(p, state, logits, ws);
        CHECK(logits == want[p]);
    }
}

TEST_CASE("staged_model refuses an unsorted head list, naming both heads and their stages") {
    const earlyexit_test::temp_dir dir("earlyexit_staged_model");
    const auto msg = refusal(dir, [](nlohmann::json& a) { std::swap(a["heads"][0], a["heads"][1]); });
    CHECK_THAT(msg, Catch::Matchers::EndsWith(
                        "toy.safetensors: head 'h0' after stage 0 is listed after head 'h1' after stage 1: heads must be "
                        "listed in the order of their stages"));
}

TEST_CASE("staged_model refuses two heads on one stage, naming them and the stage") {
    const earlyexit_test::temp_dir dir("earlyexit_staged_model");
    const auto msg = refusal(dir, [](nlohmann::json& a) { a["heads"][1]["after_stage"] = 0; });
    CHECK_THAT(msg, Catch::Matchers::EndsWith("toy.safetensors: heads 'h0' and 'h1' both follow stage 0: at most one head per stage"));
}

TEST_CASE("staged_model refuses a stage whose declared MACs differ from its layers'") {
    const earlyexit_test::temp_dir dir("earlyexit_staged_model");
    const auto msg = refusal(dir, [](nlohmann::json& a) { a["stages"][1]["macs"] = 13; });
    CHECK_THAT(msg, Catch::Matchers::EndsWith("toy.safetensors: stage 's1' declares 13 MACs, its layers have 12"));
}

TEST_CASE("staged_model refuses a file whose last stage has no head, naming the last head and stage") {
    const earlyexit_test::temp_dir dir("earlyexit_staged_model");
    const auto msg = refusal(dir, [](nlohmann::json& a) { a["heads"].erase(2); });
    CHECK_THAT(msg, Catch::Matchers::EndsWith("toy.safetensors: the last head 'h1' follows stage 1, but the final head must "
                                              "follow the last stage 2 ('s2')"));
    const auto none = refusal(dir, [](nlohmann::json& a) { a["heads"] = nlohmann::json::array(); });
    CHECK_THAT(none, Catch::Matchers::EndsWith("toy.safetensors: no heads: the final head must follow the last stage 2 ('s2')"));
}

TEST_CASE("staged_model refuses bad metadata, naming the value") {
    const earlyexit_test::temp_dir dir("earlyexit_staged_model");
    using Catch::Matchers::EndsWith;
    CHECK_THAT(refusal(dir, [](nlohmann::json& a) { a["heads"][2]["after_stage"] = 3; }),
               EndsWith("toy.safetensors: head 'h2' after stage 3, but there are 3 stages"));
    CHECK_THAT(refusal(dir, [](nlohmann::json& a) { a["input"] = {1, 2, 2}; }),
               EndsWith("toy.safetensors: input has 1 channels, expected 3 (RGB)"));
    CHECK_THAT(refusal(dir, [](nlohmann::json& a) { a["input"] = {3, 2}; }),
               EndsWith("toy.safetensors: input shape has 2 dimensions, expected 3"));
    CHECK_THAT(refusal(dir, [](nlohmann::json& a) { a["stages"] = nlohmann::json::array(); }),
               EndsWith("toy.safetensors: the architecture has no stages"));
    CHECK_THAT(refusal(dir, [](nlohmann::json& a) { a["classes"] = 3; }),
               EndsWith("toy.safetensors: 2 class names for 3 classes"));
    CHECK_THAT(refusal(dir, [](nlohmann::json& a) { a["stages"][0].erase("macs"); }),
               Contains("toy.safetensors: bad architecture metadata: ") && Contains("macs"));
}

TEST_CASE("staged_model checks the format first") {
    const earlyexit_test::temp_dir dir("earlyexit_staged_model");
    const fs::path p = dir / "other.safetensors";
    earlyexit_test::write_safetensors(p, {{"format", "something-else"}}, {});
    CHECK(what_of([&] { toy_model m(p); }) ==
          fmt::format("{}: metadata format is 'something-else', expected 'toy'", p.string()));
}
