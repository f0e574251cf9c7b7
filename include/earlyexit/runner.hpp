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
// hardware clock) is put back to its default level when the sample exits, unless the clock keeps
// its level between samples (between_samples::keep_level: the next sample starts at the level
// in force, and a policy asking for it again costs no switch). Deadlines
// (sample_info::deadline_seconds) reach the policy as the time left in both contexts. A sample
// with a deadline occupies its period: when it finishes early, a clock that can idle
// (clock.idle(s)) waits out the rest of the deadline, and a clock that measures energy gives
// each result the energy of its whole period (active work, switches, then the slack at idle
// power); the result's seconds are the busy time, which is what a deadline miss is about.
//
// Hot path: run() allocates nothing (all buffers are sized at construction) and throws only
// on a bad argument checked before any work (a label out of range, or a policy that needs a
// label given none). One runner per thread; many runners can share one network.

#include <algorithm>
#include <cmath>
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

namespace detail {

/// Where one sample stands in a run: the per-sample half of the decision loop (the head checked
/// next, patience streak, previous top-1, declared cost, recorded steps, last level asked for),
/// shared by basic_runner (one sample) and batch_runner (one per row), so that the two make the
/// same calls with the same contexts and cannot drift apart. The runners own the rest: stages,
/// heads, the clock and the order in which they drive cursors.
template <std::floating_point Scalar>
struct sample_cursor {
    const sample_info* sample = nullptr;
    std::size_t next = 0;                  ///< the head evaluated next (the exit head once stopped)
    std::size_t evaluated = 0;             ///< heads evaluated so far
    std::size_t streak = 0;                ///< patience: evaluated heads in a row with this top-1
    std::size_t previous_top1 = npos;
    std::size_t steps = 0;                 ///< episode steps recorded
    double macs = 0;                       ///< declared cost so far
    std::optional<std::size_t> asked{};    ///< the last level the policy asked for
    std::optional<std::size_t> request{};  ///< the answer of the latest frequency() call (none: no wish)
    confidence<Scalar> measures{};         ///< of the head evaluated last

    /// The sample starts: begin(), then first_check() (clamped to the final head).
    template <class Policy>
    void start(Policy& p, const sample_info& s, const network_info& info) noexcept {
        *this = sample_cursor{};
        sample = &s;
        hooks::begin(p, s);
        next = std::min(hooks::first_check(p, s), info.heads - 1);
    }

    /// Head `next` has written `logits` (probs: its softmax buffer, filled here): counts the
    /// head, measures it, updates patience and returns the context decide() sees.
    [[nodiscard]] exit_context<Scalar> evaluated_head(std::span<const Scalar> logits, std::span<Scalar> probs,
                                                      double elapsed_seconds, std::size_t level,
                                                      const network_info& info) noexcept {
        macs += info.head_macs[next];
        ++evaluated;
        measures = measure(logits, probs);
        streak = !measures.valid ? 0 : (measures.top1 == previous_top1 ? streak + 1 : 1);
        previous_top1 = measures.valid ? measures.top1 : npos;
        return exit_context<Scalar>{next,     info.head_positions[next], logits,
                                    probs,    measures,                  streak,
                                    evaluated, elapsed_seconds,          macs,
                                    &info,    sample->deadline_seconds,  level,
                                    sample};
    }

    /// decide() (the final head always stops, unasked), recorded as the next episode step.
    template <class Policy>
    decision decide(Policy& p, const exit_context<Scalar>& c, std::span<episode_step<Scalar>> step_buffer) noexcept {
        const decision d = c.head + 1 == c.network->heads ? decision::stop : p.decide(c);
        step_buffer[steps++] = episode_step<Scalar>{c.head, c.position, c.measures, c.elapsed_seconds, macs, d, c.level};
        return d;
    }

    /// A batched runner's row meets head `next`: its logits (`row`, in the batch's head output)
    /// are copied into `logits` (a buffer of their own, as basic_runner's: the vectorized sums in
    /// measure() depend on where the data sits, and so would the last bit of a measure read in
    /// place), measured into `probs`, shown to the observer and decided. `ctx` is the context
    /// (valid while the buffers are).
    template <class Policy, class Observer>
    decision meet_head(Policy& p, Observer& observer, std::span<const Scalar> row, std::span<Scalar> logits,
                       std::span<Scalar> probs, double elapsed_seconds, std::size_t level, const network_info& info,
                       std::span<episode_step<Scalar>> step_buffer, exit_context<Scalar>& ctx) noexcept {
        std::copy(row.begin(), row.end(), logits.begin());
        ctx = evaluated_head(logits, probs, elapsed_seconds, level, info);
        observe_head(observer, ctx);
        return decide(p, ctx, step_buffer);
    }

    /// After a proceed in a batch: next_check(), then frequency() for the stages from `pos` on
    /// with `rows` rows running.
    template <class Policy>
    void proceed(Policy& p, const exit_context<Scalar>& ctx, std::size_t pos, double elapsed_seconds, std::size_t level,
                 const network_info& info, std::size_t rows) noexcept {
        advance(p, ctx);
        (void)ask_frequency(p, frequency_at(pos, elapsed_seconds, level, &ctx, info, rows));
    }

    /// After a proceed: next_check(). A policy cannot go backwards or stay: anything <= the
    /// head means the next head, anything past the end means the final head.
    template <class Policy>
    void advance(Policy& p, const exit_context<Scalar>& c) noexcept {
        next = std::min(std::max(hooks::next_check(p, c), c.head + 1), c.network->heads - 1);
    }

    /// What frequency() sees before the stages from `stages_run` on (at: the head just
    /// evaluated, null at the start).
    [[nodiscard]] frequency_context<Scalar> frequency_at(std::size_t stages_run, double elapsed_seconds,
                                                         std::size_t level, const exit_context<Scalar>* at,
                                                         const network_info& info,
                                                         std::size_t batch_rows = 1) const noexcept {
        return frequency_context<Scalar>{next,  stages_run, elapsed_seconds, macs,   sample->deadline_seconds,
                                         level, at,         &info,           sample, batch_rows};
    }

    /// frequency(); an answer is remembered as the level asked for.
    template <class Policy>
    std::optional<std::size_t> ask_frequency(Policy& p, const frequency_context<Scalar>& f) noexcept {
        const auto l = hooks::frequency(p, f);
        request = l;
        if (l) asked = l;
        return l;
    }

    /// The result of the sample, stopped at head `next` (logits and probs: that head's).
    [[nodiscard]] exit_result<Scalar> result(double seconds, std::span<const Scalar> logits,
                                             std::span<const Scalar> probs, const network_info& info) const noexcept {
        exit_result<Scalar> r;
        r.predicted = measures.top1;
        r.head = next;
        r.position = info.head_positions[next];
        r.positions_run = r.position + 1;
        r.heads_evaluated = evaluated;
        r.seconds = seconds;
        r.macs = macs;
        r.measures = measures;
        r.logits = logits;
        r.probs = probs;
        r.frequency_level = asked;
        r.deadline_missed = sample->deadline_seconds && seconds > *sample->deadline_seconds;
        return r;
    }

    /// The finished sample as update() and on_exit() see it (steps: the buffer decide() filled).
    [[nodiscard]] episode<Scalar> episode_of(std::span<const episode_step<Scalar>> step_buffer,
                                             const exit_result<Scalar>& r, const network_info& info) const noexcept {
        return episode<Scalar>{step_buffer.first(steps), sample, &r, &info};
    }
};

/// The argument checks run() makes on one sample (basic_runner and batch_runner share them).
template <class Policy>
void check_sample_args(const sample_info& sample, const network_info& info, const Policy& policy) {
    if (sample.label && *sample.label >= info.classes)
        earlyexit::fail("sample {}: label {} is out of range [0, {})", sample.index, *sample.label, info.classes);
    if (!sample.label && hooks::needs_label(policy))
        earlyexit::fail("sample {}: the policy needs a label (evaluation only) and none was given", sample.index);
    if (!valid_deadline(sample.deadline_seconds))
        earlyexit::fail("sample {}: deadline {} s must be finite and > 0 seconds", sample.index, *sample.deadline_seconds);
}


/// Puts a clock that knows levels back to its default level when a sample (or batch) exits
/// (no-op when it is there already, or when the clock keeps its level between samples).
template <class Clock>
void restore_default_level(Clock& clock) noexcept {
    if constexpr (clock_with_levels<Clock>)
        if (!clock_keeps_level(clock) && clock.level() != clock.default_level())
            clock_set_level(clock, clock.default_level());
}

}  // namespace detail

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
    /// Refused: a runner only views its network, and a temporary would dangle.
    basic_runner(const Network&&, Policy, Clock = Clock{}, Observer = Observer{}) {
        static_assert(detail::dependent_false<Network>,
                      "basic_runner: the network is a temporary and would dangle (a runner only views its network, "
                      "which must outlive it); name it first: const auto net = ...build(); basic_runner r(net, policy);");
    }

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
        detail::sample_cursor<scalar_type> c;
        c.start(policy_, sample, info_);
        const double t0 = clock_.now();
        const double e0 = energy_now();
        std::size_t pos = 0;

        // The level for the stages up to the first head checked.
        ask_frequency(c, c.frequency_at(pos, clock_.now() - t0, level_in_force(c.asked), nullptr, info_));
        for (;;) {
            const std::size_t k = c.next;
            for (const std::size_t target = info_.head_positions[k]; pos <= target; ++pos) run_stage(pos, state, c.macs);

            net_->run_head(k, state, std::span<scalar_type>(logits_), std::span<scalar_type>(workspace_));
            detail::clock_on_work(clock_, info_.head_macs[k]);
            const exit_context<scalar_type> ctx =
                c.evaluated_head(logits_, probs_, clock_.now() - t0, level_in_force(c.asked), info_);
            detail::observe_head(observer_, ctx);
            if (c.decide(policy_, ctx, steps_) == decision::stop) break;

            c.advance(policy_, ctx);
            // The level for the stages up to that head, knowing which head it is.
            ask_frequency(c, c.frequency_at(pos, clock_.now() - t0, ctx.level, &ctx, info_));
        }

        result_type r = c.result(clock_.now() - t0, logits_, probs_, info_);
        // The sample is over: back to the clock's default level unless the clock keeps it (the
        // switch is not in the sample's time, but its energy is in the sample's energy), then
        // the rest of the period idle (its energy too).
        detail::restore_default_level(clock_);
        detail::clock_idle_to_deadline(clock_, sample.deadline_seconds, clock_.now() - t0);
        if constexpr (detail::clock_with_energy<Clock>) r.energy_joules = energy_now() - e0;

        const episode<scalar_type> ep = c.episode_of(steps_, r, info_);
        hooks::update(policy_, ep);
        detail::observe_exit(observer_, r, ep);
        return r;
    }

    /// Validates a sample's arguments exactly as run() does (earlyexit::error on failure).
    void check_sample(const sample_info& sample) const { detail::check_sample_args(sample, info_, policy_); }

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
        return detail::clock_level_in_force(clock_, asked, npos);
    }
    [[nodiscard]] double energy_now() const noexcept { return detail::clock_energy(clock_); }
    void ask_frequency(detail::sample_cursor<scalar_type>& c, const frequency_context<scalar_type>& f) noexcept {
        if (const auto l = c.ask_frequency(policy_, f)) detail::clock_set_level(clock_, *l);
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
/// Refused at compile time: make_runner on a temporary network (it would dangle).
template <class Network, class Policy, class... Rest>
    requires(!std::is_lvalue_reference_v<Network>)
auto make_runner(Network&&, Policy, Rest&&...) {
    static_assert(detail::dependent_false<Network>,
                  "make_runner: the network is a temporary and would dangle (a runner only views its network, which "
                  "must outlive it); name it first: const auto net = ...build(); auto r = make_runner(net, policy);");
    return detail::refused_temporary_network{};
}

}  // namespace earlyexit
