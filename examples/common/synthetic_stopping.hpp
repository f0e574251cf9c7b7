#pragma once
// A synthetic, stationary early-exit environment whose optimal stopping rule is known exactly:
// the yardstick for the regret of a policy that learns when to stop (DEE, a contextual bandit).
//
// The model. A network has K exit heads (layout: trace_layout) and C classes. Each sample's
// confidence is a Markov chain along the heads over B levels: levels[b] = (b + 0.5) / B, the
// centre of bin b = [b/B, (b+1)/B) of a uniform binning of max-prob on [0, 1] into B bins, so
// the context cell a binning policy sees at a head is the level index itself. The level at head
// 0 is drawn from `initial`, the level at head k+1 given the level i at head k from row i of
// `transition[k]`.
//
// The decision problem. At head k < K-1 a policy sees the level b and either stops, earning
// r(k, b) = levels[b] - lambda * c_k, or goes on; the final head K-1 always stops. c_k is the
// declared cost fraction when every head is evaluated in order (exit_context::cost_fraction()
// of a runner that evaluates all heads):
//   c_k = (sum of stage_macs[p] for p <= head_positions[k] + sum of head_macs[i] for i <= k) / full_macs,
//   full_macs = sum of all stage_macs + head_macs[K-1].
// Because the level is a Markov chain and the reward depends on the current level only, the
// best rule that looks at (head, level) is the best rule overall, and solve() finds it by
// backward induction (dynamic programming):
//   V*(K-2, i) = sum_j P_{K-2}(i, j) r(K-1, j),
//   V*(k, i)   = sum_j P_k(i, j) max(r(k+1, j), V*(k+1, j))                  for k < K-2,
//   J*         = sum_i initial(i) max(r(0, i), V*(0, i))   (sum_i initial(i) r(0, i) when K == 1).
// The optimal rule stops at (k, b) iff r(k, b) >= V*(k, b) (ties stop).
//
// Samples. generate() draws n samples into an earlyexit::trace: for each sample the level
// trajectory, then a class (uniform) that is top-1 at every head and is the label. Head k's
// logits are z_top = ln(p (C-1) / (1-p)) for that class and 0 for the others, p the level, so the
// softmax max-prob is p exactly in real arithmetic (about 1e-7 off once stored as float). This
// needs 1/C < p < 1: a level at or below 1/C may be declared but must be unreachable (no initial
// and no transition mass into it). Stage and head times are their declared MACs * 1e-9 s (a
// nominal 1 GMAC/s), so time-based and MAC-based cost fractions agree.
//
// Randomness is this file's own, the same on every platform and standard library: xoshiro256**
// seeded through splitmix64 (Vigna's reference algorithms), uniforms as the top 53 bits, class
// indices by rejection, levels by inverse CDF (never a zero-probability level). Per sample, in
// order: the level at head 0, the levels at heads 1..K-1, then the class.
//
// default_stopping_env() is the environment of the regret example; its properties (the optimal
// rule stops at head 0 for some levels and goes on for others, every head is an optimal exit
// with positive probability, J* beats every fixed exit by more than 0.01) are checked in
// tests/test_common_synthetic_stopping.cpp.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <earlyexit/confidence.hpp>
#include <earlyexit/context.hpp>
#include <earlyexit/error.hpp>
#include <earlyexit/trace/trace.hpp>
#include <fmt/format.h>

namespace earlyexit::demo {

/// The synthetic environment (see the file comment). K = layout.heads(), B = levels.size().
struct stopping_env {
    std::size_t classes = 0;                       ///< C, equal to layout.classes, >= 2
    std::vector<double> levels;                    ///< B max-prob levels; levels[b] = (b + 0.5) / B
    std::vector<double> initial;                   ///< P(level at head 0 = b), B values
    /// K-1 matrices B x B, row-stochastic: [k][i][j] = P(level at head k+1 = j | level at head k = i).
    std::vector<std::vector<std::vector<double>>> transition;
    earlyexit::trace_layout layout;                ///< heads, stages and declared costs
    double lambda = 0;                             ///< cost weight (max-prob units per plain network)

    [[nodiscard]] std::size_t heads() const noexcept { return layout.heads(); }
    [[nodiscard]] std::size_t bins() const noexcept { return levels.size(); }

    /// True when some initial or transition probability leads to level b.
    [[nodiscard]] bool reachable(std::size_t b) const noexcept {
        if (b < initial.size() && initial[b] > 0) return true;
        for (const auto& m : transition)
            for (const auto& row : m)
                if (b < row.size() && row[b] > 0) return true;
        return false;
    }

    /// Throws earlyexit::error naming the first bad field and value.
    void validate() const {
        layout.validate();
        const std::size_t K = heads(), B = bins();
        if (classes < 2) earlyexit::fail("stopping env: classes = {} must be at least 2", classes);
        if (classes != layout.classes)
            earlyexit::fail("stopping env: classes = {} but layout.classes = {}", classes, layout.classes);
        if (B == 0 || B > 256) earlyexit::fail("stopping env: levels has {} entries, expected 1 to 256", B);
        for (std::size_t b = 0; b < B; ++b) {
            const double centre = (static_cast<double>(b) + 0.5) / static_cast<double>(B);
            if (!(std::abs(levels[b] - centre) <= 1e-12))
                earlyexit::fail("stopping env: levels[{}] = {} is not {}, the centre of bin {} of {}", b, levels[b],
                                centre, b, B);
        }
        if (initial.size() != B)
            earlyexit::fail("stopping env: initial has {} entries for {} levels", initial.size(), B);
        check_distribution(initial, "initial");
        if (transition.size() + 1 != K)
            earlyexit::fail("stopping env: transition has {} matrices for {} heads, expected {}", transition.size(), K,
                            K - 1);
        for (std::size_t k = 0; k < transition.size(); ++k) {
            if (transition[k].size() != B)
                earlyexit::fail("stopping env: transition[{}] has {} rows for {} levels", k, transition[k].size(), B);
            for (std::size_t i = 0; i < B; ++i) {
                if (transition[k][i].size() != B)
                    earlyexit::fail("stopping env: transition[{}][{}] has {} entries for {} levels", k, i,
                                    transition[k][i].size(), B);
                check_distribution(transition[k][i], fmt::format("transition[{}][{}]", k, i));
            }
        }
        const double floor = 1.0 / static_cast<double>(classes);
        for (std::size_t b = 0; b < B; ++b)
            if (!(levels[b] > floor) && reachable(b))
                earlyexit::fail("stopping env: levels[{}] = {} is not above 1/classes = {} (no softmax of {} classes "
                                "has that max-prob) yet initial or transition leads to it",
                                b, levels[b], floor, classes);
        if (!std::isfinite(lambda) || !(lambda >= 0))
            earlyexit::fail("stopping env: lambda = {} is not finite and >= 0", lambda);
    }

private:
    static void check_distribution(const std::vector<double>& p, const std::string& what) {
        double sum = 0;
        for (std::size_t j = 0; j < p.size(); ++j) {
            if (!std::isfinite(p[j]) || !(p[j] >= 0) || !(p[j] <= 1))
                earlyexit::fail("stopping env: {}[{}] = {} is not a probability", what, j, p[j]);
            sum += p[j];
        }
        if (!(std::abs(sum - 1.0) <= 1e-9)) earlyexit::fail("stopping env: {} sums to {}, not 1", what, sum);
    }
};

/// c_k for k = 0..K-1 (see the file comment). The layout must be valid.
[[nodiscard]] inline std::vector<double> cost_fractions(const stopping_env& env) {
    env.layout.validate();
    const auto& l = env.layout;
    const double full = earlyexit::detail::full_network_macs(l.stage_macs, l.head_macs);
    std::vector<double> c(l.heads());
    double stages = 0, heads = 0;
    std::size_t p = 0;
    for (std::size_t k = 0; k < l.heads(); ++k) {
        for (; p <= l.head_positions[k]; ++p) stages += l.stage_macs[p];
        heads += l.head_macs[k];
        c[k] = full > 0 ? (stages + heads) / full : 0.0;
    }
    return c;
}

/// levels[level] - lambda * costs[k]: the reward of stopping at head k on that level.
[[nodiscard]] inline double reward(const stopping_env& env, std::span<const double> costs, std::size_t k,
                                   std::size_t level) {
    if (k >= costs.size() || level >= env.levels.size())
        earlyexit::fail("stopping env: reward at head {} level {} is outside {} heads and {} levels", k, level,
                        costs.size(), env.levels.size());
    return env.levels[level] - env.lambda * costs[k];
}

/// The exact solution of the stopping problem.
struct stopping_solution {
    std::vector<std::vector<double>> continue_value;  ///< [k][b], k < K-1: V*(k, b), the value of going on
    double optimal_value = 0;                          ///< J*: the expected reward of the optimal rule
    std::vector<double> costs;                         ///< c_k (cost_fractions)
};

/// Backward induction (see the file comment). Validates env.
[[nodiscard]] inline stopping_solution solve(const stopping_env& env) {
    env.validate();
    const std::size_t K = env.heads(), B = env.bins();
    stopping_solution s;
    s.costs = cost_fractions(env);
    s.continue_value.assign(K - 1, std::vector<double>(B, 0.0));
    for (std::size_t k = K - 1; k-- > 0;) {
        for (std::size_t i = 0; i < B; ++i) {
            double v = 0;
            for (std::size_t j = 0; j < B; ++j) {
                const double stop = reward(env, s.costs, k + 1, j);
                const double next = k + 1 == K - 1 ? stop : std::max(stop, s.continue_value[k + 1][j]);
                v += env.transition[k][i][j] * next;
            }
            s.continue_value[k][i] = v;
        }
    }
    double j_star = 0;
    for (std::size_t i = 0; i < B; ++i) {
        const double stop = reward(env, s.costs, 0, i);
        j_star += env.initial[i] * (K == 1 ? stop : std::max(stop, s.continue_value[0][i]));
    }
    s.optimal_value = j_star;
    return s;
}

/// Whether the optimal rule stops at head k on level b: r(k, b) >= V*(k, b); always at the final head.
[[nodiscard]] inline bool optimal_stops(const stopping_solution& s, const stopping_env& env, std::size_t k,
                                        std::size_t b) {
    if (k + 1 >= env.heads()) return true;
    if (k >= s.continue_value.size() || b >= s.continue_value[k].size())
        earlyexit::fail("stopping solution: head {} level {} is outside it", k, b);
    return reward(env, s.costs, k, b) >= s.continue_value[k][b];
}

/// The head where the optimal rule exits on a level trajectory (one level per head).
[[nodiscard]] inline std::size_t optimal_exit(const stopping_env& env, const stopping_solution& s,
                                              std::span<const std::uint8_t> trajectory) {
    if (trajectory.size() != env.heads())
        earlyexit::fail("stopping env: a trajectory of {} levels for {} heads", trajectory.size(), env.heads());
    for (std::size_t k = 0; k + 1 < env.heads(); ++k)
        if (optimal_stops(s, env, k, trajectory[k])) return k;
    return env.heads() - 1;
}

/// The reward of exiting at exit_head on a level trajectory.
[[nodiscard]] inline double reward_at(const stopping_env& env, std::span<const std::uint8_t> trajectory,
                                      std::size_t exit_head) {
    if (trajectory.size() != env.heads())
        earlyexit::fail("stopping env: a trajectory of {} levels for {} heads", trajectory.size(), env.heads());
    if (exit_head >= env.heads())
        earlyexit::fail("stopping env: exit head {} of {} heads", exit_head, env.heads());
    const auto costs = cost_fractions(env);
    return reward(env, costs, exit_head, trajectory[exit_head]);
}

/// The reward the optimal rule earns on a level trajectory.
[[nodiscard]] inline double optimal_reward(const stopping_env& env, const stopping_solution& s,
                                           std::span<const std::uint8_t> trajectory) {
    const std::size_t k = optimal_exit(env, s, trajectory);
    return reward(env, s.costs, k, trajectory[k]);
}

/// P(level at head k = b), b = 0..B-1. Validates env.
[[nodiscard]] inline std::vector<double> level_distribution(const stopping_env& env, std::size_t k) {
    env.validate();
    if (k >= env.heads()) earlyexit::fail("stopping env: head {} of {} heads", k, env.heads());
    std::vector<double> p = env.initial;
    for (std::size_t h = 0; h < k; ++h) {
        std::vector<double> q(env.bins(), 0.0);
        for (std::size_t i = 0; i < env.bins(); ++i)
            for (std::size_t j = 0; j < env.bins(); ++j) q[j] += p[i] * env.transition[h][i][j];
        p = std::move(q);
    }
    return p;
}

/// The expected reward of the fixed rule "always exit at head k": sum_b P(level_k = b) r(k, b).
[[nodiscard]] inline double fixed_exit_value(const stopping_env& env, std::size_t k) {
    const auto p = level_distribution(env, k);
    const auto costs = cost_fractions(env);
    double v = 0;
    for (std::size_t b = 0; b < env.bins(); ++b) v += p[b] * reward(env, costs, k, b);
    return v;
}

/// P(the optimal rule exits at head k), k = 0..K-1 (sums to 1).
[[nodiscard]] inline std::vector<double> optimal_exit_probabilities(const stopping_env& env,
                                                                    const stopping_solution& s) {
    env.validate();
    const std::size_t K = env.heads(), B = env.bins();
    std::vector<double> exits(K, 0.0);
    std::vector<double> alive = env.initial;  // mass still running at head k, by level
    for (std::size_t k = 0; k < K; ++k) {
        std::vector<double> next(B, 0.0);
        for (std::size_t i = 0; i < B; ++i) {
            if (optimal_stops(s, env, k, i)) {
                exits[k] += alive[i];
            } else {
                for (std::size_t j = 0; j < B; ++j) next[j] += alive[i] * env.transition[k][i][j];
            }
        }
        alive = std::move(next);
    }
    return exits;
}

/// The generator of this file: xoshiro256** (Blackman and Vigna) seeded by splitmix64, both as in
/// Vigna's reference C code, so a seed gives the same numbers everywhere.
class stopping_rng {
public:
    explicit stopping_rng(std::uint64_t seed) noexcept {
        for (auto& w : s_) {
            seed += 0x9e3779b97f4a7c15ULL;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            w = z ^ (z >> 31);
        }
    }
    /// The next 64 random bits.
    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    /// Uniform in [0, 1): the top 53 bits.
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    /// Uniform in {0, ..., n-1} (n > 0), by rejection: exactly uniform.
    std::uint64_t below(std::uint64_t n) noexcept {
        const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
        for (;;) {
            const std::uint64_t x = next();
            if (x >= threshold) return x % n;
        }
    }
    /// An index drawn with probabilities p (summing to 1), by inverse CDF; never one with p == 0.
    std::size_t pick(std::span<const double> p) noexcept {
        const double u = uniform();
        double acc = 0;
        std::size_t last = 0;
        for (std::size_t j = 0; j < p.size(); ++j) {
            if (p[j] <= 0) continue;
            acc += p[j];
            last = j;
            if (u < acc) return j;
        }
        return last;  // u beyond the rounded total
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> s_{};
};

/// Samples of the environment: a trace (for replaying policies) and each sample's levels.
struct synthetic_stream {
    earlyexit::trace trace;
    std::vector<std::vector<std::uint8_t>> level;  ///< [sample][head]: level index
};

/// The logit of the top class that gives max-prob p over `classes` classes, the others at 0.
[[nodiscard]] inline double top_logit(double p, std::size_t classes) noexcept {
    return std::log(p * static_cast<double>(classes - 1) / (1.0 - p));
}

/// n samples of env from seed (see the file comment). Validates env.
[[nodiscard]] inline synthetic_stream generate(const stopping_env& env, std::size_t n, std::uint64_t seed) {
    env.validate();
    const std::size_t K = env.heads(), C = env.classes;
    synthetic_stream out{earlyexit::trace(env.layout), {}};
    out.trace.reserve(n);
    out.level.reserve(n);
    out.trace.provenance["dataset"] = "synthetic_stopping";
    out.trace.provenance["seed"] = std::to_string(seed);
    out.trace.provenance["seconds"] = "declared MACs * 1e-9";
    std::vector<double> top(env.bins());
    for (std::size_t b = 0; b < env.bins(); ++b)  // unreachable levels (at or below 1/C) are never written
        top[b] = env.levels[b] > 1.0 / static_cast<double>(C) ? top_logit(env.levels[b], C) : 0.0;
    std::vector<double> stage_seconds(env.layout.stages()), head_seconds(K);
    for (std::size_t p = 0; p < stage_seconds.size(); ++p) stage_seconds[p] = env.layout.stage_macs[p] * 1e-9;
    for (std::size_t k = 0; k < K; ++k) head_seconds[k] = env.layout.head_macs[k] * 1e-9;
    std::vector<float> logits(K * C);
    stopping_rng rng(seed);
    for (std::size_t i = 0; i < n; ++i) {
        std::vector<std::uint8_t> path(K);
        path[0] = static_cast<std::uint8_t>(rng.pick(env.initial));
        for (std::size_t k = 1; k < K; ++k)
            path[k] = static_cast<std::uint8_t>(rng.pick(env.transition[k - 1][path[k - 1]]));
        const auto label = static_cast<std::size_t>(rng.below(C));
        std::fill(logits.begin(), logits.end(), 0.0f);
        for (std::size_t k = 0; k < K; ++k) logits[k * C + label] = static_cast<float>(top[path[k]]);
        out.trace.add(logits, stage_seconds, head_seconds, label);
        out.level.push_back(std::move(path));
    }
    return out;
}

/// The environment of the regret example. K = 4 heads after stages 1, 3, 5, 7 of 8 (1e6 MACs per
/// stage, 1e4 per head: c = 0.2509, 0.5019, 0.7528, 1.0037), C = 10 classes, B = 10 levels
/// 0.05..0.95 of which 0.05 (not above 1/C) is unreachable, lambda = 0.5 (each further head costs
/// about 0.125). Head 0's level is 0.15..0.85 with weights 15, 20, 20, 15, 10, 8, 7, 5 (percent).
/// From one head to the next the level moves by d = -1, 0, +1, +2, +3 with weights 0.1, 0.1, 0.25,
/// 0.3, 0.25 (mean +1.5 levels = +0.15 max-prob, more than a head costs), moves that leave levels
/// 1..9 dropped and the row renormalized: confidence rises with noise and saturates at the top.
/// The optimal rule stops from level 0.75 up at every head; its exits and J* against the fixed
/// exits are checked by the tests.
[[nodiscard]] inline stopping_env default_stopping_env() {
    constexpr std::size_t B = 10, K = 4, lowest = 1;
    stopping_env env;
    env.classes = 10;
    env.layout = earlyexit::trace_layout{10, {1, 3, 5, 7}, std::vector<double>(8, 1e6), std::vector<double>(K, 1e4)};
    env.lambda = 0.5;
    for (std::size_t b = 0; b < B; ++b) env.levels.push_back((static_cast<double>(b) + 0.5) / static_cast<double>(B));
    const std::array<double, B> initial{0, 15, 20, 20, 15, 10, 8, 7, 5, 0};
    for (double w : initial) env.initial.push_back(w / 100.0);
    constexpr std::array<double, 5> step{0.1, 0.1, 0.25, 0.3, 0.25};  // d = -1 .. +3
    std::vector<std::vector<double>> m(B, std::vector<double>(B, 0.0));
    for (std::size_t i = 0; i < B; ++i) {
        double total = 0;
        for (std::size_t s = 0; s < step.size(); ++s) {
            const std::size_t j = i + s;  // i + d + 1
            if (j < lowest + 1 || j > B) continue;
            m[i][j - 1] = step[s];
            total += step[s];
        }
        for (double& p : m[i]) p /= total;
    }
    env.transition.assign(K - 1, m);
    return env;
}

}  // namespace earlyexit::demo
