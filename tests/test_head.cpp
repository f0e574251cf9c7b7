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
