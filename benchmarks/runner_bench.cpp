// The runner against a hand-written loop over the same stages and heads.
//
// Network: 8 dense 256x256 + ReLU stages, a 10-class linear head after each. Inputs cycle
// through a fixed pool, so every variant does the same work on the same samples:
//   hand_full / runner_full             all stages + the final head (overhead of the runner)
//   hand_max_prob / runner_max_prob     a head after every stage, exit when max-prob >= 0.95
//   runner_max_prob_dynamic             the same through std::function stages and any_head
//   runner_max_prob_any_policy          the same with a type-erased policy
//   replay_max_prob                     the same decisions replayed from a recorded trace
//   runner_dee / runner_ucb_exit        learning policies (policy::dee, policy::ucb_exit; default
//                                       options) beside runner_max_prob: warmed up on 4 passes over
//                                       the pool before timing, still learning (update()) while timed;
//                                       they exit elsewhere than max_prob, so compare time per stage
//                                       run as well as per sample (the counters)
//   batched_max_prob/B/T                the max_prob runs through parallel_runner in batches of B on
//                                       T threads, over rowwise_network (the same per-sample stages,
//                                       row by row): the batch bookkeeping's cost against
//                                       runner_max_prob at T = 1 (a GEMM network gains from the
//                                       batch itself: batched_model_bench). Items are samples, the
//                                       time is wall time. --batch N / --threads N pick one case;
//                                       the default runs B in {1, 8, 64} x T in {1, 2}.
//   stream_max_prob/B                   the same samples through stream_runner with B rows on one
//                                       thread (continuous batching: exits' rows refilled from the
//                                       samples, new ones catching up alone): its bookkeeping
//                                       (catch-up rounds, append's state swaps) against
//                                       batched_max_prob/B/1. Row by row, so width brings no gain
//                                       here; the gain on a GEMM network is in the demos' grid.
// Counters: stages/sample and heads/sample confirm that each pair did the same work;
// last_stage_rows/call (batched and stream rows) is the width the last stage ran at.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <earlyexit/earlyexit.hpp>
#include <earlyexit/stream_runner.hpp>

namespace {

constexpr int width = 256, classes = 10, depth = 8, pool = 64;
constexpr double threshold = 0.95;

struct state {
    Eigen::VectorXf x = Eigen::VectorXf::Zero(width);
    Eigen::VectorXf tmp = Eigen::VectorXf::Zero(width);
};

struct dense_relu {
    Eigen::MatrixXf w;
    void operator()(state& s) const noexcept {
        s.tmp.noalias() = w * s.x;
        s.x = s.tmp.cwiseMax(0.f);
    }
};

struct model {
    std::vector<dense_relu> stages;
    std::vector<earlyexit::linear_head<float>> heads;
    std::vector<Eigen::VectorXf> inputs;

    model() {
        std::mt19937 rng(1);
        std::normal_distribution<float> n(0.f, 1.f);
        auto random = [&](int r, int c, float scale) {
            Eigen::MatrixXf m(r, c);
            for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = scale * n(rng);
            return m;
        };
        for (int i = 0; i < depth; ++i) {
            stages.push_back({random(width, width, 1.4f / std::sqrt(static_cast<float>(width)))});
            heads.emplace_back(random(classes, width, 0.25f), Eigen::VectorXf::Zero(classes));
        }
        for (int i = 0; i < pool; ++i) inputs.push_back(random(width, 1, 1.f));
    }
};

const model& the_model() {
    static const model m;
    return m;
}

const auto features = [](const state& s) -> const Eigen::VectorXf& { return s.x; };

auto static_network() {
    const auto& m = the_model();
    auto h = [&](int i) { return earlyexit::project(m.heads[static_cast<std::size_t>(i)], features); };
    // Stages refer to the model's weights (heads are small copies): every variant reads the same memory.
    auto s = [&](int i) { return std::cref(m.stages[static_cast<std::size_t>(i)]); };
    const earlyexit::stage_info info{.macs = double(width) * width};
    return earlyexit::make_network<state>()
        .stage(s(0), info).exit(h(0)).stage(s(1), info).exit(h(1)).stage(s(2), info).exit(h(2))
        .stage(s(3), info).exit(h(3)).stage(s(4), info).exit(h(4)).stage(s(5), info).exit(h(5))
        .stage(s(6), info).exit(h(6)).stage(s(7), info).exit(h(7))
        .build();
}

auto dynamic_network() {
    const auto& m = the_model();
    earlyexit::dynamic_network_builder<state> b;
    for (int i = 0; i < depth; ++i)
        b.stage(std::cref(m.stages[static_cast<std::size_t>(i)]), {.macs = double(width) * width})
            .exit(earlyexit::project(m.heads[static_cast<std::size_t>(i)], features));
    return b.build();
}

void report(benchmark::State& st, double stages, double heads) {
    const auto n = static_cast<double>(st.iterations());
    st.counters["stages/sample"] = stages / n;
    st.counters["heads/sample"] = heads / n;
    st.SetItemsProcessed(st.iterations());
}

// ---- baselines: hand-written loops -----------------------------------------------------------

void hand_full(benchmark::State& st) {
    const auto& m = the_model();
    state s;
    std::array<float, classes> logits{};
    std::size_t i = 0;
    for (auto _ : st) {
        s.x = m.inputs[i++ % pool];
        for (const auto& stage : m.stages) stage(s);
        m.heads.back()(s.x, logits);
        benchmark::DoNotOptimize(earlyexit::top1(logits));
    }
    report(st, depth * static_cast<double>(st.iterations()), static_cast<double>(st.iterations()));
}

void hand_max_prob(benchmark::State& st) {
    const auto& m = the_model();
    state s;
    std::array<float, classes> logits{};
    std::size_t i = 0;
    double stages = 0, heads = 0;
    for (auto _ : st) {
        s.x = m.inputs[i++ % pool];
        std::size_t answer = 0;
        for (int k = 0; k < depth; ++k) {
            m.stages[static_cast<std::size_t>(k)](s);
            m.heads[static_cast<std::size_t>(k)](s.x, logits);
            stages += 1;
            heads += 1;
            answer = earlyexit::top1(logits);
            if (earlyexit::max_prob(logits) >= threshold) break;
        }
        benchmark::DoNotOptimize(answer);
    }
    report(st, stages, heads);
}

// ---- the runner ------------------------------------------------------------------------------

template <class Network, class Policy>
void run_runner(benchmark::State& st, const Network& net, Policy policy) {
    const auto& m = the_model();
    auto runner = earlyexit::make_runner(net, std::move(policy));
    state s;
    std::size_t i = 0;
    double stages = 0, heads = 0;
    for (auto _ : st) {
        s.x = m.inputs[i++ % pool];
        const auto r = runner.run_unchecked(s, {});
        stages += static_cast<double>(r.positions_run);
        heads += static_cast<double>(r.heads_evaluated);
        benchmark::DoNotOptimize(r.predicted);
    }
    report(st, stages, heads);
}

void runner_full(benchmark::State& st) { run_runner(st, static_network(), earlyexit::policy::full{}); }
void runner_max_prob(benchmark::State& st) { run_runner(st, static_network(), earlyexit::policy::max_prob{threshold}); }
void runner_max_prob_dynamic(benchmark::State& st) {
    run_runner(st, dynamic_network(), earlyexit::policy::max_prob{threshold});
}
void runner_max_prob_any_policy(benchmark::State& st) {
    run_runner(st, static_network(), earlyexit::any_policy<float>(earlyexit::policy::max_prob{threshold}));
}

// ---- learning policies ------------------------------------------------------------------------

template <class Network, class Policy>
void run_learning_runner(benchmark::State& st, const Network& net, Policy policy) {
    const auto& m = the_model();
    auto runner = earlyexit::make_runner(net, std::move(policy));
    state s;
    std::size_t i = 0;
    for (; i < 4 * pool; ++i) {  // warm-up, untimed: the table leaves its from-empty exploration
        s.x = m.inputs[i % pool];
        benchmark::DoNotOptimize(runner.run_unchecked(s, {i, std::nullopt}).predicted);
    }
    double stages = 0, heads = 0;
    for (auto _ : st) {
        s.x = m.inputs[i % pool];
        const auto r = runner.run_unchecked(s, {i++, std::nullopt});
        stages += static_cast<double>(r.positions_run);
        heads += static_cast<double>(r.heads_evaluated);
        benchmark::DoNotOptimize(r.predicted);
    }
    report(st, stages, heads);
}

void runner_dee(benchmark::State& st) { run_learning_runner(st, static_network(), earlyexit::policy::dee<>{}); }
void runner_ucb_exit(benchmark::State& st) {
    run_learning_runner(st, static_network(), earlyexit::policy::ucb_exit<>{});
}

// ---- replay ----------------------------------------------------------------------------------

void replay_max_prob(benchmark::State& st) {
    const auto& m = the_model();
    const auto net = static_network();
    state s;
    const auto t = earlyexit::record_trace(net, s, pool, [&](std::size_t i, state& x) {
        x.x = m.inputs[i];
        return std::optional<std::size_t>();
    });
    earlyexit::replayer<float, earlyexit::policy::max_prob> r(t, earlyexit::policy::max_prob{threshold});
    std::size_t i = 0;
    double stages = 0, heads = 0;
    for (auto _ : st) {
        const auto out = r.run(i++ % pool);
        stages += static_cast<double>(out.positions_run);
        heads += static_cast<double>(out.heads_evaluated);
        benchmark::DoNotOptimize(out.predicted);
    }
    report(st, stages, heads);
}

// ---- batched and threaded --------------------------------------------------------------------

void batched_max_prob(benchmark::State& st) {
    const auto& m = the_model();
    const auto net = static_network();
    using rows_t = earlyexit::rowwise_network<decltype(net)>;
    const rows_t rows(net);
    const auto batch = static_cast<std::size_t>(st.range(0)), threads = static_cast<std::size_t>(st.range(1));
    earlyexit::parallel_runner<rows_t, earlyexit::policy::max_prob> runner(
        rows, earlyexit::policy::max_prob{threshold}, {.threads = threads, .batch = batch},
        [&] { return earlyexit::rowwise_state<state>(batch, [] { return state{}; }); });
    std::vector<earlyexit::sample_info> samples(4 * pool);
    for (std::size_t i = 0; i < samples.size(); ++i) samples[i].index = i;
    std::vector<earlyexit::sample_outcome> out(samples.size());
    const auto fill = [&](earlyexit::rowwise_state<state>& s, std::size_t first, std::size_t n) noexcept {
        for (std::size_t r = 0; r < n; ++r) s.row(r).x = m.inputs[(first + r) % pool];
    };
    double stages = 0, heads = 0;
    for (auto _ : st) {
        runner.run(samples, fill, out);
        for (const auto& o : out) {
            stages += static_cast<double>(o.positions_run);
            heads += static_cast<double>(o.heads_evaluated);
        }
    }
    const auto n = static_cast<double>(st.iterations() * samples.size());
    st.counters["stages/sample"] = stages / n;
    st.counters["heads/sample"] = heads / n;
    st.counters["last_stage_rows/call"] = runner.stats().rows_per_call(depth - 1);
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(samples.size()));
}

void stream_max_prob(benchmark::State& st) {
    const auto& m = the_model();
    const auto net = static_network();
    using rows_t = earlyexit::rowwise_network<decltype(net)>;
    const rows_t rows(net);
    const auto capacity = static_cast<std::size_t>(st.range(0));
    earlyexit::stream_runner<rows_t, earlyexit::policy::max_prob> runner(
        rows, earlyexit::policy::max_prob{threshold}, {.capacity = capacity},
        [&] { return earlyexit::rowwise_state<state>(capacity, [] { return state{}; }); });
    std::vector<earlyexit::sample_info> samples(4 * pool);
    for (std::size_t i = 0; i < samples.size(); ++i) samples[i].index = i;
    std::vector<earlyexit::sample_outcome> out(samples.size());
    const auto fill = [&](earlyexit::rowwise_state<state>& s, std::size_t first, std::size_t n) noexcept {
        for (std::size_t r = 0; r < n; ++r) s.row(r).x = m.inputs[(first + r) % pool];
    };
    double stages = 0, heads = 0;
    for (auto _ : st) {
        runner.run_in_order(samples, fill, out);
        for (const auto& o : out) {
            stages += static_cast<double>(o.positions_run);
            heads += static_cast<double>(o.heads_evaluated);
        }
    }
    const auto n = static_cast<double>(st.iterations() * samples.size());
    st.counters["stages/sample"] = stages / n;
    st.counters["heads/sample"] = heads / n;
    const auto& s = runner.stats();
    st.counters["last_stage_rows/call"] = s.rows_per_call(depth - 1);
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(samples.size()));
}

/// Takes "--batch N" / "--threads N" (or =N) out of argv: the batched cases to register.
std::vector<long> take_flag(int& argc, char** argv, const char* name, std::vector<long> fallback) {
    const std::size_t len = std::strlen(name);
    for (int i = 1; i < argc; ++i) {
        const char* value = nullptr;
        int used = 0;
        if (std::strcmp(argv[i], name) == 0 && i + 1 < argc) value = argv[i + 1], used = 2;
        else if (std::strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') value = argv[i] + len + 1, used = 1;
        if (!value) continue;
        char* end = nullptr;
        const long v = std::strtol(value, &end, 10);
        if (end == value || *end != '\0' || v < 1) {
            std::fprintf(stderr, "runner_bench: %s %s: must be a positive integer\n", name, value);
            std::exit(2);
        }
        for (int j = i; j + used < argc; ++j) argv[j] = argv[j + used];
        argc -= used;
        return {v};
    }
    return fallback;
}

}  // namespace

BENCHMARK(hand_full);
BENCHMARK(runner_full);
BENCHMARK(hand_max_prob);
BENCHMARK(runner_max_prob);
BENCHMARK(runner_max_prob_dynamic);
BENCHMARK(runner_max_prob_any_policy);
BENCHMARK(runner_dee);
BENCHMARK(runner_ucb_exit);
BENCHMARK(replay_max_prob);

int main(int argc, char** argv) {
    const auto batches = take_flag(argc, argv, "--batch", {1, 8, 64});
    const auto threads = take_flag(argc, argv, "--threads", {1, 2});
    for (const long t : threads)
        for (const long b : batches) benchmark::RegisterBenchmark("batched_max_prob", batched_max_prob)->Args({b, t})->UseRealTime();
    for (const long b : batches) benchmark::RegisterBenchmark("stream_max_prob", stream_max_prob)->Arg(b)->UseRealTime();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
