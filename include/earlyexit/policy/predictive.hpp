#pragma once
// Predictive Exit (Li et al., AAAI 2023; ../shared/docs/algorithms.md section 3): a cheap
// predictor forecasts, from one head's logits, how many heads to skip before the next one worth
// evaluating, so heads run only where the forecast points instead of at every position.
//
// Exit test at head k, two forms (predictive_options::test; let validation choose,
// calibrate/predictive.hpp does):
//   logit_extremum  (the authors' public code) the logits are valid and logit_extremum >
//                   beta * T_k, T_k the mean logit extremum of head k over a calibration set.
//                   The raw logit is not shift-invariant: a head whose logits carry a constant
//                   offset passes or fails whatever its softmax says.
//   log_softmax     max log-softmax >= log beta, beta in (0, 1]: max-prob >= beta, the same at
//                   every head (shift-invariant; T_k is not used).
// Optionally also max-prob >= deep_max_prob at heads k >= deep_from.
//
// Predictor, after a proceed at head i (next_check), in heads: every head is a potential exit,
// so a jump of r means "evaluate head i + r next" (clamped to the final head). v = the head's
// logits (in double); for r = 1..R: v <- v convolved with [1, 1, 1] along the class axis (zero
// padded, same length: v'_c = v_{c-1} + v_c + v_{c+1}); if max_c |v'_c| > beta * T_{min(i+r,
// last)}, the jump is r (log_softmax form: if max log-softmax(v') >= log beta, the same
// quantity the exit test compares). The threshold a round is compared with is the one of the head that
// round would send the sample to. algorithms.md writes T_{i+r-1}; we read it as the reference's
// loop counting positions from the one after i, so that it names the same head as our
// T_{i+r} (the one the jump lands on). No round fires: the jump is `horizon` (default R).
// The reference counts jumps in positions, with a head at every position; here they count
// heads, which is the same thing on such a network and stays meaningful on a sparser one.
// Non-finite logits: a -inf entry (a masked class) counts as 0 in the convolution; logits that
// carry no confidence (measures.valid false) predict no skip (head i + 1).
//
// The runner then skips the heads in between (their stages still run), evaluates the predicted
// one, exits if its test passes and otherwise predicts again from there: a wrong forecast costs
// compute, never the final head. With predict = false the same test runs at every head from
// start_head: the "check every head" baseline (name() "check_every_head").
//
// Units: heads everywhere (start_head, deep_from, jumps). head_at_or_after() maps a stage
// position to the first head at or after it, for users who think in stages; the inverse is
// network_info::head_positions[k].
// Cost: decide() O(1); next_check() O(R * C) with no allocation (two buffers of C + 2 doubles
// sized by prepare()); both noexcept. The policy is a value (the runner keeps its own copy).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../context.hpp"
#include "../error.hpp"

namespace earlyexit {

/// The exit test of policy::predictive (see the file comment).
enum class exit_test : unsigned char {
    logit_extremum,  ///< logit extremum > beta * T_k: the authors' form
    log_softmax,     ///< max log-softmax >= log beta (max-prob >= beta): shift-invariant
};

[[nodiscard]] constexpr std::string_view name_of(exit_test t) noexcept {
    return t == exit_test::log_softmax ? "log_softmax" : "logit_extremum";
}

/// Options of policy::predictive; the defaults follow the reference (R = 8, no deep test).
/// Ranges (checked by the policy's constructor, errors naming the value): beta finite and > 0
/// (and <= 1 for the log_softmax test);
/// rounds >= 1; horizon, when given, >= 1; deep_max_prob, when given, in [0, 1]. start_head and
/// deep_from are head indices, checked against the network by prepare().
struct predictive_options {
    double beta = 1.0;                       ///< global factor on the per-head thresholds T_k
    std::size_t rounds = 8;                  ///< R: convolution rounds of the predictor
    std::optional<std::size_t> horizon{};    ///< jump when no round fires (default: rounds)
    std::size_t start_head = 0;              ///< first head evaluated on every sample
    std::optional<double> deep_max_prob{};   ///< at heads >= deep_from, also require max-prob >= this
    std::size_t deep_from = 0;               ///< first head the deep max-prob test applies to
    bool predict = true;                     ///< false: check every head (the check_every_head baseline)
    exit_test test = exit_test::logit_extremum;  ///< the exit test and the predictor's quantity

    /// The jump predicted when no round fires.
    [[nodiscard]] std::size_t effective_horizon() const noexcept { return horizon.value_or(rounds); }
};

/// The first head whose stage position is >= position; npos when none is (position past the
/// last stage). E.g. start_head = head_at_or_after(net, 12) starts at the first head from stage
/// 12 on; network_info::head_positions[k] is the other way round.
[[nodiscard]] inline std::size_t head_at_or_after(const network_info& net, std::size_t position) noexcept {
    const auto& p = net.head_positions;
    const auto it = std::lower_bound(p.begin(), p.end(), position);
    return it == p.end() ? npos : static_cast<std::size_t>(it - p.begin());
}

namespace policy {

/// Predictive Exit (see the file comment). Built from options and one threshold T_k per head
/// (finite, > 0; usually mean_logit_extremum() of a calibration trace; the log_softmax test
/// does not use them, but still needs one per head to know the network's size). Bind it to a
/// network with prepare() (the runner does) before next_check(); decide() needs no binding.
class predictive {
public:
    predictive(predictive_options options, std::vector<double> thresholds)
        : o_(std::move(options)), t_(std::move(thresholds)) {
        const std::string_view who = o_.predict ? "predictive" : "check_every_head";
        if (!(o_.beta > 0.0) || !std::isfinite(o_.beta)) fail("{}: beta {} must be finite and > 0", who, o_.beta);
        if (o_.test == exit_test::log_softmax && !(o_.beta <= 1.0))
            fail("{}: beta {} must be in (0, 1] for the log_softmax exit test (max-prob >= beta)", who, o_.beta);
        if (o_.rounds == 0) fail("{}: rounds {} must be >= 1", who, o_.rounds);
        if (o_.horizon && *o_.horizon == 0) fail("{}: horizon {} must be >= 1", who, *o_.horizon);
        if (o_.deep_max_prob && !(*o_.deep_max_prob >= 0.0 && *o_.deep_max_prob <= 1.0))
            fail("{}: deep_max_prob {} is out of range [0, 1]", who, *o_.deep_max_prob);
        if (t_.empty()) fail("{}: no thresholds (one per head is needed)", who);
        for (std::size_t k = 0; k < t_.size(); ++k)
            if (!(t_[k] > 0.0) || !std::isfinite(t_[k]))
                fail("{}: threshold {} of head {} must be finite and > 0", who, t_[k], k);
        scaled_.resize(t_.size());
        soft_ = o_.test == exit_test::log_softmax;
        for (std::size_t k = 0; k < t_.size(); ++k) scaled_[k] = soft_ ? std::log(o_.beta) : o_.beta * t_[k];
        deep_ = o_.deep_max_prob.value_or(0.0);
        deep_from_ = o_.deep_max_prob ? o_.deep_from : npos;
        horizon_ = o_.effective_horizon();
        last_ = t_.size() - 1;
    }

    [[nodiscard]] std::string_view name() const noexcept { return o_.predict ? "predictive" : "check_every_head"; }
    [[nodiscard]] const predictive_options& options() const noexcept { return o_; }
    [[nodiscard]] std::span<const double> thresholds() const noexcept { return t_; }
    [[nodiscard]] double beta() const noexcept { return o_.beta; }
    /// The head the last next_check() sent the sample to (npos before any): what the predictor
    /// forecast, for reports and tests.
    [[nodiscard]] std::size_t predicted_exit() const noexcept { return predicted_; }

    /// Checks the network: one threshold per head, start_head and (with a deep test) deep_from
    /// naming heads; sizes the predictor's buffers for its class count.
    void prepare(const network_info& net) {
        const std::string_view who = name();
        if (t_.size() != net.heads)
            fail("{}: {} thresholds for a network of {} heads (one per head is needed)", who, t_.size(), net.heads);
        if (o_.start_head >= net.heads)
            fail("{}: start_head {} does not exist; the network has {} heads (0..{})", who, o_.start_head, net.heads,
                 net.heads - 1);
        if (o_.deep_max_prob && o_.deep_from >= net.heads)
            fail("{}: deep_from {} does not exist; the network has {} heads (0..{}), so the deep max-prob test "
                 "would never apply",
                 who, o_.deep_from, net.heads, net.heads - 1);
        // Zero pads at both ends: the convolution needs no edge case.
        a_.assign(net.classes + 2, 0.0);
        b_.assign(net.classes + 2, 0.0);
    }

    [[nodiscard]] std::size_t first_check(const sample_info&) const noexcept { return o_.start_head; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        return passes(c.head, c.measures) ? decision::stop : decision::proceed;
    }

    /// The exit test at head k on a head's measures (what decide() asks).
    template <std::floating_point Scalar>
    [[nodiscard]] bool passes(std::size_t head, const confidence<Scalar>& m) const noexcept {
        const std::size_t k = std::min(head, last_);
        // & and |, not && and ||: one branch instead of three (the outcome varies per sample).
        const bool deep_ok = (head < deep_from_) | (static_cast<double>(m.max_prob) >= deep_);
        const double q = soft_ ? std::log(static_cast<double>(m.max_prob)) : static_cast<double>(m.logit_extremum);
        const bool over = soft_ ? q >= scaled_[k] : q > scaled_[k];
        return m.valid & over & deep_ok;
    }

    /// The next head to evaluate after a proceed at c.head: the predictor's forecast (see the
    /// file comment), or c.head + 1 with predict = false. Always in (c.head, last].
    template <std::floating_point Scalar>
    [[nodiscard]] std::size_t next_check(const exit_context<Scalar>& c) noexcept {
        predicted_ = o_.predict && c.measures.valid ? forecast(c.head, c.logits)
                                                    : std::min(c.head + 1, last_);
        return predicted_;
    }

    /// The predictor alone: the head to evaluate after head i whose logits are z (i + r for the
    /// first round r that fires, i + horizon when none does; clamped to the final head). Needs
    /// prepare() for z's class count; with more classes than prepared (or none) it predicts i + 1.
    template <std::floating_point Scalar>
    [[nodiscard]] std::size_t forecast(std::size_t i, std::span<const Scalar> z) noexcept {
        const std::size_t last = last_;
        if (i >= last) return last;
        const std::size_t n = z.size();
        if (n == 0 || n + 2 > a_.size()) return i + 1;
        // At r = last - i every outcome lands on the final head (a fire sends it to i + r = last,
        // and the later rounds and a horizon >= r do too): those rounds need not run.
        const std::size_t to_last = last - i;
        const std::size_t rounds = horizon_ >= to_last ? std::min(o_.rounds, to_last - 1) : o_.rounds;
        double* in = a_.data();
        double* out = b_.data();
        for (std::size_t c = 0; c < n; ++c) {
            const double v = static_cast<double>(z[c]);
            in[c + 1] = std::isfinite(v) ? v : 0.0;
        }
        in[n + 1] = out[n + 1] = 0.0;
        const auto len = static_cast<Eigen::Index>(n);
        for (std::size_t r = 1; r <= rounds; ++r) {
            for (std::size_t c = 1; c <= n; ++c) out[c] = in[c - 1] + in[c] + in[c + 1];
            // Eigen's max: a plain loop's running max is one long dependency chain (a
            // floating-point max reduction is not vectorized without -ffast-math); Eigen's is.
            const auto v = Eigen::Map<const Eigen::ArrayXd>(out + 1, len);
            if (soft_) {
                // max log-softmax = -log(sum exp(v - max v)).
                const double top = v.maxCoeff();
                if (-std::log((v - top).exp().sum()) >= scaled_[std::min(i + r, last)]) return std::min(i + r, last);
            } else if (v.abs().maxCoeff() > scaled_[std::min(i + r, last)]) {
                return std::min(i + r, last);
            }
            std::swap(in, out);
        }
        return std::min(i + horizon_, last);
    }

private:
    predictive_options o_;
    std::vector<double> t_;       // T_k
    std::vector<double> scaled_;  // beta * T_k (logit_extremum) or log beta (log_softmax)
    bool soft_ = false;           // the log_softmax test
    double deep_ = 0.0;
    std::size_t deep_from_ = npos;  // npos: no deep test
    std::size_t horizon_ = 8;
    std::size_t last_ = 0;       // the final head
    std::size_t predicted_ = npos;
    std::vector<double> a_, b_;  // predictor buffers, C + 2 each (prepare)
};

}  // namespace policy
}  // namespace earlyexit
