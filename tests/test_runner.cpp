#include <limits>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/runner.hpp>
#include <earlyexit/policy/static.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

namespace {

// Heads at positions 1, 3, 5 of 6 stages; 3 classes. Sample 0: confident (class 2) from head 1.
// Sample 1: never confident; top-1 sequence 0, 1, 1.
logit_table demo_table() {
    return {
        {{0.f, 0.f, 1.f}, {0.f, 0.f, 5.f}, {0.f, 0.f, 9.f}},
        {{1.f, 0.f, 0.f}, {0.f, 1.f, 0.f}, {0.f, 1.f, 0.5f}},
    };
}

/// Only the required member: must compile and run with every default.
struct minimal_policy {
    decision decide(const exit_context<float>& c) const noexcept {
        return c.head == 1 ? decision::stop : decision::proceed;
    }
};

/// Evaluates every other head, asks for frequency levels and records what it learns.
struct hooked_policy {
    std::vector<std::size_t>* seen = nullptr;
    std::size_t begins = 0;
    std::size_t updates = 0;
    std::vector<std::size_t> episode_heads;
    void begin(const sample_info&) noexcept { ++begins; }
    std::size_t first_check(const sample_info&) const noexcept { return 0; }
    std::size_t next_check(const exit_context<float>& c) const noexcept { return c.head + 2; }
    std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept { return 10 + f.next_head; }
    decision decide(const exit_context<float>& c) noexcept {
        seen->push_back(c.head);
        return decision::proceed;
    }
    void update(const episode<float>& e) noexcept {
        ++updates;
        episode_heads.clear();
        for (const auto& s : e.steps) episode_heads.push_back(s.head);
    }
};

/// Asks to go backwards: the runner must still move forward.
struct backwards_policy {
    std::size_t next_check(const exit_context<float>&) const noexcept { return 0; }
    decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
};

struct level_clock {
    simulated_clock inner{1000.0};
    std::vector<std::size_t> levels;
    double now() const noexcept { return inner.now(); }
    void on_work(double m) noexcept { inner.on_work(m); }
    void set_level(std::size_t l) noexcept { levels.push_back(l); }
};

struct recording_observer {
    std::vector<std::size_t> stages;
    std::vector<double> stage_seconds;
    std::vector<std::size_t> patience;
    std::size_t exits = 0;
    void on_stage(std::size_t p, double s, double) noexcept {
        stages.push_back(p);
        stage_seconds.push_back(s);
    }
    void on_head(const exit_context<float>& c) noexcept { patience.push_back(c.patience); }
    void on_exit(const exit_result<float>&, const episode<float>&) noexcept { ++exits; }
};

}  // namespace

TEST_CASE("after an exit no later stage or head runs", "[runner]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    basic_runner runner(net, policy::max_prob{0.9}, simulated_clock{1000.0});
    scripted_state s{0, 0};
    const auto r = runner.run(s);
    CHECK(count.stage_calls == std::vector<int>{1, 1, 1, 1, 0, 0});
    CHECK(count.head_calls == std::vector<int>{1, 1, 0});
    CHECK(s.stages_run == 4);
    CHECK(r.head == 1);
    CHECK(r.position == 3);
    CHECK(r.positions_run == 4);
    CHECK(r.heads_evaluated == 2);
    CHECK(r.predicted == 2);
    CHECK(r.macs == 4 * 10.0 + 2 * 1.0);
    CHECK(r.seconds == Approx(42.0 / 1000.0));
    CHECK(r.exited_early(runner.info()));
    CHECK(r.probs.size() == 3);
    CHECK(r.probs[2] == Approx(r.measures.max_prob));
    CHECK_FALSE(r.frequency_level.has_value());
}

TEST_CASE("a sample that never gets confident runs the whole network and exits at the final head", "[runner]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    auto runner = make_runner(net, policy::max_prob{0.9}, simulated_clock{});
    scripted_state s{1, 0};
    const auto r = runner.run(s);
    CHECK(count.stage_calls == std::vector<int>(6, 1));
    CHECK(count.head_calls == std::vector<int>{1, 1, 1});
    CHECK(r.head == 2);
    CHECK(r.predicted == 1);
    CHECK_FALSE(r.exited_early(runner.info()));
}

TEST_CASE("fixed and full evaluate exactly the one head they ask for", "[runner]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    scripted_state s{1, 0};
    const auto r = make_runner(net, policy::fixed{1}, simulated_clock{}).run(s);
    CHECK(count.head_calls == std::vector<int>{0, 1, 0});
    CHECK(count.stage_calls == std::vector<int>{1, 1, 1, 1, 0, 0});
    CHECK(r.head == 1);
    CHECK(r.heads_evaluated == 1);
    CHECK(r.macs == 41.0);

    count.clear();
    s = {1, 0};
    const auto f = make_runner(net, policy::full{}, simulated_clock{}).run(s);
    CHECK(count.head_calls == std::vector<int>{0, 0, 1});
    CHECK(count.stage_calls == std::vector<int>(6, 1));
    CHECK(f.macs == net.full_macs());
}

TEST_CASE("a policy with only decide() compiles and runs with every default", "[runner][policy]") {
    STATIC_REQUIRE(exit_policy<minimal_policy, float>);
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    scripted_state s{1, 0};
    const auto r = make_runner(net, minimal_policy{}, simulated_clock{}).run(s);
    CHECK(r.head == 1);
    CHECK(count.head_calls == std::vector<int>{1, 1, 0});
}

TEST_CASE("next_check skips heads, frequency levels reach the clock, update gets the episode", "[runner][policy]") {
    counters count;
    const auto table = random_table(1, 5, 4, 3);
    const auto net = scripted_network(5, {0, 1, 2, 3, 4}, table, count);
    std::vector<std::size_t> seen;
    hooked_policy p;
    p.seen = &seen;
    basic_runner runner(net, p, level_clock{});
    scripted_state s{0, 0};
    const auto r = runner.run(s);
    CHECK(count.head_calls == std::vector<int>{1, 0, 1, 0, 1});  // heads 0, 2, 4
    CHECK(count.stage_calls == std::vector<int>(5, 1));
    CHECK(seen == std::vector<std::size_t>{0, 2});  // decide is not asked at the final head
    // Asked at the start (next head 0) and after each proceed, once the next head is known.
    CHECK(runner.clock().levels == std::vector<std::size_t>{10, 12, 14});
    CHECK(r.frequency_level == std::optional<std::size_t>(14));
    CHECK(runner.policy().begins == 1);
    CHECK(runner.policy().updates == 1);
    CHECK(runner.policy().episode_heads == std::vector<std::size_t>{0, 2, 4});
    CHECK(r.heads_evaluated == 3);
}

TEST_CASE("next_check can neither stay nor go back", "[runner][policy]") {
    counters count;
    const auto table = random_table(1, 3, 4, 5);
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    scripted_state s{0, 0};
    const auto r = make_runner(net, backwards_policy{}, simulated_clock{}).run(s);
    CHECK(count.head_calls == std::vector<int>{1, 1, 1});
    CHECK(r.head == 2);
}

TEST_CASE("patience counts evaluated heads in a row with the same top-1", "[runner][policy]") {
    counters count;
    // top-1 per head: 0, 1, 1, 1
    const logit_table table{{{2.f, 0.f}, {0.f, 2.f}, {0.f, 3.f}, {0.f, 4.f}}};
    const auto net = scripted_network(4, {0, 1, 2, 3}, table, count);
    basic_runner runner(net, policy::patience{2}, simulated_clock{}, recording_observer{});
    scripted_state s{0, 0};
    const auto r = runner.run(s);
    CHECK(r.head == 2);
    CHECK(runner.observer().patience == std::vector<std::size_t>{1, 1, 2});
    CHECK(runner.observer().exits == 1);
}

TEST_CASE("an observer with on_stage sees every stage run, timed on the clock", "[runner]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count, {10, 20, 30, 40, 50, 60});
    basic_runner runner(net, policy::max_prob{0.9}, simulated_clock{10.0}, recording_observer{});
    scripted_state s{0, 0};
    const auto r = runner.run(s);
    CHECK(runner.observer().stages == std::vector<std::size_t>{0, 1, 2, 3});
    REQUIRE(runner.observer().stage_seconds.size() == 4);
    for (std::size_t i = 0; i < 4; ++i)
        CHECK(runner.observer().stage_seconds[i] == Approx(static_cast<double>(i + 1)));
    CHECK(r.seconds == Approx((100.0 + 2.0) / 10.0));
}

TEST_CASE("the oracle exits at the first correct head and needs a label", "[runner][policy]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    auto runner = make_runner(net, policy::oracle{}, simulated_clock{});
    scripted_state s{1, 0};
    auto r = runner.run(s, {.index = 1, .label = 1});  // top-1 sequence 0, 1, 1
    CHECK(r.head == 1);
    s = {1, 0};
    r = runner.run(s, {.index = 1, .label = 2});  // never correct: final head
    CHECK(r.head == 2);
    s = {1, 0};
    CHECK_THROWS_WITH(runner.run(s, {.index = 7}), Contains("sample 7: the policy needs a label"));
    CHECK_THROWS_WITH(runner.run(s, {.index = 3, .label = 3}), Contains("sample 3: label 3 is out of range [0, 3)"));
}

TEST_CASE("a policy is bound to the network when the runner is built", "[runner][error]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    CHECK_THROWS_WITH(make_runner(net, policy::fixed{3}), Contains("fixed: head 3 does not exist; the network has 3 heads"));
}

TEST_CASE("invalid logits never trigger an exit and are reported as such", "[runner]") {
    counters count;
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    const logit_table table{{{qnan, 0.f}, {qnan, 1.f}}};
    const auto net = scripted_network(2, {0, 1}, table, count);
    scripted_state s{0, 0};
    const auto r = make_runner(net, policy::max_prob{0.0}, simulated_clock{}).run(s);
    CHECK(r.head == 1);
    CHECK_FALSE(r.measures.valid);
    CHECK(r.predicted == 0);
}

TEST_CASE("the wall clock times real work", "[runner]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    auto runner = make_runner(net, policy::full{});
    scripted_state s{0, 0};
    const auto r = runner.run(s);
    CHECK(r.seconds >= 0.0);
    CHECK(r.seconds < 1.0);
}

TEST_CASE("copies of a runner are independent and share the network", "[runner]") {
    counters count;
    const auto table = demo_table();
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    auto a = make_runner(net, policy::max_prob{0.9}, simulated_clock{});
    auto b = a;
    scripted_state s{0, 0};
    (void)a.run(s);
    CHECK(a.clock().now() > 0.0);
    CHECK(b.clock().now() == 0.0);
    CHECK(&b.network() == &net);
    // A runner on a temporary network is refused at compile time: compile_fail/basic_runner_temporary.
}

TEST_CASE("runners on several threads share one network and agree with a single-threaded run", "[runner][threads]") {
    const std::size_t samples = 400;
    const auto table = random_table(samples, 3, 5, 17);
    // Counting stages write shared counters: use a network with no counters for the threads.
    earlyexit::dynamic_network_builder<scripted_state> b;
    for (std::size_t p = 0; p < 3; ++p)
        b.stage([](scripted_state& s) { ++s.stages_run; }, {.macs = 10})
            .exit(make_head([&table, p](const scripted_state& s, std::span<float> out) {
                std::copy(table[s.sample][p].begin(), table[s.sample][p].end(), out.begin());
            }, 5));
    const auto net = b.build();

    std::vector<std::size_t> expected(samples);
    auto single = make_runner(net, policy::max_prob{0.6}, simulated_clock{});
    for (std::size_t i = 0; i < samples; ++i) {
        scripted_state s{i, 0};
        expected[i] = single.run(s).head;
    }
    constexpr std::size_t threads = 4;
    std::vector<std::vector<std::size_t>> got(threads, std::vector<std::size_t>(samples));
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            auto runner = make_runner(net, policy::max_prob{0.6}, simulated_clock{});  // one runner per thread
            for (std::size_t i = 0; i < samples; ++i) {
                scripted_state s{i, 0};
                got[t][i] = runner.run(s).head;
            }
        });
    for (auto& th : pool) th.join();
    for (const auto& g : got) CHECK(g == expected);
}

TEST_CASE("deadlines are checked: 0, negative, NaN and infinite ones are errors naming the value", "[runner][error]") {
    const logit_table table = demo_table();
    counters count;
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    auto runner = make_runner(net, policy::max_prob(0.9F), simulated_clock(1000.0));
    scripted_state s{0, 0};
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(runner.run(s, {.index = 7, .deadline_seconds = 0.0}),
                      "sample 7: deadline 0 s must be finite and > 0 seconds");
    CHECK_THROWS_WITH(runner.run(s, {.index = 7, .deadline_seconds = -1.5}),
                      "sample 7: deadline -1.5 s must be finite and > 0 seconds");
    CHECK_THROWS_WITH(runner.run(s, {.index = 7, .deadline_seconds = nan}),
                      "sample 7: deadline nan s must be finite and > 0 seconds");
    CHECK_THROWS_WITH(runner.run(s, {.index = 7, .deadline_seconds = inf}),
                      "sample 7: deadline inf s must be finite and > 0 seconds");
    CHECK(count.stage_calls[0] == 0);  // checked before any work
    CHECK_THROWS_WITH(check_deadline(nan, "period"), "period nan s: a deadline must be finite and > 0 seconds");
    CHECK_NOTHROW(check_deadline(std::nullopt, "period"));
    CHECK_NOTHROW(check_deadline(1e-9, "period"));
}

TEST_CASE("a result says whether its sample missed its deadline", "[runner]") {
    // 1000 MACs/s, stages of 10 MACs and heads of 1: sample 0 exits at head 1 (position 3) after
    // 4 stages and 2 heads, 0.042 s.
    const logit_table table = demo_table();
    counters count;
    const auto net = scripted_network(6, {1, 3, 5}, table, count);
    auto runner = make_runner(net, policy::max_prob(0.9F), simulated_clock(1000.0));
    scripted_state s{0, 0};
    auto r = runner.run(s, {.index = 0, .deadline_seconds = 0.05});
    CHECK(r.seconds == Approx(0.042));
    CHECK_FALSE(r.deadline_missed);
    s = {0, 0};
    r = runner.run(s, {.index = 0, .deadline_seconds = 0.04});
    CHECK(r.deadline_missed);
    CHECK(outcome_of(r).deadline_missed);
    s = {0, 0};
    CHECK_FALSE(runner.run(s, {.index = 0}).deadline_missed);  // no deadline, no miss
}
