#pragma once
// Calibration: choose a static policy's parameter on one split of recorded traces so that it
// meets a target at least cost, then report it on another split.
//
// Targets:
//   accuracy_target{X}  accuracy no more than X points below the final head's (on the same
//                       split); among the parameters that meet it, the one with the least mean
//                       declared cost (ties: higher accuracy).
//   accuracy_target{X, c}
//                       the same, with the drop replaced by its one-sided upper confidence
//                       bound at level c (e.g. 0.95): drop + z_c * its standard error, the drop
//                       being a paired difference against the final head on the same samples.
//                       A finite calibration split measures the drop with noise of a few tenths
//                       of a point; the bound keeps the noise from choosing a threshold that
//                       only looked good on this split.
//   cost_target{B}      mean declared cost at most B times the plain network's; among those, the
//                       most accurate (ties: lower cost).
// When no candidate meets the target, the closest one is returned with met = false: the most
// accurate for an accuracy target, the cheapest for a cost target.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"
#include "../policy/any_policy.hpp"
#include "metrics.hpp"
#include "replay.hpp"
#include "sweep.hpp"
#include "trace.hpp"

namespace earlyexit {

struct accuracy_target {
    double max_drop_points = 0.5;  ///< percentage points below the final head's accuracy
    /// 0: the drop measured on the split must be within max_drop_points. In [0.5, 1): its
    /// one-sided upper confidence bound at this level must be (normal approximation of the
    /// paired difference; 0.5 is the measured drop itself).
    double confidence = 0.0;
};

/// Whether c is a confidence accuracy_target and accuracy_drop_bound take: 0 (none) or in [0.5, 1).
[[nodiscard]] constexpr bool valid_confidence(double c) noexcept { return c == 0.0 || (c >= 0.5 && c < 1.0); }

struct cost_target {
    double max_cost_fraction = 0.5;  ///< of the plain network's declared MACs
};
using calibration_target = std::variant<accuracy_target, cost_target>;

/// A calibrated operating point.
struct calibration {
    threshold_family family = threshold_family::max_prob;
    double parameter = 0;
    bool met = false;                 ///< the target was met on the calibration split
    double final_accuracy = 0;        ///< the plain network's accuracy on the calibration split
    policy_metrics on_calibration;    ///< the chosen point on the calibration split
    /// Accuracy points the chosen point loses against the final head on the calibration split:
    /// the measured drop, or its upper confidence bound when the target set a confidence
    /// (0 for a cost target).
    double drop_bound_points = 0;

    /// "<family>_calibrated", the row name reports use.
    [[nodiscard]] std::string name() const { return fmt::format("{}_calibrated", name_of(family)); }
    template <std::floating_point Scalar = float>
    [[nodiscard]] any_policy<Scalar> make() const {
        return make_policy<Scalar>(family, parameter);
    }
};

namespace detail {

/// The standard normal quantile: z with Phi(z) = p, for p in (0, 1) (bisection on erfc; the
/// calibration calls it once, so accuracy to ~1e-12 matters more than speed).
[[nodiscard]] inline double normal_quantile(double p) {
    if (!(p > 0.0 && p < 1.0)) fail("normal_quantile: probability {} is not in (0, 1)", p);
    double lo = -40.0, hi = 40.0;
    for (int i = 0; i < 200 && hi - lo > 1e-13; ++i) {
        const double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}

}  // namespace detail

/// Upper confidence bound, in accuracy points, of what the outcomes (one per sample of the
/// labelled trace t, e.g. from replay) lose against t's final head on the same samples.
/// With `lost` samples the final head gets right and the outcome wrong, `won` the reverse, and
/// n samples: drop d = (lost - won) / n, the paired difference's variance ((lost + won) / n -
/// d^2) / n, the bound d + z * sqrt(variance) with Phi(z) = confidence. confidence 0 gives the
/// measured drop (as 0.5 does). Throws earlyexit::error on a size mismatch, an unlabelled
/// trace or a confidence outside {0} and [0.5, 1).
template <std::floating_point Scalar>
[[nodiscard]] double accuracy_drop_bound(const basic_trace<Scalar>& t, std::span<const sample_outcome> outcomes,
                                         double confidence) {
    if (!valid_confidence(confidence))
        earlyexit::fail("accuracy_drop_bound: confidence {} must be 0 (none) or in [0.5, 1)", confidence);
    if (outcomes.size() != t.size())
        earlyexit::fail("accuracy_drop_bound: {} outcomes for a trace of {} samples", outcomes.size(), t.size());
    if (t.empty()) earlyexit::fail("accuracy_drop_bound: the trace is empty");
    if (!t.labelled()) earlyexit::fail("accuracy_drop_bound: the trace has unlabelled samples");
    std::size_t lost = 0, won = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const std::size_t y = *t.label(i);
        const bool final_right = top1(t.logits(i, t.heads() - 1)) == y, right = outcomes[i].predicted == y;
        lost += final_right && !right;
        won += right && !final_right;
    }
    const auto n = static_cast<double>(t.size());
    const double d = (static_cast<double>(lost) - static_cast<double>(won)) / n;
    const double var = std::max(0.0, (static_cast<double>(lost + won) / n - d * d) / n);
    const double z = confidence == 0.0 ? 0.0 : detail::normal_quantile(confidence);
    return 100.0 * (d + z * std::sqrt(var));
}

/// Calibrates one family on a labelled trace. Throws earlyexit::error when the trace is empty
/// or unlabelled, or the target is out of range.
template <std::floating_point Scalar>
[[nodiscard]] calibration calibrate(const basic_trace<Scalar>& t, threshold_family f, calibration_target target,
                                    std::size_t resolution = 256) {
    if (t.empty()) earlyexit::fail("calibrate: the calibration trace is empty");
    if (!t.labelled()) earlyexit::fail("calibrate: the calibration trace has unlabelled samples");
    if (const auto* a = std::get_if<accuracy_target>(&target)) {
        if (!(a->max_drop_points >= 0.0 && a->max_drop_points <= 100.0))
            earlyexit::fail("calibrate: accuracy drop {} points is out of range [0, 100]", a->max_drop_points);
        if (!valid_confidence(a->confidence))
            earlyexit::fail("calibrate: confidence {} must be 0 (none) or in [0.5, 1)", a->confidence);
    }
    if (const auto* c = std::get_if<cost_target>(&target); c && !(c->max_cost_fraction > 0.0 && std::isfinite(c->max_cost_fraction)))
        earlyexit::fail("calibrate: cost budget {} must be finite and > 0", c->max_cost_fraction);

    const double final_accuracy = *evaluate(t, "full", policy::full{}).accuracy;
    const double full_macs = t.info().full_macs;

    sweep_point best;
    double best_bound = 0;
    bool have = false, met = false;
    // Small slack so that a point exactly on the target is not lost to rounding.
    constexpr double slack = 1e-12;
    if (const auto* a = std::get_if<accuracy_target>(&target)) {
        for (double parameter : candidate_parameters(t, f, resolution)) {
            const auto out = replay(t, make_policy<Scalar>(f, parameter));
            const double bound = accuracy_drop_bound(t, out, a->confidence);
            auto m = summarize({}, out, t);  // named below, as the chosen point
            const double acc = *m.accuracy;
            const bool ok = bound <= a->max_drop_points + slack;
            if ((ok && (!met || m.mean_macs < best.metrics.mean_macs ||
                        (m.mean_macs == best.metrics.mean_macs && acc > *best.metrics.accuracy))) ||
                (!ok && !met && (!have || acc > *best.metrics.accuracy))) {
                best = {parameter, std::move(m)};
                best_bound = bound;
                have = true;
                met = met || ok;
            }
        }
    } else {
        const auto points = sweep(t, f, resolution);
        const sweep_point* pick = nullptr;
        const double budget = std::get<cost_target>(target).max_cost_fraction * full_macs * (1 + slack);
        for (const auto& p : points) {
            const double acc = *p.metrics.accuracy;
            const bool ok = p.metrics.mean_macs <= budget;
            if (ok && (!met || acc > *pick->metrics.accuracy ||
                       (acc == *pick->metrics.accuracy && p.metrics.mean_macs < pick->metrics.mean_macs))) {
                pick = &p;
                met = true;
            } else if (!ok && !met && (pick == nullptr || p.metrics.mean_macs < pick->metrics.mean_macs)) {
                pick = &p;
            }
        }
        best = *pick;
    }
    calibration c;
    c.family = f;
    c.parameter = best.parameter;
    c.met = met;
    c.final_accuracy = final_accuracy;
    c.on_calibration = std::move(best.metrics);
    c.on_calibration.name = c.name();
    c.drop_bound_points = best_bound;
    return c;
}

/// The calibrated policy's metrics on another split (named "<family>_calibrated").
template <std::floating_point Scalar>
[[nodiscard]] policy_metrics evaluate(const basic_trace<Scalar>& t, const calibration& c,
                                      std::optional<double> deadline = std::nullopt) {
    return evaluate(t, c.name(), c.make<Scalar>(), deadline);
}

}  // namespace earlyexit
