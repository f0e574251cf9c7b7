#include <array>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/heads/grid_pooled.hpp>

#include "heads_support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

TEST_CASE("grid_pooled_head pools each cell of the grid (average or mixed with max), then applies the linear layer", "[heads]") {
    // One channel, 4x4 map holding 0..15 row by row; 2x2 cells:
    //   (0,0) {0,1,4,5}: avg 2.5, max 5    (0,1) {2,3,6,7}: avg 4.5, max 7
    //   (1,0) {8,9,12,13}: avg 10.5, max 13 (1,1) {10,11,14,15}: avg 12.5, max 15
    std::array<float, 16> chw{};
    for (std::size_t i = 0; i < chw.size(); ++i) chw[i] = static_cast<float>(i);
    const Eigen::Map<const Eigen::Matrix<float, 1, 16, Eigen::RowMajor>> fmap(chw.data());
    const auto identity = [] { return layer({{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}, {0, 0, 0, 0}); };
    std::array<float, 4> out{};

    const grid_pooled_head<float> avg(identity(), 4, 4, 2);
    std::vector<float> ws(avg.workspace_size());
    avg(fmap, out, ws);
    CHECK(out == std::array<float, 4>{2.5f, 4.5f, 10.5f, 12.5f});
    CHECK(avg.channels() == 1);
    CHECK(avg.input_size() == 16);
    CHECK(avg.macs() == 16.0 + 20.0);  // one add per input value + the 4x4 linear layer (and its bias)

    const grid_pooled_head<float> mixed(identity(), 4, 4, 2, 0.25f);
    mixed(fmap, out, ws);
    CHECK(out == std::array<float, 4>{3.125f, 5.125f, 11.125f, 13.125f});  // 0.25 max + 0.75 avg
    CHECK(mixed.macs() == 2 * 16.0 + 20.0);
    CHECK(mixed.max_weight() == 0.25f);

    // grid 1 without max_weight is global average pooling: pooled_head's answer.
    const grid_pooled_head<float> global(layer({{2}}, {1}), 4, 4, 1);
    std::array<float, 1> one{};
    global(fmap, one, ws);
    CHECK(one[0] == 2.f * 7.5f + 1.f);
    STATIC_REQUIRE(exit_head<grid_pooled_head<float>, Eigen::Map<const Eigen::MatrixXf>, float>);
}

TEST_CASE("grid_pooled_head reads the cells channel-major, as a flattened [C, grid, grid] tensor", "[heads]") {
    // Two channels of 2x2 with grid 2: each cell is one value; features = the CHW buffer in order.
    const std::array<float, 8> chw{1, 2, 3, 4, 10, 20, 30, 40};
    Eigen::MatrixXf w = Eigen::MatrixXf::Zero(2, 8);
    w(0, 5) = 1;  // channel 1, cell (0, 1): 20
    w(1, 2) = 1;  // channel 0, cell (1, 0): 3
    const grid_pooled_head<float> h(linear_head<float>(w, Eigen::VectorXf::Zero(2)), 2, 2, 2);
    std::vector<float> ws(h.workspace_size());
    std::array<float, 2> out{};
    h(Eigen::Map<const Eigen::Matrix<float, 2, 4, Eigen::RowMajor>>(chw.data()), out, ws);
    CHECK(out == std::array<float, 2>{20.f, 3.f});
    // The same map stored HWC and mapped column-major gives the same answer.
    const std::array<float, 8> hwc{1, 10, 2, 20, 3, 30, 4, 40};
    h(Eigen::Map<const Eigen::Matrix<float, 2, 4, Eigen::ColMajor>>(hwc.data()), out, ws);
    CHECK(out == std::array<float, 2>{20.f, 3.f});
}

TEST_CASE("grid_pooled_head refuses sizes that do not fit, naming the values", "[heads]") {
    const auto lin = [] { return layer({{1, 1, 1, 1}}, {0}); };  // 4 features
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 4, 4, 0), Contains("grid must be positive, got 0"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 0, 4, 2), Contains("got 0x4"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 6, 6, 4), Contains("grid 4 must divide the 6x6 feature map"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 9, 9, 3), Contains("reads 4 features, not a multiple of grid^2 = 9"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 4, 4, 2, 1.5f), Contains("max_weight must be in [0, 1], got 1.5"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 4, 4, 2, std::numeric_limits<float>::quiet_NaN()),
                      Contains("got nan"));
}
