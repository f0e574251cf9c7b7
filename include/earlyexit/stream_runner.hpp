#pragma once
// stream_runner: continuous batching. Samples stream in from a source and take the rows that
// exits free, so the batch stays full: late stages run on full batches instead of on the few
// rows a batch_runner's batch has left by then.
//
// A batch state holds rows at one stage position, so new samples cannot join the running rows
// directly. The runner keeps two states of `capacity` rows. The main cohort runs in rounds as a
// batch_runner's batch does (the stages up to the nearest head a row checks next, that head, the
// decisions, compaction). After each round that freed rows, it admits up to that many new
// samples from the source into the second state (the catch-up cohort) and runs them alone from
// stage 0, in rounds of their own (they decide at their heads and may exit too), up to the main
// cohort's position; then network.append() puts them after the main rows and the merged batch
// goes on. When the main cohort is empty (at the start, or when its last rows exit), the source
// fills it directly. Admission happens once per main round, after it, when at least
// min_admission rows are free (stream_options; 1 by default: whenever a row exits); rows that
// exit while catching up free their slots for the next admission. The catch-up cohort runs
// early stages on few rows, and the main cohort late stages on many: a gain where late stages
// gain from batch width (small maps, as in the demo CNNs), a loss where early ones do. Latency:
// more samples are in flight than in a batch_runner's shrinking batch, so samples that exit
// early leave sooner (the median falls) and deep ones wait while catch-up cohorts run (the tail
// grows).
//
// Decisions: each row is driven by the per-sample cursor basic_runner and batch_runner use
// (detail::sample_cursor: the same contexts, hooks and clamping), so class, exit head, stages
// run, heads evaluated and MACs equal basic_runner's one-by-one runs sample for sample for a
// policy that does not learn. A learning policy is updated at each exit, when it happens (in
// completion order; within a round, in row order, before the next row decides): deterministic
// for a given source, and at capacity 1 (samples one after another) basic_runner exactly.
//
// Results: deliver(const stream_exit<Scalar>&) is called at each exit, in completion order, with
// the sample's index (sample_info::index), its place in the admission order, and its result
// (whose logits and probs view the runner's buffers during the call only). run_in_order() runs
// a span of samples and writes each outcome at its sample's position. A sample's seconds run
// from its admission (the clock read after the source put it in) to its exit: its latency,
// waiting while the other cohort runs included.
//
// Frequency: one level for every sample in flight (main and catch-up cohorts: one core runs
// both), the highest of their latest requests (as batch_runner: a sample whose latest call gave
// no answer does not count; none counting, the level stays). Each sample is asked at its
// admission and after each proceed, as in basic_runner, with batch_rows = the samples in flight
// at the start of the round. The clock gets its default level back when the run ends (unless it
// keeps its level between samples). Energy: each round's energy (level switches since the last
// round included) is shared equally by the rows that ran in it; a stream does not idle to
// deadlines (it is busy while samples wait), and the final switch back to the default level is
// in no sample's energy.
//
// Observers: on_head and on_exit (at each exit) as in basic_runner; on_stage is refused at
// compile time, as for batch_runner. A network without append() is refused at compile time.
//
// Errors: the runner's and the states' capacities are checked at construction; run_in_order()
// and run(samples, fill, deliver) check every sample before any work (labels, deadlines, the
// output's size). What a source hands over is checked at each admission (a count larger than
// asked, a bad label or deadline): earlyexit::error naming the value. The run stops there: the
// samples that exited before were delivered, those still in flight are dropped (never delivered,
// their episodes never given to update()), and the next run starts afresh. An exception from
// the source (or a fill) does the same. deliver must be noexcept (it runs on the hot path, as
// batch_runner's), refused at compile time otherwise.
//
// Hot path: run() allocates nothing (every buffer is sized at construction for `capacity` rows)
// and throws only from the source's checks; the source and deliver are yours.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "batch_network.hpp"
#include "batch_runner.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "error.hpp"
#include "observer.hpp"
#include "policy/concepts.hpp"
#include "result.hpp"
#include "runner.hpp"

namespace earlyexit {

/// One exit of a stream_runner's run, given to deliver() when it happens.
template <std::floating_point Scalar>
struct stream_exit {
    std::size_t index = 0;       ///< the sample's sample_info::index
    std::size_t admitted = 0;    ///< its place in the run's admission order (0, 1, ...; a span run: its position)
    exit_result<Scalar> result;  ///< logits / probs view the runner's buffers during the call only
};

/// The sizes of a stream_runner.
struct stream_options {
    std::size_t capacity = 64;     ///< rows in flight at most (>= 1): the batch width
    /// Rows that must be free after a main round before new samples are admitted (1..capacity):
    /// larger values run fewer, wider catch-up cohorts and leave the main batch emptier.
    std::size_t min_admission = 1;
};

/// Network: a batched_network with append() (not owned: it must outlive the runner). Policy,
/// Clock and Observer as for batch_runner (Observer without on_stage). Owns its two batch
/// states, made by make_state() at construction.
template <batched_network Network, class Policy, runner_clock Clock = wall_clock, class Observer = no_observer>
    requires exit_policy<Policy, typename Network::scalar_type>
class stream_runner {
    static_assert(batched_network_with_append<Network>,
                  "stream_runner admits new samples into a running batch through the network's "
                  "append(dst_state, dst_rows, src_state, src_rows), which this network lacks (see "
                  "batch_network.hpp); run it with batch_runner, or add append()");
    static_assert(hooks::check<Policy, typename Network::scalar_type>());
    static_assert(!detail::observes_stages<Observer>,
                  "stream_runner runs each stage for a whole cohort, so an observer's on_stage(position, seconds, "
                  "macs) would get the cohort's time as a sample's; record traces with basic_runner");

public:
    using network_type = Network;
    using policy_type = Policy;
    using scalar_type = typename Network::scalar_type;
    using batch_state_type = typename Network::batch_state_type;
    using result_type = exit_result<scalar_type>;
    using exit_type = stream_exit<scalar_type>;

    /// Binds the policy (prepare(), which may throw), makes the two batch states (make_state(),
    /// called twice; each must hold options.capacity rows) and sizes every buffer. Throws
    /// earlyexit::error naming a bad option or a state too small.
    template <class MakeState>
        requires std::convertible_to<std::invoke_result_t<MakeState&>, batch_state_type>
    stream_runner(const Network& network, Policy policy, stream_options options, MakeState make_state,
                  Clock clock = Clock{}, Observer observer = Observer{})
        : net_(&network), info_(network.info()), policy_(std::move(policy)), clock_(std::move(clock)),
          observer_(std::move(observer)), options_(checked(options)), main_(make_state()), side_(make_state()) {
        const std::size_t cap = options_.capacity;
        for (const batch_state_type* s : {&main_, &side_})
            if (const auto held = static_cast<std::size_t>(s->capacity()); held < cap)
                fail("stream_runner: a batch state of {} rows is smaller than the capacity {}", held, cap);
        const std::size_t c = info_.classes;
        cursors_.resize(cap);
        infos_.resize(cap);
        admitted_.resize(cap);
        since_.resize(cap);
        energy_.resize(cap);
        free_.resize(cap);
        main_slot_.resize(cap);
        side_slot_.resize(cap);
        list_.resize(cap);
        keep_.resize(cap);
        incoming_.resize(cap);
        steps_.resize(cap * info_.heads);
        head_logits_.resize(cap * c);
        row_logits_.resize(c);
        row_probs_.resize(c);
        workspace_.resize(static_cast<std::size_t>(network.batch_workspace_size()));
        stats_.stage_rows.assign(info_.stages, 0);
        stats_.stage_calls.assign(info_.stages, 0);
        stats_.head_rows.assign(info_.heads, 0);
        hooks::prepare(policy_, info_);
    }
    /// Refused: a runner only views its network, and a temporary would dangle.
    template <class MakeState>
    stream_runner(const Network&&, Policy, stream_options, MakeState, Clock = Clock{}, Observer = Observer{}) {
        static_assert(detail::dependent_false<Network>,
                      "stream_runner: the network is a temporary and would dangle (a runner only views its network, "
                      "which must outlive it); name it first: const rowwise_network batched(net); "
                      "stream_runner r(batched, policy, {.capacity = 64}, make_state);");
    }

    /// Runs the stream until the source is exhausted and every admitted sample has exited.
    /// source(batch_state_type& state, std::span<sample_info> infos) -> std::size_t puts up to
    /// infos.size() new samples into rows 0..n-1 of `state` (empty: none of its rows is in use),
    /// writes their sample_info to infos[0..n) and returns n; 0 means exhausted (it is not called
    /// again in this run). deliver(const stream_exit<scalar_type>&) is called at each exit.
    template <class Source, class Deliver>
        requires std::convertible_to<std::invoke_result_t<Source&, batch_state_type&, std::span<sample_info>>,
                                     std::size_t> &&
                 std::invocable<Deliver&, const stream_exit<typename Network::scalar_type>&>
    void run(Source&& source, Deliver&& deliver) {
        run_stream(source, deliver, true);
    }

    /// Runs samples[0..n) in order of admission: fill(state, first, count) puts the inputs of
    /// samples[first .. first+count) into rows 0..count-1 of `state` (as parallel_runner's fill
    /// does); deliver gets each exit when it happens (stream_exit::admitted is the position in
    /// `samples`). Every sample is checked before any work (earlyexit::error naming the value).
    template <class Fill, class Deliver>
        requires std::invocable<Fill&, batch_state_type&, std::size_t, std::size_t> &&
                 std::invocable<Deliver&, const stream_exit<typename Network::scalar_type>&>
    void run(std::span<const sample_info> samples, Fill&& fill, Deliver&& deliver) {
        for (const sample_info& s : samples) detail::check_sample_args(s, info_, policy_);
        std::size_t next = 0;
        auto source = [&](batch_state_type& state, std::span<sample_info> infos) {
            const std::size_t n = std::min(infos.size(), samples.size() - next);
            if (n == 0) return std::size_t{0};
            std::copy_n(samples.begin() + static_cast<std::ptrdiff_t>(next), n, infos.begin());
            fill(state, next, n);
            next += n;
            return n;
        };
        run_stream(source, deliver, false);
    }

    /// run(samples, fill, ...) with out[i] the outcome of samples[i] (out.size() == samples.size(),
    /// checked with the samples before any work).
    template <class Fill>
        requires std::invocable<Fill&, batch_state_type&, std::size_t, std::size_t>
    void run_in_order(std::span<const sample_info> samples, Fill&& fill, std::span<sample_outcome> out) {
        if (out.size() != samples.size())
            fail("stream_runner: {} outcomes for {} samples; run_in_order writes one per sample", out.size(),
                 samples.size());
        run(samples, fill, [&](const exit_type& e) noexcept { out[e.admitted] = outcome_of(e.result); });
    }

    [[nodiscard]] std::size_t capacity() const noexcept { return options_.capacity; }
    [[nodiscard]] const stream_options& options() const noexcept { return options_; }
    [[nodiscard]] const Network& network() const noexcept { return *net_; }
    [[nodiscard]] const network_info& info() const noexcept { return info_; }
    [[nodiscard]] Policy& policy() noexcept { return policy_; }
    [[nodiscard]] const Policy& policy() const noexcept { return policy_; }
    [[nodiscard]] Clock& clock() noexcept { return clock_; }
    [[nodiscard]] Observer& observer() noexcept { return observer_; }
    /// Work counts since construction or reset_stats(), as batch_stats: batches counts the
    /// admissions (source calls that put samples), stage_calls every batched call (main and
    /// catch-up cohorts), so rows_per_call(p) is the width stage p ran at.
    [[nodiscard]] const batch_stats& stats() const noexcept { return stats_; }
    void reset_stats() noexcept { stats_.clear(); }

private:
    /// A cohort: rows 0..rows-1 of `state` at stage position pos (stages 0..pos-1 done); slot[r]
    /// is row r's sample slot.
    struct cohort {
        batch_state_type* state;
        std::size_t* slot;
        std::size_t rows = 0;
        std::size_t pos = 0;
    };

    static stream_options checked(const stream_options& o) {
        if (o.capacity == 0) fail("stream_runner: capacity 0; a batch holds at least one sample");
        if (o.min_admission == 0 || o.min_admission > o.capacity)
            fail("stream_runner: min_admission {} is outside 1..capacity ({})", o.min_admission, o.capacity);
        return o;
    }

    template <class Source, class Deliver>
    void run_stream(Source& source, Deliver& deliver, bool check) {
        static_assert(std::is_nothrow_invocable_v<Deliver&, const exit_type&>,
                      "stream_runner::run: deliver(const stream_exit<Scalar>&) must be noexcept (it is called on "
                      "the hot path, at each sample's exit); declare the lambda noexcept");
        const std::size_t cap = options_.capacity;
        for (std::size_t s = 0; s < cap; ++s) free_[s] = cap - 1 - s;  // slot 0 is taken first
        free_count_ = cap;
        admissions_ = 0;
        cohort main{&main_, main_slot_.data()}, side{&side_, side_slot_.data()};
        if constexpr (detail::clock_with_levels<Clock>) level_ = static_cast<std::size_t>(clock_.level());
        else level_.reset();
        e_mark_ = energy_now();

        bool more = true;  // the source may have more
        for (;;) {
            if (main.rows == 0) {
                if (!more) break;
                main.pos = 0;
                main.rows = admit(main, cap, source, check);
                if (main.rows == 0) break;
                set_level(main, side);
            }
            (void)round(main, info_.stages, deliver);
            set_level(main, side);
            if (main.rows == 0 || !more || cap - main.rows < options_.min_admission) continue;
            side.pos = 0;
            side.rows = admit(side, cap - main.rows, source, check);
            if (side.rows == 0) {
                more = false;
                continue;
            }
            set_level(main, side);
            while (side.rows > 0 && round(side, main.pos, deliver)) set_level(main, side);
            if (side.rows > 0) {
                // (Guarded so that a network without append() meets only the static_assert above.)
                if constexpr (batched_network_with_append<Network>) net_->append(main_, main.rows, side_, side.rows);
                std::copy_n(side.slot, side.rows, main.slot + main.rows);
                main.rows += side.rows;
                side.rows = 0;
            }
        }
        detail::restore_default_level(clock_);
    }

    /// Asks the source for up to `max` samples into the (empty) cohort `c` at position 0; starts
    /// their cursors and asks each for a level. Returns how many came.
    template <class Source>
    std::size_t admit(cohort& c, std::size_t max, Source& source, bool check) {
        const std::size_t n = source(*c.state, std::span<sample_info>(incoming_.data(), max));
        if (n > max) fail("stream_runner: the source put {} samples, at most {} were asked for", n, max);
        if (check)
            for (std::size_t j = 0; j < n; ++j) detail::check_sample_args(incoming_[j], info_, policy_);
        if (n == 0) return 0;
        const double t = clock_.now();
        for (std::size_t j = 0; j < n; ++j) {
            const std::size_t s = free_[--free_count_];
            c.slot[j] = s;
            infos_[s] = incoming_[j];
            admitted_[s] = admissions_++;
            since_[s] = t;
            energy_[s] = 0.0;
            cursors_[s].start(policy_, infos_[s], info_);
        }
        c.rows = n;
        ++stats_.batches;
        stats_.samples += n;
        const std::size_t flight = in_flight();
        const double now = clock_.now();
        for (std::size_t j = 0; j < n; ++j) {
            auto& cur = cursors_[c.slot[j]];
            (void)cur.ask_frequency(policy_, cur.frequency_at(0, now - t, level_in_force(), nullptr, info_, flight));
        }
        return n;
    }

    /// One round of cohort c: the stages from c.pos up to the nearest head a row checks next,
    /// that head, the decisions (exits delivered), compaction. When that head lies at or past
    /// `stop_at`, only the stages up to stop_at - 1 run and it returns false (c is at stop_at).
    template <class Deliver>
    bool round(cohort& c, std::size_t stop_at, Deliver& deliver) {
        const std::size_t classes = info_.classes;
        const std::size_t flight = in_flight();
        std::size_t target = info_.heads - 1;
        for (std::size_t r = 0; r < c.rows; ++r) target = std::min(target, cursors_[c.slot[r]].next);
        const std::size_t at = info_.head_positions[target];
        const bool reaches = at < stop_at;
        for (const std::size_t end = reaches ? at + 1 : stop_at; c.pos < end; ++c.pos) {
            net_->run_batch_stage(c.pos, *c.state, c.rows);
            detail::clock_on_work(clock_, info_.stage_macs[c.pos] * static_cast<double>(c.rows));
            for (std::size_t r = 0; r < c.rows; ++r) cursors_[c.slot[r]].macs += info_.stage_macs[c.pos];
            stats_.stage_rows[c.pos] += c.rows;
            ++stats_.stage_calls[c.pos];
        }
        if (!reaches) {
            share_energy(c);
            return false;
        }

        std::size_t m = 0;
        for (std::size_t r = 0; r < c.rows; ++r)
            if (cursors_[c.slot[r]].next == target) list_[m++] = r;
        net_->run_batch_head(target, std::as_const(*c.state), std::span<const std::size_t>(list_.data(), m),
                             std::span<scalar_type>(head_logits_.data(), m * classes),
                             std::span<scalar_type>(workspace_));
        detail::clock_on_work(clock_, info_.head_macs[target] * static_cast<double>(m));
        stats_.head_rows[target] += m;
        share_energy(c);

        const double now = clock_.now();
        const std::size_t level = level_in_force();
        std::size_t kept = 0;
        for (std::size_t r = 0, j = 0; r < c.rows; ++r) {
            const bool checks = j < m && list_[j] == r;
            if (!(checks && decide_row(c.slot[r], j++, c.pos, now, level, flight, deliver))) keep_[kept++] = r;
        }
        if (kept < c.rows) {
            net_->compact(*c.state, std::span<const std::size_t>(keep_.data(), kept));
            for (std::size_t j = 0; j < kept; ++j) c.slot[j] = c.slot[keep_[j]];
        }
        c.rows = kept;
        return true;
    }

    /// Row j of the evaluated list (slot s) meets its head: measures, decide(), and either the
    /// exit (result, update(), on_exit, deliver, the slot freed) or next_check() and frequency().
    template <class Deliver>
    bool decide_row(std::size_t s, std::size_t j, std::size_t pos, double now, std::size_t level, std::size_t flight,
                    Deliver& deliver) {
        const std::size_t classes = info_.classes;
        auto& c = cursors_[s];
        const std::span<const scalar_type> row(head_logits_.data() + j * classes, classes);
        const std::span<scalar_type> logits(row_logits_), probs(row_probs_);
        const double elapsed = now - since_[s];
        exit_context<scalar_type> ctx;
        if (c.meet_head(policy_, observer_, row, logits, probs, elapsed, level, info_, steps_of(s), ctx) == decision::stop) {
            result_type r = c.result(elapsed, logits, probs, info_);
            if constexpr (detail::clock_with_energy<Clock>) r.energy_joules = energy_[s];
            const episode<scalar_type> ep = c.episode_of(steps_of(s), r, info_);
            hooks::update(policy_, ep);
            detail::observe_exit(observer_, r, ep);
            free_[free_count_++] = s;
            deliver(exit_type{infos_[s].index, admitted_[s], r});
            return true;
        }
        c.proceed(policy_, ctx, pos, elapsed, level, info_, flight);
        return false;
    }

    [[nodiscard]] std::span<episode_step<scalar_type>> steps_of(std::size_t s) noexcept {
        return std::span<episode_step<scalar_type>>(steps_.data() + s * info_.heads, info_.heads);
    }
    [[nodiscard]] std::size_t in_flight() const noexcept { return options_.capacity - free_count_; }

    /// The level of everything in flight: the highest of the running samples' latest requests (a
    /// latest call without an answer counts for nothing; none at all: unchanged).
    void set_level(const cohort& a, const cohort& b) noexcept {
        std::optional<std::size_t> top;
        for (const cohort* c : {&a, &b})
            for (std::size_t r = 0; r < c->rows; ++r)
                if (const auto& l = cursors_[c->slot[r]].request; l && (!top || *l > *top)) top = l;
        if (top && top != level_) {
            level_ = top;
            detail::clock_set_level(clock_, *top);
        }
    }
    [[nodiscard]] std::size_t level_in_force() const noexcept {
        return detail::clock_level_in_force(clock_, level_, npos);
    }
    [[nodiscard]] double energy_now() const noexcept { return detail::clock_energy(clock_); }
    /// The energy since the last share, shared equally by cohort c's rows.
    void share_energy(const cohort& c) noexcept {
        if constexpr (detail::clock_with_energy<Clock>) {
            const double now = energy_now();
            for (std::size_t r = 0; r < c.rows; ++r) energy_[c.slot[r]] += (now - e_mark_) / static_cast<double>(c.rows);
            e_mark_ = now;
        } else {
            (void)c;
        }
    }

    const Network* net_;
    network_info info_;
    Policy policy_;
    Clock clock_;
    Observer observer_;
    stream_options options_;
    batch_state_type main_, side_;  // the main and the catch-up cohorts' rows
    std::optional<std::size_t> level_{};
    double e_mark_ = 0.0;
    std::size_t free_count_ = 0, admissions_ = 0;
    // Per sample slot (a sample in flight holds one from its admission to its exit):
    std::vector<detail::sample_cursor<scalar_type>> cursors_;
    std::vector<sample_info> infos_;
    std::vector<std::size_t> admitted_;   // admission number
    std::vector<double> since_;           // clock at admission
    std::vector<double> energy_;
    std::vector<episode_step<scalar_type>> steps_;  // heads per slot
    std::vector<std::size_t> free_;       // free slots (a stack)
    // Per row:
    std::vector<std::size_t> main_slot_, side_slot_;  // row -> slot
    std::vector<std::size_t> list_, keep_;
    std::vector<sample_info> incoming_;   // what the source writes
    std::vector<scalar_type> head_logits_, row_logits_, row_probs_, workspace_;
    batch_stats stats_;
};

/// make_stream_runner(network, policy, options, make_state[, clock[, observer]]): a stream_runner
/// with deduced types.
template <class Network, class Policy, class MakeState, class Clock = wall_clock, class Observer = no_observer>
[[nodiscard]] auto make_stream_runner(const Network& network, Policy policy, stream_options options,
                                      MakeState make_state, Clock clock = Clock{}, Observer observer = Observer{}) {
    return stream_runner<Network, Policy, Clock, Observer>(network, std::move(policy), options, std::move(make_state),
                                                           std::move(clock), std::move(observer));
}
/// Refused at compile time: make_stream_runner on a temporary network (it would dangle).
template <class Network, class Policy, class... Rest>
    requires(!std::is_lvalue_reference_v<Network>)
auto make_stream_runner(Network&&, Policy, stream_options, Rest&&...) {
    static_assert(detail::dependent_false<Network>,
                  "make_stream_runner: the network is a temporary and would dangle (a runner only views its network, "
                  "which must outlive it); name it first: const rowwise_network batched(net); "
                  "auto r = make_stream_runner(batched, policy, {.capacity = 64}, make_state);");
    return detail::refused_temporary_network{};
}

}  // namespace earlyexit
