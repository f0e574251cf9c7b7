#pragma once
// pooled_head: global average pooling over a feature map, then a linear layer.

#include <concepts>
#include <cstddef>
#include <span>
#include <utility>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "concept.hpp"
#include "linear.hpp"

namespace earlyexit {

/// Global average pooling over a feature map, then a linear layer. The input is an Eigen matrix
/// with one row per channel and one column per spatial position (any storage order), so it reads
/// a CHW tensor mapped as a row-major C x (H*W) matrix as well as an HWC one mapped column-major.
/// `positions` (H*W) is only used for the declared cost.
template <std::floating_point Scalar>
class pooled_head {
public:
    using scalar_type = Scalar;

    /// Throws earlyexit::error when positions is 0.
    pooled_head(linear_head<Scalar> linear, std::size_t positions) : linear_(std::move(linear)), positions_(positions) {
        if (positions_ == 0) earlyexit::fail("pooled_head: positions (H*W) must be positive, got 0");
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return linear_.num_classes(); }
    /// Channels expected in the feature map.
    [[nodiscard]] std::size_t channels() const noexcept { return linear_.input_size(); }
    [[nodiscard]] std::size_t input_size() const noexcept { return channels() * positions_; }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return channels(); }
    [[nodiscard]] double macs() const noexcept {
        return static_cast<double>(channels() * positions_) + linear_.macs();
    }

    template <class Derived>
    void operator()(const Eigen::MatrixBase<Derived>& fmap, std::span<Scalar> logits,
                    std::span<Scalar> ws) const noexcept {
        EARLYEXIT_ASSERT(static_cast<std::size_t>(fmap.rows()) == channels());
        EARLYEXIT_ASSERT(ws.size() >= channels());
        Eigen::Map<Eigen::Matrix<Scalar, Eigen::Dynamic, 1>> pooled(ws.data(), fmap.rows());
        pooled.noalias() = fmap.rowwise().mean();
        linear_(pooled, logits);
    }

private:
    linear_head<Scalar> linear_;
    std::size_t positions_;
};

}  // namespace earlyexit
