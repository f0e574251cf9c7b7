#pragma once
// any_head: a type-erased head for networks assembled at run time.

#include <concepts>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "concept.hpp"

namespace earlyexit {

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
