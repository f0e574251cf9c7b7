// Replay equals live: the same decisions, heads and costs, for every policy in the library, on
// random networks and seeds.
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/trace/recorder.hpp>
#include <earlyexit/trace/replay.hpp>
#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/selector.hpp>
#include <earlyexit/policy/predictive.hpp>

#include "policies.hpp"
#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;


TEST_CASE("replay makes the live decisions bit for bit, for every policy, on random networks", "[replay][property]") {
    for (unsigned seed = 1; seed <= 12; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t samples = 150;
        const random_scripted c(rng, samples, seed * 7919, 3.0);
        const auto& [stages, positions, classes, stage_macs, table, count, net_] = c;
        const auto& net = *net_;
        const auto labels = [&](std::size_t i) { return top1(table[i][rng() % positions.size()]); };
        std::vector<std::size_t> y(samples);
        for (auto& v : y) v = labels(static_cast<std::size_t>(&v - y.data()));

        scripted_state s;
        const auto t = record_trace(net, s, samples, [&](std::size_t i, scripted_state& st) {
            st = {i, 0};
            return std::optional<std::size_t>(y[i]);
        }, simulated_clock{1e3});

        INFO("seed " << seed << ", " << stages << " stages, " << positions.size() << " heads, " << classes << " classes");
        for (auto policy : every_policy(positions.size())) {
            INFO("policy " << policy.name());
            auto live = make_runner(net, policy, simulated_clock{1e3});
            auto replayed = policy;
            const auto outcomes = replay(t, replayed);
            REQUIRE(outcomes.size() == samples);
            for (std::size_t i = 0; i < samples; ++i) {
                scripted_state st{i, 0};
                const auto r = live.run(st, {i, y[i]});
                const auto& o = outcomes[i];
                CHECK(o.head == r.head);
                CHECK(o.predicted == r.predicted);
                CHECK(o.heads_evaluated == r.heads_evaluated);
                CHECK(o.positions_run == r.positions_run);
                CHECK(o.macs == r.macs);  // same additions in the same order: exact
                CHECK(o.frequency_level == r.frequency_level);
                CHECK(o.seconds == Approx(r.seconds).epsilon(1e-9));
            }
            if (const auto* learner = live.policy().target<policy::dee<>>()) {
                const auto* learned = replayed.target<policy::dee<>>();
                REQUIRE(learned != nullptr);
                CHECK(*learned == *learner);  // the same table, cell for cell
                if (positions.size() > 1) CHECK(learner->visit_stats(0).count > 0);
            }
            if (const auto* learner = live.policy().target<skipping_learner>()) {
                const auto* learned = replayed.target<skipping_learner>();
                REQUIRE(learned != nullptr);
                CHECK(learned->updates == learner->updates);
                CHECK(learned->bar == learner->bar);
                CHECK(learned->updates.size() == samples);
            }
        }
    }
}

TEST_CASE("replay on a model clock gives the live levels, times and energy bit for bit", "[replay][property][dvfs]") {
    const dvfs::frequency_domain domain("test", {{0.6e9, 0.80}, {1.0e9, 0.90}, {1.4e9, 1.00}, {2.0e9, 1.15}},
                                        {.static_w = 0.5, .capacitance_f = 1e-9, .switch_latency_s = 2e-6,
                                         .switch_energy_j = 1e-6, .memory_share = 0.2});
    for (unsigned seed = 1; seed <= 8; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t stages = 2 + rng() % 7;
        const std::vector<std::size_t> positions = random_head_positions(rng, stages);
        const std::size_t samples = 120;
        std::vector<double> stage_macs(stages);
        for (auto& m : stage_macs) m = static_cast<double>(1000 + rng() % 100000);
        counters count;
        const auto table = random_table(samples, positions.size(), 2 + rng() % 9, seed * 104729);
        const auto net = scripted_network(stages, positions, table, count, stage_macs, 500.0);
        scripted_state s;
        const auto t = record_trace(net, s, samples, [&](std::size_t i, scripted_state& st) {
            st = {i, 0};
            return std::optional<std::size_t>(top1(table[i].back()));
        }, simulated_clock{1e6});
        const dvfs::platform_model model(domain, 1e9, 1e-6);
        double full_seconds = 0;
        for (const double m : stage_macs) full_seconds += m / 1e9 + 1e-6;
        // Deadlines from tight (many misses) to loose; the selector's rule and reserve vary.
        const double deadline = full_seconds * (0.6 + 0.2 * static_cast<double>(seed % 5));
        const std::vector<any_policy<float>> policies{
            policy::with_dvfs(policy::max_prob{0.8}, model),
            policy::with_dvfs(policy::max_prob{0.6}, model, {.reserve = 0.0}),
            policy::with_dvfs(policy::full{}, model, {.predicted_exit = false, .reserve = 0.5}),
            policy::with_dvfs(policy::max_prob{0.7}, model, {.rule = dvfs::rule::reference, .reference_j = 1.5}),
            policy::with_dvfs(skipping_learner{}, model),
            policy::with_dvfs(policy::dee<>(dee_options{.lambda = 0.3, .confidence_bins = 4}), model),
            // Predictive Exit with the selector: the frequency decision follows each prediction.
            policy::with_dvfs(policy::predictive({.beta = 1.0, .rounds = 3}, std::vector<double>(positions.size(), 2.5)),
                              model, {.objective = dvfs::objective::least_energy, .reserve = 0.5}),
            policy::max_prob{0.8}};  // no selector: every sample at the default level
        INFO("seed " << seed << ", " << stages << " stages, " << positions.size() << " heads, deadline " << deadline);
        for (auto policy : policies) {
            auto live = make_runner(net, policy, dvfs::model_clock(model));
            const auto outcomes = replay(t, policy, dvfs::model_clock(model), deadline);
            REQUIRE(outcomes.size() == samples);
            bool lowered = false;
            for (std::size_t i = 0; i < samples; ++i) {
                scripted_state st{i, 0};
                const auto r = live.run(st, {i, std::nullopt, deadline});
                CHECK(outcome_of(r) == outcomes[i]);  // seconds and energy included, exactly
                REQUIRE(r.energy_joules.has_value());
                CHECK(*r.energy_joules > 0.0);
                CHECK(live.clock().level() == live.clock().default_level());  // restored after every sample
                lowered = lowered || (r.frequency_level && *r.frequency_level < domain.max_level());
            }
            if (policy.name() == "max_prob") CHECK_FALSE(lowered);
        }
    }
}

TEST_CASE("replay of a real Eigen network recorded on the wall clock gives the live decisions", "[replay]") {
    using vec = Eigen::VectorXf;
    struct dense {
        Eigen::MatrixXf w;
        void operator()(vec& x) const { x = (w * x).cwiseMax(0.f); }
    };
    std::mt19937 rng(5);
    std::normal_distribution<float> n(0.f, 1.f);
    auto random = [&](int r, int c) {
        Eigen::MatrixXf m(r, c);
        for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng) / std::sqrt(static_cast<float>(c));
        return m;
    };
    auto head = [&] { return linear_head<float>(random(5, 16) * 3.f, vec::Zero(5)); };
    const auto net = make_network<vec>()
                         .stage(dense{random(16, 16) * 1.5f}, {.macs = 256})
                         .exit(head())
                         .stage(dense{random(16, 16) * 1.5f}, {.macs = 256})
                         .exit(head())
                         .stage(dense{random(16, 16) * 1.5f}, {.macs = 256})
                         .exit(head())
                         .build();
    std::vector<vec> inputs(300);
    for (auto& x : inputs) x = random(16, 1);
    vec state;
    const auto t = record_trace(net, state, inputs.size(), [&](std::size_t i, vec& x) {
        x = inputs[i];
        return std::optional<std::size_t>(i % 5);
    });
    CHECK(t.stage_seconds(0)[0] > 0.0);  // wall-clock times were recorded
    auto live = make_runner(net, policy::max_prob{0.6});
    const auto outcomes = replay(t, policy::max_prob{0.6});
    std::size_t early = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        vec x = inputs[i];
        const auto r = live.run(x);
        CHECK(outcomes[i].head == r.head);
        CHECK(outcomes[i].predicted == r.predicted);
        CHECK(outcomes[i].macs == r.macs);
        early += r.head < 2;
    }
    CHECK(early > 0);
    CHECK(early < inputs.size());
}
