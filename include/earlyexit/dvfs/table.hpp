#pragma once
// dvfs::frequency_domain: the discrete speed levels of one clock domain (a CPU cluster, a core
// complex) as data, with the parameters of its energy/time model.
//
// A level is a frequency, the voltage the platform runs it at and, when the source measured it,
// the active power at that level. Levels are sorted by frequency, strictly increasing: level 0
// is the slowest, max_level() the fastest. The model:
//
//   P(l) = power_w of level l when given, else P_static + C_eff * V_l^2 * f_l        (watts)
//
// plus the cost of one level change (latency and energy), the memory share m of the work
// whose time does not scale with the clock (it is used by dvfs::platform_model), and the idle
// power: what the domain draws while it waits, clock-gated, in the slack before a deadline
// (idle_w; the static power when a table does not give it). Energy is compared over a period
// (active power while working, idle power in the slack), so what a level costs is its power
// *above idle* times its time: a lower level costs less dynamic energy per cycle (V^2 falls)
// but runs longer, paying (P_static - P_idle) for longer: the most efficient level is often
// not the lowest, and with an idle power far below the static power racing to idle can win.
//
// A table says what its figures measure (measures(): e.g. "one core's share of the A15
// cluster") and, optionally, the declared MACs one core sustains per cycle (macs_per_cycle), so
// that a model can run at the table's chip's speed rather than at the speed of the machine it
// is evaluated on.
//
// Shipped tables live in data/dvfs/ (read with dvfs/table_file.hpp, link earlyexit::io). The
// constructor validates everything and throws earlyexit::error naming the entry; a constructed
// domain is always valid (or empty, when default-constructed).

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"

namespace earlyexit::dvfs {

/// One operating point: frequency (Hz, finite, > 0), voltage (V, finite, > 0) and, when the
/// source gives it, the measured active power at this level (W, finite, > 0).
struct level {
    double frequency_hz = 0;
    double voltage_v = 0;
    std::optional<double> power_w{};
    friend bool operator==(const level&, const level&) = default;
};

/// Parameters of the energy/time model of a domain (all finite and >= 0; memory_share < 1).
struct power_model {
    double static_w = 0;          ///< P_static: power drawn whatever the level (W)
    double capacitance_f = 0;     ///< C_eff in farads: dynamic power = C_eff * V^2 * f
    double switch_latency_s = 0;  ///< time one level change takes (s)
    double switch_energy_j = 0;   ///< energy one level change costs (J)
    double memory_share = 0;      ///< in [0, 1): share of the work at f_max whose time does not scale with f
    /// Power while idle in a deadline's slack (W, finite, >= 0, at most every level's active
    /// power); nullopt: static_w (a clock-gated domain keeps leaking).
    std::optional<double> idle_w{};
    /// Declared MACs one core sustains per clock cycle on the workload (finite, > 0), when the
    /// table estimates it: the model's rate at the highest level is then macs_per_cycle * f_max.
    std::optional<double> macs_per_cycle{};
    friend bool operator==(const power_model&, const power_model&) = default;
};

namespace detail {

/// A frequency in Hz in the shortest form that reads back to the same double, in scientific
/// notation without '+' and leading exponent zeros: 1.4e9, 1.23456789e9, 800 (below 1e6).
[[nodiscard]] inline std::string hz_text(double hz) {
    if (!std::isfinite(hz) || std::fabs(hz) < 1e6) return fmt::format("{}", hz);
    std::string s;
    for (int p = 1; p <= 17; ++p) {
        s = fmt::format("{:.{}e}", hz, p - 1);
        if (std::strtod(s.c_str(), nullptr) == hz) break;
    }
    const auto e = s.find('e');
    std::string mantissa = s.substr(0, e), exponent = s.substr(e + 1);
    if (mantissa.find('.') != std::string::npos) {
        while (mantissa.back() == '0') mantissa.pop_back();
        if (mantissa.back() == '.') mantissa.pop_back();
    }
    const bool negative = exponent.front() == '-';
    if (exponent.front() == '+' || exponent.front() == '-') exponent.erase(0, 1);
    while (exponent.size() > 1 && exponent.front() == '0') exponent.erase(0, 1);
    return mantissa + "e" + (negative ? "-" : "") + exponent;
}

[[nodiscard]] inline bool finite_positive(double x) noexcept { return std::isfinite(x) && x > 0; }
[[nodiscard]] inline bool finite_nonnegative(double x) noexcept { return std::isfinite(x) && x >= 0; }

}  // namespace detail

/// The levels of one frequency domain and its power model. Value type; validated on
/// construction (see the constructor), immutable afterwards. Lookups are O(log n) or O(n) in
/// the number of levels (tens at most), noexcept, and allocate nothing.
class frequency_domain {
public:
    /// Empty: no levels; valid() is false.
    frequency_domain() = default;

    /// Validates and throws earlyexit::error naming the entry (index and value) when the list is
    /// empty, a frequency, voltage or power is not finite and > 0, the frequencies are not
    /// strictly increasing (unsorted, or a duplicate: the message says which), or a model
    /// parameter is out of range. `what` names the table in messages (e.g. "frequency table
    /// odroid.json"); `source` says where the numbers come from (free text, kept); `measures`
    /// what the powers are the power of (free text, kept; e.g. "one core of the A15 cluster").
    frequency_domain(std::string name, std::vector<level> levels, power_model model = {}, std::string source = {},
                     std::string what = "frequency table", std::string measures = {})
        : name_(std::move(name)),
          source_(std::move(source)),
          measures_(std::move(measures)),
          levels_(std::move(levels)),
          model_(model) {
        using detail::hz_text;
        if (levels_.empty())
            earlyexit::fail("{}: '{}' has no levels (a frequency domain needs at least one)", what, name_);
        for (std::size_t i = 0; i < levels_.size(); ++i) {
            const auto& l = levels_[i];
            if (!detail::finite_positive(l.frequency_hz))
                earlyexit::fail("{}: level {} frequency {} Hz is not a finite number > 0", what, i, hz_text(l.frequency_hz));
            if (!detail::finite_positive(l.voltage_v))
                earlyexit::fail("{}: level {} voltage {} V is not a finite number > 0", what, i, l.voltage_v);
            if (l.power_w && !detail::finite_positive(*l.power_w))
                earlyexit::fail("{}: level {} power {} W is not a finite number > 0", what, i, *l.power_w);
            if (i == 0) continue;
            const double prev = levels_[i - 1].frequency_hz;
            if (l.frequency_hz == prev)
                earlyexit::fail("{}: level {} duplicates level {}'s frequency {} Hz", what, i, i - 1, hz_text(prev));
            if (l.frequency_hz < prev)
                earlyexit::fail(
                    "{}: level {} frequency {} Hz is not above level {}'s {} Hz (the levels must be sorted by frequency, "
                    "strictly increasing)",
                    what, i, hz_text(l.frequency_hz), i - 1, hz_text(prev));
        }
        const auto& m = model_;
        if (!detail::finite_nonnegative(m.static_w))
            earlyexit::fail("{}: model static power {} W is not a finite number >= 0", what, m.static_w);
        if (!detail::finite_nonnegative(m.capacitance_f))
            earlyexit::fail("{}: model capacitance {} F is not a finite number >= 0", what, m.capacitance_f);
        if (!detail::finite_nonnegative(m.switch_latency_s))
            earlyexit::fail("{}: model switch latency {} s is not a finite number >= 0", what, m.switch_latency_s);
        if (!detail::finite_nonnegative(m.switch_energy_j))
            earlyexit::fail("{}: model switch energy {} J is not a finite number >= 0", what, m.switch_energy_j);
        if (!(m.memory_share >= 0 && m.memory_share < 1))
            earlyexit::fail("{}: model memory share {} is not in [0, 1)", what, m.memory_share);
        if (m.idle_w) {
            if (!detail::finite_nonnegative(*m.idle_w))
                earlyexit::fail("{}: model idle power {} W is not a finite number >= 0", what, *m.idle_w);
            // Idling above a level's active power would make working cheaper than waiting.
            for (std::size_t i = 0; i < levels_.size(); ++i)
                if (*m.idle_w > power_w(i))
                    earlyexit::fail("{}: model idle power {} W exceeds level {}'s active power {} W", what, *m.idle_w, i,
                                    power_w(i));
        }
        if (m.macs_per_cycle && !detail::finite_positive(*m.macs_per_cycle))
            earlyexit::fail("{}: model MACs per cycle {} is not a finite number > 0", what, *m.macs_per_cycle);
    }

    [[nodiscard]] std::size_t size() const noexcept { return levels_.size(); }
    [[nodiscard]] bool empty() const noexcept { return levels_.empty(); }
    /// True for a constructed (validated, non-empty) domain.
    [[nodiscard]] bool valid() const noexcept { return !levels_.empty(); }
    /// Level i (i < size()).
    [[nodiscard]] const level& operator[](std::size_t i) const noexcept { return levels_[i]; }
    [[nodiscard]] std::span<const level> levels() const noexcept { return levels_; }
    /// The fastest level: size() - 1 (0 for an empty domain).
    [[nodiscard]] std::size_t max_level() const noexcept { return levels_.empty() ? 0 : levels_.size() - 1; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::string& source() const noexcept { return source_; }
    /// What the powers measure (free text; empty when the table does not say).
    [[nodiscard]] const std::string& measures() const noexcept { return measures_; }
    [[nodiscard]] const power_model& model() const noexcept { return model_; }

    /// Active power at level i (W): the measured power_w when given, else
    /// static_w + C_eff * V^2 * f. i < size().
    [[nodiscard]] double power_w(std::size_t i) const noexcept {
        const auto& l = levels_[i];
        if (l.power_w) return *l.power_w;
        return model_.static_w + model_.capacitance_f * l.voltage_v * l.voltage_v * l.frequency_hz;
    }

    /// Power while idle (W): the model's idle_w, or static_w when the table does not give it.
    [[nodiscard]] double idle_power_w() const noexcept { return model_.idle_w.value_or(model_.static_w); }

    /// Energy of one clock cycle at level i (J): power_w(i) / f_i (busy time only).
    [[nodiscard]] double joules_per_cycle(std::size_t i) const noexcept { return power_w(i) / levels_[i].frequency_hz; }

    /// Energy of one clock cycle at level i above idling (J): (power_w(i) - idle_power_w()) / f_i.
    /// Over a period whose slack is spent idle, the level that minimises it does a fixed
    /// CPU-bound amount of work that fits the period with the least energy.
    [[nodiscard]] double joules_per_cycle_above_idle(std::size_t i) const noexcept {
        return (power_w(i) - idle_power_w()) / levels_[i].frequency_hz;
    }

    /// Index of the lowest level whose frequency is >= hz (max_level() when none is, and for
    /// a NaN).
    [[nodiscard]] std::size_t lowest_at_least(double hz) const noexcept {
        for (std::size_t i = 0; i < levels_.size(); ++i)
            if (levels_[i].frequency_hz >= hz) return i;
        return max_level();
    }

    /// Index of the level whose frequency equals hz within 0.5% of the level's frequency (the
    /// nearest one, should two qualify); nullopt when none does.
    [[nodiscard]] std::optional<std::size_t> find(double hz) const noexcept {
        std::optional<std::size_t> best;
        double best_gap = 0;
        for (std::size_t i = 0; i < levels_.size(); ++i) {
            const double gap = std::fabs(levels_[i].frequency_hz - hz);
            if (gap <= 0.005 * levels_[i].frequency_hz && (!best || gap < best_gap)) {
                best = i;
                best_gap = gap;
            }
        }
        return best;
    }

    friend bool operator==(const frequency_domain&, const frequency_domain&) = default;

private:
    std::string name_;
    std::string source_;
    std::string measures_;
    std::vector<level> levels_;
    power_model model_{};
};

}  // namespace earlyexit::dvfs
