// 03_trace_replay: record once, then evaluate, calibrate and compare policies by replay.
//
//   1. record a trace in probe mode (every head evaluated) and write it as NPY + JSON;
//   2. read it back, split it: calibration (first half) and test (second half);
//   3. calibrate each static family to lose at most 0.5 accuracy points on the calibration
//      split at least cost, and report the chosen points on the test split; then once more
//      with the loss's 95% upper confidence bound held to 0.5 points instead of the loss
//      measured on the calibration split (rows "<family>_bound95");
//   4. check replay against live runs on the test split, print the table, write the result
//      JSON and the plots (gnuplot).
// Usage: 03_trace_replay [output-dir]   (default: trace_replay_out)
#include <filesystem>
#include <vector>

#include <earlyexit/io.hpp>
#include <fmt/core.h>

#include "common/toy_signal.hpp"

int main(int argc, char** argv) try {
    const std::filesystem::path out = argc > 1 ? argv[1] : "trace_replay_out";
    const toy::model model(42);
    const auto net = model.network();
    std::vector<toy::signal> samples;
    std::vector<std::size_t> labels;
    model.make_samples(4000, 7, samples, labels);

    // 1. Record (probe mode) and save.
    toy::signal state;
    earlyexit::progress_line progress("recording", samples.size());  // shows up only past 1 s
    auto recorded = earlyexit::record_trace(
        net, state, samples.size(),
        [&](std::size_t i, toy::signal& s) {
            s = samples[i];
            return std::optional<std::size_t>(labels[i]);
        },
        earlyexit::wall_clock{}, [&](std::size_t i) { progress.tick(i + 1); });
    progress.finish();
    recorded.provenance = {{"dataset", "toy signal (synthetic)"}, {"model", "examples/common/toy_signal.hpp"}};
    earlyexit::write_trace(out / "trace", recorded);

    // 2. Read back and split.
    const auto all = earlyexit::read_trace(out / "trace");
    const auto calib = all.slice(0, all.size() / 2);
    const auto test = all.slice(all.size() / 2, all.size() - all.size() / 2);

    // 3. Calibrate every static family on the calibration split.
    std::vector<earlyexit::named_policy<float>> policies;
    std::vector<std::vector<earlyexit::sweep_point>> sweeps;
    for (auto family : earlyexit::all_threshold_families) {
        const auto c = earlyexit::calibrate(calib, family, earlyexit::accuracy_target{0.5});
        fmt::print("{:<22} parameter {:.4f} (target {} on the calibration split)\n", c.name(), c.parameter,
                   c.met ? "met" : "NOT met");
        policies.push_back({c.name(), c.make()});
        sweeps.push_back(earlyexit::sweep(test, family, 64));
    }
    // The loss measured on 2000 samples is noisy; bounding it keeps the noise from picking the threshold.
    for (auto family : earlyexit::all_threshold_families) {
        const auto c = earlyexit::calibrate(calib, family, earlyexit::accuracy_target{0.5, 0.95});
        const auto name = fmt::format("{}_bound95", earlyexit::name_of(family));
        fmt::print("{:<22} parameter {:.4f} (95% bound of the loss {:.2f} points on the calibration split)\n", name,
                   c.parameter, c.drop_bound_points);
        policies.push_back({name, c.make()});
    }

    // 4. Compare on the test split (rows: full, oracle, then ours), and run each row's policy
    //    live on the same samples to check that replay made the live decisions.
    auto rows = earlyexit::compare(test, policies);
    policies = earlyexit::with_baselines(std::move(policies));  // the policies behind the rows, in order
    const std::size_t offset = calib.size();
    for (std::size_t j = 0; j < rows.size(); ++j) {
        auto live = earlyexit::make_runner(net, policies[j].policy);
        std::vector<earlyexit::sample_outcome> outcomes;
        for (std::size_t i = 0; i < test.size(); ++i) {
            toy::signal s = samples[offset + i];
            outcomes.push_back(earlyexit::outcome_of(live.run(s, {i, labels[offset + i]})));
        }
        rows[j].replay_matches_live = earlyexit::same_decisions(outcomes, earlyexit::replay(test, policies[j].policy));
    }
    const double final_accuracy = *rows.front().accuracy;
    fmt::print("\ntest split, {} samples (times are the recorded live times, replayed):\n", test.size());
    earlyexit::print_table(stdout, rows, final_accuracy);

    earlyexit::write_json(out / "result.json", earlyexit::result_json("toy signal", "toy_signal", rows, final_accuracy));
    earlyexit::plot_tradeoff(out, "toy signal: accuracy vs compute (test split)",
                             earlyexit::tradeoff_curves(earlyexit::all_threshold_families, sweeps), rows);
    earlyexit::plot_exit_histogram(out, rows);
    fmt::print("\nwrote {}/trace/, result.json, tradeoff.png, exits.png\n", out.string());
    for (const auto& row : rows)
        if (!*row.replay_matches_live) return 1;
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "03_trace_replay: {}\n", e.what());
    return 1;
}
