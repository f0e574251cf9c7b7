#include <array>
#include <span>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/heads/project.hpp>
#include <earlyexit/heads/linear.hpp>

#include "heads_support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

TEST_CASE("project() feeds a head one member of a larger state", "[heads]") {
    struct state {
        int step = 0;
        Eigen::VectorXf features;
    };
    const auto h = project(small_linear(), [](const state& s) -> const Eigen::VectorXf& { return s.features; });
    state s{1, Eigen::VectorXf::Ones(2)};
    std::array<float, 3> out{};
    std::vector<float> ws;
    h(s, std::span<float>(out), std::span<float>(ws));
    CHECK(out == std::array<float, 3>{3.5f, 7.f, 0.f});
    CHECK(h.input_size() == 2);
    CHECK(h.macs() == 9.0);
    STATIC_REQUIRE(exit_head<decltype(h), state, float>);
    STATIC_REQUIRE_FALSE(exit_head<linear_head<float>, state, float>);
}
