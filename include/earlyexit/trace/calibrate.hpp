#pragma once
// Calibration: choose a static policy's parameter on one split of recorded traces so that it
// meets a target at least cost, then report it on another split.
//
// Targets:
//   accuracy_target{X}  accuracy no more than X points below the final head's (on the same
//                       split); among the parameters that meet it, the one with the least mean
//                       declared cost (ties: higher accuracy).
//   cost_target{B}      mean declared cost at most B times the plain network's; among those, the
//                       most accurate (ties: lower cost).
// When no candidate meets the target, the closest one is returned with met = false: the most
// accurate for an accuracy target, the cheapest for a cost target.

#include <concepts>
#include <cstddef>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"
#include "../policy/any_policy.hpp"
#include "metrics.hpp"
#include "sweep.hpp"
#include "trace.hpp"

namespace earlyexit {

struct accuracy_target {
    double max_drop_points = 0.5;  ///< percentage points below the final head's accuracy
};
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

    /// "<family>_calibrated", the row name reports use.
    [[nodiscard]] std::string name() const { return fmt::format("{}_calibrated", name_of(family)); }
    template <std::floating_point Scalar = float>
    [[nodiscard]] any_policy<Scalar> make() const {
        return make_policy<Scalar>(family, parameter);
    }
};

/// Calibrates one family on a labelled trace. Throws earlyexit::error when the trace is empty
/// or unlabelled, or the target is out of range.
template <std::floating_point Scalar>
[[nodiscard]] calibration calibrate(const basic_trace<Scalar>& t, threshold_family f, calibration_target target,
                                    std::size_t resolution = 256) {
    if (t.empty()) detail::fail("calibrate: the calibration trace is empty");
    if (!t.labelled()) detail::fail("calibrate: the calibration trace has unlabelled samples");
    if (const auto* a = std::get_if<accuracy_target>(&target); a && !(a->max_drop_points >= 0.0 && a->max_drop_points <= 100.0))
        detail::fail("calibrate: accuracy drop {} points is out of range [0, 100]", a->max_drop_points);
    if (const auto* c = std::get_if<cost_target>(&target); c && !(c->max_cost_fraction > 0.0 && std::isfinite(c->max_cost_fraction)))
        detail::fail("calibrate: cost budget {} must be finite and > 0", c->max_cost_fraction);

    const double final_accuracy = *evaluate(t, "full", policy::full{}).accuracy;
    const auto points = sweep(t, f, resolution);
    const double full_macs = t.info().full_macs;

    const sweep_point* best = nullptr;
    bool met = false;
    // Small slack so that a point exactly on the target is not lost to rounding.
    constexpr double slack = 1e-12;
    if (const auto* a = std::get_if<accuracy_target>(&target)) {
        const double floor = final_accuracy - a->max_drop_points / 100.0 - slack;
        for (const auto& p : points) {
            const double acc = *p.metrics.accuracy;
            const bool ok = acc >= floor;
            if (ok && (!met || p.metrics.mean_macs < best->metrics.mean_macs ||
                       (p.metrics.mean_macs == best->metrics.mean_macs && acc > *best->metrics.accuracy))) {
                best = &p;
                met = true;
            } else if (!ok && !met && (best == nullptr || acc > *best->metrics.accuracy)) {
                best = &p;
            }
        }
    } else {
        const double budget = std::get<cost_target>(target).max_cost_fraction * full_macs * (1 + slack);
        for (const auto& p : points) {
            const double acc = *p.metrics.accuracy;
            const bool ok = p.metrics.mean_macs <= budget;
            if (ok && (!met || acc > *best->metrics.accuracy ||
                       (acc == *best->metrics.accuracy && p.metrics.mean_macs < best->metrics.mean_macs))) {
                best = &p;
                met = true;
            } else if (!ok && !met && (best == nullptr || p.metrics.mean_macs < best->metrics.mean_macs)) {
                best = &p;
            }
        }
    }
    calibration c;
    c.family = f;
    c.parameter = best->parameter;
    c.met = met;
    c.final_accuracy = final_accuracy;
    c.on_calibration = best->metrics;
    c.on_calibration.name = c.name();
    return c;
}

/// The calibrated policy's metrics on another split (named "<family>_calibrated").
template <std::floating_point Scalar>
[[nodiscard]] policy_metrics evaluate(const basic_trace<Scalar>& t, const calibration& c,
                                      std::optional<double> deadline = std::nullopt) {
    return evaluate(t, c.name(), c.make<Scalar>(), deadline);
}

}  // namespace earlyexit
