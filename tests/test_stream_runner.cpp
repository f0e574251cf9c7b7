// stream_runner: continuous batching. New samples take the rows exits free, catch up alone and
// join the running batch; every sample decides as it would one by one; late stages run fuller
// than batch_runner's; exits are delivered as they happen; nothing is allocated on the hot path.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/batch_runner.hpp>
#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/selector.hpp>
#include <earlyexit/stream_runner.hpp>

#include "counting_new.hpp"
#include "error_text.hpp"
#include "policies.hpp"
#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

namespace {

using scripted_rows = rowwise_network<dynamic_network<scripted_state>>;
using scripted_batch = rowwise_state<scripted_state>;

/// Makes rowwise states of `capacity` scripted rows.
struct scripted_states {
    std::size_t capacity;
    scripted_batch operator()() const { return scripted_batch(capacity, [] { return scripted_state{}; }); }
};

/// The span runs' fill: samples first..first+n-1 into rows 0..n-1.
void fill(scripted_batch& s, std::size_t first, std::size_t n) {
    s.reset_rows();
    for (std::size_t r = 0; r < n; ++r) s.row(r) = {first + r, 0};
}

/// One delivered exit, copied (the result's logits view the runner's buffers during the call).
struct delivered {
    std::size_t index = 0, admitted = 0;
    sample_outcome outcome;
    std::vector<float> logits;
    float max_prob = 0;
};

/// deliver(): appends each exit to `out` (reserved beforehand where allocation is counted).
struct recorder {
    std::vector<delivered>* out;
    void operator()(const stream_exit<float>& e) const noexcept {
        out->push_back({e.index, e.admitted, outcome_of(e.result),
                        std::vector<float>(e.result.logits.begin(), e.result.logits.end()), e.result.measures.max_prob});
    }
};

/// Skips heads (head 1, then every other one) and asks for a level by the head checked next;
/// learns nothing, so a stream must equal one-by-one runs with it.
struct skipping_fixed {
    std::size_t first_check(const sample_info&) const noexcept { return 1; }
    std::size_t next_check(const exit_context<float>& c) const noexcept { return c.head + 2; }
    std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept { return f.next_head % 3; }
    decision decide(const exit_context<float>& c) const noexcept {
        return c.measures.max_prob >= 0.7f ? decision::stop : decision::proceed;
    }
};

/// The policies that do not learn (every_policy without its learners), and skipping_fixed.
std::vector<any_policy<float>> non_learning(std::size_t heads) {
    return {policy::max_prob{0.5},  policy::max_prob{0.9}, policy::entropy{0.3},  policy::entropy{0.7},
            policy::margin{0.2},    policy::margin{0.6},   policy::patience{1},   policy::patience{2},
            policy::patience{3},    policy::fixed{0},      policy::fixed{heads - 1}, policy::fixed{heads / 2},
            policy::full{},         policy::probe{},       policy::oracle{},      skipping_fixed{},
            policy::predictive({.beta = 1.0}, std::vector<double>(heads, 2.5)),
            policy::predictive({.beta = 0.7, .rounds = 2, .start_head = heads / 2}, std::vector<double>(heads, 2.5))};
}

/// A batched network without append(): batch_runner runs it, stream_runner refuses it.
struct no_append_network {
    using scalar_type = float;
    using batch_state_type = scripted_batch;
    network_info info() const noexcept { return {}; }
    std::size_t batch_workspace_size() const noexcept { return 0; }
    void run_batch_stage(std::size_t, scripted_batch&, std::size_t) const noexcept {}
    void run_batch_head(std::size_t, const scripted_batch&, std::span<const std::size_t>, std::span<float>,
                        std::span<float>) const noexcept {}
    void compact(scripted_batch&, std::span<const std::size_t>) const noexcept {}
};

}  // namespace

TEST_CASE("a network needs append() to stream, rowwise_network has it", "[stream]") {
    STATIC_REQUIRE(batched_network_with_append<scripted_rows>);
    STATIC_REQUIRE(batched_network<no_append_network>);
    STATIC_REQUIRE_FALSE(batched_network_with_append<no_append_network>);
}

TEST_CASE("rowwise_state::append puts another state's rows after its own, swapping states", "[stream]") {
    scripted_batch a(5, [] { return scripted_state{}; }), b(3, [] { return scripted_state{}; });
    for (std::size_t r = 0; r < 5; ++r) a.row(r) = {r, 0};
    for (std::size_t r = 0; r < 3; ++r) b.row(r) = {10 + r, 7};
    const std::vector<std::size_t> keep{1, 3};
    a.compact(keep);  // a: samples 1, 3
    a.append(2, b, 3);
    std::vector<std::size_t> got;
    for (std::size_t r = 0; r < 5; ++r) got.push_back(a.row(r).sample);
    CHECK(got == std::vector<std::size_t>{1, 3, 10, 11, 12});
    CHECK(a.row(4).stages_run == 7);
}

TEST_CASE("a hand-computed stream: exits free rows, new samples catch up and join, exits come as they happen",
          "[stream]") {
    // 3 stages of 10 MACs, a 1-MAC head after each, 1 MAC/s; max_prob 0.9 stops where a head is sure.
    const float sure = 10.f, unsure = 0.f;
    const logit_table table{
        {{sure, 0}, {sure, 0}, {sure, 0}},      // sample 0: exits at head 0
        {{unsure, 0}, {unsure, 0}, {0, sure}},  // sample 1: runs to the final head (class 1)
        {{unsure, 0}, {0, sure}, {0, sure}},    // sample 2: exits at head 1 (class 1)
        {{sure, 0}, {sure, 0}, {sure, 0}},      // sample 3: exits at head 0
    };
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {10, 10, 10}, 1.0);
    const scripted_rows rows(net);
    auto runner = make_stream_runner(rows, policy::max_prob{0.9}, {.capacity = 2}, scripted_states{2}, simulated_clock{1.0});
    const std::vector<sample_info> samples{{.index = 0}, {.index = 1}, {.index = 2}, {.index = 3}};
    std::vector<std::pair<std::size_t, std::size_t>> fills;  // (first, count) of each admission
    std::vector<delivered> out;
    runner.run(samples, [&](scripted_batch& s, std::size_t first, std::size_t n) {
        fills.emplace_back(first, n);
        fill(s, first, n);
    }, recorder{&out});

    // Samples 0 and 1 fill the batch; sample 0's exit at head 0 (t = 22) frees a row for sample 2,
    // which runs stage 0 and head 0 alone (t = 33) and joins sample 1 at stage 1; sample 2's exit
    // at head 1 (t = 55) admits sample 3, which exits alone at head 0 (t = 66); sample 1 then
    // runs stage 2 alone and exits at t = 77.
    CHECK(fills == std::vector<std::pair<std::size_t, std::size_t>>{{0, 2}, {2, 1}, {3, 1}});
    REQUIRE(out.size() == 4);
    std::vector<std::size_t> order;
    for (const auto& d : out) order.push_back(d.index);
    CHECK(order == std::vector<std::size_t>{0, 2, 3, 1});  // completion order
    for (const auto& d : out) CHECK(d.admitted == d.index);
    const auto& s0 = out[0].outcome;
    const auto& s2 = out[1].outcome;
    const auto& s3 = out[2].outcome;
    const auto& s1 = out[3].outcome;
    CHECK(s0.head == 0);
    CHECK(s1.head == 2);
    CHECK(s2.head == 1);
    CHECK(s3.head == 0);
    CHECK(s1.predicted == 1);
    CHECK(s2.predicted == 1);
    CHECK(s2.heads_evaluated == 2);
    CHECK(s1.positions_run == 3);
    CHECK(s0.macs == 11.0);
    CHECK(s1.macs == 33.0);
    CHECK(s2.macs == 22.0);
    CHECK(s3.macs == 11.0);
    // Latency from admission to exit.
    CHECK(s0.seconds == 22.0);
    CHECK(s2.seconds == 33.0);  // admitted at 22, out at 55
    CHECK(s3.seconds == 11.0);  // admitted at 55, out at 66
    CHECK(s1.seconds == 77.0);
    CHECK(runner.clock().now() == 77.0);
    CHECK(out[1].logits == std::vector<float>{0, sure});

    // Rows per stage and head (rowwise: one call per row), and the batched calls: stage 0 ran
    // three times (2 rows, then 1 and 1 catching up), stage 1 once on the merged 2 rows.
    CHECK(count.stage_calls == std::vector<int>{4, 2, 1});
    CHECK(count.head_calls == std::vector<int>{4, 2, 1});
    const auto& st = runner.stats();
    CHECK(st.batches == 3);
    CHECK(st.samples == 4);
    CHECK(st.stage_rows == std::vector<std::size_t>{4, 2, 1});
    CHECK(st.stage_calls == std::vector<std::size_t>{3, 1, 1});
    CHECK(st.head_rows == std::vector<std::size_t>{4, 2, 1});
    CHECK(st.rows_per_call(1) == 2.0);

    // batch_runner on the same samples in batches of 2 runs stage 1 on one row at a time.
    count.clear();
    auto batched = make_batch_runner(rows, policy::max_prob{0.9}, 2, simulated_clock{1.0});
    scripted_batch state(2, [] { return scripted_state{}; });
    for (std::size_t first = 0; first < 4; first += 2) {
        fill(state, first, 2);
        (void)batched.run(state, std::span<const sample_info>(samples).subspan(first, 2));
    }
    CHECK(batched.stats().stage_calls == std::vector<std::size_t>{2, 2, 1});
    CHECK(batched.stats().rows_per_call(1) == 1.0);
}

TEST_CASE("observers see each head and each exit when it happens, in delivery order", "[stream]") {
    struct watcher {
        std::vector<std::size_t> heads, exits;
        void on_head(const exit_context<float>& c) noexcept { heads.push_back(c.sample->index); }
        void on_exit(const exit_result<float>&, const episode<float>& e) noexcept { exits.push_back(e.sample->index); }
    };
    const std::size_t n = 40;
    const auto table = random_table(n, 3, 4, 5);
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    const scripted_rows rows(net);
    std::vector<sample_info> info(n);
    for (std::size_t i = 0; i < n; ++i) info[i] = {.index = i};
    auto runner = make_stream_runner(rows, policy::max_prob{0.6}, {.capacity = 5}, scripted_states{5}, simulated_clock{},
                                     watcher{});
    std::vector<delivered> out;
    runner.run(info, fill, recorder{&out});
    std::vector<std::size_t> order;
    std::size_t heads = 0;
    for (const auto& d : out) {
        order.push_back(d.index);
        heads += d.outcome.heads_evaluated;
    }
    CHECK(runner.observer().exits == order);
    CHECK(runner.observer().heads.size() == heads);
}

TEST_CASE("streamed runs equal one-by-one runs sample for sample, every non-learning policy, capacities 1 to 16",
          "[stream][property]") {
    for (unsigned seed = 1; seed <= 6; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t samples = 90;
        const random_scripted c(rng, samples, seed * 7919, 3.0);
        const auto& [stages, positions, classes, stage_macs, table, count, net_] = c;
        const auto& net = *net_;
        const scripted_rows rows(net);
        std::vector<sample_info> info(samples);
        for (std::size_t i = 0; i < samples; ++i)
            info[i] = {.index = 1000 + i, .label = top1(table[i][rng() % positions.size()])};
        INFO("seed " << seed << ", " << stages << " stages, " << positions.size() << " heads");

        for (const auto& policy : non_learning(positions.size())) {
            INFO("policy " << policy.name());
            auto one_by_one = make_runner(net, policy, simulated_clock{1e3});
            std::vector<delivered> want(samples);
            std::vector<std::size_t> reach(stages, 0);  // samples that ran stage p
            for (std::size_t i = 0; i < samples; ++i) {
                scripted_state st{i, 0};
                const auto r = one_by_one.run(st, info[i]);
                want[i] = {info[i].index, i, outcome_of(r), std::vector<float>(r.logits.begin(), r.logits.end()),
                           r.measures.max_prob};
                for (std::size_t p = 0; p < r.positions_run; ++p) ++reach[p];
            }
            for (std::size_t capacity = 1; capacity <= 16; ++capacity) {
                INFO("capacity " << capacity);
                auto streamed = make_stream_runner(rows, policy, {.capacity = capacity}, scripted_states{capacity},
                                                   simulated_clock{1e3});
                std::vector<delivered> out;
                streamed.run(info, fill, recorder{&out});
                REQUIRE(out.size() == samples);
                std::vector<char> seen(samples, 0);
                for (const auto& d : out) {
                    REQUIRE(d.admitted < samples);
                    CHECK(seen[d.admitted]++ == 0);  // each sample once
                    const auto& w = want[d.admitted];
                    CHECK(d.index == w.index);
                    CHECK(d.outcome.predicted == w.outcome.predicted);
                    CHECK(d.outcome.head == w.outcome.head);
                    CHECK(d.outcome.positions_run == w.outcome.positions_run);
                    CHECK(d.outcome.heads_evaluated == w.outcome.heads_evaluated);
                    CHECK(d.outcome.macs == w.outcome.macs);  // the same additions in the same order
                    CHECK(d.outcome.frequency_level == w.outcome.frequency_level);
                    CHECK(d.max_prob == w.max_prob);
                    CHECK(d.logits == w.logits);
                }
                CHECK(streamed.stats().samples == samples);
                CHECK(streamed.stats().stage_rows == reach);
                if (capacity == 1) CHECK(streamed.stats().batches == samples);  // one at a time
                // run_in_order: the outcomes by position, the seconds aside.
                std::vector<sample_outcome> in_order(samples);
                streamed.run_in_order(info, fill, in_order);
                for (std::size_t i = 0; i < samples; ++i) {
                    auto o = in_order[i];
                    o.seconds = want[i].outcome.seconds;
                    CHECK(o == want[i].outcome);
                }
            }
        }
    }
}

TEST_CASE("capacity 1 is basic_runner exactly, learning included, a learner is updated at each exit, in completion "
          "order", "[stream][property]") {
    const std::vector<std::size_t> positions{0, 2, 3, 5};
    const auto table = random_table(300, positions.size(), 6, 11);
    counters count;
    const auto net = scripted_network(6, positions, table, count);
    const scripted_rows rows(net);
    std::vector<sample_info> info(300);
    for (std::size_t i = 0; i < info.size(); ++i) info[i] = {.index = i};
    const auto dee = policy::dee<>(dee_options{.lambda = 0.3, .alpha = 0.2, .confidence_bins = 4});
    auto streamed = make_stream_runner(rows, dee, {.capacity = 1}, scripted_states{1}, simulated_clock{1e3});
    auto single = make_runner(net, dee, simulated_clock{1e3});
    std::vector<sample_outcome> out(info.size());
    streamed.run_in_order(info, fill, out);
    for (std::size_t i = 0; i < info.size(); ++i) {
        scripted_state st{i, 0};
        CHECK(out[i] == outcome_of(single.run(st, info[i])));  // seconds included: one row at a time
    }
    CHECK(streamed.policy() == single.policy());

    // Wider: the learner's updates come in the order the exits are delivered, and the same
    // stream learns the same twice.
    for (const std::size_t capacity : {3, 8}) {
        auto a = make_stream_runner(rows, skipping_learner{}, {.capacity = capacity}, scripted_states{capacity});
        auto b = make_stream_runner(rows, dee, {.capacity = capacity}, scripted_states{capacity});
        auto b2 = make_stream_runner(rows, dee, {.capacity = capacity}, scripted_states{capacity});
        std::vector<delivered> got, got_b, got_b2;
        a.run(info, fill, recorder{&got});
        std::vector<std::size_t> delivered_order;
        for (const auto& d : got) delivered_order.push_back(d.index);
        CHECK(a.policy().updates == delivered_order);
        CHECK_FALSE(std::is_sorted(delivered_order.begin(), delivered_order.end()));  // completion order
        b.run(info, fill, recorder{&got_b});
        b2.run(info, fill, recorder{&got_b2});
        CHECK(b.policy() == b2.policy());
        REQUIRE(got_b.size() == got_b2.size());
        for (std::size_t i = 0; i < got_b.size(); ++i) {
            CHECK(got_b[i].index == got_b2[i].index);
            CHECK(got_b[i].outcome.head == got_b2[i].outcome.head);
        }
    }
}

TEST_CASE("late stages run fuller than batch_runner's when half the samples exit at head 0", "[stream]") {
    // 4 stages, a head after each; even samples are sure at head 0, odd ones only at the final head.
    const std::size_t n = 256, capacity = 16;
    logit_table table(n);
    for (std::size_t i = 0; i < n; ++i)
        table[i] = i % 2 == 0 ? std::vector<std::vector<float>>{{9, 0}, {9, 0}, {9, 0}, {9, 0}}
                              : std::vector<std::vector<float>>{{0, 0}, {0, 0}, {0, 0}, {0, 9}};
    counters count;
    const auto net = scripted_network(4, {0, 1, 2, 3}, table, count);
    const scripted_rows rows(net);
    std::vector<sample_info> info(n);
    for (std::size_t i = 0; i < n; ++i) info[i] = {.index = i};

    auto batched = make_batch_runner(rows, policy::max_prob{0.9}, capacity, simulated_clock{});
    scripted_batch state(capacity, [] { return scripted_state{}; });
    std::vector<sample_outcome> by_batch(n);
    for (std::size_t first = 0; first < n; first += capacity) {
        fill(state, first, capacity);
        const auto out = batched.run(state, std::span<const sample_info>(info).subspan(first, capacity));
        for (std::size_t j = 0; j < capacity; ++j) by_batch[first + j] = outcome_of(out[j]);
    }
    auto streamed = make_stream_runner(rows, policy::max_prob{0.9}, {.capacity = capacity}, scripted_states{capacity},
                                       simulated_clock{});
    std::vector<sample_outcome> by_stream(n);
    streamed.run_in_order(info, fill, by_stream);
    for (std::size_t i = 0; i < n; ++i) CHECK(by_stream[i].head == by_batch[i].head);

    const batch_stats& b = batched.stats();
    const batch_stats& s = streamed.stats();
    for (std::size_t p = 0; p < 4; ++p)
        UNSCOPED_INFO("stage " << p << ": rows per call " << s.rows_per_call(p) << " streamed, " << b.rows_per_call(p)
                               << " batched");
    CHECK(s.stage_rows == b.stage_rows);  // the same work...
    CHECK(b.rows_per_call(3) == 8.0);     // half of each batch is left after head 0
    CHECK(s.rows_per_call(3) >= 14.0);    // ...while the stream's final stage runs nearly full
    // The price: catch-up cohorts run the stages before the main cohort's position on the rows
    // admitted, fewer than a batch's.
    CHECK(s.rows_per_call(0) < b.rows_per_call(0));
    // The streamed samples wait while catch-ups run: their latency is measured from admission.
    for (const auto& o : by_stream) CHECK(o.seconds > 0.0);
}

TEST_CASE("an empty source runs nothing, bad options, states and samples are errors naming the value", "[stream][error]") {
    const logit_table table(8, {{1, 0}, {0, 1}});
    counters count;
    const auto net = scripted_network(2, {0, 1}, table, count);
    const scripted_rows rows(net);
    auto runner = make_stream_runner(rows, policy::max_prob{0.9}, {.capacity = 4}, scripted_states{4});
    std::vector<delivered> out;
    std::size_t calls = 0;
    runner.run([&](scripted_batch&, std::span<sample_info>) { return ++calls, std::size_t{0}; }, recorder{&out});
    CHECK(calls == 1);
    runner.run(std::span<const sample_info>{}, fill, recorder{&out});
    CHECK(out.empty());
    CHECK(count.stage_calls == std::vector<int>{0, 0});
    CHECK(runner.stats().batches == 0);

    CHECK(what_of([&] { (void)make_stream_runner(rows, policy::max_prob{0.9}, {.capacity = 0}, scripted_states{1}); }) ==
          "stream_runner: capacity 0; a batch holds at least one sample");
    CHECK(what_of([&] {
              (void)make_stream_runner(rows, policy::max_prob{0.9}, {.capacity = 4, .min_admission = 0}, scripted_states{4});
          }) == "stream_runner: min_admission 0 is outside 1..capacity (4)");
    CHECK(what_of([&] {
              (void)make_stream_runner(rows, policy::max_prob{0.9}, {.capacity = 4, .min_admission = 5}, scripted_states{4});
          }) == "stream_runner: min_admission 5 is outside 1..capacity (4)");
    CHECK(what_of([&] { (void)make_stream_runner(rows, policy::max_prob{0.9}, {.capacity = 4}, scripted_states{3}); }) ==
          "stream_runner: a batch state of 3 rows is smaller than the capacity 4");

    // Span runs check every sample and the output before any work.
    std::vector<sample_info> four(4);
    std::vector<sample_outcome> three(3);
    CHECK(what_of([&] { runner.run_in_order(four, fill, three); }) ==
          "stream_runner: 3 outcomes for 4 samples; run_in_order writes one per sample");
    const std::vector<sample_info> bad{{.index = 1}, {.index = 3, .label = 2}};
    CHECK(what_of([&] { runner.run(bad, fill, recorder{&out}); }) == "sample 3: label 2 is out of range [0, 2)");
    auto oracle = make_stream_runner(rows, policy::oracle{}, {.capacity = 4}, scripted_states{4});
    const std::vector<sample_info> unlabelled{{.index = 0, .label = 1}, {.index = 7}};
    CHECK(what_of([&] { oracle.run(unlabelled, fill, recorder{&out}); }) ==
          "sample 7: the policy needs a label (evaluation only) and none was given");
    const std::vector<sample_info> late{{.index = 2, .deadline_seconds = -1.0}};
    CHECK_THROWS_WITH(runner.run(late, fill, recorder{&out}), Catch::Matchers::Contains("sample 2: deadline -1"));
    CHECK(count.stage_calls == std::vector<int>{0, 0});
    CHECK(out.empty());

    // A source is checked as it admits: the samples before have run; the next run starts afresh.
    std::size_t next = 0;
    const auto counting_source = [&](std::size_t bad_at, std::size_t extra) {
        return [&next, bad_at, extra](scripted_batch& s, std::span<sample_info> infos) {
            const std::size_t n = std::min<std::size_t>(infos.size(), 8 - std::min<std::size_t>(next, 8));
            fill(s, next, n);
            for (std::size_t j = 0; j < n; ++j) {
                infos[j] = {.index = next + j};
                if (next + j == bad_at) infos[j].label = 5;
            }
            next += n;
            return n + extra;
        };
    };
    CHECK(what_of([&] { runner.run(counting_source(6, 0), recorder{&out}); }) == "sample 6: label 5 is out of range [0, 2)");
    CHECK_FALSE(out.empty());
    next = 0;
    CHECK(what_of([&] { runner.run(counting_source(99, 1), recorder{&out}); }) ==
          "stream_runner: the source put 5 samples, at most 4 were asked for");
    next = 0;
    out.clear();
    runner.run(counting_source(99, 0), recorder{&out});
    CHECK(out.size() == 8);
}

TEST_CASE("one level for everything in flight: the highest latest request, energy adds up", "[stream][dvfs]") {
    // Sample i asks for level (index % 3) at its start and nothing after.
    struct asks_by_index {
        std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept {
            return f.at == nullptr ? std::optional<std::size_t>(f.sample->index % 3) : std::nullopt;
        }
        decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    };
    struct level_clock {
        std::vector<std::size_t> set;
        double now() const noexcept { return 0.0; }
        void set_level(std::size_t l) noexcept { set.push_back(l); }
    };
    const logit_table table(6, {{1, 0}, {0, 1}});
    counters count;
    const auto net = scripted_network(2, {0, 1}, table, count);
    const scripted_rows rows(net);
    auto runner = make_stream_runner(rows, asks_by_index{}, {.capacity = 3}, scripted_states{3}, level_clock{});
    runner.clock().set.reserve(16);
    std::vector<sample_info> info{{.index = 3}, {.index = 4}, {.index = 5}, {.index = 6}};  // ask 0, 1, 2, 0
    std::vector<sample_outcome> out(4);
    runner.run_in_order(info, fill, out);
    // 3, 4, 5 run together at 2; after they exit, 6 alone asks 0.
    CHECK(runner.clock().set == std::vector<std::size_t>{2, 0});
    CHECK(out[1].frequency_level == std::optional<std::size_t>(1));  // what the sample itself asked

    // Energy: with a clock that keeps its level, the samples' energies are the run's.
    const dvfs::frequency_domain domain("test", {{0.6e9, 0.80}, {1.0e9, 0.90}, {1.4e9, 1.00}, {2.0e9, 1.15}},
                                        {.static_w = 0.5, .capacitance_f = 1e-9, .switch_latency_s = 2e-6,
                                         .switch_energy_j = 1e-6, .memory_share = 0.2});
    const dvfs::platform_model model(domain, 1e9, 1e-6);
    for (unsigned seed = 1; seed <= 4; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t stages = 2 + rng() % 6;
        const auto positions = random_head_positions(rng, stages);
        std::vector<double> stage_macs(stages);
        for (auto& m : stage_macs) m = static_cast<double>(1000 + rng() % 100000);
        counters c;
        const std::size_t samples = 80;
        const auto t = random_table(samples, positions.size(), 4, seed * 13);
        const auto n = scripted_network(stages, positions, t, c, stage_macs, 500.0);
        const scripted_rows r(n);
        const std::size_t capacity = 1 + rng() % 12;
        INFO("seed " << seed << ", capacity " << capacity);
        const auto inner = policy::max_prob{0.8};
        std::vector<sample_info> in(samples);
        for (std::size_t i = 0; i < samples; ++i) in[i] = {.index = i, .deadline_seconds = 1e-3};
        auto streamed = make_stream_runner(r, policy::with_dvfs(inner, model), {.capacity = capacity},
                                           scripted_states{capacity},
                                           dvfs::model_clock(model, std::nullopt, between_samples::keep_level));
        std::vector<sample_outcome> got(samples);
        const double e0 = streamed.clock().energy_joules();
        streamed.run_in_order(in, fill, got);
        double sum = 0;
        auto plain = make_runner(n, inner);
        for (std::size_t i = 0; i < samples; ++i) {
            REQUIRE(got[i].energy_joules.has_value());
            CHECK(*got[i].energy_joules > 0.0);
            sum += *got[i].energy_joules;
            scripted_state st{i, 0};
            CHECK(got[i].head == plain.run(st, in[i]).head);  // the selector never changes a decision
            REQUIRE(got[i].frequency_level.has_value());
        }
        CHECK(sum == Approx(streamed.clock().energy_joules() - e0).epsilon(1e-12));
    }
}

namespace {

struct eigen_state {
    Eigen::VectorXf x = Eigen::VectorXf::Zero(32);
    Eigen::VectorXf tmp = Eigen::VectorXf::Zero(32);
};

struct dense_relu {
    Eigen::MatrixXf w;
    void operator()(eigen_state& s) const noexcept {
        s.tmp.noalias() = w * s.x;
        s.x = s.tmp.cwiseMax(0.f);
    }
};

auto eigen_network() {
    dynamic_network_builder<eigen_state> b;
    for (int i = 0; i < 5; ++i) {
        b.stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024});
        b.exit(project(linear_head<float>{Eigen::MatrixXf::Random(10, 32), Eigen::VectorXf::Random(10)},
                       [](const eigen_state& s) -> const Eigen::VectorXf& { return s.x; }));
    }
    return b.build();
}

/// Allocations during a run of `n` random samples from a source, after a first run.
template <class Runner>
long allocations_during(Runner& runner, std::size_t n, std::size_t& early) {
    std::size_t next = 0, exits = 0;
    const std::size_t heads = runner.info().heads;
    auto source = [&](rowwise_state<eigen_state>& s, std::span<sample_info> infos) {
        const std::size_t k = std::min(infos.size(), n - next);
        for (std::size_t r = 0; r < k; ++r) {
            s.row(r).x.setRandom();
            infos[r] = {.index = next + r, .label = (next + r) % 10, .deadline_seconds = 1e-5};
        }
        next += k;
        return k;
    };
    auto deliver = [&](const stream_exit<float>& e) noexcept {
        ++exits;
        early += e.result.head + 1 < heads ? 1 : 0;
    };
    runner.run(source, deliver);
    next = 0;
    early = exits = 0;
    const long before = allocations.load();
    runner.run(source, deliver);
    const long made = allocations.load() - before;
    CHECK(exits == n);
    return made;
}

}  // namespace

TEST_CASE("stream_runner::run allocates nothing after construction, every kind of policy", "[stream][alloc]") {
    const auto net = eigen_network();
    const rowwise_network rows(net);
    const dvfs::platform_model model(
        dvfs::frequency_domain("t", {{1e9, 0.9}, {2e9, 1.1}}, {.static_w = 0.5, .capacitance_f = 1e-9}), 1e9, 1e-7);
    for (const std::size_t size : {1, 8, 64}) {
        INFO("capacity " << size);
        const auto states = [size] { return rowwise_state<eigen_state>(size, [] { return eigen_state{}; }); };
        const stream_options o{.capacity = size};
        std::size_t early = 0;
        auto max_prob = make_stream_runner(rows, policy::max_prob{0.3}, o, states, simulated_clock{});
        CHECK(allocations_during(max_prob, 300, early) == 0);
        CHECK(early > 0);
        auto oracle = make_stream_runner(rows, policy::oracle{}, o, states);
        CHECK(allocations_during(oracle, 300, early) == 0);
        auto erased = make_stream_runner(rows, any_policy<float>(policy::patience{2}), o, states);
        CHECK(allocations_during(erased, 300, early) == 0);
        auto dee = make_stream_runner(rows, policy::dee<>(dee_options{.lambda = 0.5, .probe_rate = 0.1}), o, states);
        CHECK(allocations_during(dee, 300, early) == 0);
        auto ucb = make_stream_runner(rows, policy::ucb_exit<>(bandit_options{.lambda = 0.5}), o, states);
        CHECK(allocations_during(ucb, 300, early) == 0);
        auto predictive =
            make_stream_runner(rows, policy::predictive({.beta = 1.0}, std::vector<double>(5, 2.0)), o, states);
        CHECK(allocations_during(predictive, 300, early) == 0);
        auto dvfs = make_stream_runner(rows, policy::with_dvfs(policy::max_prob{0.3}, model), o, states,
                                       dvfs::model_clock(model));
        CHECK(allocations_during(dvfs, 300, early) == 0);
    }
}
