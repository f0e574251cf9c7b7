#include <array>
#include <optional>
#include <span>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/heads/any_head.hpp>
#include <earlyexit/heads/callable.hpp>

#include "heads_support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

TEST_CASE("any_head erases the head type and keeps its declared facts", "[heads]") {
    const any_head<Eigen::VectorXf, float> h = small_linear();
    Eigen::VectorXf x = Eigen::VectorXf::Ones(2);
    std::array<float, 3> out{};
    std::vector<float> ws;
    h(x, out, ws);
    CHECK(out == std::array<float, 3>{3.5f, 7.f, 0.f});
    CHECK(h.num_classes() == 3);
    CHECK(h.macs() == 9.0);
    CHECK(h.input_size_hint() == std::optional<std::size_t>(2));
    const any_head<Eigen::VectorXf, float> c = make_head([](const Eigen::VectorXf&, std::span<float> o) { o[0] = 1; }, 1);
    CHECK_FALSE(c.input_size_hint().has_value());
    CHECK(head_macs(c) == 0.0);
}
