#pragma once
// Live against replay: run a policy live on a network over the samples of a trace recorded by
// that network, replay the same policy on the trace, and compare the decisions sample by
// sample. This is how the demos prove that a replayed figure is the live one.
//
// Both runs start from their own copy of the given policy, which is left untouched: a learning
// policy (one with update()) then learns the same stream twice from the same state, so the two
// runs are comparable; replaying first into the caller's policy and then running live from it
// would start the live run from what the replay learned.

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../clock.hpp"
#include "../context.hpp"
#include "../error.hpp"
#include "../policy/concepts.hpp"
#include "../result.hpp"
#include "../runner.hpp"
#include "replay.hpp"
#include "trace.hpp"

namespace earlyexit {

/// The outcome of a live-against-replay check.
struct live_replay_check {
    std::vector<sample_outcome> live;      ///< the live run's outcomes, in sample order
    std::vector<sample_outcome> replayed;  ///< the replay's, in the same order
    /// same_decisions(live, replayed): same exits, heads, stages, predictions, costs, levels.
    bool matches = false;
    /// The first sample whose decisions differ (npos when they match).
    std::size_t first_mismatch = npos;
};

/// Runs `policy` live over the trace's samples and by replay, each from its own copy of
/// `policy` (and of `clock`, when the clock is a deterministic one the replay can run on).
/// fill(i, state) puts sample i's input into the state and returns its label, as for
/// record_trace(); progress(i) is called after each live sample; `deadline` (seconds), when
/// given, is every sample's in both runs. Throws earlyexit::error when the trace was recorded
/// with another layout than the network's, or when fill() gives a sample another label than the
/// trace holds.
template <class Network, class Policy, class Fill, class Clock = wall_clock,
          class Progress = void (*)(std::size_t)>
    requires exit_policy<Policy, typename Network::scalar_type> &&
             std::invocable<Fill&, std::size_t, typename Network::state_type&>
[[nodiscard]] live_replay_check check_live_against_replay(
    const Network& network, typename Network::state_type& state, const basic_trace<typename Network::scalar_type>& t,
    const Policy& policy, Fill&& fill, Clock clock = Clock{}, Progress progress = [](std::size_t) {},
    std::optional<double> deadline = std::nullopt) {
    t.layout().require_same(network.info(), "check_live_against_replay: the trace");
    live_replay_check out;
    // A deterministic clock (one advanced by declared costs) replays as a copy of itself, so its
    // times and energy must match too; any other clock replays on the recorded times.
    if constexpr (detail::clock_with_work<Clock>) {
        out.replayed = replay(t, Policy(policy), clock, deadline);
    } else {
        replayer<typename Network::scalar_type, Policy> r(t, Policy(policy));
        r.set_deadline(deadline);
        out.replayed = r.run_all();
    }
    auto runner = make_runner(network, Policy(policy), std::move(clock));
    out.live.reserve(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) {
        const std::optional<std::size_t> label = fill(i, state);
        if (label != t.label(i))
            fail("check_live_against_replay: sample {} has label {} but the trace recorded {}", i,
                 label ? static_cast<long long>(*label) : -1LL,
                 t.label(i) ? static_cast<long long>(*t.label(i)) : -1LL);
        out.live.push_back(outcome_of(runner.run(state, sample_info{i, label, deadline})));
        progress(i);
    }
    for (std::size_t i = 0; i < t.size() && out.first_mismatch == npos; ++i)
        if (!same_decisions(std::span(out.live).subspan(i, 1), std::span(out.replayed).subspan(i, 1)))
            out.first_mismatch = i;
    out.matches = out.first_mismatch == npos;  // both runs cover every sample of the trace
    return out;
}

}  // namespace earlyexit
