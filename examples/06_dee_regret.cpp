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
// --env agreement (common/synthetic_stopping.hpp, agreement_env): the top-1 can change between
// heads, and the state is (level, agreement bit: the top-1 equals the previous head's). The
// reward is still max-prob minus lambda * cost, but a changed answer tends to jump in confidence
// at the next head and a settled one does not, so the optimal rule, again computed by dynamic
// programming over (head, level, bit), needs the bit. Side by side on the same samples: the
// optimal rule, DEE with streak_bins = 2 (sees the bit through the runner's patience), DEE with
// streak_bins = 1 (cannot see it), the best single max-prob threshold chosen in hindsight on the
// same stream, ucb_exit and epsilon_greedy.
//
//   earlyexit-dee-regret                               10^5 inferences, the summary table
//   earlyexit-dee-regret --json regret.json --plots out/
//   earlyexit-dee-regret --inferences 1000000 --seed 7
//   earlyexit-dee-regret --env agreement --json agreement.json --plots out/
//
// Goal: DEE's average regret at 10^5 inferences at most a tenth of its value at 10^3 (with
// --env agreement also below the best single threshold's and DEE's without the streak bit).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <earlyexit/io.hpp>
#include <fmt/core.h>

#include "common/resources.hpp"
#include "common/synthetic_stopping.hpp"

namespace fs = std::filesystem;
using namespace earlyexit;

namespace {

/// Runs --env agreement (see the file comment). Returns the exit code.
int run_agreement(std::size_t inferences, std::uint64_t seed, double alpha, const fs::path& json_path,
                  const fs::path& plots) {
    const demo::agreement_env env = demo::agreement_stopping_env();
    const demo::agreement_solution best_rule = demo::solve(env);
    const demo::threshold_choice expected_threshold = demo::best_threshold(env);
    const demo::agreement_stream stream = demo::generate(env, inferences, seed);
    const trace& t = stream.trace;
    const std::size_t n = t.size(), K = env.heads();
    const double full = t.info().full_macs;

    std::vector<double> best(n);
    for (std::size_t i = 0; i < n; ++i) best[i] = demo::optimal_reward(env, best_rule, stream.path[i]);

    // The best single threshold in hindsight: every distinct one (t / B), scored on this stream.
    double hindsight_tau = 0, hindsight_mean = -std::numeric_limits<double>::infinity();
    std::vector<double> hindsight_got;
    for (std::size_t b = 0; b <= env.bins(); ++b) {
        const double tau = static_cast<double>(b) / static_cast<double>(env.bins());
        std::vector<double> got(n);
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t head = demo::threshold_exit(env, tau, stream.path[i]);
            got[i] = demo::reward_at(env, best_rule.costs, stream.path[i], head);
            sum += got[i];
        }
        if (sum / static_cast<double>(n) > hindsight_mean) {
            hindsight_mean = sum / static_cast<double>(n);
            hindsight_tau = tau;
            hindsight_got = std::move(got);
        }
    }
    double best_fixed = -1e300;
    for (std::size_t k = 0; k < K; ++k) best_fixed = std::max(best_fixed, demo::fixed_exit_value(env, k));
    const double blind = demo::best_blind_value(env, best_rule);
    fmt::print("synthetic agreement environment: {} exits, {} confidence levels x the top-1 agreement bit, "
               "lambda {:g}; {} inferences, seed {}\nexpected reward per inference: optimal rule J* = {:.4f}; best "
               "rule of (head, max-prob) without the bit {:.4f}; best single max-prob threshold {:.4f} (tau {:.2f}); "
               "best fixed exit {:.4f}\n",
               K, env.bins(), env.lambda, n, seed, best_rule.optimal_value, blind, expected_threshold.value,
               expected_threshold.tau, best_fixed);

    struct row {
        std::string name, label;
        std::vector<double> got;
    };
    std::vector<row> rows;
    rows.push_back({"optimal", "optimal rule", best});
    const auto learn = [&](std::string name, std::string label, any_policy<float> p) {
        const auto out = replay(t, p);
        std::vector<double> got(n);
        for (std::size_t i = 0; i < n; ++i)
            got[i] = env.levels[stream.path[i].level[out[i].head]] - env.lambda * out[i].macs / full;
        rows.push_back({std::move(name), std::move(label), std::move(got)});
    };
    const dee_options sees_bit{.lambda = env.lambda, .alpha = alpha, .confidence_bins = env.bins(), .streak_bins = 2};
    dee_options no_bit = sees_bit;
    no_bit.streak_bins = 1;
    learn("dee", "dee (streak_bins 2)", policy::dee<>(sees_bit));
    learn("dee_streak1", "dee (streak_bins 1)", policy::dee<>(no_bit));
    rows.push_back(
        {"best_threshold", fmt::format("max_prob >= {:.2f}, hindsight", hindsight_tau), std::move(hindsight_got)});
    learn("ucb_exit", "ucb_exit", policy::ucb_exit<>(bandit_options{.lambda = env.lambda, .alpha = alpha}));
    learn("epsilon_greedy", "epsilon_greedy",
          policy::epsilon_greedy<>(bandit_options{.lambda = env.lambda, .epsilon = 0.1}));

    const auto checkpoints = log_checkpoints(n);
    nlohmann::json j;
    j["environment"] = {{"name", "agreement"},
                        {"heads", K},
                        {"levels", env.bins()},
                        {"lambda", env.lambda},
                        {"optimal_value", best_rule.optimal_value},
                        {"best_threshold", {{"tau", expected_threshold.tau}, {"value", expected_threshold.value}}},
                        {"best_rule_without_bit_value", blind},
                        {"best_fixed_exit_value", best_fixed},
                        {"inferences", n},
                        {"seed", seed},
                        {"alpha", alpha}};
    j["best_threshold_in_hindsight"] = {{"tau", hindsight_tau}, {"mean_reward", hindsight_mean}};
    std::vector<curve> curves;
    fmt::print("\naverage regret per inference (optimal rule minus policy, same samples):\n  {:<28}", "inferences");
    for (const auto c : checkpoints) fmt::print(" {:>9}", c);
    fmt::print(" {:>11}\n", "mean reward");
    const auto at = [](const std::vector<regret_point>& v, std::size_t m) {
        for (const auto& p : v)
            if (p.inferences == m) return p.avg_regret;
        return std::numeric_limits<double>::quiet_NaN();
    };
    double dee_1e3 = 0, dee_end = 0, blind_end = 0, threshold_end = 0;
    for (const auto& r : rows) {
        const auto points = average_regret(best, r.got, checkpoints);
        double sum = 0;
        for (const double g : r.got) sum += g;
        fmt::print("  {:<28}", r.label);
        nlohmann::json cps = nlohmann::json::array();
        curve c{r.label, {}};
        for (const auto& pt : points) {
            fmt::print(" {:>9.5f}", pt.avg_regret);
            cps.push_back({{"inferences", pt.inferences}, {"avg_regret", pt.avg_regret}});
            c.points.emplace_back(static_cast<double>(pt.inferences), pt.avg_regret);
        }
        fmt::print(" {:>11.5f}\n", sum / static_cast<double>(n));
        if (r.name == "dee") {
            j["checkpoints"] = cps;
            dee_1e3 = at(points, 1000);
            dee_end = points.back().avg_regret;
        }
        if (r.name == "dee_streak1") blind_end = points.back().avg_regret;
        if (r.name == "best_threshold") threshold_end = points.back().avg_regret;
        j["policies"][r.name] = {
            {"label", r.label}, {"mean_reward", sum / static_cast<double>(n)}, {"checkpoints", cps}};
        curves.push_back(std::move(c));
    }
    const bool tenth = dee_end <= 0.1 * dee_1e3, beats = dee_end < threshold_end && dee_end < blind_end;
    fmt::print("\ngoal: DEE's regret at {} inferences ({:.5f}) {} a tenth of its regret at 1000 ({:.5f}), and {} "
               "the best single threshold's ({:.5f}) and DEE's without the streak bit ({:.5f})\n",
               n, dee_end, tenth ? "is within" : "is NOT within", 0.1 * dee_1e3, beats ? "below" : "NOT below",
               threshold_end, blind_end);
    j["goal"] = {{"rule", "dee avg_regret at the last checkpoint <= 0.1 x avg_regret at 1000, and below "
                          "best_threshold's and dee_streak1's"},
                 {"met", tenth && beats}};
    if (!json_path.empty()) {
        write_json(json_path, j);
        fmt::print("wrote {}\n", demo::display_path(json_path).string());
    }
    if (!plots.empty()) {
        plot_lines(plots, "regret",
                   "regret per inference against the optimal stopping rule (synthetic, agreement bit)", curves,
                   {"inferences", "average regret per inference", true});
        fmt::print("wrote {}\n", demo::display_path(plots / "regret.png").string());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t inferences = 100000;
    std::uint64_t seed = 1;
    double alpha = dee_options{}.alpha;
    std::string env_name = "default";
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
    app.add_option("--env", env_name,
                   "default: max-prob levels only; agreement: levels and the top-1 agreement bit, where the optimal "
                   "rule needs the bit (DEE with and without streak bins, the best single threshold in hindsight)")
        ->check(CLI::IsMember({"default", "agreement"}))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    try {
        if (env_name == "agreement") return run_agreement(inferences, seed, alpha, json_path, plots);
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
