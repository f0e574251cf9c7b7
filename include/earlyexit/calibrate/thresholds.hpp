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
// No calibrated point costs more than the plain network: `full` meets every accuracy target at
// zero saving, so a family none of whose parameters meets the target at less cost than `full`
// falls back to `full` (falls_back_to_full, with a note saying why; make() then returns
// policy::full). When no candidate meets a cost target, the cheapest one is returned with
// met = false.
//
// calibrate_all() calibrates several families on the same split; headline() picks, on that
// split only, the family whose calibrated point saves the most: the rule that chooses which
// result to report before any evaluation image is looked at.
//
// A choice among m searched candidates (families, a learner's shapes, Predictive Exit's start
// heads and tests) takes the one whose bound looks best, and so the one whose noise flattered it
// most: each bound at level c holds alone, not for the winner. family_wise_confidence(c, m) is
// the level each of the m bounds needs for all of them to hold together at c (Bonferroni), so
// that the chosen one's holds too.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "../error.hpp"
#include "../policy/any_policy.hpp"
#include "../trace/metrics.hpp"
#include "../trace/replay.hpp"
#include "sweep.hpp"
#include "../trace/trace.hpp"

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

/// The level each of m bounds must hold at for all m to hold together at `confidence`
/// (Bonferroni: 1 - (1 - confidence) / m; m = 1 gives confidence; 0, no bound, stays 0). Throws
/// earlyexit::error for m = 0 or a confidence outside {0} and [0.5, 1), naming the value.
[[nodiscard]] inline double family_wise_confidence(double confidence, std::size_t m) {
    if (!valid_confidence(confidence))
        fail("family_wise_confidence: confidence {} must be 0 (none) or in [0.5, 1)", confidence);
    if (m == 0) fail("family_wise_confidence: m 0: at least one candidate is searched");
    if (confidence == 0.0) return 0.0;
    return 1.0 - (1.0 - confidence) / static_cast<double>(m);
}

struct cost_target {
    double max_cost_fraction = 0.5;  ///< of the plain network's declared MACs
};
using calibration_target = std::variant<accuracy_target, cost_target>;

/// A calibrated operating point.
struct calibration {
    threshold_family family = threshold_family::max_prob;
    /// The chosen parameter; when falls_back_to_full, the closest candidate's (for reports).
    double parameter = 0;
    bool met = false;                 ///< the target was met on the calibration split
    /// No parameter met the target at less cost than the plain network: make() gives
    /// policy::full and on_calibration is full's row. `note` says why.
    bool falls_back_to_full = false;
    std::string note;                 ///< empty, or why the point fell back / missed the target
    double final_accuracy = 0;        ///< the plain network's accuracy on the calibration split
    policy_metrics on_calibration;    ///< the chosen point on the calibration split
    /// Accuracy points the chosen point loses against the final head on the calibration split:
    /// the measured drop, or its upper confidence bound when the target set a confidence
    /// (0 for a cost target, and for a fallback to full).
    double drop_bound_points = 0;

    /// "<family>_calibrated", the row name reports use.
    [[nodiscard]] std::string name() const { return fmt::format("{}_calibrated", name_of(family)); }
    /// The parameter as reports show it: "0.658", "count 3", "head 2", or "full (fallback)".
    [[nodiscard]] std::string parameter_text() const {
        if (falls_back_to_full) return "full (fallback)";
        switch (family) {
            case threshold_family::patience: return fmt::format("count {:g}", parameter);
            case threshold_family::fixed: return fmt::format("head {:g}", parameter);
            default: return fmt::format("{:.4g}", parameter);
        }
    }
    template <std::floating_point Scalar = float>
    [[nodiscard]] any_policy<Scalar> make() const {
        if (falls_back_to_full) return policy::full{};
        return make_policy<Scalar>(family, parameter);
    }
};

namespace detail {

/// The standard normal quantile: z with Phi(z) = p, for p in (0, 1) (bisection on erfc; the
/// calibration calls it once per candidate, so accuracy to ~1e-12 matters more than speed).
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

/// The one-sided upper confidence bound, in accuracy points, of a paired accuracy drop: `lost`
/// of n samples the reference gets right and the policy wrong, `won` the reverse. Drop
/// d = (lost - won) / n, variance ((lost + won) / n - d^2) / n, bound d + z * sqrt(variance)
/// with Phi(z) = confidence (0: the measured drop, as 0.5 gives). Throws earlyexit::error for
/// n = 0, lost + won > n or a confidence outside {0} and [0.5, 1).
[[nodiscard]] inline double accuracy_drop_bound(std::size_t lost, std::size_t won, std::size_t n, double confidence) {
    if (!valid_confidence(confidence))
        fail("accuracy_drop_bound: confidence {} must be 0 (none) or in [0.5, 1)", confidence);
    if (n == 0) fail("accuracy_drop_bound: no samples");
    if (lost + won > n) fail("accuracy_drop_bound: {} lost + {} won samples out of only {}", lost, won, n);
    const auto nn = static_cast<double>(n);
    const double d = (static_cast<double>(lost) - static_cast<double>(won)) / nn;
    const double var = std::max(0.0, (static_cast<double>(lost + won) / nn - d * d) / nn);
    const double z = confidence == 0.0 ? 0.0 : detail::normal_quantile(confidence);
    return 100.0 * (d + z * std::sqrt(var));
}

/// The smallest non-zero bound a split of n samples can give: one sample lost, none won. When
/// it exceeds a target, only parameters that agree with the final head on every calibration
/// sample can meet it: the split is too small to support that bound.
[[nodiscard]] inline double smallest_nonzero_drop_bound(std::size_t n, double confidence) {
    return accuracy_drop_bound(1, 0, n, confidence);
}

/// Upper confidence bound, in accuracy points, of what the outcomes (one per sample of the
/// labelled trace t, e.g. from replay) lose against t's final head on the same samples (see
/// the counting overload, which also checks the confidence). Throws earlyexit::error on a size
/// mismatch, an unlabelled trace or a confidence outside {0} and [0.5, 1).
template <std::floating_point Scalar>
[[nodiscard]] double accuracy_drop_bound(const basic_trace<Scalar>& t, std::span<const sample_outcome> outcomes,
                                         double confidence) {
    if (outcomes.size() != t.size())
        fail("accuracy_drop_bound: {} outcomes for a trace of {} samples", outcomes.size(), t.size());
    if (t.empty()) fail("accuracy_drop_bound: the trace is empty");
    if (!t.labelled()) fail("accuracy_drop_bound: the trace has unlabelled samples");
    std::size_t lost = 0, won = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const std::size_t y = *t.label(i);
        const bool final_right = top1(t.logits(i, t.heads() - 1)) == y, right = outcomes[i].predicted == y;
        lost += final_right && !right;
        won += right && !final_right;
    }
    return accuracy_drop_bound(lost, won, t.size(), confidence);
}

/// Calibrates one family on a labelled trace. Throws earlyexit::error when the trace is empty
/// or unlabelled, or the target is out of range.
template <std::floating_point Scalar>
[[nodiscard]] calibration calibrate(const basic_trace<Scalar>& t, threshold_family f, calibration_target target,
                                    std::size_t resolution = 256) {
    if (t.empty()) fail("calibrate: the calibration trace is empty");
    if (!t.labelled()) fail("calibrate: the calibration trace has unlabelled samples");
    if (const auto* a = std::get_if<accuracy_target>(&target)) {
        if (!(a->max_drop_points >= 0.0 && a->max_drop_points <= 100.0))
            fail("calibrate: accuracy drop {} points is out of range [0, 100]", a->max_drop_points);
        if (!valid_confidence(a->confidence))
            fail("calibrate: confidence {} must be 0 (none) or in [0.5, 1)", a->confidence);
    }
    if (const auto* c = std::get_if<cost_target>(&target); c && !(c->max_cost_fraction > 0.0 && std::isfinite(c->max_cost_fraction)))
        fail("calibrate: cost budget {} must be finite and > 0", c->max_cost_fraction);

    policy_metrics full_row = evaluate(t, "full", policy::full{});
    const double final_accuracy = *full_row.accuracy;
    const double full_cost = full_row.mean_macs;
    // Small slack so that a point exactly on the target is not lost to rounding.
    constexpr double slack = 1e-12;

    struct candidate {
        double parameter = 0;
        policy_metrics metrics;
        double bound = 0;
    };
    std::optional<candidate> best;     // the choice among the points cheaper than full
    std::optional<candidate> costly;   // the cheapest point meeting the target but not cheaper than full
    std::optional<candidate> closest;  // when nothing meets the target: the most accurate / cheapest point
    const bool accuracy = std::holds_alternative<accuracy_target>(target);
    const double budget =
        accuracy ? 0.0 : std::get<cost_target>(target).max_cost_fraction * t.info().full_macs * (1 + slack);
    for (double parameter : candidate_parameters(t, f, resolution)) {
        const auto out = replay(t, make_policy<Scalar>(f, parameter));
        candidate c{parameter, summarize({}, out, t), 0.0};  // named below, as the chosen point
        const double acc = *c.metrics.accuracy, cost = c.metrics.mean_macs;
        bool ok = false;
        if (accuracy) {
            c.bound = accuracy_drop_bound(t, out, std::get<accuracy_target>(target).confidence);
            ok = c.bound <= std::get<accuracy_target>(target).max_drop_points + slack;
        } else {
            ok = cost <= budget;
        }
        // Accuracy target: least cost, ties to the more accurate. Cost target: most accurate,
        // ties to the cheaper.
        const auto better = [&](const std::optional<candidate>& b) {
            if (!b) return true;
            const double bacc = *b->metrics.accuracy, bcost = b->metrics.mean_macs;
            return accuracy ? (cost < bcost || (cost == bcost && acc > bacc))
                            : (acc > bacc || (acc == bacc && cost < bcost));
        };
        if (ok && cost < full_cost) {
            if (better(best)) best = c;
        } else if (ok) {
            if (!costly || cost < costly->metrics.mean_macs) costly = c;
        } else if (!best && !costly) {
            const bool closer = !closest || (accuracy ? acc > *closest->metrics.accuracy
                                                      : cost < closest->metrics.mean_macs);
            if (closer) closest = c;
        }
    }

    calibration r;
    r.family = f;
    r.final_accuracy = final_accuracy;
    // full itself: it meets any accuracy target (it loses nothing against itself) and a cost
    // budget of at least the plain network's cost.
    const bool full_ok = accuracy || full_cost <= budget;
    const bool use_full = full_ok && (!best || (!accuracy && *best->metrics.accuracy < final_accuracy));
    if (use_full) {
        r.falls_back_to_full = true;
        r.met = true;
        r.on_calibration = std::move(full_row);
        r.drop_bound_points = 0;
        const auto& ref = costly ? costly : best ? best : closest;
        r.parameter = ref ? ref->parameter : 0.0;
        if (best)
            r.note = fmt::format("its most accurate point within the budget ({} {:.4g}) is less accurate than full",
                                 name_of(f), best->parameter);
        else if (costly && costly->metrics.mean_macs == full_cost)
            r.note = fmt::format("its cheapest point within the target ({} {:.4g}) costs as much as full", name_of(f),
                                 costly->parameter);
        else if (costly)
            r.note = fmt::format("its cheapest point within the target ({} {:.4g}) costs {:.1f}% more than full",
                                 name_of(f), costly->parameter, 100 * (costly->metrics.mean_macs / full_cost - 1));
        else if (closest && accuracy)
            r.note = fmt::format("no parameter meets the target (closest: {} {:.4g}, bound {:.2f} points)", name_of(f),
                                 closest->parameter, closest->bound);
        else
            r.note = "no parameter meets the target";
    } else if (best) {
        r.met = true;
        r.parameter = best->parameter;
        r.on_calibration = std::move(best->metrics);
        r.drop_bound_points = best->bound;
    } else {  // a cost budget below the plain network's that no candidate fits
        const auto& ref = costly ? costly : closest;
        r.met = false;
        r.parameter = ref->parameter;
        r.on_calibration = ref->metrics;
        r.note = fmt::format("no parameter fits the cost budget; this is the cheapest ({:.1f}% of the plain network)",
                             100 * ref->metrics.mean_macs / t.info().full_macs);
    }
    r.on_calibration.name = r.name();
    return r;
}

/// Calibrates each family on the same trace to the same target, in the given order.
template <std::floating_point Scalar>
[[nodiscard]] std::vector<calibration> calibrate_all(const basic_trace<Scalar>& t,
                                                     std::span<const threshold_family> families,
                                                     calibration_target target, std::size_t resolution = 256) {
    std::vector<calibration> out;
    out.reserve(families.size());
    for (const threshold_family f : families) out.push_back(calibrate(t, f, target, resolution));
    return out;
}

/// The headline among calibrated points, chosen on their calibration split only: the one that
/// met its target with the largest compute saving there (ties: the first listed). npos when
/// none met its target. Reports then give this point's figures on the evaluation split,
/// whatever they are.
[[nodiscard]] inline std::size_t headline(std::span<const calibration> points) noexcept {
    std::size_t pick = npos;
    for (std::size_t i = 0; i < points.size(); ++i)
        if (points[i].met && (pick == npos || points[i].on_calibration.compute_saving >
                                                  points[pick].on_calibration.compute_saving))
            pick = i;
    return pick;
}

/// The calibrated policy's metrics on another split (named "<family>_calibrated").
template <std::floating_point Scalar>
[[nodiscard]] policy_metrics evaluate(const basic_trace<Scalar>& t, const calibration& c,
                                      std::optional<double> deadline = std::nullopt) {
    return evaluate(t, c.name(), c.make<Scalar>(), deadline);
}

}  // namespace earlyexit
