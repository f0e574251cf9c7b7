#pragma once
// The exit_head concept, and the helpers that read a head's optional parts.
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

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>

namespace earlyexit {

/// H is an exit head for a stage output of type Input and logits of type Scalar: it names its class
/// count and writes that many logits, with or without a workspace span (see above).
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

}  // namespace earlyexit
