#pragma once
// callable_head and make_head: a head from any callable.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>

#include "../error.hpp"
#include "concept.hpp"

namespace earlyexit {

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

/// A callable head's shape and cost, named: make_head(f, {.classes = 10, .macs = 5120}).
struct head_spec {
    std::size_t classes = 0;    ///< logits it writes (> 0)
    double macs = 0.0;          ///< declared cost (finite, >= 0)
    std::size_t workspace = 0;  ///< scratch scalars it needs
};

/// make_head(f, classes[, macs[, workspace]]): a head from a callable.
template <class F>
[[nodiscard]] callable_head<std::decay_t<F>> make_head(F&& f, std::size_t classes, double macs = 0.0,
                                                       std::size_t workspace = 0) {
    return callable_head<std::decay_t<F>>(std::forward<F>(f), classes, macs, workspace);
}

/// make_head(f, {.classes = C, .macs = M, .workspace = W}): the same, with named arguments.
template <class F>
[[nodiscard]] callable_head<std::decay_t<F>> make_head(F&& f, const head_spec& spec) {
    return callable_head<std::decay_t<F>>(std::forward<F>(f), spec.classes, spec.macs, spec.workspace);
}

}  // namespace earlyexit
