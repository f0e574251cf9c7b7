#pragma once
// Learning policies on recorded traces: DEE's bins from a warm-up trace, the rewards a sample
// would earn at each head, the best rule of DEE's own class in hindsight, and regret curves.
//
//   quantile_edges(t, measure, bins)   per non-final exit, bins - 1 edges at the measure's
//                                      quantiles on t (a warm-up trace): equally filled bins
//   stop_rewards<Reward>(t, i, lambda) r_k = q_k - lambda * c_k for every head k of sample i, c_k
//                                      the cost fraction with every head evaluated in order
//                                      (what DEE pays); q from the reward model, its reference
//                                      being the final head (agreement) or the label (correctness)
//   hindsight_best<Reward>(t, options) the same backward induction DEE runs online, done offline
//                                      on the whole trace: V(k, b) = mean over the samples in
//                                      cell (k, b) of max(r_{k+1}, V(k+1, b_{k+1})); the rule
//                                      "stop iff r_k >= V(k, b)" (S(k, b) - lambda c_k >= V(k, b)
//                                      for rewards unknown when deciding) and its reward on
//                                      every sample
//   apply_rule<Reward>(rule, t, options)
//                                      that rule, fitted on one split, applied to another: the
//                                      honest yardstick for regret on real traces
//   realized_reward<Reward>(t, i, o, lambda)
//                                      what outcome o of sample i earned: q at its exit head less
//                                      lambda times its own cost fraction (o.macs / full)
//   average_regret(best, got, checkpoints)
//                                      mean of best - got over the first n samples, for each n

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "../confidence.hpp"
#include "../error.hpp"
#include "../policy/dee.hpp"
#include "../policy/learning.hpp"
#include "../result.hpp"
#include "../trace/trace.hpp"

namespace earlyexit {

namespace detail {

template <std::floating_point Scalar>
[[nodiscard]] confidence<Scalar> measures_of(std::span<const Scalar> logits, std::vector<Scalar>& probs) {
    probs.resize(logits.size());
    return measure(logits, probs);
}

/// Cost fractions at each head when every head is evaluated in order.
[[nodiscard]] inline std::vector<double> in_order_costs(const network_info& n) {
    std::vector<double> c(n.heads);
    double heads = 0;
    for (std::size_t k = 0; k < n.heads; ++k) {
        heads += n.head_macs[k];
        c[k] = n.full_macs > 0 ? (n.macs_through(n.head_positions[k]) + heads) / n.full_macs : 0.0;
    }
    return c;
}

}  // namespace detail

/// Per non-final exit, bins - 1 strictly increasing edges at the quantiles i / bins of the
/// measure over t's samples (ties are spread by the smallest representable steps).
template <std::floating_point Scalar>
[[nodiscard]] std::vector<std::vector<double>> quantile_edges(const basic_trace<Scalar>& t, context_measure m,
                                                              std::size_t bins) {
    if (bins < 1 || bins > 1024) fail("quantile_edges: bins {} is out of range [1, 1024]", bins);
    if (t.empty()) fail("quantile_edges: the warm-up trace is empty");
    std::vector<std::vector<double>> edges(t.heads() - 1);
    std::vector<Scalar> probs;
    std::vector<double> v(t.size());
    for (std::size_t k = 0; k + 1 < t.heads(); ++k) {
        for (std::size_t i = 0; i < t.size(); ++i) v[i] = measure_value(m, detail::measures_of(t.logits(i, k), probs));
        std::sort(v.begin(), v.end());
        auto& e = edges[k];
        for (std::size_t j = 1; j < bins; ++j) {
            const auto idx = std::min(t.size() - 1, j * t.size() / bins);
            double x = v[idx];
            if (!e.empty() && !(x > e.back())) x = std::nextafter(e.back(), 2.0);
            e.push_back(x);
        }
    }
    return edges;
}

/// Reward of stopping at each head of sample i, every head evaluated in order (see the file comment).
template <reward_model Reward, std::floating_point Scalar>
[[nodiscard]] std::vector<double> stop_rewards(const basic_trace<Scalar>& t, std::size_t i, double lambda) {
    const auto info = t.info();
    const auto costs = detail::in_order_costs(info);
    std::vector<step_record> s(t.heads());
    std::vector<Scalar> probs;
    for (std::size_t k = 0; k < t.heads(); ++k) {
        const auto m = detail::measures_of(t.logits(i, k), probs);
        s[k] = {k, npos, m.top1, static_cast<double>(m.max_prob), m.valid, costs[k], 0, -1.0};
    }
    std::vector<double> r(t.heads());
    for (std::size_t k = 0; k < t.heads(); ++k)
        r[k] = Reward::revealed(s, k, t.label(i), t.heads() - 1).value_or(0.0) - lambda * costs[k];
    return r;
}

/// The best rule of DEE's class on a trace, in hindsight (see the file comment).
struct hindsight_rule {
    std::vector<double> continue_value;  ///< V per cell, indexed like dee::cell_of
    /// S per cell: the mean quality of stopping there (rewards not known when deciding; the
    /// rule compares S - lambda c_k with V, as DEE does). Empty for max_prob_reward.
    std::vector<double> stop_quality;
    std::vector<char> visited;           ///< cells some sample reached (unvisited cells continue)
    std::vector<std::size_t> exit_head;  ///< where the rule stops each sample
    std::vector<double> reward;          ///< what it earns on each sample
    [[nodiscard]] double mean_reward() const noexcept {
        double s = 0;
        for (double r : reward) s += r;
        return reward.empty() ? 0.0 : s / static_cast<double>(reward.size());
    }
};

namespace detail {

/// Per sample of t: the stop reward at every head and the context cell of every non-final head
/// with every head evaluated in order (patience as the runner counts it).
template <reward_model Reward, std::floating_point Scalar>
void rewards_and_cells(const basic_trace<Scalar>& t, const policy::dee<Reward>& binner, const dee_options& options,
                       std::vector<std::vector<double>>& r, std::vector<std::vector<std::size_t>>& cell) {
    const std::size_t n = t.size(), heads = t.heads();
    const auto costs = in_order_costs(t.info());
    r.assign(n, {});
    cell.assign(n, std::vector<std::size_t>(heads, npos));
    std::vector<Scalar> probs;
    for (std::size_t i = 0; i < n; ++i) {
        r[i] = stop_rewards<Reward>(t, i, options.lambda);
        std::size_t streak = 0, previous = npos;
        for (std::size_t k = 0; k + 1 < heads; ++k) {
            const auto m = measures_of(t.logits(i, k), probs);
            streak = !m.valid ? 0 : (m.top1 == previous ? streak + 1 : 1);
            previous = m.valid ? m.top1 : npos;
            cell[i][k] = binner.cell_of(k, measure_value(options.measure, m), costs[k], streak);
        }
    }
}

}  // namespace detail

/// The backward induction of DEE on the whole trace (its bins from `options`: uniform or the
/// given edges, streak bins included). A cell no sample visits continues, as DEE's unvisited
/// cells do. For rewards known when deciding (max_prob_reward) the rule stops on a sample's own
/// r_k >= V(k, b); otherwise on S(k, b) - lambda c_k >= V(k, b), S the cell's mean quality (the
/// rule cannot see a sample's own label), and earns the sample's actual r_k.
template <reward_model Reward, std::floating_point Scalar>
[[nodiscard]] hindsight_rule hindsight_best(const basic_trace<Scalar>& t, const dee_options& options) {
    if (t.empty()) fail("hindsight_best: the trace is empty");
    if constexpr (Reward::uses_label)
        if (!t.labelled()) fail("hindsight_best: the correctness reward needs a labelled trace");
    policy::dee<Reward> binner(options);
    binner.prepare(t.info());
    const std::size_t n = t.size(), heads = t.heads(), per_exit = binner.cells_per_exit();
    const auto costs = detail::in_order_costs(t.info());
    std::vector<std::vector<double>> r;
    std::vector<std::vector<std::size_t>> cell;
    detail::rewards_and_cells(t, binner, options, r, cell);
    hindsight_rule h;
    h.continue_value.assign((heads - 1) * per_exit, 0.0);
    h.visited.assign(h.continue_value.size(), 0);
    if constexpr (!Reward::known_at_decision) {
        h.stop_quality.assign(h.continue_value.size(), 0.0);
        std::vector<std::size_t> count(h.stop_quality.size(), 0);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t k = 0; k + 1 < heads; ++k) {
                h.stop_quality[cell[i][k]] += r[i][k] + options.lambda * costs[k];
                ++count[cell[i][k]];
            }
        for (std::size_t c = 0; c < count.size(); ++c)
            if (count[c] > 0) h.stop_quality[c] /= static_cast<double>(count[c]);
    }
    const auto stop_value = [&](std::size_t i, std::size_t k) {
        if constexpr (Reward::known_at_decision) return r[i][k];
        else return h.stop_quality[cell[i][k]] - options.lambda * costs[k];
    };
    // w[i]: the value of reaching head k + 1 for sample i under the rule from k + 1 on.
    std::vector<double> w(n);
    for (std::size_t i = 0; i < n; ++i) w[i] = r[i][heads - 1];
    for (std::size_t k = heads - 1; k-- > 0;) {
        std::vector<double> sum(per_exit, 0.0);
        std::vector<std::size_t> count(per_exit, 0);
        const std::size_t first = k * per_exit;
        for (std::size_t i = 0; i < n; ++i) {
            sum[cell[i][k] - first] += w[i];
            ++count[cell[i][k] - first];
        }
        for (std::size_t b = 0; b < sum.size(); ++b) {
            h.visited[first + b] = count[b] > 0;
            h.continue_value[first + b] = count[b] > 0 ? sum[b] / static_cast<double>(count[b]) : 0.0;
        }
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t c = cell[i][k];
            if (h.visited[c] && stop_value(i, k) >= h.continue_value[c]) w[i] = r[i][k];
        }
    }
    h.exit_head.resize(n);
    h.reward.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t k = 0;
        while (k + 1 < heads && !(h.visited[cell[i][k]] && stop_value(i, k) >= h.continue_value[cell[i][k]])) ++k;
        h.exit_head[i] = k;
        h.reward[i] = r[i][k];
    }
    return h;
}

/// A rule fitted on one trace (hindsight_best on a validation split) applied to another: where
/// it stops each sample of t and what it earns there (exit_head, reward; the fitted tables are
/// copied). `options` must be those the rule was fitted with.
template <reward_model Reward, std::floating_point Scalar>
[[nodiscard]] hindsight_rule apply_rule(const hindsight_rule& rule, const basic_trace<Scalar>& t,
                                        const dee_options& options) {
    if (t.empty()) fail("apply_rule: the trace is empty");
    policy::dee<Reward> binner(options);
    binner.prepare(t.info());
    if (rule.continue_value.size() != (t.heads() - 1) * binner.cells_per_exit())
        fail("apply_rule: the rule has {} cells; this trace and these options need {}", rule.continue_value.size(),
             (t.heads() - 1) * binner.cells_per_exit());
    const auto costs = detail::in_order_costs(t.info());
    std::vector<std::vector<double>> r;
    std::vector<std::vector<std::size_t>> cell;
    detail::rewards_and_cells(t, binner, options, r, cell);
    hindsight_rule h = rule;
    h.exit_head.assign(t.size(), 0);
    h.reward.assign(t.size(), 0.0);
    for (std::size_t i = 0; i < t.size(); ++i) {
        std::size_t k = 0;
        for (; k + 1 < t.heads(); ++k) {
            const std::size_t c = cell[i][k];
            const double s = Reward::known_at_decision ? r[i][k] : rule.stop_quality[c] - options.lambda * costs[k];
            if (rule.visited[c] && s >= rule.continue_value[c]) break;
        }
        h.exit_head[i] = k;
        h.reward[i] = r[i][k];
    }
    return h;
}

/// What outcome o (of sample i of t, from replay or a live run) earned.
template <reward_model Reward, std::floating_point Scalar>
[[nodiscard]] double realized_reward(const basic_trace<Scalar>& t, std::size_t i, const sample_outcome& o,
                                     double lambda) {
    if (o.head >= t.heads()) fail("realized_reward: sample {} exited at head {} of {}", i, o.head, t.heads());
    std::vector<step_record> s(t.heads());
    std::vector<Scalar> probs;
    for (std::size_t k = 0; k < t.heads(); ++k) {
        const auto m = detail::measures_of(t.logits(i, k), probs);
        s[k] = {k, npos, m.top1, static_cast<double>(m.max_prob), m.valid, 0.0, 0, -1.0};
    }
    const double full = t.info().full_macs;
    return Reward::revealed(s, o.head, t.label(i), t.heads() - 1).value_or(0.0) - lambda * (full > 0 ? o.macs / full : 0.0);
}

/// The rewards of every outcome of a run over t.
template <reward_model Reward, std::floating_point Scalar>
[[nodiscard]] std::vector<double> realized_rewards(const basic_trace<Scalar>& t, std::span<const sample_outcome> o,
                                                   double lambda) {
    if (o.size() != t.size()) fail("realized_rewards: {} outcomes for {} samples", o.size(), t.size());
    std::vector<double> r(o.size());
    for (std::size_t i = 0; i < o.size(); ++i) r[i] = realized_reward<Reward>(t, i, o[i], lambda);
    return r;
}

/// One point of a regret curve: the mean of best - got over the first `inferences` samples.
struct regret_point {
    std::size_t inferences = 0;
    double avg_regret = 0;
};

/// The regret curve at the given checkpoints (each <= the number of samples, increasing).
[[nodiscard]] inline std::vector<regret_point> average_regret(std::span<const double> best, std::span<const double> got,
                                                              std::span<const std::size_t> checkpoints) {
    if (best.size() != got.size()) fail("average_regret: {} best rewards against {} obtained", best.size(), got.size());
    std::vector<regret_point> out;
    double sum = 0;
    std::size_t i = 0;
    for (const std::size_t n : checkpoints) {
        if (n > best.size()) fail("average_regret: checkpoint {} is past the {} samples", n, best.size());
        if (n == 0 || n < i) fail("average_regret: checkpoints must be positive and increasing (got {} after {})", n, i);
        for (; i < n; ++i) sum += best[i] - got[i];
        out.push_back({n, sum / static_cast<double>(n)});
    }
    return out;
}

/// Checkpoints 10^2, 2*10^2, 5*10^2, 10^3, ... up to n (and n itself).
[[nodiscard]] inline std::vector<std::size_t> log_checkpoints(std::size_t n) {
    std::vector<std::size_t> c;
    for (std::size_t decade = 100; decade <= n; decade *= 10)
        for (const std::size_t m : {1u, 2u, 5u})
            if (decade * m <= n) c.push_back(decade * m);
    if (c.empty() || c.back() != n) c.push_back(n);
    return c;
}

}  // namespace earlyexit
