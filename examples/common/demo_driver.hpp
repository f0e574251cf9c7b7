#pragma once
// What the CIFAR-10 and ImageNet demos share: the command-line flags and the evaluation.
//
// run_demo() takes a network and a way to put sample i into a state, then:
//   1. calibrates every static family on a validation trace (shipped with the demo, recorded
//      by the same network on images never trained on) at the least compute such that the
//      upper confidence bound (--calibration-confidence, 0.95 by default) of the accuracy it
//      loses against the final head there is at most --max-loss minus --calibration-margin
//      points (--max-loss: the goal on the evaluated images, 0.5 by default, 1 in the ImageNet
//      demo; the margin, 0 by default, keeps points back for a known validation -> evaluation
//      gap); `fixed` becomes the cheapest single head within the same bound;
//   2. records the evaluation images in probe mode (every head, every stage) as a trace;
//   3. replays every policy on that trace;
//   4. runs every policy live, with real skipped work and measured wall time, and checks that
//      the live decisions equal the replayed ones;
//   5. prints the per-exit accuracies and the comparison table, writes the result JSON and
//      the plots when asked.

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <earlyexit/io.hpp>
#include <fmt/core.h>
#include <fmt/ranges.h>

namespace earlyexit::demo {

/// Every policy the demos run, by the name --policy takes.
inline const std::vector<std::string> demo_policy_names{"full",   "oracle",   "max_prob", "entropy",
                                                        "margin", "patience", "fixed"};

struct demo_options {
    std::string program;                      ///< for messages
    std::string dataset, model;               ///< for the table title, the JSON and the plots
    std::vector<std::string> policies;        ///< --policy (empty: all)
    std::size_t limit = 0;                    ///< --limit (0: every image)
    std::filesystem::path calibration;        ///< --calibration: a validation trace folder
    std::filesystem::path json, plots, record_trace;
    bool record_only = false;                 ///< --record-only: write the trace, evaluate nothing
    double points = 0.5;                      ///< --max-loss: accuracy points a policy may lose (the goal)
    double margin = 0.0;                      ///< --calibration-margin: points of it kept back on validation
    double confidence = 0.95;                 ///< --calibration-confidence: level of the bound on the loss

    /// The loss the policies are calibrated to on the validation trace.
    [[nodiscard]] double calibration_points() const noexcept { return points - margin; }
    std::optional<int> batch, threads;        ///< rejected until batched execution exists
};

/// Adds the flags both demos take (--data, --labels and --weights are the demo's own).
inline void add_demo_flags(CLI::App& app, demo_options& o) {
    app.add_option("--limit", o.limit, "evaluate only the first N images (0: all)")->check(CLI::NonNegativeNumber);
    app.add_option("--policy", o.policies,
                   fmt::format("policies to run, comma-separated, from: {} (default: all; full and oracle are always "
                               "run, as the baselines)",
                               fmt::join(demo_policy_names, ", ")))
        ->delimiter(',');
    app.add_option("--calibration", o.calibration,
                   "validation trace (folder) the policies are calibrated on (default: the shipped one)");
    app.add_option("--max-loss", o.points,
                   "accuracy points a policy may lose against the final head on the evaluated images (the goal; the "
                   "summary line picks the cheapest policy within it)")
        ->check(CLI::Range(0.0, 100.0))
        ->capture_default_str();
    app.add_option("--calibration-margin", o.margin,
                   "points of --max-loss kept back when calibrating on the validation trace, for the gap between "
                   "validation and evaluation images")
        ->check(CLI::Range(0.0, 100.0))
        ->capture_default_str();
    app.add_option("--calibration-confidence", o.confidence,
                   "the loss calibrated on the validation trace is the upper confidence bound at this level (0: the "
                   "measured loss), so that the noise of a finite validation split does not pick the threshold")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--json", o.json, "write the result JSON to FILE");
    app.add_option("--plots", o.plots, "write tradeoff.png and exits.png (gnuplot) into DIR");
    app.add_option("--record-trace", o.record_trace, "also write the probe-mode trace of the images into DIR");
    app.add_flag("--record-only", o.record_only,
                 "only record the trace into --record-trace DIR (e.g. a validation split to calibrate on), then stop");
    app.add_option("--batch", o.batch, "batch size (not available yet)");
    app.add_option("--threads", o.threads, "worker threads (not available yet)");
}

/// Checks the flags CLI11 cannot: throws earlyexit::error naming the bad value.
inline void check_demo_flags(const demo_options& o) {
    if (o.batch)
        earlyexit::fail("--batch {}: batched execution is not implemented yet (planned with the batched-execution step); "
                     "run without --batch: samples are evaluated one at a time",
                     *o.batch);
    if (o.threads)
        earlyexit::fail("--threads {}: multi-threaded evaluation is not implemented yet (planned with the batched-execution "
                     "step); run without --threads: one thread evaluates every sample, so wall times are comparable",
                     *o.threads);
    if (o.record_only && o.record_trace.empty()) earlyexit::fail("--record-only needs --record-trace DIR");
    if (o.margin > o.points)
        earlyexit::fail("--calibration-margin {} is larger than --max-loss {}: nothing left to calibrate to", o.margin,
                                o.points);
    if (!valid_confidence(o.confidence))
        earlyexit::fail("--calibration-confidence {}: must be 0 (the measured loss) or in [0.5, 1)", o.confidence);
    for (const auto& p : o.policies)
        if (std::find(demo_policy_names.begin(), demo_policy_names.end(), p) == demo_policy_names.end())
            earlyexit::fail("--policy {}: unknown policy; choose from {}", p, fmt::join(demo_policy_names, ", "));
}

/// How many of a dataset's `available` images the demo evaluates: all, or the first --limit;
/// throws naming the dataset when that is none.
[[nodiscard]] inline std::size_t images_to_run(const demo_options& o, std::size_t available,
                                               const std::filesystem::path& data) {
    const std::size_t n = o.limit == 0 ? available : std::min(o.limit, available);
    if (n == 0) earlyexit::fail("dataset {}: no images", data.string());
    return n;
}

namespace detail {

/// The validation trace must come from the same network (same exits, costs and classes).
inline void check_same_layout(const trace& t, const network_info& n, const std::filesystem::path& where) {
    const auto l = trace_layout::of(n);
    if (t.layout().classes != l.classes || t.layout().head_positions != l.head_positions ||
        t.layout().stage_macs != l.stage_macs || t.layout().head_macs != l.head_macs)
        earlyexit::fail(
            "calibration trace {}: recorded with another network ({} classes, heads at stages [{}]; this network: {} "
            "classes, heads at stages [{}], or different MACs)",
            where.string(), t.layout().classes, fmt::join(t.layout().head_positions, ", "), l.classes,
            fmt::join(l.head_positions, ", "));
}

}  // namespace detail

/// Runs the whole evaluation (see the file comment). prepare(i, state) writes sample i into the
/// state and returns its label. Returns the process exit code: 0, or 1 when a live run made other
/// decisions than its replay.
template <class Network, class Prepare>
int run_demo(const Network& net, typename Network::state_type& state, std::size_t n, Prepare&& prepare,
             const demo_options& o) {
    const auto info = net.info();
    const auto wanted = [&](std::string_view name) {
        return o.policies.empty() || std::find(o.policies.begin(), o.policies.end(), name) != o.policies.end();
    };

    if (o.record_only) {
        progress_line recording("recording (probe, all heads)", n);
        auto t = record_trace(net, state, n, prepare, wall_clock{}, [&](std::size_t i) { recording.tick(i + 1); });
        recording.finish();
        t.provenance = {{"dataset", o.dataset}, {"model", o.model}};
        write_trace(o.record_trace, t);
        fmt::print("wrote the trace of {} images to {}\n", n, o.record_trace.string());
        return 0;
    }

    // 1. Calibration on the validation trace.
    const trace val = read_trace(o.calibration);
    detail::check_same_layout(val, info, o.calibration);
    const double val_final = *evaluate(val, "full", policy::full{}).accuracy;
    fmt::print("calibration: {} validation samples ({}), final head {:.2f}%; each policy may lose {:.3g} points there "
               "(--max-loss {:.3g} - margin {:.3g}), {}\n",
               val.size(), o.calibration.string(), val_final * 100, o.calibration_points(), o.points, o.margin,
               o.confidence == 0.0 ? std::string("as measured")
                                   : fmt::format("at the {:.3g}% upper confidence bound", o.confidence * 100));
    std::vector<named_policy<float>> policies;
    for (const auto family : all_threshold_families) {
        if (!wanted(name_of(family))) continue;
        const auto c = calibrate(val, family, accuracy_target{o.calibration_points(), o.confidence});
        const auto& m = c.on_calibration;
        fmt::print("  {:<20} parameter {:<10.4g} validation {:.2f}% (loss bound {:.2f}), saving {:.1f}%{}\n", c.name(),
                   c.parameter, *m.accuracy * 100, c.drop_bound_points, m.compute_saving * 100,
                   c.met ? "" : "  (target NOT met: closest point)");
        policies.push_back({c.name(), c.make()});
    }
    if (wanted("fixed")) {
        std::size_t k = info.heads - 1;
        double bound = 0;
        for (std::size_t h = 0; h < info.heads; ++h) {
            bound = accuracy_drop_bound(val, replay(val, policy::fixed{h}), o.confidence);
            if (bound <= o.calibration_points() + 1e-12) {
                k = h;
                break;
            }
        }
        const auto m = evaluate(val, "fixed", policy::fixed{k});
        fmt::print("  {:<20} head {:<15} validation {:.2f}% (loss bound {:.2f}), saving {:.1f}%\n", "fixed_calibrated", k,
                   *m.accuracy * 100, bound, m.compute_saving * 100);
        policies.push_back({"fixed_calibrated", policy::fixed{k}});
    }
    policies = with_baselines(std::move(policies));

    // 2. Record the evaluation images (probe mode: every head, every stage).
    progress_line recording("recording (probe, all heads)", n);
    auto test = record_trace(net, state, n, prepare, wall_clock{}, [&](std::size_t i) { recording.tick(i + 1); });
    recording.finish();
    test.provenance = {{"dataset", o.dataset}, {"model", o.model}};
    if (!o.record_trace.empty()) write_trace(o.record_trace, test);
    if (!test.labelled()) earlyexit::fail("{}: every image needs a label (the accuracy and the oracle need it)", o.dataset);

    fmt::print("\nexits on {} ({} images):\n", o.dataset, n);
    for (std::size_t k = 0; k < info.heads; ++k) {
        const auto m = evaluate(test, "fixed", policy::fixed{k});
        fmt::print("  head {} after stage {:>2}: accuracy {:6.2f}%  MACs {:>6.2f}M ({:5.1f}% of the full network)\n", k,
                   info.head_positions[k], *m.accuracy * 100, m.mean_macs / 1e6, m.mean_macs / info.full_macs * 100);
    }

    // 3 and 4. Replay, then live with real skipped work; the rows are the live measurements.
    std::vector<policy_metrics> rows;
    std::vector<sample_outcome> outcomes;
    outcomes.reserve(n);
    for (auto& p : policies) {
        const auto replayed = replay(test, p.policy);
        auto runner = make_runner(net, p.policy);
        outcomes.clear();
        progress_line live(fmt::format("live {}", p.name), n);
        for (std::size_t i = 0; i < n; ++i) {
            const std::optional<std::size_t> label = prepare(i, state);
            outcomes.push_back(outcome_of(runner.run(state, sample_info{i, label})));
            live.tick(i + 1);
        }
        live.finish();
        auto row = summarize(p.name, outcomes, [&](std::size_t i) { return test.label(i); }, info);
        row.replay_matches_live = same_decisions(outcomes, replayed);
        rows.push_back(std::move(row));
    }

    const double final_accuracy = *rows.front().accuracy;
    fmt::print("\n{} on {} images, live (wall time measured per sample, one thread):\n", o.model, n);
    print_table(stdout, rows, final_accuracy);

    // The headline: the cheapest policy within the loss budget, against full and the oracle.
    const policy_metrics* best = nullptr;
    for (std::size_t j = 2; j < rows.size(); ++j)
        if (*rows[j].accuracy >= final_accuracy - o.points / 100.0 - 1e-12 &&
            (!best || rows[j].compute_saving > best->compute_saving))
            best = &rows[j];
    if (best)
        fmt::print("\n{}: {:+.2f} points, {:.1f}% of the compute saved, {:.3g} ms/sample vs {:.3g} ms for full ({:.2f}x); "
                   "oracle would save {:.1f}%\n",
                   best->name, (*best->accuracy - final_accuracy) * 100, best->compute_saving * 100,
                   best->mean_seconds * 1e3, rows[0].mean_seconds * 1e3, rows[0].mean_seconds / best->mean_seconds,
                   rows[1].compute_saving * 100);
    else
        fmt::print("\nno calibrated policy stayed within {} points of the final head on these images\n", o.points);

    if (!o.json.empty()) {
        auto j = result_json(o.dataset, o.model, rows, final_accuracy);
        write_json(o.json, j);
        fmt::print("wrote {}\n", o.json.string());
    }
    if (!o.plots.empty()) {
        std::vector<std::vector<sweep_point>> sweeps;
        for (const auto family : all_threshold_families) sweeps.push_back(sweep(test, family, 64));
        plot_tradeoff(o.plots, fmt::format("{}: accuracy vs compute ({} images)", o.dataset, n),
                      tradeoff_curves(all_threshold_families, sweeps), rows);
        plot_exit_histogram(o.plots, rows);
        fmt::print("wrote {}/tradeoff.png and exits.png\n", o.plots.string());
    }
    bool ok = true;
    for (const auto& r : rows)
        if (!*r.replay_matches_live) {
            fmt::print(stderr, "{}: {}: the live run made other decisions than its replay\n", o.program, r.name);
            ok = false;
        }
    return ok ? 0 : 1;
}

}  // namespace earlyexit::demo
