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
// With oneDNN built (EARLYEXIT_HAVE_DNNL; examples/common/dnnl_model.hpp), the same networks on
// it: onednn_fp32/B, onednn_bf16/B, mobilenet_onednn_fp32/B, mobilenet_onednn_bf16/B (blocked
// nChw16c maps; fp32 lets oneDNN pick Winograd). And one layer kind at a time, every layer of
// that kind of the network at B rows, Eigen (conv2d::run_batch) against oneDNN fp32 and bf16:
//   layers/<net>/<kind>/<backend>/B   kind: conv3x3 (standard k x k), pointwise (1x1),
//                                     depthwise (groups = channels); items = samples
// And each CIFAR-10 convolution alone at 64 rows on oneDNN fp32, with its GMAC/s (what the
// early exit's time is made of: the layers every sample runs against those it may skip):
//   conv/cifar10/<l>/onednn_fp32/64    l in stage order; counters: gmacs, kernel (oneDNN's)
// And the heads alone: every head of the network once on B rows (each on a state run to its
// stage, untimed), items = samples:
//   heads/<net>/<backend>/B            backend: eigen (batched_model's heads), onednn_eigen_heads
//                                      (oneDNN maps, each row converted to CHW for the Eigen
//                                      heads), onednn_fp32 / onednn_bf16 (the heads as oneDNN
//                                      pooling and inner-product primitives over the rows)
// And an early exit with a fixed schedule, every head evaluated on the rows still running and
// the batch compacted after it to the share of samples the demo's headline (margin, batch 64)
// sends on: 1.00, 0.73, 0.60, 0.47, 0.38, 0.29 of the rows reach stages 2-6 (what the CIFAR-10
// demo's grid printed), items = samples:
//   early_exit/cifar10/<backend>/64    backend as for heads/
// items_per_second is samples per second in all; allocs = heap allocations (operator new)
// inside the timed loop (expected 0 on Eigen; on oneDNN its execute allocates 8 per call
// inside libdnnl). Compiled as the demos are (-march=native). Run with
// --benchmark_enable_random_interleaving=true --benchmark_repetitions=N on a noisy machine.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/core.h>
#include <earlyexit/earlyexit.hpp>

#include "common/batched_model.hpp"
#include "common/cifar_net.hpp"
#include "common/image.hpp"
#include "common/mobilenet_v2.hpp"
#include "common/stage_program.hpp"
#if EARLYEXIT_HAVE_DNNL
#include "common/dnnl_model.hpp"
#endif

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

/// The batched network of `m` for `rows` rows on a backend: Eigen, or oneDNN in fp32 / bf16.
enum class backend { eigen, onednn_fp32, onednn_bf16 };

template <backend B, class M>
auto make_net(const M& m, std::size_t rows) {
#if EARLYEXIT_HAVE_DNNL
    if constexpr (B != backend::eigen) {
        dnnl_options o;
        o.precision = B == backend::onednn_bf16 ? dnnl_precision::bf16 : dnnl_precision::f32;
        return dnnl_model(m, rows, o);
    } else
#endif
    {
        return batched_model(m, rows);
    }
}

#if EARLYEXIT_HAVE_DNNL
/// bf16 runs only where oneDNN has bf16 kernels (AVX-512): elsewhere the benchmark is skipped
/// with that reason (true: skip it).
bool skip_bf16(benchmark::State& st, bool bf16) {
    if (!bf16 || dnnl_detail::cpu_has_bf16()) return false;
    st.SkipWithError("bf16 needs a CPU with AVX-512 (oneDNN's bf16 kernels)");
    return true;
}
#else
bool skip_bf16(benchmark::State&, bool) { return false; }
#endif

template <backend B>
void batched(benchmark::State& st) {
    if (skip_bf16(st, B == backend::onednn_bf16)) return;
    const auto rows = static_cast<std::size_t>(st.range(0));
    const auto net = make_net<B>(model(), rows);
    auto state = net.make_state();
    const network_info info = net.info();
    std::vector<float> logits(rows * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> all(rows);
    for (std::size_t r = 0; r < rows; ++r) all[r] = r;
    const std::size_t last = info.heads - 1;
    std::size_t i = 0, samples = 0;
    // One untimed pass first (oneDNN makes its primitives and memory objects then).
    for (std::size_t r = 0; r < rows; ++r) model().set_input_row(state, r, inputs()[r % pool]);
    state.begin(model().input_shape(), rows);
    for (std::size_t p = 0; p < info.stages; ++p) net.run_batch_stage(p, state, rows);
    net.run_batch_head(last, state, all, logits, ws);
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

template <backend B>
void mobilenet_batched(benchmark::State& st) {
    if (skip_bf16(st, B == backend::onednn_bf16)) return;
    const auto& m = imagenet_model();
    const auto rows = static_cast<std::size_t>(st.range(0));
    const auto net = make_net<B>(m, rows);
    auto state = net.make_state();
    const network_info info = net.info();
    std::vector<float> logits(rows * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> all(rows);
    for (std::size_t r = 0; r < rows; ++r) all[r] = r;
    std::size_t samples = 0;
    // One untimed pass first (oneDNN makes its primitives and memory objects then).
    for (std::size_t r = 0; r < rows; ++r) m.set_cropped_input_row(state, r, squares()[r % 2]);
    state.begin(m.input_shape(), rows);
    for (std::size_t p = 0; p < info.stages; ++p) net.run_batch_stage(p, state, rows);
    net.run_batch_head(info.heads - 1, state, all, logits, ws);
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

// ---- One layer kind at a time ----

enum class kind { conv3x3, pointwise, depthwise };

[[nodiscard]] kind kind_of(const nn::conv2d& c) {
    if (c.depthwise()) return kind::depthwise;
    return c.kernel() == 1 ? kind::pointwise : kind::conv3x3;
}

/// Every convolution of `m`'s stages, in stage order.
template <class M>
std::vector<nn::conv_step> steps_of(const M& m) {
    std::vector<nn::conv_step> out;
    for (std::size_t i = 0; i < m.num_stages(); ++i) {
        const auto p = m.stage(i).stage->program();
        out.insert(out.end(), p.steps.begin(), p.steps.end());
    }
    return out;
}

/// Every layer of kind K of `m` on `rows` rows of arbitrary maps, Eigen: conv2d::run_batch
/// between two buffers of the batch layout (their values do not change the cost).
template <class M, kind K>
void layers_eigen(benchmark::State& st, const M& m) {
    const auto rows = static_cast<std::size_t>(st.range(0));
    std::vector<nn::conv_step> steps;
    std::size_t floats = 0, ws = 0;
    for (const auto& c : steps_of(m)) {
        if (kind_of(*c.conv) != K) continue;
        steps.push_back(c);
        floats = std::max({floats, c.in.size(), c.conv->output_shape(c.in).size()});
        ws = std::max(ws, c.conv->batch_workspace_size(c.in, rows));
    }
    std::vector<float> x(rows * floats, 0.5f), y(rows * floats), work(ws);
    std::size_t samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        for (const auto& c : steps) c.conv->run_batch(x.data(), c.in, {rows, rows}, y.data(), work);
        benchmark::DoNotOptimize(y.data());
        samples += rows;
    }
    finish(st, before, samples);  // first: adding a counter allocates
    st.counters["layers"] = static_cast<double>(steps.size());
}

#if EARLYEXIT_HAVE_DNNL
/// The same on oneDNN (dnnl_model::run_convolution: each layer between its program's buffers).
template <class M, kind K, dnnl_precision P>
void layers_onednn(benchmark::State& st, const M& m) {
    if (skip_bf16(st, P == dnnl_precision::bf16)) return;
    const auto rows = static_cast<std::size_t>(st.range(0));
    dnnl_options o;
    o.precision = P;
    const dnnl_model net(m, rows, o);
    auto state = net.make_state();
    std::vector<std::size_t> ls;
    for (std::size_t l = 0; l < net.convolutions().size(); ++l)
        if (kind_of(*net.convolutions()[l].conv) == K) ls.push_back(l);
    for (const std::size_t l : ls) net.run_convolution(l, state, rows);  // untimed: makes the primitives
    std::size_t samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        for (const std::size_t l : ls) net.run_convolution(l, state, rows);
        samples += rows;
    }
    finish(st, before, samples);  // first: adding a counter allocates
    st.counters["layers"] = static_cast<double>(ls.size());
}
#endif

/// Every head of `net` (a batched network of m) once on `rows` rows; set(state, r) writes
/// input r. The states, one per head run to its stage, are made untimed.
template <class Net, class M, class Set>
void heads_of(benchmark::State& st, const Net& net, const M& m, Set set) {
    const auto rows = static_cast<std::size_t>(st.range(0));
    const network_info info = net.info();
    std::vector<typename Net::batch_state_type> states;
    std::vector<std::size_t> all(rows);
    for (std::size_t r = 0; r < rows; ++r) all[r] = r;
    std::vector<float> logits(rows * info.classes), ws(net.batch_workspace_size());
    for (std::size_t k = 0; k < info.heads; ++k) {
        auto& s = states.emplace_back(net.make_state());
        for (std::size_t r = 0; r < rows; ++r) set(s, r);
        s.begin(m.input_shape(), rows);
        for (std::size_t p = 0; p <= info.head_positions[k]; ++p) net.run_batch_stage(p, s, rows);
        net.run_batch_head(k, s, all, logits, ws);  // untimed: makes the primitives
    }
    std::size_t samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        for (std::size_t k = 0; k < info.heads; ++k) net.run_batch_head(k, states[k], all, logits, ws);
        benchmark::DoNotOptimize(logits.data());
        samples += rows;
    }
    finish(st, before, samples);  // first: adding a counter allocates
    st.counters["heads"] = static_cast<double>(info.heads);
}

/// The fixed early-exit schedule (see the file comment) on `net` at st.range(0) rows.
template <class Net>
void early_exit_of(benchmark::State& st, const Net& net) {
    const auto rows = static_cast<std::size_t>(st.range(0));
    const network_info info = net.info();
    constexpr std::array<double, 7> reach{1.0, 1.0, 0.73, 0.60, 0.47, 0.38, 0.29};  // per stage
    auto state = net.make_state();
    std::vector<float> logits(rows * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> list(rows), keep(rows);
    std::size_t samples = 0, i = 0;
    const auto pass = [&] {
        for (std::size_t r = 0; r < rows; ++r) model().set_input_row(state, r, inputs()[(i + r) % pool]);
        state.begin(model().input_shape(), rows);
        std::size_t n = rows;
        for (std::size_t p = 0, k = 0; p < info.stages; ++p) {
            net.run_batch_stage(p, state, n);
            if (k == info.heads || info.head_positions[k] != p) continue;
            for (std::size_t r = 0; r < n; ++r) list[r] = r;
            net.run_batch_head(k, state, std::span<const std::size_t>(list.data(), n),
                               std::span<float>(logits.data(), n * info.classes), ws);
            ++k;
            if (p + 1 >= info.stages) break;
            // Keep `next` rows spread evenly over the batch (the exits are spread out).
            const auto next = std::min(n, std::max<std::size_t>(1, static_cast<std::size_t>(reach[p + 1] * static_cast<double>(rows) + 0.5)));
            const std::size_t kept = next;
            for (std::size_t j = 0; j < kept; ++j) keep[j] = j * n / kept;
            net.compact(state, std::span<const std::size_t>(keep.data(), kept));
            n = kept;
        }
        benchmark::DoNotOptimize(logits.data());
    };
    pass();  // untimed: makes the primitives and memory objects of each row count met
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        pass();
        i = (i + rows) % pool;
        samples += rows;
    }
    finish(st, before, samples);
}

/// Registers the heads benchmarks of network `name` (model m; set(model, state, r) writes input r).
template <class M, class Set>
void register_heads(const char* name, const M& (*m)(), std::initializer_list<long> batches, Set set) {
    const auto add = [&](const std::string& label, auto fn) {
        auto* b = benchmark::RegisterBenchmark(label.c_str(), fn);
        for (const long r : batches) b->Arg(r);
        b->Unit(benchmark::kMicrosecond);
    };
    const auto setter = [m, set](auto& s, std::size_t r) { set(m(), s, r); };
    const std::string base = std::string("heads/") + name;
    add(base + "/eigen", [m, setter](benchmark::State& st) {
        heads_of(st, batched_model(m(), static_cast<std::size_t>(st.range(0))), m(), setter);
    });
#if EARLYEXIT_HAVE_DNNL
    const auto on_dnnl = [m, setter](dnnl_options o) {
        return [m, setter, o](benchmark::State& st) {
            if (skip_bf16(st, o.precision == dnnl_precision::bf16)) return;
            heads_of(st, dnnl_model(m(), static_cast<std::size_t>(st.range(0)), o), m(), setter);
        };
    };
    add(base + "/onednn_eigen_heads", on_dnnl({.eigen_heads = true}));
    add(base + "/onednn_fp32", on_dnnl({}));
    add(base + "/onednn_bf16", on_dnnl({.precision = dnnl_precision::bf16}));
#endif
}

#if EARLYEXIT_HAVE_DNNL
/// Convolution l of `m` alone on oneDNN fp32 at st.range(0) rows; counter gmacs (10^9
/// multiply-accumulates per second).
template <class M>
void one_convolution(benchmark::State& st, const M& m, std::size_t l) {
    const auto rows = static_cast<std::size_t>(st.range(0));
    const dnnl_model net(m, rows);
    auto state = net.make_state();
    net.run_convolution(l, state, rows);  // untimed: makes the primitive
    const nn::conv_step& c = net.convolutions()[l];
    std::size_t samples = 0;
    const long before = earlyexit_test::allocations.load();
    for (auto _ : st) {
        net.run_convolution(l, state, rows);
        samples += rows;
    }
    finish(st, before, samples);
    st.counters["gmacs"] = benchmark::Counter(c.conv->macs(c.in) * static_cast<double>(samples) * 1e-9, benchmark::Counter::kIsRate);
    st.SetLabel(fmt::format("{}x{}x{} -> {} k{} s{}: {}", c.in.c, c.in.h, c.in.w, c.conv->out_channels(), c.conv->kernel(),
                            c.conv->stride(), net.implementation(l, rows)));
}
#endif

/// Registers the layer benchmarks of network `name` (model m) at the given batch sizes.
template <class M>
void register_layers(const char* name, const M& (*m)(), std::initializer_list<long> batches) {
    const auto add = [&](const std::string& label, auto fn) {
        auto* b = benchmark::RegisterBenchmark(label.c_str(), fn);
        for (const long r : batches) b->Arg(r);
        b->Unit(benchmark::kMicrosecond);
    };
    const auto steps = steps_of(m());
    const auto each_kind = [&]<kind K>(const char* k) {
        if (std::none_of(steps.begin(), steps.end(), [](const nn::conv_step& c) { return kind_of(*c.conv) == K; }))
            return;  // the network has no layer of this kind
        const std::string base = std::string("layers/") + name + "/" + k;
        add(base + "/eigen", [m](benchmark::State& st) { layers_eigen<M, K>(st, m()); });
#if EARLYEXIT_HAVE_DNNL
        add(base + "/onednn_fp32", [m](benchmark::State& st) { layers_onednn<M, K, dnnl_precision::f32>(st, m()); });
        add(base + "/onednn_bf16", [m](benchmark::State& st) { layers_onednn<M, K, dnnl_precision::bf16>(st, m()); });
#endif
    };
    each_kind.template operator()<kind::conv3x3>("conv3x3");
    each_kind.template operator()<kind::pointwise>("pointwise");
    each_kind.template operator()<kind::depthwise>("depthwise");
}

const int registered = [] {
    register_layers<cifar_net>("cifar10", &model, {1, 64});
    register_layers<mobilenet_v2>("mobilenet_v2", &imagenet_model, {1, 8});
    register_heads<cifar_net>("cifar10", &model, {1, 64}, [](const cifar_net& mm, auto& s, std::size_t r) {
        mm.set_input_row(s, r, inputs()[r % pool]);
    });
    register_heads<mobilenet_v2>("mobilenet_v2", &imagenet_model, {1, 8}, [](const mobilenet_v2& mm, auto& s, std::size_t r) {
        mm.set_cropped_input_row(s, r, squares()[r % 2]);
    });
#if EARLYEXIT_HAVE_DNNL
    for (std::size_t l = 0; l < steps_of(model()).size(); ++l)
        benchmark::RegisterBenchmark(fmt::format("conv/cifar10/{:02}/onednn_fp32", l).c_str(),
                                     [l](benchmark::State& st) { one_convolution(st, model(), l); })
            ->Arg(64)
            ->Unit(benchmark::kMicrosecond);
#endif
    const auto early = [](const std::string& label, auto fn) {
        benchmark::RegisterBenchmark(("early_exit/cifar10/" + label).c_str(), fn)->Arg(64)->Unit(benchmark::kMicrosecond);
    };
    early("eigen", [](benchmark::State& st) { early_exit_of(st, batched_model(model(), 64)); });
#if EARLYEXIT_HAVE_DNNL
    early("onednn_eigen_heads", [](benchmark::State& st) { early_exit_of(st, dnnl_model(model(), 64, {.eigen_heads = true})); });
    early("onednn_fp32", [](benchmark::State& st) { early_exit_of(st, dnnl_model(model(), 64)); });
    early("onednn_bf16", [](benchmark::State& st) {
        if (skip_bf16(st, true)) return;
        early_exit_of(st, dnnl_model(model(), 64, {.precision = dnnl_precision::bf16}));
    });
#endif
    return 0;
}();

}  // namespace

BENCHMARK(per_sample)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(batched, backend::eigen)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);
BENCHMARK(mobilenet_per_sample)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(mobilenet_batched, backend::eigen)->Arg(1)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
#if EARLYEXIT_HAVE_DNNL
BENCHMARK_TEMPLATE(batched, backend::onednn_fp32)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(batched, backend::onednn_bf16)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(mobilenet_batched, backend::onednn_fp32)->Arg(1)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(mobilenet_batched, backend::onednn_bf16)->Arg(1)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
#endif

BENCHMARK_MAIN();
