#include <array>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/heads/mlp.hpp>

#include "heads_support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

TEST_CASE("mlp_head: hidden ReLU layers, hand-computed, with ping-pong workspace", "[heads]") {
    const mlp_head<float> two({layer({{1, -1}, {0, 1}}, {0, 0}), layer({{1, 2}, {3, -1}}, {1, 0})});
    Eigen::Vector2f x(1.f, 2.f);
    std::vector<float> ws(two.workspace_size());
    std::array<float, 2> out{};
    two(x, out, ws);
    CHECK(out == std::array<float, 2>{5.f, -2.f});  // relu(-1, 2) = (0, 2); (0 + 4 + 1, 0 - 2)

    const mlp_head<float> three({layer({{1, -1}, {0, 1}}, {0, 0}), layer({{2, 0}, {0, 3}}, {1, -1}),
                                 layer({{1, 2}, {3, -1}}, {1, 0})});
    ws.assign(three.workspace_size(), 0.f);
    three(x, out, ws);
    CHECK(out == std::array<float, 2>{12.f, -2.f});  // (0,2) -> (1,5) -> (1+10+1, 3-5)
    CHECK(three.num_classes() == 2);
    CHECK(three.input_size() == 2);
    CHECK(three.macs() == 18.0);
    CHECK(three.workspace_size() == 4);

    const mlp_head<float> single({layer({{1, 2}, {3, -1}}, {1, 0})});
    single(x, out, ws);
    CHECK(out == std::array<float, 2>{6.f, 1.f});
}

TEST_CASE("mlp_head rejects layers that do not chain", "[heads][error]") {
    CHECK_THROWS_WITH(mlp_head<float>({layer({{1, 2}}, {0}), layer({{1, 2}}, {0})}),
                      Contains("layer 1 expects 2 inputs but layer 0 gives 1 outputs"));
    CHECK_THROWS_WITH(mlp_head<float>(std::vector<linear_head<float>>{}), Contains("at least one layer"));
}
