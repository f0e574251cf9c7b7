#pragma once
// hardware_clock: a runner clock on real hardware. Time is std::chrono::steady_clock; a level a
// policy asks for is applied through a cpufreq backend (the kernel frequency nearest the
// table's level); energy is a meter's cumulative reading (RAPL: the whole package, every core
// and the uncore, not only the cores running the network). The runner restores the default
// level after each sample, as on dvfs::model_clock, so the same policies run on both.
//
// The backend and the meter are not owned (they restore the governor and hold the counter
// state): both must outlive every clock and runner copy made from them. set_level() and
// energy_joules() never throw: failures are counted by the backend and the meter (failures(),
// last_error()), which callers check after a run.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <utility>

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
                   std::optional<std::size_t> default_level = std::nullopt)
        : backend_(&backend), meter_(&meter), domain_(std::move(domain)) {
        if (domain_.empty()) earlyexit::fail("hardware clock: the frequency table '{}' has no levels", domain_.name());
        default_ = default_level.value_or(domain_.max_level());
        if (default_ > domain_.max_level())
            earlyexit::fail("hardware clock: default level {} is past the highest level {} of '{}'", default_,
                            domain_.max_level(), domain_.name());
        backend_->apply(domain_, default_);
        level_ = default_;
    }

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
    [[nodiscard]] std::size_t level() const noexcept { return level_; }
    [[nodiscard]] std::size_t default_level() const noexcept { return default_; }
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
    std::size_t level_ = 0;
    std::size_t switches_ = 0;
};

}  // namespace earlyexit::dvfs
