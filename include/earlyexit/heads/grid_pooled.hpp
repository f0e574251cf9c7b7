#pragma once
// grid_pooled_head: pooling to a grid of cells (average, or mixed with max), then a linear layer.

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <utility>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "concept.hpp"
#include "linear.hpp"

namespace earlyexit {

/// Pools a feature map to grid x grid cells, then applies a linear layer: the head of
/// Shallow-Deep Networks (Kaya et al., 2019), which keeps coarse spatial layout and so makes
/// early exits stronger than global pooling does, for a few thousand extra MACs.
///
/// The input is the C x (H*W) matrix pooled_head reads (one row per channel, column y*W + x).
/// Cell (i, j) covers rows [i*H/grid, (i+1)*H/grid) and columns [j*W/grid, (j+1)*W/grid), so H
/// and W must be multiples of grid (then the cells are those of PyTorch's adaptive pooling).
/// A cell's value is its average or, with a max_weight w, w * max + (1 - w) * average ("mixed"
/// pooling). The linear layer reads the cells channel-major, c * grid^2 + i * grid + j: the
/// order of a flattened [C, grid, grid] tensor. grid 1 without max_weight is pooled_head.
template <std::floating_point Scalar>
class grid_pooled_head {
public:
    using scalar_type = Scalar;

    /// Throws earlyexit::error naming the value when the sizes do not fit together or
    /// max_weight is outside [0, 1].
    grid_pooled_head(linear_head<Scalar> linear, std::size_t height, std::size_t width, std::size_t grid,
                     std::optional<Scalar> max_weight = std::nullopt)
        : linear_(std::move(linear)), height_(height), width_(width), grid_(grid), max_weight_(max_weight) {
        if (grid_ == 0) earlyexit::fail("grid_pooled_head: grid must be positive, got 0");
        if (height_ == 0 || width_ == 0)
            earlyexit::fail("grid_pooled_head: the feature map must not be empty, got {}x{}", height_, width_);
        if (height_ % grid_ != 0 || width_ % grid_ != 0)
            earlyexit::fail("grid_pooled_head: grid {} must divide the {}x{} feature map", grid_, height_, width_);
        if (linear_.input_size() % (grid_ * grid_) != 0)
            earlyexit::fail("grid_pooled_head: the linear layer reads {} features, not a multiple of grid^2 = {}",
                         linear_.input_size(), grid_ * grid_);
        if (max_weight_ && !(*max_weight_ >= Scalar(0) && *max_weight_ <= Scalar(1)))
            earlyexit::fail("grid_pooled_head: max_weight must be in [0, 1], got {}", *max_weight_);
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return linear_.num_classes(); }
    /// Channels expected in the feature map.
    [[nodiscard]] std::size_t channels() const noexcept { return linear_.input_size() / (grid_ * grid_); }
    [[nodiscard]] std::size_t grid() const noexcept { return grid_; }
    [[nodiscard]] std::optional<Scalar> max_weight() const noexcept { return max_weight_; }
    /// The linear layer over the pooled features (channel-major: feature c * grid^2 + i * grid + j).
    [[nodiscard]] const linear_head<Scalar>& linear() const noexcept { return linear_; }
    /// The feature map's height and width.
    [[nodiscard]] std::size_t height() const noexcept { return height_; }
    [[nodiscard]] std::size_t width() const noexcept { return width_; }
    [[nodiscard]] std::size_t input_size() const noexcept { return channels() * height_ * width_; }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return linear_.input_size(); }
    /// The linear layer's MACs plus one operation per input value for the average (two with
    /// mixed pooling: the max as well).
    [[nodiscard]] double macs() const noexcept {
        return static_cast<double>(input_size() * (max_weight_ ? 2 : 1)) + linear_.macs();
    }

    template <class Derived>
    void operator()(const Eigen::MatrixBase<Derived>& fmap, std::span<Scalar> logits,
                    std::span<Scalar> ws) const noexcept {
        EARLYEXIT_ASSERT(static_cast<std::size_t>(fmap.rows()) == channels());
        EARLYEXIT_ASSERT(static_cast<std::size_t>(fmap.cols()) == height_ * width_);
        EARLYEXIT_ASSERT(ws.size() >= workspace_size());
        const Eigen::Index ch = static_cast<Eigen::Index>(height_ / grid_), cw = static_cast<Eigen::Index>(width_ / grid_);
        const Eigen::Index g = static_cast<Eigen::Index>(grid_), w = static_cast<Eigen::Index>(width_);
        const Scalar count = static_cast<Scalar>(ch * cw);
        Scalar* out = ws.data();
        for (Eigen::Index c = 0; c < fmap.rows(); ++c)
            for (Eigen::Index i = 0; i < g; ++i)
                for (Eigen::Index j = 0; j < g; ++j) {
                    Scalar sum(0), top = fmap.coeff(c, i * ch * w + j * cw);
                    for (Eigen::Index y = i * ch; y < (i + 1) * ch; ++y)
                        for (Eigen::Index x = j * cw; x < (j + 1) * cw; ++x) {
                            const Scalar v = fmap.coeff(c, y * w + x);
                            sum += v;
                            top = v > top ? v : top;
                        }
                    const Scalar avg = sum / count;
                    *out++ = max_weight_ ? *max_weight_ * top + (Scalar(1) - *max_weight_) * avg : avg;
                }
        linear_(Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>(ws.data(), static_cast<Eigen::Index>(workspace_size())),
                logits);
    }

private:
    linear_head<Scalar> linear_;
    std::size_t height_, width_, grid_;
    std::optional<Scalar> max_weight_;
};

}  // namespace earlyexit
