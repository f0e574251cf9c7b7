// 06_dee_regret (program: earlyexit-dee-regret): does DEE learn? Its regret per inference on a
// synthetic stationary environment whose optimal stopping rule is known exactly.
//
// The environment (common/synthetic_stopping.hpp): 4 exits; each sample's max-prob is a Markov
// chain along the heads over 10 levels, each the centre of one of DEE's 10 uniform bins, so the
// best rule of DEE's own class (stop at head k on level b or go on) is computed by dynamic
// programming. The stream is replayed through the ordinary runner for DEE, ucb_exit and
// epsilon_greedy, each learning online from empty with the environment's lambda; the regret of
// sample t is what the optimal rule earns on the same sample minus what the learner earned (its
// own cost: a bandit that evaluates one head pays only for that head).
//
//   earlyexit-dee-regret                               10^5 inferences, the summary table
//   earlyexit-dee-regret --json regret.json --plots out/
//   earlyexit-dee-regret --inferences 1000000 --seed 7
//
// Goal: DEE's average regret at 10^5 inferences at most a tenth of its value at 10^3.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <earlyexit/io.hpp>
#include <fmt/core.h>

#include "common/resources.hpp"
#include "common/synthetic_stopping.hpp"

namespace fs = std::filesystem;
using namespace earlyexit;

int main(int argc, char** argv) {
    std::size_t inferences = 100000;
    std::uint64_t seed = 1;
    double alpha = dee_options{}.alpha;
    fs::path json_path, plots;
    CLI::App app{"earlyexit-dee-regret: DEE's regret per inference against the optimal stopping rule of a synthetic "
                 "environment, beside ucb_exit and epsilon_greedy"};
    app.add_option("--inferences", inferences, "samples in the stream (at least 1000)")
        ->check(CLI::Range(std::size_t{1000}, std::size_t{100000000}))
        ->capture_default_str();
    app.add_option("--seed", seed, "seed of the stream")->capture_default_str();
    app.add_option("--alpha", alpha, "DEE's and ucb_exit's exploration weight")
        ->check(CLI::Range(0.0, 100.0))
        ->capture_default_str();
    app.add_option("--json", json_path, "write {\"checkpoints\": [{\"inferences\", \"avg_regret\"}, ...]} (DEE) and the "
                                        "other learners' curves to FILE");
    app.add_option("--plots", plots, "write regret.png (gnuplot) into DIR");
    CLI11_PARSE(app, argc, argv);

    try {
        const demo::stopping_env env = demo::default_stopping_env();
        const demo::stopping_solution best_rule = demo::solve(env);
        const demo::synthetic_stream stream = demo::generate(env, inferences, seed);
        const trace& t = stream.trace;
        const double full = t.info().full_macs;

        std::vector<double> best(t.size());
        for (std::size_t i = 0; i < t.size(); ++i) best[i] = demo::optimal_reward(env, best_rule, stream.level[i]);

        struct learner {
            std::string name;
            any_policy<float> policy;
        };
        const std::vector<learner> learners{
            {"dee", policy::dee<>(dee_options{.lambda = env.lambda, .alpha = alpha, .confidence_bins = env.levels.size()})},
            {"ucb_exit", policy::ucb_exit<>(bandit_options{.lambda = env.lambda, .alpha = alpha})},
            {"epsilon_greedy", policy::epsilon_greedy<>(bandit_options{.lambda = env.lambda, .epsilon = 0.1})},
        };
        const auto checkpoints = log_checkpoints(t.size());
        fmt::print("synthetic environment: {} exits, {} confidence levels, lambda {:g}; optimal value J* = {:.4f} per "
                   "inference (best fixed exit {:.4f}); {} inferences, seed {}\n",
                   env.heads(), env.levels.size(), env.lambda, best_rule.optimal_value,
                   [&] {
                       double b = -1e300;
                       for (std::size_t k = 0; k < env.heads(); ++k) b = std::max(b, demo::fixed_exit_value(env, k));
                       return b;
                   }(),
                   t.size(), seed);

        nlohmann::json j;
        j["environment"] = {{"heads", env.heads()},   {"levels", env.levels.size()}, {"lambda", env.lambda},
                            {"optimal_value", best_rule.optimal_value}, {"inferences", t.size()}, {"seed", seed},
                            {"alpha", alpha}};
        std::vector<curve> curves;
        fmt::print("\naverage regret per inference (optimal rule minus learner, same samples):\n  {:<15}", "inferences");
        for (const auto n : checkpoints) fmt::print(" {:>9}", n);
        fmt::print("\n");
        double dee_at_1e3 = 0, dee_at_end = 0;
        for (const auto& l : learners) {
            any_policy<float> p = l.policy;
            const auto out = replay(t, p);
            std::vector<double> got(t.size());
            for (std::size_t i = 0; i < t.size(); ++i)
                got[i] = env.levels[stream.level[i][out[i].head]] - env.lambda * out[i].macs / full;
            const auto curve_points = average_regret(best, got, checkpoints);
            fmt::print("  {:<15}", l.name);
            nlohmann::json cps = nlohmann::json::array();
            curve c{l.name, {}};
            for (const auto& pt : curve_points) {
                fmt::print(" {:>9.5f}", pt.avg_regret);
                cps.push_back({{"inferences", pt.inferences}, {"avg_regret", pt.avg_regret}});
                c.points.emplace_back(static_cast<double>(pt.inferences), pt.avg_regret);
                if (l.name == "dee" && pt.inferences == 1000) dee_at_1e3 = pt.avg_regret;
            }
            fmt::print("\n");
            if (l.name == "dee") {
                j["checkpoints"] = cps;
                dee_at_end = curve_points.back().avg_regret;
            }
            j["policies"][l.name] = {{"checkpoints", cps}};
            curves.push_back(std::move(c));
        }
        const bool met = dee_at_end <= 0.1 * dee_at_1e3;
        fmt::print("\ngoal: DEE's regret at {} inferences ({:.5f}) {} a tenth of its regret at 1000 ({:.5f})\n", t.size(),
                   dee_at_end, met ? "is within" : "is NOT within", 0.1 * dee_at_1e3);
        j["goal"] = {{"rule", "avg_regret at the last checkpoint <= 0.1 x avg_regret at 1000"}, {"met", met}};
        if (!json_path.empty()) {
            write_json(json_path, j);
            fmt::print("wrote {}\n", demo::display_path(json_path).string());
        }
        if (!plots.empty()) {
            plot_lines(plots, "regret", "regret per inference against the optimal stopping rule (synthetic)", curves,
                       {"inferences", "average regret per inference", true});
            fmt::print("wrote {}\n", demo::display_path(plots / "regret.png").string());
        }
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "earlyexit-dee-regret: {}\n", e.what());
        return 1;
    }
}
