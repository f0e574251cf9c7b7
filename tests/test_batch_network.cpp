// rowwise_state and rowwise_network: any per-sample network as a batched one.
#include <algorithm>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/batch_network.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

static_assert(batched_network<rowwise_network<dynamic_network<scripted_state>>>);
static_assert(!batched_network<dynamic_network<scripted_state>>);

TEST_CASE("rowwise_state compaction keeps the listed rows in order and never loses a state", "[batch][network]") {
    std::mt19937 rng(5);
    for (int trial = 0; trial < 200; ++trial) {
        const std::size_t cap = 1 + rng() % 12;
        std::size_t made = 0;
        rowwise_state<std::size_t> s(cap, [&] { return made++; });
        REQUIRE(s.capacity() == cap);
        std::vector<std::size_t> rows(cap);  // what each row holds, as the test expects it
        for (std::size_t r = 0; r < cap; ++r) {
            s.row(r) = 100 + r;
            rows[r] = 100 + r;
        }
        while (!rows.empty()) {
            std::vector<std::size_t> keep;
            for (std::size_t r = 0; r < rows.size(); ++r)
                if (rng() % 3 != 0) keep.push_back(r);
            s.compact(keep);
            std::vector<std::size_t> expected;
            for (const std::size_t r : keep) expected.push_back(rows[r]);
            rows = expected;
            for (std::size_t j = 0; j < rows.size(); ++j) CHECK(s.row(j) == rows[j]);
            if (keep.empty()) break;
        }
        // Every state is still reachable through some row: the slots are a permutation.
        std::vector<std::size_t*> seen;
        for (std::size_t r = 0; r < cap; ++r) seen.push_back(&s.row(r));
        std::sort(seen.begin(), seen.end());
        CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
        s.reset_rows();
        for (std::size_t r = 0; r + 1 < cap; ++r) CHECK(&s.row(r) + 1 == &s.row(r + 1));
    }
}

TEST_CASE("rowwise_network runs each listed row's head into its own logits row", "[batch][network]") {
    const logit_table table{{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {1, 1, 1}}, {{0, 0, 1}, {2, 2, 2}}};
    counters count;
    const auto net = scripted_network(2, {0, 1}, table, count, {5, 6}, 2.0);
    const rowwise_network rows(net);
    CHECK(rows.info().full_macs == net.info().full_macs);
    CHECK(rows.batch_workspace_size() == net.workspace_size());
    rowwise_state<scripted_state> s(3, [] { return scripted_state{}; });
    for (std::size_t r = 0; r < 3; ++r) s.row(r) = {r, 0};
    rows.run_batch_stage(0, s, 3);
    CHECK(count.stage_calls[0] == 3);
    std::vector<float> logits(6), ws(1);
    const std::vector<std::size_t> list{0, 2};
    rows.run_batch_head(0, s, list, logits, ws);
    CHECK(logits == std::vector<float>{1, 2, 3, 0, 0, 1});
    const std::vector<std::size_t> keep{1, 2};
    rows.compact(s, keep);
    rows.run_batch_stage(1, s, 2);
    CHECK(s.row(0).sample == 1);
    CHECK(s.row(1).sample == 2);
    CHECK(s.row(0).stages_run == 2);
    rows.run_batch_head(1, s, std::vector<std::size_t>{0, 1}, logits, ws);
    CHECK(logits == std::vector<float>{1, 1, 1, 2, 2, 2});
}
