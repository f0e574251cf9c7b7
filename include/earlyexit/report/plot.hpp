#pragma once
// Plots of a comparison, rendered by the `gnuplot` program: the accuracy / compute trade-off
// and the distribution of exits over the heads.
//
// Each plot leaves its data (.dat) and script (.gp) beside the PNG, so a figure can be
// restyled and re-rendered with `cd <dir> && gnuplot <name>.gp` without rerunning anything.
// The script names its data and its image by file name only, relative to the folder it sits
// in: a plot folder that is committed, moved or copied to another machine renders there too,
// and carries no path of the machine that wrote it.
// gnuplot is started directly (posix_spawnp), never through a shell, so no path or policy
// name is ever interpreted as a command. It runs `gnuplot -e "cd '<dir>'" <name>.gp`: the
// folder is entered by gnuplot's own `cd` (the folder quoted as every other gnuplot string
// here), which works with any POSIX libc, unlike posix_spawn_file_actions_addchdir_np (glibc
// 2.29+), and leaves the scripts as a user runs them. POSIX only.

#include <fcntl.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../atomic_file.hpp"
#include "../error.hpp"
#include "../trace/metrics.hpp"
#include "../calibrate/sweep.hpp"

namespace earlyexit {

/// One line of the trade-off plot: points (x = compute saving in %, y = accuracy in %), drawn
/// in the given order (pareto_curve gives them by increasing saving).
struct curve {
    std::string name;
    std::vector<std::pair<double, double>> points;
};

/// Image size in pixels of the rendered PNGs.
struct plot_options {
    unsigned width = 1024;
    unsigned height = 640;
    /// plot_tradeoff: the accuracy range shown (percent), e.g. the band near the final head where
    /// the policies of interest sit; points outside are clipped. Unset: everything.
    std::optional<std::pair<double, double>> accuracy_range{};
};

/// The Pareto front of a sweep as a curve (see pareto_front): unlabelled points are left out,
/// the rest in increasing compute saving, both coordinates in percent.
[[nodiscard]] inline curve pareto_curve(std::string name, const std::vector<sweep_point>& sweep) {
    curve c{std::move(name), {}};
    for (const std::size_t i : pareto_front(sweep)) {
        const policy_metrics& m = sweep[i].metrics;
        c.points.emplace_back(m.compute_saving * 100.0, *m.accuracy * 100.0);
    }
    return c;
}

/// One Pareto curve per sweep, named names[i]. Throws earlyexit::error when the counts differ.
[[nodiscard]] inline std::vector<curve> tradeoff_curves(std::span<const std::vector<sweep_point>> sweeps,
                                                        std::span<const std::string> names) {
    if (sweeps.size() != names.size())
        earlyexit::fail("tradeoff_curves: {} sweeps but {} names", sweeps.size(), names.size());
    std::vector<curve> out;
    out.reserve(sweeps.size());
    for (std::size_t i = 0; i < sweeps.size(); ++i) out.push_back(pareto_curve(names[i], sweeps[i]));
    return out;
}

/// One Pareto curve per family's sweep, named after the family (max_prob, entropy, ...).
/// Throws earlyexit::error when the counts differ.
[[nodiscard]] inline std::vector<curve> tradeoff_curves(std::span<const threshold_family> families,
                                                        std::span<const std::vector<sweep_point>> sweeps) {
    if (sweeps.size() != families.size())
        earlyexit::fail("tradeoff_curves: {} sweeps but {} families", sweeps.size(), families.size());
    std::vector<curve> out;
    out.reserve(sweeps.size());
    for (std::size_t i = 0; i < sweeps.size(); ++i)
        out.push_back(pareto_curve(std::string(name_of(families[i])), sweeps[i]));
    return out;
}

namespace detail {

/// Closes a file descriptor on scope exit.
struct unique_fd {
    int fd = -1;
    unique_fd() = default;
    explicit unique_fd(int f) noexcept : fd(f) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }
    void reset() noexcept {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

struct program_result {
    int wait_status = 0;  ///< as from waitpid
    std::string output;   ///< stdout and stderr, interleaved
};

/// Runs args[0], looked up on PATH, with these arguments; stdin is /dev/null, stdout and
/// stderr are captured together. std::nullopt when the program is not found.
[[nodiscard]] inline std::optional<program_result> run_program(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe(fds) != 0) fail("cannot create a pipe to run {}: {}", args.at(0), std::strerror(errno));
    unique_fd read_end(fds[0]), write_end(fds[1]);
    // Close-on-exec on both ends: the child only keeps the copies dup2 makes on 1 and 2.
    ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);

    posix_spawn_file_actions_t actions;
    if (const int rc = ::posix_spawn_file_actions_init(&actions); rc != 0)
        fail("cannot run {}: {}", args.at(0), std::strerror(rc));
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, write_end.fd, 1);
    ::posix_spawn_file_actions_adddup2(&actions, write_end.fd, 2);
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    write_end.reset();
    if (rc == ENOENT) return std::nullopt;
    if (rc != 0) fail("cannot run {}: {}", args[0], std::strerror(rc));

    program_result r;
    char buf[4096];
    for (;;) {
        const ::ssize_t n = ::read(read_end.fd, buf, sizeof buf);
        if (n > 0) {
            r.output.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    read_end.reset();
    while (::waitpid(pid, &r.wait_status, 0) < 0)
        if (errno != EINTR) fail("cannot wait for {}: {}", args[0], std::strerror(errno));
    return r;
}

[[noreturn]] inline void fail_gnuplot_missing() {
    fail("gnuplot not found on PATH; install it (Debian: apt-get install gnuplot-nox) or omit --plots");
}

/// The last `n` bytes of a program's output, for error messages.
[[nodiscard]] inline std::string_view output_tail(std::string_view s, std::size_t n = 2000) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
    return s.size() > n ? s.substr(s.size() - n) : s;
}

/// Whether a `gnuplot -e "set terminal"` listing has a terminal of this name (the first word
/// of one of its lines).
[[nodiscard]] inline bool lists_terminal(std::string_view listing, std::string_view name) {
    while (!listing.empty()) {
        const std::size_t eol = std::min(listing.find('\n'), listing.size());
        std::string_view line = listing.substr(0, eol);
        listing.remove_prefix(std::min(eol + 1, listing.size()));
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        if (line.starts_with(name) && (line.size() == name.size() || line[name.size()] == ' ')) return true;
    }
    return false;
}

/// "pngcairo" when this gnuplot has it (anti-aliased, UTF-8 text), else "png". Asked once
/// per process; a failure (gnuplot missing) is not remembered, so installing it mid-run works.
[[nodiscard]] inline const std::string& gnuplot_png_terminal() {
    static const std::string terminal = [] {
        const auto r = run_program({"gnuplot", "-e", "set terminal"});
        if (!r) fail_gnuplot_missing();
        if (lists_terminal(r->output, "pngcairo")) return std::string("pngcairo");
        if (lists_terminal(r->output, "png")) return std::string("png");
        fail("the gnuplot on PATH has no PNG terminal (neither pngcairo nor png); its terminals:\n{}",
             output_tail(r->output));
    }();
    return terminal;
}

/// A gnuplot single-quoted string: no escape is processed inside, a quote is doubled. gnuplot
/// strings cannot hold line breaks, so they become spaces (titles and names only).
[[nodiscard]] inline std::string gnuplot_string(std::string_view s) {
    std::string out = "'";
    for (const char c : s) {
        if (c == '\'') out += "''";
        else if (c == '\n' || c == '\r') out += ' ';
        else out += c;
    }
    out += '\'';
    return out;
}

/// A path as a gnuplot string; a line break cannot be quoted, so such a path is refused rather
/// than silently changed.
[[nodiscard]] inline std::string gnuplot_path(const std::filesystem::path& p) {
    const std::string s = p.string();
    if (s.find_first_of("\n\r") != std::string::npos)
        fail("plot: the path '{}' contains a line break, which gnuplot cannot quote", s);
    return gnuplot_string(s);
}

/// Text for a '#' comment line of a data file.
[[nodiscard]] inline std::string comment_text(std::string_view s) {
    std::string out(s);
    std::replace(out.begin(), out.end(), '\n', ' ');
    std::replace(out.begin(), out.end(), '\r', ' ');
    return out;
}

inline void write_text_file(const std::filesystem::path& path, const std::string& text) {
    write_file_atomically(path, text, "plot");
}

/// The absolute form of dir, created if needed.
[[nodiscard]] inline std::filesystem::path plot_directory(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(dir, ec);
    if (ec) fail("plot: cannot resolve the directory {}: {}", dir.string(), ec.message());
    std::filesystem::create_directories(abs, ec);
    if (ec) fail("plot: cannot create the directory {}: {}", abs.string(), ec.message());
    return abs;
}

/// `plot a, \<newline> b, ...`: one plotted item a line.
[[nodiscard]] inline std::string plot_command(const std::vector<std::string>& items) {
    std::string out = "plot ";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ", \\\n     ";
        out += items[i];
    }
    out += '\n';
    return out;
}

/// The common head of every script: encoding, terminal, output (the image's file name: the
/// script runs in its own folder).
[[nodiscard]] inline std::string script_preamble(const std::filesystem::path& png, const plot_options& opt) {
    return fmt::format("set encoding utf8\nset terminal {} noenhanced size {},{}\nset output {}\n",
                       gnuplot_png_terminal(), opt.width, opt.height, gnuplot_path(png.filename()));
}

/// Writes the script (script_preamble(png), then `body`), then runs gnuplot inside the script's
/// folder (its file names are relative to it) and checks the image came out. The image is drawn
/// under a temporary name and renamed over png only when gnuplot succeeded, so an interrupted or
/// failed run leaves the old image (or none), never half of one; the script gnuplot runs is a
/// temporary copy of the saved one whose preamble names that temporary image.
inline void render(const std::filesystem::path& script, const std::string& body, const std::filesystem::path& png,
                   const plot_options& opt) {
    write_text_file(script, script_preamble(png, opt) + body);
    const std::filesystem::path tmp_png = earlyexit::detail::temporary_sibling(png);
    const std::filesystem::path tmp_script = earlyexit::detail::temporary_sibling(script);
    write_text_file(tmp_script, script_preamble(tmp_png, opt) + body);
    std::error_code ec;
    const auto cleanup = [&] {
        std::filesystem::remove(tmp_script, ec);
        std::filesystem::remove(tmp_png, ec);
    };
    const auto r = run_program(
        {"gnuplot", "-e", "cd " + gnuplot_path(script.parent_path()), tmp_script.filename().string()});
    if (!r) {
        cleanup();
        fail_gnuplot_missing();
    }
    if (WIFSIGNALED(r->wait_status)) {
        cleanup();
        fail("gnuplot was killed by signal {} running {}", WTERMSIG(r->wait_status), script.string());
    }
    const int status = WIFEXITED(r->wait_status) ? WEXITSTATUS(r->wait_status) : -1;
    if (status != 0) {
        cleanup();
        // gnuplot names the file it ran: the temporary copy; the user has the saved script.
        std::string said = r->output;
        const std::string ran = tmp_script.filename().string(), saved = script.filename().string();
        for (auto at = said.find(ran); at != std::string::npos; at = said.find(ran, at + saved.size()))
            said.replace(at, ran.size(), saved);
        fail("gnuplot failed (exit status {}) running {}:\n{}", status, script.string(), output_tail(said));
    }
    if (!std::filesystem::exists(tmp_png, ec) || std::filesystem::file_size(tmp_png, ec) == 0) {
        cleanup();
        fail("gnuplot ran {} but wrote no image at {}:\n{}", script.string(), png.string(), output_tail(r->output));
    }
    std::filesystem::rename(tmp_png, png, ec);
    if (ec) {
        cleanup();
        fail("plot: cannot rename the image {} to {}: {}", tmp_png.string(), png.string(), ec.message());
    }
    std::filesystem::remove(tmp_script, ec);
}

}  // namespace detail

/// The accuracy / compute trade-off: one line per curve, and each marked row (the oracle, the
/// full network, calibrated operating points) as a point at (compute saving %, accuracy %)
/// with its own marker, named in the key. Marked rows without an accuracy cannot be placed and are skipped; curves
/// without points are left out. Writes tradeoff.dat, tradeoff.gp and tradeoff.png in `dir`
/// (created if needed). Throws earlyexit::error when there is nothing to plot, when gnuplot is
/// not on PATH or fails (the message gives its exit status, the script and its output).
inline void plot_tradeoff(const std::filesystem::path& dir, std::string_view title, std::span<const curve> curves,
                          std::span<const policy_metrics> marked, const plot_options& opt = {}) {
    const std::filesystem::path d = detail::plot_directory(dir);
    const auto dat = d / "tradeoff.dat", gp = d / "tradeoff.gp", png = d / "tradeoff.png";

    // Data: one gnuplot `index` block per non-empty curve, then one block of marked points.
    std::string data = "# earlyexit trade-off: column 1 = compute saving (%), column 2 = accuracy (%)\n";
    std::vector<std::string> plots;
    std::size_t block = 0;
    const auto end_block = [&] {
        data += "\n\n";
        ++block;
    };
    for (const curve& c : curves) {
        std::string rows;
        for (const auto& [x, y] : c.points)
            if (std::isfinite(x) && std::isfinite(y)) rows += fmt::format("{} {}\n", x, y);
        if (rows.empty()) continue;
        data += fmt::format("# curve: {}\n", detail::comment_text(c.name));
        data += rows;
        plots.push_back(fmt::format("{} index {} using 1:2 with linespoints linewidth 2 pointsize 0.6 title {}",
                                    plots.empty() ? detail::gnuplot_path(dat.filename()) : "''", block,
                                    detail::gnuplot_string(c.name)));
        end_block();
    }
    // Marked rows: one block, each point its own series with its own marker, named in the key
    // (text labels beside the points overlapped where calibrated points sit close together).
    static constexpr int marker_types[] = {7, 5, 9, 11, 13, 6, 4, 8, 10, 12, 1, 2, 3};
    std::string points;
    std::vector<std::string> marked_plots;
    for (const policy_metrics& m : marked) {
        if (!m.accuracy) continue;
        const double x = m.compute_saving * 100.0, y = *m.accuracy * 100.0;
        if (!std::isfinite(x) || !std::isfinite(y)) continue;
        const std::size_t k = marked_plots.size();
        points += fmt::format("# marked: {}\n{} {}\n", detail::comment_text(m.name), x, y);
        marked_plots.push_back(fmt::format(
            "{} index {} every ::{}::{} using 1:2 with points pointtype {} pointsize 1.5 linecolor rgb 'black' "
            "title {}",
            plots.empty() && k == 0 ? detail::gnuplot_path(dat.filename()) : "''", block, k, k,
            marker_types[k % std::size(marker_types)], detail::gnuplot_string(m.name)));
    }
    if (!points.empty()) {
        data += points;
        plots.insert(plots.end(), marked_plots.begin(), marked_plots.end());
        end_block();
    }
    if (plots.empty())
        earlyexit::fail("plot_tradeoff: nothing to plot in {} (no curve has points and no marked row has an accuracy)",
                     d.string());

    std::string script = fmt::format(
        "set title {}\n"
        "set xlabel 'compute saving (%)'\n"
        "set ylabel 'accuracy (%)'\n"
        "set grid\n"
        "set key outside right top box\n"
        "set offsets graph 0.03, graph 0.03, graph 0.06, graph 0.03\n",
        detail::gnuplot_string(title));
    if (opt.accuracy_range) {
        // Named variables, not a structured binding: clang before 16 cannot capture those (take, below).
        const double low = opt.accuracy_range->first, high = opt.accuracy_range->second;
        if (!(low < high) || !std::isfinite(low) || !std::isfinite(high))
            earlyexit::fail("plot_tradeoff: accuracy range [{}, {}] must be finite and increasing", low, high);
        script += fmt::format("set offsets graph 0.03, graph 0.03, 0, 0\nset yrange [{}:{}]\n", low, high);
        // The saving axis spans the points inside the band (what is outside is clipped anyway).
        double x_low = 0, x_high = 0;
        bool any = false;
        const auto take = [&](double x, double y) {
            if (!(y >= low && y <= high) || !std::isfinite(x)) return;
            x_low = any ? std::min(x_low, x) : x;
            x_high = any ? std::max(x_high, x) : x;
            any = true;
        };
        for (const curve& c : curves)
            for (const auto& [x, y] : c.points) take(x, y);
        for (const policy_metrics& m : marked)
            if (m.accuracy) take(m.compute_saving * 100.0, *m.accuracy * 100.0);
        if (any) script += fmt::format("set xrange [{}:{}]\n", x_low - 3.0, x_high + 3.0);
    }
    script += detail::plot_command(plots);

    detail::write_text_file(dat, data);
    detail::render(gp, script, png, opt);
}

/// The fraction of samples exiting at each head: clustered bars, one cluster per head (head
/// 0 first, the last is the final head), one bar and colour per row. Fractions are of each
/// row's own histogram total. Writes exits.dat, exits.gp and exits.png in `dir` (created if
/// needed). Throws earlyexit::error when no row has a histogram, or as plot_tradeoff does.
inline void plot_exit_histogram(const std::filesystem::path& dir, std::span<const policy_metrics> rows,
                                const plot_options& opt = {}) {
    std::size_t heads = 0;
    for (const policy_metrics& m : rows) heads = std::max(heads, m.exit_histogram.size());
    if (heads == 0) earlyexit::fail("plot_exit_histogram: no row has an exit histogram");
    const std::filesystem::path d = detail::plot_directory(dir);
    const auto dat = d / "exits.dat", gp = d / "exits.gp", png = d / "exits.png";

    std::string data = "# earlyexit exits: fraction of samples exiting at each head, one column per policy\n# head";
    for (const policy_metrics& m : rows) data += " | " + detail::comment_text(m.name);
    data += '\n';
    for (std::size_t k = 0; k < heads; ++k) {
        data += fmt::format("{}", k);
        for (const policy_metrics& m : rows) {
            std::size_t total = 0;
            for (const std::size_t n : m.exit_histogram) total += n;
            const std::size_t n = k < m.exit_histogram.size() ? m.exit_histogram[k] : 0;
            data += fmt::format(" {}", total > 0 ? static_cast<double>(n) / static_cast<double>(total) : 0.0);
        }
        data += '\n';
    }

    std::string script =
        "set title 'exits per head'\n"
        "set xlabel 'exit head (the last is the final head)'\n"
        "set ylabel 'fraction of samples'\n"
        "set yrange [0:1.05]\n"
        "set grid ytics\n"
        "set key outside right top\n"
        "set style data histograms\n"
        "set style histogram clustered gap 1\n"
        "set style fill solid 0.85 border -1\n";
    std::vector<std::string> plots;
    for (std::size_t j = 0; j < rows.size(); ++j)
        plots.push_back(fmt::format("{} using {}{} title {}", j == 0 ? detail::gnuplot_path(dat.filename()) : "''", j + 2,
                                    j == 0 ? ":xtic(1)" : "", detail::gnuplot_string(rows[j].name)));
    script += detail::plot_command(plots);

    detail::write_text_file(dat, data);
    detail::render(gp, script, png, opt);
}

/// Axes of plot_lines().
struct line_axes {
    std::string x_label, y_label;
    bool log_x = false;  ///< a logarithmic x axis (points with x <= 0 are left out)
};

/// Curves as lines over a shared x axis (learning curves, per-window series): writes
/// <stem>.dat, <stem>.gp and <stem>.png in `dir` (created if needed). Non-finite points are
/// left out, and so are curves left without points. Throws earlyexit::error when nothing is
/// left to plot, for a stem that is not a plain file name, or as plot_tradeoff does.
inline void plot_lines(const std::filesystem::path& dir, std::string_view stem, std::string_view title,
                       std::span<const curve> curves, const line_axes& axes, const plot_options& opt = {}) {
    if (stem.empty() || stem.find_first_of("/\\ '\"") != std::string_view::npos || stem == "." || stem == "..")
        earlyexit::fail("plot_lines: '{}' is not a plain file name", stem);
    const std::filesystem::path d = detail::plot_directory(dir);
    const auto dat = d / fmt::format("{}.dat", stem), gp = d / fmt::format("{}.gp", stem),
               png = d / fmt::format("{}.png", stem);
    std::string data = fmt::format("# earlyexit {}: column 1 = {}, column 2 = {}\n", detail::comment_text(stem),
                                   detail::comment_text(axes.x_label), detail::comment_text(axes.y_label));
    std::vector<std::string> plots;
    std::size_t block = 0;
    for (const curve& c : curves) {
        std::string rows;
        for (const auto& [x, y] : c.points)
            if (std::isfinite(x) && std::isfinite(y) && (!axes.log_x || x > 0)) rows += fmt::format("{} {}\n", x, y);
        if (rows.empty()) continue;
        data += fmt::format("# curve: {}\n{}\n\n", detail::comment_text(c.name), rows);
        plots.push_back(fmt::format("{} index {} using 1:2 with linespoints linewidth 2 pointsize 0.6 title {}",
                                    plots.empty() ? detail::gnuplot_path(dat.filename()) : "''", block++,
                                    detail::gnuplot_string(c.name)));
    }
    if (plots.empty()) earlyexit::fail("plot_lines: nothing to plot in {} (no curve has points)", d.string());
    std::string script = fmt::format("set title {}\nset xlabel {}\nset ylabel {}\nset grid\nset key outside right top box\n{}",
                          detail::gnuplot_string(title), detail::gnuplot_string(axes.x_label),
                          detail::gnuplot_string(axes.y_label), axes.log_x ? "set logscale x 10\n" : "");
    script += detail::plot_command(plots);
    detail::write_text_file(dat, data);
    detail::render(gp, script, png, opt);
}

}  // namespace earlyexit
