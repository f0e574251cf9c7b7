#pragma once
// Sweeps: accuracy against compute for each static threshold family, and its Pareto front.
//
// A family is a static policy with one parameter (max_prob, entropy, margin: a threshold in
// [0, 1]; patience: a count; fixed: the head index). Candidate thresholds are taken from the
// trace itself (quantiles of the measure at the non-final heads), so a sweep reaches every
// distinct operating point the trace can show, up to the requested resolution; patience and
// fixed take every count and every head.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../policy/any_policy.hpp"
#include "../policy/static.hpp"
#include "../trace/metrics.hpp"
#include "../trace/trace.hpp"

namespace earlyexit {

enum class threshold_family { max_prob, entropy, margin, patience, fixed };

/// The families whose exit depends on the sample (threshold rules), in report order.
inline constexpr threshold_family all_threshold_families[] = {threshold_family::max_prob, threshold_family::entropy,
                                                              threshold_family::margin, threshold_family::patience};
/// Every family calibrate() takes: the threshold rules, then `fixed` (one head for every sample).
inline constexpr threshold_family all_families[] = {threshold_family::max_prob, threshold_family::entropy,
                                                    threshold_family::margin, threshold_family::patience,
                                                    threshold_family::fixed};

[[nodiscard]] constexpr std::string_view name_of(threshold_family f) noexcept {
    switch (f) {
        case threshold_family::max_prob: return "max_prob";
        case threshold_family::entropy: return "entropy";
        case threshold_family::margin: return "margin";
        case threshold_family::patience: return "patience";
        case threshold_family::fixed: return "fixed";
    }
    return "unknown";
}

/// The family's policy at this parameter (patience: rounded to the nearest count >= 1; fixed:
/// the head index, a whole number >= 0).
/// Throws earlyexit::error for an out-of-range parameter, like the policies themselves.
template <std::floating_point Scalar = float>
[[nodiscard]] any_policy<Scalar> make_policy(threshold_family f, double parameter) {
    switch (f) {
        case threshold_family::max_prob: return policy::max_prob{parameter};
        case threshold_family::entropy: return policy::entropy{parameter};
        case threshold_family::margin: return policy::margin{parameter};
        case threshold_family::patience:
            if (!(parameter >= 0.5) || !std::isfinite(parameter))
                earlyexit::fail("patience: count {} must be >= 1", parameter);
            return policy::patience{static_cast<std::size_t>(std::lround(parameter))};
        case threshold_family::fixed:
            if (!(parameter >= 0.0) || !std::isfinite(parameter) || parameter != std::floor(parameter))
                fail("fixed: head {} must be a whole number >= 0", parameter);
            return policy::fixed{static_cast<std::size_t>(parameter)};
    }
    earlyexit::fail("make_policy: unknown family {}", static_cast<int>(f));
}

/// Candidate parameters for a family on a trace, sorted ascending, at most `resolution` of
/// them (patience: every count 1..heads; fixed: every head 0..heads-1). Threshold families use
/// the measure's values at the non-final heads (evenly spaced ranks) plus both ends of [0, 1].
template <std::floating_point Scalar>
[[nodiscard]] std::vector<double> candidate_parameters(const basic_trace<Scalar>& t, threshold_family f,
                                                       std::size_t resolution = 256) {
    std::vector<double> out;
    if (f == threshold_family::patience) {
        for (std::size_t n = 1; n <= t.heads(); ++n) out.push_back(static_cast<double>(n));
        return out;
    }
    if (f == threshold_family::fixed) {
        for (std::size_t k = 0; k < t.heads(); ++k) out.push_back(static_cast<double>(k));
        return out;
    }
    std::vector<double> values;
    values.reserve(t.size() * (t.heads() - 1));
    for (std::size_t i = 0; i < t.size(); ++i)
        for (std::size_t k = 0; k + 1 < t.heads(); ++k) {
            const auto z = t.logits(i, k);
            double v = 0;
            switch (f) {
                case threshold_family::max_prob: v = static_cast<double>(max_prob(z)); break;
                case threshold_family::entropy: v = static_cast<double>(normalized_entropy(z)); break;
                case threshold_family::margin: v = static_cast<double>(margin(z)); break;
                case threshold_family::patience:
                case threshold_family::fixed: break;
            }
            values.push_back(std::clamp(v, 0.0, 1.0));
        }
    std::sort(values.begin(), values.end());
    out.push_back(0.0);
    const std::size_t inner = resolution > 2 ? resolution - 2 : 0;
    for (std::size_t j = 0; j < inner && !values.empty(); ++j)
        out.push_back(values[(j * (values.size() - 1)) / std::max<std::size_t>(inner - 1, 1)]);
    out.push_back(1.0);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

/// One operating point of a sweep.
struct sweep_point {
    double parameter = 0;
    policy_metrics metrics;
};

/// Replays the family at each parameter; the rows are named "<family> <parameter>".
template <std::floating_point Scalar>
[[nodiscard]] std::vector<sweep_point> sweep(const basic_trace<Scalar>& t, threshold_family f,
                                             const std::vector<double>& parameters) {
    std::vector<sweep_point> out;
    out.reserve(parameters.size());
    for (double p : parameters)
        out.push_back({p, evaluate(t, fmt::format("{} {:.6g}", name_of(f), p), make_policy<Scalar>(f, p))});
    return out;
}

/// The family over its candidate parameters (see candidate_parameters).
template <std::floating_point Scalar>
[[nodiscard]] std::vector<sweep_point> sweep(const basic_trace<Scalar>& t, threshold_family f,
                                             std::size_t resolution = 256) {
    return sweep(t, f, candidate_parameters(t, f, resolution));
}

/// Indices of the points no other point beats: none has accuracy >= and compute saving >=
/// with one of them strictly better. Sorted by increasing compute saving. Points without an
/// accuracy (unlabelled) are left out.
[[nodiscard]] inline std::vector<std::size_t> pareto_front(const std::vector<sweep_point>& points) {
    std::vector<std::size_t> front;
    for (std::size_t i = 0; i < points.size(); ++i) {
        const auto& a = points[i].metrics;
        if (!a.accuracy) continue;
        bool dominated = false;
        for (std::size_t j = 0; j < points.size() && !dominated; ++j) {
            const auto& b = points[j].metrics;
            if (j == i || !b.accuracy) continue;
            const bool no_worse = *b.accuracy >= *a.accuracy && b.compute_saving >= a.compute_saving;
            const bool better = *b.accuracy > *a.accuracy || b.compute_saving > a.compute_saving;
            dominated = no_worse && better;
        }
        // Among exact ties keep the first only.
        for (std::size_t j : front)
            if (*points[j].metrics.accuracy == *a.accuracy && points[j].metrics.compute_saving == a.compute_saving)
                dominated = true;
        if (!dominated) front.push_back(i);
    }
    std::sort(front.begin(), front.end(), [&](std::size_t x, std::size_t y) {
        return points[x].metrics.compute_saving < points[y].metrics.compute_saving;
    });
    return front;
}

}  // namespace earlyexit
