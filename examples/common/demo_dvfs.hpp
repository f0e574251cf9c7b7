#pragma once
// The demos' DVFS rows: Predictive Exit's comparison. Same accuracy (each early exit runs with
// and without the selector, with the same exits), a latency budget per sample equal to the
// plain network's time at the highest level on the table's model, and energy counted over the
// period: active power while working, the table's idle power in the slack before the deadline
// (dvfs::model_clock with between_samples::keep_level, so a level stays across samples until
// the selector asks for another one). Rows:
//   full_fmax                   the plain network at the highest level
//   <static>_fmax               the validation-calibrated static headline (max_prob on CIFAR-10)
//   <static>_dvfs               the same with the selector (policy::with_dvfs; deadline rule)
//   predictive_fmax             the validation-calibrated predictive policy at the highest level
//   predictive_dvfs             the same with the selector (deadline rule)
//   predictive_dvfs_reference   the same with the reference rule f = f_max * J / r
// Time and energy are the model's, deterministic, so each row is run live (real skipped work)
// and replayed on a copy of the clock with the same levels, times and energy.
//
// Fixed before any evaluation run, all from the validation trace and the table:
//   * the model's rate at the highest level: the table's MACs per cycle times its highest
//     frequency when the table gives it (the table's chip's speed), else the plain network's
//     declared MACs over its mean recorded time on the validation trace (this machine's);
//   * the budget (unless --deadline-ms): the plain network's modelled time at the highest level,
//     or the longest modelled time of the two early exits at the highest level on validation
//     when that is longer (a sample that runs to the final head also ran heads on the way), plus
//     one level switch (a sample may start at a lower level the previous one kept, and must be
//     able to switch up and still run the whole network at f_max), so that the f_max rows miss
//     nothing on validation and the selector's full reserve can keep its guarantee;
//   * for each selector row, the objective (lowest level or least energy among the levels that
//     fit) and the reserve (of {1, 0.75, 0.5, 0.25, 0}): the pair whose run on validation uses
//     the least energy with at most 1% deadline misses (reserve 1 with the lowest level, which
//     never misses a deadline f_max meets, when none qualifies; see dvfs/selector.hpp).
// Then every row on the evaluated images, and, for every table in the chosen table's folder,
// energy per sample against the budget (0.8x to 3x that table's default budget, about the plain
// network's time; the selectors chosen again on validation at each budget) for the plots. Beside
// each, the perfect-forecast bound: predictive_fmax's samples, each run as cheaply as the model
// allows within the budget as if its exit were known when it starts (at one level or split
// between two, switches free): what no selector can beat at that budget; and the first-head
// bound: the same, but each sample's work known only once its first head has run, every sample
// sharing one schedule up to there that still lets the plain network finish at f_max (what no
// selector that learns of a sample from its heads can beat within 1% misses, see
// first_head_forecast_joules).

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/hardware_clock.hpp>
#include <earlyexit/dvfs/signal_restore.hpp>
#include <earlyexit/dvfs/selector.hpp>
#include <earlyexit/io.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "live_rows.hpp"
#include "resources.hpp"

namespace earlyexit::demo {

/// The reserve shares the demo chooses among on validation, and the miss rate it allows.
inline const std::vector<double> demo_dvfs_reserves{1.0, 0.75, 0.5, 0.25, 0.0};
inline constexpr double demo_dvfs_max_miss_rate = 0.01;
/// The budgets of the sweep, as multiples of the plain network's time at the highest level.
inline constexpr double demo_dvfs_sweep_from = 0.8, demo_dvfs_sweep_to = 3.0, demo_dvfs_sweep_step = 0.1;

/// Mean and p99 (nearest rank) of the plain network's recorded time per sample on a trace (its
/// replay on the recorded times).
struct full_times {
    double mean = 0, p99 = 0;
};
[[nodiscard]] inline full_times recorded_full_times(const trace& t) {
    std::vector<double> s;
    s.reserve(t.size());
    for (const auto& o : replay(t, policy::full{})) s.push_back(o.seconds);
    full_times f;
    for (const double x : s) f.mean += x;
    f.mean /= static_cast<double>(std::max<std::size_t>(s.size(), 1));
    std::sort(s.begin(), s.end());
    f.p99 = earlyexit::detail::nearest_rank(s, 0.99);
    return f;
}

/// A frequency table and the file it came from (its name, for reports).
struct dvfs_table {
    std::string file;
    dvfs::frequency_domain domain;
};

/// Every table in the folder of `chosen` (sorted by file name), the chosen one included: the
/// shipped tables when the chosen one is in data/dvfs/. A file there that is no valid table is
/// skipped with a note.
[[nodiscard]] inline std::vector<dvfs_table> tables_beside(const std::filesystem::path& chosen,
                                                           const dvfs::frequency_domain& domain) {
    std::vector<dvfs_table> out{{chosen.filename().string(), domain}};
    std::error_code ec;
    const auto dir = chosen.has_parent_path() ? chosen.parent_path() : std::filesystem::path(".");
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.is_regular_file() && e.path().extension() == ".json" && e.path().filename() != chosen.filename())
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        try {
            out.push_back({f.filename().string(), dvfs::read_frequency_domain(f)});
        } catch (const earlyexit::error& e) {
            // The message names the file by its path: name it by its file name only.
            std::string why = e.what();
            if (const auto at = why.find(f.string()); at != std::string::npos)
                why.replace(at, f.string().size(), f.filename().string());
            fmt::print("  note: {} is not a frequency table, left out of the sweep ({})\n", f.filename().string(), why);
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.file < b.file; });
    return out;
}

/// The model of a table: at the table's chip's speed when it gives MACs per cycle, else at
/// `machine_rate` (declared MACs per second of this machine). `how` says which.
[[nodiscard]] inline dvfs::platform_model demo_platform_model(const dvfs::frequency_domain& d, double machine_rate,
                                                              std::string* how = nullptr) {
    const double f_max = d[d.max_level()].frequency_hz;
    if (const auto mpc = d.model().macs_per_cycle) {
        if (how) *how = fmt::format("the table's {:g} MACs per cycle at {:.0f} MHz", *mpc, f_max / 1e6);
        return dvfs::platform_model(d, *mpc * f_max);
    }
    if (how) *how = "this machine's speed (full's mean recorded time on validation; the table gives no MACs per cycle)";
    return dvfs::platform_model(d, machine_rate);
}

/// A policy replayed on a trace on a copy of `clock`, every sample with deadline d.
template <class Policy>
[[nodiscard]] policy_metrics modelled_row(std::string name, const Policy& policy, const trace& t,
                                          const dvfs::model_clock& clock, double d) {
    auto copy = policy;
    return summarize(std::move(name), replay(t, copy, clock, d), t, d);
}

/// The default budget of a model (see the file comment) and how it was derived.
struct dvfs_budget {
    double seconds = 0;
    double full_seconds = 0;  ///< the plain network's modelled time at f_max
    std::string rule;
};

template <class Static>
[[nodiscard]] dvfs_budget default_budget(const dvfs::platform_model& model, const dvfs::model_clock& clock,
                                         const network_info& info, const trace& val, const Static* headline,
                                         const policy::predictive& predictive) {
    dvfs_budget b;
    b.full_seconds = model.seconds(info.full_macs, info.stages + 1, model.max_level());
    double longest = 0;
    const auto longest_of = [&](const auto& p) {
        auto copy = p;
        for (const auto& o : replay(val, copy, clock, std::nullopt)) longest = std::max(longest, o.seconds);
    };
    longest_of(predictive);
    if (headline) longest_of(*headline);
    b.seconds = std::max(b.full_seconds, longest) + model.switch_seconds();
    b.rule = fmt::format("the plain network's modelled time at f_max {:.4g} ms{}, plus one level switch {:.3g} ms "
                         "({:+.2f}% in all)",
                         b.full_seconds * 1e3,
                         longest > b.full_seconds
                             ? fmt::format(" (extended to the longest modelled f_max time of the early exits on "
                                           "validation, {:.4g} ms: heads run on the way to the final head)",
                                           longest * 1e3)
                             : std::string(),
                         model.switch_seconds() * 1e3, (b.seconds / b.full_seconds - 1) * 100);
    return b;
}

namespace detail {

/// The least energy above idle (J) the model allows for `macs` of work in `calls` calls within
/// `budget` seconds: at one level, or split between two (a share at a slower level that alone
/// would miss, the rest at a faster one, ending at the budget; the optimum of that linear program
/// never needs more than two levels), switches free. Empty when even f_max does not fit.
[[nodiscard]] inline std::optional<double> cheapest_within(const dvfs::platform_model& model, double macs,
                                                          std::size_t calls, double budget) {
    const std::size_t levels = model.levels();
    const double idle = model.idle_w();
    std::optional<double> best;
    for (std::size_t a = 0; a < levels; ++a) {
        const double ta = model.seconds(macs, calls, a), ea = ta * (model.power_w(a) - idle);
        if (ta <= budget) {
            if (!best || ea < *best) best = ea;
            continue;
        }
        for (std::size_t b = 0; b < levels; ++b) {
            const double tb = model.seconds(macs, calls, b);
            if (tb > budget) continue;
            const double x = (budget - tb) / (ta - tb);  // share of the work at level a
            const double cost = x * ea + (1 - x) * tb * (model.power_w(b) - idle);
            if (!best || cost < *best) best = cost;
        }
    }
    return best;
}

}  // namespace detail

/// The perfect-forecast bound (see the file comment): mean energy per sample (J) of `at_fmax`'s
/// samples (outcomes on the highest level), each run as cheaply as the model allows within
/// `deadline` knowing its whole work in advance (detail::cheapest_within), the slack at idle
/// power. A sample that fits no level runs at f_max. No selector on this model beats it.
[[nodiscard]] inline double perfect_forecast_joules(const dvfs::platform_model& model,
                                                    std::span<const sample_outcome> at_fmax, double deadline) {
    const double idle = model.idle_w();
    const std::size_t top = model.max_level();
    double sum = 0;
    for (const auto& o : at_fmax) {
        const std::size_t calls = o.positions_run + o.heads_evaluated;
        const auto best = detail::cheapest_within(model, o.macs, calls, deadline);
        sum += best ? *best + idle * deadline : model.seconds(o.macs, calls, top) * model.power_w(top);
    }
    return at_fmax.empty() ? 0.0 : sum / static_cast<double>(at_fmax.size());
}

/// The first-head bound: as the perfect-forecast bound, but a sample's work is known only once
/// the first head the policy evaluates (`start_head`) has run, the earliest a selector learns
/// anything of it. Up to there every sample runs the same schedule, one that still lets the
/// plain network finish at f_max by the deadline (a selector that missed every sample going to
/// the final head would miss far more than 1%); from there each sample runs its own remaining
/// work as cheaply as fits. The shared prefix time is searched on a grid of 65 points between
/// its f_max time and its latest (the energies are convex in it, so the grid's minimum is within
/// a step of the optimum). A sample that exits at the first head does only the prefix.
[[nodiscard]] inline double first_head_forecast_joules(const dvfs::platform_model& model, const network_info& info,
                                                       std::size_t start_head, std::span<const sample_outcome> at_fmax,
                                                       double deadline) {
    if (at_fmax.empty()) return 0.0;
    const std::size_t top = model.max_level();
    const double idle = model.idle_w();
    const std::size_t h = std::min(start_head, info.heads - 1);
    const std::size_t pos = info.head_positions[h];
    const double prefix_macs = info.macs_through(pos) + info.head_macs[h];
    const std::size_t prefix_calls = pos + 2;  // stages 0..pos and head h
    const double plain_rest = info.full_macs - info.macs_through(pos);
    const std::size_t plain_rest_calls = info.stages - pos;  // the stages after pos and the final head
    const double fastest_prefix = model.seconds(prefix_macs, prefix_calls, top);
    const double latest_prefix = deadline - model.seconds(plain_rest, plain_rest_calls, top);
    // steps = 0 when there is no room to slow the prefix: its f_max time alone.
    constexpr int grid = 64;
    const int steps = latest_prefix > fastest_prefix ? grid : 0;
    std::optional<double> best;
    for (int g = 0; g <= steps; ++g) {
        const double tp = fastest_prefix + (latest_prefix - fastest_prefix) * g / grid;  // >= fastest_prefix
        const double prefix_j = detail::cheapest_within(model, prefix_macs, prefix_calls, tp)
                                    .value_or(fastest_prefix * (model.power_w(top) - idle));
        const double left = deadline - tp;
        double sum = 0;
        for (const auto& o : at_fmax) {
            const std::size_t calls = o.positions_run + o.heads_evaluated;
            const double rest_macs = std::max(0.0, o.macs - prefix_macs);
            const std::size_t rest_calls = calls > prefix_calls ? calls - prefix_calls : 0;
            double rest = 0;
            if (rest_calls > 0) {
                const auto r = detail::cheapest_within(model, rest_macs, rest_calls, left);
                rest = r ? *r : model.seconds(rest_macs, rest_calls, top) * (model.power_w(top) - idle);
            }
            sum += prefix_j + rest + idle * deadline;
        }
        const double mean = sum / static_cast<double>(at_fmax.size());
        if (!best || mean < *best) best = mean;
    }
    return *best;
}

/// The selector settings chosen on validation for one policy at one budget.
struct selector_choice {
    dvfs::options options{.reserve = 1.0};
    bool qualified = false;  ///< some setting met the miss rate (else the safe fallback)
    nlohmann::json tried = nlohmann::json::array();
};

/// Least energy on `val` with at most demo_dvfs_max_miss_rate misses, over the objectives and
/// reserves; the safe rule (lowest level, reserve 1) when none qualifies.
template <class Policy>
[[nodiscard]] selector_choice choose_selector(const Policy& inner, const dvfs::platform_model& model,
                                              const dvfs::model_clock& clock, const trace& val, double deadline) {
    selector_choice c;
    double best = 0;
    for (const auto objective : {dvfs::objective::lowest_level, dvfs::objective::least_energy})
        for (const double r : demo_dvfs_reserves) {
            const dvfs::options o{.objective = objective, .reserve = r};
            const auto m = modelled_row("dvfs", policy::with_dvfs(inner, model, o), val, clock, deadline);
            c.tried.push_back(nlohmann::json{{"objective", std::string(name_of(objective))},
                                             {"reserve", r},
                                             {"energy_mj_per_sample", *m.energy_joules * 1e3},
                                             {"deadline_miss_rate", *m.deadline_miss_rate}});
            if (*m.deadline_miss_rate <= demo_dvfs_max_miss_rate && (!c.qualified || *m.energy_joules < best)) {
                c.qualified = true;
                best = *m.energy_joules;
                c.options = o;
            }
        }
    return c;
}

[[nodiscard]] inline std::string selector_text(const selector_choice& c) {
    return fmt::format("{} reserve {:g}{}", name_of(c.options.objective), c.options.reserve,
                       c.qualified ? "" : " (fallback: no setting met <= 1% misses on validation)");
}

/// One curve of the sweep plot, with its miss rates beside (for the JSON).
struct sweep_series {
    std::string name;
    std::vector<double> budget_ms, energy_mj, miss_rate;
};

/// The sweep of one table: energy per sample against the budget.
struct dvfs_sweep {
    std::string table;
    std::string stem;                   ///< the plot's file stem
    std::vector<curve> curves;          ///< x: budget / full's time, y: mJ per sample
    nlohmann::json json;
    std::string summary;                ///< a few lines for the console
};

/// What the DVFS section decided on validation, and its rows on the evaluated images.
struct dvfs_section {
    std::vector<policy_metrics> rows;  ///< full_fmax, <static>_fmax, <static>_dvfs, predictive_fmax, predictive_dvfs, predictive_dvfs_reference
    nlohmann::json json;                   ///< the result JSON's "dvfs" object
    std::vector<curve> energy_curves;      ///< the chosen table's sweep (energy_deadline.png)
    std::vector<dvfs_sweep> sweeps;        ///< every table's sweep (energy_deadline_<table>.png)
    std::vector<policy_metrics> hardware_rows;  ///< --dvfs cpufreq: the same rows on the real governor
    std::string static_name;               ///< the static headline's family ("max_prob")
    std::string table;                     ///< the chosen table's file name
    double deadline_ms = 0;
    double perfect_forecast_mj = 0;        ///< the perfect-forecast bound at the rows' budget (mJ per sample)
    double first_head_mj = 0;              ///< the first-head bound at the rows' budget (mJ per sample)
};

/// The real governor and energy counter of --dvfs cpufreq (made before the long runs, so that a
/// machine without them fails at once, naming what is missing).
struct dvfs_hardware {
    dvfs::cpufreq_backend backend;
    dvfs::rapl_meter meter;
};

namespace detail {

/// The sweep of one table on the test trace, the selectors chosen on validation per budget.
template <class Static>
[[nodiscard]] dvfs_sweep sweep_table(const dvfs_table& table, double machine_rate, const network_info& info,
                                     const trace& val, const trace& test, const Static* headline,
                                     const std::string& static_name, const policy::predictive& predictive) {
    const auto model = demo_platform_model(table.domain, machine_rate);
    const dvfs::model_clock clock(model, std::nullopt, between_samples::keep_level);
    const dvfs_budget budget = default_budget(model, clock, info, val, headline, predictive);
    std::vector<sweep_series> series;
    const auto add = [&](const std::string& name, double d, double mj, double miss) {
        auto it = std::find_if(series.begin(), series.end(), [&](const auto& x) { return x.name == name; });
        if (it == series.end()) it = series.insert(series.end(), sweep_series{name, {}, {}, {}});
        it->budget_ms.push_back(d * 1e3);
        it->energy_mj.push_back(mj);
        it->miss_rate.push_back(miss);
    };
    nlohmann::json points = nlohmann::json::array();
    std::string lines;
    const int steps = static_cast<int>((demo_dvfs_sweep_to - demo_dvfs_sweep_from) / demo_dvfs_sweep_step + 0.5);
    for (int s = 0; s <= steps; ++s) {
        const double factor = demo_dvfs_sweep_from + demo_dvfs_sweep_step * s;
        const double d = budget.seconds * factor;
        nlohmann::json point{{"budget_over_default", factor}, {"budget_ms", d * 1e3}};
        const auto put = [&](const std::string& name, const policy_metrics& m, const selector_choice* c = nullptr) {
            add(name, d, *m.energy_joules * 1e3, *m.deadline_miss_rate);
            point[name] = {{"energy_mj_per_sample", *m.energy_joules * 1e3}, {"deadline_miss_rate", *m.deadline_miss_rate}};
            if (c) point[name]["selector"] = selector_text(*c);
        };
        put("full_fmax", modelled_row("full_fmax", policy::full{}, test, clock, d));
        std::optional<policy_metrics> sf, sd;
        if (headline) {
            const auto c = choose_selector(*headline, model, clock, val, d);
            sf = modelled_row(static_name + "_fmax", *headline, test, clock, d);
            sd = modelled_row(static_name + "_dvfs", policy::with_dvfs(*headline, model, c.options), test, clock, d);
            put(static_name + "_fmax", *sf);
            put(static_name + "_dvfs", *sd, &c);
        }
        const auto c = choose_selector(predictive, model, clock, val, d);
        auto copy = predictive;
        const auto fmax_out = replay(test, copy, clock, d);
        const auto pf = summarize("predictive_fmax", fmax_out, test, d);
        const auto pd = modelled_row("predictive_dvfs", policy::with_dvfs(predictive, model, c.options), test, clock, d);
        const auto pr = modelled_row("predictive_dvfs_reference",
                                     policy::with_dvfs(predictive, model, {.rule = dvfs::rule::reference}), test, clock, d);
        const double bound = perfect_forecast_joules(model, fmax_out, d);
        const double first = first_head_forecast_joules(model, info, predictive.options().start_head, fmax_out, d);
        put("predictive_fmax", pf);
        put("predictive_dvfs", pd, &c);
        put("predictive_dvfs_reference", pr);
        add("predictive_perfect_forecast", d, bound * 1e3, 0.0);
        point["predictive_perfect_forecast"] = {{"energy_mj_per_sample", bound * 1e3}};
        add("predictive_first_head_forecast", d, first * 1e3, 0.0);
        point["predictive_first_head_forecast"] = {{"energy_mj_per_sample", first * 1e3}};
        points.push_back(std::move(point));
        if (s % 2 == 0 || s == steps) {
            lines += fmt::format("    {:.1f}x ({:.4g} ms): predictive_dvfs {:.2f}x predictive_fmax ({:.2f}% misses; perfect "
                                 "forecast {:.2f}x, from the first head {:.2f}x)",
                                 factor, d * 1e3, *pd.energy_joules / *pf.energy_joules, *pd.deadline_miss_rate * 100,
                                 bound / *pf.energy_joules, first / *pf.energy_joules);
            if (sd)
                lines += fmt::format(", {}_dvfs {:.2f}x {}_fmax ({:.2f}%)", static_name,
                                     *sd->energy_joules / *sf->energy_joules, static_name, *sd->deadline_miss_rate * 100);
            lines += fmt::format(", reference {:.2f}x ({:.2f}%); best early exit at f_max {:.4g} mJ, best DVFS row "
                                 "within 1% misses {}\n",
                                 *pr.energy_joules / *pf.energy_joules, *pr.deadline_miss_rate * 100,
                                 (sf ? std::min(*sf->energy_joules, *pf.energy_joules) : *pf.energy_joules) * 1e3,
                                 [&] {
                                     double best = 0;
                                     bool any = false;
                                     const policy_metrics* none = nullptr;
                                     for (const policy_metrics* m : {sd ? &*sd : none, &pd, &pr})
                                         if (m && *m->deadline_miss_rate <= demo_dvfs_max_miss_rate &&
                                             (!any || *m->energy_joules < best)) {
                                             best = *m->energy_joules;
                                             any = true;
                                         }
                                     return any ? fmt::format("{:.4g} mJ", best * 1e3) : std::string("none");
                                 }());
        }
    }
    dvfs_sweep out;
    out.table = table.file;
    out.stem = "energy_deadline_" + std::filesystem::path(table.file).stem().string();
    for (const auto& x : series) {
        curve c{x.name, {}};
        for (std::size_t i = 0; i < x.energy_mj.size(); ++i)
            c.points.emplace_back(x.budget_ms[i] / (budget.seconds * 1e3), x.energy_mj[i]);
        out.curves.push_back(std::move(c));
    }
    out.json = {{"table", table.file},
                {"measures", table.domain.measures()},
                {"idle_w", table.domain.idle_power_w()},
                {"macs_per_second_at_fmax", model.macs_per_second_at_max()},
                {"full_ms_at_fmax", budget.full_seconds * 1e3},
                {"default_budget_ms", budget.seconds * 1e3},
                {"default_budget_rule", budget.rule},
                {"points", points}};
    out.summary = fmt::format("  {} (default budget {:.4g} ms, full at f_max {:.4g} ms, idle {:.3g} W): energy per sample "
                              "against the budget (a multiple of the default)\n{}",
                              table.file, budget.seconds * 1e3, budget.full_seconds * 1e3, table.domain.idle_power_w(),
                              lines);
    return out;
}

}  // namespace detail

/// Runs the DVFS rows (see the file comment). `headline` is the validation-calibrated static
/// headline (null: no static rows) and `static_name` its family's name; `predictive` the
/// calibrated predictive policy; `tables` the tables to sweep (tables_beside()); prepare(i,
/// state) fills sample i as for run_demo(). With `hardware`, the same rows are also run live on
/// it (wall time, the real governor, RAPL energy over the period) and reported beside the model's.
template <class Network, class Static, class Prepare>
[[nodiscard]] dvfs_section run_dvfs_rows(const Network& net, typename Network::state_type& state, const trace& val,
                                         const trace& test, const Static* headline, const std::string& static_name,
                                         const policy::predictive& predictive, const dvfs::frequency_domain& domain,
                                         std::string_view table_name, const std::vector<dvfs_table>& tables,
                                         std::optional<double> deadline_ms, Prepare&& prepare,
                                         dvfs_hardware* hardware = nullptr) {
    const auto info = net.info();
    const full_times val_full = recorded_full_times(val);
    const double machine_rate = info.full_macs / val_full.mean;
    std::string speed;
    const auto model = demo_platform_model(domain, machine_rate, &speed);
    const dvfs::model_clock clock(model, std::nullopt, between_samples::keep_level);

    // The budget: the plain network's time at f_max on the model (or given), see the file comment.
    const dvfs_budget budget = default_budget(model, clock, info, val, headline, predictive);
    const double full_time = budget.full_seconds;
    const double deadline = deadline_ms ? *deadline_ms / 1e3 : budget.seconds;
    const std::string deadline_rule = deadline_ms ? std::string("given (--deadline-ms)") : budget.rule;

    // The selectors, on validation.
    std::optional<selector_choice> static_choice;
    if (headline) static_choice = choose_selector(*headline, model, clock, val, deadline);
    const selector_choice predictive_choice = choose_selector(predictive, model, clock, val, deadline);
    fmt::print("\nDVFS: table {} ({} levels, {:.0f}-{:.0f} MHz; power of: {}; idle {:.3g} W), time and energy from its "
               "model over each sample's period (active power while working, idle power in the slack; the level kept "
               "across samples); speed at f_max {:.4g} GMAC/s ({}); budget {:.4g} ms: {}; selectors chosen on validation "
               "(least energy with <= {:g}% misses): predictive_dvfs {}{}\n",
               table_name, domain.size(), domain[0].frequency_hz / 1e6, domain[domain.max_level()].frequency_hz / 1e6,
               domain.measures().empty() ? std::string("not stated") : domain.measures(), domain.idle_power_w(),
               model.macs_per_second_at_max() / 1e9, speed, deadline * 1e3, deadline_rule, demo_dvfs_max_miss_rate * 100,
               selector_text(predictive_choice),
               static_choice ? fmt::format(", {}_dvfs {}", static_name, selector_text(*static_choice)) : std::string());

    // The rows on the evaluated images: live (real skipped work, the model's time and energy)
    // and replayed on a copy of the clock.
    std::vector<named_policy<float>> policies{{"full_fmax", policy::full{}}};
    if (headline) {
        policies.push_back({static_name + "_fmax", *headline});
        policies.push_back({static_name + "_dvfs", policy::with_dvfs(*headline, model, static_choice->options)});
    }
    policies.push_back({"predictive_fmax", predictive});
    policies.push_back({"predictive_dvfs", policy::with_dvfs(predictive, model, predictive_choice.options)});
    policies.push_back(
        {"predictive_dvfs_reference", policy::with_dvfs(predictive, model, {.rule = dvfs::rule::reference})});
    dvfs_section out;
    out.static_name = headline ? static_name : std::string();
    out.table = std::string(table_name);
    out.deadline_ms = deadline * 1e3;
    out.rows = run_live_and_replayed(net, state, test, policies, prepare, nullptr, clock, deadline);
    {
        auto copy = predictive;
        const auto at_fmax = replay(test, copy, clock, deadline);
        out.perfect_forecast_mj = perfect_forecast_joules(model, at_fmax, deadline) * 1e3;
        out.first_head_mj =
            first_head_forecast_joules(model, info, predictive.options().start_head, at_fmax, deadline) * 1e3;
    }

    // On the real governor: the same policies live, timed by the wall clock, RAPL's energy over
    // each sample's period (the clock sleeps through the slack).
    if (hardware != nullptr) {
        for (const auto& p : policies) {
            // A clock of its own for each policy's runner (hardware_clock is move-only: one per
            // frequency domain); making it applies the default level, so every policy starts there.
            auto runner = make_runner(net, p.policy,
                                      dvfs::hardware_clock(hardware->backend, hardware->meter, domain, std::nullopt,
                                                           between_samples::keep_level));
            std::vector<sample_outcome> live;
            live.reserve(test.size());
            progress_line bar(fmt::format("cpufreq {}", p.name), test.size());
            for (std::size_t i = 0; i < test.size(); ++i) {
                const auto label = prepare(i, state);
                live.push_back(outcome_of(runner.run(state, sample_info{i, label, deadline})));
                bar.tick(i + 1);
            }
            bar.finish();
            out.hardware_rows.push_back(
                summarize(p.name + "_cpufreq", live, [&](std::size_t i) { return test.label(i); }, info, deadline));
        }
        if (hardware->backend.failures() > 0 || hardware->meter.failures() > 0)
            fmt::print(stderr, "cpufreq: {} failed level changes (last: {}), RAPL: {} failed reads (last: {})\n",
                       hardware->backend.failures(), hardware->backend.last_error(), hardware->meter.failures(),
                       hardware->meter.last_error());
    }

    // Energy per sample against the budget, for every table, by replay (the rows above show
    // replay = live).
    nlohmann::json sweeps = nlohmann::json::array();
    for (const auto& t : tables) {
        out.sweeps.push_back(detail::sweep_table(t, machine_rate, info, val, test, headline, static_name, predictive));
        sweeps.push_back(out.sweeps.back().json);
        if (t.file == table_name) out.energy_curves = out.sweeps.back().curves;
    }

    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : out.rows) rows.push_back(policy_json(r));
    const auto row = [&](std::string_view name) -> const policy_metrics& {
        return *std::find_if(out.rows.begin(), out.rows.end(), [&](const auto& r) { return r.name == name; });
    };
    const auto& fmax = row("predictive_fmax");
    const auto& dv = row("predictive_dvfs");
    out.json = {{"table", std::string(table_name)},
                {"table_name", domain.name()},
                {"table_source", domain.source()},
                {"table_measures", domain.measures()},
                {"idle_w", domain.idle_power_w()},
                {"energy", "the table's model over each sample's period: active power (P_static + C_eff V^2 f, or the "
                           "level's measured power) while working, switches at the table's latency and energy, the "
                           "table's idle power in the slack before the deadline; the level is kept across samples"},
                {"speed", speed},
                {"macs_per_second_at_fmax", model.macs_per_second_at_max()},
                {"full_ms_at_fmax", full_time * 1e3},
                {"deadline_ms", deadline * 1e3},
                {"deadline_rule", deadline_rule},
                {"predictive_selector", {{"objective", std::string(name_of(predictive_choice.options.objective))},
                                         {"reserve", predictive_choice.options.reserve},
                                         {"qualified", predictive_choice.qualified},
                                         {"on_validation", predictive_choice.tried}}},
                {"energy_ratio_dvfs_vs_fmax", *dv.energy_joules / *fmax.energy_joules},
                {"perfect_forecast_mj_per_sample", out.perfect_forecast_mj},
                {"perfect_forecast_ratio_vs_fmax", out.perfect_forecast_mj / (*fmax.energy_joules * 1e3)},
                {"first_head_forecast_mj_per_sample", out.first_head_mj},
                {"first_head_forecast_ratio_vs_fmax", out.first_head_mj / (*fmax.energy_joules * 1e3)},
                {"policies", rows},
                {"energy_vs_budget", sweeps}};
    if (static_choice) {
        out.json["static_policy"] = static_name;
        out.json["static_selector"] = {{"objective", std::string(name_of(static_choice->options.objective))},
                                       {"reserve", static_choice->options.reserve},
                                       {"qualified", static_choice->qualified},
                                       {"on_validation", static_choice->tried}};
    }
    if (!out.hardware_rows.empty()) {
        nlohmann::json hw = nlohmann::json::array();
        for (const auto& r : out.hardware_rows) hw.push_back(policy_json(r));
        out.json["cpufreq_policies"] = hw;
    }
    return out;
}

/// Prints the DVFS rows, the goals and every table's sweep.
inline void print_dvfs_section(const dvfs_section& s, std::string_view model, std::size_t n, double final_accuracy) {
    fmt::print("\n{} on {} images with DVFS ({}; time and energy from the table's model over each sample's period, "
               "budget {:.4g} ms):\n",
               model, n, s.table, s.deadline_ms);
    print_table(stdout, s.rows, final_accuracy);
    const auto row = [&](const std::string& name) -> const policy_metrics* {
        const auto it = std::find_if(s.rows.begin(), s.rows.end(), [&](const auto& r) { return r.name == name; });
        return it == s.rows.end() ? nullptr : &*it;
    };
    const auto& full = *row("full_fmax");
    const auto& pf = *row("predictive_fmax");
    const auto& pd = *row("predictive_dvfs");
    const auto& pr = *row("predictive_dvfs_reference");
    const auto mj = [](const policy_metrics& r) { return *r.energy_joules * 1e3; };
    fmt::print("energy per sample: predictive_dvfs {:.4g} mJ = {:.2f}x predictive_fmax ({:.4g} mJ; goal <= 0.8x), "
               "{:.2f}x full_fmax ({:.4g} mJ); deadline misses {:.2f}% (goal <= 1%); reference rule {:.4g} mJ ({:.2f}x) "
               "with {:.2f}% misses; the perfect-forecast bound (each sample's own work at its cheapest levels that fit) "
               "{:.4g} mJ ({:.2f}x); the first-head bound (its work known only once its first head has run, the plain "
               "network still able to finish at f_max) {:.4g} mJ ({:.2f}x)\n",
               mj(pd), mj(pd) / mj(pf), mj(pf), mj(pd) / mj(full), mj(full), *pd.deadline_miss_rate * 100, mj(pr),
               mj(pr) / mj(pf), *pr.deadline_miss_rate * 100, s.perfect_forecast_mj, s.perfect_forecast_mj / mj(pf),
               s.first_head_mj, s.first_head_mj / mj(pf));
    if (!s.static_name.empty()) {
        const auto& sf = *row(s.static_name + "_fmax");
        const auto& sd = *row(s.static_name + "_dvfs");
        // The best DVFS row within the miss goal, against the best static early exit at f_max.
        const policy_metrics* best = nullptr;
        for (const auto* r : {&sd, &pd, &pr})
            if (*r->deadline_miss_rate <= demo_dvfs_max_miss_rate && (!best || *r->energy_joules < *best->energy_joules))
                best = r;
        fmt::print("{}_dvfs {:.4g} mJ = {:.2f}x {}_fmax ({:.4g} mJ), misses {:.2f}%; best DVFS row within 1% misses: {} "
                   "({}), against the static early exit at f_max ({}_fmax {:.4g} mJ; goal: below it)\n",
                   s.static_name, mj(sd), mj(sd) / mj(sf), s.static_name, mj(sf), *sd.deadline_miss_rate * 100,
                   best ? best->name : std::string("none"),
                   best ? fmt::format("{:.4g} mJ, {:.2f}x", mj(*best), mj(*best) / mj(sf)) : std::string("-"),
                   s.static_name, mj(sf));
    }
    for (const auto& w : s.sweeps) fmt::print("{}", w.summary);
}

}  // namespace earlyexit::demo
