#pragma once
// The cost weight lambda of a learning policy (dee, ucb_exit, epsilon_greedy) chosen for an
// accuracy goal, as calibrate() chooses a threshold: users state a goal, not a lambda.
//
// For each lambda of a grid, make(lambda) builds the learner. How a lambda is scored
// (lambda_search::score):
//   frozen (the default)  the rule the learner converges to. The labelled trace is cut into
//                         `folds` folds (sample i in fold i % folds); for each fold a learner
//                         from make(lambda) is trained on the other folds (warm_start: `passes`
//                         passes in order), turned into what would serve (serve(learner), e.g.
//                         dee::serving(0, probe rate)) and replayed *frozen* (policy::frozen: no
//                         learning) on the held-out fold. The folds' outcomes together are the
//                         score. Scoring an online run instead flatters a learner that is still
//                         exploring (it keeps going, so it looks accurate) and hides the rule it
//                         settles into; scoring the rule on the samples it was trained on
//                         flatters it too.
//   online                the learner learns online over the trace from make(lambda)'s state,
//                         in one pass, scored as it goes: what a learner that starts empty in
//                         production would have done (the first build's rule).
// Among the lambdas whose score meets the accuracy_target (the drop against the final head, or
// its upper confidence bound) at less mean declared cost than the plain network, the one with
// the least mean cost wins (ties: the smaller lambda). None does: falls_back_to_full, with a
// note saying why, exactly as calibrate() falls back (a learner that cannot beat `full` at the
// goal should not serve). `learned` is make(lambda) trained on the whole trace (`passes`
// passes; frozen) or after its online pass (online): the warm start to serve from.

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"
#include "../policy/frozen.hpp"
#include "../policy/static.hpp"
#include "thresholds.hpp"
#include "../trace/metrics.hpp"
#include "../trace/replay.hpp"
#include "../trace/trace.hpp"

namespace earlyexit {

/// The default grid: 0 and 0.01 .. 2, roughly logarithmic.
inline const std::vector<double> default_lambda_grid{0.0,  0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15,
                                                     0.2,  0.3,  0.4,  0.5,  0.7,  1.0,  1.5, 2.0};

/// How a lambda is scored (see the file comment).
enum class lambda_score : unsigned char { frozen, online };

[[nodiscard]] constexpr std::string_view name_of(lambda_score s) noexcept {
    return s == lambda_score::online ? "online" : "frozen";
}

/// What calibrate_lambda() searches and how it scores (see the file comment).
struct lambda_search {
    std::vector<double> grid = default_lambda_grid;  ///< candidates, each finite and >= 0
    lambda_score score = lambda_score::frozen;
    std::size_t passes = 1;  ///< training passes over the trace (frozen), in [1, 1000]
    std::size_t folds = 2;   ///< cross-fitting folds (frozen), in [2, 100]
};

template <class Policy>
struct lambda_calibration {
    double lambda = 0;
    bool met = false;
    /// No lambda met the target at less cost than the plain network: serve policy::full
    /// (`learned` is then the closest lambda's learner, for reports).
    bool falls_back_to_full = false;
    std::string note;                ///< why the point fell back, when it did
    policy_metrics on_calibration;   ///< the chosen lambda's score (full's row on a fallback)
    double drop_bound_points = 0;    ///< its accuracy loss (or bound) against the final head there
    Policy learned;                  ///< the learner trained on the whole trace (a warm start)
};

/// Trains `policy` on the trace: `passes` replays over it in order, learning as it would live.
/// Returns the last pass's outcomes.
template <std::floating_point Scalar, class Policy>
std::vector<sample_outcome> warm_start(Policy& policy, const basic_trace<Scalar>& t, std::size_t passes = 1) {
    if (passes == 0) fail("warm_start: passes must be >= 1");
    std::vector<sample_outcome> out;
    for (std::size_t p = 0; p < passes; ++p) out = replay(t, policy);
    return out;
}

/// The identity: serve the trained learner as it is.
struct serve_as_trained {
    template <class P>
    [[nodiscard]] P operator()(const P& p) const {
        return p;
    }
};

/// See the file comment. make(lambda) -> a learner; serve(learner) -> the policy that would
/// serve (frozen scoring only). Throws earlyexit::error for an empty grid or a bad lambda in
/// it, an empty or unlabelled trace, a target out of range, or passes / folds out of range
/// (a trace with fewer samples than folds included).
template <std::floating_point Scalar, class Make, class Serve = serve_as_trained>
[[nodiscard]] auto calibrate_lambda(const basic_trace<Scalar>& t, Make&& make, accuracy_target target,
                                    const lambda_search& search = {}, Serve&& serve = {})
    -> lambda_calibration<std::remove_cvref_t<decltype(make(0.0))>> {
    using Policy = std::remove_cvref_t<decltype(make(0.0))>;
    if (search.grid.empty()) fail("calibrate_lambda: the lambda grid is empty");
    for (std::size_t j = 0; j < search.grid.size(); ++j)
        if (!(search.grid[j] >= 0.0) || !std::isfinite(search.grid[j]))
            fail("calibrate_lambda: lambda {} (grid entry {}) must be finite and >= 0", search.grid[j], j);
    if (t.empty()) fail("calibrate_lambda: the calibration trace is empty");
    if (!t.labelled()) fail("calibrate_lambda: the calibration trace has unlabelled samples");
    if (!(target.max_drop_points >= 0.0 && target.max_drop_points <= 100.0))
        fail("calibrate_lambda: accuracy drop {} points is out of range [0, 100]", target.max_drop_points);
    if (!valid_confidence(target.confidence))
        fail("calibrate_lambda: confidence {} must be 0 (none) or in [0.5, 1)", target.confidence);
    if (search.passes == 0 || search.passes > 1000)
        fail("calibrate_lambda: passes {} is out of range [1, 1000]", search.passes);
    if (search.score == lambda_score::frozen) {
        if (search.folds < 2 || search.folds > 100)
            fail("calibrate_lambda: folds {} is out of range [2, 100]", search.folds);
        if (t.size() < search.folds)
            fail("calibrate_lambda: the trace has {} samples, fewer than the {} folds", t.size(), search.folds);
    }

    // The folds (frozen scoring): held-out and training traces, built once.
    std::vector<basic_trace<Scalar>> held, train;
    std::vector<std::vector<std::size_t>> held_index;
    if (search.score == lambda_score::frozen) {
        for (std::size_t f = 0; f < search.folds; ++f) {
            held.push_back(t.select_if([&](std::size_t i) { return i % search.folds == f; }));
            train.push_back(t.select_if([&](std::size_t i) { return i % search.folds != f; }));
            auto& idx = held_index.emplace_back();
            for (std::size_t i = f; i < t.size(); i += search.folds) idx.push_back(i);
        }
    }

    policy_metrics full_row = evaluate(t, "full", policy::full{});
    const double full_cost = full_row.mean_macs;
    constexpr double slack = 1e-12;
    struct candidate {
        double lambda = 0;
        policy_metrics metrics;
        double bound = 0;
    };
    std::optional<candidate> best, costly, closest;
    for (const double lambda : search.grid) {
        std::vector<sample_outcome> out;
        if (search.score == lambda_score::online) {
            Policy p = make(lambda);
            out = replay(t, p);
        } else {
            out.resize(t.size());
            for (std::size_t f = 0; f < search.folds; ++f) {
                Policy p = make(lambda);
                (void)warm_start(p, train[f], search.passes);
                const auto fold = replay(held[f], policy::frozen(serve(p)));
                for (std::size_t j = 0; j < fold.size(); ++j) out[held_index[f][j]] = fold[j];
            }
        }
        candidate c{lambda, summarize({}, out, t), accuracy_drop_bound(t, out, target.confidence)};
        const bool ok = c.bound <= target.max_drop_points + slack;
        const double cost = c.metrics.mean_macs;
        if (ok && cost < full_cost) {
            if (!best || cost < best->metrics.mean_macs) best = std::move(c);
        } else if (ok) {
            if (!costly || cost < costly->metrics.mean_macs) costly = std::move(c);
        } else if (!closest || *c.metrics.accuracy > *closest->metrics.accuracy) {
            closest = std::move(c);
        }
    }

    const candidate& pick = best ? *best : costly ? *costly : *closest;
    Policy learned = make(pick.lambda);
    if (search.score == lambda_score::online) (void)replay(t, learned);
    else (void)warm_start(learned, t, search.passes);
    lambda_calibration<Policy> r{pick.lambda, true, false, {}, pick.metrics, pick.bound, std::move(learned)};
    if (!best) {
        r.falls_back_to_full = true;
        r.on_calibration = std::move(full_row);
        r.drop_bound_points = 0;
        r.note = costly ? fmt::format("its cheapest lambda within the target ({:.3g}) costs {:.1f}% more than full",
                                      costly->lambda, 100 * (costly->metrics.mean_macs / full_cost - 1))
                        : fmt::format("no lambda of the grid meets the target (closest: lambda {:.3g}, bound {:.2f} "
                                      "points)",
                                      closest->lambda, closest->bound);
    }
    return r;
}

}  // namespace earlyexit
