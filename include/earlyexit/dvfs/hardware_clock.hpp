#pragma once
// hardware_clock: a runner clock on real hardware. Time is std::chrono::steady_clock; a level a
// policy asks for is applied through a cpufreq backend (the kernel frequency nearest the
// table's level); energy is a meter's cumulative reading (RAPL: the whole package, every core
// and the uncore, not only the cores running the network). As on dvfs::model_clock, the runner
// restores the default level after each sample unless the clock keeps its level between samples
// (between_samples::keep_level), and idles the clock for the slack before a sample's deadline:
// here idle(s) sleeps s seconds, so the meter measures the period (the work, then the machine
// idling until the deadline) as a periodic stream would, and the same policies and the same
// accounting run on both.
//
// One hardware clock per frequency domain; parallel_runner refuses it. The clock is move-only:
// every copy would drive the same CPUs and read the same package counter, so copies run side by
// side (a parallel_runner gives each worker a copy of its clock) would overwrite each other's
// level and each count the whole package's energy. A runner that copies its clock therefore does
// not compile with it; give a runner the clock by std::move (make_runner(net, p, std::move(c)),
// then runner.clock()), or make a new clock for each runner (construction applies the default
// level, so each starts from the state it believes in).
//
// The backend and the meter are not owned (they restore the governor and hold the counter
// state): both must outlive every clock made from them. With keep_level, put a clock back to its
// default level (set_level(default_level())) before an older clock on the same backend, which
// believes its own last level is in force, takes over (a new clock applies its default itself).
// set_level() and energy_joules() never throw: failures are counted by the backend and the
// meter (failures(), last_error()), which callers check after a run. The hardware headers
// (cpufreq, RAPL, this clock) are not in <earlyexit/earlyexit.hpp>: include
// <earlyexit/dvfs/hardware.hpp>.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <optional>
#include <thread>
#include <utility>

#include "../clock.hpp"
#include "../error.hpp"
#include "cpufreq.hpp"
#include "rapl.hpp"
#include "table.hpp"

namespace earlyexit::dvfs {

template <class Backend = cpufreq_backend, class Meter = rapl_meter>
class hardware_clock {
public:
    /// Applies `default_level` (the table's highest when not given) now; throws like the
    /// backend's apply() when that fails, or naming a level past the highest.
    hardware_clock(Backend& backend, Meter& meter, frequency_domain domain,
                   std::optional<std::size_t> default_level = std::nullopt,
                   between_samples between = between_samples::restore_default)
        : backend_(&backend), meter_(&meter), domain_(std::move(domain)), between_(between) {
        if (domain_.empty()) earlyexit::fail("hardware clock: the frequency table '{}' has no levels", domain_.name());
        default_ = default_level.value_or(domain_.max_level());
        if (default_ > domain_.max_level())
            earlyexit::fail("hardware clock: default level {} is past the highest level {} of '{}'", default_,
                            domain_.max_level(), domain_.name());
        backend_->apply(domain_, default_);
        level_ = default_;
    }

    /// Move-only (see the file comment): a copy would share the CPUs and the energy counter.
    /// A moved-from clock may only be assigned to or destroyed.
    hardware_clock(const hardware_clock&) = delete;
    hardware_clock& operator=(const hardware_clock&) = delete;
    hardware_clock(hardware_clock&&) noexcept = default;
    hardware_clock& operator=(hardware_clock&&) noexcept = default;
    ~hardware_clock() = default;

    [[nodiscard]] double now() const noexcept {
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    }
    /// Applies level l (past the highest: the highest); the level in force changes only when
    /// the backend took it.
    void set_level(std::size_t l) noexcept {
        l = std::min(l, domain_.max_level());
        if (l == level_) return;
        if (backend_->try_apply(domain_, l)) {
            level_ = l;
            ++switches_;
        }
    }
    /// Sleeps s seconds (the slack before a deadline; the meter goes on counting). A negative
    /// or non-finite s is ignored.
    void idle(double s) noexcept {
        if (!(s > 0.0) || !std::isfinite(s)) return;
        std::this_thread::sleep_for(std::chrono::duration<double>(s));
        idle_s_ += s;
    }
    [[nodiscard]] std::size_t level() const noexcept { return level_; }
    [[nodiscard]] std::size_t default_level() const noexcept { return default_; }
    [[nodiscard]] between_samples levels_between_samples() const noexcept { return between_; }
    /// Seconds asked to idle so far.
    [[nodiscard]] double idle_seconds() const noexcept { return idle_s_; }
    /// The meter's energy since it was made (J); on a failed read, the last good reading.
    [[nodiscard]] double energy_joules() const noexcept {
        double j = meter_->last_joules();
        (void)meter_->try_read(j);
        return j;
    }
    [[nodiscard]] std::size_t switches() const noexcept { return switches_; }
    [[nodiscard]] const frequency_domain& domain() const noexcept { return domain_; }

private:
    Backend* backend_;
    Meter* meter_;
    frequency_domain domain_;
    std::size_t default_ = 0;
    between_samples between_ = between_samples::restore_default;
    std::size_t level_ = 0;
    std::size_t switches_ = 0;
    double idle_s_ = 0.0;
};

}  // namespace earlyexit::dvfs
