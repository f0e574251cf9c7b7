#include <array>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/heads/linear.hpp>

#include "heads_support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

TEST_CASE("linear_head computes W x + b (dynamic sizes)", "[heads]") {
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

TEST_CASE("linear_head with fixed sizes keeps PyTorch's row-major weight layout", "[heads]") {
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

TEST_CASE("linear_head rejects bad shapes and non-finite weights, naming the value", "[heads][error]") {
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
