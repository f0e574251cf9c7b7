#pragma once
// What the CIFAR-10 and ImageNet demos share: the command-line flags and the evaluation.
//
// run_demo() takes a network and a way to put sample i into a state, then:
//   1. calibrates every family (max_prob, entropy, margin, patience, fixed) on a validation
//      trace (shipped with the demo, recorded by the same network on images never trained on)
//      at the least compute such that the 95% upper confidence bound
//      (--calibration-confidence) of the accuracy it loses against the final head there is at
//      most --max-loss minus --calibration-margin points (--max-loss: the goal on the
//      evaluated images, 0.5 by default, 1 in the ImageNet demo; the margin is 0 by default).
//      A family that cannot beat the plain network's cost within that bound falls back to
//      `full` and says so. The headline is chosen here, on validation only: the calibrated
//      family that saves the most compute there;
//      The learning rows get their lambda on the same validation trace for the same target
//      (calibrate_lambda): dee is trained there with labels and scored on the rule it converges
//      to, then serves with agreement probes; dee_online, ucb_exit and epsilon_greedy learn
//      online from empty and are scored on that online run (section 1b below);
//   2. records the evaluation images in probe mode (every head, every stage) as a trace;
//   3. replays every policy on that trace and runs it live, with real skipped work and
//      measured wall time, each run from its own copy of the policy, and checks that the live
//      decisions equal the replayed ones (check_live_against_replay);
//   4. prints the per-exit accuracies, the comparison table (with every row's mean DEE reward),
//      DEE's regret against the rule of its class fitted on validation, DEE against the best
//      static rule (and the static frontier at its accuracy), head skipping with the predictor's
//      error, the DVFS rows, the drift windows (when the demo drifts) and the
//      headline's figures on the evaluated images (whatever they are), writes the result JSON and
//      the plots when asked.
//
// The calibration rule (a 95% bound for both demos) was fixed before any evaluation run; where
// the validation split is too small for it to allow any early exit, the demo says so.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <earlyexit/io.hpp>
#include <nlohmann/json.hpp>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include "demo_backend.hpp"
#include "demo_batch.hpp"
#include "demo_dvfs.hpp"
#include "live_rows.hpp"
#include "resources.hpp"


namespace earlyexit::demo {

/// Every policy the demos run, by the name --policy takes.
inline const std::vector<std::string> demo_policy_names{
    "full",     "oracle",         "max_prob",         "entropy",    "margin", "patience", "fixed",
    "dee",      "dee_online",     "ucb_exit",         "epsilon_greedy",     "check_every_head", "predictive",
    "dvfs"};

/// The learning policies' settings in the demos: confidence bins per exit at the quantiles of the
/// validation trace (the warm-up; 10 for the online learners), one cost bin (every head is
/// evaluated in order). The served DEE is trained on the labelled validation trace with every
/// sample probed (full information: each sample reveals every head) in one pass; its bins (10,
/// 15 or 20) and streak bins (1, or 2: whether the top-1 agrees with the previous head's) are
/// chosen with lambda on validation (the frozen rule's score, the most saving within the goal);
/// it serves with 2% agreement probes. Lambda of every learner is chosen on the validation trace
/// for the same accuracy target as the thresholds (calibrate_lambda).
inline constexpr std::size_t demo_dee_bins = 10;
inline const std::vector<std::size_t> demo_dee_bin_choices{10, 15, 20};
inline const std::vector<std::size_t> demo_dee_streak_choices{1, 2};
inline constexpr std::size_t demo_dee_passes = 1;
inline constexpr double demo_serve_probe_rate = 0.02;
/// The served DEE's lambda grid: 0 to 0.2 in steps of 0.01 (its chosen lambdas on CIFAR-10
/// validation sit below 0.1, where default_lambda_grid is coarse).
[[nodiscard]] inline std::vector<double> demo_dee_lambda_grid() {
    std::vector<double> g;
    for (int i = 0; i <= 20; ++i) g.push_back(0.01 * i);
    return g;
}
/// The served DEE: trained with labels (correctness), serving on agreement probes.
using dee_trainee = policy::dee<reward::correctness_reward>;

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
    double confidence = 0.95;                 ///< --calibration-confidence: level of the bound on the loss (both demos)

    /// The loss the policies are calibrated to on the validation trace.
    [[nodiscard]] double calibration_points() const noexcept { return points - margin; }
    /// --batch / --threads: the main table's rows run batched on this many worker threads
    /// (parallel_runner over the batched network); one sample at a time on one thread when
    /// neither is given.
    std::optional<std::size_t> batch, threads;
    /// The throughput grid: full and the headline at each batch size and thread count, over
    /// the first throughput_samples images (0: no grid); torch_json: the PyTorch baseline's
    /// result (benchmarks/pytorch_throughput.py --json), printed beside when given.
    std::size_t throughput_samples = 2000;
    std::vector<std::size_t> throughput_batches{1, 8, 64};
    std::vector<std::size_t> throughput_threads{1, 2};
    std::filesystem::path torch_json;
    /// --backend: what runs the network, every run of the demo (demo_backend.hpp): "onednn"
    /// (dnnl_model, the default where it was built) or "eigen" (the per-sample network and
    /// batched_model); --precision: "fp32", or "bf16" on oneDNN, calibrated on a validation
    /// trace recorded in bf16 (a trace of the other precision is refused).
    std::string backend = default_backend();
    std::string precision = std::string(precision_fp32);

    /// DVFS rows: the frequency table (--dvfs-table; the demo's default when empty), the
    /// budget (--deadline-ms; the plain network's modelled time at f_max when not given) and the backend (--dvfs:
    /// "model", or "cpufreq" to drive the real governor and meter energy with RAPL).
    std::filesystem::path dvfs_table;
    std::optional<double> deadline_ms;
    std::string dvfs_backend = "model";
    /// --sysfs-root: where --dvfs cpufreq finds cpufreq (<root>/devices/system/cpu) and RAPL
    /// (<root>/class/powercap/intel-rapl:0): /sys, or a fake tree for tests.
    std::filesystem::path sysfs_root = "/sys";

    /// Drift (set by a demo that changes its stream): samples from drift_from on differ from
    /// those before (drift_what says how); the demo then serves dee with demo_drift_probe_rate
    /// probes and reports every window of drift_window samples.
    std::optional<std::size_t> drift_from;
    std::string drift_what;
    std::size_t drift_window = 500;
};

/// The probe rate of the served DEE on a drifting stream (that fraction of samples runs to the
/// final head, their cost counted, and teaches agreement with it), and the memory of its cells
/// there (a moving average over about this many updates, so that the few probe updates a cell
/// gets after a change can move it), both fixed before any drift run.
/// The largest --batch / --throughput-batches and --threads / --throughput-threads the demos take:
/// a bad value (10^12) is refused by name before anything is sized by it.
inline constexpr std::size_t demo_max_batch = 1024;
inline constexpr std::size_t demo_max_threads = 1024;
inline constexpr std::size_t demo_drift_memory = 20;
inline constexpr double demo_drift_probe_rate = 0.05;
/// The drift goal's grace period: a policy is judged on the samples from this many after the change on.
inline constexpr std::size_t demo_drift_settle = 1000;

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
                   "accuracy points a policy may lose against the final head on the evaluated images (the goal the "
                   "policies are calibrated to on the validation trace)")
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
    app.add_option("--dvfs-table", o.dvfs_table,
                   "frequency table (JSON, data/dvfs/) whose model times the DVFS rows (default: the shipped embedded "
                   "board table, Exynos 5422 A15)");
    app.add_option("--deadline-ms", o.deadline_ms,
                   "deadline (latency budget) per sample for the DVFS rows, in ms (default: the plain network's modelled "
                   "time at f_max on the table, printed)")
        ->check(CLI::PositiveNumber);
    app.add_option("--dvfs", o.dvfs_backend,
                   "DVFS backend: model (simulated clock and energy from the table) or cpufreq (drive the Linux "
                   "userspace governor, energy from RAPL, the model's figures printed beside)")
        ->check(CLI::IsMember({"model", "cpufreq"}))
        ->capture_default_str();
    app.add_option("--sysfs-root", o.sysfs_root,
                   "--dvfs cpufreq: the sysfs tree with cpufreq (DIR/devices/system/cpu) and RAPL "
                   "(DIR/class/powercap/intel-rapl:0); a fake tree for tests")
        ->capture_default_str();
    app.add_option("--batch", o.batch,
                   "run the table's policies in batches of N (per-sample exits, results in input order; default: one "
                   "sample at a time)")
        ->check(CLI::Range(std::size_t{1}, demo_max_batch));
    app.add_option("--threads", o.threads, "run the table's policies on N worker threads (default 1)")
        ->check(CLI::Range(std::size_t{1}, demo_max_threads));
    app.add_option("--throughput-samples", o.throughput_samples,
                   "images the throughput grid runs on (the first N evaluated; 0: no grid)")
        ->capture_default_str();
    app.add_option("--throughput-batches", o.throughput_batches, "batch sizes of the throughput grid")
        ->delimiter(',')
        ->check(CLI::Range(std::size_t{1}, demo_max_batch));
    app.add_option("--throughput-threads", o.throughput_threads, "thread counts of the throughput grid")
        ->delimiter(',')
        ->check(CLI::Range(std::size_t{1}, demo_max_threads));
    app.add_option("--backend", o.backend,
                   have_dnnl ? "what runs the network in every run: onednn (fast kernels) or eigen (the reference)"
                             : "what runs the network in every run: eigen (this build has no oneDNN)")
        ->capture_default_str();
    app.add_option("--precision", o.precision,
                   "fp32, or bf16 (oneDNN only; calibrated on a validation trace recorded in bf16, by default the "
                   "shipped <validation trace>_bf16)")
        ->capture_default_str();
    app.add_option("--torch-json", o.torch_json,
                   "PyTorch's full-network throughput, its fastest mode and layout at each batch and thread count "
                   "(benchmarks/pytorch_throughput.py --json FILE), printed beside the grid");
}

/// Checks the flags CLI11 cannot: throws earlyexit::error naming the bad value.
inline void check_demo_flags(const demo_options& o) {
    // CLI11's Range and PositiveNumber checks let NaN through (every comparison with it is false).
    if (!(o.points >= 0.0 && o.points <= 100.0)) earlyexit::fail("--max-loss {}: must be a number in [0, 100]", o.points);
    if (!(o.margin >= 0.0 && o.margin <= 100.0))
        earlyexit::fail("--calibration-margin {}: must be a number in [0, 100]", o.margin);
    if (o.deadline_ms && !(std::isfinite(*o.deadline_ms) && *o.deadline_ms > 0.0))
        earlyexit::fail("--deadline-ms {}: must be a finite positive number of milliseconds", *o.deadline_ms);
    if (o.batch && *o.batch == 0) earlyexit::fail("--batch 0: a batch holds at least one sample");
    if (o.threads && *o.threads == 0) earlyexit::fail("--threads 0: at least one thread runs");
    if (o.throughput_samples > 0 && (o.throughput_batches.empty() || o.throughput_threads.empty()))
        earlyexit::fail("--throughput-batches and --throughput-threads need at least one value each");
    if (o.record_only && o.record_trace.empty()) earlyexit::fail("--record-only needs --record-trace DIR");
    check_backend(o.backend, o.precision);
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
    if (n == 0) earlyexit::fail("dataset {}: no images", display_path(data).string());
    return n;
}

/// The result JSON's "headline" object: the validation-chosen point and its figures on the
/// evaluated images (`row`, whose "full" baseline is `full`).
[[nodiscard]] inline nlohmann::json headline_json(const calibration& c, const policy_metrics& row,
                                                  const policy_metrics& full, double max_loss_points) {
    const double delta = (*row.accuracy - *full.accuracy) * 100;
    return {
        {"policy", c.name()},
        {"rule", "chosen on the validation trace: the calibrated family whose bounded point saves the most compute there"},
        {"falls_back_to_full", c.falls_back_to_full},
        {"validation", {{"compute_saving", c.on_calibration.compute_saving},
                        {"accuracy", *c.on_calibration.accuracy},
                        {"loss_bound_points", c.drop_bound_points}}},
        {"test", {{"accuracy", *row.accuracy},
                  {"accuracy_delta_points", delta},
                  {"compute_saving", row.compute_saving},
                  {"wall_ms_per_sample", row.mean_seconds * 1e3},
                  {"speedup_vs_full", row.mean_seconds > 0 ? full.mean_seconds / row.mean_seconds : 0.0},
                  {"within_max_loss", -delta <= max_loss_points + 1e-9}}},
    };
}

/// Runs the whole evaluation (see the file comment). prepare(i, state) writes sample i into the
/// state and returns its label. Returns the process exit code: 0, or 1 when a live run made other
/// decisions than its replay.
template <class Network, class Prepare, class Batched>
int run_demo(const Network& net, typename Network::state_type& state, std::size_t n, Prepare&& prepare,
             const Batched& batched, const demo_options& o) {
    const auto info = net.info();
    const auto wanted = [&](std::string_view name) {
        return o.policies.empty() || std::find(o.policies.begin(), o.policies.end(), name) != o.policies.end();
    };

    if (o.record_only) {
        progress_line recording("recording (probe, all heads)", n);
        auto t = record_trace(net, state, n, prepare, wall_clock{}, [&](std::size_t i) { recording.tick(i + 1); });
        recording.finish();
        t.provenance = {{"dataset", o.dataset}, {"model", o.model}, {"backend", o.backend}, {"precision", o.precision}};
        write_trace(o.record_trace, t);
        fmt::print("wrote the trace of {} images to {}\n", n, display_path(o.record_trace).string());
        return 0;
    }

    // --dvfs cpufreq: take the governor and the energy counter now (a clear error when absent or
    // not permitted, before the long runs); they are restored when the demo ends.
    // Ctrl-C or a kill (SIGINT, SIGTERM, SIGHUP, SIGQUIT) mid-run restores them too (declared
    // after `hardware`: the handlers go before the backend restores on the way out).
    std::optional<dvfs_hardware> hardware;
    std::optional<dvfs::restore_on_signal> restore_governor;
    if (o.dvfs_backend == "cpufreq" && wanted("dvfs")) {
        dvfs::cpufreq_backend backend(o.sysfs_root / "devices/system/cpu");
        dvfs::rapl_meter meter(o.sysfs_root / "class/powercap/intel-rapl:0");
        hardware.emplace(dvfs_hardware{std::move(backend), std::move(meter)});  // braces: clang before 16 has no aggregate ()
        restore_governor.emplace(hardware->backend);
    }
    // PyTorch's throughput result, read now so that a bad file fails before the long runs.
    std::optional<nlohmann::json> torch;
    if (!o.torch_json.empty()) torch = read_result_json(o.torch_json);
    // The frequency table, read now so that a bad file fails before the long runs.
    std::optional<dvfs::frequency_domain> domain;
    if (wanted("dvfs")) {
        if (o.dvfs_table.empty()) earlyexit::fail("the DVFS rows need a frequency table (--dvfs-table FILE)");
        domain = dvfs::read_frequency_domain(o.dvfs_table);
    }

    // 1. Calibration on the validation trace, and the headline chosen there.
    const trace val = read_trace(o.calibration);
    // Thresholds chosen on logits of one precision are never used on the other's: a trace
    // without the field was recorded before bf16 existed, in fp32.
    const auto recorded = val.provenance.find("precision");
    const std::string val_precision = recorded == val.provenance.end() ? std::string(precision_fp32) : recorded->second;
    if (val_precision != o.precision)
        earlyexit::fail("calibration trace {} was recorded in {}, this run is --precision {}: record a validation trace "
                        "in {} (--precision {} --record-only --record-trace DIR) and pass it with --calibration",
                        display_path(o.calibration).string(), val_precision, o.precision, o.precision, o.precision);
    val.layout().require_same(info, fmt::format("calibration trace {}", display_path(o.calibration).string()));
    const double val_final = *evaluate(val, "full", policy::full{}).accuracy;
    const accuracy_target target{o.calibration_points(), o.confidence};
    fmt::print("calibration: {} validation samples ({}), final head {:.2f}%; each policy may lose {:.3g} points there "
               "(--max-loss {:.3g} - margin {:.3g}), {}\n",
               val.size(), display_path(o.calibration).string(), val_final * 100, o.calibration_points(), o.points, o.margin,
               o.confidence == 0.0 ? std::string("as measured")
                                   : fmt::format("at the {:.3g}% upper confidence bound (joint over a choice's candidates)", o.confidence * 100));
    std::vector<threshold_family> families;
    for (const auto family : all_families)
        if (wanted(name_of(family))) families.push_back(family);
    // Every choice among several searched candidates holds its bounds family-wise (Bonferroni,
    // family_wise_confidence): the headline's family among the families, dee's shape among its
    // shapes, Predictive Exit's start head and test among theirs. A single search (a lambda
    // grid, a threshold sweep) keeps the level as given.
    const auto target_among = [&](std::size_t m) {
        return accuracy_target{o.calibration_points(), family_wise_confidence(o.confidence, std::max<std::size_t>(m, 1))};
    };
    const auto say_level = [&](std::size_t m, std::string_view what) {
        if (o.confidence > 0.0 && m > 1)
            fmt::print("  (each bound at {:.4g}%: {:.3g}% jointly over the {} {} searched)\n",
                       100 * family_wise_confidence(o.confidence, m), 100 * o.confidence, m, what);
    };
    const accuracy_target family_target = target_among(families.size());
    say_level(families.size(), "families");
    if (o.confidence > 0.0) {
        const double one = smallest_nonzero_drop_bound(val.size(), family_target.confidence);
        if (one > o.calibration_points())
            fmt::print("  note: with {} validation samples, a single one that the final head gets right and a policy "
                       "gets wrong already puts the bound at {:.2f} points, above {:.3g}: only policies that agree with "
                       "the final head on every validation sample qualify (the split is too small for this bound)\n",
                       val.size(), one, o.calibration_points());
    }
    const auto calibrations = calibrate_all(val, families, family_target);
    std::vector<named_policy<float>> policies;
    for (const auto& c : calibrations) {
        const auto& m = c.on_calibration;
        fmt::print("  {:<20} {:<16} validation {:.2f}% (loss bound {:.2f}), saving {:.1f}%{}\n", c.name(),
                   c.parameter_text(), *m.accuracy * 100, c.drop_bound_points, m.compute_saving * 100,
                   c.falls_back_to_full ? fmt::format("  (falls back to full: {})", c.note)
                   : c.met             ? std::string()
                                       : fmt::format("  (target NOT met: {})", c.note));
        policies.push_back({c.name(), c.make()});
    }
    const std::size_t head_line = headline(calibrations);
    if (head_line != npos)
        fmt::print("headline, chosen on validation (the family that saves the most there): {}\n",
                   calibrations[head_line].name());

    // 1b. The learning policies, each lambda chosen on the validation trace for the same target.
    //   dee         DEE as a user with a labelled validation split runs it: trained there with the
    //               correctness reward (demo_dee_passes passes), context = max-prob bins x whether
    //               the top-1 agrees with the previous head's; lambda chosen on the rule it
    //               converges to (calibrate_lambda, frozen scoring on two folds of validation);
    //               served with no UCB bonus, learning on from label-free agreement with the final
    //               head on a few probes (demo_serve_probe_rate; demo_drift_probe_rate on a
    //               drifting stream). Falls back to full when no lambda beats it within the goal.
    //   dee_online  the first build's DEE: max-prob reward, learning online from empty, lambda
    //               scored on its online run over validation (the comparison the paper's regret
    //               is about); ucb_exit and epsilon_greedy likewise.
    dee_options dee_base{.confidence_bins = demo_dee_bins,
                         .confidence_edges = quantile_edges(val, context_measure::max_prob, demo_dee_bins)};
    const double serve_probes = o.drift_from ? demo_drift_probe_rate : demo_serve_probe_rate;
    std::optional<dee_options> dee_chosen, dee_online_chosen;  // lambdas included
    nlohmann::json learning_json = nlohmann::json::object();
    const auto report_learner = [&](std::string_view name, const auto& c, std::string_view how) {
        const auto& m = c.on_calibration;
        fmt::print("  {:<20} lambda {:<9.3g} validation {:.2f}% (loss bound {:.2f}), saving {:.1f}%  ({}){}\n", name,
                   c.lambda, *m.accuracy * 100, c.drop_bound_points, m.compute_saving * 100, how,
                   c.falls_back_to_full ? fmt::format("  (falls back to full: {})", c.note) : std::string());
        learning_json[std::string(name)] = {{"lambda", c.lambda},
                                            {"met", c.met},
                                            {"falls_back_to_full", c.falls_back_to_full},
                                            {"note", c.note},
                                            {"scored", how},
                                            {"validation", {{"accuracy", *m.accuracy},
                                                            {"compute_saving", m.compute_saving},
                                                            {"loss_bound_points", c.drop_bound_points}}}};
    };
    dee_options dee_shape = dee_base;  // the served DEE's bins, chosen below
    const auto dee_trained_options = [&](double lambda) {
        auto d = dee_shape;
        d.lambda = lambda;
        d.probe_rate = 1.0;  // training: every sample reveals every head
        return d;
    };
    const auto serve_dee = [&](const dee_trainee& p) {
        return p.serving(0.0, serve_probes, o.drift_from ? demo_drift_memory : 0);
    };
    if (wanted("dee")) {
        std::optional<lambda_calibration<dee_trainee>> best;
        dee_options best_shape;
        nlohmann::json shapes = nlohmann::json::array();
        const std::size_t shape_count = demo_dee_bin_choices.size() * demo_dee_streak_choices.size();
        const accuracy_target dee_target = target_among(shape_count);
        say_level(shape_count, "dee shapes");
        for (const std::size_t bins : demo_dee_bin_choices)
            for (const std::size_t streak : demo_dee_streak_choices) {
                dee_shape = dee_options{.confidence_bins = bins,
                                        .streak_bins = streak,
                                        .confidence_edges = quantile_edges(val, context_measure::max_prob, bins)};
                auto c = calibrate_lambda(
                    val, [&](double lambda) { return dee_trainee(dee_trained_options(lambda)); }, dee_target,
                    lambda_search{.grid = demo_dee_lambda_grid(), .passes = demo_dee_passes, .folds = 2}, serve_dee);
                shapes.push_back({{"confidence_bins", bins},
                                  {"streak_bins", streak},
                                  {"lambda", c.lambda},
                                  {"falls_back_to_full", c.falls_back_to_full},
                                  {"compute_saving", c.on_calibration.compute_saving},
                                  {"loss_bound_points", c.drop_bound_points}});
                if (!c.falls_back_to_full &&
                    (!best || best->falls_back_to_full || c.on_calibration.mean_macs < best->on_calibration.mean_macs)) {
                    best = std::move(c);
                    best_shape = dee_shape;
                } else if (!best) {
                    best = std::move(c);
                    best_shape = dee_shape;
                }
            }
        dee_shape = best_shape;
        const auto& c = *best;
        report_learner("dee", c,
                       fmt::format("{} bins, {} streak bins; trained with labels; frozen rule scored on held-out halves; "
                                   "served with alpha 0 and {:g} agreement probes{}",
                                   dee_shape.confidence_bins, dee_shape.streak_bins, serve_probes,
                                   o.drift_from ? fmt::format(", memory {}", demo_drift_memory) : std::string()));
        learning_json["dee"]["shapes_on_validation"] = shapes;
        learning_json["dee"]["bound_confidence"] = dee_target.confidence;
        if (c.falls_back_to_full) {
            policies.push_back({"dee", policy::full{}});
        } else {
            policies.push_back({"dee", serve_dee(c.learned).template with_reward<reward::agreement_reward>()});
            dee_chosen = dee_trained_options(c.lambda);
            dee_chosen->probe_rate = 0.0;  // the rule's options for the regret yardstick
        }
    }
    if (wanted("dee_online")) {
        const auto make = [&](double lambda) {
            auto d = dee_base;
            d.lambda = lambda;
            return policy::dee<>(d);
        };
        const auto c = calibrate_lambda(val, make, target, lambda_search{.score = lambda_score::online});
        report_learner("dee_online", c, "max-prob reward, online from empty");
        if (c.falls_back_to_full) {
            policies.push_back({"dee_online", policy::full{}});
        } else {
            policies.push_back({"dee_online", make(c.lambda)});
            dee_online_chosen = dee_base;
            dee_online_chosen->lambda = c.lambda;
        }
    }
    for (const std::string name : {"ucb_exit", "epsilon_greedy"}) {
        if (!wanted(name)) continue;
        const auto make = [&](double lambda) -> any_policy<float> {
            if (name == "ucb_exit") return policy::ucb_exit<>(bandit_options{.lambda = lambda});
            return policy::epsilon_greedy<>(bandit_options{.lambda = lambda});
        };
        const auto c = calibrate_lambda(val, make, target, lambda_search{.score = lambda_score::online});
        report_learner(name, c, "online from empty");
        policies.push_back({name, c.falls_back_to_full ? any_policy<float>(policy::full{}) : make(c.lambda)});
    }
    // 1c. Predictive Exit: beta (and the start head) calibrated on the validation trace for the same
    // target, and check_every_head, the same exit test at every head from head 0, calibrated alike.
    const auto report_predictive = [&](std::string_view name, const predictive_calibration& c) {
        const auto& m = c.on_calibration;
        fmt::print("  {:<20} {:<16} validation {:.2f}% (loss bound {:.2f}), saving {:.1f}%, {:.2f} heads/sample{}\n",
                   name, c.parameter_text(), *m.accuracy * 100, c.drop_bound_points, m.compute_saving * 100,
                   m.mean_heads,
                   c.falls_back_to_full ? fmt::format("  (falls back to full: {})", c.note)
                   : c.met             ? std::string()
                                       : fmt::format("  (target NOT met: {})", c.note));
        learning_json[std::string(name)] = {{"beta", c.beta},
                                            {"exit_test", std::string(name_of(c.options.test))},
                                            {"start_head", c.start_head},
                                            {"thresholds", c.thresholds},
                                            {"met", c.met},
                                            {"falls_back_to_full", c.falls_back_to_full},
                                            {"note", c.note},
                                            {"validation", {{"accuracy", *m.accuracy},
                                                            {"compute_saving", m.compute_saving},
                                                            {"mean_heads", m.mean_heads},
                                                            {"loss_bound_points", c.drop_bound_points}}}};
    };
    // Both with the same search: start head and exit test (the authors' logit form and the
    // softmax form) chosen jointly with beta on validation.
    const predictive_search demo_search{.choose_start_head = true,
                                        .tests = {exit_test::logit_extremum, exit_test::log_softmax}};
    std::optional<policy::predictive> predictive_policy, every_head_policy;
    const std::size_t predictive_families = demo_search.tests.size() * std::max<std::size_t>(info.heads - 1, 1);
    const accuracy_target predictive_target = target_among(predictive_families);
    if (wanted("check_every_head") || wanted("predictive") || wanted("dvfs"))
        say_level(predictive_families, "(exit test, start head) pairs");
    if (wanted("check_every_head")) {
        const auto c = predictive_calibrated(val, predictive_target, predictive_options{.predict = false}, demo_search);
        report_predictive("check_every_head", c);
        learning_json["check_every_head"]["bound_confidence"] = predictive_target.confidence;
        every_head_policy = c.make();
        policies.push_back({"check_every_head", *every_head_policy});
    }
    if (wanted("predictive") || wanted("dvfs")) {
        const auto c = predictive_calibrated(val, predictive_target, predictive_options{}, demo_search);
        report_predictive("predictive", c);
        learning_json["predictive"]["bound_confidence"] = predictive_target.confidence;
        predictive_policy = c.make();
        if (wanted("predictive")) policies.push_back({"predictive", *predictive_policy});
    }
    policies = with_baselines(std::move(policies));

    // 2. Record the evaluation images (probe mode: every head, every stage).
    progress_line recording("recording (probe, all heads)", n);
    auto test = record_trace(net, state, n, prepare, wall_clock{}, [&](std::size_t i) { recording.tick(i + 1); });
    recording.finish();
    test.provenance = {{"dataset", o.dataset}, {"model", o.model}, {"backend", o.backend}, {"precision", o.precision}};
    if (!o.record_trace.empty()) write_trace(o.record_trace, test);
    if (!test.labelled()) earlyexit::fail("{}: every image needs a label (the accuracy and the oracle need it)", o.dataset);

    fmt::print("\nexits on {} ({} images):\n", o.dataset, n);
    for (std::size_t k = 0; k < info.heads; ++k) {
        const auto m = evaluate(test, "fixed", policy::fixed{k});
        fmt::print("  head {} after stage {:>2}: accuracy {:6.2f}%  MACs {:>6.2f}M ({:5.1f}% of the full network)\n", k,
                   info.head_positions[k], *m.accuracy * 100, m.mean_macs / 1e6, m.mean_macs / info.full_macs * 100);
    }

    // 3. Replay, then live with real skipped work; the rows are the live measurements.
    std::vector<std::vector<sample_outcome>> live;
    const bool batched_rows = o.batch || o.threads;
    const std::size_t batch = o.batch.value_or(1), threads = o.threads.value_or(1);
    std::vector<policy_metrics> rows = batched_rows ? run_batched_rows(batched, test, policies, batch, threads, &live)
                                                    : run_live_and_replayed(net, state, test, policies, prepare, &live);

    // Every row on the served DEE's objective (correct at the exit - lambda * cost fraction, labels
    // of the evaluated images used for scoring only), and each DEE's regret against the best rule
    // of its class fitted on the validation trace (hindsight_best there, apply_rule here): a rule
    // chosen on a different split, as a user could have had it before serving.
    std::optional<nlohmann::json> regret_json;
    std::vector<curve> regret_curves;
    const auto index_of = [&](std::string_view name) {
        return static_cast<std::size_t>(
            std::find_if(rows.begin(), rows.end(), [&](const auto& r) { return r.name == name; }) - rows.begin());
    };
    if (dee_chosen) {
        for (std::size_t j = 0; j < rows.size(); ++j) {
            const auto r = realized_rewards<reward::correctness_reward>(test, live[j], dee_chosen->lambda);
            double sum = 0;
            for (const double x : r) sum += x;
            rows[j].mean_reward = sum / static_cast<double>(r.size());
        }
    }
    if (dee_chosen || dee_online_chosen) {
        const auto checkpoints = log_checkpoints(test.size());
        regret_json = nlohmann::json{
            {"rule", "the best rule of the learner's class (its bins, its reward, its lambda) fitted by backward "
                     "induction on the validation trace, applied to the evaluated images"}};
        const auto add_curve = [&](const std::string& name, std::span<const double> best, std::span<const double> got,
                                   std::string_view reward, double lambda, double fitted_mean) {
            const auto curve_points = average_regret(best, got, checkpoints);
            nlohmann::json cps = nlohmann::json::array();
            curve c{name, {}};
            for (const auto& p : curve_points) {
                cps.push_back({{"inferences", p.inferences}, {"avg_regret", p.avg_regret}});
                c.points.emplace_back(static_cast<double>(p.inferences), p.avg_regret);
            }
            (*regret_json)[name] = {{"reward", reward}, {"lambda", lambda}, {"rule_mean_reward", fitted_mean},
                                    {"checkpoints", cps}};
            regret_curves.push_back(std::move(c));
        };
        if (const std::size_t j = index_of("dee"); dee_chosen && j < rows.size()) {
            const auto rule = apply_rule<reward::correctness_reward>(
                hindsight_best<reward::correctness_reward>(val, *dee_chosen), test, *dee_chosen);
            add_curve("dee", rule.reward,
                      realized_rewards<reward::correctness_reward>(test, live[j], dee_chosen->lambda), "correctness",
                      dee_chosen->lambda, rule.mean_reward());
        }
        if (const std::size_t j = index_of("dee_online"); dee_online_chosen && j < rows.size()) {
            const auto rule = apply_rule<reward::max_prob_reward>(
                hindsight_best<reward::max_prob_reward>(val, *dee_online_chosen), test, *dee_online_chosen);
            add_curve("dee_online", rule.reward,
                      realized_rewards<reward::max_prob_reward>(test, live[j], dee_online_chosen->lambda), "max_prob",
                      dee_online_chosen->lambda, rule.mean_reward());
        }
    }

    const double final_accuracy = *rows.front().accuracy;
    // The calibrated threshold row that saves the most here (only those within --max-loss here
    // when within_goal), or none.
    const auto best_static_row = [&](bool within_goal) {
        std::optional<std::size_t> best;
        for (const auto& c : calibrations) {
            const std::size_t j = index_of(c.name());
            if (j < rows.size() && (!within_goal || (final_accuracy - *rows[j].accuracy) * 100 <= o.points + 1e-9) &&
                (!best || rows[j].compute_saving > rows[*best].compute_saving))
                best = j;
        }
        return best;
    };
    if (batched_rows)
        fmt::print("\n{} on {} images, live in batches of {} on {} thread{} (latency from a batch's start to the "
                   "sample's exit; samples/s from the wall time):\n",
                   o.model, n, batch, threads, threads == 1 ? "" : "s");
    else
        fmt::print("\n{} on {} images, live (wall time measured per sample, one thread):\n", o.model, n);
    print_table(stdout, rows, final_accuracy);
    if (dee_chosen)
        fmt::print("(reward: the served DEE's objective, correct at the exit - {:.3g} x the cost fraction, for every "
                   "row)\n",
                   dee_chosen->lambda);
    if (regret_json) {
        fmt::print("\nDEE's average regret per inference against the best rule of its class fitted on the validation "
                   "trace (positive: the fitted rule earns more here):\n");
        for (const auto& c : regret_curves) {
            fmt::print("  {:<11}", c.name);
            for (const auto& [n, r] : c.points) fmt::print(" {:g}: {:+.4f}", n, r);
            fmt::print("\n");
        }
    }


    // Head skipping: heads evaluated and the compute spent in heads, predictive against
    // check_every_head (the same exit test at every head).
    std::optional<nlohmann::json> skipping_json;
    {
        const std::size_t jp = index_of("predictive"), jc = index_of("check_every_head");
        if (jp < rows.size() && jc < rows.size()) {
            const auto head_share = [&](const std::vector<sample_outcome>& out) {
                double h = 0;
                for (const auto& x : out) h += x.macs - info.macs_through(x.positions_run - 1);
                return h / static_cast<double>(out.size()) / info.full_macs;
            };
            const double hp = head_share(live[jp]), hc = head_share(live[jc]);
            const double ratio = rows[jp].mean_heads / rows[jc].mean_heads;
            fmt::print("\nhead skipping: predictive evaluates {:.2f} heads per sample against {:.2f} for check_every_head "
                       "({:.2f}x, goal <= 0.5x); heads cost {:.2f}% of the full network's compute against {:.2f}% (head "
                       "skipping recovers {:.2f} points of compute); compute saved: {:.1f}% against {:.1f}%\n",
                       rows[jp].mean_heads, rows[jc].mean_heads, ratio, hp * 100, hc * 100, (hc - hp) * 100,
                       rows[jp].compute_saving * 100, rows[jc].compute_saving * 100);
            skipping_json = nlohmann::json{{"predictive_mean_heads", rows[jp].mean_heads},
                                           {"check_every_head_mean_heads", rows[jc].mean_heads},
                                           {"heads_ratio", ratio},
                                           {"predictive_head_compute_share", hp},
                                           {"check_every_head_head_compute_share", hc},
                                           {"head_compute_recovered", hc - hp}};
        }
        // How well each forecasts the head where its exit test passes next (check_every_head
        // always says "the next head"), and predictive against the best static rule checked at
        // every head (the calibrated thresholds) at the same bound.
        const auto error_json = [](const predictor_accuracy& a) {
            return nlohmann::json{{"forecasts", a.forecasts},     {"exact_rate", a.exact_rate},
                                  {"mean_abs_error_heads", a.mean_abs_error}, {"early_rate", a.early_rate},
                                  {"late_rate", a.late_rate}};
        };
        if (predictive_policy && jp < rows.size()) {
            const auto e = predictor_error(test, *predictive_policy);
            fmt::print("predictor error (predictive, every forecast against the next head whose test passes): {} "
                       "forecasts, {:.1f}% exact, mean absolute error {:.2f} heads, {:.1f}% too early, {:.1f}% too late\n",
                       e.forecasts, e.exact_rate * 100, e.mean_abs_error, e.early_rate * 100, e.late_rate * 100);
            if (!skipping_json) skipping_json = nlohmann::json::object();
            (*skipping_json)["predictive_predictor_error"] = error_json(e);
            if (every_head_policy)
                (*skipping_json)["check_every_head_predictor_error"] = error_json(predictor_error(test, *every_head_policy));
            if (const auto best_static = best_static_row(false)) {
                const auto& b = rows[*best_static];
                fmt::print("predictive against the best calibrated static rule checked at every head ({}): {:.1f}% vs "
                           "{:.1f}% of the compute saved, heads included, at {:+.2f} vs {:+.2f} points\n",
                           b.name, rows[jp].compute_saving * 100, b.compute_saving * 100,
                           (*rows[jp].accuracy - final_accuracy) * 100, (*b.accuracy - final_accuracy) * 100);
                (*skipping_json)["best_static"] = {{"name", b.name},
                                                   {"compute_saving", b.compute_saving},
                                                   {"accuracy", *b.accuracy}};
                (*skipping_json)["predictive_compute_saving"] = rows[jp].compute_saving;
            }
        }
    }

    // DEE against the best static rule, on the evaluated images: the served dee row beside the
    // calibrated thresholds, and at the same accuracy on the static frontier (every family's sweep
    // here, the most compute any threshold of any family saves at dee's accuracy or better); and
    // DEE's own curve, lambda swept (trained on validation as the row is, served here).
    std::vector<std::vector<sweep_point>> sweeps;
    for (const auto family : all_threshold_families) sweeps.push_back(sweep(test, family, 64));
    std::optional<nlohmann::json> dee_json;
    curve dee_curve{"dee (lambda swept)", {}};
    if (const std::size_t jd = index_of("dee"); dee_chosen && jd < rows.size()) {
        const auto& d = rows[jd];
        double frontier = 0;  // full saves 0 at the final head's accuracy
        for (const auto& sw : sweeps)
            for (const auto& pt : sw)
                if (pt.metrics.accuracy && *pt.metrics.accuracy >= *d.accuracy)
                    frontier = std::max(frontier, pt.metrics.compute_saving);
        const auto best_static = best_static_row(true);
        nlohmann::json sweep_json = nlohmann::json::array();
        for (const double lambda : demo_dee_lambda_grid()) {
            dee_trainee p(dee_trained_options(lambda));
            (void)warm_start(p, val, demo_dee_passes);
            const auto m = summarize({}, replay(test, serve_dee(p).template with_reward<reward::agreement_reward>()), test);
            dee_curve.points.emplace_back(m.compute_saving * 100, *m.accuracy * 100);
            sweep_json.push_back({{"lambda", lambda}, {"compute_saving", m.compute_saving}, {"accuracy", *m.accuracy}});
        }
        const double delta = (*d.accuracy - final_accuracy) * 100;
        fmt::print("\nDEE against the best static rule: dee saves {:.1f}% at {:+.2f} points{}; the best calibrated "
                   "static family within the goal here, {}, saves {:.1f}%; at dee's accuracy the static frontier (any "
                   "threshold of any family, chosen here in hindsight) saves {:.1f}%\n",
                   d.compute_saving * 100, delta, -delta <= o.points + 1e-9 ? " (within the goal)" : " (NOT within the goal)",
                   best_static ? rows[*best_static].name : std::string("none"),
                   best_static ? rows[*best_static].compute_saving * 100 : 0.0, frontier * 100);
        dee_json = nlohmann::json{{"compute_saving", d.compute_saving},
                                  {"accuracy_delta_points", delta},
                                  {"best_static", best_static ? nlohmann::json(rows[*best_static].name) : nlohmann::json(nullptr)},
                                  {"best_static_compute_saving", best_static ? rows[*best_static].compute_saving : 0.0},
                                  {"static_frontier_at_dee_accuracy", frontier},
                                  {"lambda_sweep", sweep_json}};
    }

    // DVFS: the paper's comparison (demo_dvfs.hpp): the plain network, the static headline and the
    // predictive policy at f_max and with the selector, on the table's model clock with one budget.
    std::optional<dvfs_section> dvfs_rows;
    if (wanted("dvfs") && predictive_policy) {
        const std::string table_name = display_path(o.dvfs_table).filename().string();
        std::optional<any_policy<float>> static_policy;
        std::string static_name;
        if (head_line != npos) {
            static_policy = calibrations[head_line].make();
            static_name = std::string(name_of(calibrations[head_line].family));
        }
        dvfs_rows = run_dvfs_rows(net, state, val, test, static_policy ? &*static_policy : nullptr, static_name,
                                  *predictive_policy, *domain, table_name, tables_beside(o.dvfs_table, *domain),
                                  o.deadline_ms, prepare, hardware ? &*hardware : nullptr);
        print_dvfs_section(*dvfs_rows, o.model, n, final_accuracy);
        if (!dvfs_rows->hardware_rows.empty()) {
            fmt::print("\nthe same rows on this machine's cpufreq governor (wall time, RAPL package energy over each "
                       "sample's period), beside the model's above:\n");
            print_table(stdout, dvfs_rows->hardware_rows, final_accuracy);
        }
    }

    // Drift: per window, the loss against the final head and the saving, and when (if ever) a
    // policy is back within --max-loss for good after the change.
    std::optional<nlohmann::json> drift_json;
    if (o.drift_from && head_line != npos) {
        const std::string head_name = calibrations[head_line].name();
        const std::vector<std::string> watched{head_name, "dee", "oracle"};
        const std::size_t w = o.drift_window;
        drift_json = nlohmann::json{{"change_at", *o.drift_from}, {"change", o.drift_what}, {"window", w},
                                    {"max_loss_points", o.points}, {"policies", nlohmann::json::object()}};
        std::vector<curve> loss_curves, saving_curves;
        fmt::print("\ndrift: samples from {} on are {}; per window of {} samples, points lost against the final head "
                   "(saving %):\n",
                   *o.drift_from, o.drift_what, w);
        const auto& full_live = live[index_of("full")];
        for (const auto& name : watched) {
            const std::size_t j = index_of(name);
            if (j == rows.size()) continue;
            const auto& out = live[j];
            nlohmann::json windows = nlohmann::json::array();
            curve loss{name, {}}, saving{name, {}};
            std::optional<std::size_t> back_since;  // first window start after the change from which every window is within
            fmt::print("  {:<20}", name);
            for (std::size_t start = 0; start + w <= out.size(); start += w) {
                std::size_t right = 0, full_right = 0;
                double macs = 0;
                for (std::size_t i = start; i < start + w; ++i) {
                    right += out[i].predicted == *test.label(i);
                    full_right += full_live[i].predicted == *test.label(i);
                    macs += out[i].macs;
                }
                const double lost = 100.0 * (static_cast<double>(full_right) - static_cast<double>(right)) / static_cast<double>(w);
                const double saved = 1.0 - macs / static_cast<double>(w) / info.full_macs;
                windows.push_back({{"start", start}, {"loss_points", lost}, {"compute_saving", saved}});
                loss.points.emplace_back(static_cast<double>(start + w / 2), lost);
                saving.points.emplace_back(static_cast<double>(start + w / 2), saved * 100);
                fmt::print(" {:+.1f} ({:.0f})", -lost, saved * 100);
                if (start >= *o.drift_from) {
                    if (lost <= o.points + 1e-9) {
                        if (!back_since) back_since = start;
                    } else {
                        back_since.reset();
                    }
                }
            }
            fmt::print("\n");
            const std::optional<std::size_t> recovery =
                back_since ? std::optional<std::size_t>(*back_since + w - *o.drift_from) : std::nullopt;
            // All the samples from demo_drift_settle after the change on, pooled: the loss (the mean
            // of full right - this right, in {-1, 0, 1}) with its normal 95% interval, and the saving.
            // A window of w samples is noisy (the interval's half-width grows by sqrt(pooled / w)).
            nlohmann::json settled = nullptr;
            const std::size_t from = *o.drift_from + demo_drift_settle;
            if (from < out.size()) {
                double sum = 0, sum_sq = 0, macs = 0;
                for (std::size_t i = from; i < out.size(); ++i) {
                    const double d = static_cast<double>(full_live[i].predicted == *test.label(i)) -
                                     static_cast<double>(out[i].predicted == *test.label(i));
                    sum += d;
                    sum_sq += d * d;
                    macs += out[i].macs;
                }
                const double m = static_cast<double>(out.size() - from);
                const double mean = sum / m;
                const double half = 1.96 * std::sqrt(std::max(0.0, sum_sq / m - mean * mean) / m);
                const double saved = 1.0 - macs / m / info.full_macs;
                settled = {{"from", from}, {"samples", out.size() - from}, {"loss_points", 100 * mean},
                           {"loss_points_interval_95", {100 * (mean - half), 100 * (mean + half)}},
                           {"compute_saving", saved}, {"within_max_loss", 100 * mean <= o.points + 1e-9}};
                fmt::print("  {:<20} from {} samples after the change on ({} samples): {:+.2f} points (95% interval "
                           "{:+.2f} to {:+.2f}), {:.1f}% saved\n",
                           "", demo_drift_settle, out.size() - from, -100 * mean, -100 * (mean + half),
                           -100 * (mean - half), saved * 100);
            }
            (*drift_json)["policies"][name] = {
                {"windows", windows},
                {"samples_to_recover", recovery ? nlohmann::json(*recovery) : nlohmann::json(nullptr)},
                {"after_settle", settled}};
            fmt::print("  {:<20} {}\n", "",
                       recovery ? fmt::format("within {:.3g} points in every window from {} samples after the change", o.points, *recovery)
                                : fmt::format("not back within {:.3g} points for good after the change", o.points));
            loss_curves.push_back(std::move(loss));
            saving_curves.push_back(std::move(saving));
        }
        if (!o.plots.empty()) {
            plot_lines(o.plots, "drift_loss", fmt::format("{}: accuracy points lost against the final head, per {} samples ({} from {} on)", o.dataset, w, o.drift_what, *o.drift_from),
                       loss_curves, {"sample", "points lost", false});
            plot_lines(o.plots, "drift_saving", fmt::format("{}: compute saving per {} samples ({} from {} on)", o.dataset, w, o.drift_what, *o.drift_from),
                       saving_curves, {"sample", "compute saving (%)", false});
        }
    }

    // 4. The headline's figures here, whatever they are, against full and the oracle.
    std::optional<nlohmann::json> head_json;
    if (head_line != npos) {
        const auto& c = calibrations[head_line];
        const auto& row = rows[index_of(c.name())];
        head_json = headline_json(c, row, rows[0], o.points);
        // Printed from the JSON's figures, so the line and the file cannot disagree.
        const auto& fig = (*head_json)["test"];
        fmt::print("\nheadline {} (chosen on validation{}): {:+.2f} points ({} the {:.3g}-point goal), {:.1f}% of the "
                   "compute saved, {:.3g} ms/sample vs {:.3g} ms for full ({:.2f}x); oracle would save {:.1f}%\n",
                   c.name(), c.falls_back_to_full ? ", falls back to full" : "",
                   fig["accuracy_delta_points"].get<double>(), fig["within_max_loss"].get<bool>() ? "within" : "NOT within",
                   o.points, row.compute_saving * 100, row.mean_seconds * 1e3, rows[0].mean_seconds * 1e3,
                   fig["speedup_vs_full"].get<double>(), rows[1].compute_saving * 100);
    }

    // Throughput: full and the headline batched and threaded, against each other (and PyTorch).
    std::optional<throughput_section> throughput;
    if (head_line != npos && o.throughput_samples > 0) {
        const std::string head_name = calibrations[head_line].name();
        throughput = run_throughput(batched, test, named_policy<float>{"full", policy::full{}},
                                    named_policy<float>{head_name, calibrations[head_line].make()},
                                    {&live[index_of("full")], &live[index_of(head_name)]}, o.throughput_samples,
                                    o.throughput_batches, o.throughput_threads, torch);
    }

    if (!o.json.empty()) {
        auto j = result_json(o.dataset, o.model, rows, final_accuracy);
        j["execution"] = {{"batch", batch}, {"threads", threads}, {"batched", batched_rows}};
        j["throughput"] = throughput ? throughput->json : nlohmann::json(nullptr);
        j["headline"] = head_json ? *head_json : nlohmann::json(nullptr);
        j["calibration"] = calibration_json(calibrations, val.size(), family_target);
        j["calibration"]["target"]["joint_confidence"] = o.confidence;
        j["calibration"]["target"]["families_searched"] = families.size();
        j["learning"] = learning_json;
        j["dee_regret"] = regret_json ? *regret_json : nlohmann::json(nullptr);
        if (drift_json) j["drift"] = *drift_json;
        j["head_skipping"] = skipping_json ? *skipping_json : nlohmann::json(nullptr);
        j["dee_vs_static"] = dee_json ? *dee_json : nlohmann::json(nullptr);
        j["dvfs"] = dvfs_rows ? dvfs_rows->json : nlohmann::json(nullptr);
        write_json(o.json, j);
        fmt::print("wrote {}\n", display_path(o.json).string());
    }
    if (!o.plots.empty()) {
        // The band within 2 points of the final head, where the policies of interest sit; the
        // static frontier is the Pareto front of every family's sweep together.
        auto curves = tradeoff_curves(all_threshold_families, sweeps);
        std::vector<sweep_point> every;
        for (const auto& sw : sweeps) every.insert(every.end(), sw.begin(), sw.end());
        // Drawn last, on top of the families' curves it follows.
        if (!dee_curve.points.empty()) curves.push_back(dee_curve);
        curves.push_back(pareto_curve("static frontier (every family)", every));
        plot_options zoom;
        zoom.accuracy_range = std::pair{final_accuracy * 100 - 2.0, final_accuracy * 100 + 0.5};
        plot_tradeoff(o.plots,
                      fmt::format("{}: accuracy vs compute, within 2 points of the final head ({} images)", o.dataset, n),
                      curves, rows, zoom);
        plot_exit_histogram(o.plots, rows);
        if (!regret_curves.empty())
            plot_lines(o.plots, "regret", fmt::format("{}: DEE regret per inference against the best rule in hindsight", o.dataset),
                       regret_curves, {"inferences", "average regret per inference", true});
        if (dvfs_rows) {
            plot_lines(o.plots, "energy_deadline",
                       fmt::format("{}: energy per sample over the period against the budget (model of {})", o.dataset,
                                   dvfs_rows->table),
                       dvfs_rows->energy_curves,
                       {"budget / the default budget (the plain network's time at f_max)", "energy per sample (mJ)", false});
            for (const auto& w : dvfs_rows->sweeps)
                plot_lines(o.plots, w.stem,
                           fmt::format("{}: energy per sample over the period against the budget (model of {})",
                                       o.dataset, w.table),
                           w.curves, {"budget / the default budget (the plain network's time at f_max)", "energy per sample (mJ)", false});
        }
        if (throughput)
            plot_lines(o.plots, "throughput",
                       fmt::format("{}: throughput against the batch size ({} images)", o.dataset,
                                   throughput->json["samples"].get<std::size_t>()),
                       throughput->curves, {"batch size", "samples per second", true});
        fmt::print("wrote {}/tradeoff.png, exits.png{}{}{}\n", display_path(o.plots).string(),
                   regret_curves.empty() ? "" : ", regret.png", dvfs_rows ? ", energy_deadline*.png" : "",
                   throughput ? ", throughput.png" : "");
    }
    bool ok = true;
    if (dvfs_rows) rows.insert(rows.end(), dvfs_rows->rows.begin(), dvfs_rows->rows.end());
    for (const auto& r : rows)
        if (!*r.replay_matches_live) {
            fmt::print(stderr, "{}: {}: the live run made other decisions than its replay\n", o.program, r.name);
            ok = false;
        }
    return ok ? 0 : 1;
}

}  // namespace earlyexit::demo
