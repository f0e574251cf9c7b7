#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/trace/trace.hpp>

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {
trace_layout small_layout() { return {3, {0, 2}, {10, 20, 30}, {1, 2}}; }
}  // namespace

TEST_CASE("a trace stores samples in the flat NPY layout", "[trace]") {
    trace t(small_layout());
    CHECK(t.empty());
    const std::vector<float> a{1, 2, 3, 4, 5, 6};
    const std::vector<float> b{7, 8, 9, 10, 11, 12};
    t.add(a, std::vector<double>{0.1, 0.2, 0.3}, std::vector<double>{0.01, 0.02}, 2);
    t.add(b, std::vector<double>{0.4, 0.5, 0.6}, std::vector<double>{0.03, 0.04}, std::nullopt);
    REQUIRE(t.size() == 2);
    CHECK(t.stages() == 3);
    CHECK(t.heads() == 2);
    CHECK(t.classes() == 3);
    CHECK(std::vector<float>(t.logits(1, 1).begin(), t.logits(1, 1).end()) == std::vector<float>{10, 11, 12});
    CHECK(t.stage_seconds(1)[2] == 0.6);
    CHECK(t.head_seconds(0)[1] == 0.02);
    CHECK(t.label(0) == std::optional<std::size_t>(2));
    CHECK_FALSE(t.label(1).has_value());
    CHECK_FALSE(t.labelled());
    CHECK(t.all_labels()[1] == -1);
    CHECK(t.all_logits().size() == 12);
    const auto info = t.info();
    CHECK(info.full_macs == 10 + 20 + 30 + 2);
    CHECK(info.head_positions[1] == 2);
}

TEST_CASE("slices and selections keep samples in order with their layout", "[trace]") {
    trace t(small_layout());
    for (std::size_t i = 0; i < 5; ++i) {
        const std::vector<float> z(6, static_cast<float>(i));
        t.add(z, std::vector<double>(3, 0.0), std::vector<double>(2, 0.0), i % 3);
    }
    t.provenance["dataset"] = "unit";
    const auto s = t.slice(1, 3);
    REQUIRE(s.size() == 3);
    CHECK(s.logits(0, 0)[0] == 1.f);
    CHECK(s.label(2) == std::optional<std::size_t>(0));
    CHECK(s.layout() == t.layout());
    CHECK(s.provenance.at("dataset") == "unit");
    const auto odd = t.select_if([](std::size_t i) { return i % 2 == 1; });
    REQUIRE(odd.size() == 2);
    CHECK(odd.logits(1, 1)[2] == 3.f);
    CHECK_THROWS_WITH(t.slice(4, 2), Contains("slice [4, 6) is outside the 5 samples"));
}

TEST_CASE("bad samples and layouts are errors naming the value", "[trace][error]") {
    trace t(small_layout());
    CHECK_THROWS_WITH(t.add(std::vector<float>(5), std::vector<double>(3), std::vector<double>(2), 0),
                      Contains("sample 0 has 5 logits"));
    CHECK_THROWS_WITH(t.add(std::vector<float>(6), std::vector<double>(3), std::vector<double>(2), 3),
                      Contains("label 3, out of range [0, 3)"));
    CHECK_THROWS_WITH(trace(trace_layout{3, {0, 1}, {1, 1, 1}, {1, 1}}), Contains("last head must sit at the last stage (2)"));
    CHECK_THROWS_WITH(trace(trace_layout{0, {0}, {1}, {1}}), Contains("classes must be positive"));
    CHECK_THROWS_WITH(trace(trace_layout{2, {1, 1}, {1, 1}, {1, 1}}), Contains("head 1 at position 1 is not after head 0"));
    CHECK_THROWS_WITH(trace(trace_layout{2, {0}, {-1.0}, {1}}), Contains("stage cost -1"));
    CHECK_THROWS_WITH(trace(trace_layout{2, {0}, {1.0}, {1, 2}}), Contains("2 head costs for 1 heads"));
}

TEST_CASE("trace_layout::difference names the first difference, require_same throws with it", "[trace]") {
    const trace_layout a = small_layout();
    CHECK(a.difference(a).empty());
    auto b = a;
    b.classes = 4;
    CHECK(a.difference(b) == "3 classes against 4");
    b = a;
    b.head_positions = {1, 2};
    CHECK(a.difference(b) == "heads at stages [0, 2] against [1, 2]");
    b = a;
    b.stage_macs = {10, 20, 30, 40};
    b.head_positions = {0, 3};
    CHECK(a.difference(b) == "heads at stages [0, 2] against [0, 3]");
    b = a;
    b.stage_macs[1] = 21;
    CHECK(a.difference(b) == "stage 1 declares 20 MACs against 21");
    b = a;
    b.head_macs[1] = 3;
    CHECK(a.difference(b) == "head 1 declares 2 MACs against 3");
    CHECK((a.difference(b).empty() == (a == b)));
    const std::vector<std::size_t> pos{0, 2};
    const std::vector<double> stage{10, 20, 30}, head{1, 3};
    const network_info n{3, 2, 3, pos, stage, head, 33};
    CHECK_THROWS_WITH(a.require_same(n, "calibration trace x"),
                      "calibration trace x: recorded with another network than this one: head 1 declares 2 MACs "
                      "against 3 (the trace's, then this network's)");
    CHECK_NOTHROW(b.require_same(n, "y"));
}
