#include <array>
#include <span>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/heads/callable.hpp>

using namespace earlyexit;
using Catch::Matchers::Contains;

TEST_CASE("callable_head and make_head wrap any callable", "[heads]") {
    const auto h = make_head([](const std::vector<float>& x, std::span<float> out) { out[0] = x[0] * 2; out[1] = -x[0]; },
                             2, 5.0);
    std::array<float, 2> out{};
    std::vector<float> ws;
    h(std::vector<float>{3.f}, std::span<float>(out), std::span<float>(ws));
    CHECK(out == std::array<float, 2>{6.f, -3.f});
    CHECK(h.num_classes() == 2);
    CHECK(h.macs() == 5.0);
    STATIC_REQUIRE(exit_head<decltype(h), std::vector<float>, float>);
    CHECK_THROWS_WITH(make_head([](const int&, std::span<float>) {}, 0), Contains("num_classes must be positive, got 0"));
    CHECK_THROWS_WITH(make_head([](const int&, std::span<float>) {}, 2, -1.0), Contains("got -1"));
}

TEST_CASE("make_head takes its shape and cost as named arguments too", "[heads]") {
    const auto f = [](const int&, std::span<float> out) { out[0] = 1; };
    const auto h = make_head(f, {.classes = 4, .macs = 64, .workspace = 3});
    CHECK(h.num_classes() == 4);
    CHECK(h.macs() == 64.0);
    CHECK(h.workspace_size() == 3);
    const auto g = make_head(f, {.classes = 2});  // the rest default: no cost, no workspace
    CHECK(g.macs() == 0.0);
    CHECK(g.workspace_size() == 0);
    CHECK_THROWS_WITH(make_head(f, {.macs = 1}), Contains("num_classes must be positive, got 0"));
    CHECK_THROWS_WITH(make_head(f, {.classes = 2, .macs = -2}), Contains("got -2"));
}
