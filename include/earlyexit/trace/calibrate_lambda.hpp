#pragma once
// The cost weight lambda of a learning policy (dee, ucb_exit, epsilon_greedy) chosen for an
// accuracy goal, as calibrate() chooses a threshold: users state a goal, not a lambda.
//
// For each lambda of a grid, make(lambda) builds the policy, which then learns online over the
// labelled validation trace from its starting state, exactly as it would serve (replay). Among
// the lambdas whose run meets the accuracy_target there (the drop against the final head, or its
// upper confidence bound), the one with the least mean cost wins (ties: the smaller lambda).
// When none does, the most accurate is returned with met = false. The learner's state after its
// validation run is returned too: a warm start for serving.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"
#include "calibrate.hpp"
#include "metrics.hpp"
#include "replay.hpp"
#include "trace.hpp"

namespace earlyexit {

/// The default grid: 0 and 0.01 .. 2, roughly logarithmic.
inline const std::vector<double> default_lambda_grid{0.0,  0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15,
                                                     0.2,  0.3,  0.4,  0.5,  0.7,  1.0,  1.5, 2.0};

template <class Policy>
struct lambda_calibration {
    double lambda = 0;
    bool met = false;
    std::string note;                ///< why the target was missed, when it was
    policy_metrics on_calibration;   ///< the chosen lambda's online run over the validation trace
    double drop_bound_points = 0;    ///< its accuracy loss (or bound) against the final head there
    Policy learned;                  ///< the policy after that run (a warm start)
};

/// See the file comment. make(lambda) -> a policy; throws earlyexit::error for an empty grid, an
/// empty or unlabelled trace, or a target out of range.
template <std::floating_point Scalar, class Make>
[[nodiscard]] auto calibrate_lambda(const basic_trace<Scalar>& t, Make&& make, accuracy_target target,
                                    std::span<const double> grid = default_lambda_grid)
    -> lambda_calibration<std::remove_cvref_t<decltype(make(0.0))>> {
    using Policy = std::remove_cvref_t<decltype(make(0.0))>;
    if (grid.empty()) fail("calibrate_lambda: the lambda grid is empty");
    if (t.empty()) fail("calibrate_lambda: the calibration trace is empty");
    if (!t.labelled()) fail("calibrate_lambda: the calibration trace has unlabelled samples");
    if (!(target.max_drop_points >= 0.0 && target.max_drop_points <= 100.0))
        fail("calibrate_lambda: accuracy drop {} points is out of range [0, 100]", target.max_drop_points);
    constexpr double slack = 1e-12;
    std::optional<lambda_calibration<Policy>> best, closest;
    for (const double lambda : grid) {
        Policy p = make(lambda);
        const auto out = replay(t, p);
        auto m = summarize({}, out, t);
        const double bound = accuracy_drop_bound(t, out, target.confidence);
        lambda_calibration<Policy> c{lambda, bound <= target.max_drop_points + slack, {}, std::move(m), bound, std::move(p)};
        if (c.met) {
            if (!best || c.on_calibration.mean_macs < best->on_calibration.mean_macs) best = std::move(c);
        } else if (!closest || *c.on_calibration.accuracy > *closest->on_calibration.accuracy) {
            closest = std::move(c);
        }
    }
    if (best) return std::move(*best);
    closest->note = fmt::format("no lambda of the grid meets the target (closest: lambda {:.3g}, bound {:.2f} points)",
                                closest->lambda, closest->drop_bound_points);
    return std::move(*closest);
}

}  // namespace earlyexit
