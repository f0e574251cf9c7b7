#pragma once
// What a run returns: the exit result of one sample and its episode (the heads it visited),
// which learning policies receive through update(). An episode is a view valid only during
// that call (see episode below): copy what you need to keep.

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>

#include "context.hpp"

namespace earlyexit {

/// Outcome of one sample. `probs` and `logits` view the runner's buffers: valid until the next
/// run on the same runner (copy them if you need to keep them).
template <std::floating_point Scalar>
struct exit_result {
    std::size_t predicted = 0;          ///< top-1 class at the exit head
    std::size_t head = 0;               ///< exit index taken
    std::size_t position = 0;           ///< stage position of that head
    std::size_t positions_run = 0;      ///< stages actually run (position + 1)
    std::size_t heads_evaluated = 0;    ///< heads actually run
    double seconds = 0;                 ///< clock time of the whole sample
    double macs = 0;                    ///< declared cost: stages run plus heads evaluated
    confidence<Scalar> measures;        ///< measures at the exit head
    std::span<const Scalar> logits;     ///< logits at the exit head
    std::span<const Scalar> probs;      ///< softmax at the exit head
    std::optional<std::size_t> frequency_level{};  ///< last level the policy asked for, if any
    /// Energy of the sample when the clock measures energy (a DVFS model clock or a hardware
    /// meter): from its start until the runner restored the default level after it (if the
    /// clock restores it) and, for a sample with a deadline on a clock that can idle, until the
    /// deadline: the energy of its whole period, the slack at idle power included.
    std::optional<double> energy_joules{};
    /// True when the sample had a deadline and its time (seconds, the busy time) exceeded it.
    bool deadline_missed = false;

    /// True when the sample left before the final head.
    [[nodiscard]] bool exited_early(const network_info& net) const noexcept { return head + 1 < net.heads; }
};

/// The owning, compact summary of one sample's exit (no views): what metrics and replay keep.
struct sample_outcome {
    std::size_t predicted = 0;
    std::size_t head = 0;
    std::size_t positions_run = 0;
    std::size_t heads_evaluated = 0;
    double seconds = 0;
    double macs = 0;
    std::optional<std::size_t> frequency_level{};
    std::optional<double> energy_joules{};
    bool deadline_missed = false;

    friend bool operator==(const sample_outcome&, const sample_outcome&) = default;
};

/// The outcome of a result.
template <std::floating_point Scalar>
[[nodiscard]] sample_outcome outcome_of(const exit_result<Scalar>& r) noexcept {
    return {r.predicted, r.head, r.positions_run, r.heads_evaluated, r.seconds, r.macs, r.frequency_level,
            r.energy_joules, r.deadline_missed};
}

/// One evaluated head of an episode: a small value (no views), safe to copy and keep.
/// Only heads the runner actually evaluated get a step; heads skipped through first_check /
/// next_check have none, and their cost is in no step's elapsed_macs.
template <std::floating_point Scalar>
struct episode_step {
    std::size_t head = 0;        ///< exit index k of the evaluated head
    std::size_t position = 0;    ///< stage position that head is attached to
    confidence<Scalar> measures; ///< the measures of this head's logits (as decide() saw them)
    /// Clock time from the start of the sample until this head's output was measured: the
    /// stages run so far and every evaluated head up to and including this one (on a
    /// simulated_clock, their declared MACs / rate plus the overhead per stage and head).
    /// Non-decreasing along the steps.
    double elapsed_seconds = 0;
    /// Declared cost so far, this head included: the stage MACs of positions 0..position plus
    /// the head MACs of every head evaluated up to and including this one (skipped heads cost
    /// nothing). The last step's value equals the result's macs.
    double elapsed_macs = 0;
    /// The decision taken at this head: proceed for every step but the last, stop for the last.
    /// The final head always records stop, without decide() being asked there.
    decision taken = decision::proceed;
    /// The frequency level in force while the stages up to this head and the head itself ran
    /// (npos when neither the clock nor the policy named one).
    std::size_t level = npos;
};

/// A finished sample as learning policies see it in update() (and observers in on_exit()): the
/// heads evaluated in order (the last one is where it exited), the sample info (label included
/// when known) and the result.
///
/// Lifetime: an episode is a *view*, not a record. `steps` spans the runner's step buffer,
/// `result` points to the runner's result of this run (whose logits/probs view the runner's
/// buffers in turn), `network` points to the runner's copy of the network's shape, and `sample`
/// is the caller's sample_info passed to run(). All of them are valid only during the update()
/// or on_exit() call that receives the episode: the next run overwrites the steps, the result
/// is gone once run() returns, and the sample_info may be a temporary. A policy that needs any
/// of it later (for example to learn once a label is fed back after the sample was served)
/// must copy what it needs into a record it owns (the episode_step values, the sample index,
/// outcome_of(*result)) and must never keep the span or the pointers.
template <std::floating_point Scalar>
struct episode {
    std::span<const episode_step<Scalar>> steps;    ///< evaluated heads in order; runner's buffer
    const sample_info* sample = nullptr;            ///< the caller's sample_info (never null in a runner)
    const exit_result<Scalar>* result = nullptr;    ///< this run's result (never null in a runner)
    const network_info* network = nullptr;          ///< the network's shape (never null in a runner)
};

}  // namespace earlyexit
