#pragma once
// The few CNN layers the demo networks need, on float CHW feature maps, with Eigen:
//
//   conv2d      PyTorch's Conv2d (cross-correlation, square kernel, symmetric zero padding),
//               groups = 1 (im2col + one GEMM; a 1x1 stride-1 conv is the GEMM alone) or
//               groups = channels (depthwise, direct loops); bias (batch norm folded in) and
//               an optional ReLU / ReLU6 fused after it
//   add_relu    residual add, optionally followed by ReLU
//   pooled      a feature map as the C x (H*W) matrix earlyexit::pooled_head reads
//
// A feature map is `float*` + shape3, channel planes back to back (CHW, row-major), i.e. a
// row-major C x (H*W) matrix.
//
// Batches (conv2d::run_batch and the batch_* functions): the maps of many samples ("rows") of
// one shape in the batch layout, channel-major ("CNHW"): the H*W plane of channel c of row r
// starts at (c * capacity + r) * H*W, where capacity is the rows the buffer is laid out for.
// The maps of rows 0..rows-1 are then one C x (rows*H*W) matrix with outer stride
// capacity*H*W, so a convolution of every row is one GEMM (a 1x1 conv: W times that matrix; a
// k x k conv: W times the im2col columns of all rows), and dropping rows never changes the
// layout of the others. Per-sample and batched layers compute the same sums; only the GEMM's
// summation order may differ (floating-point rounding). Layers write into caller-provided buffers and take an explicit
// workspace, so a forward pass allocates nothing once its state exists. Eigen's matrix product
// packs its operands into buffers (several hundred KB for many of these convolutions) taken
// from the stack only below EIGEN_STACK_ALLOCATION_LIMIT (128 KB unless defined): the demo
// targets define it as 2 MiB (earlyexit_demo_common in CMakeLists.txt); compiled without it,
// those products malloc.

#include <algorithm>
#include <cstddef>
#include <span>
#include <utility>

#include <Eigen/Core>
#include <earlyexit/config.hpp>
#include <earlyexit/error.hpp>

namespace earlyexit::demo::nn {

using rmatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using cmap = Eigen::Map<const rmatrix>;
using mmap = Eigen::Map<rmatrix>;
/// A row-major matrix with an outer stride: the maps of a batch (see the header comment).
using cbmap = Eigen::Map<const rmatrix, 0, Eigen::OuterStride<>>;
using mbmap = Eigen::Map<rmatrix, 0, Eigen::OuterStride<>>;

/// Shape of a CHW feature map.
struct shape3 {
    int c = 0, h = 0, w = 0;
    [[nodiscard]] constexpr std::size_t positions() const noexcept { return static_cast<std::size_t>(h) * static_cast<std::size_t>(w); }
    [[nodiscard]] constexpr std::size_t size() const noexcept { return static_cast<std::size_t>(c) * positions(); }
    friend constexpr bool operator==(const shape3&, const shape3&) = default;
};

enum class activation { none, relu, relu6 };

/// Where the rows of a batch lie (see the header comment): rows 0..rows-1 of a buffer laid out
/// for capacity rows (rows <= capacity).
struct batch_extent {
    std::size_t rows = 0, capacity = 0;
};

/// The feature map `x` of shape `s` as a C x (H*W) matrix (what pooled_head reads).
[[nodiscard]] inline cmap pooled(const float* x, shape3 s) noexcept { return {x, s.c, static_cast<Eigen::Index>(s.positions())}; }

inline void apply(activation a, float* x, std::size_t n) noexcept {
    Eigen::Map<Eigen::ArrayXf> v(x, static_cast<Eigen::Index>(n));
    if (a == activation::relu) v = v.max(0.f);
    if (a == activation::relu6) v = v.max(0.f).min(6.f);
}

/// Output positions per GEMM of a batched k x k convolution (conv2d::run_batch): the im2col
/// columns of that many positions' worth of rows at a time, so that they stay in cache. One
/// GEMM over every row of a wide batch writes and rereads columns far larger than the caches
/// (64 CIFAR-10 rows at 32x32: 75 MB), which measured 1.4x slower than this grouping; at
/// 1024 a small map still gets wide products (16 rows of 8x8) and a 32x32 map is its own GEMM.
inline constexpr std::size_t batch_gemm_columns = 1024;

/// Rows of maps of `plane` positions per group of batch_gemm_columns (at least 1, at most rows).
[[nodiscard]] inline std::size_t batch_group_rows(std::size_t plane, std::size_t rows) noexcept {
    return std::clamp<std::size_t>(batch_gemm_columns / std::max<std::size_t>(plane, 1), 1, std::max<std::size_t>(rows, 1));
}

/// Rows of the left operand per product in product_by_row_panels (see there).
inline constexpr Eigen::Index product_panel_rows = 256;

/// dst = lhs * rhs, as products of panels of product_panel_rows rows of lhs. Eigen packs a kc x
/// rows block of lhs, and when it blocks a long inner dimension while rhs is narrow (a head's
/// 1280 x 960 layer on a few rows) it packs every row at once: ~2.5 MB, over
/// EIGEN_STACK_ALLOCATION_LIMIT, so a malloc. 256-row panels keep the block under 1 MB.
template <class Dst, class Lhs, class Rhs>
void product_by_row_panels(Eigen::MatrixBase<Dst>& dst, const Eigen::MatrixBase<Lhs>& lhs,
                           const Eigen::MatrixBase<Rhs>& rhs) noexcept {
    for (Eigen::Index i = 0; i < lhs.rows(); i += product_panel_rows) {
        const Eigen::Index n = std::min(product_panel_rows, lhs.rows() - i);
        dst.middleRows(i, n).noalias() = lhs.middleRows(i, n) * rhs;
    }
}

/// The maps of rows 0..rows-1 of the batch `x` of shape `s` as one C x (rows*H*W) matrix.
[[nodiscard]] inline cbmap batch_matrix(const float* x, shape3 s, batch_extent e) noexcept {
    return {x, s.c, static_cast<Eigen::Index>(e.rows * s.positions()),
            Eigen::OuterStride<>(static_cast<Eigen::Index>(e.capacity * s.positions()))};
}
[[nodiscard]] inline mbmap batch_matrix(float* x, shape3 s, batch_extent e) noexcept {
    return {x, s.c, static_cast<Eigen::Index>(e.rows * s.positions()),
            Eigen::OuterStride<>(static_cast<Eigen::Index>(e.capacity * s.positions()))};
}

/// Row r's map in the batch `x` (laid out for `capacity` rows) as the C x (H*W) matrix pooled
/// heads read, like pooled() of a single map.
[[nodiscard]] inline cbmap batch_row(const float* x, shape3 s, std::size_t capacity, std::size_t r) noexcept {
    return {x + r * s.positions(), s.c, static_cast<Eigen::Index>(s.positions()),
            Eigen::OuterStride<>(static_cast<Eigen::Index>(capacity * s.positions()))};
}

/// Writes the single CHW map `chw` of shape s as row r of the batch `out` (laid out for capacity rows).
inline void batch_put_row(const float* chw, shape3 s, std::size_t capacity, std::size_t r, float* out) noexcept {
    const std::size_t plane = s.positions();
    for (std::size_t c = 0; c < static_cast<std::size_t>(s.c); ++c)
        std::copy_n(chw + c * plane, plane, out + (c * capacity + r) * plane);
}

/// Copies the listed rows of the batch `x` (laid out for capacity rows) into `out` as a dense
/// batch of list.size() rows (row list[j] becomes row j, out laid out for list.size() rows).
inline void batch_gather(const float* x, shape3 s, std::size_t capacity, std::span<const std::size_t> list,
                         float* out) noexcept {
    const std::size_t plane = s.positions(), m = list.size();
    for (std::size_t c = 0; c < static_cast<std::size_t>(s.c); ++c)
        for (std::size_t j = 0; j < m; ++j) std::copy_n(x + (c * capacity + list[j]) * plane, plane, out + (c * m + j) * plane);
}

/// Keeps the listed rows (strictly increasing) of the batch `x` in place: row keep[j] becomes
/// row j; the layout (capacity) stays, the dropped rows' values are overwritten or left.
inline void batch_compact(float* x, shape3 s, std::size_t capacity, std::span<const std::size_t> keep) noexcept {
    const std::size_t plane = s.positions();
    // keep[j] >= j, and a kept row j moved at step j' <= j: writing plane j never loses a kept row.
    for (std::size_t c = 0; c < static_cast<std::size_t>(s.c); ++c) {
        float* xc = x + c * capacity * plane;
        for (std::size_t j = 0; j < keep.size(); ++j)
            if (keep[j] != j) std::copy_n(xc + keep[j] * plane, plane, xc + j * plane);
    }
}

/// out = act(a + b), elementwise over n values (out may alias a or b).
inline void add_act(const float* a, const float* b, float* out, std::size_t n, activation act) noexcept {
    const auto len = static_cast<Eigen::Index>(n);
    Eigen::Map<Eigen::ArrayXf>(out, len) = Eigen::Map<const Eigen::ArrayXf>(a, len) + Eigen::Map<const Eigen::ArrayXf>(b, len);
    apply(act, out, n);
}

/// out = act(a + b) on rows 0..rows-1 of three batches of shape s (out may alias a or b).
inline void batch_add_act(const float* a, const float* b, float* out, shape3 s, batch_extent e, activation act) noexcept {
    const std::size_t run = e.rows * s.positions(), stride = e.capacity * s.positions();
    for (std::size_t c = 0; c < static_cast<std::size_t>(s.c); ++c)
        add_act(a + c * stride, b + c * stride, out + c * stride, run, act);
}

/// Average pooling with a k x k window and stride k, no padding (PyTorch's avg_pool2d(x, k)):
/// out is C x (H/k) x (W/k), rows and columns past the last full window are dropped.
inline shape3 avg_pool(const float* x, shape3 in, int k, float* out) noexcept {
    const shape3 o{in.c, in.h / k, in.w / k};
    const float scale = 1.f / static_cast<float>(k * k);
    for (int c = 0; c < in.c; ++c) {
        const float* xc = x + static_cast<std::size_t>(c) * in.positions();
        float* yc = out + static_cast<std::size_t>(c) * o.positions();
        for (int y = 0; y < o.h; ++y)
            for (int xo = 0; xo < o.w; ++xo) {
                float acc = 0.f;
                for (int dy = 0; dy < k; ++dy)
                    for (int dx = 0; dx < k; ++dx)
                        acc += xc[static_cast<std::size_t>(y * k + dy) * static_cast<std::size_t>(in.w) +
                                  static_cast<std::size_t>(xo * k + dx)];
                yc[static_cast<std::size_t>(y) * static_cast<std::size_t>(o.w) + static_cast<std::size_t>(xo)] = acc * scale;
            }
    }
    return o;
}

/// A 2-D convolution with bias and fused activation.
class conv2d {
public:
    conv2d() = default;

    /// weight: out x (in/groups * k * k), the row-major flattening of PyTorch's [out, in/groups, k, k].
    /// groups must be 1 or equal to in == out (depthwise). Throws earlyexit::error naming the bad value.
    conv2d(rmatrix weight, Eigen::VectorXf bias, int in_channels, int kernel, int stride, int padding, int groups,
           activation act)
        : w_(std::move(weight)), b_(std::move(bias)), in_(in_channels), k_(kernel), stride_(stride), pad_(padding),
          groups_(groups), act_(act) {
        if (in_ <= 0 || k_ <= 0 || stride_ <= 0 || pad_ < 0)
            earlyexit::fail("conv2d: in_channels {}, kernel {}, stride {}, padding {}: must be positive (padding >= 0)", in_,
                         k_, stride_, pad_);
        if (groups_ != 1 && !(groups_ == in_ && w_.rows() == in_))
            earlyexit::fail("conv2d: groups {} unsupported: only 1 or depthwise (groups == in == out == {})", groups_, in_);
        if (w_.cols() != static_cast<Eigen::Index>(in_ / groups_) * k_ * k_)
            earlyexit::fail("conv2d: weight has {} columns, expected in/groups*k*k = {}", w_.cols(), in_ / groups_ * k_ * k_);
        if (b_.size() != w_.rows())
            earlyexit::fail("conv2d: bias has {} entries for {} output channels", b_.size(), w_.rows());
    }

    [[nodiscard]] int in_channels() const noexcept { return in_; }
    [[nodiscard]] int out_channels() const noexcept { return static_cast<int>(w_.rows()); }
    [[nodiscard]] bool depthwise() const noexcept { return groups_ != 1; }
    /// The layer's parameters (for another backend of the same layer, e.g. dnnl_model.hpp).
    [[nodiscard]] const rmatrix& weight() const noexcept { return w_; }
    [[nodiscard]] const Eigen::VectorXf& bias() const noexcept { return b_; }
    [[nodiscard]] int kernel() const noexcept { return k_; }
    [[nodiscard]] int stride() const noexcept { return stride_; }
    [[nodiscard]] int padding() const noexcept { return pad_; }
    [[nodiscard]] activation act() const noexcept { return act_; }

    /// Output shape for an input shape; throws when the channels do not match or nothing is left.
    [[nodiscard]] shape3 output_shape(shape3 in) const {
        if (in.c != in_) earlyexit::fail("conv2d: input has {} channels, the layer expects {}", in.c, in_);
        const int oh = (in.h + 2 * pad_ - k_) / stride_ + 1, ow = (in.w + 2 * pad_ - k_) / stride_ + 1;
        if (in.h + 2 * pad_ < k_ || in.w + 2 * pad_ < k_ || oh <= 0 || ow <= 0)
            earlyexit::fail("conv2d: input {}x{} too small for kernel {} with padding {}", in.h, in.w, k_, pad_);
        return {out_channels(), oh, ow};
    }

    /// Workspace floats operator() needs for this input shape (im2col columns; 0 when not needed).
    [[nodiscard]] std::size_t workspace_size(shape3 in) const {
        const shape3 o = output_shape(in);
        if (depthwise() || is_pointwise()) return 0;
        return static_cast<std::size_t>(in_) * static_cast<std::size_t>(k_ * k_) * o.positions();
    }

    /// Multiply-accumulates of one application to this input shape.
    [[nodiscard]] double macs(shape3 in) const {
        return static_cast<double>(w_.size()) * static_cast<double>(output_shape(in).positions());
    }

    /// out (output_shape(in) floats) = act(conv(x) + bias). ws has workspace_size(in) floats.
    /// out must not alias x.
    void operator()(const float* x, shape3 in, float* out, std::span<float> ws) const noexcept {
        const int oh = (in.h + 2 * pad_ - k_) / stride_ + 1, ow = (in.w + 2 * pad_ - k_) / stride_ + 1;
        const auto positions = static_cast<Eigen::Index>(oh) * ow;
        mmap y(out, w_.rows(), positions);
        if (depthwise()) {
            for (int c = 0; c < in.c; ++c) {
                const auto ch = static_cast<std::size_t>(c);
                depthwise_plane(x + ch * in.positions(), in, c, out + ch * static_cast<std::size_t>(positions), oh, ow);
            }
        } else if (is_pointwise()) {
            y.noalias() = w_ * cmap(x, in_, positions);
        } else {
            EARLYEXIT_ASSERT(ws.size() >= static_cast<std::size_t>(w_.cols() * positions));
            im2col(x, in, {1, 1}, ws.data(), oh, ow);
            y.noalias() = w_ * cmap(ws.data(), w_.cols(), positions);
        }
        y.colwise() += b_;
        apply(act_, out, static_cast<std::size_t>(y.size()));
    }

    /// Workspace floats run_batch needs for `rows` rows of this input shape (the im2col columns
    /// of a group of rows, see batch_gemm_columns; 0 when not needed).
    [[nodiscard]] std::size_t batch_workspace_size(shape3 in, std::size_t rows) const {
        return workspace_size(in) * batch_group_rows(output_shape(in).positions(), rows);
    }

    /// The layer on rows 0..e.rows-1 of the batch x (input shape `in`; see the header comment)
    /// into the batch out (output_shape(in), laid out for the same e.capacity): a 1x1 conv is
    /// one GEMM over every row, a k x k conv one GEMM per group of rows (batch_gemm_columns
    /// positions) on their im2col columns, a depthwise one runs per channel and row.
    /// ws has batch_workspace_size(in, e.rows) floats; out must not alias x.
    void run_batch(const float* x, shape3 in, batch_extent e, float* out, std::span<float> ws) const noexcept {
        const int oh = (in.h + 2 * pad_ - k_) / stride_ + 1, ow = (in.w + 2 * pad_ - k_) / stride_ + 1;
        const shape3 o{out_channels(), oh, ow};
        const std::size_t plane = o.positions();
        mbmap y = batch_matrix(out, o, e);
        if (depthwise()) {
            for (std::size_t c = 0; c < static_cast<std::size_t>(in.c); ++c)
                for (std::size_t r = 0; r < e.rows; ++r)
                    depthwise_plane(x + (c * e.capacity + r) * in.positions(), in, static_cast<int>(c),
                                    out + (c * e.capacity + r) * plane, oh, ow);
        } else if (is_pointwise()) {
            y.noalias() = w_ * batch_matrix(x, in, e);
        } else {
            // The im2col columns of a group of rows at a time, so that they stay in cache.
            const std::size_t g = batch_group_rows(plane, e.rows);
            for (std::size_t r0 = 0; r0 < e.rows; r0 += g) {
                const std::size_t n = std::min(g, e.rows - r0);
                const auto cols = static_cast<Eigen::Index>(n * plane);
                EARLYEXIT_ASSERT(ws.size() >= static_cast<std::size_t>(w_.cols() * cols));
                im2col(x + r0 * in.positions(), in, {n, e.capacity}, ws.data(), oh, ow);
                y.middleCols(static_cast<Eigen::Index>(r0 * plane), cols).noalias() = w_ * cmap(ws.data(), w_.cols(), cols);
            }
        }
        y.colwise() += b_;
        for (std::size_t c = 0; c < static_cast<std::size_t>(o.c); ++c) apply(act_, out + c * e.capacity * plane, e.rows * plane);
    }

private:
    [[nodiscard]] bool is_pointwise() const noexcept { return k_ == 1 && stride_ == 1 && pad_ == 0; }


    /// Output columns x whose input column x*stride + kx - pad lies in [0, w): [first, last).
    [[nodiscard]] std::pair<int, int> valid_range(int kx, int w, int ow) const noexcept {
        const int off = kx - pad_;
        int first = 0;
        while (first < ow && first * stride_ + off < 0) ++first;
        int last = ow;
        while (last > first && (last - 1) * stride_ + off >= w) --last;
        return {first, last};
    }

    /// im2col of rows 0..e.rows-1 of the batch x (a single map: e = {1, 1}): column block r of
    /// row (c*k + ky)*k + kx holds tap (ky, kx) of channel c of row r, so the columns are
    /// (in*k*k) x (rows*oh*ow) and row r's output positions are columns [r*oh*ow, (r+1)*oh*ow).
    void im2col(const float* x, shape3 in, batch_extent e, float* cols, int oh, int ow) const noexcept {
        const std::size_t plane = static_cast<std::size_t>(oh) * static_cast<std::size_t>(ow);
        float* row = cols;
        for (int c = 0; c < in.c; ++c) {
            for (int ky = 0; ky < k_; ++ky) {
                for (int kx = 0; kx < k_; ++kx) {
                    const auto [x0, x1] = valid_range(kx, in.w, ow);
                    for (std::size_t r = 0; r < e.rows; ++r, row += plane) {
                        const float* xc = x + (static_cast<std::size_t>(c) * e.capacity + r) * in.positions();
                        im2col_plane(xc, in, ky, kx, x0, x1, row, oh, ow);
                    }
                }
            }
        }
    }

    /// One im2col row block: tap (ky, kx) of the channel plane xc at every output position.
    void im2col_plane(const float* xc, shape3 in, int ky, int kx, int x0, int x1, float* out, int oh, int ow) const noexcept {
        for (int oy = 0; oy < oh; ++oy) {
            float* dst = out + static_cast<std::size_t>(oy) * static_cast<std::size_t>(ow);
            const int iy = oy * stride_ + ky - pad_;
            if (iy < 0 || iy >= in.h) {
                std::fill(dst, dst + ow, 0.f);
                continue;
            }
            const float* src = xc + static_cast<std::size_t>(iy) * static_cast<std::size_t>(in.w) + (kx - pad_);
            std::fill(dst, dst + x0, 0.f);
            if (stride_ == 1) {
                std::copy(src + x0, src + x1, dst + x0);
            } else {
                for (int ox = x0; ox < x1; ++ox) dst[ox] = src[ox * stride_];
            }
            std::fill(dst + x1, dst + ow, 0.f);
        }
    }

    /// Depthwise conv of channel c's plane xc into the output plane yc (no bias).
    void depthwise_plane(const float* xc, shape3 in, int c, float* yc, int oh, int ow) const noexcept {
        const std::size_t plane = static_cast<std::size_t>(oh) * static_cast<std::size_t>(ow);
        std::fill(yc, yc + plane, 0.f);
        for (int ky = 0; ky < k_; ++ky) {
            for (int kx = 0; kx < k_; ++kx) {
                const float wv = w_(c, ky * k_ + kx);
                const auto [x0, x1] = valid_range(kx, in.w, ow);
                for (int oy = 0; oy < oh; ++oy) {
                    const int iy = oy * stride_ + ky - pad_;
                    if (iy < 0 || iy >= in.h) continue;
                    const float* src = xc + static_cast<std::size_t>(iy) * static_cast<std::size_t>(in.w) + (kx - pad_);
                    float* dst = yc + static_cast<std::size_t>(oy) * static_cast<std::size_t>(ow);
                    if (stride_ == 1) {
                        for (int ox = x0; ox < x1; ++ox) dst[ox] += wv * src[ox];
                    } else {
                        for (int ox = x0; ox < x1; ++ox) dst[ox] += wv * src[ox * stride_];
                    }
                }
            }
        }
    }

    rmatrix w_;
    Eigen::VectorXf b_;
    int in_ = 0, k_ = 1, stride_ = 1, pad_ = 0, groups_ = 1;
    activation act_ = activation::none;
};

}  // namespace earlyexit::demo::nn
