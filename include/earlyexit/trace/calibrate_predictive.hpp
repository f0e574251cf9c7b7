#pragma once
// Predictive Exit on recorded traces: its per-head thresholds T_k, and beta (optionally with the
// start head) calibrated to an accuracy goal exactly as calibrate() calibrates a threshold.
//
//   mean_logit_extremum(t)          T_k = the mean logit extremum of head k over t's samples
//                                   (samples whose head-k logits are invalid are left out)
//   predictive_calibrated(t, target, options, search)
//                                   T from t itself; then every beta of the grid (and, when
//                                   search.choose_start_head, every start head 0..heads-2 with
//                                   it) is replayed on t. The rule is calibrate()'s for an
//                                   accuracy_target: among the candidates whose drop against the
//                                   final head (or its upper confidence bound, see
//                                   accuracy_drop_bound) is within the target and that cost less
//                                   than the plain network, the least mean declared cost wins
//                                   (ties: the more accurate, then the first in grid order:
//                                   smaller start head, then smaller beta). Compute is not
//                                   monotone in beta once the predictor skips heads (a larger
//                                   beta forecasts longer jumps, which can land on an earlier
//                                   passing head), so the whole grid is searched, never bisected.
//                                   None qualifies: the plain network (falls_back_to_full, met,
//                                   a note saying why; make() then starts at the final head,
//                                   which runs exactly as policy::full).
// options.predict = false calibrates the check_every_head baseline the same way.
//
// The default beta grid is 2^(j/32) for j = -160..160: 321 values from 1/32 to 32, each 2.2%
// above the previous (a log grid: beta scales thresholds, so equal ratios are equal steps).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../confidence.hpp"
#include "../error.hpp"
#include "../policy/predictive.hpp"
#include "../policy/static.hpp"
#include "calibrate.hpp"
#include "metrics.hpp"
#include "replay.hpp"
#include "trace.hpp"

namespace earlyexit {

/// T_k = mean over t's samples of logit_extremum(head k's logits), the thresholds of
/// policy::predictive. Samples whose head-k logits are invalid (NaN, +inf, all -inf) are left
/// out of head k's mean. Throws earlyexit::error for an empty trace, or a head with no valid
/// logits or a mean of 0 (a threshold must be > 0), naming the head.
template <std::floating_point Scalar>
[[nodiscard]] std::vector<double> mean_logit_extremum(const basic_trace<Scalar>& t) {
    if (t.empty()) fail("mean_logit_extremum: the trace is empty");
    std::vector<double> mean(t.heads(), 0.0);
    for (std::size_t k = 0; k < t.heads(); ++k) {
        std::size_t n = 0;
        double sum = 0.0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            const auto s = detail::scan(t.logits(i, k));
            if (!s.valid) continue;
            sum += static_cast<double>(detail::extremum_of(s));
            ++n;
        }
        if (n == 0) fail("mean_logit_extremum: head {} has no valid logits in the {} samples", k, t.size());
        mean[k] = sum / static_cast<double>(n);
        if (!(mean[k] > 0.0) || !std::isfinite(mean[k]))
            fail("mean_logit_extremum: head {} has mean logit extremum {}; a threshold must be finite and > 0", k,
                 mean[k]);
    }
    return mean;
}

/// 2^(j / per_octave) for every whole j with low <= 2^(j / per_octave) <= high, ascending.
/// Throws earlyexit::error unless 0 < low <= high (finite) and per_octave >= 1.
[[nodiscard]] inline std::vector<double> log_beta_grid(double low, double high, std::size_t per_octave) {
    if (!(low > 0.0) || !std::isfinite(low) || !(high >= low) || !std::isfinite(high))
        fail("log_beta_grid: range [{}, {}] must satisfy 0 < low <= high, both finite", low, high);
    if (per_octave == 0) fail("log_beta_grid: per_octave {} must be >= 1", per_octave);
    const auto q = static_cast<double>(per_octave);
    const auto first = static_cast<long long>(std::ceil(std::log2(low) * q - 1e-9));
    const auto last = static_cast<long long>(std::floor(std::log2(high) * q + 1e-9));
    std::vector<double> g;
    for (long long j = first; j <= last; ++j) g.push_back(std::exp2(static_cast<double>(j) / q));
    return g;
}

/// The default grid (see the file comment): log_beta_grid(1/32, 32, 32), 321 values.
[[nodiscard]] inline std::vector<double> default_beta_grid() { return log_beta_grid(1.0 / 32.0, 32.0, 32); }

/// What predictive_calibrated() searches.
struct predictive_search {
    std::vector<double> betas = default_beta_grid();  ///< candidates, each finite and > 0
    /// false: start at options.start_head. true: choose it jointly with beta among 0..heads-2
    /// (starting at the final head is the plain network, the fallback anyway).
    bool choose_start_head = false;
};

/// A calibrated Predictive Exit (or check_every_head) operating point.
struct predictive_calibration {
    /// The chosen beta and start head; when falls_back_to_full, the closest candidate's (for
    /// reports: make() then ignores them).
    double beta = 0;
    std::size_t start_head = 0;
    std::vector<double> thresholds;     ///< T_k, from the calibration trace
    /// The options passed in (rounds, horizon, deep test, predict); make() uses them with the
    /// beta and start_head above.
    predictive_options options;
    bool met = false;                   ///< the target was met on the calibration split
    /// No candidate met the target at less cost than the plain network: make() runs the final
    /// head only and on_calibration is full's row. `note` says why.
    bool falls_back_to_full = false;
    std::string note;                   ///< empty, or why the point fell back
    double final_accuracy = 0;          ///< the plain network's accuracy on the calibration split
    policy_metrics on_calibration;      ///< the chosen point on the calibration split
    /// Accuracy points the chosen point loses against the final head there: the measured drop,
    /// or its upper confidence bound when the target set one (0 for a fallback).
    double drop_bound_points = 0;
    std::size_t candidates = 0;         ///< (start head, beta) pairs replayed

    /// "predictive_calibrated" or "check_every_head_calibrated", the row name reports use.
    [[nodiscard]] std::string name() const {
        return fmt::format("{}_calibrated", options.predict ? "predictive" : "check_every_head");
    }
    /// "beta 1.19 from head 2", or "full (fallback)".
    [[nodiscard]] std::string parameter_text() const {
        if (falls_back_to_full) return "full (fallback)";
        return fmt::format("beta {:.4g} from head {}", beta, start_head);
    }
    /// The options make() builds the policy from.
    [[nodiscard]] predictive_options chosen_options() const {
        predictive_options o = options;
        o.beta = beta;
        o.start_head = falls_back_to_full && !thresholds.empty() ? thresholds.size() - 1 : start_head;
        return o;
    }
    /// The calibrated policy. On a fallback it starts at the final head, where the runner stops
    /// without asking: exactly policy::full's run.
    [[nodiscard]] policy::predictive make() const { return policy::predictive(chosen_options(), thresholds); }
};

/// See the file comment. Throws earlyexit::error when the trace is empty or unlabelled, the
/// target or a beta of the grid is out of range, the grid is empty, or the options do not fit
/// the trace's network (the policy's own checks).
template <std::floating_point Scalar>
[[nodiscard]] predictive_calibration predictive_calibrated(const basic_trace<Scalar>& t, accuracy_target target,
                                                           predictive_options options = {},
                                                           const predictive_search& search = {}) {
    if (t.empty()) fail("predictive_calibrated: the calibration trace is empty");
    if (!t.labelled()) fail("predictive_calibrated: the calibration trace has unlabelled samples");
    if (!(target.max_drop_points >= 0.0 && target.max_drop_points <= 100.0))
        fail("predictive_calibrated: accuracy drop {} points is out of range [0, 100]", target.max_drop_points);
    if (!valid_confidence(target.confidence))
        fail("predictive_calibrated: confidence {} must be 0 (none) or in [0.5, 1)", target.confidence);
    if (search.betas.empty()) fail("predictive_calibrated: the beta grid is empty");
    for (std::size_t j = 0; j < search.betas.size(); ++j)
        if (!(search.betas[j] > 0.0) || !std::isfinite(search.betas[j]))
            fail("predictive_calibrated: beta {} (grid entry {}) must be finite and > 0", search.betas[j], j);

    predictive_calibration r;
    r.thresholds = mean_logit_extremum(t);
    r.options = options;
    const auto info = t.info();
    {
        // The policy's own checks, once, before any replay (beta is the grid's).
        predictive_options o = options;
        o.beta = search.betas.front();
        if (search.choose_start_head) o.start_head = 0;
        policy::predictive(o, r.thresholds).prepare(info);
    }

    policy_metrics full_row = evaluate(t, "full", policy::full{});
    r.final_accuracy = *full_row.accuracy;
    const double full_cost = full_row.mean_macs;
    // As calibrate(): a point exactly on the target is not lost to rounding.
    constexpr double slack = 1e-12;

    struct candidate {
        std::size_t start = 0;
        double beta = 0;
        policy_metrics metrics;
        double bound = 0;
    };
    std::optional<candidate> best;     // the choice among the points cheaper than full
    std::optional<candidate> costly;   // the cheapest point meeting the target but not cheaper than full
    std::optional<candidate> closest;  // when nothing meets the target: the most accurate point
    const std::size_t first_start = search.choose_start_head ? 0 : options.start_head;
    const std::size_t end_start =
        search.choose_start_head ? std::max<std::size_t>(t.heads() - 1, 1) : options.start_head + 1;
    for (std::size_t s = first_start; s < end_start; ++s) {
        for (const double beta : search.betas) {
            predictive_options o = options;
            o.beta = beta;
            o.start_head = s;
            const auto out = replay(t, policy::predictive(o, r.thresholds));
            ++r.candidates;
            candidate c{s, beta, summarize({}, out, t), accuracy_drop_bound(t, out, target.confidence)};
            const double acc = *c.metrics.accuracy, cost = c.metrics.mean_macs;
            const bool ok = c.bound <= target.max_drop_points + slack;
            if (ok && cost < full_cost) {
                if (!best || cost < best->metrics.mean_macs ||
                    (cost == best->metrics.mean_macs && acc > *best->metrics.accuracy))
                    best = std::move(c);
            } else if (ok) {
                if (!costly || cost < costly->metrics.mean_macs) costly = std::move(c);
            } else if (!best && !costly && (!closest || acc > *closest->metrics.accuracy)) {
                closest = std::move(c);
            }
        }
    }

    const auto where = [](const candidate& c) { return fmt::format("beta {:.4g} from head {}", c.beta, c.start); };
    if (best) {
        r.met = true;
        r.beta = best->beta;
        r.start_head = best->start;
        r.on_calibration = std::move(best->metrics);
        r.drop_bound_points = best->bound;
    } else {
        // full meets every accuracy target (it loses nothing against itself).
        r.falls_back_to_full = true;
        r.met = true;
        r.on_calibration = std::move(full_row);
        r.drop_bound_points = 0;
        const auto& ref = costly ? costly : closest;
        r.beta = ref->beta;
        r.start_head = ref->start;
        if (costly && costly->metrics.mean_macs == full_cost)
            r.note = fmt::format("its cheapest point within the target ({}) costs as much as full", where(*costly));
        else if (costly)
            r.note = fmt::format("its cheapest point within the target ({}) costs {:.1f}% more than full",
                                 where(*costly), 100 * (costly->metrics.mean_macs / full_cost - 1));
        else
            r.note = fmt::format("no beta meets the target (closest: {}, bound {:.2f} points)", where(*closest),
                                 closest->bound);
    }
    r.on_calibration.name = r.name();
    return r;
}

/// The calibrated policy's metrics on another split (named as r.name()).
template <std::floating_point Scalar>
[[nodiscard]] policy_metrics evaluate(const basic_trace<Scalar>& t, const predictive_calibration& c,
                                      std::optional<double> deadline = std::nullopt) {
    return evaluate(t, c.name(), c.make(), deadline);
}

}  // namespace earlyexit
