#include <array>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/heads/pooled.hpp>

#include "heads_support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

TEST_CASE("pooled_head averages each channel over positions, then applies the linear layer", "[heads]") {
    const pooled_head<float> h(layer({{1, 0}, {0, 1}, {1, 1}}, {0, 0, 0}), 3);
    Eigen::Matrix<float, 2, 3> fmap;
    fmap << 1, 2, 3, 4, 5, 6;  // channel 0 mean 2, channel 1 mean 5
    std::vector<float> ws(h.workspace_size());
    std::array<float, 3> out{};
    h(fmap, out, ws);
    CHECK(out == std::array<float, 3>{2.f, 5.f, 7.f});
    // A CHW buffer mapped row-major gives the same answer.
    const std::array<float, 6> chw{1, 2, 3, 4, 5, 6};
    h(Eigen::Map<const Eigen::Matrix<float, 2, 3, Eigen::RowMajor>>(chw.data()), out, ws);
    CHECK(out == std::array<float, 3>{2.f, 5.f, 7.f});
    CHECK(h.channels() == 2);
    CHECK(h.input_size() == 6);
    CHECK(h.macs() == 6.0 + 9.0);
    CHECK_THROWS_WITH(pooled_head<float>(layer({{1}}, {0}), 0), Contains("positions (H*W) must be positive, got 0"));
}
