#pragma once
// linear_head: logits = W x + b, with PyTorch's weight layout.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <ranges>
#include <span>
#include <type_traits>
#include <utility>

#include <Eigen/Core>

#include "../config.hpp"
#include "../error.hpp"
#include "concept.hpp"

namespace earlyexit {

namespace detail {

template <class D>
concept eigen_dense = std::derived_from<D, Eigen::DenseBase<D>>;

template <class Scalar, int Rows, int Cols>
using row_major_matrix =
    Eigen::Matrix<Scalar, Rows, Cols, (Cols == 1 && Rows != 1) ? Eigen::ColMajor : Eigen::RowMajor>;

template <class T>
std::size_t index_of_non_finite(const T& m) {
    for (Eigen::Index i = 0; i < m.size(); ++i)
        if (!std::isfinite(static_cast<double>(m.data()[i]))) return static_cast<std::size_t>(i);
    return static_cast<std::size_t>(m.size());
}

}  // namespace detail

/// logits = W x + b. W is Out x In, stored row-major like PyTorch's nn.Linear weight, so
/// exported weights map without a transpose. In and Out may be fixed (Eigen compile-time sizes,
/// no heap at all) or Eigen::Dynamic. The input is any Eigen vector expression of size In, or a
/// contiguous range of scalars. Cost: In*Out multiply-adds (+ Out for the bias).
template <std::floating_point Scalar, int In = Eigen::Dynamic, int Out = Eigen::Dynamic>
class linear_head {
public:
    using scalar_type = Scalar;
    using weight_type = detail::row_major_matrix<Scalar, Out, In>;
    using bias_type = Eigen::Matrix<Scalar, Out, 1>;

    /// Throws earlyexit::error when the shapes disagree, a size is 0 or a weight is not finite.
    linear_head(weight_type weight, bias_type bias) : w_(std::move(weight)), b_(std::move(bias)) {
        if (w_.rows() == 0 || w_.cols() == 0)
            earlyexit::fail("linear_head: weight is {}x{}; both sizes must be positive", w_.rows(), w_.cols());
        if (b_.size() != w_.rows())
            earlyexit::fail("linear_head: bias has {} entries but weight has {} rows (classes)", b_.size(),
                         w_.rows());
        if (const auto i = detail::index_of_non_finite(w_); i != static_cast<std::size_t>(w_.size()))
            earlyexit::fail("linear_head: weight entry {} is {}, not finite", i, w_.data()[i]);
        if (const auto i = detail::index_of_non_finite(b_); i != static_cast<std::size_t>(b_.size()))
            earlyexit::fail("linear_head: bias entry {} is {}, not finite", i, b_.data()[i]);
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return static_cast<std::size_t>(w_.rows()); }
    [[nodiscard]] std::size_t input_size() const noexcept { return static_cast<std::size_t>(w_.cols()); }
    [[nodiscard]] double macs() const noexcept { return static_cast<double>(w_.size() + b_.size()); }
    [[nodiscard]] const weight_type& weight() const noexcept { return w_; }
    [[nodiscard]] const bias_type& bias() const noexcept { return b_; }

    /// Precondition: x has input_size() entries, logits has num_classes() entries.
    template <class Derived>
    void operator()(const Eigen::MatrixBase<Derived>& x, std::span<Scalar> logits) const noexcept {
        EARLYEXIT_ASSERT(static_cast<std::size_t>(x.size()) == input_size());
        EARLYEXIT_ASSERT(logits.size() == num_classes());
        Eigen::Map<Eigen::Matrix<Scalar, Out, 1>> y(logits.data(), w_.rows());
        y.noalias() = w_ * x;
        y += b_;
    }

    /// The same from a contiguous range (std::vector, std::array, std::span).
    template <class Range>
        requires(!detail::eigen_dense<std::remove_cvref_t<Range>>) &&
                std::ranges::contiguous_range<Range> &&
                std::same_as<std::remove_cv_t<std::ranges::range_value_t<Range>>, Scalar>
    void operator()(const Range& x, std::span<Scalar> logits) const noexcept {
        (*this)(Eigen::Map<const Eigen::Matrix<Scalar, In, 1>>(std::ranges::data(x), w_.cols()), logits);
    }

private:
    weight_type w_;
    bias_type b_;
};

}  // namespace earlyexit
