#pragma once
// The demos' DVFS rows: the validation-calibrated predictive policy run at the highest level
// (`predictive_fmax`), with the DVFS selector (`predictive_dvfs`, deadline rule;
// `predictive_dvfs_reference`, the reference rule f = J * f_max / r), and the plain network at
// the highest level (`full_fmax`), every sample with the same deadline, on a model clock of a
// frequency table (dvfs/clock.hpp): time and energy are the model's, deterministic, so each row
// is run live (real skipped work) and replayed with the same times and energy.
//
// Fixed before any evaluation run, all from the validation trace and the table:
//   * the model's rate at the highest level: the plain network's declared MACs over its mean
//     recorded time per sample on the validation trace (this machine's speed is taken as f_max);
//   * the deadline (unless --deadline-ms): the larger of the p99 of the plain network's recorded
//     time on the validation trace and the longest modelled time of predictive_fmax there, so
//     that predictive_fmax misses none on validation;
//   * the selector's objective (lowest level or least energy among the levels that fit) and
//     reserve (of {1, 0.75, 0.5, 0.25, 0}): the pair whose predictive_dvfs run on validation uses
//     the least energy with at most 1% deadline misses (reserve 1 guarantees the deadline; see
//     dvfs/selector.hpp).
// Then every row on the evaluated images, and energy per sample against the deadline (a sweep
// of multiples of the plain network's modelled time) for the plot.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/hardware_clock.hpp>
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

/// What the DVFS section decided on validation, and its rows on the evaluated images.
struct dvfs_section {
    std::vector<policy_metrics> rows;      ///< full_fmax, predictive_fmax, predictive_dvfs, predictive_dvfs_reference
    nlohmann::json json;                   ///< the result JSON's "dvfs" object
    std::vector<curve> energy_curves;      ///< mJ per sample against the deadline (ms), for the plot
    std::vector<policy_metrics> hardware_rows;  ///< --dvfs cpufreq: the same rows on the real governor
};

/// The real governor and energy counter of --dvfs cpufreq (made before the long runs, so that a
/// machine without them fails at once, naming what is missing).
struct dvfs_hardware {
    dvfs::cpufreq_backend backend;
    dvfs::rapl_meter meter;
};

/// Runs the DVFS rows (see the file comment). `predictive` is the calibrated predictive policy;
/// prepare(i, state) fills sample i as for run_demo(). With `hardware`, the same rows are also
/// run live on it (wall time, the real governor, RAPL energy) and reported beside the model's.
template <class Network, class Policy, class Prepare>
[[nodiscard]] dvfs_section run_dvfs_rows(const Network& net, typename Network::state_type& state, const trace& val,
                                         const trace& test, const Policy& predictive,
                                         const dvfs::frequency_domain& domain, std::string_view table_name,
                                         std::optional<double> deadline_ms, Prepare&& prepare,
                                         dvfs_hardware* hardware = nullptr) {
    const auto info = net.info();
    const full_times val_full = recorded_full_times(val);
    const dvfs::platform_model model(domain, info.full_macs / val_full.mean);
    const dvfs::model_clock clock(model);
    const auto modelled = [&](std::string name, const auto& policy, const trace& t, double d) {
        auto copy = policy;
        return summarize(std::move(name), replay(t, copy, clock, d), t, d);
    };

    // The deadline, from validation (or given).
    double deadline = 0;
    std::string deadline_rule;
    if (deadline_ms) {
        deadline = *deadline_ms / 1e3;
        deadline_rule = "given (--deadline-ms)";
    } else {
        auto copy = predictive;
        const auto out = replay(val, copy, clock, std::nullopt);
        double longest = 0;
        for (const auto& o : out) longest = std::max(longest, o.seconds);
        deadline = std::max(val_full.p99, longest);
        deadline_rule = fmt::format(
            "max(p99 of full's recorded time on validation {:.4g} ms, longest modelled predictive_fmax time on "
            "validation {:.4g} ms)",
            val_full.p99 * 1e3, longest * 1e3);
    }

    // The selector's objective and reserve, on validation: least energy with at most 1% misses
    // (reserve 1 with the lowest-level objective, the paper's rule made safe, when none qualifies).
    dvfs_options chosen_options{.reserve = 1.0};
    double best_energy = 0;
    nlohmann::json reserve_json = nlohmann::json::array();
    bool chosen = false;
    for (const auto objective : {dvfs_objective::lowest_level, dvfs_objective::least_energy})
        for (const double r : demo_dvfs_reserves) {
            const dvfs_options c{.objective = objective, .reserve = r};
            const auto m = modelled("predictive_dvfs", policy::with_dvfs(predictive, model, c), val, deadline);
            reserve_json.push_back(nlohmann::json{{"objective", std::string(name_of(objective))},
                                                  {"reserve", r},
                                                  {"energy_mj_per_sample", *m.energy_joules * 1e3},
                                                  {"deadline_miss_rate", *m.deadline_miss_rate}});
            if (*m.deadline_miss_rate <= demo_dvfs_max_miss_rate && (!chosen || *m.energy_joules < best_energy)) {
                chosen = true;
                best_energy = *m.energy_joules;
                chosen_options = c;
            }
        }
    const double reserve = chosen_options.reserve;
    fmt::print("\nDVFS: table {} ({} levels, {:.0f}-{:.0f} MHz), time and energy from its model; f_max rate {:.4g} "
               "GMAC/s (full's mean recorded time on validation, {:.4g} ms); deadline {:.4g} ms: {}; selector {} with "
               "reserve {:g} (chosen on validation: least energy with <= {:g}% misses)\n",
               table_name, domain.size(), domain[0].frequency_hz / 1e6, domain[domain.max_level()].frequency_hz / 1e6,
               model.macs_per_second_at_max() / 1e9, val_full.mean * 1e3, deadline * 1e3, deadline_rule,
               name_of(chosen_options.objective), reserve,
               demo_dvfs_max_miss_rate * 100);

    // The rows on the evaluated images: live (real skipped work, the model's time and energy)
    // and replayed on a copy of the clock.
    const std::vector<named_policy<float>> policies{
        {"full_fmax", policy::full{}},
        {"predictive_fmax", predictive},
        {"predictive_dvfs", policy::with_dvfs(predictive, model, chosen_options)},
        {"predictive_dvfs_reference", policy::with_dvfs(predictive, model, {.rule = dvfs_rule::reference})},
    };
    dvfs_section out;
    out.rows = run_live_and_replayed(net, state, test, policies, prepare, nullptr, clock, deadline);

    // On the real governor: the same policies live, timed by the wall clock, RAPL's energy.
    if (hardware != nullptr) {
        const dvfs::hardware_clock hw(hardware->backend, hardware->meter, domain);
        for (const auto& p : policies) {
            auto runner = make_runner(net, p.policy, hw);
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

    // Energy per sample against the deadline, by replay (the rows above show replay = live).
    const double full_time = model.seconds(info.full_macs, info.stages + 1, model.max_level());
    nlohmann::json sweep = nlohmann::json::array();
    std::vector<curve> curves{{"full_fmax", {}}, {"predictive_fmax", {}}, {"predictive_dvfs", {}}};
    for (double factor = 0.8; factor <= 3.0 + 1e-9; factor += 0.1) {
        const double d = full_time * factor;
        const auto f = modelled("full_fmax", policy::full{}, test, d);
        const auto p = modelled("predictive_fmax", predictive, test, d);
        const auto v = modelled("predictive_dvfs", policy::with_dvfs(predictive, model, chosen_options), test, d);
        const auto point = [](const policy_metrics& m) {
            return nlohmann::json{{"energy_mj_per_sample", *m.energy_joules * 1e3},
                                  {"deadline_miss_rate", *m.deadline_miss_rate}};
        };
        sweep.push_back(nlohmann::json{{"deadline_ms", d * 1e3},
                                       {"full_fmax", point(f)},
                                       {"predictive_fmax", point(p)},
                                       {"predictive_dvfs", point(v)}});
        curves[0].points.emplace_back(d * 1e3, *f.energy_joules * 1e3);
        curves[1].points.emplace_back(d * 1e3, *p.energy_joules * 1e3);
        curves[2].points.emplace_back(d * 1e3, *v.energy_joules * 1e3);
    }

    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : out.rows) rows.push_back(policy_json(r));
    const auto& fmax = out.rows[1];
    const auto& dv = out.rows[2];
    out.json = {{"table", std::string(table_name)},
                {"table_name", domain.name()},
                {"table_source", domain.source()},
                {"energy", "the table's model: P = P_static + C_eff V^2 f (or the measured power of a level), times the "
                           "modelled time; switches cost the table's latency and energy"},
                {"macs_per_second_at_fmax", model.macs_per_second_at_max()},
                {"deadline_ms", deadline * 1e3},
                {"deadline_rule", deadline_rule},
                {"objective", std::string(name_of(chosen_options.objective))},
                {"reserve", reserve},
                {"selector_on_validation", reserve_json},
                {"energy_ratio_dvfs_vs_fmax", *dv.energy_joules / *fmax.energy_joules},
                {"policies", rows},
                {"energy_vs_deadline", sweep}};
    if (!out.hardware_rows.empty()) {
        nlohmann::json hw = nlohmann::json::array();
        for (const auto& r : out.hardware_rows) hw.push_back(policy_json(r));
        out.json["cpufreq_policies"] = hw;
    }
    out.energy_curves = std::move(curves);
    return out;
}

}  // namespace earlyexit::demo
