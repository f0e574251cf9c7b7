#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/head.hpp>

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {

linear_head<float> small_linear() {
    Eigen::MatrixXf w(3, 2);
    w << 1, 2, 3, 4, 0, -1;
    Eigen::VectorXf b(3);
    b << 0.5f, 0.f, 1.f;
    return {w, b};
}

linear_head<float> layer(std::initializer_list<std::initializer_list<float>> rows, std::initializer_list<float> bias) {
    Eigen::MatrixXf w(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows.begin()->size()));
    Eigen::Index r = 0;
    for (const auto& row : rows) {
        Eigen::Index c = 0;
        for (float v : row) w(r, c++) = v;
        ++r;
    }
    Eigen::VectorXf b(static_cast<Eigen::Index>(bias.size()));
    Eigen::Index i = 0;
    for (float v : bias) b(i++) = v;
    return {w, b};
}

}  // namespace

TEST_CASE("linear_head computes W x + b (dynamic sizes)", "[head]") {
    const auto h = small_linear();
    Eigen::VectorXf x(2);
    x << 1.f, 1.f;
    std::array<float, 3> out{};
    h(x, out);
    CHECK(out == std::array<float, 3>{3.5f, 7.f, 0.f});
    CHECK(h.num_classes() == 3);
    CHECK(h.input_size() == 2);
    CHECK(h.macs() == 9.0);  // 6 multiply-adds + 3 bias adds
    // The same from a std::vector input.
    const std::vector<float> xv{2.f, 0.f};
    h(xv, out);
    CHECK(out == std::array<float, 3>{2.5f, 6.f, 1.f});
}

TEST_CASE("linear_head with fixed sizes keeps PyTorch's row-major weight layout", "[head]") {
    Eigen::Matrix<float, 3, 2, Eigen::RowMajor> w;
    w << 1, 2, 3, 4, 0, -1;
    // Row-major: memory order equals nn.Linear's [out, in] layout.
    CHECK(w.data()[1] == 2.f);
    const linear_head<float, 2, 3> h(w, Eigen::Vector3f(0.5f, 0.f, 1.f));
    Eigen::Vector2f x(1.f, 1.f);
    std::array<float, 3> out{};
    h(x, out);
    CHECK(out == std::array<float, 3>{3.5f, 7.f, 0.f});
    STATIC_REQUIRE(exit_head<linear_head<float, 2, 3>, Eigen::Vector2f, float>);
    STATIC_REQUIRE(std::is_same_v<linear_head<float, 2, 3>::weight_type, Eigen::Matrix<float, 3, 2, Eigen::RowMajor>>);
}

TEST_CASE("linear_head rejects bad shapes and non-finite weights, naming the value", "[head][error]") {
    Eigen::MatrixXf w = Eigen::MatrixXf::Ones(3, 2);
    CHECK_THROWS_WITH((linear_head<float>(w, Eigen::VectorXf::Zero(4))),
                      Contains("bias has 4 entries") && Contains("3 rows"));
    CHECK_THROWS_AS((linear_head<float>(Eigen::MatrixXf(0, 2), Eigen::VectorXf(0))), earlyexit::error);
    w(1, 1) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH((linear_head<float>(w, Eigen::VectorXf::Zero(3))), Contains("weight entry 3 is nan"));
    Eigen::VectorXf b = Eigen::VectorXf::Zero(3);
    b(2) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH((linear_head<float>(Eigen::MatrixXf::Ones(3, 2), b)), Contains("bias entry 2 is inf"));
}

TEST_CASE("mlp_head: hidden ReLU layers, hand-computed, with ping-pong workspace", "[head]") {
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

TEST_CASE("mlp_head rejects layers that do not chain", "[head][error]") {
    CHECK_THROWS_WITH(mlp_head<float>({layer({{1, 2}}, {0}), layer({{1, 2}}, {0})}),
                      Contains("layer 1 expects 2 inputs but layer 0 gives 1 outputs"));
    CHECK_THROWS_WITH(mlp_head<float>(std::vector<linear_head<float>>{}), Contains("at least one layer"));
}

TEST_CASE("pooled_head averages each channel over positions, then applies the linear layer", "[head]") {
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

TEST_CASE("grid_pooled_head pools each cell of the grid (average or mixed with max), then applies the linear layer", "[head]") {
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

TEST_CASE("grid_pooled_head reads the cells channel-major, as a flattened [C, grid, grid] tensor", "[head]") {
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

TEST_CASE("grid_pooled_head refuses sizes that do not fit, naming the values", "[head]") {
    const auto lin = [] { return layer({{1, 1, 1, 1}}, {0}); };  // 4 features
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 4, 4, 0), Contains("grid must be positive, got 0"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 0, 4, 2), Contains("got 0x4"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 6, 6, 4), Contains("grid 4 must divide the 6x6 feature map"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 9, 9, 3), Contains("reads 4 features, not a multiple of grid^2 = 9"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 4, 4, 2, 1.5f), Contains("max_weight must be in [0, 1], got 1.5"));
    CHECK_THROWS_WITH(grid_pooled_head<float>(lin(), 4, 4, 2, std::numeric_limits<float>::quiet_NaN()),
                      Contains("got nan"));
}

TEST_CASE("callable_head and make_head wrap any callable", "[head]") {
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

TEST_CASE("project() feeds a head one member of a larger state", "[head]") {
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

TEST_CASE("any_head erases the head type and keeps its declared facts", "[head]") {
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
