#pragma once
// dvfs::cpufreq_backend: applies frequency levels through Linux cpufreq's userspace governor.
//
// For a set of CPUs (all get the same speed; give the CPUs of one frequency domain, e.g. one
// cpufreq policy) under <root>/cpuN/cpufreq (root: /sys/devices/system/cpu):
//   construction  reads scaling_governor and the speed in force (scaling_setspeed when the
//                 governor is userspace, else scaling_cur_freq) and remembers them, reads the
//                 kernel's frequencies (scaling_available_frequencies in kHz; when the driver
//                 has no table, scaling_min_freq..scaling_max_freq, continuous()), and switches
//                 every CPU to the userspace governor (an error when scaling_available_governors
//                 lacks it, or when the write is not permitted: run as root).
//   set_frequency_hz(f)  writes f to scaling_setspeed (kHz, rounded) and returns what the kernel
//                 granted, read back from scaling_cur_freq (else scaling_setspeed): the kernel
//                 picks the lowest of its frequencies >= the request, so ask for available_hz().
//   destruction   restores every CPU's governor (and the speed, when it was userspace already)
//                 and never throws; errors are ignored. An exception unwinding past the backend
//                 restores too. Moved-from backends restore nothing.
// try_set_frequency_hz() is the noexcept form for hot paths: false on failure, with the message
// in last_error() and failures() counting them. The sysfs access goes through a Files policy
// (dvfs/sysfs.hpp): tests run the backend against a fake tree of their own.

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"
#include "sysfs.hpp"
#include "table.hpp"

namespace earlyexit::dvfs {

/// Where the kernel shows the CPUs: cpuN/cpufreq/ under it.
inline constexpr std::string_view cpufreq_default_root = "/sys/devices/system/cpu";

/// The kernel frequency in `available_hz` (ascending, non-empty) nearest to hz; ties go to the
/// higher one, so that a deadline computed at hz is not missed. NaN gives the highest.
[[nodiscard]] inline double nearest_frequency_hz(std::span<const double> available_hz, double hz) noexcept {
    if (available_hz.empty()) return 0;
    if (std::isnan(hz)) return available_hz.back();
    double best = available_hz.front();
    double gap = std::fabs(best - hz);
    for (const double f : available_hz) {
        const double g = std::fabs(f - hz);
        if (g < gap || (g == gap && f > best)) {
            best = f;
            gap = g;
        }
    }
    return best;
}

namespace detail {

[[nodiscard]] inline std::filesystem::path cpufreq_dir(const std::filesystem::path& root, unsigned cpu) {
    return root / fmt::format("cpu{}", cpu) / "cpufreq";
}

/// Reads a file of a CPU's cpufreq folder, failing with a message that names it.
template <file_access Files>
[[nodiscard]] std::string cpufreq_read(const Files& files, const std::filesystem::path& dir, unsigned cpu,
                                       const char* name) {
    return read_or_fail(files, dir, name, "cpufreq", [cpu](read_problem p) -> std::string {
        switch (p) {
            case read_problem::folder_absent:
                return fmt::format("this kernel has no cpufreq for cpu{} (a VM or container?)", cpu);
            case read_problem::file_missing:
                return fmt::format(" (the cpufreq driver of cpu{} does not offer it)", cpu);
            default:
                return "run as root";
        }
    });
}

template <file_access Files>
[[nodiscard]] std::uint64_t cpufreq_read_khz(const Files& files, const std::filesystem::path& dir, unsigned cpu,
                                             const char* name) {
    const auto text = cpufreq_read(files, dir, cpu, name);
    const auto v = parse_unsigned(text);
    if (!v || *v == 0)
        earlyexit::fail("cpufreq: {} holds '{}', not a frequency in kHz", (dir / name).string(), trim(text));
    return *v;
}

/// The kernel's frequencies of a CPU in Hz, ascending: scaling_available_frequencies, else
/// {scaling_min_freq, scaling_max_freq} (`continuous` set: the driver takes any value between).
template <file_access Files>
[[nodiscard]] std::vector<double> cpufreq_frequencies(const Files& files, const std::filesystem::path& dir,
                                                      unsigned cpu, bool& continuous) {
    const auto table = dir / "scaling_available_frequencies";
    const auto r = files.read(table);
    std::vector<double> hz;
    continuous = false;
    if (r.ok()) {
        for (const auto w : words(r.text)) {
            const auto v = parse_unsigned(w);
            if (!v || *v == 0)
                earlyexit::fail("cpufreq: {} lists '{}', not a frequency in kHz", table.string(), w);
            hz.push_back(static_cast<double>(*v) * 1e3);
        }
        if (hz.empty()) earlyexit::fail("cpufreq: {} lists no frequencies", table.string());
    } else if (r.error == ENOENT) {
        (void)cpufreq_read(files, dir, cpu, "scaling_governor");  // names a missing cpufreq folder
        const auto lo = cpufreq_read_khz(files, dir, cpu, "scaling_min_freq");
        const auto hi = cpufreq_read_khz(files, dir, cpu, "scaling_max_freq");
        if (lo > hi)
            earlyexit::fail("cpufreq: cpu{}'s scaling_min_freq {} kHz is above scaling_max_freq {} kHz", cpu, lo, hi);
        hz = {static_cast<double>(lo) * 1e3, static_cast<double>(hi) * 1e3};
        continuous = true;
    } else {
        earlyexit::fail("cpufreq: cannot read {}: {}", table.string(), errno_text(r.error));
    }
    std::sort(hz.begin(), hz.end());  // acpi-cpufreq lists them fastest first
    hz.erase(std::unique(hz.begin(), hz.end()), hz.end());
    return hz;
}

}  // namespace detail

/// The frequencies (Hz, ascending) the kernel offers for `cpu`, read without changing
/// anything: scaling_available_frequencies, or {scaling_min_freq, scaling_max_freq} when the
/// driver has no table. Voltages are not known to the kernel interface: pair these with a
/// frequency table of the chip (data/dvfs/) or measure. Throws earlyexit::error.
template <file_access Files = real_files>
[[nodiscard]] std::vector<double> read_available_frequencies_hz(
    const std::filesystem::path& root = std::filesystem::path(cpufreq_default_root), unsigned cpu = 0,
    const Files& files = {}) {
    bool continuous = false;
    return detail::cpufreq_frequencies(files, detail::cpufreq_dir(root, cpu), cpu, continuous);
}

/// The cpufreq userspace-governor backend (see the file comment). Not copyable; movable.
template <file_access Files = real_files>
class basic_cpufreq_backend {
public:
    /// Takes the CPUs over (see the file comment); throws earlyexit::error, having restored
    /// whatever it had changed, when cpufreq is absent, lacks the userspace governor, or the
    /// governor cannot be written.
    explicit basic_cpufreq_backend(std::filesystem::path root = std::filesystem::path(cpufreq_default_root),
                                   std::vector<unsigned> cpus = {0}, Files files = {})
        : root_(std::move(root)), files_(std::move(files)) {
        if (cpus.empty()) earlyexit::fail("cpufreq: no CPUs given");
        for (std::size_t i = 0; i < cpus.size(); ++i)
            for (std::size_t k = 0; k < i; ++k)
                if (cpus[i] == cpus[k]) earlyexit::fail("cpufreq: cpu{} is listed twice", cpus[i]);

        // Look at every CPU before changing any: most errors leave the machine untouched.
        std::vector<cpu_state> found;
        for (const unsigned cpu : cpus) {
            cpu_state s;
            s.cpu = cpu;
            s.dir = detail::cpufreq_dir(root_, cpu);
            s.governor = std::string(detail::trim(detail::cpufreq_read(files_, s.dir, cpu, "scaling_governor")));
            const auto governors = detail::cpufreq_read(files_, s.dir, cpu, "scaling_available_governors");
            const auto list = detail::words(governors);
            if (std::find(list.begin(), list.end(), std::string_view("userspace")) == list.end())
                earlyexit::fail(
                    "cpufreq: cpu{} offers no userspace governor ({} lists: {}); load it (modprobe cpufreq_userspace), "
                    "or, with intel_pstate or amd-pstate in active mode (they offer only performance and powersave), "
                    "boot with intel_pstate=passive or amd_pstate=passive",
                    cpu, (s.dir / "scaling_available_governors").string(), detail::trim(governors));
            bool continuous = false;
            auto hz = detail::cpufreq_frequencies(files_, s.dir, cpu, continuous);
            if (found.empty()) {
                available_ = std::move(hz);
                continuous_ = continuous;
            } else if (hz != available_ || continuous != continuous_) {
                earlyexit::fail(
                    "cpufreq: cpu{} offers other frequencies than cpu{}: give the CPUs of one frequency domain (one "
                    "cpufreq policy, see related_cpus)",
                    cpu, found.front().cpu);
            }
            // The speed in force: what userspace set, else what the current governor runs at.
            if (s.governor == "userspace") {
                const auto r = files_.read(s.dir / "scaling_setspeed");
                if (const auto v = r.ok() ? detail::parse_unsigned(r.text) : std::nullopt; v && *v > 0) s.speed_khz = *v;
            }
            if (s.speed_khz == 0) {
                const auto r = files_.read(s.dir / "scaling_cur_freq");
                if (const auto v = r.ok() ? detail::parse_unsigned(r.text) : std::nullopt; v) s.speed_khz = *v;
            }
            found.push_back(std::move(s));
        }
        previous_governor_ = found.front().governor;
        previous_hz_ = static_cast<double>(found.front().speed_khz) * 1e3;

        try {
            for (auto& s : found) {
                if (s.governor != "userspace") {
                    write_or_fail(s, "scaling_governor", "userspace", "switch to the userspace governor");
                    const std::string now(detail::trim(detail::cpufreq_read(files_, s.dir, s.cpu, "scaling_governor")));
                    if (now != "userspace") {
                        states_.push_back(s);  // restore it all the same
                        earlyexit::fail("cpufreq: cpu{} accepted the userspace governor but now runs '{}'", s.cpu, now);
                    }
                }
                states_.push_back(s);
            }
            granted_hz_ = read_granted();
        } catch (...) {
            restore();
            throw;
        }
    }

    basic_cpufreq_backend(const basic_cpufreq_backend&) = delete;
    basic_cpufreq_backend& operator=(const basic_cpufreq_backend&) = delete;

    basic_cpufreq_backend(basic_cpufreq_backend&& o) noexcept(std::is_nothrow_move_constructible_v<Files>)
        : root_(std::move(o.root_)),
          files_(std::move(o.files_)),
          states_(std::move(o.states_)),
          available_(std::move(o.available_)),
          continuous_(o.continuous_),
          previous_governor_(std::move(o.previous_governor_)),
          previous_hz_(o.previous_hz_),
          granted_hz_(o.granted_hz_),
          failures_(std::move(o.failures_)) {
        o.states_.clear();
    }

    basic_cpufreq_backend& operator=(basic_cpufreq_backend&& o) noexcept(std::is_nothrow_move_assignable_v<Files>) {
        if (this != &o) {
            restore();
            root_ = std::move(o.root_);
            files_ = std::move(o.files_);
            states_ = std::move(o.states_);
            o.states_.clear();
            available_ = std::move(o.available_);
            continuous_ = o.continuous_;
            previous_governor_ = std::move(o.previous_governor_);
            previous_hz_ = o.previous_hz_;
            granted_hz_ = o.granted_hz_;
            failures_ = std::move(o.failures_);
        }
        return *this;
    }

    /// Restores the previous governors (and speeds); never throws.
    ~basic_cpufreq_backend() { restore(); }

    /// The writes restore() makes, in its order: (file, text) per CPU taken over. A signal
    /// handler cannot run restore() (it formats and allocates): dvfs::restore_on_signal
    /// (dvfs/signal_restore.hpp) prepares these beforehand and makes them with plain POSIX calls.
    [[nodiscard]] std::vector<std::pair<std::filesystem::path, std::string>> restore_writes() const {
        std::vector<std::pair<std::filesystem::path, std::string>> out;
        for (auto it = states_.rbegin(); it != states_.rend(); ++it)
            if (auto w = restore_write(*it)) out.push_back(std::move(*w));
        return out;
    }

    /// Asks every CPU for hz (finite, > 0; written in kHz, rounded) and returns the speed the
    /// kernel granted (Hz), read back. Throws earlyexit::error naming the file on failure.
    double set_frequency_hz(double hz) {
        if (states_.empty()) earlyexit::fail("cpufreq: this backend was moved from; it controls no CPU");
        if (!detail::finite_positive(hz)) earlyexit::fail("cpufreq: frequency {} Hz is not a finite number > 0", hz);
        const auto khz = static_cast<std::uint64_t>(std::llround(hz / 1e3));
        if (khz == 0) earlyexit::fail("cpufreq: frequency {} Hz rounds to 0 kHz", hz);
        const auto text = fmt::format("{}", khz);
        for (const auto& s : states_) write_or_fail(s, "scaling_setspeed", text, fmt::format("set {} kHz", khz));
        granted_hz_ = read_granted();
        return granted_hz_;
    }

    /// set_frequency_hz() for noexcept paths: false on failure (the speed in force may then be
    /// anything the kernel left), the message in last_error(), counted in failures().
    bool try_set_frequency_hz(double hz) noexcept {
        return failures_.attempt([&] { (void)set_frequency_hz(hz); }, "cpufreq: unknown error");
    }

    /// Applies level `l` of a frequency table (past the highest: the highest) at the kernel
    /// frequency nearest to it; returns the granted speed. Throws like set_frequency_hz().
    double apply(const frequency_domain& d, std::size_t l) {
        if (d.empty()) earlyexit::fail("cpufreq: the frequency table '{}' has no levels", d.name());
        return set_frequency_hz(kernel_frequency_hz(d[std::min(l, d.max_level())].frequency_hz));
    }
    /// apply() for noexcept paths (see try_set_frequency_hz()).
    bool try_apply(const frequency_domain& d, std::size_t l) noexcept {
        if (d.empty()) {
            failures_.note("cpufreq: the frequency table has no levels");
            return false;
        }
        return try_set_frequency_hz(kernel_frequency_hz(d[std::min(l, d.max_level())].frequency_hz));
    }

    /// The kernel frequency to ask for hz: the nearest of available_hz(), or hz clamped to
    /// [min, max] when continuous().
    [[nodiscard]] double kernel_frequency_hz(double hz) const noexcept {
        if (continuous_ && !std::isnan(hz)) return std::clamp(hz, available_.front(), available_.back());
        return nearest_frequency_hz(available_, hz);
    }

    /// The speed the kernel granted at the last set (or found at construction), in Hz.
    [[nodiscard]] double granted_hz() const noexcept { return granted_hz_; }
    /// The kernel's frequencies (Hz, ascending); when continuous(), just {min, max}.
    [[nodiscard]] std::span<const double> available_hz() const noexcept { return available_; }
    /// True when the driver has no frequency table: any speed in [min, max] may be asked for.
    [[nodiscard]] bool continuous() const noexcept { return continuous_; }
    /// The first CPU's governor and speed (Hz; 0 when unreadable) before construction.
    [[nodiscard]] const std::string& previous_governor() const noexcept { return previous_governor_; }
    [[nodiscard]] double previous_hz() const noexcept { return previous_hz_; }
    /// The CPUs this backend controls (none once moved from).
    [[nodiscard]] std::vector<unsigned> cpus() const {
        std::vector<unsigned> out;
        for (const auto& s : states_) out.push_back(s.cpu);
        return out;
    }
    [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }
    /// Failed try_* calls so far, and the message of the last one.
    [[nodiscard]] std::size_t failures() const noexcept { return failures_.count; }
    [[nodiscard]] const std::string& last_error() const noexcept { return failures_.last; }
    [[nodiscard]] const Files& files() const noexcept { return files_; }

    /// True when cpuN/cpufreq under root exists and offers the userspace governor (whether this
    /// user may write it is only known by trying).
    [[nodiscard]] static bool available(const std::filesystem::path& root = std::filesystem::path(cpufreq_default_root),
                                        unsigned cpu = 0, const Files& files = {}) noexcept {
        try {
            const auto dir = detail::cpufreq_dir(root, cpu);
            if (!files.read(dir / "scaling_governor").ok()) return false;
            const auto g = files.read(dir / "scaling_available_governors");
            if (!g.ok()) return false;
            const auto list = detail::words(g.text);
            return std::find(list.begin(), list.end(), std::string_view("userspace")) != list.end();
        } catch (...) {
            return false;
        }
    }

private:
    struct cpu_state {
        unsigned cpu = 0;
        std::filesystem::path dir;
        std::string governor;        // before construction
        std::uint64_t speed_khz = 0;  // before construction (0: unknown)
    };

    void write_or_fail(const cpu_state& s, const char* name, std::string_view text, std::string_view doing) const {
        const auto path = s.dir / name;
        const int e = files_.write(path, text);
        if (e == 0) return;
        if (detail::not_permitted(e))
            earlyexit::fail(
                "cpufreq: cannot {} on cpu{}: writing {} is not permitted ({}); run as root (or give this user write "
                "access to scaling_governor and scaling_setspeed in {})",
                doing, s.cpu, path.string(), detail::errno_text(e), s.dir.string());
        if (e == ENOENT) earlyexit::fail("cpufreq: cannot {} on cpu{}: {} is missing", doing, s.cpu, path.string());
        if (e == EINVAL && std::string_view(name) == "scaling_setspeed")
            earlyexit::fail(
                "cpufreq: cannot {} on cpu{}: the kernel refused '{}' in {} ({}); is its governor still userspace?",
                doing, s.cpu, text, path.string(), detail::errno_text(e));
        earlyexit::fail("cpufreq: cannot {} on cpu{}: writing '{}' to {} failed ({})", doing, s.cpu, text,
                        path.string(), detail::errno_text(e));
    }

    /// The first CPU's speed (Hz): scaling_cur_freq, else scaling_setspeed.
    [[nodiscard]] double read_granted() const {
        const auto& s = states_.front();
        for (const char* name : {"scaling_cur_freq", "scaling_setspeed"}) {
            const auto r = files_.read(s.dir / name);
            if (const auto v = r.ok() ? detail::parse_unsigned(r.text) : std::nullopt; v && *v > 0)
                return static_cast<double>(*v) * 1e3;
        }
        earlyexit::fail("cpufreq: cannot read back cpu{}'s speed: neither {} nor scaling_setspeed holds a frequency",
                        s.cpu, (s.dir / "scaling_cur_freq").string());
    }

    /// The write that puts one CPU back: its governor, or its speed when the governor was
    /// userspace already (none when that speed is unknown).
    [[nodiscard]] static std::optional<std::pair<std::filesystem::path, std::string>> restore_write(const cpu_state& s) {
        if (s.governor != "userspace") return std::pair{s.dir / "scaling_governor", s.governor};
        if (s.speed_khz > 0) return std::pair{s.dir / "scaling_setspeed", fmt::format("{}", s.speed_khz)};
        return std::nullopt;
    }

    /// Puts every CPU back, the last taken first; never throws, ignores errors.
    void restore() noexcept {
        for (auto it = states_.rbegin(); it != states_.rend(); ++it) {
            try {
                if (const auto w = restore_write(*it)) (void)files_.write(w->first, w->second);
            } catch (...) {
            }
        }
        states_.clear();
    }

    std::filesystem::path root_;
    Files files_;
    std::vector<cpu_state> states_;
    std::vector<double> available_;
    bool continuous_ = false;
    std::string previous_governor_;
    double previous_hz_ = 0;
    double granted_hz_ = 0;
    detail::failure_log failures_;
};

using cpufreq_backend = basic_cpufreq_backend<>;

}  // namespace earlyexit::dvfs
