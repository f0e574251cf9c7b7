#pragma once
// What a run returns: the exit result of one sample and its episode (the heads it visited),
// which learning policies receive through update().

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

    friend bool operator==(const sample_outcome&, const sample_outcome&) = default;
};

/// The outcome of a result.
template <std::floating_point Scalar>
[[nodiscard]] sample_outcome outcome_of(const exit_result<Scalar>& r) noexcept {
    return {r.predicted, r.head, r.positions_run, r.heads_evaluated, r.seconds, r.macs, r.frequency_level};
}

/// One evaluated head of an episode.
template <std::floating_point Scalar>
struct episode_step {
    std::size_t head = 0;
    std::size_t position = 0;
    confidence<Scalar> measures;
    double elapsed_seconds = 0;
    double elapsed_macs = 0;
    decision taken = decision::proceed;  ///< the final head always records stop
};

/// A finished sample as learning policies see it in update(): the heads visited in order (the
/// last one is where it exited), the sample info (label included when known) and the result.
template <std::floating_point Scalar>
struct episode {
    std::span<const episode_step<Scalar>> steps;
    const sample_info* sample = nullptr;
    const exit_result<Scalar>* result = nullptr;
    const network_info* network = nullptr;
};

}  // namespace earlyexit
