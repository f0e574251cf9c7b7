// Per-call cost of the learning policies (policy::dee, policy::ucb_exit) against a threshold's.
//
// The policies are bound to an 8-head network_info (a head after each of 8 stages, as in
// runner_bench.cpp) and warmed up with update() on 400 hand-built episodes, so that every
// context below lands in a visited cell and DEE's decide() takes the table path (UCB bonus,
// stop value), never the unvisited-cell early return (checked: the benchmark fails otherwise).
// Contexts are built from real logits (C classes, max-probs spread over [1/C, 1], so over
// every confidence bin) and rotate over 63 prebuilt ones (7 non-final heads x 9 levels).
//
//   max_prob_decide/C        policy::max_prob's decide(): the baseline of every decide figure
//   dee_decide/C             DEE's decide() (goal: <= 50 ns)
//   dee_begin_decide/C       first_check() + decide() on a context naming a new sample (its
//                            probe draw), as the runner calls them on a 1-head sample
//   ucb_exit_begin_decide/C  ucb_exit's first_check() (its arm choice, O(heads)) + decide()
//   ucb_exit_update/S        ucb_exit's update() of an S-step episode: the baseline of
//   dee_update/S             DEE's update() of an S-step episode (S = 4: exit at head 3;
//                            S = 8: a run to the final head)
//   max_prob_only/C          earlyexit::max_prob(logits): what a hand-written loop computes,
//                            the baseline of
//   measure/C                earlyexit::measure(logits, probs): what the runner computes at
//                            every evaluated head, for every policy; the class count C matters
//                            here, not in decide()
// Every policy sees the same contexts in the same order; the update cases use C = 10 (update()
// reads only the measures, not the logits). Counters: stop = fraction of decide() calls that
// stopped (it differs by policy: ucb_exit, warmed up on these rewards, pulls arm 0 and stops
// everywhere); allocs = heap allocations (operator new) counted inside the timed loop
// (measured 0 for every case).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>
#include <earlyexit/earlyexit.hpp>

// ---- allocation counter: global operator new replaced (counted, then malloc) ------------------
// The tests' counting allocator (this executable is its one translation unit).
#include "../tests/counting_new.hpp"

namespace {
std::atomic<long>& g_allocations = earlyexit_test::allocations;
}  // namespace

namespace {

using namespace earlyexit;

constexpr std::size_t width = 256, heads = 8, levels = 9, warmup_episodes = 400, episode_pool = 16;

// The network's shape: 8 dense 256x256 stages, a head after each (runner_bench.cpp's network).
constexpr std::array<std::size_t, heads> positions{0, 1, 2, 3, 4, 5, 6, 7};
constexpr std::array<double, heads> stage_macs{
    double(width) * width, double(width) * width, double(width) * width, double(width) * width,
    double(width) * width, double(width) * width, double(width) * width, double(width) * width};

/// Everything a benchmark at C classes needs: the network_info (spans into static arrays and
/// this object, which never moves), the rotating contexts with their logits, and the episodes.
struct fixture {
    std::size_t classes;
    std::array<double, heads> head_macs{};
    network_info net;
    std::vector<std::vector<float>> logits;  // one per context
    std::vector<std::vector<float>> probs;
    std::vector<exit_context<float>> contexts;  // heads 0..6 (the runner never asks at the final head)
    std::vector<confidence<float>> final_measures;  // for steps at head 7
    sample_info sample{};

    explicit fixture(std::size_t c) : classes(c) {
        head_macs.fill(double(c) * width);
        net.stages = heads;
        net.heads = heads;
        net.classes = c;
        net.head_positions = positions;
        net.stage_macs = stage_macs;
        net.head_macs = head_macs;
        net.full_macs = full_network_macs(stage_macs, head_macs);

        std::mt19937 rng(7);
        std::normal_distribution<float> noise(0.f, 1.f);
        // Level l boosts one class by l/(levels-1) * (ln C + 6): max-prob from ~1/C up to ~1.
        const auto make_logits = [&](std::size_t level) {
            std::vector<float> z(c);
            for (auto& v : z) v = noise(rng);
            const float boost = static_cast<float>(level) / static_cast<float>(levels - 1) *
                                (std::log(static_cast<float>(c)) + 6.f);
            z[level % c] += boost;
            return z;
        };
        for (std::size_t l = 0; l < levels; ++l)
            for (std::size_t k = 0; k + 1 < heads; ++k) {
                logits.push_back(make_logits(l));
                probs.emplace_back(c);
            }
        for (std::size_t i = 0; i < logits.size(); ++i) {
            const std::size_t k = i % (heads - 1);
            exit_context<float> x;
            x.head = k;
            x.position = positions[k];
            x.logits = logits[i];
            x.probs = probs[i];
            x.measures = measure(logits[i], probs[i]);
            x.patience = 1;
            x.heads_evaluated = k + 1;
            x.elapsed_macs = net.macs_through(positions[k]) + double(k + 1) * head_macs[k];
            x.network = &net;
            contexts.push_back(x);
        }
        for (std::size_t l = 0; l < levels; ++l) {
            auto z = make_logits(l);
            std::vector<float> p(c);
            final_measures.push_back(measure(z, p));
        }
    }

    /// Context of head k (k < 7) at level l.
    [[nodiscard]] const exit_context<float>& context(std::size_t k, std::size_t l) const {
        return contexts[l * (heads - 1) + k];
    }

    /// An episode of `steps` evaluated heads 0..steps-1 (the last one stops), measures drawn
    /// from the levels by `seed`; written into `out`.
    void build_episode(std::size_t steps, std::size_t seed, std::vector<episode_step<float>>& out) const {
        out.clear();
        for (std::size_t k = 0; k < steps; ++k) {
            const std::size_t l = (seed * 5 + k * 3) % levels;
            episode_step<float> s;
            s.head = k;
            s.position = positions[k];
            s.measures = k + 1 < heads ? context(k, l).measures : final_measures[l];
            s.elapsed_macs = net.macs_through(positions[k]) + double(k + 1) * head_macs[k];
            s.taken = k + 1 == steps ? decision::stop : decision::proceed;
            out.push_back(s);
        }
    }
    [[nodiscard]] episode<float> as_episode(const std::vector<episode_step<float>>& steps) const {
        return {steps, &sample, nullptr, &net};
    }
};

const fixture& fixture_for(std::size_t classes) {
    static const fixture f10(10), f1000(1000);
    return classes == 1000 ? f1000 : f10;
}

/// Prepares a learning policy on the fixture's network and teaches it 400 episodes: every
/// level at every head appears in runs to the final head (so every context's continue cell is
/// visited), plus shorter runs.
template <class Policy>
void warm_up(Policy& p, const fixture& f) {
    p.prepare(f.net);
    std::vector<episode_step<float>> steps;
    for (std::size_t e = 0; e < warmup_episodes; ++e) {
        const std::size_t length = e % 4 == 3 ? 1 + e % heads : heads;
        f.build_episode(length, e, steps);
        p.update(f.as_episode(steps));
    }
}

/// True when every context lands in a DEE cell that has been visited (the table path).
template <class Dee>
bool every_cell_visited(const Dee& p, const fixture& f) {
    return std::all_of(f.contexts.begin(), f.contexts.end(), [&](const exit_context<float>& c) {
        const auto cell = p.cell_of(c.head, static_cast<double>(c.measures.max_prob), c.cost_fraction());
        return p.continue_stats(cell).count > 0;
    });
}

void finish(benchmark::State& st, long allocs_before, double stops) {
    st.counters["allocs"] = static_cast<double>(g_allocations.load() - allocs_before);
    if (stops >= 0) st.counters["stop"] = stops / static_cast<double>(st.iterations());
    st.SetItemsProcessed(st.iterations());
}

// ---- decide ----------------------------------------------------------------------------------

template <class Policy>
void time_decide(benchmark::State& st, const Policy& p, const fixture& f) {
    const auto& ctx = f.contexts;
    const std::size_t n = ctx.size();
    std::size_t i = 0;
    double stops = 0;
    const long before = g_allocations.load();
    for (auto _ : st) {
        const decision d = p.decide(ctx[i]);
        benchmark::DoNotOptimize(d);
        stops += d == decision::stop ? 1.0 : 0.0;
        if (++i == n) i = 0;
    }
    finish(st, before, stops);
}

void max_prob_decide(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    const policy::max_prob p(0.95);
    time_decide(st, p, f);
}

void dee_decide(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    policy::dee<> p;
    warm_up(p, f);
    if (!every_cell_visited(p, f)) {
        st.SkipWithError("a context lands in an unvisited DEE cell: decide() would not take the table path");
        return;
    }
    time_decide(st, p, f);
}

template <class Policy>
void time_begin_decide(benchmark::State& st, Policy& p, const fixture& f) {
    const auto& ctx = f.contexts;
    const std::size_t n = ctx.size();
    std::size_t i = 0, index = 0;
    double stops = 0;
    const long before = g_allocations.load();
    for (auto _ : st) {
        const sample_info s{index++, std::nullopt};
        exit_context<float> c = ctx[i];
        c.sample = &s;
        benchmark::DoNotOptimize(hooks::first_check(p, s));
        const decision d = p.decide(c);
        benchmark::DoNotOptimize(d);
        stops += d == decision::stop ? 1.0 : 0.0;
        if (++i == n) i = 0;
    }
    finish(st, before, stops);
}

void dee_begin_decide(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    policy::dee<> p;
    warm_up(p, f);
    if (!every_cell_visited(p, f)) {
        st.SkipWithError("a context lands in an unvisited DEE cell: decide() would not take the table path");
        return;
    }
    time_begin_decide(st, p, f);
}

void ucb_exit_begin_decide(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    policy::ucb_exit<> p;
    warm_up(p, f);
    if (p.arm_stats(heads - 1).count == 0) {
        st.SkipWithError("ucb_exit has an unpulled arm: begin() would take the early return");
        return;
    }
    time_begin_decide(st, p, f);
}

// ---- update ----------------------------------------------------------------------------------

template <class Policy>
void time_update(benchmark::State& st, Policy& p, const fixture& f) {
    const auto steps = static_cast<std::size_t>(st.range(0));
    std::vector<std::vector<episode_step<float>>> pool(episode_pool);
    for (std::size_t e = 0; e < episode_pool; ++e) f.build_episode(steps, e, pool[e]);
    std::vector<episode<float>> episodes;
    for (const auto& s : pool) episodes.push_back(f.as_episode(s));
    std::size_t i = 0;
    const long before = g_allocations.load();
    for (auto _ : st) {
        p.update(episodes[i]);
        benchmark::ClobberMemory();
        if (++i == episode_pool) i = 0;
    }
    finish(st, before, -1);
    st.counters["steps"] = static_cast<double>(steps);
}

void ucb_exit_update(benchmark::State& st) {
    const auto& f = fixture_for(10);
    policy::ucb_exit<> p;
    warm_up(p, f);
    time_update(st, p, f);
}

void dee_update(benchmark::State& st) {
    const auto& f = fixture_for(10);
    policy::dee<> p;
    warm_up(p, f);
    time_update(st, p, f);
}

// ---- the measures the runner computes at every head ------------------------------------------

void max_prob_only(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    const std::size_t n = f.logits.size();
    std::size_t i = 0;
    const long before = g_allocations.load();
    for (auto _ : st) {
        benchmark::DoNotOptimize(earlyexit::max_prob(f.logits[i]));
        if (++i == n) i = 0;
    }
    finish(st, before, -1);
}

void measure_all(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    const std::size_t n = f.logits.size();
    std::vector<float> probs(f.classes);
    std::size_t i = 0;
    const long before = g_allocations.load();
    for (auto _ : st) {
        const auto c = earlyexit::measure(f.logits[i], probs);
        benchmark::DoNotOptimize(c);
        benchmark::ClobberMemory();
        if (++i == n) i = 0;
    }
    finish(st, before, -1);
}

}  // namespace

BENCHMARK(max_prob_decide)->Arg(10)->Arg(1000);
BENCHMARK(dee_decide)->Arg(10)->Arg(1000);
BENCHMARK(dee_begin_decide)->Arg(10);
BENCHMARK(ucb_exit_begin_decide)->Arg(10);
BENCHMARK(ucb_exit_update)->Arg(4)->Arg(8);
BENCHMARK(dee_update)->Arg(4)->Arg(8);
BENCHMARK(max_prob_only)->Arg(10)->Arg(1000);
BENCHMARK(measure_all)->Name("measure")->Arg(10)->Arg(1000);

BENCHMARK_MAIN();
