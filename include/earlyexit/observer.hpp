#pragma once
// Observers: optional, read-only taps on a run (trace recording, profiling, logging).
//
// An observer may have any of these members, each detected at compile time:
//   void on_stage(std::size_t position, double seconds, double macs) noexcept
//   void on_head(const exit_context<Scalar>&) noexcept
//   void on_exit(const exit_result<Scalar>&, const episode<Scalar>&) noexcept
// The runner times each stage separately only when on_stage exists; no_observer costs nothing.

#include <cstddef>

#include "context.hpp"
#include "result.hpp"

namespace earlyexit {

/// The default observer: watches nothing.
struct no_observer {};

namespace detail {

template <class O>
concept observes_stages = requires(O& o, std::size_t p, double s, double m) { o.on_stage(p, s, m); };

template <class O, class Scalar>
void observe_head(O& o, const exit_context<Scalar>& c) noexcept {
    if constexpr (requires { o.on_head(c); }) o.on_head(c);
}

template <class O, class Scalar>
void observe_exit(O& o, const exit_result<Scalar>& r, const episode<Scalar>& e) noexcept {
    if constexpr (requires { o.on_exit(r, e); }) o.on_exit(r, e);
}

}  // namespace detail
}  // namespace earlyexit
