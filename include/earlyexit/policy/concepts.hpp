#pragma once
// The exit-policy concept and its optional hooks.
//
// Required:  decision decide(const exit_context<Scalar>&) noexcept
// Optional (detected at compile time; a policy without them compiles and pays nothing):
//   void begin(const sample_info&)                 a sample starts
//   std::size_t first_check(const sample_info&)    first head to evaluate (default 0)
//   std::size_t next_check(const exit_context&)    next head after a proceed (default head + 1);
//                                                  values past the last head mean the final head
//   std::optional<std::size_t> frequency(const exit_context&)   DVFS level for the rest
//   void update(const episode<Scalar>&)            learn from a finished sample
//   void prepare(const network_info&)              bind to a network (may throw earlyexit::error)
//   bool needs_label() const                       true for evaluation policies (oracle)
//   void reset()                                   forget learned state
//   void merge(const P&)                           fold in another copy's learned state
// The per-sample hooks (begin, first_check, next_check, frequency, update) must be noexcept;
// a hook that exists but is not noexcept is a compile error, never silently ignored.
//
// earlyexit::hooks::* call a hook when the policy has it and apply the default otherwise; the
// runner, any_policy and replay all go through them, so they agree by construction.

#include <concepts>
#include <cstddef>
#include <optional>

#include "../context.hpp"
#include "../result.hpp"

namespace earlyexit {

template <class P, class Scalar>
concept exit_policy = std::floating_point<Scalar> && requires(P& p, const exit_context<Scalar>& c) {
    { p.decide(c) } noexcept -> std::same_as<decision>;
};

namespace hooks {

template <class P>
concept has_begin = requires(P& p, const sample_info& s) { p.begin(s); };
template <class P>
concept has_first_check = requires(P& p, const sample_info& s) {
    { p.first_check(s) } -> std::convertible_to<std::size_t>;
};
template <class P, class Scalar>
concept has_next_check = requires(P& p, const exit_context<Scalar>& c) {
    { p.next_check(c) } -> std::convertible_to<std::size_t>;
};
template <class P, class Scalar>
concept has_frequency = requires(P& p, const exit_context<Scalar>& c) {
    { p.frequency(c) } -> std::convertible_to<std::optional<std::size_t>>;
};
template <class P, class Scalar>
concept has_update = requires(P& p, const episode<Scalar>& e) { p.update(e); };
template <class P>
concept has_prepare = requires(P& p, const network_info& n) { p.prepare(n); };
template <class P>
concept has_needs_label = requires(const P& p) {
    { p.needs_label() } -> std::convertible_to<bool>;
};
template <class P>
concept has_reset = requires(P& p) { p.reset(); };
template <class P>
concept has_merge = requires(P& p, const P& q) { p.merge(q); };

template <class P>
void begin(P& p, const sample_info& s) noexcept {
    if constexpr (has_begin<P>) {
        static_assert(noexcept(p.begin(s)), "policy hook begin() must be noexcept");
        p.begin(s);
    }
}

template <class P>
[[nodiscard]] std::size_t first_check(P& p, const sample_info& s) noexcept {
    if constexpr (has_first_check<P>) {
        static_assert(noexcept(p.first_check(s)), "policy hook first_check() must be noexcept");
        return static_cast<std::size_t>(p.first_check(s));
    } else {
        return 0;
    }
}

template <class P, class Scalar>
[[nodiscard]] std::size_t next_check(P& p, const exit_context<Scalar>& c) noexcept {
    if constexpr (has_next_check<P, Scalar>) {
        static_assert(noexcept(p.next_check(c)), "policy hook next_check() must be noexcept");
        return static_cast<std::size_t>(p.next_check(c));
    } else {
        return c.head + 1;
    }
}

template <class P, class Scalar>
[[nodiscard]] std::optional<std::size_t> frequency(P& p, const exit_context<Scalar>& c) noexcept {
    if constexpr (has_frequency<P, Scalar>) {
        static_assert(noexcept(p.frequency(c)), "policy hook frequency() must be noexcept");
        return p.frequency(c);
    } else {
        return std::nullopt;
    }
}

template <class P, class Scalar>
void update(P& p, const episode<Scalar>& e) noexcept {
    if constexpr (has_update<P, Scalar>) {
        static_assert(noexcept(p.update(e)), "policy hook update() must be noexcept");
        p.update(e);
    }
}

template <class P>
void prepare(P& p, const network_info& n) {
    if constexpr (has_prepare<P>) p.prepare(n);
}

template <class P>
[[nodiscard]] bool needs_label(const P& p) noexcept {
    if constexpr (has_needs_label<P>) return static_cast<bool>(p.needs_label());
    else return false;
}

template <class P>
void reset(P& p) {
    if constexpr (has_reset<P>) p.reset();
}

/// Merges q's learned state into p; a policy without merge() has nothing to merge.
template <class P>
void merge(P& p, const P& q) {
    if constexpr (has_merge<P>) p.merge(q);
}

}  // namespace hooks
}  // namespace earlyexit
