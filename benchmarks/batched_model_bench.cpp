// The CIFAR-10 demo network (examples/common/cifar_net.hpp) batched against one sample at a time.
//
// Both variants run the plain network, every stage and the final head, on the same 64 inputs
// (deterministic 32x32 patterns; the cost does not depend on the pixels), input normalization
// included, on one thread (Eigen without OpenMP: Eigen::nbThreads() is 1, checked):
//   per_sample          the per-sample network (model.network(), a feature_state), one by one:
//                       the baseline, what basic_runner runs
//   batched/B           batched_model (examples/common/batched_model.hpp) on batches of B rows
//                       (B = 1, 8, 64): each convolution one GEMM over the B rows
// mobilenet_per_sample and mobilenet_batched/B (B = 1, 8, 16) do the same for MobileNetV2 on
// cropped 224x224 inputs (the final classifier head).
// items_per_second is samples per second in all; allocs = heap allocations (operator new)
// inside the timed loop (expected 0). Compiled as the demos are (-march=native). Run with
// --benchmark_enable_random_interleaving=true --benchmark_repetitions=N on a noisy machine.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <earlyexit/earlyexit.hpp>

#include "common/batched_model.hpp"
#include "common/cifar_net.hpp"
#include "common/image.hpp"
#include "common/mobilenet_v2.hpp"

// The tests' counting allocator (this executable is its one translation unit).
#include "../tests/counting_new.hpp"

namespace {

using namespace earlyexit;
using namespace earlyexit::demo;

constexpr std::size_t pool = 64;  // inputs cycled through; the largest batch

const cifar_net& model() {
    static const cifar_net m(std::filesystem::path(EARLYEXIT_SOURCE_DIR) / "models" / "cifar10_multiexit.safetensors");
    return m;
}

const std::vector<std::vector<std::uint8_t>>& inputs() {
    static const auto in = [] {
        std::vector<std::vector<std::uint8_t>> v(pool, std::vector<std::uint8_t>(32 * 32 * 3));
        for (std::size_t i = 0; i < pool; ++i)
            for (std::size_t p = 0; p < v[i].size(); ++p) v[i][p] = static_cast<std::uint8_t>((p * 37 + i * 101 + p / 97) % 256);
        return v;
    }();
    return in;
}

void finish(benchmark::State& st, long allocs_before, std::size_t samples) {
    st.counters["allocs"] = static_cast<double>(earlyexit_test::allocations.load() - allocs_before);
    st.counters["eigen_threads"] = static_cast<double>(Eigen::nbThreads());
    st.SetItemsProcessed(static_cast<std::int64_t>(samples));
}

void per_sample(benchmark::State& st) {
    const auto net = model().network();
    auto state = model().make_state();
    std::vector<float> logits(net.num_classes()), ws(net.workspace_size());
    const std::size_t last = net.num_heads() - 1;
    std::size_t i = 0, samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        model().set_input(state, inputs()[i]);
        for (std::size_t p = 0; p < net.num_stages(); ++p) net.run_stage(p, state);
        net.run_head(last, state, logits, ws);
        benchmark::DoNotOptimize(logits.data());
        i = (i + 1) % pool;
        ++samples;
    }
    finish(st, before, samples);
}

void batched(benchmark::State& st) {
    const auto rows = static_cast<std::size_t>(st.range(0));
    const batched_model net(model(), rows);
    auto state = net.make_state();
    const network_info info = net.info();
    std::vector<float> logits(rows * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> all(rows);
    for (std::size_t r = 0; r < rows; ++r) all[r] = r;
    const std::size_t last = info.heads - 1;
    std::size_t i = 0, samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        for (std::size_t r = 0; r < rows; ++r) model().set_input_row(state, r, inputs()[(i + r) % pool]);
        state.begin(model().input_shape(), rows);
        for (std::size_t p = 0; p < info.stages; ++p) net.run_batch_stage(p, state, rows);
        net.run_batch_head(last, state, all, logits, ws);
        benchmark::DoNotOptimize(logits.data());
        i = (i + rows) % pool;
        samples += rows;
    }
    finish(st, before, samples);
}

// ---- MobileNetV2 (examples/common/mobilenet_v2.hpp), the same two ways, up to 16 rows ----

const mobilenet_v2& imagenet_model() {
    static const mobilenet_v2 m(std::filesystem::path(EARLYEXIT_SOURCE_DIR) / "models" / "mobilenet_v2_imagenet.safetensors");
    return m;
}

/// Two 224x224 squares (a cropped input: only the normalization is left, as in the demo).
const std::vector<image_u8>& squares() {
    static const auto in = [] {
        std::vector<image_u8> v;
        for (std::size_t i = 0; i < 2; ++i) {
            image_u8 im(224, 224);
            for (std::size_t p = 0; p < im.pixels.size(); ++p) im.pixels[p] = static_cast<std::uint8_t>((p * 37 + i * 101 + p / 97) % 256);
            v.push_back(std::move(im));
        }
        return v;
    }();
    return in;
}

void mobilenet_per_sample(benchmark::State& st) {
    const auto& m = imagenet_model();
    const auto net = m.network();
    auto state = m.make_state();
    std::vector<float> logits(net.num_classes()), ws(net.workspace_size());
    const std::size_t last = net.num_heads() - 1;
    std::size_t i = 0, samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        m.set_cropped_input(state, squares()[i % 2]);
        for (std::size_t p = 0; p < net.num_stages(); ++p) net.run_stage(p, state);
        net.run_head(last, state, logits, ws);
        benchmark::DoNotOptimize(logits.data());
        ++i;
        ++samples;
    }
    finish(st, before, samples);
}

void mobilenet_batched(benchmark::State& st) {
    const auto& m = imagenet_model();
    const auto rows = static_cast<std::size_t>(st.range(0));
    const batched_model net(m, rows);
    auto state = net.make_state();
    const network_info info = net.info();
    std::vector<float> logits(rows * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> all(rows);
    for (std::size_t r = 0; r < rows; ++r) all[r] = r;
    std::size_t samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        for (std::size_t r = 0; r < rows; ++r) m.set_cropped_input_row(state, r, squares()[r % 2]);
        state.begin(m.input_shape(), rows);
        for (std::size_t p = 0; p < info.stages; ++p) net.run_batch_stage(p, state, rows);
        net.run_batch_head(info.heads - 1, state, all, logits, ws);
        benchmark::DoNotOptimize(logits.data());
        samples += rows;
    }
    finish(st, before, samples);
}

}  // namespace

BENCHMARK(per_sample)->Unit(benchmark::kMicrosecond);
BENCHMARK(batched)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);
BENCHMARK(mobilenet_per_sample)->Unit(benchmark::kMillisecond);
BENCHMARK(mobilenet_batched)->Arg(1)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
