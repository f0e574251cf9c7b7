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
//                                   which runs exactly as policy::full, and names itself
//                                   "full", as calibrate()'s fallback policy::full does; the row
//                                   keeps the calibration's name, as calibrate()'s does).
//                                   search.tests lists the exit tests to search (each with its
//                                   own beta grid: betas for logit_extremum, softmax_betas for
//                                   log_softmax); the rule above chooses among all of them.
// options.predict = false calibrates the check_every_head baseline the same way: give it the
// same search (start heads, tests), or the comparison is uneven.
//
//   predictor_error(t, policy)      how well the predictor forecasts: every forecast a replay
//                                   makes (after a proceed at head i, the head it sends the
//                                   sample to) against the head where the exit test first passes
//                                   after i (the final head when none does), with exact-hit rate,
//                                   mean absolute error in heads, and the shares too early / late.
//
// The default beta grid is 2^(j/32) for j = -160..160: 321 values from 1/32 to 32, each 2.2%
// above the previous (a log grid: beta scales thresholds, so equal ratios are equal steps). The
// log_softmax grid is max-prob thresholds 1 - 2^(-j/16) for j = 4..320: 317 values from 0.16 to
// 1 - 2^-20, equal steps in log(1 - beta), dense where confident heads differ.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../confidence.hpp"
#include "../error.hpp"
#include "../policy/predictive.hpp"
#include "../policy/static.hpp"
#include "thresholds.hpp"
#include "../trace/metrics.hpp"
#include "../trace/replay.hpp"
#include "../trace/trace.hpp"

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

/// The default grid of the log_softmax test (see the file comment): 1 - 2^(-j/16), j = 4..320.
[[nodiscard]] inline std::vector<double> default_softmax_beta_grid() {
    std::vector<double> g;
    for (int j = 4; j <= 320; ++j) g.push_back(1.0 - std::exp2(-static_cast<double>(j) / 16.0));
    return g;
}

namespace policy {

/// What predictive_calibration::make() gives: a policy::predictive with the calibrated options
/// that names itself "full" when the calibration fell back (it then starts at the final head and
/// runs exactly as policy::full, calibrate()'s fallback), else as policy::predictive does
/// ("predictive" or "check_every_head"). Converts to policy::predictive, which then names itself
/// as policy::predictive again.
class calibrated_predictive : public predictive {
public:
    calibrated_predictive(predictive_options options, std::vector<double> thresholds, bool falls_back_to_full)
        : predictive(std::move(options), std::move(thresholds)), full_(falls_back_to_full) {}

    [[nodiscard]] std::string_view name() const noexcept { return full_ ? "full" : predictive::name(); }
    /// True when this is a fallen-back calibration: exactly policy::full's run.
    [[nodiscard]] bool falls_back_to_full() const noexcept { return full_; }

private:
    bool full_ = false;
};

}  // namespace policy

/// What predictive_calibrated() searches.
struct predictive_search {
    std::vector<double> betas = default_beta_grid();  ///< logit_extremum candidates, each finite and > 0
    /// false: start at options.start_head. true: choose it jointly with beta among 0..heads-2
    /// (starting at the final head is the plain network, the fallback anyway).
    bool choose_start_head = false;
    std::vector<double> softmax_betas = default_softmax_beta_grid();  ///< log_softmax candidates, in (0, 1]
    /// The exit tests searched, each on its own grid (empty: options.test alone).
    std::vector<exit_test> tests{};
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
    /// "beta 1.19 from head 2" (logit_extremum), "max-prob 0.97 from head 2" (log_softmax), or
    /// "full (fallback)".
    [[nodiscard]] std::string parameter_text() const {
        if (falls_back_to_full) return "full (fallback)";
        if (options.test == exit_test::log_softmax) return fmt::format("max-prob {:.4g} from head {}", beta, start_head);
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
    /// without asking: exactly policy::full's run, and its name() is "full".
    [[nodiscard]] policy::calibrated_predictive make() const {
        return policy::calibrated_predictive(chosen_options(), thresholds, falls_back_to_full);
    }
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
    const std::vector<exit_test> tests = search.tests.empty() ? std::vector<exit_test>{options.test} : search.tests;
    const auto grid_of = [&](exit_test x) -> const std::vector<double>& {
        return x == exit_test::log_softmax ? search.softmax_betas : search.betas;
    };
    for (const exit_test x : tests) {
        const auto& g = grid_of(x);
        if (g.empty()) fail("predictive_calibrated: the beta grid of the {} test is empty", name_of(x));
        for (std::size_t j = 0; j < g.size(); ++j)
            if (!(g[j] > 0.0) || !std::isfinite(g[j]) || (x == exit_test::log_softmax && g[j] > 1.0))
                fail("predictive_calibrated: beta {} (entry {} of the {} grid) must be finite and {}", g[j], j,
                     name_of(x), x == exit_test::log_softmax ? "in (0, 1]" : "> 0");
    }

    predictive_calibration r;
    r.thresholds = mean_logit_extremum(t);
    r.options = options;
    const auto info = t.info();
    {
        // The policy's own checks, once, before any replay (beta is the grid's).
        predictive_options o = options;
        o.test = tests.front();
        o.beta = grid_of(o.test).front();
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
        exit_test test = exit_test::logit_extremum;
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
    for (const exit_test x : tests)
    for (std::size_t s = first_start; s < end_start; ++s) {
        for (const double beta : grid_of(x)) {
            predictive_options o = options;
            o.beta = beta;
            o.start_head = s;
            o.test = x;
            const auto out = replay(t, policy::predictive(o, r.thresholds));
            ++r.candidates;
            candidate c{s, x, beta, summarize({}, out, t), accuracy_drop_bound(t, out, target.confidence)};
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

    const auto where = [](const candidate& c) {
        return fmt::format("{} {:.4g} from head {}", c.test == exit_test::log_softmax ? "max-prob" : "beta", c.beta,
                           c.start);
    };
    if (best) {
        r.met = true;
        r.beta = best->beta;
        r.start_head = best->start;
        r.options.test = best->test;
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
        r.options.test = ref->test;
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

/// How well a predictor forecasts the head where its exit test passes (see the file comment).
struct predictor_accuracy {
    std::size_t forecasts = 0;     ///< forecasts made (one per proceed at a non-final head)
    double exact_rate = 0;         ///< share of forecasts that named exactly the next passing head
    double mean_abs_error = 0;     ///< mean |forecast - next passing head|, in heads
    double early_rate = 0;         ///< share that forecast a head before it (a wasted head, then re-predict)
    double late_rate = 0;          ///< share that forecast a head past it (the sample runs deeper than needed)
};

/// Replays the policy's decisions on every sample of t (the policy is copied and bound to t's
/// network) and scores every forecast (see the file comment). A policy with predict = false
/// forecasts head i + 1 every time.
template <std::floating_point Scalar>
[[nodiscard]] predictor_accuracy predictor_error(const basic_trace<Scalar>& t, const policy::predictive& policy) {
    policy::predictive p = policy;
    p.prepare(t.info());
    const std::size_t heads = t.heads(), last = heads - 1;
    std::vector<Scalar> probs(t.classes());
    std::vector<char> pass(heads);
    predictor_accuracy a;
    double abs_sum = 0;
    std::size_t exact = 0, early = 0, late = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        for (std::size_t k = 0; k < heads; ++k) pass[k] = p.passes(k, measure(t.logits(i, k), probs));
        std::size_t k = std::min(p.options().start_head, last);
        while (k < last && !pass[k]) {
            const std::size_t f = p.options().predict ? p.forecast(k, t.logits(i, k)) : k + 1;
            std::size_t next = k + 1;
            while (next < last && !pass[next]) ++next;
            ++a.forecasts;
            exact += f == next;
            early += f < next;
            late += f > next;
            abs_sum += static_cast<double>(f > next ? f - next : next - f);
            k = std::max(f, k + 1);
        }
    }
    if (a.forecasts > 0) {
        const auto n = static_cast<double>(a.forecasts);
        a.exact_rate = static_cast<double>(exact) / n;
        a.mean_abs_error = abs_sum / n;
        a.early_rate = static_cast<double>(early) / n;
        a.late_rate = static_cast<double>(late) / n;
    }
    return a;
}

/// The calibrated policy's metrics on another split (named as r.name()).
template <std::floating_point Scalar>
[[nodiscard]] policy_metrics evaluate(const basic_trace<Scalar>& t, const predictive_calibration& c,
                                      std::optional<double> deadline = std::nullopt) {
    return evaluate(t, c.name(), c.make(), deadline);
}

}  // namespace earlyexit
