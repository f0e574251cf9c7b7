#pragma once
// Exit heads: what turns one stage's output into class logits.
//
// A head is any type H with
//   std::size_t num_classes() const
//   void operator()(const Input&, std::span<Scalar> logits) const            (simple heads)
//   void operator()(const Input&, std::span<Scalar> logits,
//                   std::span<Scalar> workspace) const                        (heads with scratch)
// and, optionally, `double macs() const` (declared cost), `std::size_t input_size() const`
// (checked against the stage's declared output size) and `std::size_t workspace_size() const`
// (scalars of scratch the runner preallocates for it). Heads are const and keep no per-call
// state, so one network can be shared by many runners on many threads.
//
// Shipped heads: linear_head, mlp_head, pooled_head, grid_pooled_head, callable_head (any callable), and
// projected_head (feeds a head a part of a larger state).

#include <concepts>
#include <cstddef>
#include <cmath>
#include <functional>
#include <optional>
#include <ranges>
#include <span>
#include <type_traits>
#include <utility>
#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "config.hpp"
#include "error.hpp"

namespace earlyexit {

// ---------------------------------------------------------------------------------------------
// The concept and the optional parts.

template <class H, class Input, class Scalar>
concept exit_head =
    requires(const H& h) {
        { h.num_classes() } -> std::convertible_to<std::size_t>;
    } && (std::invocable<const H&, const Input&, std::span<Scalar>> ||
          std::invocable<const H&, const Input&, std::span<Scalar>, std::span<Scalar>>);

namespace detail {

template <class H>
concept head_with_macs = requires(const H& h) {
    { h.macs() } -> std::convertible_to<double>;
};
template <class H>
concept head_with_input_size = requires(const H& h) {
    { h.input_size() } -> std::convertible_to<std::size_t>;
};
template <class H>
concept head_with_workspace = requires(const H& h) {
    { h.workspace_size() } -> std::convertible_to<std::size_t>;
};

/// The head's declared input size (input_size() or input_size_hint()), if any.
template <class H>
std::optional<std::size_t> declared_input_size(const H& h) noexcept {
    if constexpr (head_with_input_size<H>) return static_cast<std::size_t>(h.input_size());
    else if constexpr (requires { { h.input_size_hint() } -> std::convertible_to<std::optional<std::size_t>>; })
        return h.input_size_hint();
    else return std::nullopt;
}

/// Calls a head in whichever form it supports.
template <class H, class Input, class Scalar>
void invoke_head(const H& h, const Input& x, std::span<Scalar> logits, std::span<Scalar> ws) noexcept {
    if constexpr (std::invocable<const H&, const Input&, std::span<Scalar>, std::span<Scalar>>)
        h(x, logits, ws);
    else
        h(x, logits);
}

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

/// Declared MACs of a head, when it declares them; 0 otherwise.
template <class H>
[[nodiscard]] double head_macs(const H& h) noexcept {
    if constexpr (detail::head_with_macs<H>) return static_cast<double>(h.macs());
    else return 0.0;
}

/// Scratch scalars a head needs from the runner; 0 when it declares none.
template <class H>
[[nodiscard]] std::size_t head_workspace_size(const H& h) noexcept {
    if constexpr (detail::head_with_workspace<H>) return static_cast<std::size_t>(h.workspace_size());
    else return 0;
}

// ---------------------------------------------------------------------------------------------
// linear_head

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

// ---------------------------------------------------------------------------------------------
// mlp_head

/// A small MLP: hidden linear layers with ReLU, then a linear layer to the classes. Layers are
/// (weight Out x In row-major, bias Out); consecutive shapes must chain. Scratch for the hidden
/// activations comes from the runner (workspace_size() scalars), so the head stays const.
template <std::floating_point Scalar>
class mlp_head {
public:
    using scalar_type = Scalar;
    using layer = linear_head<Scalar>;

    /// Throws earlyexit::error when there is no layer or two consecutive layers do not chain.
    explicit mlp_head(std::vector<layer> layers) : layers_(std::move(layers)) {
        if (layers_.empty()) earlyexit::fail("mlp_head: needs at least one layer, got 0");
        for (std::size_t i = 1; i < layers_.size(); ++i)
            if (layers_[i].input_size() != layers_[i - 1].num_classes())
                earlyexit::fail("mlp_head: layer {} expects {} inputs but layer {} gives {} outputs", i,
                             layers_[i].input_size(), i - 1, layers_[i - 1].num_classes());
        for (std::size_t i = 0; i + 1 < layers_.size(); ++i) widest_ = std::max(widest_, layers_[i].num_classes());
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return layers_.back().num_classes(); }
    [[nodiscard]] std::size_t input_size() const noexcept { return layers_.front().input_size(); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return 2 * widest_; }
    [[nodiscard]] double macs() const noexcept {
        double m = 0;
        for (const auto& l : layers_) m += l.macs();
        return m;
    }
    [[nodiscard]] const std::vector<layer>& layers() const noexcept { return layers_; }

    template <class Input>
    void operator()(const Input& x, std::span<Scalar> logits, std::span<Scalar> ws) const noexcept {
        EARLYEXIT_ASSERT(ws.size() >= workspace_size());
        if (layers_.size() == 1) {
            layers_[0](x, logits);
            return;
        }
        std::span<Scalar> cur = ws.first(layers_[0].num_classes());
        layers_[0](x, cur);
        relu(cur);
        for (std::size_t i = 1; i + 1 < layers_.size(); ++i) {
            // Ping-pong between the two halves of the workspace.
            const std::size_t half = (i % 2 == 1) ? widest_ : 0;
            std::span<Scalar> next = ws.subspan(half, layers_[i].num_classes());
            layers_[i](std::span<const Scalar>(cur), next);
            relu(next);
            cur = next;
        }
        layers_.back()(std::span<const Scalar>(cur), logits);
    }

private:
    static void relu(std::span<Scalar> v) noexcept {
        for (auto& x : v) x = x > Scalar(0) ? x : Scalar(0);
    }

    std::vector<layer> layers_;
    std::size_t widest_ = 0;
};

// ---------------------------------------------------------------------------------------------
// pooled_head

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

// ---------------------------------------------------------------------------------------------
// grid_pooled_head

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

// ---------------------------------------------------------------------------------------------
// callable_head

/// A head from any callable f(input, logits) or f(input, logits, workspace), with the class
/// count, declared MACs and workspace given here. The callable must not throw.
template <class F>
class callable_head {
public:
    callable_head(F f, std::size_t classes, double macs = 0.0, std::size_t workspace = 0)
        : f_(std::move(f)), classes_(classes), macs_(macs), workspace_(workspace) {
        if (classes_ == 0) earlyexit::fail("callable_head: num_classes must be positive, got 0");
        if (!(macs_ >= 0.0) || !std::isfinite(macs_))
            earlyexit::fail("callable_head: macs must be finite and >= 0, got {}", macs_);
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return classes_; }
    [[nodiscard]] double macs() const noexcept { return macs_; }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return workspace_; }

    template <class Input, class Scalar>
        requires std::invocable<const F&, const Input&, std::span<Scalar>, std::span<Scalar>> ||
                 std::invocable<const F&, const Input&, std::span<Scalar>>
    void operator()(const Input& x, std::span<Scalar> logits, std::span<Scalar> ws) const noexcept {
        if constexpr (std::invocable<const F&, const Input&, std::span<Scalar>, std::span<Scalar>>)
            f_(x, logits, ws);
        else
            f_(x, logits);
    }

private:
    F f_;
    std::size_t classes_;
    double macs_;
    std::size_t workspace_;
};

/// make_head(f, classes[, macs[, workspace]]): a head from a callable.
template <class F>
[[nodiscard]] callable_head<std::decay_t<F>> make_head(F&& f, std::size_t classes, double macs = 0.0,
                                                       std::size_t workspace = 0) {
    return callable_head<std::decay_t<F>>(std::forward<F>(f), classes, macs, workspace);
}

// ---------------------------------------------------------------------------------------------
// projected_head

/// Runs `head` on `projection(state)`: attaches a head that reads, say, an Eigen vector to a
/// network whose state is a larger struct. The projection must return a reference or a cheap
/// view (it runs on the hot path) and must not throw.
template <class Head, class Projection>
class projected_head {
public:
    projected_head(Head head, Projection projection) : head_(std::move(head)), proj_(std::move(projection)) {}

    [[nodiscard]] std::size_t num_classes() const noexcept { return static_cast<std::size_t>(head_.num_classes()); }
    [[nodiscard]] double macs() const noexcept { return head_macs(head_); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return head_workspace_size(head_); }
    [[nodiscard]] std::size_t input_size() const noexcept
        requires detail::head_with_input_size<Head>
    {
        return head_.input_size();
    }
    [[nodiscard]] const Head& inner() const noexcept { return head_; }

    template <class Input, class Scalar>
        requires std::invocable<const Projection&, const Input&>
    void operator()(const Input& x, std::span<Scalar> logits, std::span<Scalar> ws) const noexcept {
        decltype(auto) part = proj_(x);
        detail::invoke_head(head_, part, logits, ws);
    }

private:
    Head head_;
    Projection proj_;
};

/// project(head, projection): see projected_head.
template <class Head, class Projection>
[[nodiscard]] projected_head<std::decay_t<Head>, std::decay_t<Projection>> project(Head&& head,
                                                                                     Projection&& projection) {
    return {std::forward<Head>(head), std::forward<Projection>(projection)};
}

// ---------------------------------------------------------------------------------------------
// any_head

/// A type-erased head for networks assembled at run time (dynamic_network): one indirect call
/// per evaluation. Built from any exit_head for the given Input and Scalar.
template <class Input, std::floating_point Scalar>
class any_head {
public:
    template <class H>
        requires(!std::same_as<std::decay_t<H>, any_head>) && exit_head<std::decay_t<H>, Input, Scalar>
    any_head(H&& h)  // NOLINT(google-explicit-constructor): heads convert implicitly
        : classes_(static_cast<std::size_t>(h.num_classes())),
          macs_(head_macs(h)),
          workspace_(head_workspace_size(h)),
          input_size_(input_size_of(h)),
          call_([hh = std::decay_t<H>(std::forward<H>(h))](const Input& x, std::span<Scalar> logits,
                                                          std::span<Scalar> ws) {
              detail::invoke_head(hh, x, logits, ws);
          }) {}

    [[nodiscard]] std::size_t num_classes() const noexcept { return classes_; }
    [[nodiscard]] double macs() const noexcept { return macs_; }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return workspace_; }
    /// The wrapped head's input_size(), when it declares one.
    [[nodiscard]] std::optional<std::size_t> input_size_hint() const noexcept { return input_size_; }

    void operator()(const Input& x, std::span<Scalar> logits, std::span<Scalar> ws) const noexcept {
        call_(x, logits, ws);
    }

private:
    template <class H>
    static std::optional<std::size_t> input_size_of(const H& h) noexcept {
        return detail::declared_input_size(h);
    }

    std::size_t classes_;
    double macs_;
    std::size_t workspace_;
    std::optional<std::size_t> input_size_;
    std::function<void(const Input&, std::span<Scalar>, std::span<Scalar>)> call_;
};

}  // namespace earlyexit
