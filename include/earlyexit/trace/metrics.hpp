#pragma once
// Metrics of a policy over a set of samples (live outcomes or a replay of a trace), and the
// side-by-side comparison every report shows: the plain network (`full`) and the `oracle`
// beside the policies under study.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../context.hpp"
#include "../error.hpp"
#include "../policy/any_policy.hpp"
#include "../policy/static.hpp"
#include "../result.hpp"
#include "replay.hpp"
#include "trace.hpp"

namespace earlyexit {

/// What a report says about one policy. Fractions are in [0, 1]; costs are per sample.
/// Optional fields are std::nullopt when they cannot be measured (no labels, no energy meter,
/// no deadline), never a made-up number.
struct policy_metrics {
    std::string name;
    std::size_t samples = 0;
    std::optional<double> accuracy{};        ///< top-1 over the labelled samples
    double mean_stages = 0;                  ///< stages run (positions)
    double p50_stages = 0, p90_stages = 0, p99_stages = 0;  ///< nearest-rank percentiles
    double mean_heads = 0;                   ///< heads evaluated
    double mean_macs = 0;                    ///< declared MACs, heads included
    double compute_saving = 0;               ///< 1 - mean_macs / plain network's MACs
    double mean_seconds = 0;                 ///< time per sample (measured live, or recorded for replay)
    double p50_seconds = 0, p99_seconds = 0; ///< latency percentiles (nearest rank) of the samples' times
    /// Samples per second: by default 1 / mean_seconds (one sample after another, the input's
    /// preparation not counted); a batched or threaded run sets it from its wall time.
    double throughput_samples_per_s = 0;
    std::optional<double> energy_joules{};   ///< energy per sample, when a meter or model gave it
    std::optional<double> deadline_miss_rate{};  ///< fraction over the deadline, when one was set
    std::vector<std::size_t> exit_histogram;  ///< samples exiting at each head
    std::optional<bool> replay_matches_live{};   ///< set by callers that ran both
    /// Mean reward per sample of a learning policy's objective (q - lambda * cost, see
    /// policy/learning.hpp), when the caller computed it: every row on the same reward.
    std::optional<double> mean_reward{};
};

namespace detail {

[[nodiscard]] inline double nearest_rank(std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0.0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size(), std::max<std::size_t>(rank, 1)) - 1];
}

}  // namespace detail

/// Summarizes outcomes. label(i) gives sample i's label or std::nullopt; deadline (seconds),
/// when given, yields the miss rate (a sample misses when its time exceeds the deadline). The
/// energy per sample is the mean of the outcomes' energy when every outcome has one.
template <class LabelFn>
    requires std::is_invocable_r_v<std::optional<std::size_t>, LabelFn&, std::size_t>
[[nodiscard]] policy_metrics summarize(std::string name, std::span<const sample_outcome> outcomes, LabelFn&& label,
                                       const network_info& net, std::optional<double> deadline = std::nullopt) {
    check_deadline(deadline, "summarize: deadline");
    policy_metrics m;
    m.name = std::move(name);
    m.samples = outcomes.size();
    m.exit_histogram.assign(net.heads, 0);
    if (outcomes.empty()) return m;
    std::size_t labelled = 0, correct = 0, missed = 0, metered = 0;
    double joules = 0;
    std::vector<double> stages, seconds;
    stages.reserve(outcomes.size());
    seconds.reserve(outcomes.size());
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const auto& o = outcomes[i];
        if (o.head >= net.heads) earlyexit::fail("summarize: sample {} exited at head {}, but the network has {} heads", i, o.head, net.heads);
        if (const std::optional<std::size_t> y = label(i)) {
            ++labelled;
            correct += o.predicted == *y;
        }
        m.mean_stages += static_cast<double>(o.positions_run);
        m.mean_heads += static_cast<double>(o.heads_evaluated);
        m.mean_macs += o.macs;
        m.mean_seconds += o.seconds;
        ++m.exit_histogram[o.head];
        if (deadline && o.seconds > *deadline) ++missed;
        if (o.energy_joules) {
            ++metered;
            joules += *o.energy_joules;
        }
        stages.push_back(static_cast<double>(o.positions_run));
        seconds.push_back(o.seconds);
    }
    const auto n = static_cast<double>(outcomes.size());
    m.mean_stages /= n;
    m.mean_heads /= n;
    m.mean_macs /= n;
    m.mean_seconds /= n;
    m.compute_saving = net.full_macs > 0 ? 1.0 - m.mean_macs / net.full_macs : 0.0;
    if (labelled > 0) m.accuracy = static_cast<double>(correct) / static_cast<double>(labelled);
    if (deadline) m.deadline_miss_rate = static_cast<double>(missed) / n;
    // Energy only when every sample was metered: a mean over some of them would be wrong.
    if (metered == outcomes.size()) m.energy_joules = joules / n;
    std::sort(stages.begin(), stages.end());
    m.p50_stages = detail::nearest_rank(stages, 0.50);
    m.p90_stages = detail::nearest_rank(stages, 0.90);
    m.p99_stages = detail::nearest_rank(stages, 0.99);
    std::sort(seconds.begin(), seconds.end());
    m.p50_seconds = detail::nearest_rank(seconds, 0.50);
    m.p99_seconds = detail::nearest_rank(seconds, 0.99);
    m.throughput_samples_per_s = m.mean_seconds > 0 ? 1.0 / m.mean_seconds : 0.0;
    return m;
}

/// Summarizes replayed outcomes with the trace's labels and layout.
template <std::floating_point Scalar>
[[nodiscard]] policy_metrics summarize(std::string name, std::span<const sample_outcome> outcomes,
                                       const basic_trace<Scalar>& t, std::optional<double> deadline = std::nullopt) {
    if (outcomes.size() != t.size())
        earlyexit::fail("summarize: {} outcomes for a trace of {} samples", outcomes.size(), t.size());
    return summarize(std::move(name), outcomes, [&t](std::size_t i) { return t.label(i); }, t.info(), deadline);
}

/// Replays one policy on the trace (on its recorded times) and summarizes it. The policy is
/// taken by value: a learning policy passed by name is not trained by its evaluation (replay()
/// by reference does that). `deadline`, when given, is every sample's: the policy sees it (time
/// left in its contexts) and the summary counts the misses.
template <std::floating_point Scalar, class Policy>
[[nodiscard]] policy_metrics evaluate(const basic_trace<Scalar>& t, std::string name, Policy policy,
                                      std::optional<double> deadline = std::nullopt) {
    replayer<Scalar, Policy> r(t, std::move(policy));
    r.set_deadline(deadline);
    const auto outcomes = r.run_all();
    return summarize(std::move(name), outcomes, t, deadline);
}

/// A live run summarized as evaluate() summarizes a replay: runner.run() on samples 0..n-1 in
/// order, with the fill record_trace() and check_live_against_replay() take: fill(i, state) puts
/// sample i's input in the runner's working state (made once, from `state`) and returns its label
/// (std::nullopt: unlabelled). Every sample has `deadline` when given. The runner's policy learns
/// as it runs (a learning policy ends trained on the samples). Throws earlyexit::error naming a
/// bad label or deadline.
template <class Runner, class Fill>
    requires std::is_invocable_r_v<std::optional<std::size_t>, Fill&, std::size_t, typename Runner::state_type&>
[[nodiscard]] policy_metrics evaluate_live(Runner& runner, std::string name, std::size_t n,
                                           typename Runner::state_type state, Fill&& fill,
                                           std::optional<double> deadline = std::nullopt) {
    check_deadline(deadline, "evaluate_live: deadline");
    std::vector<sample_outcome> outcomes;
    std::vector<std::optional<std::size_t>> labels;
    outcomes.reserve(n);
    labels.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        labels.push_back(fill(i, state));
        outcomes.push_back(outcome_of(runner.run(state, sample_info{i, labels.back(), deadline})));
    }
    return summarize(std::move(name), outcomes, [&labels](std::size_t i) { return labels[i]; }, runner.info(),
                     deadline);
}

/// evaluate_live for a network whose state is its input (make_network<State>()): a runner of
/// `policy` (taken by value, as evaluate() takes it) on `clock` runs inputs[i] in order.
///   const auto row = evaluate_live(net, "max_prob", policy::max_prob{0.9F}, inputs, labels);
template <runnable_network Network, class Policy, runner_clock Clock = wall_clock>
    requires exit_policy<Policy, typename Network::scalar_type> &&
             std::copy_constructible<typename Network::state_type>
[[nodiscard]] policy_metrics evaluate_live(const Network& network, std::string name, Policy policy,
                                           std::span<const typename Network::state_type> inputs,
                                           std::span<const std::size_t> labels = {}, Clock clock = Clock{},
                                           std::optional<double> deadline = std::nullopt) {
    if (inputs.empty()) earlyexit::fail("evaluate_live: no inputs");
    if (!labels.empty() && labels.size() != inputs.size())
        earlyexit::fail("evaluate_live: {} labels for {} samples", labels.size(), inputs.size());
    auto runner = make_runner(network, std::move(policy), std::move(clock));
    return evaluate_live(
        runner, std::move(name), inputs.size(), inputs.front(),
        [&](std::size_t i, typename Network::state_type& s) {
            s = inputs[i];
            return labels.empty() ? std::nullopt : std::optional<std::size_t>(labels[i]);
        },
        deadline);
}

/// A policy with the name its report row carries.
template <std::floating_point Scalar = float>
struct named_policy {
    std::string name;
    any_policy<Scalar> policy;
};

/// The rows every comparison shows: `full` and `oracle` first, then the given policies.
template <std::floating_point Scalar>
[[nodiscard]] std::vector<named_policy<Scalar>> with_baselines(std::vector<named_policy<Scalar>> policies) {
    policies.insert(policies.begin(), {{"full", policy::full{}}, {"oracle", policy::oracle{}}});
    return policies;
}

/// The comparison table: the rows of with_baselines(policies) (the oracle needs a labelled
/// trace), all replayed on the same trace.
template <std::floating_point Scalar>
[[nodiscard]] std::vector<policy_metrics> compare(const basic_trace<Scalar>& t, std::vector<named_policy<Scalar>> policies,
                                                  std::optional<double> deadline = std::nullopt) {
    if (!t.labelled()) earlyexit::fail("compare: the oracle row needs labels, and the trace has unlabelled samples");
    std::vector<policy_metrics> rows;
    for (auto& p : with_baselines(std::move(policies))) rows.push_back(evaluate(t, std::move(p.name), p.policy, deadline));
    return rows;
}

}  // namespace earlyexit
