#pragma once
// Clocks the runner times samples with.
//
// A clock is any type with `double now() noexcept` (seconds, monotonic). Optionally
// `void on_work(double macs) noexcept` is told the declared cost of every stage and head the
// runner executes, which is how a simulated clock advances deterministically, and
// `void set_level(std::size_t) noexcept` receives the frequency level a policy asks for.
// A clock that knows levels (dvfs/clock.hpp) also has `std::size_t level() const noexcept` (the
// level in force) and `std::size_t default_level() const noexcept`; the runner restores the
// default when a sample exits, unless the clock's `between_samples levels_between_samples()
// const noexcept` says keep_level (the level then stays until a policy asks for another one). A
// clock that measures energy has `double energy_joules() const noexcept` (cumulative), from which
// the runner reports each sample's energy.
//
// Periods: a clock with `void idle(double seconds) noexcept` can wait. When a sample with a
// deadline finishes before it, the runner idles the clock for the rest of the deadline, so that
// a sample's energy is its whole period's (active power while working, idle power in the
// slack; dvfs::model_clock charges its table's idle power, dvfs::hardware_clock sleeps while its
// meter runs). The sample's seconds stay its busy time.

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>

#include "error.hpp"

namespace earlyexit {

template <class C>
concept runner_clock = requires(C& c) {
    { c.now() } noexcept -> std::convertible_to<double>;
};

/// Real elapsed time from std::chrono::steady_clock.
struct wall_clock {
    [[nodiscard]] double now() const noexcept {
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    }
};

/// A deterministic virtual clock: executing `macs` of declared work takes macs / rate seconds,
/// plus a fixed overhead per stage or head. Tests and replay use it so that times are exact.
class simulated_clock {
public:
    /// rate: declared MACs per second (> 0); overhead: seconds added per executed stage or head (>= 0).
    explicit simulated_clock(double macs_per_second = 1e9, double overhead_seconds = 0.0)
        : rate_(macs_per_second), overhead_(overhead_seconds) {
        if (!(rate_ > 0.0) || !std::isfinite(rate_))
            earlyexit::fail("simulated_clock: rate {} MACs/s must be finite and > 0", rate_);
        if (!(overhead_ >= 0.0) || !std::isfinite(overhead_))
            earlyexit::fail("simulated_clock: overhead {} s must be finite and >= 0", overhead_);
    }

    [[nodiscard]] double now() const noexcept { return t_; }
    void on_work(double macs) noexcept { t_ += macs / rate_ + overhead_; }
    /// Moves the clock forward by s seconds (for tests and idle periods).
    void advance(double s) noexcept { t_ += s; }
    [[nodiscard]] double rate() const noexcept { return rate_; }

private:
    double rate_;
    double overhead_;
    double t_ = 0.0;
};

/// What a clock that knows levels does between samples (see the file comment).
enum class between_samples : unsigned char {
    restore_default,  ///< back to the default level when a sample exits (the default)
    keep_level,       ///< the level in force stays until a policy asks for another one
};

namespace detail {

/// A clock told the declared cost of each stage and head run (a deterministic one advances by it).
template <class C>
concept clock_with_work = requires(C& c, double macs) { c.on_work(macs); };

template <class C>
void clock_on_work(C& c, double macs) noexcept {
    if constexpr (clock_with_work<C>) c.on_work(macs);
}

template <class C>
void clock_set_level(C& c, std::size_t level) noexcept {
    if constexpr (requires { c.set_level(level); }) c.set_level(level);
}

template <class C>
concept clock_with_levels = requires(const C& c) {
    { c.level() } noexcept -> std::convertible_to<std::size_t>;
    { c.default_level() } noexcept -> std::convertible_to<std::size_t>;
};

template <class C>
concept clock_with_energy = requires(const C& c) {
    { c.energy_joules() } noexcept -> std::convertible_to<double>;
};

/// The energy the clock has metered so far (0 on a clock that meters none).
template <class C>
[[nodiscard]] double clock_energy(const C& c) noexcept {
    if constexpr (clock_with_energy<C>) return static_cast<double>(c.energy_joules());
    else return 0.0;
}

/// The level in force: the clock's when it knows levels, else `asked` (the last level a runner
/// set), else `none`.
template <class C>
[[nodiscard]] std::size_t clock_level_in_force(const C& c, const std::optional<std::size_t>& asked,
                                               std::size_t none) noexcept {
    if constexpr (clock_with_levels<C>) return static_cast<std::size_t>(c.level());
    else return asked ? *asked : none;
}

/// A clock that can wait out the rest of a period (idle(seconds)).
template <class C>
concept clock_with_idle = requires(C& c, double s) {
    { c.idle(s) } noexcept;
};

/// True when the clock keeps its level between samples (levels_between_samples() == keep_level).
template <class C>
[[nodiscard]] bool clock_keeps_level(const C& c) noexcept {
    if constexpr (requires {
                      { c.levels_between_samples() } noexcept -> std::same_as<between_samples>;
                  })
        return c.levels_between_samples() == between_samples::keep_level;
    else
        return false;
}

/// Idles the clock for the rest of a sample's deadline: `busy` seconds of it are used (a no-op
/// without a deadline, past it, or on a clock that cannot idle).
template <class C>
void clock_idle_to_deadline(C& c, const std::optional<double>& deadline, double busy) noexcept {
    if constexpr (clock_with_idle<C>)
        if (deadline && std::isfinite(*deadline) && *deadline > busy) c.idle(*deadline - busy);
}

}  // namespace detail
}  // namespace earlyexit
