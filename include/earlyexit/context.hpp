#pragma once
// What a policy sees: the network's shape, the sample being run, and the exit context at each
// evaluated head. Everything here is a view or a small value: building a context allocates
// nothing.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <string_view>

#include "confidence.hpp"
#include "error.hpp"

namespace earlyexit {

/// Sentinel for "no head / no position / no label": the largest std::size_t.
inline constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

namespace detail {

/// false, but only once T is known: static_assert(dependent_false<T>) fires on instantiation.
template <class>
inline constexpr bool dependent_false = false;

/// What a refused make_*_runner(temporary network, ...) returns after its static_assert, so that
/// `auto r = make_runner(...)` reports that assertion and not an incomplete `void r`.
struct refused_temporary_network {};

}  // namespace detail

/// Declared cost of the plain network: every stage plus the final head (network_info::full_macs
/// of a network of your own: {stages, heads, classes, positions, stage_macs, head_macs,
/// full_network_macs(stage_macs, head_macs)}).
[[nodiscard]] inline double full_network_macs(std::span<const double> stage_macs,
                                              std::span<const double> head_macs) noexcept {
    double m = head_macs.empty() ? 0.0 : head_macs.back();
    for (double s : stage_macs) m += s;
    return m;
}

/// The shape and declared cost of a multi-exit network, as policies see it. Views into the
/// network, which outlives every runner built on it. Costs are declared multiply-accumulates.
struct network_info {
    std::size_t stages = 0;                    ///< positions 0..stages-1
    std::size_t heads = 0;                     ///< exits 0..heads-1; the last is the final head
    std::size_t classes = 0;                   ///< logits per head
    std::span<const std::size_t> head_positions;  ///< position of head k, strictly increasing
    std::span<const double> stage_macs;        ///< declared cost of each stage
    std::span<const double> head_macs;         ///< declared cost of each head
    double full_macs = 0;                      ///< all stages plus the final head: the plain network

    /// Declared cost of running positions 0..position (inclusive) with no head.
    [[nodiscard]] double macs_through(std::size_t position) const noexcept {
        double m = 0;
        for (std::size_t p = 0; p <= position && p < stage_macs.size(); ++p) m += stage_macs[p];
        return m;
    }
};

/// Per-sample input to a run. `label` is only for evaluation policies (oracle) and reports;
/// ordinary policies never see it.
struct sample_info {
    std::size_t index = 0;                  ///< position of the sample in its dataset or batch
    std::optional<std::size_t> label{};     ///< ground-truth class, when known
    /// Time budget of the sample from its start, in seconds of the runner's clock, when it has
    /// one. Policies see the time left (exit_context / frequency_context::time_left()); reports
    /// count a miss when the sample's time exceeds it.
    std::optional<double> deadline_seconds{};
};

/// Whether a deadline setting is acceptable: absent, or finite and > 0 seconds.
[[nodiscard]] inline bool valid_deadline(const std::optional<double>& seconds) noexcept {
    return !seconds || (std::isfinite(*seconds) && *seconds > 0.0);
}

/// Checks a deadline or period setting: absent, or finite and > 0 seconds (earlyexit::error
/// naming `what` and the value otherwise: a NaN deadline would let a DVFS selector pick the
/// slowest level, a 0 or negative one would count every sample as a miss).
inline void check_deadline(const std::optional<double>& seconds, std::string_view what) {
    if (!valid_deadline(seconds))
        fail("{} {} s: a deadline must be finite and > 0 seconds", what, *seconds);
}

/// A policy's answer at an evaluated head.
enum class decision : unsigned char {
    proceed,  ///< run on to the next head the policy wants checked
    stop,     ///< exit here: the remaining stages are skipped
};

/// The context of one evaluated exit head of one sample. Spans point into the runner's buffers
/// and are valid only during the call that receives the context.
template <std::floating_point Scalar>
struct exit_context {
    std::size_t head = 0;               ///< exit index k
    std::size_t position = 0;           ///< stage position the head is attached to
    std::span<const Scalar> logits;     ///< the head's logits (C values)
    std::span<const Scalar> probs;      ///< softmax of the logits
    confidence<Scalar> measures;        ///< max-prob, margin, entropy, logit extremum, top-1
    std::size_t patience = 0;           ///< evaluated heads in a row (this one included) with this top-1; 0 if invalid
    std::size_t heads_evaluated = 0;    ///< heads run so far on this sample, this one included
    double elapsed_seconds = 0;         ///< clock time since the sample started
    double elapsed_macs = 0;            ///< declared cost so far: stages run plus heads evaluated
    const network_info* network = nullptr;  ///< the network's shape (never null inside a runner)
    std::optional<double> deadline_seconds{};  ///< the sample's deadline (sample_info), when it has one
    std::size_t level = npos;           ///< frequency level in force while this head ran (npos: none known)
    /// The sample this head ran on (never null inside a runner). A batch_runner interleaves the
    /// hooks of the rows of a batch, so a policy that needs per-sample facts reads them here
    /// (sample->index, sample->label) instead of keeping them from begin() in a member.
    const sample_info* sample = nullptr;

    [[nodiscard]] bool is_final() const noexcept { return network != nullptr && head + 1 == network->heads; }
    /// deadline_seconds - elapsed_seconds (negative once missed), when the sample has a deadline.
    [[nodiscard]] std::optional<double> time_left() const noexcept {
        return deadline_seconds ? std::optional<double>(*deadline_seconds - elapsed_seconds) : std::nullopt;
    }
    /// elapsed_macs as a fraction of the plain network's cost (may exceed 1 with many heads).
    [[nodiscard]] double cost_fraction() const noexcept {
        return (network == nullptr || network->full_macs <= 0) ? 0.0 : elapsed_macs / network->full_macs;
    }
};

/// What the frequency() hook sees: where the sample stands and the head the policy will check
/// next. The runner asks once when the sample starts (after first_check; `at` is null there)
/// and after every proceed (after next_check, so a policy that predicts its next head predicts
/// once and the frequency decision can use it). Valid only during the call.
template <std::floating_point Scalar>
struct frequency_context {
    std::size_t next_head = 0;          ///< the head the runner will evaluate next
    std::size_t stages_run = 0;         ///< positions 0..stages_run-1 are done
    double elapsed_seconds = 0;         ///< clock time since the sample started
    double elapsed_macs = 0;            ///< declared cost so far
    std::optional<double> deadline_seconds{};  ///< the sample's deadline, when it has one
    std::size_t level = npos;           ///< the level in force now (npos: none known)
    const exit_context<Scalar>* at = nullptr;  ///< the head just evaluated (null at the sample's start)
    const network_info* network = nullptr;     ///< the network's shape (never null inside a runner)
    const sample_info* sample = nullptr;       ///< the sample asked about (never null inside a runner)
    /// Samples the work runs on together: 1 in basic_runner; in a batch_runner the rows still
    /// running, which share one level (the batch's level is the highest any row asks for), so
    /// the time to a head is about batch_rows times one sample's.
    std::size_t batch_rows = 1;

    /// deadline_seconds - elapsed_seconds (negative once missed), when the sample has a deadline.
    [[nodiscard]] std::optional<double> time_left() const noexcept {
        return deadline_seconds ? std::optional<double>(*deadline_seconds - elapsed_seconds) : std::nullopt;
    }
};

}  // namespace earlyexit
