// examples/common/batched_model.hpp (and batch_feature_state.hpp): the shipped CIFAR-10 and
// ImageNet networks run on a batch equal the per-sample network row by row, at every head,
// across compaction, without allocating; and bad capacities and states are refused by value.
//
// Tolerance: a batched convolution computes each output as the same dot product as the
// per-sample one, but the GEMM that does it (wider, differently blocked) may sum its terms in
// another order, and so may the pooling reductions; every layer then rounds differently and
// the differences carry through the network. Logits are compared within 1e-5 of the head's
// largest logit magnitude on that sample (at least 1): float32 rounding (eps 1.2e-7) through
// 7 (CIFAR-10) or 19 (MobileNetV2) stages of sums of up to 1728 terms measured at most 3e-7
// (CIFAR-10) and 1.2e-6 (MobileNetV2) here, so 1e-5 leaves ~10x for other vector units and
// their GEMM kernels, while any wrong row, channel or tap moves logits by O(1).
//
// This translation unit builds Eigen with EIGEN_RUNTIME_NO_MALLOC, as
// test_common_forward_alloc.cpp does, so the allocation check sees Eigen's own mallocs too.
#include "eigen_malloc_counter.hpp"  // first: before any Eigen header

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/batch_network.hpp>
#include <earlyexit/earlyexit.hpp>

#include "common/batched_model.hpp"
#include "common/cifar_net.hpp"
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

constexpr double tolerance = 1e-5;  // relative to the head's largest |logit| (see the header comment)

/// Runs the batched network on `rows` inputs (input(first + r) in row r) through every stage
/// and head, in a state of `capacity` rows. At head k, after_head(k, rows_list) may drop rows:
/// it returns the rows to keep. check(k, sample, logits) sees every row's logits at every head.
template <class Case, class AfterHead, class Check>
void run_batched(const Case& c, std::size_t capacity, std::size_t rows, AfterHead after_head, Check check) {
    const batched_model net(c.model, capacity);
    auto state = net.make_state(capacity);
    REQUIRE(state.capacity() == capacity);
    net.check(state);
    run_rows(c, net, state, rows, after_head, check);
}

template <class Case>
void batches_equal_per_sample(const Case& c) {
    std::vector<std::vector<std::vector<float>>> want;
    for (int i = 0; i < 8; ++i) want.push_back(per_sample(c, c.input(i)));
    for (const std::size_t rows : {std::size_t{1}, std::size_t{3}, std::size_t{8}}) {
        for (const std::size_t capacity : {rows, rows + 2}) {
            INFO("rows " << rows << ", capacity " << capacity);
            std::size_t checked = 0;
            run_batched(c, capacity, rows, keep_all, [&](std::size_t k, std::size_t s, std::span<const float> got) {
                ++checked;
                INFO("head " << k << ", sample " << s);
                CHECK(relative_error(got, want[s][k]) <= tolerance);
            });
            CHECK(checked == rows * c.model.num_heads());
        }
    }
}

template <class Case>
void compaction_keeps_rows(const Case& c) {
    // Drop rows 0 and 2 of 5 after head 0 and then row 1 (sample 3) after head 1: the rest carry on.
    std::vector<std::vector<std::vector<float>>> want;
    for (int i = 0; i < 5; ++i) want.push_back(per_sample(c, c.input(i)));
    std::vector<std::size_t> seen(c.model.num_heads(), 0);
    std::vector<std::vector<std::size_t>> samples(c.model.num_heads());
    run_batched(
        c, 6, 5,
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

/// A head on a subset of the rows (not 0..m-1: the gathering path) gives those rows' logits.
template <class Case>
void head_on_listed_rows(const Case& c) {
    const batched_model net(c.model, 4);
    auto state = net.make_state();
    const network_info info = net.info();
    for (std::size_t r = 0; r < 4; ++r) c.set_row(state, r, c.input(static_cast<int>(r)));
    state.begin(c.model.input_shape(), 4);
    const std::size_t k = 0;
    for (std::size_t p = 0; p <= info.head_positions[k]; ++p) net.run_batch_stage(p, state, 4);
    const std::vector<std::size_t> list{1, 3};
    std::vector<float> logits(list.size() * info.classes), ws(net.batch_workspace_size());
    net.run_batch_head(k, state, list, logits, ws);
    for (std::size_t j = 0; j < list.size(); ++j) {
        const auto want = per_sample(c, c.input(static_cast<int>(list[j])));
        CHECK(relative_error(std::span<const float>(logits).subspan(j * info.classes, info.classes), want[k]) <= tolerance);
    }
}

/// append(): rows that ran stages 0..p in another state join a state at the same stage (after
/// it dropped a row) and go on with its rows to the final head, each row's logits at every head
/// after p those of the per-sample network; for each p in `after`. A map held across stages
/// (the fine-grained network's half blocks) moves with the rows. Also into an empty state.
/// Returns how many of the appends moved a held map.
template <class Case>
std::size_t append_joins_rows(const Case& c, const std::vector<std::size_t>& after) {
    std::size_t held = 0;
    std::vector<std::vector<std::vector<float>>> want;
    for (int i = 0; i < 5; ++i) want.push_back(per_sample(c, c.input(i)));
    const batched_model net(c.model, 6);
    const network_info info = net.info();
    std::vector<float> logits(6 * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> list(6);
    for (const std::size_t p : after) {
        for (const bool into_empty : {false, true}) {
            INFO("append after stage " << p << (into_empty ? ", into an empty state" : ""));
            auto a = net.make_state(), b = net.make_state();
            // a: samples 0, 1, 2 (then 1 dropped); b: samples 3, 4.
            for (std::size_t r = 0; r < 3; ++r) c.set_row(a, r, c.input(static_cast<int>(r)));
            for (std::size_t r = 0; r < 2; ++r) c.set_row(b, r, c.input(static_cast<int>(3 + r)));
            a.begin(c.model.input_shape(), 3);
            b.begin(c.model.input_shape(), 2);
            for (std::size_t q = 0; q <= p; ++q) {
                net.run_batch_stage(q, a, 3);
                net.run_batch_stage(q, b, 2);
            }
            std::vector<std::size_t> sample{0, 2};
            std::size_t rows = 2;
            if (into_empty) {
                sample.clear();
                rows = 0;
            } else {
                const std::vector<std::size_t> keep{0, 2};
                net.compact(a, keep);
            }
            const bool holding = b.holding();
            held += holding ? 1 : 0;
            net.append(a, rows, b, 2);
            sample.push_back(3);
            sample.push_back(4);
            rows += 2;
            CHECK(a.holding() == holding);
            std::size_t checked = 0;
            for (std::size_t q = p + 1, k = 0; q < info.stages; ++q) {
                net.run_batch_stage(q, a, rows);
                while (k < info.heads && info.head_positions[k] < q) ++k;
                if (k == info.heads || info.head_positions[k] != q) continue;
                for (std::size_t r = 0; r < rows; ++r) list[r] = r;
                net.run_batch_head(k, a, std::span<const std::size_t>(list.data(), rows),
                                   std::span<float>(logits.data(), rows * info.classes), ws);
                for (std::size_t r = 0; r < rows; ++r) {
                    INFO("head " << k << ", sample " << sample[r]);
                    CHECK(relative_error(std::span<const float>(logits).subspan(r * info.classes, info.classes),
                                         want[sample[r]][k]) <= tolerance);
                    ++checked;
                }
            }
            CHECK(checked > 0);
        }
    }
    return held;
}

struct heap_use {
    long operator_new = 0;  ///< allocations through operator new
    long eigen_malloc = 0;  ///< Eigen's own (malloc) allocations
};

/// Heap use of the batched calls (every stage, every head, a compaction) on 8 rows, after an
/// untimed warm-up pass.
template <class Case>
heap_use batched_heap_use(const Case& c) {
    const std::size_t capacity = 8;
    const batched_model net(c.model, capacity);
    auto state = net.make_state();
    const network_info info = net.info();
    for (std::size_t r = 0; r < capacity; ++r) c.set_row(state, r, c.input(static_cast<int>(r)));
    std::vector<float> logits(capacity * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> list(capacity), keep(capacity);
    const auto pass = [&] {
        state.begin(c.model.input_shape(), capacity);
        std::size_t rows = capacity;
        for (std::size_t p = 0, k = 0; p < info.stages; ++p) {
            net.run_batch_stage(p, state, rows);
            if (info.head_positions[k] != p) continue;
            for (std::size_t r = 0; r < rows; ++r) list[r] = r;
            net.run_batch_head(k, state, std::span<const std::size_t>(list.data(), rows),
                               std::span<float>(logits.data(), rows * info.classes), ws);
            // Every round a head on the odd rows (gathered), then drop row 0.
            std::size_t m = 0;
            for (std::size_t r = 1; r < rows; r += 2) list[m++] = r;
            net.run_batch_head(k, state, std::span<const std::size_t>(list.data(), m),
                               std::span<float>(logits.data(), m * info.classes), ws);
            if (rows > 1) {
                for (std::size_t r = 1; r < rows; ++r) keep[r - 1] = r;
                net.compact(state, std::span<const std::size_t>(keep.data(), rows - 1));
                --rows;
            }
            ++k;
        }
    };
    pass();
    const long new_before = earlyexit_test::allocations.load();
    const long eigen_before = earlyexit_test::eigen_failed_checks.load();
    Eigen::internal::set_is_malloc_allowed(false);
    pass();
    pass();
    Eigen::internal::set_is_malloc_allowed(true);
    return {earlyexit_test::allocations.load() - new_before, earlyexit_test::eigen_failed_checks.load() - eigen_before};
}

}  // namespace

TEST_CASE("batched_model is an earlyexit::batched_network for both demo networks") {
    STATIC_REQUIRE(batched_network<batched_cifar_net>);
    STATIC_REQUIRE(batched_network<batched_mobilenet_v2>);
    STATIC_REQUIRE(std::is_same_v<batched_cifar_net::batch_state_type, batch_feature_state>);
}

TEST_CASE("batched_model declares the per-sample network's costs and positions") {
    const auto check = [](const auto& model) {
        const batched_model net(model, 3);
        const auto per = model.network();
        const network_info a = net.info(), b = per.info();
        CHECK(a.stages == b.stages);
        CHECK(a.heads == b.heads);
        CHECK(a.classes == b.classes);
        CHECK(std::equal(a.head_positions.begin(), a.head_positions.end(), b.head_positions.begin(), b.head_positions.end()));
        CHECK(std::equal(a.stage_macs.begin(), a.stage_macs.end(), b.stage_macs.begin(), b.stage_macs.end()));
        CHECK(std::equal(a.head_macs.begin(), a.head_macs.end(), b.head_macs.begin(), b.head_macs.end()));
        CHECK(a.full_macs == b.full_macs);
    };
    check(cifar());
    check(mobilenet());
}

TEST_CASE("cifar_net: every head of every row of a batch equals the per-sample network") {
    batches_equal_per_sample(cifar_case{cifar()});
}

TEST_CASE("mobilenet_v2: every head of every row of a batch equals the per-sample network") {
    batches_equal_per_sample(mobilenet_case{mobilenet()});
}

TEST_CASE("cifar_net: compaction keeps the kept samples' results") { compaction_keeps_rows(cifar_case{cifar()}); }

TEST_CASE("mobilenet_v2: compaction keeps the kept samples' results") { compaction_keeps_rows(mobilenet_case{mobilenet()}); }

TEST_CASE("cifar_net and mobilenet_v2: a head on some rows gives those rows' logits") {
    head_on_listed_rows(cifar_case{cifar()});
    head_on_listed_rows(mobilenet_case{mobilenet()});
}

TEST_CASE("cifar_net (both variants) and mobilenet_v2: append() joins rows at the same stage, held maps included") {
    CHECK(append_joins_rows(cifar_case{cifar()}, {0, 1, 3, 5}) == 0);
    // After first halves (a block's input held) and second halves.
    CHECK(append_joins_rows(cifar_case{cifar_fine()}, {1, 2, 7, 11}) > 0);
    CHECK(append_joins_rows(mobilenet_case{mobilenet()}, {4, 12}) == 0);
    STATIC_REQUIRE(batched_network_with_append<batched_cifar_net>);
    STATIC_REQUIRE(batched_network_with_append<batched_mobilenet_v2>);
}

TEST_CASE("the counter sees an Eigen heap allocation in this translation unit", "[alloc]") {
    const long before = earlyexit_test::eigen_failed_checks.load();
    Eigen::internal::set_is_malloc_allowed(false);
    {
        Eigen::MatrixXf m(64, 64);  // a dynamic matrix: Eigen mallocs its storage
        m.setZero();
    }
    Eigen::internal::set_is_malloc_allowed(true);
    CHECK(earlyexit_test::eigen_failed_checks.load() - before >= 1);
}

TEST_CASE("batched stages, heads and compaction allocate nothing once the state exists", "[alloc]") {
    const heap_use a = batched_heap_use(cifar_case{cifar()});
    CHECK(a.operator_new == 0);
    CHECK(a.eigen_malloc == 0);
    const heap_use b = batched_heap_use(mobilenet_case{mobilenet()});
    CHECK(b.operator_new == 0);
    CHECK(b.eigen_malloc == 0);
}

TEST_CASE("a capacity of 0 and a state of another model are refused, naming the value") {
    CHECK(what_of([] { batch_feature_state s(0, 16, 4); }) ==
          "batch_feature_state: capacity 0; a batch state holds at least one row");
    CHECK(what_of([] { const batched_model net(cifar(), 0); }) == "batched_model: capacity 0; a batch holds at least one row");
    const batched_model net(cifar(), 4);
    CHECK(what_of([&] { (void)net.make_state(0); }) ==
          "batch_feature_state: capacity 0; a batch state holds at least one row");
    CHECK(what_of([&] { (void)net.make_state(5); }) ==
          "batched_model: a state of 5 rows exceeds the capacity 4 the heads' workspace is sized for");
    // A state made for another model: its rows are too small for cifar_net's maps (32x32x32).
    const std::size_t need = cifar().max_map_size();
    batch_feature_state small(2, 3 * 32 * 32, 0);
    CHECK(what_of([&] { net.check(small); }) ==
          fmt::format("batched_model: the state's rows hold maps of 3072 floats, this model's need {}", need));
    batch_feature_state no_ws(2, need, 0);
    CHECK(net.state_workspace_size(2) > 0);
    CHECK(what_of([&] { net.check(no_ws); }) ==
          fmt::format("batched_model: the state's workspace has 0 floats, this model needs {} for 2 rows",
                      net.state_workspace_size(2)));
    batch_feature_state wide(6, need, net.state_workspace_size(6));
    CHECK(what_of([&] { net.check(wide); }) ==
          "batched_model: the state holds 6 rows, more than the capacity 4 the heads' workspace is sized for");
    const batched_model big(mobilenet(), 4);
    auto ok = net.make_state();
    CHECK(what_of([&] { big.check(ok); }) ==
          fmt::format("batched_model: the state's rows hold maps of {} floats, this model's need {}", need,
                      mobilenet().max_map_size()));
    CHECK(what_of([&] { ok.begin(cifar().input_shape(), 5); }) == "batch_feature_state: begin with 5 rows, the capacity is 4");
    CHECK(what_of([&] { ok.begin(mobilenet().input_shape(), 1); }) ==
          fmt::format("batch_feature_state: input of 3x224x224 = 150528 floats, a row holds {}", need));
}
