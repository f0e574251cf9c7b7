#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/policy/static.hpp>
#include <earlyexit/runner.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

TEST_CASE("max_prob stops at or above its threshold, never on invalid logits", "[policy][static]") {
    const policy::max_prob p{0.8};
    CHECK(p.decide(context_with(0.8f, 0.f, 0.f, 0)) == decision::stop);
    CHECK(p.decide(context_with(0.79f, 0.f, 0.f, 0)) == decision::proceed);
    CHECK(p.decide(context_with(1.f, 1.f, 0.f, 0, 1, false)) == decision::proceed);
    CHECK(p.threshold() == 0.8);
    CHECK(p.name() == "max_prob");
}

TEST_CASE("entropy stops at or below its threshold", "[policy][static]") {
    const policy::entropy p{0.25};
    CHECK(p.decide(context_with(0.f, 0.f, 0.25f, 0)) == decision::stop);
    CHECK(p.decide(context_with(0.f, 0.f, 0.26f, 0)) == decision::proceed);
    CHECK(p.decide(context_with(0.f, 0.f, 0.f, 0, 1, false)) == decision::proceed);
}

TEST_CASE("margin stops at or above its threshold", "[policy][static]") {
    const policy::margin p{0.5};
    CHECK(p.decide(context_with(0.f, 0.5f, 0.f, 0)) == decision::stop);
    CHECK(p.decide(context_with(0.f, 0.49f, 0.f, 0)) == decision::proceed);
}

TEST_CASE("patience stops when enough heads in a row agree", "[policy][static]") {
    const policy::patience p{3};
    CHECK(p.decide(context_with(0.f, 0.f, 0.f, 0, 2)) == decision::proceed);
    CHECK(p.decide(context_with(0.f, 0.f, 0.f, 0, 3)) == decision::stop);
}

TEST_CASE("fixed, full and oracle", "[policy][static]") {
    policy::fixed f{2};
    CHECK(f.first_check({}) == 2);
    CHECK(f.decide(context_with(0.f, 0.f, 1.f, 0)) == decision::stop);
    const policy::full full;
    CHECK(full.first_check({}) == npos);
    CHECK(full.decide(context_with(1.f, 1.f, 0.f, 0)) == decision::proceed);
    policy::oracle o;
    CHECK(o.needs_label());
    const sample_info labelled{.index = 0, .label = 4};
    const auto with_label = [&](exit_context<float> c) {
        c.sample = &labelled;
        return c;
    };
    CHECK(o.decide(with_label(context_with(0.1f, 0.f, 1.f, 4))) == decision::stop);
    CHECK(o.decide(with_label(context_with(0.99f, 0.9f, 0.f, 3))) == decision::proceed);
    CHECK(o.decide(with_label(context_with(0.1f, 0.f, 1.f, 4, 1, false))) == decision::proceed);
    CHECK(o.decide(context_with(0.1f, 0.f, 1.f, 4)) == decision::proceed);  // no sample: no label
}

TEST_CASE("out-of-range parameters are errors naming the value", "[policy][static][error]") {
    CHECK_THROWS_WITH(policy::max_prob{1.5}, Contains("max_prob: threshold 1.5 is out of range [0, 1]"));
    CHECK_THROWS_WITH(policy::max_prob{-0.1}, Contains("-0.1"));
    CHECK_THROWS_WITH(policy::entropy{std::numeric_limits<double>::quiet_NaN()}, Contains("entropy: threshold nan"));
    CHECK_THROWS_WITH(policy::margin{2.0}, Contains("margin: threshold 2"));
    CHECK_THROWS_WITH(policy::patience{0}, Contains("patience: count 0 must be >= 1"));
    CHECK_NOTHROW(policy::max_prob{0.0});
    CHECK_NOTHROW(policy::max_prob{1.0});
}

TEST_CASE("every static policy models the concept", "[policy][static]") {
    STATIC_REQUIRE(exit_policy<policy::max_prob, float>);
    STATIC_REQUIRE(exit_policy<policy::entropy, double>);
    STATIC_REQUIRE(exit_policy<policy::margin, float>);
    STATIC_REQUIRE(exit_policy<policy::patience, float>);
    STATIC_REQUIRE(exit_policy<policy::fixed, float>);
    STATIC_REQUIRE(exit_policy<policy::full, float>);
    STATIC_REQUIRE(exit_policy<policy::oracle, float>);
    STATIC_REQUIRE_FALSE(hooks::has_update<policy::max_prob, float>);  // static policies learn nothing
}

TEST_CASE("raising a threshold never makes a sample exit earlier, oracle is never worse than full",
          "[policy][static][property]") {
    for (unsigned seed = 1; seed <= 5; ++seed) {
        counters count;
        const std::size_t samples = 200;
        const auto table = random_table(samples, 6, 5, seed);
        const auto net = scripted_network(6, {0, 1, 2, 3, 4, 5}, table, count);
        const std::vector<double> taus{0.0, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0};
        std::vector<std::size_t> prev(samples, 0);
        double prev_cost = 0;
        for (double tau : taus) {
            auto runner = make_runner(net, policy::max_prob{tau}, simulated_clock{});
            double cost = 0;
            for (std::size_t i = 0; i < samples; ++i) {
                scripted_state s{i, 0};
                const auto r = runner.run(s);
                CHECK(r.head >= prev[i]);
                prev[i] = r.head;
                cost += r.macs;
            }
            CHECK(cost >= prev_cost);
            prev_cost = cost;
        }
        // tau = 0 exits at the first head, tau = 1 (almost always) at the last.
        auto oracle = make_runner(net, policy::oracle{}, simulated_clock{});
        auto full = make_runner(net, policy::full{}, simulated_clock{});
        std::size_t oracle_correct = 0, full_correct = 0;
        for (std::size_t i = 0; i < samples; ++i) {
            const std::size_t label = top1(table[i].back());  // treat the final head as ground truth half the time
            const std::size_t truth = (i % 2 == 0) ? label : (label + 1) % 5;
            scripted_state a{i, 0}, b{i, 0};
            oracle_correct += oracle.run(a, {.index = i, .label = truth}).predicted == truth;
            full_correct += full.run(b).predicted == truth;
        }
        CHECK(oracle_correct >= full_correct);
    }
}
