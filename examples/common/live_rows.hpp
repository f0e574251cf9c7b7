#pragma once
// The demos' rows: each policy replayed on the recorded trace and run live on the network, the
// live measurements reported with replay_matches_live set (steps 3 and 4 of run_demo(), and the
// DVFS rows on a model clock).

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include <earlyexit/earlyexit.hpp>
#include <fmt/core.h>

namespace earlyexit::demo {

/// For each policy: replayed on the recorded trace `test` and run live on the network, each run
/// from its own copy of the policy (the given ones stay as they are); the rows are the live
/// measurements, with replay_matches_live set. prepare(i, state) puts sample i into the state
/// and returns its label (the trace's). When live_outcomes is given, it receives each policy's
/// live outcomes, in the same order. The live runs are timed on `clock` (a deterministic one is
/// also the replay's, see check_live_against_replay); `deadline`, when given, is every
/// sample's, and the rows then report the miss rate.
template <class Network, class Prepare, class Clock = wall_clock>
[[nodiscard]] std::vector<policy_metrics> run_live_and_replayed(const Network& net, typename Network::state_type& state,
                                                                const trace& test,
                                                                const std::vector<named_policy<float>>& policies,
                                                                Prepare&& prepare,
                                                                std::vector<std::vector<sample_outcome>>* live_outcomes = nullptr,
                                                                const Clock& clock = Clock{},
                                                                std::optional<double> deadline = std::nullopt) {
    std::vector<policy_metrics> rows;
    rows.reserve(policies.size());
    for (const auto& p : policies) {
        progress_line live(fmt::format("live {}", p.name), test.size());
        const auto check = check_live_against_replay(net, state, test, p.policy, prepare, clock,
                                                     [&](std::size_t i) { live.tick(i + 1); }, deadline);
        live.finish();
        auto row = summarize(p.name, check.live, [&](std::size_t i) { return test.label(i); }, net.info(), deadline);
        row.replay_matches_live = check.matches;
        rows.push_back(std::move(row));
        if (live_outcomes != nullptr) live_outcomes->push_back(check.live);
    }
    return rows;
}

}  // namespace earlyexit::demo
