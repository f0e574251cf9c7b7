#pragma once
// parallel_runner: N workers run batches of a sample range, each with its own batch_runner,
// policy copy and batch state, over one shared read-only network; results land in input order.
//
// run(samples, fill, out) cuts the samples into batches of `batch` (the last one may be
// shorter) and the workers take them: with schedule::round_robin worker w runs batches w, w+N,
// w+2N, ... in order, so which samples each policy copy sees, and so everything a learning
// policy does, is the same on every run whatever the timing; with schedule::dynamic a worker
// takes the next batch as soon as it is free (better balance when batches cost unequal time,
// as they do with early exit; a learning policy's copies then see a timing-dependent split).
// The calling thread is worker 0; the others are started once, at construction, and wait
// between runs.
//
// fill(state, first, count) puts the inputs of samples[first .. first+count) into rows
// 0..count-1 of a worker's batch state. It is called concurrently from the workers, each with
// its own state: it may read shared data, it must not write it. An exception it throws stops
// the run (the batches taken finish, no new one starts) and is rethrown by run().
//
// Learning: each worker learns on its own batches (batch_runner: updated after each batch, in
// input order). merged_policy() is the policy at the start plus what every worker learned
// since (learned_table's merge counts the shared start once); sync() makes that every
// worker's policy, so that they go on from everything learned. A policy without merge() has
// nothing to merge: merged_policy() is worker 0's.
//
// With sync_every = k > 0, run() also syncs after every k rounds of batches (a round: one batch
// per worker, batches r*N .. r*N+N-1): the workers wait for each other there, and each goes on
// from everything learned so far. With round robin this is deterministic (the same merges of
// the same batches on every run); dynamic scheduling is refused with it.
//
// Stacks: each started worker gets stack_bytes of stack (8 MiB by default, what Linux gives a
// main thread; a network whose stages keep big temporaries on the stack, such as Eigen's up to
// EIGEN_STACK_ALLOCATION_LIMIT, may need it: a platform's default thread stack can be smaller).
// On POSIX the thread is started with that stack size (pthreads); elsewhere std::thread's.
//
// Clocks: each worker runs on its own copy of the clock. A clock that must not be copied (one
// hardware frequency domain, dvfs::hardware_clock) is refused at compile time.
//
// run() checks every sample first (labels, as basic_runner does) and allocates nothing after
// that on the workers' side; the fill is yours.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<pthread.h>)
#include <pthread.h>
#define EARLYEXIT_HAS_PTHREAD 1
#endif

#include "batch_network.hpp"
#include "batch_runner.hpp"
#include "clock.hpp"
#include "error.hpp"
#include "result.hpp"

namespace earlyexit {

/// How the workers share the batches of a run.
enum class schedule : unsigned char {
    round_robin,  ///< worker w takes batches w, w + N, ...: reproducible, learning included
    dynamic,      ///< the next free worker takes the next batch: balanced, timing-dependent split
};

[[nodiscard]] constexpr std::string_view name_of(schedule s) noexcept {
    return s == schedule::round_robin ? "round_robin" : "dynamic";
}

struct parallel_options {
    std::size_t threads = 1;  ///< workers (>= 1), the calling thread included
    std::size_t batch = 1;    ///< samples per batch (>= 1)
    schedule order = schedule::round_robin;
    /// Sync the workers' learned state after every this many rounds of batches (0: only when
    /// you call sync()); round robin only.
    std::size_t sync_every = 0;
    /// Stack of each started worker thread, in bytes (>= 64 KiB; POSIX only, see the header).
    std::size_t stack_bytes = std::size_t{8} << 20;
};

namespace detail {

/// A thread started with a given stack size (POSIX), else a std::thread.
class worker_thread {
public:
    template <class F>
    worker_thread(std::size_t stack_bytes, F f) : f_(std::make_unique<std::function<void()>>(std::move(f))) {
#ifdef EARLYEXIT_HAS_PTHREAD
        pthread_attr_t attr;
        if (pthread_attr_init(&attr) != 0) fail("parallel_runner: pthread_attr_init failed");
        const int set = pthread_attr_setstacksize(&attr, stack_bytes);
        const int made = set != 0 ? set : pthread_create(&t_, &attr, &worker_thread::enter, f_.get());
        pthread_attr_destroy(&attr);
        if (set != 0) fail("parallel_runner: a worker stack of {} bytes was refused (error {})", stack_bytes, set);
        if (made != 0) fail("parallel_runner: could not start a worker thread (error {})", made);
#else
        (void)stack_bytes;
        t_ = std::thread(*f_);
#endif
    }
    worker_thread(const worker_thread&) = delete;
    worker_thread& operator=(const worker_thread&) = delete;
    ~worker_thread() { join(); }

    void join() noexcept {
#ifdef EARLYEXIT_HAS_PTHREAD
        if (!joined_) pthread_join(t_, nullptr);
        joined_ = true;
#else
        if (t_.joinable()) t_.join();
#endif
    }

private:
#ifdef EARLYEXIT_HAS_PTHREAD
    static void* enter(void* f) {
        (*static_cast<std::function<void()>*>(f))();
        return nullptr;
    }
    pthread_t t_{};
    bool joined_ = false;
#else
    std::thread t_;
#endif
    std::unique_ptr<std::function<void()>> f_;
};

}  // namespace detail

template <batched_network Network, class Policy, runner_clock Clock = wall_clock>
class parallel_runner {
public:
    using runner_type = batch_runner<Network, Policy, Clock>;
    using batch_state_type = typename Network::batch_state_type;
    using scalar_type = typename Network::scalar_type;

    /// make_state() -> batch_state_type, called once per worker (capacity >= batch).
    /// Throws earlyexit::error naming a bad option.
    template <class MakeState>
        requires std::convertible_to<std::invoke_result_t<MakeState&>, batch_state_type>
    parallel_runner(const Network& network, const Policy& policy, parallel_options o, MakeState make_state,
                    Clock clock = Clock{})
        : o_(o) {
        static_assert(std::is_copy_constructible_v<Clock>,
                      "parallel_runner: each worker runs on a copy of the clock, and this clock cannot be copied "
                      "(one hardware frequency domain: dvfs::hardware_clock); run it with one batch_runner");
        if (o_.threads == 0) fail("parallel_runner: threads 0; at least the calling thread runs");
        if (o_.batch == 0) fail("parallel_runner: batch 0; a batch holds at least one sample");
        if (o_.sync_every > 0 && o_.order != schedule::round_robin)
            fail("parallel_runner: sync_every {} needs schedule round_robin (the rounds of a dynamic schedule are "
                 "timing-dependent)",
                 o_.sync_every);
        if (o_.stack_bytes < (std::size_t{64} << 10))
            fail("parallel_runner: stack_bytes {} is below 64 KiB", o_.stack_bytes);
        workers_.reserve(o_.threads);
        for (std::size_t w = 0; w < o_.threads; ++w) {
            auto wk = std::make_unique<worker_slot>(runner_type(network, policy, o_.batch, clock), make_state());
            if (static_cast<std::size_t>(wk->state.capacity()) < o_.batch)
                fail("parallel_runner: the batch state holds {} rows, fewer than the batch of {}", wk->state.capacity(),
                     o_.batch);
            workers_.push_back(std::move(wk));
        }
        start_ = workers_.front()->runner.policy();  // bound to the network, before any learning
        threads_.reserve(o_.threads - 1);
        try {
            for (std::size_t w = 1; w < o_.threads; ++w)
                threads_.push_back(std::make_unique<detail::worker_thread>(o_.stack_bytes, [this, w] { serve(w); }));
        } catch (...) {
            stop_workers();  // the ones started wait for work: let them end before unwinding
            throw;
        }
    }
    /// Refused: the workers only view the network, and a temporary would dangle.
    parallel_runner(const Network&&, const Policy&, parallel_options, auto, Clock = Clock{}) {
        static_assert(detail::dependent_false<Network>,
                      "parallel_runner: the network is a temporary and would dangle (the workers only view the "
                      "network, which must outlive the runner); name it first: const rowwise_network batched(net);");
    }

    parallel_runner(const parallel_runner&) = delete;
    parallel_runner& operator=(const parallel_runner&) = delete;
    ~parallel_runner() { stop_workers(); }

    /// Runs every sample (see the header comment); out[i] is the outcome of samples[i]
    /// (out.size() == samples.size(), else earlyexit::error).
    template <class Fill>
        requires std::invocable<Fill&, batch_state_type&, std::size_t, std::size_t>
    void run(std::span<const sample_info> samples, Fill&& fill, std::span<sample_outcome> out) {
        if (out.size() != samples.size())
            fail("parallel_runner: {} outcome slots for {} samples", out.size(), samples.size());
        for (const sample_info& s : samples)
            detail::check_sample_args(s, workers_.front()->runner.info(), workers_.front()->runner.policy());
        if (samples.empty()) return;
        auto call = [&fill](batch_state_type& s, std::size_t first, std::size_t n) { fill(s, first, n); };
        using F = decltype(call);
        job_ = job{samples, out, static_cast<void*>(&call),
                   [](void* f, batch_state_type& s, std::size_t first, std::size_t n) {
                       (*static_cast<F*>(f))(s, first, n);
                   }};
        next_.store(0, std::memory_order_relaxed);
        failed_.store(false, std::memory_order_relaxed);
        error_ = nullptr;
        arrived_ = 0;
        {
            std::lock_guard lock(m_);
            ++generation_;
            running_ = threads_.size();
        }
        wake_.notify_all();
        work(0);
        std::unique_lock lock(m_);
        done_.wait(lock, [this] { return running_ == 0; });
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    }

    /// The policy at the start plus what every worker learned since (see the header comment).
    [[nodiscard]] Policy merged_policy() const {
        if constexpr (hooks::has_merge<Policy>) {
            Policy p = *start_;
            for (const auto& w : workers_) hooks::merge(p, w->runner.policy());
            return p;
        } else {
            return workers_.front()->runner.policy();
        }
    }
    /// Every worker goes on from merged_policy() (and merges count from here). Not while a run
    /// is going on (run() itself syncs with options().sync_every).
    void sync() {
        Policy merged = merged_policy();
        for (auto& w : workers_) w->runner.policy() = merged;
        start_ = std::move(merged);
    }
    /// The syncs run() made (sync_every) since construction.
    [[nodiscard]] std::size_t syncs() const noexcept { return syncs_; }

    /// The workers' batch counts, summed.
    [[nodiscard]] batch_stats stats() const {
        batch_stats s = workers_.front()->runner.stats();
        for (std::size_t w = 1; w < workers_.size(); ++w) s += workers_[w]->runner.stats();
        return s;
    }
    void reset_stats() noexcept {
        for (auto& w : workers_) w->runner.reset_stats();
    }
    [[nodiscard]] const parallel_options& options() const noexcept { return o_; }
    [[nodiscard]] std::size_t threads() const noexcept { return workers_.size(); }
    /// Worker w's runner (its policy, clock and counts). Not while a run is going on.
    [[nodiscard]] runner_type& worker(std::size_t w) noexcept { return workers_[w]->runner; }

private:
    struct worker_slot {
        runner_type runner;
        batch_state_type state;
    };
    struct job {
        std::span<const sample_info> samples;
        std::span<sample_outcome> out;
        void* fill = nullptr;
        void (*call)(void*, batch_state_type&, std::size_t, std::size_t) = nullptr;
    };

    void stop_workers() noexcept {
        {
            std::lock_guard lock(m_);
            quit_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t->join();
    }

    /// Records the first error of a run and stops it (the other workers see failed_).
    void fail_run() noexcept {
        std::lock_guard lock(m_);
        if (!error_) error_ = std::current_exception();
        failed_.store(true, std::memory_order_relaxed);
        synced_.notify_all();
    }

    /// The sync after a round (sync_every): every worker arrives, the last one merges while the
    /// others wait (so no policy is in use), then all go on. False when the run failed.
    bool sync_point() noexcept {
        std::unique_lock lock(m_);
        if (failed_.load(std::memory_order_relaxed)) return false;
        const std::size_t generation = sync_generation_;
        if (++arrived_ == workers_.size()) {
            arrived_ = 0;
            try {
                sync();
            } catch (...) {
                lock.unlock();
                fail_run();
                return false;
            }
            ++syncs_;
            ++sync_generation_;
            synced_.notify_all();
            return true;
        }
        synced_.wait(lock, [&] { return sync_generation_ != generation || failed_.load(std::memory_order_relaxed); });
        return !failed_.load(std::memory_order_relaxed);
    }

    /// Worker w's part of the current run.
    void work(std::size_t w) noexcept {
        worker_slot& wk = *workers_[w];
        const std::size_t n = job_.samples.size();
        const std::size_t batches = (n + o_.batch - 1) / o_.batch;
        const std::size_t rounds = (batches + workers_.size() - 1) / workers_.size();
        std::size_t mine = w;  // round robin: w, w + N, ...
        for (;;) {
            const std::size_t b =
                o_.order == schedule::dynamic ? next_.fetch_add(1, std::memory_order_relaxed) : std::exchange(mine, mine + workers_.size());
            if (b >= batches || failed_.load(std::memory_order_relaxed)) return;
            const std::size_t first = b * o_.batch, count = std::min(o_.batch, n - first);
            try {
                job_.call(job_.fill, wk.state, first, count);
            } catch (...) {
                fail_run();
                return;
            }
            const auto results = wk.runner.run_unchecked(wk.state, job_.samples.subspan(first, count));
            for (std::size_t j = 0; j < count; ++j) job_.out[first + j] = outcome_of(results[j]);
            // Round robin: batch b is in round b / N; every round but the last is full, so every
            // worker reaches the sync after it.
            const std::size_t round = b / workers_.size() + 1;
            if (o_.sync_every > 0 && round % o_.sync_every == 0 && round < rounds && !sync_point()) return;
        }
    }

    /// A started worker thread: waits for each run, does its part, reports.
    void serve(std::size_t w) {
        std::size_t seen = 0;
        for (;;) {
            {
                std::unique_lock lock(m_);
                wake_.wait(lock, [&] { return quit_ || generation_ != seen; });
                if (quit_) return;
                seen = generation_;
            }
            work(w);
            {
                std::lock_guard lock(m_);
                --running_;
            }
            done_.notify_one();
        }
    }

    parallel_options o_;
    std::vector<std::unique_ptr<worker_slot>> workers_;
    std::optional<Policy> start_;  // the policy every worker started from (bound to the network)
    std::vector<std::unique_ptr<detail::worker_thread>> threads_;
    std::mutex m_;
    std::condition_variable wake_, done_, synced_;
    std::size_t arrived_ = 0, sync_generation_ = 0, syncs_ = 0;
    std::size_t generation_ = 0, running_ = 0;
    bool quit_ = false;
    job job_{};
    std::atomic<std::size_t> next_{0};
    std::atomic<bool> failed_{false};
    std::exception_ptr error_;
};

/// make_parallel_runner(network, policy, options, make_state[, clock]) with deduced types.
template <class Network, class Policy, class MakeState, class Clock = wall_clock>
[[nodiscard]] auto make_parallel_runner(const Network& network, const Policy& policy, parallel_options o,
                                        MakeState make_state, Clock clock = Clock{}) {
    return std::make_unique<parallel_runner<Network, Policy, Clock>>(network, policy, o, std::move(make_state),
                                                                     std::move(clock));
}
/// Refused at compile time: make_parallel_runner on a temporary network (it would dangle).
template <class Network, class Policy, class... Rest>
    requires(!std::is_lvalue_reference_v<Network>)
auto make_parallel_runner(Network&&, const Policy&, parallel_options, Rest&&...) {
    static_assert(detail::dependent_false<Network>,
                  "make_parallel_runner: the network is a temporary and would dangle (the workers only view the "
                  "network, which must outlive the runner); name it first: const rowwise_network batched(net);");
    return detail::refused_temporary_network{};
}

}  // namespace earlyexit
