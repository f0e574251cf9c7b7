#pragma once
// batch_runner: runs a batch of samples through a batched_network, each sample exiting on its own.
//
// A batch runs in rounds. Each round runs the stages up to the nearest head some row checks next
// (on every row still running), evaluates that head on the rows that check it, and asks the
// policy about each of them, in input order, with the per-sample cursor basic_runner uses
// (detail::sample_cursor: the same contexts, the same hooks, the same clamping). Rows that stop
// leave; the network's compact() gathers the others into a dense, smaller batch, which goes on.
// Results come back in input order: result i is the sample of samples[i], whatever its row.
//
// Against one-by-one runs (basic_runner over the same network and policy, sample after sample):
// * every decision input is the same (logits, measures, patience, heads checked, declared
//   cost), so class, exit head, stages run, heads evaluated and MACs are equal sample for
//   sample for a policy that does not learn, and for a learning one at batch size 1;
// * a learning policy is updated after the batch, in input order: within a batch every row
//   decides with what the policy knew when the batch began (deterministic, and what a server
//   batching requests can do). Batch size 1 is basic_runner exactly.
// * seconds are the batch's: a sample's time runs from the batch's start to its exit (its
//   latency in the batch). Energy is the batch's, each round's shared equally by the rows that
//   ran in it (so the samples' energies add up to the batch's).
// Policies see which sample a context is about (exit_context::sample, frequency_context::
// sample): the rows' hooks interleave, so per-sample facts must come from there, never from a
// member set in begin() (the shipped policies do so).
//
// Frequency: one level per batch (one core runs the whole batch). Every row is asked at the
// start and after each of its proceeds, exactly as in basic_runner, with batch_rows = the rows
// still running; the batch runs at the highest level the rows still running asked for in their
// latest call (the fastest: a row that asked for less is not slowed below what it asked). A row
// whose latest call gave no answer has no wish and does not count, and rows that left count no
// more; when no running row has a wish the level stays. The clock gets its
// default level back when the batch ends, unless it keeps its level between samples
// (between_samples::keep_level). A batch whose samples all have deadlines occupies a period, the
// shortest of them: when it finishes earlier, a clock that can idle waits out the rest, and that
// idle energy is shared equally by every sample of the batch.
//
// Edge cases: an empty batch returns an empty span and runs nothing; a batch larger than the
// runner's or the state's capacity is an earlyexit::error naming both (run(); run_unchecked()
// requires it); a row whose logits are NaN has invalid measures, on which no shipped policy
// stops, so it runs on to the final head and exits there (measures.valid false), without
// touching the other rows.
//
// Observers: on_head (each row's context) and on_exit (in input order, after the batch) as in
// basic_runner. on_stage is refused at compile time: the stages run for the whole batch, and a
// per-sample tap (trace::recorder) would record wrong times; record traces with basic_runner.
//
// Hot path: run() allocates nothing (every buffer is sized for `capacity` rows at construction)
// and throws only on a bad argument, checked before any work.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "batch_network.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "error.hpp"
#include "observer.hpp"
#include "policy/concepts.hpp"
#include "result.hpp"
#include "runner.hpp"

namespace earlyexit {

/// Work counts of a batch_runner over its runs (since construction or reset_stats()): how many
/// rows each stage and head ran on, which is the batch occupancy the throughput comes from.
struct batch_stats {
    std::size_t batches = 0;
    std::size_t samples = 0;
    std::vector<std::size_t> stage_rows;  ///< rows stage p ran on, summed over the batches
    std::vector<std::size_t> head_rows;   ///< rows head k was evaluated on
    std::vector<std::size_t> stage_calls; ///< batched calls of stage p (one per batch that reached it)

    /// Mean rows per batched call of stage p (0 when it never ran).
    [[nodiscard]] double rows_per_call(std::size_t p) const noexcept {
        return stage_calls[p] == 0 ? 0.0 : static_cast<double>(stage_rows[p]) / static_cast<double>(stage_calls[p]);
    }
    /// Share of the samples that reached stage p.
    [[nodiscard]] double occupancy(std::size_t p) const noexcept {
        return samples == 0 ? 0.0 : static_cast<double>(stage_rows[p]) / static_cast<double>(samples);
    }
    /// Adds another runner's counts (same network). Throws earlyexit::error on another shape.
    batch_stats& operator+=(const batch_stats& o) {
        if (o.stage_rows.size() != stage_rows.size() || o.head_rows.size() != head_rows.size())
            fail("batch_stats: adding counts of {} stages / {} heads to {} / {}", o.stage_rows.size(), o.head_rows.size(),
                 stage_rows.size(), head_rows.size());
        batches += o.batches;
        samples += o.samples;
        for (std::size_t p = 0; p < stage_rows.size(); ++p) {
            stage_rows[p] += o.stage_rows[p];
            stage_calls[p] += o.stage_calls[p];
        }
        for (std::size_t k = 0; k < head_rows.size(); ++k) head_rows[k] += o.head_rows[k];
        return *this;
    }
    void clear() noexcept {
        batches = samples = 0;
        std::fill(stage_rows.begin(), stage_rows.end(), std::size_t{0});
        std::fill(stage_calls.begin(), stage_calls.end(), std::size_t{0});
        std::fill(head_rows.begin(), head_rows.end(), std::size_t{0});
    }
};

/// Network: a batched_network (not owned: it must outlive the runner). Policy, Clock and
/// Observer as for basic_runner (Observer without on_stage).
template <batched_network Network, class Policy, runner_clock Clock = wall_clock, class Observer = no_observer>
    requires exit_policy<Policy, typename Network::scalar_type>
class batch_runner {
    static_assert(hooks::check<Policy, typename Network::scalar_type>());
    static_assert(!detail::observes_stages<Observer>,
                  "batch_runner runs each stage for the whole batch, so an observer's on_stage(position, seconds, "
                  "macs) would get the batch's time as a sample's; record traces with basic_runner");

public:
    using network_type = Network;
    using policy_type = Policy;
    using scalar_type = typename Network::scalar_type;
    using batch_state_type = typename Network::batch_state_type;
    using result_type = exit_result<scalar_type>;

    /// Binds the policy (prepare(), which may throw) and sizes every buffer for batches of up
    /// to `capacity` samples (>= 1).
    batch_runner(const Network& network, Policy policy, std::size_t capacity, Clock clock = Clock{},
                 Observer observer = Observer{})
        : net_(&network), info_(network.info()), policy_(std::move(policy)), clock_(std::move(clock)),
          observer_(std::move(observer)), capacity_(capacity) {
        if (capacity_ == 0) fail("batch_runner: capacity 0; a batch holds at least one sample");
        const std::size_t c = info_.classes;
        cursors_.resize(capacity_);
        row_.resize(capacity_);
        list_.resize(capacity_);
        keep_.resize(capacity_);
        last_round_.resize(capacity_);
        stopped_.resize(capacity_);
        steps_.resize(capacity_ * info_.heads);
        head_logits_.resize(capacity_ * c);
        row_logits_.resize(c);
        row_probs_.resize(c);
        exit_logits_.resize(capacity_ * c);
        exit_probs_.resize(capacity_ * c);
        energy_.resize(capacity_);
        results_.resize(capacity_);
        workspace_.resize(static_cast<std::size_t>(network.batch_workspace_size()));
        stats_.stage_rows.assign(info_.stages, 0);
        stats_.stage_calls.assign(info_.stages, 0);
        stats_.head_rows.assign(info_.heads, 0);
        hooks::prepare(policy_, info_);
    }
    /// Refused: a runner only views its network, and a temporary would dangle.
    batch_runner(const Network&&, Policy, std::size_t, Clock = Clock{}, Observer = Observer{}) {
        static_assert(detail::dependent_false<Network>,
                      "batch_runner: the network is a temporary and would dangle (a runner only views its network, "
                      "which must outlive it); name it first: const rowwise_network batched(net); "
                      "batch_runner r(batched, policy, capacity);");
    }

    /// Runs samples[i] from row i of `state` (the caller has put its input there; stages
    /// transform the rows in place and compaction moves them). The results, in input order,
    /// view this runner's buffers until its next run.
    std::span<const result_type> run(batch_state_type& state, std::span<const sample_info> samples) {
        check_batch(state, samples);
        return run_unchecked(state, samples, no_delivery{});
    }

    /// run(), and each result handed to deliver(i, result) the moment sample i (samples[i]) exits,
    /// in completion order, while the other rows go on: a server answers a client then, not when
    /// the batch's slowest row is done. The result is final but for energy_joules, which is
    /// absent at delivery (the batch's energy is shared out when it ends: the returned results
    /// carry it); the policy's update() still comes after the batch. deliver must be noexcept
    /// (it runs on the hot path) and must not run this runner.
    template <class Deliver>
        requires std::invocable<Deliver&, std::size_t, const exit_result<typename Network::scalar_type>&>
    std::span<const result_type> run(batch_state_type& state, std::span<const sample_info> samples, Deliver&& deliver) {
        check_batch(state, samples);
        return run_unchecked(state, samples, deliver);
    }

    /// run() without the checks; the caller guarantees them. Never throws, never allocates.
    std::span<const result_type> run_unchecked(batch_state_type& state, std::span<const sample_info> samples) noexcept {
        return run_unchecked(state, samples, no_delivery{});
    }

    /// run(state, samples, deliver) without the checks.
    template <class Deliver>
        requires std::invocable<Deliver&, std::size_t, const exit_result<typename Network::scalar_type>&>
    std::span<const result_type> run_unchecked(batch_state_type& state, std::span<const sample_info> samples,
                                               Deliver&& deliver) noexcept {
        static_assert(std::is_nothrow_invocable_v<Deliver&, std::size_t, const result_type&>,
                      "batch_runner::run(state, samples, deliver): deliver(index, result) must be noexcept (it is "
                      "called on the hot path, at each row's exit); declare the lambda noexcept");
        const std::size_t n = samples.size();
        if (n == 0) return {};
        const std::size_t classes = info_.classes;
        for (std::size_t i = 0; i < n; ++i) {
            cursors_[i].start(policy_, samples[i], info_);
            row_[i] = i;
            energy_[i] = 0.0;
        }
        ++stats_.batches;
        stats_.samples += n;
        // The level in force: the clock's (its default, or the level kept from the last batch).
        if constexpr (detail::clock_with_levels<Clock>) batch_level_ = static_cast<std::size_t>(clock_.level());
        else batch_level_.reset();

        const double t0 = clock_.now();
        double e_mark = energy_now();
        std::size_t rows = n, pos = 0;
        // The level for the stages up to each row's first head.
        for (std::size_t r = 0; r < rows; ++r) {
            auto& c = cursors_[row_[r]];
            (void)c.ask_frequency(policy_, c.frequency_at(pos, clock_.now() - t0, level_in_force(), nullptr, info_, rows));
        }
        set_batch_level(rows);

        std::size_t m = 0;  // rows that evaluated the last round's head
        while (rows > 0) {
            std::size_t target = info_.heads - 1;
            for (std::size_t r = 0; r < rows; ++r) target = std::min(target, cursors_[row_[r]].next);
            for (; pos <= info_.head_positions[target]; ++pos) {
                net_->run_batch_stage(pos, state, rows);
                detail::clock_on_work(clock_, info_.stage_macs[pos] * static_cast<double>(rows));
                for (std::size_t r = 0; r < rows; ++r) cursors_[row_[r]].macs += info_.stage_macs[pos];
                stats_.stage_rows[pos] += rows;
                ++stats_.stage_calls[pos];
            }

            m = 0;
            for (std::size_t r = 0; r < rows; ++r)
                if (cursors_[row_[r]].next == target) list_[m++] = r;
            net_->run_batch_head(target, std::as_const(state), std::span<const std::size_t>(list_.data(), m),
                                 std::span<scalar_type>(head_logits_.data(), m * classes),
                                 std::span<scalar_type>(workspace_));
            detail::clock_on_work(clock_, info_.head_macs[target] * static_cast<double>(m));
            stats_.head_rows[target] += m;
            share_energy(rows, e_mark);

            const double elapsed = clock_.now() - t0;
            const std::size_t level = level_in_force();
            std::size_t kept = 0;
            for (std::size_t r = 0, j = 0; r < rows; ++r) {
                if (j < m && list_[j] == r) {
                    stopped_[r] = decide_row(row_[r], j++, pos, elapsed, level, rows);
                    if (stopped_[r]) deliver(row_[r], std::as_const(results_[row_[r]]));
                } else {
                    stopped_[r] = false;
                }
                if (!stopped_[r]) keep_[kept++] = r;
            }
            if (kept < rows) {
                net_->compact(state, std::span<const std::size_t>(keep_.data(), kept));
                for (std::size_t j = 0; j < kept; ++j) row_[j] = row_[keep_[j]];
            }
            rows = kept;
            set_batch_level(rows);
        }
        // The batch is over: back to the default level unless the clock keeps it; the switch's
        // energy goes to the rows of the last round, which it served. Then the rest of the
        // batch's period idle, shared by every sample of the batch.
        detail::restore_default_level(clock_);
        if constexpr (detail::clock_with_energy<Clock>) {
            const double rest = energy_now() - e_mark;
            for (std::size_t j = 0; j < m; ++j) energy_[last_round_sample(j)] += rest / static_cast<double>(m);
            e_mark = energy_now();
        }
        idle_to_period(samples, clock_.now() - t0);
        if constexpr (detail::clock_with_energy<Clock>) {
            const double idle = energy_now() - e_mark;
            for (std::size_t i = 0; i < n; ++i) {
                energy_[i] += idle / static_cast<double>(n);
                results_[i].energy_joules = energy_[i];
            }
        }
        for (std::size_t i = 0; i < n; ++i) {
            const episode<scalar_type> ep = cursors_[i].episode_of(steps_of(i), results_[i], info_);
            hooks::update(policy_, ep);
            detail::observe_exit(observer_, results_[i], ep);
        }
        return std::span<const result_type>(results_.data(), n);
    }

    /// Checks a batch as run() does: at most capacity() samples, fitting the state, labels in
    /// range and present when the policy needs them (earlyexit::error naming the value).
    void check_batch(const batch_state_type& state, std::span<const sample_info> samples) const {
        const auto held = static_cast<std::size_t>(state.capacity());
        if (samples.size() > capacity_)
            fail("batch_runner: a batch of {} samples exceeds the runner's capacity {}", samples.size(), capacity_);
        if (samples.size() > held)
            fail("batch_runner: a batch of {} samples exceeds the batch state's capacity {}", samples.size(), held);
        for (const sample_info& s : samples) detail::check_sample_args(s, info_, policy_);
    }

    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] const Network& network() const noexcept { return *net_; }
    [[nodiscard]] const network_info& info() const noexcept { return info_; }
    [[nodiscard]] Policy& policy() noexcept { return policy_; }
    [[nodiscard]] const Policy& policy() const noexcept { return policy_; }
    [[nodiscard]] Clock& clock() noexcept { return clock_; }
    [[nodiscard]] Observer& observer() noexcept { return observer_; }
    [[nodiscard]] const batch_stats& stats() const noexcept { return stats_; }
    void reset_stats() noexcept { stats_.clear(); }

private:
    struct no_delivery {
        void operator()(std::size_t, const result_type&) const noexcept {}
    };

    [[nodiscard]] std::span<episode_step<scalar_type>> steps_of(std::size_t i) noexcept {
        return std::span<episode_step<scalar_type>>(steps_.data() + i * info_.heads, info_.heads);
    }
    [[nodiscard]] std::size_t last_round_sample(std::size_t j) const noexcept { return last_round_[j]; }

    /// Row j of the evaluated list (sample i) meets its head: measures, decide(), and either the
    /// result (stop) or next_check() and frequency() (proceed). True when it stopped.
    bool decide_row(std::size_t i, std::size_t j, std::size_t pos, double elapsed, std::size_t level,
                    std::size_t rows) noexcept {
        const std::size_t classes = info_.classes;
        auto& c = cursors_[i];
        const std::span<const scalar_type> row(head_logits_.data() + j * classes, classes);
        const std::span<scalar_type> logits(row_logits_), probs(row_probs_);
        exit_context<scalar_type> ctx;
        last_round_[j] = i;
        if (c.meet_head(policy_, observer_, row, logits, probs, elapsed, level, info_, steps_of(i), ctx) == decision::stop) {
            const auto out = exit_logits_.begin() + static_cast<std::ptrdiff_t>(i * classes);
            const auto out_p = exit_probs_.begin() + static_cast<std::ptrdiff_t>(i * classes);
            std::copy(logits.begin(), logits.end(), out);
            std::copy(probs.begin(), probs.end(), out_p);
            results_[i] = c.result(elapsed, std::span<const scalar_type>(exit_logits_.data() + i * classes, classes),
                                   std::span<const scalar_type>(exit_probs_.data() + i * classes, classes), info_);
            return true;
        }
        c.proceed(policy_, ctx, pos, elapsed, level, info_, rows);
        return false;
    }

    /// The batch's level: the highest of the running rows' latest requests (none: unchanged).
    void set_batch_level(std::size_t rows) noexcept {
        std::optional<std::size_t> top;
        for (std::size_t r = 0; r < rows; ++r)
            if (const auto& a = cursors_[row_[r]].request; a && (!top || *a > *top)) top = a;
        if (top && top != batch_level_) {
            batch_level_ = top;
            detail::clock_set_level(clock_, *top);
        }
    }
    /// The batch's period: the shortest deadline of its samples, when every one has a deadline;
    /// the clock idles for what is left of it after `busy` seconds.
    void idle_to_period(std::span<const sample_info> samples, double busy) noexcept {
        if constexpr (detail::clock_with_idle<Clock>) {
            std::optional<double> period;
            for (const auto& s : samples) {
                if (!s.deadline_seconds) return;
                period = period ? std::min(*period, *s.deadline_seconds) : *s.deadline_seconds;
            }
            detail::clock_idle_to_deadline(clock_, period, busy);
        } else {
            (void)samples;
            (void)busy;
        }
    }
    [[nodiscard]] std::size_t level_in_force() const noexcept {
        return detail::clock_level_in_force(clock_, batch_level_, npos);
    }
    [[nodiscard]] double energy_now() const noexcept { return detail::clock_energy(clock_); }
    /// The energy since `mark`, shared equally by the rows that ran; moves the mark.
    void share_energy(std::size_t rows, double& mark) noexcept {
        if constexpr (detail::clock_with_energy<Clock>) {
            const double now = energy_now();
            for (std::size_t r = 0; r < rows; ++r) energy_[row_[r]] += (now - mark) / static_cast<double>(rows);
            mark = now;
        }
    }

    const Network* net_;
    network_info info_;
    Policy policy_;
    Clock clock_;
    Observer observer_;
    std::size_t capacity_;
    std::optional<std::size_t> batch_level_{};
    std::vector<detail::sample_cursor<scalar_type>> cursors_;  // by input index
    std::vector<std::size_t> row_;       // row -> input index
    std::vector<std::size_t> list_;      // rows evaluating this round's head
    std::vector<std::size_t> keep_;      // rows still running after the round
    std::vector<std::size_t> last_round_;  // inputs of the round's list
    std::vector<char> stopped_;
    std::vector<episode_step<scalar_type>> steps_;  // heads per input
    std::vector<scalar_type> head_logits_, row_logits_, row_probs_, exit_logits_, exit_probs_;
    std::vector<scalar_type> workspace_;
    std::vector<double> energy_;
    std::vector<result_type> results_;
    batch_stats stats_;
};

/// make_batch_runner(network, policy, capacity[, clock[, observer]]): a batch_runner with deduced types.
template <class Network, class Policy, class Clock = wall_clock, class Observer = no_observer>
[[nodiscard]] auto make_batch_runner(const Network& network, Policy policy, std::size_t capacity, Clock clock = Clock{},
                                     Observer observer = Observer{}) {
    return batch_runner<Network, Policy, Clock, Observer>(network, std::move(policy), capacity, std::move(clock),
                                                          std::move(observer));
}
/// Refused at compile time: make_batch_runner on a temporary network, such as
/// make_batch_runner(rowwise_network(net), ...) (it would dangle).
template <class Network, class Policy, class... Rest>
    requires(!std::is_lvalue_reference_v<Network>)
auto make_batch_runner(Network&&, Policy, std::size_t, Rest&&...) {
    static_assert(detail::dependent_false<Network>,
                  "make_batch_runner: the network is a temporary and would dangle (a runner only views its network, "
                  "which must outlive it); name it first: const rowwise_network batched(net); "
                  "auto r = make_batch_runner(batched, policy, capacity);");
    return detail::refused_temporary_network{};
}

}  // namespace earlyexit
