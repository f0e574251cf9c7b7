// batch_runner: per-sample exits in a batch, results in input order, equal to one-by-one runs.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/batch_runner.hpp>
#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/selector.hpp>

#include "policies.hpp"
#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

namespace {

/// The one-by-one reference of a batched run: decisions come from `decider`, a copy of the
/// policy taken at each batch's start, updates go to `learner` in input order, and the next
/// batch decides with what the learner knows then. For a policy that does not learn this is
/// the policy itself; at batch size 1 it is plain basic_runner.
template <class P>
struct deferred {
    P decider;
    P learner;

    void begin(const sample_info& s) noexcept { hooks::begin(decider, s); }
    std::size_t first_check(const sample_info& s) noexcept { return hooks::first_check(decider, s); }
    std::size_t next_check(const exit_context<float>& c) noexcept { return hooks::next_check(decider, c); }
    std::optional<std::size_t> frequency(const frequency_context<float>& f) noexcept {
        return hooks::frequency(decider, f);
    }
    decision decide(const exit_context<float>& c) noexcept { return decider.decide(c); }
    void update(const episode<float>& e) noexcept { hooks::update(learner, e); }
    void prepare(const network_info& n) {
        hooks::prepare(decider, n);
        hooks::prepare(learner, n);
    }
    bool needs_label() const { return hooks::needs_label(decider); }
    void next_batch() { decider = learner; }
};

using scripted_rows = rowwise_network<dynamic_network<scripted_state>>;

/// A rowwise state whose rows are samples first..first+n-1.
void fill(rowwise_state<scripted_state>& s, std::size_t first, std::size_t n) {
    s.reset_rows();
    for (std::size_t r = 0; r < n; ++r) s.row(r) = {first + r, 0};
}

}  // namespace

TEST_CASE("a hand-computed batch: rows leave at their heads, the rest are compacted, order is kept", "[batch]") {
    // 3 stages of 10 MACs, heads of 1 MAC after each; max_prob 0.9 stops where a head is sure.
    const float sure = 10.f, unsure = 0.f;
    const logit_table table{
        {{sure, 0}, {sure, 0}, {sure, 0}},        // sample 0: exits at head 0
        {{unsure, 0}, {unsure, 0}, {0, sure}},    // sample 1: runs to the final head (class 1)
        {{unsure, 0}, {0, sure}, {0, sure}},      // sample 2: exits at head 1 (class 1)
    };
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {10, 10, 10}, 1.0);
    const scripted_rows rows(net);
    auto runner = make_batch_runner(rows, policy::max_prob{0.9}, 4, simulated_clock{1.0});
    rowwise_state<scripted_state> state(4, [] { return scripted_state{}; });
    fill(state, 0, 3);
    const std::vector<sample_info> samples{{.index = 0}, {.index = 1}, {.index = 2}};
    const auto out = runner.run(state, samples);
    REQUIRE(out.size() == 3);
    CHECK(out[0].head == 0);
    CHECK(out[1].head == 2);
    CHECK(out[2].head == 1);
    CHECK(out[0].predicted == 0);
    CHECK(out[1].predicted == 1);
    CHECK(out[2].predicted == 1);
    CHECK(out[1].positions_run == 3);
    CHECK(out[2].heads_evaluated == 2);
    CHECK(out[0].macs == 11.0);
    CHECK(out[1].macs == 33.0);
    CHECK(out[2].macs == 22.0);
    // Each stage and head ran on the rows still running: 3, 2, 1.
    CHECK(count.stage_calls == std::vector<int>{3, 2, 1});
    CHECK(count.head_calls == std::vector<int>{3, 2, 1});
    CHECK(runner.stats().stage_rows == std::vector<std::size_t>{3, 2, 1});
    CHECK(runner.stats().stage_calls == std::vector<std::size_t>{1, 1, 1});
    CHECK(runner.stats().head_rows == std::vector<std::size_t>{3, 2, 1});
    CHECK(runner.stats().occupancy(2) == Approx(1.0 / 3.0));
    // The batch's time, at 1 MAC/s: 30 + 3 (stage 0, head 0 on 3 rows), 20 + 2, then 10 + 1.
    CHECK(out[0].seconds == 33.0);
    CHECK(out[2].seconds == 55.0);
    CHECK(out[1].seconds == 66.0);
    // The exit logits are each sample's own.
    CHECK(out[1].logits[1] == sure);
    CHECK(out[2].logits[1] == sure);
    CHECK(out[0].logits[0] == sure);
}

TEST_CASE("batched runs equal one-by-one runs sample for sample, every policy, batch sizes 1 to 64",
          "[batch][property]") {
    const std::vector<std::size_t> batch_sizes{1, 2, 3, 5, 8, 13, 31, 64};
    for (unsigned seed = 1; seed <= 8; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t samples = 200;
        const random_scripted c(rng, samples, seed * 7919, 3.0);
        const auto& [stages, positions, classes, stage_macs, table, count, net_] = c;
        const auto& net = *net_;
        const scripted_rows rows(net);
        std::vector<sample_info> info(samples);
        for (std::size_t i = 0; i < samples; ++i)
            info[i] = {.index = i, .label = top1(table[i][rng() % positions.size()])};
        const std::size_t batch = batch_sizes[seed % batch_sizes.size()];
        INFO("seed " << seed << ", " << stages << " stages, " << positions.size() << " heads, batch " << batch);

        for (const auto& policy : every_policy(positions.size())) {
            INFO("policy " << policy.name());
            auto batched = make_batch_runner(rows, policy, batch, simulated_clock{1e3});
            auto one_by_one = make_runner(net, deferred<any_policy<float>>{policy, policy}, simulated_clock{1e3});
            rowwise_state<scripted_state> state(batch, [] { return scripted_state{}; });
            for (std::size_t first = 0; first < samples; first += batch) {
                const std::size_t n = std::min(batch, samples - first);
                fill(state, first, n);
                const auto out = batched.run(state, std::span<const sample_info>(info).subspan(first, n));
                REQUIRE(out.size() == n);
                for (std::size_t j = 0; j < n; ++j) {
                    scripted_state st{first + j, 0};
                    const auto r = one_by_one.run(st, info[first + j]);
                    const auto& b = out[j];
                    CHECK(b.predicted == r.predicted);
                    CHECK(b.head == r.head);
                    CHECK(b.positions_run == r.positions_run);
                    CHECK(b.heads_evaluated == r.heads_evaluated);
                    CHECK(b.macs == r.macs);  // the same additions in the same order
                    CHECK(b.frequency_level == r.frequency_level);
                    CHECK(b.measures.max_prob == r.measures.max_prob);
                    CHECK(std::equal(b.logits.begin(), b.logits.end(), r.logits.begin(), r.logits.end()));
                }
                one_by_one.policy().next_batch();
            }
            // The learners learned the same, in the same order.
            if (const auto* learner = one_by_one.policy().learner.target<policy::dee<>>())
                CHECK(*batched.policy().target<policy::dee<>>() == *learner);
            if (const auto* learner = one_by_one.policy().learner.target<skipping_learner>()) {
                const auto* b = batched.policy().target<skipping_learner>();
                CHECK(b->updates == learner->updates);
                CHECK(b->bar == learner->bar);
            }
            if (const auto* learner = one_by_one.policy().learner.target<policy::ucb_exit<>>())
                CHECK(batched.policy().target<policy::ucb_exit<>>()->table() == learner->table());
            CHECK(batched.stats().samples == samples);
        }
    }
}

TEST_CASE("batch size 1 is basic_runner exactly, learning included", "[batch][property]") {
    std::mt19937 rng(3);
    const std::vector<std::size_t> positions{0, 2, 3, 5};
    const auto table = random_table(300, positions.size(), 6, 11);
    counters count;
    const auto net = scripted_network(6, positions, table, count);
    const scripted_rows rows(net);
    const auto dee = policy::dee<>(dee_options{.lambda = 0.3, .alpha = 0.2, .confidence_bins = 4});
    auto batched = make_batch_runner(rows, dee, 1, simulated_clock{1e3});
    auto single = make_runner(net, dee, simulated_clock{1e3});
    rowwise_state<scripted_state> state(1, [] { return scripted_state{}; });
    for (std::size_t i = 0; i < 300; ++i) {
        fill(state, i, 1);
        const sample_info s{.index = i};
        const auto b = batched.run(state, std::span<const sample_info>(&s, 1));
        scripted_state st{i, 0};
        const auto r = single.run(st, s);
        CHECK(outcome_of(b[0]) == outcome_of(r));  // seconds included: one row is one sample
    }
    CHECK(batched.policy() == single.policy());
}

TEST_CASE("an empty batch runs nothing, too large a batch is an error naming the sizes", "[batch][error]") {
    const logit_table table(8, {{1, 0}, {0, 1}});
    counters count;
    const auto net = scripted_network(2, {0, 1}, table, count);
    const scripted_rows rows(net);
    auto runner = make_batch_runner(rows, policy::max_prob{0.9}, 4);
    rowwise_state<scripted_state> state(2, [] { return scripted_state{}; });
    CHECK(runner.run(state, {}).empty());
    CHECK(count.stage_calls == std::vector<int>{0, 0});
    CHECK(runner.stats().batches == 0);

    std::vector<sample_info> five(5), three(3);
    CHECK_THROWS_WITH(runner.run(state, five), Catch::Matchers::Contains("a batch of 5 samples exceeds the runner's capacity 4"));
    CHECK_THROWS_WITH(runner.run(state, three), Catch::Matchers::Contains("a batch of 3 samples exceeds the batch state's capacity 2"));
    CHECK(count.stage_calls == std::vector<int>{0, 0});  // checked before any work
    CHECK_THROWS_WITH(make_batch_runner(rows, policy::max_prob{0.9}, 0), Catch::Matchers::Contains("capacity 0"));
    CHECK_THROWS_WITH(rowwise_state<scripted_state>(0, [] { return scripted_state{}; }), Catch::Matchers::Contains("capacity 0"));

    // Labels are checked as basic_runner checks them, naming the sample.
    auto oracle = make_batch_runner(rows, policy::oracle{}, 4);
    std::vector<sample_info> unlabelled{{.index = 0, .label = 1}, {.index = 7}};
    CHECK_THROWS_WITH(oracle.run(state, unlabelled), Catch::Matchers::Contains("sample 7: the policy needs a label"));
    std::vector<sample_info> bad{{.index = 3, .label = 2}};
    CHECK_THROWS_WITH(runner.run(state, bad), Catch::Matchers::Contains("sample 3: label 2 is out of range [0, 2)"));
}

TEST_CASE("a row whose logits are NaN runs to the final head and leaves the other rows alone", "[batch]") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    logit_table table{{{9, 0}, {9, 0}, {9, 0}}, {{nan, 0}, {nan, 1}, {nan, nan}}, {{0, 9}, {0, 9}, {0, 9}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    const scripted_rows rows(net);
    for (const auto& policy : every_policy(3)) {
        INFO("policy " << policy.name());
        auto runner = make_batch_runner(rows, policy, 3);
        rowwise_state<scripted_state> state(3, [] { return scripted_state{}; });
        fill(state, 0, 3);
        const std::vector<sample_info> samples{{.index = 0, .label = 0}, {.index = 1, .label = 0}, {.index = 2, .label = 1}};
        const auto out = runner.run(state, samples);
        CHECK_FALSE(out[1].measures.valid);
        CHECK(out[1].predicted == 0);  // invalid logits report class 0 (confidence.hpp)
        auto single = make_runner(net, deferred<any_policy<float>>{policy, policy});
        for (std::size_t i = 0; i < 3; ++i) {
            scripted_state st{i, 0};
            const auto r = single.run(st, samples[i]);
            CHECK(out[i].head == r.head);
            CHECK(out[i].predicted == r.predicted);
            CHECK(out[i].measures.valid == r.measures.valid);
        }
    }
    // With a threshold, the NaN row goes to the final head while the others leave at head 0.
    auto runner = make_batch_runner(rows, policy::max_prob{0.9}, 3);
    rowwise_state<scripted_state> state(3, [] { return scripted_state{}; });
    fill(state, 0, 3);
    const std::vector<sample_info> samples{{.index = 0}, {.index = 1}, {.index = 2}};
    const auto out = runner.run(state, samples);
    CHECK(out[0].head == 0);
    CHECK(out[1].head == 2);
    CHECK(out[2].head == 0);
}

TEST_CASE("one level per batch: the highest any running row asks for, energy adds up to the batch's",
          "[batch][dvfs]") {
    const dvfs::frequency_domain domain("test", {{0.6e9, 0.80}, {1.0e9, 0.90}, {1.4e9, 1.00}, {2.0e9, 1.15}},
                                        {.static_w = 0.5, .capacitance_f = 1e-9, .switch_latency_s = 2e-6,
                                         .switch_energy_j = 1e-6, .memory_share = 0.2});
    const dvfs::platform_model model(domain, 1e9, 1e-6);
    for (unsigned seed = 1; seed <= 6; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t stages = 2 + rng() % 7;
        const auto positions = random_head_positions(rng, stages);
        std::vector<double> stage_macs(stages);
        for (auto& m : stage_macs) m = static_cast<double>(1000 + rng() % 100000);
        counters count;
        const std::size_t samples = 96;
        const auto table = random_table(samples, positions.size(), 4, seed * 13);
        const auto net = scripted_network(stages, positions, table, count, stage_macs, 500.0);
        const scripted_rows rows(net);
        double full_seconds = 0;
        for (const double m : stage_macs) full_seconds += m / 1e9 + 1e-6;
        const std::size_t batch = 1 + rng() % 16;
        const double deadline = full_seconds * static_cast<double>(batch) * (0.8 + 0.3 * static_cast<double>(seed % 4));
        INFO("seed " << seed << ", batch " << batch);
        const auto inner = policy::max_prob{0.8};
        auto batched = make_batch_runner(rows, policy::with_dvfs(inner, model), batch, dvfs::model_clock(model));
        auto plain = make_runner(net, inner);
        rowwise_state<scripted_state> state(batch, [] { return scripted_state{}; });
        std::vector<sample_info> info(samples);
        for (std::size_t i = 0; i < samples; ++i) info[i] = {.index = i, .deadline_seconds = deadline};
        for (std::size_t first = 0; first < samples; first += batch) {
            const std::size_t n = std::min(batch, samples - first);
            fill(state, first, n);
            const double e0 = batched.clock().energy_joules();
            const auto out = batched.run(state, std::span<const sample_info>(info).subspan(first, n));
            double sum = 0;
            for (std::size_t j = 0; j < n; ++j) {
                REQUIRE(out[j].energy_joules.has_value());
                CHECK(*out[j].energy_joules > 0.0);
                sum += *out[j].energy_joules;
                scripted_state st{first + j, 0};
                const auto r = plain.run(st, info[first + j]);
                CHECK(out[j].head == r.head);  // the selector never changes a decision
                REQUIRE(out[j].frequency_level.has_value());
            }
            CHECK(sum == Approx(batched.clock().energy_joules() - e0).epsilon(1e-12));
            CHECK(batched.clock().level() == batched.clock().default_level());
        }
    }
}

TEST_CASE("the batch's level is the highest a running row asked for, and steps record it", "[batch][dvfs]") {
    // Row i asks for level (index % 3) at its start; the batch must run at the highest.
    struct asks_by_index {
        std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept {
            return f.sample->index % 3;
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
    auto runner = make_batch_runner(rows, asks_by_index{}, 6, level_clock{});
    rowwise_state<scripted_state> state(6, [] { return scripted_state{}; });
    fill(state, 0, 2);
    std::vector<sample_info> two{{.index = 3}, {.index = 4}};  // asks 0 and 1
    auto out = runner.run(state, two);
    CHECK(runner.clock().set.front() == 1);
    CHECK(out[0].frequency_level == std::optional<std::size_t>(0));  // what the row itself asked
    CHECK(out[1].frequency_level == std::optional<std::size_t>(1));
    runner.clock().set.clear();
    fill(state, 0, 3);
    std::vector<sample_info> three{{.index = 3}, {.index = 4}, {.index = 5}};  // asks 0, 1 and 2
    out = runner.run(state, three);
    CHECK(runner.clock().set.front() == 2);
}

TEST_CASE("a batch with deadlines idles to the shortest one, the idle energy shared, keep_level keeps the level",
          "[batch][dvfs]") {
    // Two levels: 1 GHz at 0.9 V (1.81 W) and 2 GHz at 1 V (3 W); idle 0.5 W; no switch costs.
    const dvfs::frequency_domain domain("two", {{1e9, 0.9}, {2e9, 1.0}},
                                        {.static_w = 1.0, .capacitance_f = 1e-9, .idle_w = 0.5});
    const dvfs::platform_model model(domain, 1e9);
    struct slow_start {
        std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept {
            return f.at == nullptr ? std::optional<std::size_t>(0) : std::nullopt;
        }
        decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    };
    const logit_table table(2, {{1, 0}, {0, 1}});
    counters count;
    // Two stages of 0.5e6 MACs, no head cost: 1e6 MACs per row, 2 rows: 2e6 MACs at half of f_max's
    // 1e9 MACs/s = 4 ms at 1.81 W.
    const auto net = scripted_network(2, {0, 1}, table, count, {0.5e6, 0.5e6}, 0.0);
    const scripted_rows rows(net);
    auto runner = make_batch_runner(rows, slow_start{}, 2,
                                    dvfs::model_clock(model, std::nullopt, between_samples::keep_level));
    rowwise_state<scripted_state> state(2, [] { return scripted_state{}; });
    fill(state, 0, 2);
    // Deadlines 10 ms and 6 ms: the batch's period is 6 ms, 2 ms of it idle at 0.5 W = 1 mJ, half each.
    const std::vector<sample_info> two{{.index = 0, .deadline_seconds = 10e-3}, {.index = 1, .deadline_seconds = 6e-3}};
    const auto out = runner.run(state, two);
    REQUIRE(out.size() == 2);
    CHECK(out[0].seconds == Approx(4e-3));
    CHECK(*out[0].energy_joules == Approx(4e-3 * 1.81 / 2 + 0.5e-3));
    CHECK(*out[1].energy_joules == Approx(4e-3 * 1.81 / 2 + 0.5e-3));
    CHECK(runner.clock().now() == Approx(6e-3));
    CHECK(runner.clock().level() == 0);  // kept
    CHECK(runner.clock().switches() == 1);
    // The next batch asks for the level in force: no switch. One row without a deadline: no idle.
    fill(state, 0, 2);
    const std::vector<sample_info> open{{.index = 0, .deadline_seconds = 10e-3}, {.index = 1}};
    const auto next = runner.run(state, open);
    CHECK(runner.clock().switches() == 1);
    CHECK(*next[0].energy_joules + *next[1].energy_joules == Approx(4e-3 * 1.81));
    CHECK(runner.clock().now() == Approx(10e-3));
}

TEST_CASE("the batch's level follows the running rows' latest requests, not a row's old one", "[batch][dvfs]") {
    // Sample 0 asks for level 2 at its start and has no wish afterwards; sample 1 asks for 1
    // every time. After the first head the batch must drop to 1: sample 0's old request of 2
    // no longer counts (it used to pin the batch at its top level).
    struct fades {
        std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept {
            if (f.sample->index == 0) return f.at == nullptr ? std::optional<std::size_t>(2) : std::nullopt;
            return 1;
        }
        decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    };
    struct level_clock {
        std::vector<std::size_t> set;
        double now() const noexcept { return 0.0; }
        void set_level(std::size_t l) noexcept { set.push_back(l); }
    };
    const logit_table table(2, {{1, 0}, {0, 1}, {1, 0}});
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    const scripted_rows rows(net);
    auto runner = make_batch_runner(rows, fades{}, 2, level_clock{});
    rowwise_state<scripted_state> state(2, [] { return scripted_state{}; });
    fill(state, 0, 2);
    const std::vector<sample_info> two{{.index = 0}, {.index = 1}};
    const auto out = runner.run(state, two);
    CHECK(runner.clock().set == std::vector<std::size_t>{2, 1});
    CHECK(out[0].frequency_level == std::optional<std::size_t>(2));  // the last level it asked for
    CHECK(out[1].frequency_level == std::optional<std::size_t>(1));
}

TEST_CASE("run(state, samples, deliver) hands each result over at its row's exit, in completion order",
          "[batch]") {
    // Samples 0..3 exit at heads 2, 0, 1, 0 (max_prob 0.7 stops where the logit gap is large).
    const float hi = 4.0F;
    const logit_table table{{{0, 0}, {0, 0}, {hi, 0}},
                            {{hi, 0}, {0, 0}, {0, 0}},
                            {{0, 0}, {0, hi}, {0, 0}},
                            {{0, hi}, {0, 0}, {0, 0}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    const scripted_rows rows(net);
    struct step_clock {
        double t = 0;
        double now() const noexcept { return t; }
        void on_work(double macs) noexcept { t += macs; }
    };
    auto runner = make_batch_runner(rows, policy::max_prob(0.7F), 4, step_clock{});
    rowwise_state<scripted_state> state(4, [] { return scripted_state{}; });
    fill(state, 0, 4);
    const std::vector<sample_info> four{{.index = 0}, {.index = 1}, {.index = 2}, {.index = 3}};
    std::vector<std::size_t> order, heads, stages_done;
    std::vector<double> clock_at;
    const auto out = runner.run(state, four, [&](std::size_t i, const exit_result<float>& r) noexcept {
        order.push_back(i);
        heads.push_back(r.head);
        clock_at.push_back(runner.clock().now());
        stages_done.push_back(static_cast<std::size_t>(count.stage_calls[2]));
    });
    CHECK(order == std::vector<std::size_t>{1, 3, 2, 0});
    CHECK(heads == std::vector<std::size_t>{0, 0, 1, 2});
    // Delivered before the later stages ran: at head 0 no row had run stage 2 yet.
    CHECK(stages_done == std::vector<std::size_t>{0, 0, 0, 1});
    REQUIRE(out.size() == 4);
    for (std::size_t j = 0; j < order.size(); ++j) {
        CHECK(out[order[j]].head == heads[j]);
        CHECK(out[order[j]].seconds == Approx(clock_at[j]));  // the latency at delivery
    }
}
