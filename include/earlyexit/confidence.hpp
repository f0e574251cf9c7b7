#pragma once
// Confidence measures over one exit head's logits.
//
// All functions are noexcept, allocation-free and numerically stable (the maximum logit is
// subtracted before exponentiation). They take logits as std::span; an Eigen vector `v` with
// contiguous storage converts with earlyexit::as_span(v).
//
// Non-finite input (documented contract, tested):
// * -inf entries are masked classes: probability exactly 0, ignored by every measure.
// * NaN or +inf anywhere, all entries -inf, or an empty span make the logits *invalid*: they
//   carry no confidence. The distribution is then uniform (max_prob = 1/C, margin = 0,
//   normalized entropy = 1), logit_extremum = 0, top1 = 0 and confidence::valid is false, so no
//   threshold policy with a meaningful threshold exits on them.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <ranges>
#include <span>
#include <type_traits>

#include <Eigen/Core>

namespace earlyexit {

/// Every measure of one head's output, computed in one pass by measure().
/// Ranges: max_prob in [1/C, 1], margin in [0, 1], entropy (normalized by ln C) in [0, 1],
/// logit_extremum >= 0, top1 in [0, C).
template <std::floating_point Scalar>
struct confidence {
    Scalar max_prob = 0;        ///< largest class probability
    Scalar margin = 0;          ///< top-1 minus top-2 probability (top-1 alone when C == 1)
    Scalar entropy = 0;         ///< Shannon entropy divided by ln C (0 when C == 1)
    Scalar logit_extremum = 0;  ///< max(|max z|, |min z|) over the finite logits
    std::size_t top1 = 0;       ///< index of the largest logit (first one on ties)
    bool valid = false;         ///< false for invalid logits (see the header comment)
};

/// A view of a contiguous Eigen vector (or any object with data() and size()) as a span.
template <class Vector>
    requires requires(const Vector& v) {
        { v.data() } -> std::convertible_to<const typename Vector::Scalar*>;
        v.size();
    }
[[nodiscard]] std::span<const typename Vector::Scalar> as_span(const Vector& v) noexcept {
    return {v.data(), static_cast<std::size_t>(v.size())};
}

/// A contiguous range of floating-point logits: std::span, std::vector, std::array, C array.
template <class R>
concept logit_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                      std::floating_point<std::remove_cv_t<std::ranges::range_value_t<R>>>;

/// A contiguous range of writable floating-point values (a probability buffer).
template <class R>
concept writable_logit_range =
    logit_range<R> && !std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<R>>>;

/// The scalar type of a logit range.
template <logit_range R>
using range_scalar_t = std::remove_cv_t<std::ranges::range_value_t<R>>;

namespace detail {

template <logit_range R>
[[nodiscard]] std::span<const range_scalar_t<R>> cspan(const R& r) noexcept {
    return {std::ranges::data(r), std::ranges::size(r)};
}

/// One pass without exponentials: the order statistics every measure needs.
template <class Scalar>
struct logit_scan {
    Scalar max = -std::numeric_limits<Scalar>::infinity();
    Scalar second = -std::numeric_limits<Scalar>::infinity();
    Scalar min_finite = std::numeric_limits<Scalar>::infinity();
    Scalar max_finite = -std::numeric_limits<Scalar>::infinity();
    std::size_t top1 = 0;
    bool valid = false;
};

template <class Scalar>
[[nodiscard]] logit_scan<Scalar> scan(std::span<const Scalar> z) noexcept {
    logit_scan<Scalar> s;
    bool bad = false;
    for (std::size_t c = 0; c < z.size(); ++c) {
        const Scalar v = z[c];
        if (std::isnan(v) || v == std::numeric_limits<Scalar>::infinity()) bad = true;
        if (v > s.max) {
            s.second = s.max;
            s.max = v;
            s.top1 = c;
        } else if (v > s.second) {
            s.second = v;
        }
        if (std::isfinite(v)) {
            if (v < s.min_finite) s.min_finite = v;
            if (v > s.max_finite) s.max_finite = v;
        }
    }
    s.valid = !bad && std::isfinite(s.max);
    if (!s.valid) s.top1 = 0;
    return s;
}

template <class Scalar>
using const_array_map = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
template <class Scalar>
using array_map = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;

template <class Scalar>
[[nodiscard]] const_array_map<Scalar> map(std::span<const Scalar> z) noexcept {
    return const_array_map<Scalar>(z.data(), static_cast<Eigen::Index>(z.size()));
}

/// exp(z_c - m) as an expression, exactly 0 for masked (-inf) entries: vectorized exp clamps
/// its argument, so exp(-inf) would otherwise come out as a tiny positive number.
template <class Scalar>
[[nodiscard]] auto shifted_exp(std::span<const Scalar> z, Scalar m) noexcept {
    const auto zz = map(z);
    return (zz > -std::numeric_limits<Scalar>::infinity()).select((zz - m).exp(), Scalar(0));
}

/// sum_c exp(z_c - m) for valid logits.
template <class Scalar>
[[nodiscard]] Scalar partition(std::span<const Scalar> z, Scalar m) noexcept {
    return shifted_exp(z, m).sum();
}

/// Normalized entropy from the shifted exponentials e_c = exp(z_c - m) and their sum s:
/// H = ln s - sum_c e_c (z_c - m) / s, divided by ln C.
template <class Scalar, class Exps>
[[nodiscard]] Scalar normalized_entropy_from(const Exps& e, std::span<const Scalar> z, Scalar m,
                                             Scalar s) noexcept {
    if (z.size() < 2) return Scalar(0);
    const auto shifted = map(z) - m;
    // Masked entries have e == 0 and shifted == -inf: their term is 0, not NaN.
    const Scalar weighted = (e > Scalar(0)).select(e * shifted, Scalar(0)).sum();
    const Scalar h = std::log(s) - weighted / s;
    const Scalar normalized = h / std::log(static_cast<Scalar>(z.size()));
    // Rounding can leave tiny excursions outside [0, 1].
    return normalized < Scalar(0) ? Scalar(0) : (normalized > Scalar(1) ? Scalar(1) : normalized);
}

template <class Scalar>
[[nodiscard]] Scalar extremum_of(const logit_scan<Scalar>& s) noexcept {
    if (!s.valid) return Scalar(0);
    return std::max(std::abs(s.max_finite), std::abs(s.min_finite));
}

template <class Scalar>
[[nodiscard]] confidence<Scalar> invalid_confidence(std::size_t classes) noexcept {
    confidence<Scalar> c;
    c.max_prob = classes == 0 ? Scalar(0) : Scalar(1) / static_cast<Scalar>(classes);
    c.margin = classes == 1 ? Scalar(1) : Scalar(0);
    c.entropy = classes < 2 ? Scalar(0) : Scalar(1);
    c.logit_extremum = 0;
    c.top1 = 0;
    c.valid = false;
    return c;
}

}  // namespace detail

/// Writes softmax(logits) to probs, which must have the logits' size (only the common prefix
/// is written otherwise). Invalid logits give the uniform distribution.
template <logit_range Logits, writable_logit_range Probs>
    requires std::same_as<range_scalar_t<Logits>, range_scalar_t<Probs>>
void softmax(const Logits& logits, Probs&& probs) noexcept {
    using Scalar = range_scalar_t<Logits>;
    const std::size_t n = std::min<std::size_t>(std::ranges::size(logits), std::ranges::size(probs));
    if (n == 0) return;
    const auto z = detail::cspan(logits).first(n);
    const auto s = detail::scan(z);
    detail::array_map<Scalar> p(std::ranges::data(probs), static_cast<Eigen::Index>(n));
    if (!s.valid) {
        p.setConstant(Scalar(1) / static_cast<Scalar>(n));
        return;
    }
    p = detail::shifted_exp(z, s.max);
    p /= p.sum();
}

/// Largest class probability, in [1/C, 1].
template <logit_range Logits>
[[nodiscard]] range_scalar_t<Logits> max_prob(const Logits& logits) noexcept {
    using Scalar = range_scalar_t<Logits>;
    const auto z = detail::cspan(logits);
    const auto s = detail::scan(z);
    if (!s.valid) return detail::invalid_confidence<Scalar>(z.size()).max_prob;
    return Scalar(1) / detail::partition(z, s.max);
}

/// Top-1 minus top-2 probability, in [0, 1] (the top-1 probability when C == 1).
template <logit_range Logits>
[[nodiscard]] range_scalar_t<Logits> margin(const Logits& logits) noexcept {
    using Scalar = range_scalar_t<Logits>;
    const auto z = detail::cspan(logits);
    const auto s = detail::scan(z);
    if (!s.valid) return detail::invalid_confidence<Scalar>(z.size()).margin;
    return (Scalar(1) - std::exp(s.second - s.max)) / detail::partition(z, s.max);
}

/// Shannon entropy of softmax(logits) divided by ln C, in [0, 1] (0 when C == 1). C counts
/// every entry, masked (-inf) classes included.
template <logit_range Logits>
[[nodiscard]] range_scalar_t<Logits> normalized_entropy(const Logits& logits) noexcept {
    using Scalar = range_scalar_t<Logits>;
    const auto z = detail::cspan(logits);
    const auto s = detail::scan(z);
    if (!s.valid) return detail::invalid_confidence<Scalar>(z.size()).entropy;
    const auto e = detail::shifted_exp(z, s.max);
    return detail::normalized_entropy_from(e, z, s.max, Scalar(e.sum()));
}

/// Shannon entropy of softmax(logits) in nats, in [0, ln C].
template <logit_range Logits>
[[nodiscard]] range_scalar_t<Logits> entropy(const Logits& logits) noexcept {
    using Scalar = range_scalar_t<Logits>;
    const std::size_t n = std::max<std::size_t>(std::ranges::size(logits), 1);
    return normalized_entropy(logits) * std::log(static_cast<Scalar>(n));
}

/// max(|max z|, |min z|) over the finite logits; 0 for invalid logits. Predictive Exit's test.
template <logit_range Logits>
[[nodiscard]] range_scalar_t<Logits> logit_extremum(const Logits& logits) noexcept {
    return detail::extremum_of(detail::scan(detail::cspan(logits)));
}

/// Index of the largest logit (the first on ties; 0 for invalid logits).
template <logit_range Logits>
[[nodiscard]] std::size_t top1(const Logits& logits) noexcept {
    return detail::scan(detail::cspan(logits)).top1;
}

/// All measures at once, writing softmax(logits) into probs (same size as logits). This is
/// what the runner calls at every evaluated head: O(C), one exp per class, no allocation.
template <logit_range Logits, writable_logit_range Probs>
    requires std::same_as<range_scalar_t<Logits>, range_scalar_t<Probs>>
confidence<range_scalar_t<Logits>> measure(const Logits& logits, Probs&& probs) noexcept {
    using Scalar = range_scalar_t<Logits>;
    const std::size_t n = std::min<std::size_t>(std::ranges::size(logits), std::ranges::size(probs));
    const auto z = detail::cspan(logits).first(n);
    const auto s = detail::scan(z);
    detail::array_map<Scalar> p(std::ranges::data(probs), static_cast<Eigen::Index>(n));
    if (!s.valid) {
        if (n > 0) p.setConstant(Scalar(1) / static_cast<Scalar>(n));
        return detail::invalid_confidence<Scalar>(n);
    }
    p = detail::shifted_exp(z, s.max);
    const Scalar sum = p.sum();
    confidence<Scalar> c;
    c.entropy = detail::normalized_entropy_from(p, z, s.max, sum);
    p /= sum;
    c.max_prob = Scalar(1) / sum;
    c.margin = (Scalar(1) - std::exp(s.second - s.max)) / sum;
    c.logit_extremum = detail::extremum_of(s);
    c.top1 = s.top1;
    c.valid = true;
    return c;
}

}  // namespace earlyexit
