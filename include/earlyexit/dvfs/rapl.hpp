#pragma once
// dvfs::rapl_meter: energy measured by the CPU's RAPL counters through Linux powercap.
//
// A powercap zone (default /sys/class/powercap/intel-rapl:0, the first package; its subzones
// intel-rapl:0:0... are the cores, uncore, DRAM) shows
//   energy_uj            a counter in microjoules that wraps to 0 after max_energy_range_uj
//   max_energy_range_uj  the counter's range
//   name                 what the zone measures ("package-0", "core", "dram", ...)
// joules() reads the counter and returns the energy since construction. A counter lower than the
// previous reading has wrapped once: the step is max_energy_range_uj + 1 - previous + current.
// Assumption: at most one wrap between two reads. The range is about 2^32 energy units (some
// 262 kJ with the usual 61 uJ unit: about 45 minutes at 100 W), so read at least every few
// minutes; a longer gap loses whole ranges, silently. The exact wrap modulus is the range plus
// one energy unit, which sysfs does not show: each wrap may be off by that unit (< 0.1 mJ).
//
// Since Linux 5.10 energy_uj is readable by root only (CVE-2020-8694): the error says so.
// try_read() is the noexcept form for hot paths. The sysfs access goes through a Files policy
// (dvfs/sysfs.hpp): tests run the meter against a fake zone of their own.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "../error.hpp"
#include "sysfs.hpp"

namespace earlyexit::dvfs {

/// The first package's RAPL zone.
inline constexpr std::string_view rapl_default_zone = "/sys/class/powercap/intel-rapl:0";

/// Energy since construction from a powercap zone's counter (see the file comment). Movable and
/// copyable (a copy goes on counting from the same start).
template <file_access Files = real_files>
class basic_rapl_meter {
public:
    /// Reads the zone's name, range and first counter value; throws earlyexit::error when the
    /// zone is absent or a file unreadable (EACCES: root only since Linux 5.10) or malformed.
    explicit basic_rapl_meter(std::filesystem::path zone = std::filesystem::path(rapl_default_zone), Files files = {})
        : zone_(std::move(zone)), files_(std::move(files)) {
        last_uj_ = read_uj("energy_uj");  // first: its errors explain an absent zone best
        range_uj_ = read_uj("max_energy_range_uj");
        if (range_uj_ == 0) earlyexit::fail("rapl: {} is 0, not a counter range", (zone_ / "max_energy_range_uj").string());
        name_ = std::string(detail::trim(read_text("name")));
    }

    /// Energy since construction (J), reading the counter now. Throws earlyexit::error.
    double joules() {
        advance(read_uj("energy_uj"));
        return static_cast<double>(total_uj_) * 1e-6;
    }

    /// joules() for noexcept paths: false on failure (j unchanged), the message in
    /// last_error(), counted in failures().
    bool try_read(double& j) noexcept {
        return failures_.attempt([&] { j = joules(); }, "rapl: unknown error");
    }

    /// The energy counted up to the last read (J), without reading.
    [[nodiscard]] double last_joules() const noexcept { return static_cast<double>(total_uj_) * 1e-6; }
    /// The zone's name file ("package-0", ...).
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::filesystem::path& zone() const noexcept { return zone_; }
    /// The counter's range (J) and how many wraps were seen.
    [[nodiscard]] double max_energy_range_j() const noexcept { return static_cast<double>(range_uj_) * 1e-6; }
    [[nodiscard]] std::uint64_t wraps() const noexcept { return wraps_; }
    /// Failed try_read() calls so far, and the message of the last one.
    [[nodiscard]] std::size_t failures() const noexcept { return failures_.count; }
    [[nodiscard]] const std::string& last_error() const noexcept { return failures_.last; }
    [[nodiscard]] const Files& files() const noexcept { return files_; }

    /// True when the zone's energy_uj can be read by this process.
    [[nodiscard]] static bool available(const std::filesystem::path& zone = std::filesystem::path(rapl_default_zone),
                                        const Files& files = {}) noexcept {
        try {
            const auto r = files.read(zone / "energy_uj");
            return r.ok() && detail::parse_unsigned(r.text).has_value();
        } catch (...) {
            return false;
        }
    }

private:
    [[nodiscard]] std::string read_text(const char* file) const {
        return detail::read_or_fail(files_, zone_, file, "rapl", [this](detail::read_problem p) -> std::string {
            switch (p) {
                case detail::read_problem::folder_absent:
                    return "no RAPL powercap zone here (a CPU or VM without RAPL, or the intel_rapl_msr module not "
                           "loaded; see /sys/class/powercap)";
                case detail::read_problem::file_missing:
                    return fmt::format(": {} is not an energy-counting powercap zone", zone_.string());
                default:
                    return "since Linux 5.10 energy_uj is readable by root only (CVE-2020-8694); run as root, or "
                           "make it readable (chmod a+r, or a udev rule)";
            }
        });
    }

    [[nodiscard]] std::uint64_t read_uj(const char* file) const {
        const auto text = read_text(file);
        const auto v = detail::parse_unsigned(text);
        if (!v)
            earlyexit::fail("rapl: {} holds '{}', not a whole number of microjoules", (zone_ / file).string(),
                            detail::trim(text));
        return *v;
    }

    void advance(std::uint64_t now) noexcept {
        if (now >= last_uj_) {
            total_uj_ += now - last_uj_;
        } else {  // wrapped once (the assumption in the file comment); a reading past the range counts from 0
            total_uj_ += (last_uj_ <= range_uj_ ? range_uj_ + 1 - last_uj_ : 0) + now;
            ++wraps_;
        }
        last_uj_ = now;
    }

    std::filesystem::path zone_;
    Files files_;
    std::string name_;
    std::uint64_t range_uj_ = 0;
    std::uint64_t last_uj_ = 0;
    std::uint64_t total_uj_ = 0;
    std::uint64_t wraps_ = 0;
    detail::failure_log failures_;
};

using rapl_meter = basic_rapl_meter<>;

}  // namespace earlyexit::dvfs
