// Per-call cost of Predictive Exit (policy::predictive) against a threshold's and against
// checking every head.
//
// The policies are bound to a 16-head network_info (a head after each of 16 stages) so that
// from every context below (heads 0..6) all R = 8 rounds can run: no round is cut short by
// the final head. Contexts are built from real logits (C classes, one class boosted by a level
// from 0 to ln C + 6, so logit extrema spread around the thresholds) and rotate over 63
// prebuilt ones (7 heads x 9 levels). The thresholds T_k are the mean logit extremum of the
// contexts at head k (what calibration computes), the same for every case.
//
//   max_prob_decide/C              policy::max_prob's decide(): the baseline of
//   predictive_decide/C            predictive's decide() (extremum > beta * T_k)
//   every_head_next_check/C        check_every_head's next_check() (head + 1): the baseline of
//   predictive_next_check/C        the predictor (goal at C = 10: <= 100 ns), beta 1.5: rounds
//                                  fire at a mix of depths (counter "jump": the mean head jump)
//   predictive_next_check_worst/C  the predictor when no round fires (beta 1e6): all R rounds
//                                  run, O(R * C), then the horizon
// Counters: stop = fraction of decide() calls that stopped; jump = mean head jump predicted;
// allocs = heap allocations (operator new) counted inside the timed loop (expected 0).
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
#include <earlyexit/confidence.hpp>
#include <earlyexit/context.hpp>
#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/selector.hpp>
#include <earlyexit/policy/predictive.hpp>
#include <earlyexit/policy/static.hpp>

// ---- allocation counter: global operator new replaced (counted, then malloc) ------------------
// The tests' counting allocator (this executable is its one translation unit).
#include "../tests/counting_new.hpp"

namespace {
std::atomic<long>& g_allocations = earlyexit_test::allocations;
}  // namespace

namespace {

using namespace earlyexit;

constexpr std::size_t width = 256, heads = 16, context_heads = 7, levels = 9;
constexpr double typical_beta = 1.5, silent_beta = 1e6;

/// Everything a benchmark at C classes needs: the network_info (spans into this object, which
/// never moves), the rotating contexts with their logits, and the thresholds.
struct fixture {
    std::size_t classes;
    std::array<std::size_t, heads> positions{};
    std::array<double, heads> stage_macs{}, head_macs{};
    network_info net;
    std::vector<std::vector<float>> logits;  // one per context
    std::vector<std::vector<float>> probs;
    std::vector<exit_context<float>> contexts;  // heads 0..6, 9 levels each
    std::vector<double> thresholds;             // T_k, one per head

    explicit fixture(std::size_t c) : classes(c) {
        for (std::size_t k = 0; k < heads; ++k) positions[k] = k;
        stage_macs.fill(double(width) * width);
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
        for (std::size_t l = 0; l < levels; ++l)
            for (std::size_t k = 0; k < context_heads; ++k) {
                std::vector<float> z(c);
                for (auto& v : z) v = noise(rng);
                z[l % c] += static_cast<float>(l) / static_cast<float>(levels - 1) *
                            (std::log(static_cast<float>(c)) + 6.f);
                logits.push_back(std::move(z));
                probs.emplace_back(c);
            }
        std::vector<double> sum(context_heads, 0.0);
        for (std::size_t i = 0; i < logits.size(); ++i) {
            const std::size_t k = i % context_heads;
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
            sum[k] += static_cast<double>(x.measures.logit_extremum);
        }
        // Heads past the contexts' reach get the mean over all of them (they are only compared).
        double all = 0;
        for (double s : sum) all += s;
        thresholds.assign(heads, all / double(logits.size()));
        for (std::size_t k = 0; k < context_heads; ++k) thresholds[k] = sum[k] / double(levels);
    }

    [[nodiscard]] policy::predictive make(double beta, bool predict = true) const {
        policy::predictive p({.beta = beta, .predict = predict}, thresholds);
        p.prepare(net);
        return p;
    }
};

const fixture& fixture_for(std::size_t classes) {
    static const fixture f10(10), f1000(1000);
    return classes == 1000 ? f1000 : f10;
}

void finish(benchmark::State& st, long allocs_before) {
    st.counters["allocs"] = static_cast<double>(g_allocations.load() - allocs_before);
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
    finish(st, before);
    st.counters["stop"] = stops / static_cast<double>(st.iterations());
}

void max_prob_decide(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    time_decide(st, policy::max_prob(0.95), f);
}

void predictive_decide(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    time_decide(st, f.make(typical_beta), f);
}

// ---- next_check: the predictor ---------------------------------------------------------------

void time_next_check(benchmark::State& st, policy::predictive p, const fixture& f) {
    const auto& ctx = f.contexts;
    const std::size_t n = ctx.size();
    std::size_t i = 0;
    double jumps = 0;
    const long before = g_allocations.load();
    for (auto _ : st) {
        const std::size_t next = p.next_check(ctx[i]);
        benchmark::DoNotOptimize(next);
        jumps += static_cast<double>(next - ctx[i].head);
        if (++i == n) i = 0;
    }
    finish(st, before);
    st.counters["jump"] = jumps / static_cast<double>(st.iterations());
}

void every_head_next_check(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    time_next_check(st, f.make(typical_beta, false), f);
}

void predictive_next_check(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    time_next_check(st, f.make(typical_beta), f);
}

void predictive_next_check_worst(benchmark::State& st) {
    const auto& f = fixture_for(static_cast<std::size_t>(st.range(0)));
    time_next_check(st, f.make(silent_beta), f);
}

// ---- DVFS selector (frequency() after a prediction) -------------------------------------------

/// A domain of n levels from 0.5 to 2 GHz, 0.8 to 1.2 V, with static power and switch costs.
dvfs::platform_model model_of(std::size_t n) {
    std::vector<dvfs::level> lv(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double x = n == 1 ? 1.0 : static_cast<double>(i) / static_cast<double>(n - 1);
        lv[i] = {0.5e9 + 1.5e9 * x, 0.8 + 0.4 * x};
    }
    return {dvfs::frequency_domain("bench", lv, {.static_w = 2, .capacitance_f = 1e-9, .switch_latency_s = 5e-5,
                                                  .switch_energy_j = 1e-4}),
            1e10};
}

/// choose() over a stream of contexts: the next head and the time left vary, so every level
/// is tried in some calls (Arg: levels in the table; the objective and the reserve as named).
void time_selector(benchmark::State& st, dvfs::options o) {
    const auto& f = fixture_for(10);
    dvfs::selector sel(model_of(static_cast<std::size_t>(st.range(0))), o);
    sel.prepare(f.net);
    std::vector<frequency_context<float>> ctx;
    std::mt19937 rng(3);
    for (std::size_t i = 0; i < 64; ++i) {
        frequency_context<float> c;
        c.next_head = 1 + rng() % (heads - 1);
        c.stages_run = rng() % (c.next_head + 1);
        c.deadline_seconds = 1e-4 * static_cast<double>(1 + rng() % 40);
        c.level = rng() % static_cast<std::size_t>(st.range(0));
        ctx.push_back(c);
    }
    std::size_t i = 0;
    double level_sum = 0;
    const long before = g_allocations.load();
    for (auto _ : st) {
        const auto l = sel.choose(ctx[i]);
        benchmark::DoNotOptimize(l);
        level_sum += static_cast<double>(l.value_or(0));
        if (++i == ctx.size()) i = 0;
    }
    finish(st, before);
    st.counters["level"] = level_sum / static_cast<double>(st.iterations());
}

void selector_lowest_level(benchmark::State& st) { time_selector(st, {}); }
void selector_least_energy(benchmark::State& st) { time_selector(st, {.objective = dvfs::objective::least_energy}); }
void selector_reference(benchmark::State& st) { time_selector(st, {.rule = dvfs::rule::reference}); }

}  // namespace

BENCHMARK(max_prob_decide)->Arg(10)->Arg(1000);
BENCHMARK(predictive_decide)->Arg(10)->Arg(1000);
BENCHMARK(every_head_next_check)->Arg(10)->Arg(1000);
BENCHMARK(predictive_next_check)->Arg(10)->Arg(1000);
BENCHMARK(predictive_next_check_worst)->Arg(10)->Arg(1000);
BENCHMARK(selector_lowest_level)->Arg(3)->Arg(19);
BENCHMARK(selector_least_energy)->Arg(3)->Arg(19);
BENCHMARK(selector_reference)->Arg(3)->Arg(19);

BENCHMARK_MAIN();
