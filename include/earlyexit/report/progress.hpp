#pragma once
// A one-line progress report for long replays, sweeps and recordings.
//
// Quiet for short runs; on a terminal one line redrawn in place, elsewhere (a log, CI) a plain
// line per step of the total, so logs stay short. tick() is cheap enough to call per sample.

#if __has_include(<unistd.h>)
#include <stdio.h>   // fileno (POSIX)
#include <unistd.h>  // isatty
#define EARLYEXIT_HAS_ISATTY 1
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "../clock.hpp"
#include "../error.hpp"

namespace earlyexit {

namespace detail {

/// Whether f is a terminal (isatty where POSIX has it; elsewhere never: plain lines).
[[nodiscard]] inline bool is_terminal(std::FILE* f) noexcept {
#ifdef EARLYEXIT_HAS_ISATTY
    return ::isatty(::fileno(f)) != 0;
#else
    (void)f;
    return false;
#endif
}

}  // namespace detail

/// Where the progress goes: `automatic` redraws one line when the stream is a terminal
/// (isatty) and prints plain lines otherwise; `terminal` and `lines` force either.
enum class progress_style { automatic, terminal, lines };

/// Tunables of a progress_line, with their defaults.
struct progress_options {
    double quiet_seconds = 1.0;   ///< nothing is printed before this much time has passed (>= 0)
    double redraw_seconds = 0.2;  ///< terminal: least time between redraws (>= 0), so at most ~5/s
    unsigned lines = 10;          ///< plain lines: one each time another 1/lines of the total is done (>= 1)
    progress_style style = progress_style::automatic;
};

/// Reports `done` out of `total` items on `out` as "<label>: 1234/10000 (12.3%) 456.7/s, ETA
/// 19 s" (without a total, total = 0: "<label>: 1234 done, 456.7/s"). Construction allocates
/// (the label); tick() and finish() never allocate, never throw, and format into a fixed
/// buffer (a label longer than about 200 bytes is cut). Not thread-safe: tick from one thread.
/// The destructor calls finish(). Clock: seconds from a runner_clock (wall_clock; tests pass a
/// fake one).
template <runner_clock Clock = wall_clock>
class basic_progress_line {
public:
    basic_progress_line(std::string label, std::size_t total, std::FILE* out = stderr, progress_options opt = {},
                        Clock clock = Clock{})
        : label_(std::move(label)), total_(total), out_(out), opt_(opt), clock_(std::move(clock)) {
        if (out_ == nullptr) earlyexit::fail("progress_line '{}': the output stream is null", label_);
        if (!(opt_.quiet_seconds >= 0.0))
            earlyexit::fail("progress_line: quiet_seconds {} must be >= 0", opt_.quiet_seconds);
        if (!(opt_.redraw_seconds >= 0.0))
            earlyexit::fail("progress_line: redraw_seconds {} must be >= 0", opt_.redraw_seconds);
        if (opt_.lines == 0) earlyexit::fail("progress_line: lines must be >= 1");
        terminal_ = opt_.style == progress_style::terminal ||
                    (opt_.style == progress_style::automatic && detail::is_terminal(out_));
        start_ = static_cast<double>(clock_.now());
    }
    basic_progress_line(const basic_progress_line&) = delete;
    basic_progress_line& operator=(const basic_progress_line&) = delete;
    ~basic_progress_line() { finish(); }

    /// `done` items are complete (normally increasing). Prints when due, else only records it.
    void tick(std::size_t done) noexcept {
        done_ = done;
        if (finished_) return;
        const double now = static_cast<double>(clock_.now());
        const double elapsed = now - start_;
        if (elapsed < opt_.quiet_seconds) return;
        if (terminal_) {
            if (printed_ && now - last_draw_ < opt_.redraw_seconds) return;
            last_draw_ = now;
            draw(elapsed, false);
        } else {
            if (total_ == 0) return;
            // The last step is finish()'s line, which says how long the whole run took.
            const std::size_t step = std::min(done, total_) * opt_.lines / total_;
            if (step <= last_step_ || step >= opt_.lines) return;
            last_step_ = step;
            draw(elapsed, false);
        }
    }

    /// Ends the report: prints the final count and the total time and ends the line, only if
    /// something was printed before. Later calls do nothing.
    void finish() noexcept {
        if (finished_) return;
        finished_ = true;
        if (!printed_) return;
        draw(static_cast<double>(clock_.now()) - start_, true);
    }

    /// The clock (tests move a fake one forward through it).
    [[nodiscard]] Clock& clock() noexcept { return clock_; }
    /// Whether anything was printed yet.
    [[nodiscard]] bool printed() const noexcept { return printed_; }
    /// Whether the single redrawn line (terminal) form is in use.
    [[nodiscard]] bool terminal() const noexcept { return terminal_; }

private:
    using iterator = char*;

    /// A duration: "19 s", "4 min 5 s", "2 h 3 min"; `tenths` keeps one decimal under a minute.
    static iterator put_duration(iterator it, iterator end, double seconds, bool tenths) noexcept {
        const auto room = [&] { return static_cast<std::size_t>(end - it); };
        if (!(seconds < 1e12)) return fmt::format_to_n(it, room(), "?").out;
        if (tenths && seconds < 59.95) return fmt::format_to_n(it, room(), "{:.1f} s", seconds).out;
        const long long s = std::llround(seconds);
        if (s < 60) return fmt::format_to_n(it, room(), "{} s", s).out;
        if (s < 3600) return fmt::format_to_n(it, room(), "{} min {} s", s / 60, s % 60).out;
        return fmt::format_to_n(it, room(), "{} h {} min", s / 3600, (s % 3600) / 60).out;
    }

    void draw(double elapsed, bool final) noexcept {
        iterator it = buf_.data();
        iterator const end = buf_.data() + buf_.size();
        const auto room = [&] { return static_cast<std::size_t>(end - it); };
        if (terminal_) *it++ = '\r';
        const double rate = elapsed > 0.0 ? static_cast<double>(done_) / elapsed : 0.0;
        const std::string_view label(label_.data(), std::min<std::size_t>(label_.size(), max_label));
        if (total_ > 0) {
            const double pct = 100.0 * static_cast<double>(std::min(done_, total_)) / static_cast<double>(total_);
            it = fmt::format_to_n(it, room(), "{}: {}/{} ({:.1f}%) {:.1f}/s, ", label, done_, total_, pct, rate).out;
        } else {
            it = fmt::format_to_n(it, room(), "{}: {} done, {:.1f}/s, ", label, done_, rate).out;
        }
        if (final) {
            it = fmt::format_to_n(it, room(), "done in ").out;
            it = put_duration(it, end, elapsed, true);
        } else if (total_ > 0) {
            it = fmt::format_to_n(it, room(), "ETA ").out;
            const double remaining = static_cast<double>(total_ - std::min(done_, total_));
            it = put_duration(it, end, rate > 0.0 ? remaining / rate : std::numeric_limits<double>::infinity(), false);
        } else {
            it -= 2;  // no ETA without a total: drop the ", "
        }
        std::size_t len = static_cast<std::size_t>(it - buf_.data());
        if (terminal_) {
            // Blank out what is left of a longer previous line.
            const std::size_t shown = len;
            while (len < last_len_ && len < buf_.size()) buf_[len++] = ' ';
            last_len_ = shown;
        }
        std::fwrite(buf_.data(), 1, len, out_);
        if (!terminal_ || final) std::fputc('\n', out_);
        std::fflush(out_);
        printed_ = true;
    }

    static constexpr std::size_t max_label = 200;

    std::string label_;
    std::size_t total_;
    std::FILE* out_;
    progress_options opt_;
    Clock clock_;
    bool terminal_ = false;
    bool printed_ = false;
    bool finished_ = false;
    double start_ = 0;
    double last_draw_ = 0;
    std::size_t done_ = 0;
    std::size_t last_step_ = 0;
    std::size_t last_len_ = 0;
    std::array<char, 320> buf_{};
};

/// The progress line on the wall clock.
using progress_line = basic_progress_line<>;

}  // namespace earlyexit
