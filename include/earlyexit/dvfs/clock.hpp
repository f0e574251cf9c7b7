#pragma once
// The time and energy model of a frequency domain, and the deterministic clock built on it.
//
// platform_model: declared work (MACs) takes
//     seconds(macs, calls, l) = macs / R * ((1 - m) * f_max / f_l + m) + calls * overhead
// at level l, where R is the rate (MACs per second) at the highest level, m the domain's
// memory-bound share (the part of the time at f_max that does not scale with the clock; 0 is
// the CPU-bound model) and overhead a fixed cost per stage or head call. Power at level l is
// the domain's (measured power when the table gives it, else P_static + C_eff * V^2 * f), so
// energy = power * time. A level change costs the domain's switch latency and switch energy.
//
// model_clock: a runner clock on that model. Every stage and head the runner executes
// (on_work) advances it by the model's time at the level in force and adds that time's energy;
// set_level() switches (a change costs the switch); idle(s) waits s seconds at the table's idle
// power (the runner idles the clock for the slack before a sample's deadline, so energy is
// counted over the period, not over the busy time alone, which would give racing to idle its
// idle time for free); energy_joules() is cumulative. Between samples the clock goes back to
// its default level (between_samples::restore_default, the default: two switches per slowed
// sample) or keeps the level in force (keep_level: a switch only when a policy asks for another
// level; what the paper's comparison runs). Everything is a function of the declared costs, the
// deadlines and the levels asked for, so a replay on a copy of the clock gives the live run's
// times, levels and energy bit for bit.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <utility>

#include "../clock.hpp"
#include "../error.hpp"
#include "table.hpp"

namespace earlyexit::dvfs {

/// Time and energy of declared work on a frequency domain (see the file comment).
class platform_model {
public:
    /// macs_per_second_at_max: the rate R at the highest level (finite, > 0); overhead_seconds:
    /// per stage or head call, at any level (finite, >= 0). The domain must not be empty.
    platform_model(frequency_domain domain, double macs_per_second_at_max, double overhead_seconds = 0.0)
        : domain_(std::move(domain)), rate_(macs_per_second_at_max), overhead_(overhead_seconds) {
        if (domain_.empty()) earlyexit::fail("platform model: the frequency table '{}' has no levels", domain_.name());
        if (!(rate_ > 0.0) || !std::isfinite(rate_))
            earlyexit::fail("platform model: rate {} MACs/s at the highest level must be finite and > 0", rate_);
        if (!(overhead_ >= 0.0) || !std::isfinite(overhead_))
            earlyexit::fail("platform model: overhead {} s per call must be finite and >= 0", overhead_);
    }

    [[nodiscard]] const frequency_domain& domain() const noexcept { return domain_; }
    [[nodiscard]] std::size_t levels() const noexcept { return domain_.size(); }
    [[nodiscard]] std::size_t max_level() const noexcept { return domain_.max_level(); }
    [[nodiscard]] double macs_per_second_at_max() const noexcept { return rate_; }
    [[nodiscard]] double overhead_seconds() const noexcept { return overhead_; }

    /// Time factor of level l against the highest: (1 - m) * f_max / f_l + m (1 at the highest).
    [[nodiscard]] double slowdown(std::size_t l) const noexcept {
        const double m = domain_.model().memory_share;
        return (1.0 - m) * domain_[domain_.max_level()].frequency_hz / domain_[clamp(l)].frequency_hz + m;
    }
    /// Seconds that `macs` of declared work in `calls` stage or head calls take at level l.
    [[nodiscard]] double seconds(double macs, std::size_t calls, std::size_t l) const noexcept {
        return macs / rate_ * slowdown(l) + static_cast<double>(calls) * overhead_;
    }
    /// Active power at level l (watts).
    [[nodiscard]] double power_w(std::size_t l) const noexcept { return domain_.power_w(clamp(l)); }
    /// Power while idle (watts): the domain's idle_power_w().
    [[nodiscard]] double idle_w() const noexcept { return domain_.idle_power_w(); }
    [[nodiscard]] double switch_seconds() const noexcept { return domain_.model().switch_latency_s; }
    [[nodiscard]] double switch_joules() const noexcept { return domain_.model().switch_energy_j; }
    /// Levels past the highest mean the highest.
    [[nodiscard]] std::size_t clamp(std::size_t l) const noexcept { return std::min(l, domain_.max_level()); }

private:
    frequency_domain domain_;
    double rate_;
    double overhead_;
};

/// A deterministic runner clock that knows levels and meters energy (see the file comment).
class model_clock {
public:
    /// Starts at time 0, energy 0, at `default_level` (the highest when not given; a level past
    /// the highest is an error naming it). `between`: what the runner does with the level when a
    /// sample exits (see the file comment).
    explicit model_clock(platform_model model, std::optional<std::size_t> default_level = std::nullopt,
                         between_samples between = between_samples::restore_default)
        : model_(std::move(model)), default_(default_level.value_or(model_.max_level())), between_(between) {
        if (default_ > model_.max_level())
            earlyexit::fail("model clock: default level {} is past the highest level {} of '{}'", default_,
                            model_.max_level(), model_.domain().name());
        level_ = default_;
    }

    [[nodiscard]] double now() const noexcept { return t_; }
    /// Runs `macs` of declared work (one stage or head call) at the level in force.
    void on_work(double macs) noexcept {
        const double s = model_.seconds(macs, 1, level_);
        t_ += s;
        e_ += s * model_.power_w(level_);
    }
    /// Switches to level l (a level past the highest means the highest, and is counted); a
    /// change costs the switch latency and energy, asking for the level in force costs nothing.
    void set_level(std::size_t l) noexcept {
        if (l > model_.max_level()) ++clamped_;
        l = model_.clamp(l);
        if (l == level_) return;
        level_ = l;
        t_ += model_.switch_seconds();
        e_ += model_.switch_joules();
        ++switches_;
    }
    /// Waits s seconds at the idle power (the slack before a deadline): time and energy move.
    /// A negative or non-finite s is ignored.
    void idle(double s) noexcept {
        if (!(s > 0.0) || !std::isfinite(s)) return;
        t_ += s;
        e_ += s * model_.idle_w();
        idle_s_ += s;
    }
    /// The same as idle(s) (the clock's name for waiting before the period accounting existed;
    /// it used to count no energy).
    void advance(double s) noexcept { idle(s); }

    [[nodiscard]] std::size_t level() const noexcept { return level_; }
    [[nodiscard]] std::size_t default_level() const noexcept { return default_; }
    [[nodiscard]] between_samples levels_between_samples() const noexcept { return between_; }
    [[nodiscard]] double energy_joules() const noexcept { return e_; }
    /// Seconds spent idle so far (their energy is in energy_joules(), at the idle power).
    [[nodiscard]] double idle_seconds() const noexcept { return idle_s_; }
    [[nodiscard]] std::size_t switches() const noexcept { return switches_; }
    /// set_level() calls that asked for a level past the highest.
    [[nodiscard]] std::size_t clamped_requests() const noexcept { return clamped_; }
    [[nodiscard]] const platform_model& model() const noexcept { return model_; }

private:
    platform_model model_;
    std::size_t default_;
    between_samples between_ = between_samples::restore_default;
    std::size_t level_ = 0;
    double t_ = 0.0;
    double e_ = 0.0;
    double idle_s_ = 0.0;
    std::size_t switches_ = 0;
    std::size_t clamped_ = 0;
};

}  // namespace earlyexit::dvfs
