#pragma once
// The exit-policy concept and its optional hooks.
//
// Required:  decision decide(const exit_context<Scalar>&) noexcept
// Optional (detected at compile time; a policy without them compiles and pays nothing):
//   void begin(const sample_info&)                 a sample starts
//   std::size_t first_check(const sample_info&)    first head to evaluate (default 0)
//   std::size_t next_check(const exit_context&)    next head after a proceed (default head + 1);
//                                                  values past the last head mean the final head
//   std::optional<std::size_t> frequency(const frequency_context&)   DVFS level for the rest:
//                                                  asked at the sample's start and after each
//                                                  proceed, once the next head is known
//   void update(const episode<Scalar>&)            learn from a finished sample
//   void prepare(const network_info&)              bind to a network (may throw earlyexit::error)
//   bool needs_label() const                       true for evaluation policies (oracle)
//   void reset()                                   forget learned state
//   void merge(const P&)                           fold in another copy's learned state
// The per-sample hooks (begin, first_check, next_check, frequency, update) must be noexcept.
// A member named like a hook is never silently ignored: if it is not callable exactly as listed
// (a non-const episode&, another Scalar, a wrong return type, a missing noexcept) it is a
// compile error naming the hook and the signature expected. hooks::check<P, Scalar>() runs
// every such check; basic_runner and any_policy call it, so a policy is checked in full the
// moment it is used, even the hooks (reset, merge) a runner never calls.
//
// earlyexit::hooks::* call a hook when the policy has it and apply the default otherwise; the
// runner, any_policy and replay all go through them, so they agree by construction.

#include <concepts>
#include <cstddef>
#include <optional>
#include <type_traits>

#include "../context.hpp"
#include "../result.hpp"

namespace earlyexit {

template <class P, class Scalar>
concept exit_policy = std::floating_point<Scalar> && requires(P& p, const exit_context<Scalar>& c) {
    { p.decide(c) } noexcept -> std::same_as<decision>;
};

namespace detail {

/// One member per hook name. In a class deriving from both P and hook_names, `probe::update`
/// is ambiguous exactly when P has a member named update of any kind (function, template,
/// overload set, data member, inherited or private), which is what names_* detect.
struct hook_names {
    int begin, first_check, next_check, frequency, update, prepare, needs_label, reset, merge;
};
template <class P>
struct hook_probe : P, hook_names {};
/// A final class cannot be derived from: names_* then see only a member whose address can be
/// taken (one non-template, non-overloaded function).
template <class P>
concept hook_probeable = std::is_class_v<P> && !std::is_final_v<P>;

}  // namespace detail

namespace hooks {

// names_<hook><P>: P has a member named like the hook (whether or not it is callable as one).
template <class P>
concept names_begin = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::begin; }) ||
                      (!detail::hook_probeable<P> && requires { &P::begin; });
template <class P>
concept names_first_check = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::first_check; }) ||
                            (!detail::hook_probeable<P> && requires { &P::first_check; });
template <class P>
concept names_next_check = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::next_check; }) ||
                           (!detail::hook_probeable<P> && requires { &P::next_check; });
template <class P>
concept names_frequency = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::frequency; }) ||
                          (!detail::hook_probeable<P> && requires { &P::frequency; });
template <class P>
concept names_update = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::update; }) ||
                       (!detail::hook_probeable<P> && requires { &P::update; });
template <class P>
concept names_prepare = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::prepare; }) ||
                        (!detail::hook_probeable<P> && requires { &P::prepare; });
template <class P>
concept names_needs_label = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::needs_label; }) ||
                            (!detail::hook_probeable<P> && requires { &P::needs_label; });
template <class P>
concept names_reset = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::reset; }) ||
                      (!detail::hook_probeable<P> && requires { &P::reset; });
template <class P>
concept names_merge = (detail::hook_probeable<P> && !requires { &detail::hook_probe<P>::merge; }) ||
                      (!detail::hook_probeable<P> && requires { &P::merge; });

// has_<hook><P[, Scalar]>: P's hook is callable as the header comment lists (noexcept aside).
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
concept has_frequency = requires(P& p, const frequency_context<Scalar>& c) {
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

// The checks, one function per hook so that each error is reported once per policy type.
// Each returns true; a violation is a static_assert naming the hook and the signature.
template <class P>
consteval bool check_begin() {
    static_assert(!names_begin<P> || has_begin<P>,
                  "policy hook begin() must be callable as void begin(const earlyexit::sample_info&) noexcept");
    if constexpr (has_begin<P>)
        static_assert(requires(P& p, const sample_info& s) {
            { p.begin(s) } noexcept;
        }, "policy hook begin() must be noexcept");
    return true;
}
template <class P>
consteval bool check_first_check() {
    static_assert(!names_first_check<P> || has_first_check<P>,
                  "policy hook first_check() must be callable as "
                  "std::size_t first_check(const earlyexit::sample_info&) noexcept");
    if constexpr (has_first_check<P>)
        static_assert(requires(P& p, const sample_info& s) {
            { p.first_check(s) } noexcept;
        }, "policy hook first_check() must be noexcept");
    return true;
}
template <class P, class Scalar>
consteval bool check_next_check() {
    static_assert(!names_next_check<P> || has_next_check<P, Scalar>,
                  "policy hook next_check() must be callable as "
                  "std::size_t next_check(const earlyexit::exit_context<Scalar>&) noexcept");
    if constexpr (has_next_check<P, Scalar>)
        static_assert(requires(P& p, const exit_context<Scalar>& c) {
            { p.next_check(c) } noexcept;
        }, "policy hook next_check() must be noexcept");
    return true;
}
template <class P, class Scalar>
consteval bool check_frequency() {
    static_assert(!names_frequency<P> || has_frequency<P, Scalar>,
                  "policy hook frequency() must be callable as "
                  "std::optional<std::size_t> frequency(const earlyexit::frequency_context<Scalar>&) noexcept");
    if constexpr (has_frequency<P, Scalar>)
        static_assert(requires(P& p, const frequency_context<Scalar>& c) {
            { p.frequency(c) } noexcept;
        }, "policy hook frequency() must be noexcept");
    return true;
}
template <class P, class Scalar>
consteval bool check_update() {
    static_assert(!names_update<P> || has_update<P, Scalar>,
                  "policy hook update() must be callable as void update(const earlyexit::episode<Scalar>&) noexcept");
    if constexpr (has_update<P, Scalar>)
        static_assert(requires(P& p, const episode<Scalar>& e) {
            { p.update(e) } noexcept;
        }, "policy hook update() must be noexcept");
    return true;
}
template <class P>
consteval bool check_prepare() {
    static_assert(!names_prepare<P> || has_prepare<P>,
                  "policy hook prepare() must be callable as void prepare(const earlyexit::network_info&)");
    return true;
}
template <class P>
consteval bool check_needs_label() {
    static_assert(!names_needs_label<P> || has_needs_label<P>,
                  "policy hook needs_label() must be callable as bool needs_label() const");
    return true;
}
template <class P>
consteval bool check_reset() {
    static_assert(!names_reset<P> || has_reset<P>, "policy hook reset() must be callable as void reset()");
    return true;
}
template <class P>
consteval bool check_merge() {
    static_assert(!names_merge<P> || has_merge<P>,
                  "policy hook merge() must be callable as void merge(const P&), P the policy's own type");
    return true;
}

/// Checks every hook P names against its signature for Scalar (see the header comment): true
/// when all pass, otherwise one compile error per mis-typed hook, naming it.
///   static_assert(earlyexit::hooks::check<my_policy, float>());
template <class P, class Scalar>
consteval bool check() {
    return check_begin<P>() && check_first_check<P>() && check_next_check<P, Scalar>() &&
           check_frequency<P, Scalar>() && check_update<P, Scalar>() && check_prepare<P>() &&
           check_needs_label<P>() && check_reset<P>() && check_merge<P>();
}

template <class P>
void begin(P& p, const sample_info& s) noexcept {
    static_assert(check_begin<P>());
    if constexpr (has_begin<P>) p.begin(s);
}

template <class P>
[[nodiscard]] std::size_t first_check(P& p, const sample_info& s) noexcept {
    static_assert(check_first_check<P>());
    if constexpr (has_first_check<P>) return static_cast<std::size_t>(p.first_check(s));
    else return 0;
}

template <class P, class Scalar>
[[nodiscard]] std::size_t next_check(P& p, const exit_context<Scalar>& c) noexcept {
    static_assert(check_next_check<P, Scalar>());
    if constexpr (has_next_check<P, Scalar>) return static_cast<std::size_t>(p.next_check(c));
    else return c.head + 1;
}

template <class P, class Scalar>
[[nodiscard]] std::optional<std::size_t> frequency(P& p, const frequency_context<Scalar>& c) noexcept {
    static_assert(check_frequency<P, Scalar>());
    if constexpr (has_frequency<P, Scalar>) return p.frequency(c);
    else return std::nullopt;
}

template <class P, class Scalar>
void update(P& p, const episode<Scalar>& e) noexcept {
    static_assert(check_update<P, Scalar>());
    if constexpr (has_update<P, Scalar>) p.update(e);
}

template <class P>
void prepare(P& p, const network_info& n) {
    static_assert(check_prepare<P>());
    if constexpr (has_prepare<P>) p.prepare(n);
}

template <class P>
[[nodiscard]] bool needs_label(const P& p) noexcept {
    static_assert(check_needs_label<P>());
    if constexpr (has_needs_label<P>) return static_cast<bool>(p.needs_label());
    else return false;
}

template <class P>
void reset(P& p) {
    static_assert(check_reset<P>());
    if constexpr (has_reset<P>) p.reset();
}

/// Merges q's learned state into p; a policy without merge() has nothing to merge.
template <class P>
void merge(P& p, const P& q) {
    static_assert(check_merge<P>());
    if constexpr (has_merge<P>) p.merge(q);
}

}  // namespace hooks
}  // namespace earlyexit
