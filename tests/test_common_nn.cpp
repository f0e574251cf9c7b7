// examples/common/nn.hpp: convolutions against hand-computed answers and a naive reference.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "common/nn.hpp"
#include "error_text.hpp"

using namespace earlyexit::demo;
using nn::activation;
using nn::shape3;
using Catch::Matchers::Contains;

namespace {

/// Naive PyTorch Conv2d (groups 1 or depthwise), as the definition reads.
std::vector<float> naive_conv(const std::vector<float>& x, shape3 in, const nn::rmatrix& w, const Eigen::VectorXf& b, int k,
                              int stride, int pad, bool depthwise) {
    const int oc = static_cast<int>(w.rows());
    const int oh = (in.h + 2 * pad - k) / stride + 1, ow = (in.w + 2 * pad - k) / stride + 1;
    std::vector<float> out(static_cast<std::size_t>(oc * oh * ow));
    for (int o = 0; o < oc; ++o)
        for (int y = 0; y < oh; ++y)
            for (int xo = 0; xo < ow; ++xo) {
                double acc = b[o];
                const int c0 = depthwise ? o : 0, c1 = depthwise ? o + 1 : in.c;
                for (int c = c0; c < c1; ++c)
                    for (int ky = 0; ky < k; ++ky)
                        for (int kx = 0; kx < k; ++kx) {
                            const int iy = y * stride + ky - pad, ix = xo * stride + kx - pad;
                            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                            const int col = ((depthwise ? 0 : c) * k + ky) * k + kx;
                            acc += double(w(o, col)) * x[static_cast<std::size_t>((c * in.h + iy) * in.w + ix)];
                        }
                out[static_cast<std::size_t>((o * oh + y) * ow + xo)] = static_cast<float>(acc);
            }
    return out;
}

std::vector<float> run(const nn::conv2d& conv, const std::vector<float>& x, shape3 in) {
    const shape3 o = conv.output_shape(in);
    std::vector<float> out(o.size()), ws(conv.workspace_size(in));
    conv(x.data(), in, out.data(), ws);
    return out;
}

}  // namespace

TEST_CASE("conv2d 3x3 of ones with padding 1 counts the neighbours") {
    // 1 channel 3x3 input of ones; every output is the number of in-image taps, plus the bias.
    nn::conv2d conv(nn::rmatrix::Ones(1, 9), Eigen::VectorXf::Constant(1, 0.5f), 1, 3, 1, 1, 1, activation::none);
    const std::vector<float> x(9, 1.f);
    CHECK(conv.output_shape({1, 3, 3}) == shape3{1, 3, 3});
    CHECK(conv.macs({1, 3, 3}) == 81.0);
    const auto y = run(conv, x, {1, 3, 3});
    CHECK(y == std::vector<float>{4.5f, 6.5f, 4.5f, 6.5f, 9.5f, 6.5f, 4.5f, 6.5f, 4.5f});
}

TEST_CASE("conv2d stride 2 picks every other position and ReLU6 clamps") {
    // Input 1x4x4 = 0..15, kernel picks the centre tap times 1, stride 2, padding 1.
    nn::rmatrix w = nn::rmatrix::Zero(1, 9);
    w(0, 4) = 1.f;
    std::vector<float> x(16);
    for (int i = 0; i < 16; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i);
    nn::conv2d conv(w, Eigen::VectorXf::Constant(1, -1.f), 1, 3, 2, 1, 1, activation::relu6);
    CHECK(conv.output_shape({1, 4, 4}) == shape3{1, 2, 2});
    // centre taps at (0,0),(0,2),(2,0),(2,2) = 0, 2, 8, 10; minus 1; clamp to [0, 6].
    CHECK(run(conv, x, {1, 4, 4}) == std::vector<float>{0.f, 1.f, 6.f, 6.f});
}

TEST_CASE("conv2d matches the naive definition for every kernel, stride and padding") {
    std::mt19937 rng(7);
    std::normal_distribution<float> n;
    struct cfg {
        int cin, cout, h, w, k, stride, pad;
        bool depthwise;
    };
    const cfg cases[] = {{3, 5, 7, 6, 3, 1, 1, false}, {4, 6, 8, 8, 3, 2, 1, false}, {5, 3, 6, 5, 1, 1, 0, false},
                         {5, 3, 7, 7, 1, 2, 0, false}, {2, 2, 5, 9, 5, 1, 2, false}, {6, 6, 7, 7, 3, 1, 1, true},
                         {6, 6, 8, 7, 3, 2, 1, true},  {3, 3, 4, 4, 5, 2, 2, true},  {2, 4, 3, 3, 3, 3, 0, false}};
    for (const auto& c : cases) {
        const int cols = (c.depthwise ? 1 : c.cin) * c.k * c.k;
        nn::rmatrix w(c.cout, cols);
        for (auto& v : w.reshaped()) v = n(rng);
        Eigen::VectorXf b(c.cout);
        for (auto& v : b) v = n(rng);
        std::vector<float> x(static_cast<std::size_t>(c.cin * c.h * c.w));
        for (auto& v : x) v = n(rng);
        const shape3 in{c.cin, c.h, c.w};
        const nn::conv2d conv(w, b, c.cin, c.k, c.stride, c.pad, c.depthwise ? c.cin : 1, activation::none);
        const auto got = run(conv, x, in);
        const auto want = naive_conv(x, in, w, b, c.k, c.stride, c.pad, c.depthwise);
        INFO("cin " << c.cin << " k " << c.k << " stride " << c.stride << " pad " << c.pad << " dw " << c.depthwise);
        REQUIRE(got.size() == want.size());
        for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(1e-4));
        // MACs: one multiply-accumulate per weight per output position.
        CHECK(conv.macs(in) == double(c.cout) * cols * conv.output_shape(in).positions());
    }
}

TEST_CASE("add_act adds, applies the activation and may work in place") {
    std::vector<float> a{-3.f, 1.f, 4.f}, b{1.f, 1.f, 4.f};
    nn::add_act(a.data(), b.data(), a.data(), 3, activation::relu6);
    CHECK(a == std::vector<float>{0.f, 2.f, 6.f});
    std::vector<float> out(3);
    nn::add_act(b.data(), b.data(), out.data(), 3, activation::none);
    CHECK(out == std::vector<float>{2.f, 2.f, 8.f});
}

TEST_CASE("pooled maps a CHW buffer as channels x positions") {
    const std::vector<float> x{1, 2, 3, 4, 5, 6};  // 2 channels of 1x3
    const auto m = nn::pooled(x.data(), {2, 1, 3});
    CHECK(m.rows() == 2);
    CHECK(m.cols() == 3);
    CHECK(m.rowwise().mean()(1) == 5.f);
}

TEST_CASE("conv2d rejects inconsistent configurations, naming the value") {
    using earlyexit_test::what_of;
    CHECK(what_of([] { nn::conv2d(nn::rmatrix::Ones(2, 8), Eigen::VectorXf::Zero(2), 1, 3, 1, 1, 1, activation::none); }) ==
          "conv2d: weight has 8 columns, expected in/groups*k*k = 9");
    CHECK(what_of([] { nn::conv2d(nn::rmatrix::Ones(2, 9), Eigen::VectorXf::Zero(3), 1, 3, 1, 1, 1, activation::none); }) ==
          "conv2d: bias has 3 entries for 2 output channels");
    CHECK(what_of([] { nn::conv2d(nn::rmatrix::Ones(4, 9), Eigen::VectorXf::Zero(4), 4, 3, 1, 1, 2, activation::none); }) ==
          "conv2d: groups 2 unsupported: only 1 or depthwise (groups == in == out == 4)");
    CHECK_THAT(what_of([] { nn::conv2d(nn::rmatrix::Ones(1, 9), Eigen::VectorXf::Zero(1), 1, 3, 0, 1, 1, activation::none); }),
               Contains("stride 0"));
    const nn::conv2d ok(nn::rmatrix::Ones(1, 9), Eigen::VectorXf::Zero(1), 1, 3, 1, 0, 1, activation::none);
    CHECK(what_of([&] { (void)ok.output_shape({2, 5, 5}); }) == "conv2d: input has 2 channels, the layer expects 1");
    CHECK(what_of([&] { (void)ok.output_shape({1, 2, 5}); }) == "conv2d: input 2x5 too small for kernel 3 with padding 0");
}

TEST_CASE("avg_pool averages k x k windows with stride k and drops the remainder") {
    // 1 channel 5x4 (rows x cols) = 0..19; 2x2 windows: rows 0-1 and 2-3, cols 0-1 and 2-3; row 4 dropped.
    std::vector<float> x(20);
    for (int i = 0; i < 20; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i);
    std::vector<float> out(4);
    const shape3 o = nn::avg_pool(x.data(), {1, 5, 4}, 2, out.data());
    CHECK(o == shape3{1, 2, 2});
    CHECK(out == std::vector<float>{2.5f, 4.5f, 10.5f, 12.5f});
}

TEST_CASE("conv2d::run_batch gives every row the per-sample conv, with spare capacity") {
    // Rows 0..2 of a batch laid out for 5, for every kind of layer: 3x3 stride 1 and 2 with
    // padding, 5x5, 1x1 (one GEMM on the map itself) and 1x1 stride 2 (im2col), depthwise, and
    // a map large enough that the im2col runs in groups of rows.
    // Each output is the same dot product as the per-sample conv's; only the GEMM's summation
    // order may differ, so a float rounding of the terms' size (1e-5 relative, margin 1e-5).
    std::mt19937 rng(11);
    std::normal_distribution<float> n;
    struct cfg {
        int cin, cout, h, w, k, stride, pad;
        bool depthwise;
        activation act;
    };
    const cfg cases[] = {{3, 5, 7, 6, 3, 1, 1, false, activation::relu}, {4, 6, 8, 8, 3, 2, 1, false, activation::none},
                         {5, 3, 6, 5, 1, 1, 0, false, activation::relu6}, {5, 3, 7, 7, 1, 2, 0, false, activation::none},
                         {2, 2, 5, 9, 5, 1, 2, false, activation::none},  {6, 6, 7, 7, 3, 1, 1, true, activation::relu6},
                         {6, 6, 8, 7, 3, 2, 1, true, activation::none},   {32, 16, 4, 4, 3, 1, 1, false, activation::none},
                         {2, 3, 20, 20, 3, 1, 1, false, activation::relu}};  // 400 positions: groups of 2 rows, then 1
    const std::size_t rows = 3, capacity = 5;
    for (const auto& c : cases) {
        const int cols = (c.depthwise ? 1 : c.cin) * c.k * c.k;
        nn::rmatrix w(c.cout, cols);
        for (auto& v : w.reshaped()) v = n(rng);
        Eigen::VectorXf b(c.cout);
        for (auto& v : b) v = n(rng);
        const shape3 in{c.cin, c.h, c.w};
        const nn::conv2d conv(w, b, c.cin, c.k, c.stride, c.pad, c.depthwise ? c.cin : 1, c.act);
        const shape3 o = conv.output_shape(in);
        std::vector<float> x(capacity * in.size(), std::nanf("")), y(capacity * o.size(), -7.f);
        std::vector<std::vector<float>> want;
        for (std::size_t r = 0; r < rows; ++r) {
            std::vector<float> xr(in.size());
            for (auto& v : xr) v = n(rng);
            nn::batch_put_row(xr.data(), in, capacity, r, x.data());
            want.push_back(run(conv, xr, in));
        }
        std::vector<float> ws(conv.batch_workspace_size(in, rows));
        // im2col columns of nn::batch_gemm_columns positions' worth of rows at a time.
        const std::size_t group = std::min<std::size_t>(rows, std::max<std::size_t>(1, nn::batch_gemm_columns / o.positions()));
        CHECK(ws.size() == group * conv.workspace_size(in));
        conv.run_batch(x.data(), in, {rows, capacity}, y.data(), ws);  // rows 3, 4 are NaN: never read
        INFO("cin " << c.cin << " k " << c.k << " stride " << c.stride << " pad " << c.pad << " dw " << c.depthwise);
        for (std::size_t r = 0; r < rows; ++r) {
            const auto got = nn::batch_row(y.data(), o, capacity, r);
            const auto ref = nn::pooled(want[r].data(), o);
            for (Eigen::Index i = 0; i < ref.rows(); ++i)
                for (Eigen::Index j = 0; j < ref.cols(); ++j)
                    REQUIRE(got(i, j) == Approx(ref(i, j)).epsilon(1e-5).margin(1e-5));
        }
        // The rows past `rows` are not written.
        for (std::size_t ch = 0; ch < static_cast<std::size_t>(o.c); ++ch)
            for (std::size_t i = rows * o.positions(); i < capacity * o.positions(); ++i)
                REQUIRE(y[ch * capacity * o.positions() + i] == -7.f);
    }
}

TEST_CASE("batch layout: put, row, gather, compact and add_act move whole rows") {
    // 2 channels of 1x2 per row, capacity 4; row r channel c = {10r + c, 10r + c + 0.5}.
    const shape3 s{2, 1, 2};
    const std::size_t capacity = 4;
    std::vector<float> x(capacity * s.size(), -1.f);
    for (std::size_t r = 0; r < capacity; ++r) {
        const float v = 10.f * static_cast<float>(r);
        const std::vector<float> chw{v, v + 0.5f, v + 1.f, v + 1.5f};
        nn::batch_put_row(chw.data(), s, capacity, r, x.data());
    }
    // Channel 0 of every row, then channel 1 of every row.
    CHECK(x == std::vector<float>{0, 0.5, 10, 10.5, 20, 20.5, 30, 30.5, 1, 1.5, 11, 11.5, 21, 21.5, 31, 31.5});
    CHECK(nn::batch_row(x.data(), s, capacity, 2)(1, 1) == 21.5f);
    const auto m = nn::batch_matrix(x.data(), s, {3, capacity});
    CHECK(m.rows() == 2);
    CHECK(m.cols() == 6);
    CHECK(m(1, 4) == 21.f);

    const std::vector<std::size_t> list{1, 3};
    std::vector<float> g(list.size() * s.size());
    nn::batch_gather(x.data(), s, capacity, list, g.data());
    CHECK(g == std::vector<float>{10, 10.5, 30, 30.5, 11, 11.5, 31, 31.5});

    nn::batch_compact(x.data(), s, capacity, list);  // rows 1, 3 become rows 0, 1
    CHECK(nn::batch_row(x.data(), s, capacity, 0)(0, 0) == 10.f);
    CHECK(nn::batch_row(x.data(), s, capacity, 1)(1, 1) == 31.5f);

    std::vector<float> out(x.size(), 99.f);
    nn::batch_add_act(x.data(), x.data(), out.data(), s, {2, capacity}, activation::relu6);
    CHECK(out == std::vector<float>{6, 6, 6, 6, 99, 99, 99, 99, 6, 6, 6, 6, 99, 99, 99, 99});
}
