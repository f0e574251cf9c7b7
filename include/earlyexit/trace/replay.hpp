#pragma once
// Replay: evaluate a policy on a recorded trace exactly as it would have run live.
//
// replay_network is a network whose stages do no work and whose heads copy the recorded logits;
// the ordinary basic_runner drives it, so decisions, heads evaluated, declared cost and the
// order of learning updates are the live ones by construction (tests check this bit for bit).
// Time comes from the trace: stage and head times recorded live are charged on a replay clock,
// so time-aware policies see the recorded latencies. Or from a clock you give (replay(t, policy,
// clock)): a deterministic clock advanced by the declared costs (simulated_clock,
// dvfs::model_clock) then times, levels and energy exactly as it does live.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "../context.hpp"
#include "../policy/concepts.hpp"
#include "../result.hpp"
#include "../runner.hpp"
#include "trace.hpp"

namespace earlyexit {

/// The replay state: which sample, and the replay clock to charge recorded times to.
struct replay_state {
    std::size_t sample = 0;
    double* time = nullptr;
};

/// A runnable_network over a trace (which must outlive it).
template <std::floating_point Scalar>
class replay_network {
public:
    using state_type = replay_state;
    using scalar_type = Scalar;

    explicit replay_network(const basic_trace<Scalar>& t) : trace_(&t) {}
    explicit replay_network(const basic_trace<Scalar>&&) = delete;

    [[nodiscard]] network_info info() const noexcept { return trace_->info(); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return 0; }

    void run_stage(std::size_t p, replay_state& s) const noexcept { *s.time += trace_->stage_seconds(s.sample)[p]; }

    void run_head(std::size_t k, const replay_state& s, std::span<Scalar> logits, std::span<Scalar>) const noexcept {
        const auto z = trace_->logits(s.sample, k);
        std::copy(z.begin(), z.end(), logits.begin());
        *s.time += trace_->head_seconds(s.sample)[k];
    }

    [[nodiscard]] const basic_trace<Scalar>& trace() const noexcept { return *trace_; }

private:
    const basic_trace<Scalar>* trace_;
};

/// The clock of a replay: reads the time the replay network charges.
struct replay_clock {
    const double* time = nullptr;
    [[nodiscard]] double now() const noexcept { return *time; }
};

/// Replays one policy over a trace, sample by sample (in order, so learning policies update as
/// they would live). Not copyable or movable: its runner points into it. With Clock =
/// replay_clock (the default) time is the trace's recorded time; with another clock, that clock
/// runs as it would live (advanced by the declared cost of each stage and head it is told of).
template <std::floating_point Scalar, class Policy, runner_clock Clock = replay_clock>
    requires exit_policy<Policy, Scalar>
class replayer {
public:
    replayer(const basic_trace<Scalar>& t, Policy policy)
        requires std::same_as<Clock, replay_clock>
        : net_(t), time_(std::make_unique<double>(0.0)), runner_(net_, std::move(policy), replay_clock{time_.get()}) {}
    replayer(const basic_trace<Scalar>& t, Policy policy, Clock clock)
        requires(!std::same_as<Clock, replay_clock>)
        : net_(t), time_(std::make_unique<double>(0.0)), runner_(net_, std::move(policy), std::move(clock)) {}
    replayer(const basic_trace<Scalar>&&, Policy) = delete;
    replayer(const basic_trace<Scalar>&&, Policy, Clock) = delete;
    replayer(const replayer&) = delete;
    replayer& operator=(const replayer&) = delete;

    /// Runs sample i of the trace (its label, if any, goes to the policy's sample_info).
    exit_result<Scalar> run(std::size_t i) {
        *time_ = 0.0;
        replay_state s{i, time_.get()};
        return runner_.run(s, sample_info{i, net_.trace().label(i), deadline_});
    }

    /// Every sample replayed from now on has this deadline (seconds from its start), or none.
    /// Throws earlyexit::error on a deadline that is not finite and > 0.
    void set_deadline(std::optional<double> seconds) {
        check_deadline(seconds, "replay: deadline");
        deadline_ = seconds;
    }

    /// Runs every sample in order; returns their outcomes.
    std::vector<sample_outcome> run_all() {
        std::vector<sample_outcome> out;
        out.reserve(net_.trace().size());
        for (std::size_t i = 0; i < net_.trace().size(); ++i) out.push_back(outcome_of(run(i)));
        return out;
    }

    [[nodiscard]] Policy& policy() noexcept { return runner_.policy(); }
    [[nodiscard]] Clock& clock() noexcept { return runner_.clock(); }
    [[nodiscard]] const network_info& info() const noexcept { return runner_.info(); }

private:
    replay_network<Scalar> net_;
    std::unique_ptr<double> time_;
    basic_runner<replay_network<Scalar>, Policy, Clock> runner_;
    std::optional<double> deadline_;
};

namespace detail {

template <class R, class Policy>
[[nodiscard]] std::vector<sample_outcome> run_all_into(R& r, Policy& policy) {
    std::vector<sample_outcome> out;
    try {
        out = r.run_all();
    } catch (...) {
        policy = std::move(r.policy());
        throw;
    }
    policy = std::move(r.policy());
    return out;
}

}  // namespace detail

/// Replays `policy` over every sample of the trace, in order, and returns the outcomes. The
/// policy is updated in place: a learning policy ends with what it learned on the trace. It is
/// moved in and out, never copied, so a learner's merge base (policy/learning.hpp) is kept.
template <std::floating_point Scalar, class Policy>
    requires exit_policy<Policy, Scalar>
[[nodiscard]] std::vector<sample_outcome> replay(const basic_trace<Scalar>& t, Policy& policy) {
    replayer<Scalar, Policy> r(t, std::move(policy));
    return detail::run_all_into(r, policy);
}

/// The same on a clock of yours (a copy of `clock` runs): times, levels and energy are then that
/// clock's, exactly as in a live run on it. `deadline` (seconds), when given, is every sample's.
template <std::floating_point Scalar, class Policy, runner_clock Clock>
    requires exit_policy<Policy, Scalar> && (!std::same_as<Clock, replay_clock>)
[[nodiscard]] std::vector<sample_outcome> replay(const basic_trace<Scalar>& t, Policy& policy, Clock clock,
                                                 std::optional<double> deadline = std::nullopt) {
    replayer<Scalar, Policy, Clock> r(t, std::move(policy), std::move(clock));
    r.set_deadline(deadline);
    return detail::run_all_into(r, policy);
}

/// replay(t, policy, clock) for a policy passed by value (its learned state is dropped).
template <std::floating_point Scalar, class Policy, runner_clock Clock>
    requires exit_policy<std::remove_cvref_t<Policy>, Scalar> && (!std::is_lvalue_reference_v<Policy>) &&
             (!std::same_as<Clock, replay_clock>)
[[nodiscard]] std::vector<sample_outcome> replay(const basic_trace<Scalar>& t, Policy&& policy, Clock clock,
                                                 std::optional<double> deadline = std::nullopt) {
    std::remove_cvref_t<Policy> p(std::move(policy));
    return replay(t, p, std::move(clock), deadline);
}

/// The same for a policy passed by value (its learned state is dropped).
template <std::floating_point Scalar, class Policy>
    requires exit_policy<std::remove_cvref_t<Policy>, Scalar> && (!std::is_lvalue_reference_v<Policy>)
[[nodiscard]] std::vector<sample_outcome> replay(const basic_trace<Scalar>& t, Policy&& policy) {
    std::remove_cvref_t<Policy> p(std::move(policy));
    return replay(t, p);
}

/// True when two runs over the same samples made the same decisions: same exit head, heads
/// evaluated, stages run, predicted class, declared cost, frequency level and energy (both
/// unmetered, or metered equal: a model clock is deterministic), sample by sample. Times may
/// differ (a live wall clock against recorded times). This is what reports call
/// replay_matches_live.
[[nodiscard]] inline bool same_decisions(std::span<const sample_outcome> a, std::span<const sample_outcome> b) noexcept {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const sample_outcome& x, const sample_outcome& y) {
        return x.head == y.head && x.heads_evaluated == y.heads_evaluated && x.positions_run == y.positions_run &&
               x.predicted == y.predicted && x.macs == y.macs && x.frequency_level == y.frequency_level &&
               x.energy_joules == y.energy_joules;
    });
}

}  // namespace earlyexit
