#pragma once
// The comparison table: one row per policy_metrics, columns aligned, for a terminal or a log.
//
// Fractions are shown as percentages, costs per sample; a value that could not be measured
// (std::nullopt) prints "-", never a made-up number.

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"
#include "../trace/metrics.hpp"

namespace earlyexit {
namespace detail {

/// Display width of UTF-8 text: its code points (continuation bytes do not count), so a "Δ"
/// in a header or a policy name does not misalign the columns.
[[nodiscard]] inline std::size_t display_width(std::string_view s) noexcept {
    std::size_t n = 0;
    for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0u) != 0x80u;
    return n;
}

/// About three significant digits without an exponent: 1234, 123, 12.3, 1.23, 0.123, 0.0123.
/// Costs per sample span orders of magnitude (microsecond MLPs to second-long transformers),
/// so a fixed number of decimals would print either 0.000 or noise.
[[nodiscard]] inline std::string format_significant(double v) {
    if (!std::isfinite(v)) return fmt::format("{}", v);
    const double a = std::fabs(v);
    if (a == 0.0) return "0.000";
    if (a >= 100.0) return fmt::format("{:.0f}", v);
    if (a >= 10.0) return fmt::format("{:.1f}", v);
    if (a >= 1.0) return fmt::format("{:.2f}", v);
    const int decimals = std::min(12, 2 - static_cast<int>(std::floor(std::log10(a))));
    return fmt::format("{:.{}f}", v, decimals);
}

/// A signed difference in percentage points with 2 decimals; a difference that rounds to zero
/// prints "+0.00", not "-0.00".
[[nodiscard]] inline std::string format_points(double fraction_diff) {
    std::string s = fmt::format("{:+.2f}", fraction_diff * 100.0);
    if (s == "-0.00") s = "+0.00";
    return s;
}

/// A stage count: integral values without decimals (the nearest-rank percentiles of stage
/// counts are integers), anything else with 2.
[[nodiscard]] inline std::string format_count(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
    return fmt::format("{:.2f}", v);
}

}  // namespace detail

/// The comparison table as text: a header line, a rule, then one line per row, columns
/// separated by two spaces, the policy name left-aligned and every number right-aligned.
/// Columns: accuracy (%, 2 decimals); when final_accuracy (a fraction, the final head's
/// accuracy) is given, the signed difference to it in percentage points; mean and p90 stages
/// run; mean heads evaluated; compute saving (%); milliseconds and millijoules per sample
/// (about 3 significant digits); deadline miss rate (%); whether replay matched the live run
/// ("yes", "NO", or "-" when not checked); when any row has a mean_reward, a "reward" column
/// (3 decimals) after the saving. Unmeasured values print "-". Every line ends in '\n'.
[[nodiscard]] inline std::string format_table(std::span<const policy_metrics> rows,
                                              std::optional<double> final_accuracy = {}) {
    const auto percent = [](std::optional<double> f) {
        return f ? fmt::format("{:.2f}", *f * 100.0) : std::string("-");
    };
    std::vector<std::string> header{"policy", "accuracy %"};
    if (final_accuracy) header.emplace_back("Δ acc (pt)");
    const bool rewards = std::any_of(rows.begin(), rows.end(), [](const policy_metrics& m) { return m.mean_reward.has_value(); });
    for (const char* h : {"mean stages", "p90 stages", "mean heads", "saving %"}) header.emplace_back(h);
    if (rewards) header.emplace_back("reward");
    for (const char* h : {"ms/sample", "p99 ms", "samples/s", "mJ/sample", "deadline miss %", "replay=live"})
        header.emplace_back(h);

    std::vector<std::vector<std::string>> cells;
    cells.reserve(rows.size());
    for (const policy_metrics& m : rows) {
        std::vector<std::string> c;
        c.reserve(header.size());
        c.push_back(m.name);
        c.push_back(percent(m.accuracy));
        if (final_accuracy)
            c.push_back(m.accuracy ? detail::format_points(*m.accuracy - *final_accuracy) : std::string("-"));
        c.push_back(fmt::format("{:.2f}", m.mean_stages));
        c.push_back(detail::format_count(m.p90_stages));
        c.push_back(fmt::format("{:.2f}", m.mean_heads));
        c.push_back(fmt::format("{:.1f}", m.compute_saving * 100.0));
        if (rewards) c.push_back(m.mean_reward ? fmt::format("{:.3f}", *m.mean_reward) : std::string("-"));
        c.push_back(detail::format_significant(m.mean_seconds * 1e3));
        c.push_back(detail::format_significant(m.p99_seconds * 1e3));
        c.push_back(detail::format_significant(m.throughput_samples_per_s));
        c.push_back(m.energy_joules ? detail::format_significant(*m.energy_joules * 1e3) : std::string("-"));
        c.push_back(percent(m.deadline_miss_rate));
        c.push_back(m.replay_matches_live ? std::string(*m.replay_matches_live ? "yes" : "NO") : std::string("-"));
        cells.push_back(std::move(c));
    }

    std::vector<std::size_t> width(header.size());
    for (std::size_t j = 0; j < header.size(); ++j) {
        width[j] = detail::display_width(header[j]);
        for (const auto& c : cells) width[j] = std::max(width[j], detail::display_width(c[j]));
    }

    std::string out;
    const auto line = [&](const std::vector<std::string>& c) {
        for (std::size_t j = 0; j < c.size(); ++j) {
            const std::size_t pad = width[j] - detail::display_width(c[j]);
            if (j > 0) out += "  ";
            if (j == 0) {
                out += c[j];
                // No trailing blanks: the name column only pads when something follows it.
                if (c.size() > 1) out.append(pad, ' ');
            } else {
                out.append(pad, ' ');
                out += c[j];
            }
        }
        out += '\n';
    };
    line(header);
    std::vector<std::string> rule;
    rule.reserve(width.size());
    for (std::size_t w : width) rule.emplace_back(w, '-');
    line(rule);
    for (const auto& c : cells) line(c);
    return out;
}

/// Writes format_table(rows, final_accuracy) to `out` and flushes it. Throws earlyexit::error
/// when the write fails.
inline void print_table(std::FILE* out, std::span<const policy_metrics> rows,
                        std::optional<double> final_accuracy = {}) {
    const std::string text = format_table(rows, final_accuracy);
    if (std::fwrite(text.data(), 1, text.size(), out) != text.size() || std::fflush(out) != 0)
        earlyexit::fail("print_table: cannot write the table: {}", std::strerror(errno));
}

}  // namespace earlyexit
