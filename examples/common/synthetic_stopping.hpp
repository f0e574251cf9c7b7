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
//
// The second half of this file, agreement_env, adds the top-1 agreement bit to the state (the
// answer can change between heads), so that the best rule needs (head, level, bit): the
// environment of `earlyexit-dee-regret --env agreement`, where one max-prob threshold, or DEE
// without the streak context, keeps a positive regret.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <earlyexit/confidence.hpp>
#include <earlyexit/context.hpp>
#include <earlyexit/error.hpp>
#include <earlyexit/trace/trace.hpp>
#include <fmt/format.h>

namespace earlyexit::demo {

namespace stopping_detail {

/// What the environments' validate() share; `who` starts every message ("stopping env").
inline void check_distribution(std::string_view who, const std::vector<double>& p, const std::string& what) {
    double sum = 0;
    for (std::size_t j = 0; j < p.size(); ++j) {
        if (!std::isfinite(p[j]) || !(p[j] >= 0) || !(p[j] <= 1))
            earlyexit::fail("{}: {}[{}] = {} is not a probability", who, what, j, p[j]);
        sum += p[j];
    }
    if (!(std::abs(sum - 1.0) <= 1e-9)) earlyexit::fail("{}: {} sums to {}, not 1", who, what, sum);
}

/// classes, and B levels at the centres of B uniform bins (at most max_levels).
inline void check_levels(std::string_view who, std::size_t classes, const earlyexit::trace_layout& layout,
                         const std::vector<double>& levels, std::size_t max_levels) {
    const std::size_t B = levels.size();
    if (classes < 2) earlyexit::fail("{}: classes = {} must be at least 2", who, classes);
    if (classes != layout.classes) earlyexit::fail("{}: classes = {} but layout.classes = {}", who, classes, layout.classes);
    if (B == 0 || B > max_levels) earlyexit::fail("{}: levels has {} entries, expected 1 to {}", who, B, max_levels);
    for (std::size_t b = 0; b < B; ++b) {
        const double centre = (static_cast<double>(b) + 0.5) / static_cast<double>(B);
        if (!(std::abs(levels[b] - centre) <= 1e-12))
            earlyexit::fail("{}: levels[{}] = {} is not {}, the centre of bin {} of {}", who, b, levels[b], centre, b, B);
    }
}

/// initial over the B levels, K - 1 row-stochastic S x S transition matrices (`unit` names
/// the S states in messages).
inline void check_chain(std::string_view who, const std::vector<double>& initial, std::size_t B,
                        const std::vector<std::vector<std::vector<double>>>& transition, std::size_t K, std::size_t S,
                        std::string_view unit) {
    if (initial.size() != B) earlyexit::fail("{}: initial has {} entries for {} levels", who, initial.size(), B);
    check_distribution(who, initial, "initial");
    if (transition.size() + 1 != K)
        earlyexit::fail("{}: transition has {} matrices for {} heads, expected {}", who, transition.size(), K, K - 1);
    for (std::size_t k = 0; k < transition.size(); ++k) {
        if (transition[k].size() != S)
            earlyexit::fail("{}: transition[{}] has {} rows for {} {}", who, k, transition[k].size(), S, unit);
        for (std::size_t i = 0; i < S; ++i) {
            if (transition[k][i].size() != S)
                earlyexit::fail("{}: transition[{}][{}] has {} entries for {} {}", who, k, i, transition[k][i].size(),
                                S, unit);
            check_distribution(who, transition[k][i], fmt::format("transition[{}][{}]", k, i));
        }
    }
}

/// No reachable level at or below 1/classes (no softmax has that max-prob); lambda >= 0.
template <class Reachable>
void check_floor_and_lambda(std::string_view who, const std::vector<double>& levels, std::size_t classes,
                            Reachable&& reachable, double lambda) {
    const double floor = 1.0 / static_cast<double>(classes);
    for (std::size_t b = 0; b < levels.size(); ++b)
        if (!(levels[b] > floor) && reachable(b))
            earlyexit::fail("{}: levels[{}] = {} is not above 1/classes = {} (no softmax of {} classes has that "
                            "max-prob) yet initial or transition leads to it",
                            who, b, levels[b], floor, classes);
    if (!std::isfinite(lambda) || !(lambda >= 0)) earlyexit::fail("{}: lambda = {} is not finite and >= 0", who, lambda);
}

}  // namespace stopping_detail

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
        constexpr std::string_view who = "stopping env";
        stopping_detail::check_levels(who, classes, layout, levels, 256);
        stopping_detail::check_chain(who, initial, bins(), transition, heads(), bins(), "levels");
        stopping_detail::check_floor_and_lambda(who, levels, classes, [&](std::size_t b) { return reachable(b); },
                                                lambda);
    }
};

/// c_k for k = 0..K-1 (see the file comment) of a layout. Validates it.
[[nodiscard]] inline std::vector<double> cost_fractions(const earlyexit::trace_layout& l) {
    l.validate();
    const double full = earlyexit::full_network_macs(l.stage_macs, l.head_macs);
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

/// c_k for k = 0..K-1 of the environment's layout (which must be valid).
[[nodiscard]] inline std::vector<double> cost_fractions(const stopping_env& env) { return cost_fractions(env.layout); }

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

namespace stopping_detail {

/// What every generate() fixes before its first draw: the trace's provenance, the top logit of
/// each level, and the recorded stage and head times (declared MACs at a nominal 1 GMAC/s).
struct stream_frame {
    std::vector<double> top;  ///< per level; 0 for unreachable levels (at or below 1/C), never written
    std::vector<double> stage_seconds, head_seconds;
};

[[nodiscard]] inline stream_frame frame_of(earlyexit::trace& t, const earlyexit::trace_layout& layout,
                                           const std::vector<double>& levels, std::size_t classes,
                                           std::string_view dataset, std::uint64_t seed, std::size_t n) {
    t.reserve(n);
    t.provenance["dataset"] = std::string(dataset);
    t.provenance["seed"] = std::to_string(seed);
    t.provenance["seconds"] = "declared MACs * 1e-9";
    stream_frame f;
    for (const double level : levels)
        f.top.push_back(level > 1.0 / static_cast<double>(classes) ? top_logit(level, classes) : 0.0);
    for (const double macs : layout.stage_macs) f.stage_seconds.push_back(macs * 1e-9);
    for (const double macs : layout.head_macs) f.head_seconds.push_back(macs * 1e-9);
    return f;
}

}  // namespace stopping_detail

/// n samples of env from seed (see the file comment). Validates env.
[[nodiscard]] inline synthetic_stream generate(const stopping_env& env, std::size_t n, std::uint64_t seed) {
    env.validate();
    const std::size_t K = env.heads(), C = env.classes;
    synthetic_stream out{earlyexit::trace(env.layout), {}};
    out.level.reserve(n);
    const auto [top, stage_seconds, head_seconds] =
        stopping_detail::frame_of(out.trace, env.layout, env.levels, C, "synthetic_stopping", seed, n);
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


// ---------------------------------------------------------------------------------------------
// The agreement environment: the optimal rule needs the top-1 agreement bit, not only max-prob.
//
// The model. As above (K heads, C classes, B levels, each a bin centre), but the state of the
// chain at head k is (level b, agreement bit a): a = 1 when head k's top-1 is head k-1's, 0 when
// it changed. Head 0 has no head before it: its bit is 0 (the runner's patience is 1 there, so a
// context that splits on the streak, dee_options::streak_bins = 2, puts it with the changed
// answers). Head 0's level is drawn from `initial`; the state at head k+1 given the state at head
// k from row 2 i + a of `transition[k]`, a matrix over the 2B states s = 2 b + a.
//
// The reward is the max-prob one, as for stopping_env: stopping at head k on level b earns
// r(k, b) = levels[b] - lambda * c_k, whatever the bit. So the bit is not in the stop value; it is
// in the continuation value (the rows of a changed answer and of a settled one differ). That
// keeps the reward the one the regret example's learners optimise (reward::max_prob_reward, known
// when deciding) and the state fully observed: with correctness as the quality, the chance that
// head k is right would depend on whether the heads it agrees with were right, hidden state whose
// posterior depends on the whole history, and a DP over (head, level, bit) would no longer give
// the best rule of what a policy sees.
//
// The state is a Markov chain the policy observes (max-prob gives b, the top-1 against the
// previous head's gives a), so the best rule is a function of (k, b, a), found by backward
// induction over the 2B states:
//   V*(K-2, s) = sum_s' P_{K-2}(s, s') r(K-1, b(s')),
//   V*(k, s)   = sum_s' P_k(s, s') max(r(k+1, b(s')), V*(k+1, s'))             for k < K-2,
//   J*         = sum_b initial(b) max(r(0, b), V*(0, 2 b))   (sum_b initial(b) r(0, b) when K == 1).
// The optimal rule stops at (k, b, a) iff r(k, b) >= V*(k, 2 b + a) (ties stop).
//
// A single max-prob threshold tau stops at the first head k < K-1 whose level is >= tau. Levels
// sit at bin centres, so the thresholds t / B, t = 0..B, give every distinct rule of that kind;
// threshold_value() is the expected reward of one (exact, forward over the chain).
//
// Samples. generate() draws per sample, in order: the level at head 0, head 0's top-1 class
// (uniform), then for each head k = 1..K-1 its state and, when its bit is 0, its new top-1
// (uniform over the C-1 other classes). The label is the final head's top-1. Logits are as for
// stopping_env (the top-1 at top_logit(level), the others at 0), so max-prob is the level and the
// top-1 agrees with the previous head's exactly when the bit is 1.

/// The agreement environment (see above). K = layout.heads(), B = levels.size(), 2B states.
struct agreement_env {
    std::size_t classes = 0;                       ///< C, equal to layout.classes, >= 2
    std::vector<double> levels;                    ///< B max-prob levels; levels[b] = (b + 0.5) / B
    std::vector<double> initial;                   ///< P(level at head 0 = b), B values; head 0's bit is 0
    /// K-1 matrices 2B x 2B, row-stochastic: [k][2 i + a][2 j + a'] = P(level j, bit a' at head k+1 |
    /// level i, bit a at head k).
    std::vector<std::vector<std::vector<double>>> transition;
    earlyexit::trace_layout layout;                ///< heads, stages and declared costs
    double lambda = 0;                             ///< cost weight (max-prob units per plain network)

    [[nodiscard]] std::size_t heads() const noexcept { return layout.heads(); }
    [[nodiscard]] std::size_t bins() const noexcept { return levels.size(); }
    [[nodiscard]] std::size_t states() const noexcept { return 2 * levels.size(); }
    /// The state index of (level b, bit a).
    [[nodiscard]] static constexpr std::size_t state_of(std::size_t b, std::size_t a) noexcept { return 2 * b + a; }

    /// True when some initial or transition probability leads to level b (with either bit).
    [[nodiscard]] bool reachable(std::size_t b) const noexcept {
        if (b < initial.size() && initial[b] > 0) return true;
        for (const auto& m : transition)
            for (const auto& row : m)
                for (std::size_t a = 0; a < 2; ++a)
                    if (state_of(b, a) < row.size() && row[state_of(b, a)] > 0) return true;
        return false;
    }

    /// Throws earlyexit::error naming the first bad field and value.
    void validate() const {
        layout.validate();
        constexpr std::string_view who = "agreement env";
        stopping_detail::check_levels(who, classes, layout, levels, 128);
        stopping_detail::check_chain(who, initial, bins(), transition, heads(), states(), "states");
        stopping_detail::check_floor_and_lambda(who, levels, classes, [&](std::size_t b) { return reachable(b); },
                                                lambda);
    }
};

/// c_k for k = 0..K-1 of the environment's layout (which must be valid).
[[nodiscard]] inline std::vector<double> cost_fractions(const agreement_env& env) { return cost_fractions(env.layout); }

/// levels[level] - lambda * costs[k]: the reward of stopping at head k on that level (either bit).
[[nodiscard]] inline double reward(const agreement_env& env, std::span<const double> costs, std::size_t k,
                                   std::size_t level) {
    if (k >= costs.size() || level >= env.levels.size())
        earlyexit::fail("agreement env: reward at head {} level {} is outside {} heads and {} levels", k, level,
                        costs.size(), env.levels.size());
    return env.levels[level] - env.lambda * costs[k];
}

/// The exact solution of the agreement environment's stopping problem.
struct agreement_solution {
    std::vector<std::vector<double>> continue_value;  ///< [k][2 b + a], k < K-1: V*(k, (b, a))
    double optimal_value = 0;                          ///< J*: the expected reward of the optimal rule
    std::vector<double> costs;                         ///< c_k (cost_fractions)
};

/// Backward induction over (head, level, bit) (see above). Validates env.
[[nodiscard]] inline agreement_solution solve(const agreement_env& env) {
    env.validate();
    const std::size_t K = env.heads(), S = env.states();
    agreement_solution s;
    s.costs = cost_fractions(env);
    s.continue_value.assign(K - 1, std::vector<double>(S, 0.0));
    for (std::size_t k = K - 1; k-- > 0;) {
        for (std::size_t i = 0; i < S; ++i) {
            double v = 0;
            for (std::size_t j = 0; j < S; ++j) {
                const double stop = reward(env, s.costs, k + 1, j / 2);
                const double next = k + 1 == K - 1 ? stop : std::max(stop, s.continue_value[k + 1][j]);
                v += env.transition[k][i][j] * next;
            }
            s.continue_value[k][i] = v;
        }
    }
    double j_star = 0;
    for (std::size_t b = 0; b < env.bins(); ++b) {
        const double stop = reward(env, s.costs, 0, b);
        j_star += env.initial[b] * (K == 1 ? stop : std::max(stop, s.continue_value[0][agreement_env::state_of(b, 0)]));
    }
    s.optimal_value = j_star;
    return s;
}

/// Whether the optimal rule stops at head k on level b with bit a: r(k, b) >= V*(k, (b, a));
/// always at the final head.
[[nodiscard]] inline bool optimal_stops(const agreement_solution& s, const agreement_env& env, std::size_t k,
                                        std::size_t b, std::size_t a) {
    if (k + 1 >= env.heads()) return true;
    if (k >= s.continue_value.size() || a > 1 || agreement_env::state_of(b, a) >= s.continue_value[k].size())
        earlyexit::fail("agreement solution: head {} level {} bit {} is outside it", k, b, a);
    return reward(env, s.costs, k, b) >= s.continue_value[k][agreement_env::state_of(b, a)];
}

/// One sample's path: level and agreement bit per head (bit[0] is 0).
struct agreement_path {
    std::vector<std::uint8_t> level, agree;
};

namespace stopping_detail {
inline void check_path(const agreement_env& env, const agreement_path& p) {
    if (p.level.size() != env.heads() || p.agree.size() != env.heads())
        earlyexit::fail("agreement env: a path of {} levels and {} bits for {} heads", p.level.size(), p.agree.size(),
                        env.heads());
}
}  // namespace stopping_detail

/// The head where the optimal rule exits on a path.
[[nodiscard]] inline std::size_t optimal_exit(const agreement_env& env, const agreement_solution& s,
                                              const agreement_path& p) {
    stopping_detail::check_path(env, p);
    for (std::size_t k = 0; k + 1 < env.heads(); ++k)
        if (optimal_stops(s, env, k, p.level[k], p.agree[k])) return k;
    return env.heads() - 1;
}

/// The reward of exiting at exit_head on a path.
[[nodiscard]] inline double reward_at(const agreement_env& env, std::span<const double> costs, const agreement_path& p,
                                      std::size_t exit_head) {
    stopping_detail::check_path(env, p);
    if (exit_head >= env.heads()) earlyexit::fail("agreement env: exit head {} of {} heads", exit_head, env.heads());
    return reward(env, costs, exit_head, p.level[exit_head]);
}

/// The reward the optimal rule earns on a path.
[[nodiscard]] inline double optimal_reward(const agreement_env& env, const agreement_solution& s,
                                           const agreement_path& p) {
    return reward_at(env, s.costs, p, optimal_exit(env, s, p));
}

/// The head where the single threshold tau exits on a path: the first k < K-1 with levels >= tau.
[[nodiscard]] inline std::size_t threshold_exit(const agreement_env& env, double tau, const agreement_path& p) {
    stopping_detail::check_path(env, p);
    for (std::size_t k = 0; k + 1 < env.heads(); ++k)
        if (env.levels[p.level[k]] >= tau) return k;
    return env.heads() - 1;
}

namespace stopping_detail {
/// The expected reward of the rule that stops at head k on (level b, bit a) when stops(k, b, a)
/// (the final head always stops), forward over the chain; P(exit at head k) into *exits if given.
/// Validates env.
template <class Stops>
[[nodiscard]] double rule_value(const agreement_env& env, Stops&& stops, std::vector<double>* exits = nullptr) {
    env.validate();
    const std::size_t K = env.heads(), S = env.states();
    const auto costs = cost_fractions(env);
    if (exits) exits->assign(K, 0.0);
    std::vector<double> alive(S, 0.0);  // mass still running at head k, by state
    for (std::size_t b = 0; b < env.bins(); ++b) alive[agreement_env::state_of(b, 0)] = env.initial[b];
    double value = 0;
    for (std::size_t k = 0; k < K; ++k) {
        std::vector<double> next(S, 0.0);
        for (std::size_t i = 0; i < S; ++i) {
            if (alive[i] == 0) continue;
            if (k + 1 == K || stops(k, i / 2, i % 2)) {
                value += alive[i] * reward(env, costs, k, i / 2);
                if (exits) (*exits)[k] += alive[i];
            } else {
                for (std::size_t j = 0; j < S; ++j) next[j] += alive[i] * env.transition[k][i][j];
            }
        }
        alive = std::move(next);
    }
    return value;
}
}  // namespace stopping_detail

/// P(state at head k = (b, a)) as a vector over s = 2 b + a (every sample runs to head k). Validates env.
[[nodiscard]] inline std::vector<double> state_distribution(const agreement_env& env, std::size_t k) {
    env.validate();
    if (k >= env.heads()) earlyexit::fail("agreement env: head {} of {} heads", k, env.heads());
    std::vector<double> p(env.states(), 0.0);
    for (std::size_t b = 0; b < env.bins(); ++b) p[agreement_env::state_of(b, 0)] = env.initial[b];
    for (std::size_t h = 0; h < k; ++h) {
        std::vector<double> q(env.states(), 0.0);
        for (std::size_t i = 0; i < env.states(); ++i)
            for (std::size_t j = 0; j < env.states(); ++j) q[j] += p[i] * env.transition[h][i][j];
        p = std::move(q);
    }
    return p;
}

/// The expected reward of the fixed rule "always exit at head k".
[[nodiscard]] inline double fixed_exit_value(const agreement_env& env, std::size_t k) {
    if (k >= env.heads()) earlyexit::fail("agreement env: head {} of {} heads", k, env.heads());
    return stopping_detail::rule_value(env, [k](std::size_t h, std::size_t, std::size_t) { return h == k; });
}

/// The expected reward of the single threshold tau: stop at the first head k < K-1 whose level is >= tau.
[[nodiscard]] inline double threshold_value(const agreement_env& env, double tau) {
    return stopping_detail::rule_value(
        env, [&](std::size_t, std::size_t b, std::size_t) { return env.levels[b] >= tau; });
}

/// A single max-prob threshold and its expected reward.
struct threshold_choice {
    double tau = 0;
    double value = 0;
};

/// The best single threshold in expectation over tau = t / B, t = 0..B (every distinct rule of
/// that kind; the lowest tau among equals).
[[nodiscard]] inline threshold_choice best_threshold(const agreement_env& env) {
    threshold_choice best{0, -std::numeric_limits<double>::infinity()};
    for (std::size_t t = 0; t <= env.bins(); ++t) {
        const double tau = static_cast<double>(t) / static_cast<double>(env.bins());
        const double v = threshold_value(env, tau);
        if (v > best.value) best = {tau, v};
    }
    return best;
}

namespace stopping_detail {
/// The best expected reward from head k on of rules that see (head, level) only, for the mass
/// `alive` (by state) arriving at head k.
[[nodiscard]] inline double best_blind_from(const agreement_env& env, const agreement_solution& s, std::size_t k,
                                            const std::vector<double>& alive) {
    const std::size_t K = env.heads(), B = env.bins(), S = env.states();
    const auto mass = [&](std::size_t b) {
        return alive[agreement_env::state_of(b, 0)] + alive[agreement_env::state_of(b, 1)];
    };
    if (k + 1 == K) {
        double v = 0;
        for (std::size_t b = 0; b < B; ++b) v += mass(b) * reward(env, s.costs, k, b);
        return v;
    }
    if (k + 2 == K) {  // the next head is the final one: V*(k, .) is the value of going on, whatever follows
        double v = 0;
        for (std::size_t b = 0; b < B; ++b) {
            const std::size_t s0 = agreement_env::state_of(b, 0), s1 = agreement_env::state_of(b, 1);
            v += std::max(mass(b) * reward(env, s.costs, k, b),
                          alive[s0] * s.continue_value[k][s0] + alive[s1] * s.continue_value[k][s1]);
        }
        return v;
    }
    std::vector<std::size_t> present;  // levels with mass here: the only decisions that matter
    for (std::size_t b = 0; b < B; ++b)
        if (mass(b) > 0) present.push_back(b);
    double best = -std::numeric_limits<double>::infinity();
    std::vector<double> next(S);
    for (std::uint64_t stop_set = 0; stop_set < (std::uint64_t{1} << present.size()); ++stop_set) {
        double v = 0;
        std::fill(next.begin(), next.end(), 0.0);
        for (std::size_t i = 0; i < present.size(); ++i) {
            const std::size_t b = present[i];
            if ((stop_set >> i) & 1U) {
                v += mass(b) * reward(env, s.costs, k, b);
                continue;
            }
            for (std::size_t a = 0; a < 2; ++a) {
                const std::size_t from = agreement_env::state_of(b, a);
                if (alive[from] > 0)
                    for (std::size_t j = 0; j < S; ++j) next[j] += alive[from] * env.transition[k][from][j];
            }
        }
        best = std::max(best, v + best_blind_from(env, s, k + 1, next));
    }
    return best;
}
}  // namespace stopping_detail

/// The best expected reward of a rule that sees the head and the level but not the bit (what
/// DEE with streak_bins = 1 can learn at best), by exhaustive search: every set of levels to stop
/// on at heads 0..K-3, the best decision per level at head K-2. Exponential in B * (K - 2):
/// throws earlyexit::error beyond 2^24 rules. Validates env.
[[nodiscard]] inline double best_blind_value(const agreement_env& env, const agreement_solution& s) {
    env.validate();
    const std::size_t K = env.heads();
    if (K > 2 && env.bins() * (K - 2) > 24)
        earlyexit::fail("agreement env: the best rule without the bit searches up to 2^{} rules (B = {}, K = {}), "
                        "more than 2^24", env.bins() * (K - 2), env.bins(), K);
    std::vector<double> alive(env.states(), 0.0);
    for (std::size_t b = 0; b < env.bins(); ++b) alive[agreement_env::state_of(b, 0)] = env.initial[b];
    return stopping_detail::best_blind_from(env, s, 0, alive);
}

/// P(the optimal rule exits at head k), k = 0..K-1 (sums to 1).
[[nodiscard]] inline std::vector<double> optimal_exit_probabilities(const agreement_env& env,
                                                                    const agreement_solution& s) {
    std::vector<double> exits;
    (void)stopping_detail::rule_value(
        env, [&](std::size_t k, std::size_t b, std::size_t a) { return optimal_stops(s, env, k, b, a); }, &exits);
    return exits;
}

/// Samples of the agreement environment: a trace and each sample's path.
struct agreement_stream {
    earlyexit::trace trace;
    std::vector<agreement_path> path;  ///< [sample]: level and bit per head
};

/// n samples of env from seed (see above). Validates env.
[[nodiscard]] inline agreement_stream generate(const agreement_env& env, std::size_t n, std::uint64_t seed) {
    env.validate();
    const std::size_t K = env.heads(), C = env.classes;
    agreement_stream out{earlyexit::trace(env.layout), {}};
    out.path.reserve(n);
    const auto [top, stage_seconds, head_seconds] =
        stopping_detail::frame_of(out.trace, env.layout, env.levels, C, "synthetic_stopping_agreement", seed, n);
    std::vector<float> logits(K * C);
    stopping_rng rng(seed);
    for (std::size_t i = 0; i < n; ++i) {
        agreement_path p{std::vector<std::uint8_t>(K), std::vector<std::uint8_t>(K, 0)};
        std::fill(logits.begin(), logits.end(), 0.0f);
        p.level[0] = static_cast<std::uint8_t>(rng.pick(env.initial));
        auto cls = static_cast<std::size_t>(rng.below(C));
        logits[cls] = static_cast<float>(top[p.level[0]]);
        for (std::size_t k = 1; k < K; ++k) {
            const std::size_t s =
                rng.pick(env.transition[k - 1][agreement_env::state_of(p.level[k - 1], p.agree[k - 1])]);
            p.level[k] = static_cast<std::uint8_t>(s / 2);
            p.agree[k] = static_cast<std::uint8_t>(s % 2);
            if (p.agree[k] == 0) cls = (cls + 1 + static_cast<std::size_t>(rng.below(C - 1))) % C;
            logits[k * C + cls] = static_cast<float>(top[p.level[k]]);
        }
        out.trace.add(logits, stage_seconds, head_seconds, cls);
        out.path.push_back(std::move(p));
    }
    return out;
}

/// The agreement environment of the regret example (--env agreement). Layout, C = 10, B = 10 levels
/// (0.05 unreachable), lambda = 0.5 and head 0's levels as default_stopping_env(). From head k to
/// k+1 (d: the move in levels, clamped to levels 1..9, i.e. saturating at 0.95):
///   a changed answer (bit 0; head 0's too) settles (next bit 1) with probability 0.5, 0.6, 0.7 at
///   k = 0, 1, 2, and its confidence then jumps: d = +2, +3, +4, +5 (1/4 each); else it changes
///   again with d = -1, 0, +1 (0.3, 0.4, 0.3);
///   a settled answer (bit 1) stays settled with probability 0.85 and drifts, d = -1, 0, +1 (0.2,
///   0.5, 0.3: +0.01 max-prob on average, less than a head costs); else it changes and drops,
///   d = -3, -2, -1 (0.3, 0.4, 0.3).
/// The optimal rule: a settled answer stops at every level; a changed one goes on below 0.75 at
/// head 0 and below 0.85 at heads 1 and 2. So at level 0.75 the decision depends on the head, and
/// from 0.35 to 0.75 at heads 1 and 2 on the bit; the tests check it, and that the best single
/// threshold earns less than J*.
[[nodiscard]] inline agreement_env agreement_stopping_env() {
    constexpr std::size_t B = 10, K = 4, lowest = 1;
    const stopping_env base = default_stopping_env();  // layout, C, lambda, levels, head 0's levels
    agreement_env env;
    env.classes = base.classes;
    env.layout = base.layout;
    env.lambda = base.lambda;
    env.levels = base.levels;
    env.initial = base.initial;
    struct move {
        int d;
        double p;
    };
    const std::array<double, K - 1> settle{0.5, 0.6, 0.7};  // P(bit 1 next | bit 0), by head
    constexpr double stay_settled = 0.85;                   // P(bit 1 next | bit 1)
    const std::vector<move> jump{{2, 0.25}, {3, 0.25}, {4, 0.25}, {5, 0.25}};  // bit 0 -> 1
    const std::vector<move> wander{{-1, 0.3}, {0, 0.4}, {1, 0.3}};             // bit 0 -> 0
    const std::vector<move> drift{{-1, 0.2}, {0, 0.5}, {1, 0.3}};              // bit 1 -> 1
    const std::vector<move> drop{{-3, 0.3}, {-2, 0.4}, {-1, 0.3}};             // bit 1 -> 0
    env.transition.assign(K - 1, std::vector<std::vector<double>>(2 * B, std::vector<double>(2 * B, 0.0)));
    for (std::size_t k = 0; k + 1 < K; ++k)
        for (std::size_t i = 0; i < B; ++i)
            for (std::size_t a = 0; a < 2; ++a) {
                auto& row = env.transition[k][agreement_env::state_of(i, a)];
                const double to_settled = a == 0 ? settle[k] : stay_settled;
                const auto add = [&](const std::vector<move>& moves, std::size_t next_bit, double weight) {
                    for (const auto& m : moves) {
                        const long to = std::clamp<long>(static_cast<long>(i) + m.d, static_cast<long>(lowest),
                                                         static_cast<long>(B - 1));
                        const auto j = static_cast<std::size_t>(to);
                        row[agreement_env::state_of(j, next_bit)] += weight * m.p;
                    }
                };
                add(a == 0 ? jump : drift, 1, to_settled);
                add(a == 0 ? wander : drop, 0, 1.0 - to_settled);
            }
    return env;
}

}  // namespace earlyexit::demo
