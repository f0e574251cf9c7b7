// examples/common/dnnl_model.hpp: the oneDNN backend of the demo networks. Every head of every
// row equals the Eigen per-sample network (the reference) for the CIFAR-10 network, its
// fine-grained variant (maps held across stages) and MobileNetV2, in both layouts, at 1 to 64
// rows and across compaction and append; bf16 is close but not equal; runners give the Eigen
// path's exits; the heads run as oneDNN primitives (JIT kernels, not reference ones) on any list
// of rows, or on Eigen when asked; the hot path's allocations are oneDNN's own, a fixed few per
// primitive; bad capacities and inputs are refused by value.
//
// Tolerance (fp32): 1e-4 of the head's largest |logit| on that sample (at least 1), the issue's
// bound. oneDNN's direct and Winograd kernels sum in other orders than Eigen's GEMM (Winograd
// also transforms its tiles); measured here at most 9e-7 (CIFAR-10) and 2.4e-6 (MobileNetV2),
// while a wrong row, channel, tap or post-op moves logits by O(1). bf16 (8-bit mantissa):
// measured 6e-3 and 2.5e-2; checked below 0.1 and above 1e-4 (it must really round).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/batch_network.hpp>
#include <earlyexit/earlyexit.hpp>
#include <earlyexit/parallel_runner.hpp>
#include <earlyexit/policy/static.hpp>
#include <earlyexit/stream_runner.hpp>

#include "common/batched_model.hpp"
#include "common/cifar_net.hpp"
#include "common/dnnl_model.hpp"
#include "common/image.hpp"
#include "common/mobilenet_v2.hpp"
#include "counting_new.hpp"
#include "demo_fixtures.hpp"
#include "error_text.hpp"

using namespace earlyexit;
using namespace earlyexit::demo;
using earlyexit_test::what_of;
using namespace earlyexit_test::demo_fixtures;

namespace {

constexpr double tolerance = 1e-4;

using dnnl_cifar = dnnl_model<demo::detail::cifar_block, demo::detail::cifar_head>;
using dnnl_mobilenet = dnnl_model<demo::detail::mobilenet_stage, demo::detail::mobilenet_head>;

/// Every head of every row of a batch (rows of `sizes`, states of rows + 1) within `tol` of the
/// Eigen per-sample network, in `opt`; the largest relative error seen.
template <class Case>
double parity(const Case& c, dnnl_options opt, std::initializer_list<std::size_t> sizes, double tol) {
    std::size_t most = 0;
    for (const std::size_t n : sizes) most = std::max(most, n);
    std::vector<std::vector<std::vector<float>>> want;
    for (std::size_t i = 0; i < most; ++i) want.push_back(per_sample(c, c.input(static_cast<int>(i))));
    const dnnl_model net(c.model, most + 1, opt);
    double worst = 0;
    for (const std::size_t rows : sizes) {
        INFO(to_string(opt.precision) << ", " << to_string(opt.layout) << ", " << rows << " rows");
        std::size_t checked = 0;
        auto state = net.make_state(rows + 1);
        run_rows(c, net, state, rows, keep_all, [&](std::size_t k, std::size_t s, std::span<const float> got) {
            ++checked;
            INFO("head " << k << ", sample " << s);
            const double e = relative_error(got, want[s][k]);
            worst = std::max(worst, e);
            CHECK(e <= tol);
        });
        CHECK(checked == rows * c.model.num_heads());
    }
    return worst;
}

template <class Case>
void compaction_keeps_rows(const Case& c, dnnl_options opt) {
    // Drop rows 0 and 2 of 5 after head 0, then row 1 (sample 3) after head 1.
    std::vector<std::vector<std::vector<float>>> want;
    for (int i = 0; i < 5; ++i) want.push_back(per_sample(c, c.input(i)));
    std::vector<std::vector<std::size_t>> samples(c.model.num_heads());
    const dnnl_model net(c.model, 6, opt);
    auto state = net.make_state();
    run_rows(
        c, net, state, 5,
        [](std::size_t k, std::size_t rows) {
            if (k == 0) return std::vector<std::size_t>{1, 3, 4};
            if (k == 1) return std::vector<std::size_t>{0, 2};
            return keep_all(k, rows);
        },
        [&](std::size_t k, std::size_t s, std::span<const float> got) {
            samples[k].push_back(s);
            INFO("head " << k << ", sample " << s);
            CHECK(relative_error(got, want[s][k]) <= tolerance);
        });
    CHECK(samples[0] == std::vector<std::size_t>{0, 1, 2, 3, 4});
    CHECK(samples[1] == std::vector<std::size_t>{1, 3, 4});
    for (std::size_t k = 2; k < c.model.num_heads(); ++k) CHECK(samples[k] == std::vector<std::size_t>{1, 4});
}

/// Two states run apart to stage q, then b's rows appended to a's; the rest of the network on
/// the joined rows gives each sample's per-sample logits (held maps move with the rows).
template <class Case>
std::size_t append_joins_rows(const Case& c) {
    const dnnl_model net(c.model, 6);
    const network_info info = net.info();
    std::vector<std::vector<std::vector<float>>> want;
    for (int i = 0; i < 5; ++i) want.push_back(per_sample(c, c.input(i)));
    std::size_t checked = 0;
    for (std::size_t q = 0; q + 1 < info.stages; ++q) {
        auto a = net.make_state(), b = net.make_state();
        for (std::size_t r = 0; r < 3; ++r) c.set_row(a, r, c.input(static_cast<int>(r)));
        for (std::size_t r = 0; r < 2; ++r) c.set_row(b, r, c.input(static_cast<int>(3 + r)));
        a.begin(c.model.input_shape(), 3);
        b.begin(c.model.input_shape(), 2);
        for (std::size_t p = 0; p <= q; ++p) {
            net.run_batch_stage(p, a, 3);
            net.run_batch_stage(p, b, 2);
        }
        net.append(a, 3, b, 2);
        std::vector<float> logits(5 * info.classes), ws(net.batch_workspace_size());
        const std::vector<std::size_t> list{0, 1, 2, 3, 4};
        for (std::size_t p = q + 1, k = 0; p < info.stages; ++p) {
            net.run_batch_stage(p, a, 5);
            while (k < info.heads && info.head_positions[k] < p) ++k;
            if (k == info.heads || info.head_positions[k] != p) continue;
            net.run_batch_head(k, a, list, logits, ws);
            for (std::size_t r = 0; r < 5; ++r) {
                INFO("appended after stage " << q << ", head " << k << ", sample " << r);
                CHECK(relative_error(std::span<const float>(logits).subspan(r * info.classes, info.classes), want[r][k]) <=
                      tolerance);
                ++checked;
            }
        }
    }
    return checked;
}

/// Runs every stage on 5 rows and, at each head, evaluates only rows {1, 3, 4} (the gathered
/// path) and then rows {0, 1} (the first rows, read in place); each against the per-sample
/// network. Returns the logits checked.
template <class Case>
std::size_t heads_on_listed_rows(const Case& c, dnnl_options opt) {
    const dnnl_model net(c.model, 5, opt);
    const network_info info = net.info();
    std::vector<std::vector<std::vector<float>>> want;
    for (int i = 0; i < 5; ++i) want.push_back(per_sample(c, c.input(i)));
    auto state = net.make_state();
    for (std::size_t r = 0; r < 5; ++r) c.set_row(state, r, c.input(static_cast<int>(r)));
    state.begin(c.model.input_shape(), 5);
    std::vector<float> logits(5 * info.classes, -1.f), ws(net.batch_workspace_size());
    std::size_t checked = 0;
    for (std::size_t p = 0, k = 0; p < info.stages; ++p) {
        net.run_batch_stage(p, state, 5);
        if (k == info.heads || info.head_positions[k] != p) continue;
        for (const std::vector<std::size_t>& list : {std::vector<std::size_t>{1, 3, 4}, std::vector<std::size_t>{0, 1}}) {
            net.run_batch_head(k, state, list, std::span<float>(logits).first(list.size() * info.classes), ws);
            for (std::size_t j = 0; j < list.size(); ++j) {
                INFO("head " << k << ", row " << list[j]);
                CHECK(relative_error(std::span<const float>(logits).subspan(j * info.classes, info.classes),
                                     want[list[j]][k]) <= tolerance);
                ++checked;
            }
        }
        ++k;
    }
    return checked;
}

}  // namespace

TEST_CASE("dnnl_model is an earlyexit::batched_network with append for both demo networks") {
    STATIC_REQUIRE(batched_network_with_append<dnnl_cifar>);
    STATIC_REQUIRE(batched_network_with_append<dnnl_mobilenet>);
}

TEST_CASE("dnnl_model declares the per-sample network's costs and positions") {
    const dnnl_model net(cifar(), 4);
    const auto reference = cifar().network();  // info() points into the network: keep it
    const network_info a = net.info(), b = reference.info();
    CHECK(a.stages == b.stages);
    CHECK(a.heads == b.heads);
    CHECK(std::vector<std::size_t>(a.head_positions.begin(), a.head_positions.end()) ==
          std::vector<std::size_t>(b.head_positions.begin(), b.head_positions.end()));
    CHECK(net.num_convolutions() == 15);  // stem, 6 blocks x 2, 2 shortcuts
}

TEST_CASE("cifar_net on oneDNN fp32: every head of every row equals the Eigen network within 1e-4", "[dnnl]") {
    const cifar_case c{cifar()};
    CHECK(parity(c, {}, {1, 7, 64}, tolerance) < tolerance);
    CHECK(parity(c, {.allow_winograd = false}, {1, 5}, tolerance) < tolerance);
    CHECK(parity(c, {.layout = dnnl_layout::nhwc}, {1, 5}, tolerance) < tolerance);
}

TEST_CASE("the fine-grained cifar_net on oneDNN: half-block stages hold their input across stages", "[dnnl]") {
    const cifar_case c{cifar_fine()};
    CHECK(parity(c, {}, {1, 6}, tolerance) < tolerance);
    compaction_keeps_rows(c, {});
}

TEST_CASE("mobilenet_v2 on oneDNN fp32: every head of every row equals the Eigen network within 1e-4", "[dnnl]") {
    const mobilenet_case c{mobilenet()};
    CHECK(parity(c, {}, {1, 3}, tolerance) < tolerance);
    CHECK(parity(c, {.layout = dnnl_layout::nhwc}, {2}, tolerance) < tolerance);
}

TEST_CASE("the Imagenette mobilenet_v2 on oneDNN: exits without the shared classifier equal Eigen's, any rows", "[dnnl]") {
    const mobilenet_case c{imagenette()};
    CHECK(parity(c, {}, {1, 3}, tolerance) < tolerance);
    CHECK(heads_on_listed_rows(c, {}) > 0);
    const dnnl_model net(imagenette(), 2);
    for (std::size_t k = 0; k < net.info().heads; ++k) CHECK(net.head_implementation(k, 2).find("ref") == std::string::npos);
}

TEST_CASE("bf16 on oneDNN: close to fp32 but really rounded", "[dnnl]") {
    if (!dnnl_detail::cpu_has_bf16()) {  // an AVX2 CPU: refused up front, by name
        CHECK(earlyexit_test::what_of([] { dnnl_model m(cifar(), 2, {.precision = dnnl_precision::bf16}); }).find(
                  "dnnl_model: bf16 needs a CPU with AVX-512") == 0);
        return;
    }
    const double cifar_err = parity(cifar_case{cifar()}, {.precision = dnnl_precision::bf16}, {1, 4}, 0.1);
    CHECK(cifar_err > 1e-4);
    const double mobilenet_err = parity(mobilenet_case{mobilenet()}, {.precision = dnnl_precision::bf16}, {2}, 0.1);
    CHECK(mobilenet_err > 1e-4);
}

TEST_CASE("the heads on oneDNN evaluate any list of rows, gathered or in place", "[dnnl]") {
    CHECK(heads_on_listed_rows(cifar_case{cifar()}, {}) == 6 * 5);
    CHECK(heads_on_listed_rows(cifar_case{cifar()}, {.layout = dnnl_layout::nhwc}) == 6 * 5);
    CHECK(heads_on_listed_rows(cifar_case{cifar_fine()}, {}) == 13 * 5);
    CHECK(heads_on_listed_rows(mobilenet_case{mobilenet()}, {}) > 0);
}

TEST_CASE("the heads run as oneDNN JIT primitives, or on Eigen when asked", "[dnnl]") {
    const dnnl_model net(cifar(), 8);
    REQUIRE(net.heads_on_dnnl());
    for (std::size_t k = 0; k < net.info().heads; ++k) {
        for (const std::size_t rows : {1, 8}) {
            const std::string impl = net.head_implementation(k, rows);
            INFO("head " << k << " at " << rows << " rows: " << impl);
            // Heads 0-4 mix average and max pooling, the last averages; no reference kernel.
            CHECK((impl.find("mix") != std::string::npos) == (k + 1 < net.info().heads));
            CHECK(impl.find("ref") == std::string::npos);
        }
    }
    const dnnl_model mobile(mobilenet(), 2);
    for (std::size_t k = 0; k < mobile.info().heads; ++k) CHECK(mobile.head_implementation(k, 2).find("ref") == std::string::npos);
    if (dnnl_detail::cpu_has_bf16()) {
        const dnnl_model bf16(cifar(), 2, {.precision = dnnl_precision::bf16});
        CHECK(bf16.head_implementation(0, 2).find("ref") == std::string::npos);
    }
    const dnnl_model eigen(cifar(), 2, {.eigen_heads = true});
    CHECK_FALSE(eigen.heads_on_dnnl());
    CHECK(eigen.head_implementation(0, 1) == "eigen");
    CHECK(eigen.backend().find("heads on Eigen") != std::string::npos);
    CHECK(net.backend().find("heads on Eigen") == std::string::npos);
    // The Eigen heads (the reference path) on the same convolutions: the same logits.
    CHECK(parity(cifar_case{cifar()}, {.eigen_heads = true}, {1, 5}, tolerance) < tolerance);
    CHECK(parity(mobilenet_case{mobilenet()}, {.eigen_heads = true}, {2}, tolerance) < tolerance);
    CHECK(heads_on_listed_rows(cifar_case{cifar()}, {.eigen_heads = true}) == 6 * 5);
}

TEST_CASE("on oneDNN fp32 every stride-1 3x3 convolution runs on Winograd, the residual ones too", "[dnnl]") {
    // A residual layer takes its sum as a post-op into a copy of the residual (Winograd takes
    // no binary post-op); the parity tests above cover its logits.
    const dnnl_model net(cifar(), 8);
    if (!dnnl_detail::cpu_has_winograd()) {  // AVX2: no Winograd in oneDNN, but JIT kernels (nChw8c), never ref
        CHECK(net.layout_name() == "nChw8c");
        for (std::size_t l = 0; l < net.num_convolutions(); ++l) {
            INFO("convolution " << l << ": " << net.implementation(l, 8));
            CHECK(net.implementation(l, 8).find("jit") != std::string::npos);
        }
        return;
    }
    CHECK(net.layout_name() == "nChw16c");
    std::size_t residual = 0;
    for (std::size_t l = 0; l < net.num_convolutions(); ++l) {
        const nn::conv_step& c = net.convolutions()[l];
        if (c.conv->kernel() != 3 || c.conv->stride() != 1 || c.in.c < 16) continue;  // the stem: 3 channels
        INFO("convolution " << l << ": " << net.implementation(l, 8));
        CHECK(net.implementation(l, 8).find("wino") != std::string::npos);
        residual += c.add ? 1 : 0;
    }
    CHECK(residual == 6);
    const dnnl_model direct(cifar(), 8, {.allow_winograd = false});
    for (std::size_t l = 0; l < direct.num_convolutions(); ++l) CHECK(direct.implementation(l, 8).find("wino") == std::string::npos);
}

TEST_CASE("oneDNN compaction keeps the kept samples' results", "[dnnl]") {
    compaction_keeps_rows(cifar_case{cifar()}, {});
    compaction_keeps_rows(cifar_case{cifar()}, {.layout = dnnl_layout::nhwc});
    compaction_keeps_rows(mobilenet_case{mobilenet()}, {});
}

TEST_CASE("oneDNN append joins rows at the same stage, held maps included", "[dnnl]") {
    CHECK(append_joins_rows(cifar_case{cifar()}) > 0);
    CHECK(append_joins_rows(cifar_case{cifar_fine()}) > 0);
}

TEST_CASE("runners on the oneDNN network give the Eigen network's exits", "[dnnl]") {
    const cifar_net& model = cifar();
    const std::size_t batch = 4, n = 24;
    const batched_model eigen_net(model, batch);
    const dnnl_model fast(model, batch);
    std::vector<image_u8> images;
    std::vector<sample_info> samples;
    for (std::size_t i = 0; i < n; ++i) {
        images.push_back(pattern(32, 32, static_cast<int>(i)));
        samples.push_back({.index = i});
    }
    const auto fill = [&](auto& s, std::size_t first, std::size_t count) {
        for (std::size_t r = 0; r < count; ++r) model.set_input_row(s, r, images[first + r].pixels);
        s.begin(model.input_shape(), count);
    };
    const policy::max_prob policy(0.6F);
    std::vector<sample_outcome> want(n), got(n), streamed(n);
    {
        parallel_runner<batched_cifar_net, policy::max_prob, simulated_clock> pool(
            eigen_net, policy, {.threads = 1, .batch = batch}, [&] { return eigen_net.make_state(); });
        pool.run(samples, fill, want);
    }
    {
        parallel_runner<dnnl_cifar, policy::max_prob, simulated_clock> pool(fast, policy, {.threads = 2, .batch = batch},
                                                                           [&] { return fast.make_state(); });
        pool.run(samples, fill, got);
    }
    {
        stream_runner<dnnl_cifar, policy::max_prob, simulated_clock> runner(fast, policy, {.capacity = batch},
                                                                           [&] { return fast.make_state(); });
        runner.run_in_order(samples, fill, streamed);
    }
    std::size_t early = 0;
    for (std::size_t i = 0; i < n; ++i) {
        INFO("sample " << i);
        CHECK(got[i].head == want[i].head);
        CHECK(got[i].predicted == want[i].predicted);
        CHECK(streamed[i].head == want[i].head);
        CHECK(streamed[i].predicted == want[i].predicted);
        early += want[i].head + 1 < fast.info().heads ? 1 : 0;
    }
    CHECK(early > 0);  // the policy really exits early on some samples
}

TEST_CASE("after warm-up the oneDNN hot path allocates only inside oneDNN's execute, a fixed few per call", "[alloc][dnnl]") {
    const cifar_net& model = cifar();
    const std::size_t capacity = 8;
    const dnnl_model net(model, capacity);
    auto state = net.make_state();
    const network_info info = net.info();
    for (std::size_t r = 0; r < capacity; ++r) model.set_input_row(state, r, pattern(32, 32, static_cast<int>(r)).pixels);
    std::vector<float> logits(capacity * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> list(capacity), keep(capacity);
    long stage_allocs = 0, head_allocs = 0, other_allocs = 0;
    const auto pass = [&] {
        state.begin(model.input_shape(), capacity);
        std::size_t rows = capacity;
        for (std::size_t p = 0, k = 0; p < info.stages; ++p) {
            long before = earlyexit_test::allocations.load();
            net.run_batch_stage(p, state, rows);
            stage_allocs += earlyexit_test::allocations.load() - before;
            before = earlyexit_test::allocations.load();
            if (info.head_positions[k] != p) continue;
            for (std::size_t r = 0; r < rows; ++r) list[r] = r;
            net.run_batch_head(k, state, std::span<const std::size_t>(list.data(), rows),
                               std::span<float>(logits.data(), rows * info.classes), ws);
            if (rows > 2)  // and the gathered path: every row but the first
                net.run_batch_head(k, state, std::span<const std::size_t>(list.data() + 1, rows - 1),
                                   std::span<float>(logits.data(), (rows - 1) * info.classes), ws);
            head_allocs += earlyexit_test::allocations.load() - before;
            before = earlyexit_test::allocations.load();
            if (rows > 1) {  // drop row 0: every row count from 8 down to 3 is met
                for (std::size_t r = 1; r < rows; ++r) keep[r - 1] = r;
                net.compact(state, std::span<const std::size_t>(keep.data(), rows - 1));
                --rows;
            }
            other_allocs += earlyexit_test::allocations.load() - before;
            ++k;
        }
    };
    pass();  // warm-up: creates the primitives of each row count met
    stage_allocs = head_allocs = other_allocs = 0;
    pass();
    const long first = stage_allocs, first_heads = head_allocs;
    stage_allocs = head_allocs = 0;
    pass();
    CHECK(other_allocs == 0);             // compaction
    CHECK(stage_allocs == first);         // the same every pass: nothing created or grown after warm-up
    CHECK(head_allocs == first_heads);
    CHECK(stage_allocs <= static_cast<long>(12 * net.num_convolutions()));  // oneDNN's argument maps
    // Each head call: 3 primitives (average and max pooling, inner product), 2 calls per head.
    CHECK(head_allocs <= static_cast<long>(12 * 3 * 2 * info.heads));
    // The Eigen heads allocate nothing at all.
    const dnnl_model eigen(model, capacity, {.eigen_heads = true});
    auto es = eigen.make_state();
    for (std::size_t r = 0; r < capacity; ++r) model.set_input_row(es, r, pattern(32, 32, static_cast<int>(r)).pixels);
    es.begin(model.input_shape(), capacity);
    for (std::size_t p = 0; p <= info.head_positions[0]; ++p) eigen.run_batch_stage(p, es, capacity);
    for (std::size_t r = 0; r < capacity; ++r) list[r] = r;
    const long before = earlyexit_test::allocations.load();
    eigen.run_batch_head(0, es, list, logits, ws);
    CHECK(earlyexit_test::allocations.load() - before == 0);
}

TEST_CASE("dnnl_model refuses a capacity of 0, an oversized state and a wrong input by value") {
    CHECK_THROWS_WITH(dnnl_model(cifar(), 0), Catch::Contains("capacity 0"));
    const dnnl_model net(cifar(), 4);
    CHECK(what_of([&] { (void)net.make_state(5); }).find("5 rows exceeds the capacity 4") != std::string::npos);
    auto s = net.make_state();
    CHECK(what_of([&] { s.begin({3, 16, 16}, 2); }).find("3x16x16 = 768 floats") != std::string::npos);
    CHECK(what_of([&] { s.begin(cifar().input_shape(), 9); }).find("begin with 9 rows") != std::string::npos);
}
