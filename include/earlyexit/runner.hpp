#pragma once
// basic_runner: runs one sample through a multi-exit network under an exit policy.
//
// Per sample: stages run in order; at the heads the policy asks for (first_check /
// next_check, every head by default) the runner evaluates the head, measures its logits and
// asks decide(). On stop, the remaining stages are not run at all. The final head always
// stops. The result reports the class, the exit, the stages and heads actually run, the time
// on the clock and the declared cost; learning policies then get the episode via update().
//
// Frequency: the policy's frequency() hook is asked for a level when the sample starts (after
// first_check) and after every proceed (after next_check, so it knows the head checked next);
// the level goes to the clock (set_level). A clock that knows levels (dvfs::model_clock, a
// hardware clock) is put back to its default level when the sample exits, and a clock that
// measures energy gives each result its energy. Deadlines (sample_info::deadline_seconds) reach
// the policy as the time left in both contexts.
//
// Hot path: run() allocates nothing (all buffers are sized at construction) and throws only
// on a bad argument checked before any work (a label out of range, or a policy that needs a
// label given none). One runner per thread; many runners can share one network.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "confidence.hpp"
#include "context.hpp"
#include "error.hpp"
#include "observer.hpp"
#include "policy/concepts.hpp"
#include "result.hpp"

namespace earlyexit {

/// What the runner needs of a network (multi_exit_network models it; so can your own type).
template <class N>
concept runnable_network = requires(const N& n, typename N::state_type& s, std::size_t i,
                                    std::span<typename N::scalar_type> out) {
    typename N::state_type;
    typename N::scalar_type;
    { n.info() } noexcept -> std::same_as<network_info>;
    { n.workspace_size() } -> std::convertible_to<std::size_t>;
    n.run_stage(i, s);
    n.run_head(i, s, out, out);
};

/// Network: a runnable_network (not owned: it must outlive the runner).
/// Policy: an exit_policy for the network's scalar (owned, a value; reach it with policy()).
/// Clock: wall_clock (real time) or simulated_clock (deterministic), or any runner_clock.
/// Observer: no_observer, or a tap with on_stage / on_head / on_exit (see observer.hpp).
template <runnable_network Network, class Policy, runner_clock Clock = wall_clock, class Observer = no_observer>
    requires exit_policy<Policy, typename Network::scalar_type>
class basic_runner {
    // Every hook the policy names must have the right signature, including those (reset,
    // merge) this class never calls: a mis-typed hook is a compile error, never ignored.
    static_assert(hooks::check<Policy, typename Network::scalar_type>());

public:
    using network_type = Network;
    using policy_type = Policy;
    using scalar_type = typename Network::scalar_type;
    using state_type = typename Network::state_type;
    using result_type = exit_result<scalar_type>;

    /// Binds the policy to the network (policy.prepare(), which may throw earlyexit::error) and
    /// allocates every buffer a run needs.
    basic_runner(const Network& network, Policy policy, Clock clock = Clock{}, Observer observer = Observer{})
        : net_(&network),
          info_(network.info()),
          policy_(std::move(policy)),
          clock_(std::move(clock)),
          observer_(std::move(observer)),
          logits_(info_.classes),
          probs_(info_.classes),
          workspace_(network.workspace_size()),
          steps_(info_.heads) {
        hooks::prepare(policy_, info_);
    }
    /// A runner only views its network: a temporary would dangle.
    basic_runner(const Network&&, Policy, Clock = Clock{}, Observer = Observer{}) = delete;

    // The info_ spans point into *net_, not into this object, so copies stay valid.
    basic_runner(const basic_runner&) = default;
    basic_runner(basic_runner&&) noexcept = default;
    basic_runner& operator=(const basic_runner&) = default;
    basic_runner& operator=(basic_runner&&) noexcept = default;
    ~basic_runner() = default;

    /// Runs one sample whose input the caller has put in `state` (stages transform it in place).
    /// The result's logits/probs view this runner's buffers until the next run.
    result_type run(state_type& state, const sample_info& sample = {}) {
        check_sample(sample);
        return run_unchecked(state, sample);
    }

    /// run() without the argument checks; the caller guarantees them (a label < classes when
    /// given, and a label whenever the policy needs one). Never throws, never allocates.
    result_type run_unchecked(state_type& state, const sample_info& sample) noexcept {
        const std::size_t last = info_.heads - 1;
        hooks::begin(policy_, sample);
        std::size_t k = std::min(hooks::first_check(policy_, sample), last);

        const double t0 = clock_.now();
        const double e0 = energy_now();
        double macs = 0.0;
        std::size_t pos = 0;
        std::size_t evaluated = 0;
        std::size_t streak = 0;
        std::size_t previous_top1 = npos;
        std::size_t n_steps = 0;
        std::optional<std::size_t> level;  // the last level the policy asked for
        confidence<scalar_type> m;

        // The level for the stages up to the first head checked.
        ask_frequency(frequency_context<scalar_type>{k, pos, clock_.now() - t0, macs, sample.deadline_seconds,
                                                     level_in_force(level), nullptr, &info_},
                      level);
        for (;;) {
            const std::size_t target = info_.head_positions[k];
            for (; pos <= target; ++pos) run_stage(pos, state, macs);

            net_->run_head(k, state, std::span<scalar_type>(logits_), std::span<scalar_type>(workspace_));
            macs += info_.head_macs[k];
            detail::clock_on_work(clock_, info_.head_macs[k]);
            ++evaluated;

            m = measure(logits_, probs_);
            streak = !m.valid ? 0 : (m.top1 == previous_top1 ? streak + 1 : 1);
            previous_top1 = m.valid ? m.top1 : npos;

            const exit_context<scalar_type> ctx{k,         info_.head_positions[k], logits_, probs_, m, streak,
                                                evaluated, clock_.now() - t0,     macs,    &info_,
                                                sample.deadline_seconds, level_in_force(level)};
            detail::observe_head(observer_, ctx);
            const decision d = (k == last) ? decision::stop : policy_.decide(ctx);
            steps_[n_steps++] =
                episode_step<scalar_type>{k, ctx.position, m, ctx.elapsed_seconds, macs, d, ctx.level};
            if (d == decision::stop) break;

            const std::size_t next = hooks::next_check(policy_, ctx);
            // A policy cannot go backwards or stay: anything <= k means the next head, anything
            // past the end means the final head.
            k = std::min(std::max(next, k + 1), last);
            // The level for the stages up to that head, knowing which head it is.
            ask_frequency(frequency_context<scalar_type>{k, pos, clock_.now() - t0, macs, sample.deadline_seconds,
                                                         ctx.level, &ctx, &info_},
                          level);
        }

        const std::size_t exit_pos = info_.head_positions[k];
        result_type r;
        r.predicted = m.top1;
        r.head = k;
        r.position = exit_pos;
        r.positions_run = exit_pos + 1;
        r.heads_evaluated = evaluated;
        r.seconds = clock_.now() - t0;
        r.macs = macs;
        r.measures = m;
        r.logits = logits_;
        r.probs = probs_;
        r.frequency_level = level;
        // The sample is over: back to the clock's default level (the switch is not in the
        // sample's time, but its energy is in the sample's energy).
        if constexpr (detail::clock_with_levels<Clock>)
            if (clock_.level() != clock_.default_level()) detail::clock_set_level(clock_, clock_.default_level());
        if constexpr (detail::clock_with_energy<Clock>) r.energy_joules = energy_now() - e0;

        const episode<scalar_type> ep{std::span<const episode_step<scalar_type>>(steps_.data(), n_steps), &sample, &r,
                                      &info_};
        hooks::update(policy_, ep);
        detail::observe_exit(observer_, r, ep);
        return r;
    }

    /// Validates a sample's arguments exactly as run() does (earlyexit::error on failure).
    void check_sample(const sample_info& sample) const {
        if (sample.label && *sample.label >= info_.classes)
            earlyexit::fail("sample {}: label {} is out of range [0, {})", sample.index, *sample.label, info_.classes);
        if (!sample.label && hooks::needs_label(policy_))
            earlyexit::fail("sample {}: the policy needs a label (evaluation only) and none was given", sample.index);
    }

    [[nodiscard]] const Network& network() const noexcept { return *net_; }
    [[nodiscard]] const network_info& info() const noexcept { return info_; }
    [[nodiscard]] Policy& policy() noexcept { return policy_; }
    [[nodiscard]] const Policy& policy() const noexcept { return policy_; }
    [[nodiscard]] Clock& clock() noexcept { return clock_; }
    [[nodiscard]] Observer& observer() noexcept { return observer_; }
    [[nodiscard]] const Observer& observer() const noexcept { return observer_; }

private:
    /// The level in force: the clock's when it knows levels, else the last one asked for.
    [[nodiscard]] std::size_t level_in_force(const std::optional<std::size_t>& asked) const noexcept {
        if constexpr (detail::clock_with_levels<Clock>) return static_cast<std::size_t>(clock_.level());
        else return asked ? *asked : npos;
    }
    [[nodiscard]] double energy_now() const noexcept {
        if constexpr (detail::clock_with_energy<Clock>) return static_cast<double>(clock_.energy_joules());
        else return 0.0;
    }
    void ask_frequency(const frequency_context<scalar_type>& f, std::optional<std::size_t>& level) noexcept {
        if (const auto l = hooks::frequency(policy_, f)) {
            level = l;
            detail::clock_set_level(clock_, *l);
        }
    }

    void run_stage(std::size_t pos, state_type& state, double& macs) noexcept {
        const double stage_macs = info_.stage_macs[pos];
        if constexpr (detail::observes_stages<Observer>) {
            const double t = clock_.now();
            net_->run_stage(pos, state);
            detail::clock_on_work(clock_, stage_macs);
            observer_.on_stage(pos, clock_.now() - t, stage_macs);
        } else {
            net_->run_stage(pos, state);
            detail::clock_on_work(clock_, stage_macs);
        }
        macs += stage_macs;
    }

    const Network* net_;
    network_info info_;
    Policy policy_;
    Clock clock_;
    Observer observer_;
    std::vector<scalar_type> logits_;
    std::vector<scalar_type> probs_;
    std::vector<scalar_type> workspace_;
    std::vector<episode_step<scalar_type>> steps_;
};

/// make_runner(network, policy[, clock[, observer]]): a basic_runner with deduced types.
template <class Network, class Policy, class Clock = wall_clock, class Observer = no_observer>
[[nodiscard]] auto make_runner(const Network& network, Policy policy, Clock clock = Clock{},
                               Observer observer = Observer{}) {
    return basic_runner<Network, Policy, Clock, Observer>(network, std::move(policy), std::move(clock),
                                                          std::move(observer));
}

}  // namespace earlyexit
