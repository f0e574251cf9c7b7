// The DVFS selector: hand-computed levels for the deadline and reference rules, and on random
// networks the property that a full reserve never misses a deadline the highest level can meet.
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/selector.hpp>
#include <earlyexit/dvfs/table_file.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

namespace {

// 0.5, 1, 1.5, 2 GHz; no switch costs unless asked.
dvfs::frequency_domain four_levels(double switch_s = 0.0) {
    return {"four", {{0.5e9, 0.8}, {1.0e9, 0.9}, {1.5e9, 1.0}, {2.0e9, 1.1}},
            {.static_w = 0.2, .capacitance_f = 1e-9, .switch_latency_s = switch_s}};
}

// Four stages of 1e6 MACs with a head of 1e5 MACs after each; 1e9 MACs/s at 2 GHz, so 1e6 MACs
// take 1 ms at level 3, 4/3 ms at level 2, 2 ms at level 1, 4 ms at level 0.
struct fixture {
    std::vector<std::size_t> positions{0, 1, 2, 3};
    std::vector<double> stage_macs{1e6, 1e6, 1e6, 1e6};
    std::vector<double> head_macs{1e5, 1e5, 1e5, 1e5};
    network_info info{4, 4, 3, positions, stage_macs, head_macs, 4.1e6};
};

frequency_context<float> at_start(std::size_t next_head, std::optional<double> deadline, std::size_t level = 3) {
    frequency_context<float> f;
    f.next_head = next_head;
    f.deadline_seconds = deadline;
    f.level = level;
    return f;
}

}  // namespace

TEST_CASE("deadline rule: the lowest level whose time to the predicted head fits", "[dvfs][selector]") {
    fixture fx;
    const dvfs::platform_model m(four_levels(), 1e9);
    dvfs::selector no_reserve(m, {.objective = dvfs::objective::lowest_level, .reserve = 0.0});
    no_reserve.prepare(fx.info);
    // To head 1: 2 stages + head 1 = 2.1e6 MACs: 8.4 ms at level 0, 4.2 at 1, 2.8 at 2, 2.1 at 3.
    CHECK(no_reserve.choose(at_start(1, 9e-3)) == std::optional<std::size_t>(0));
    CHECK(no_reserve.choose(at_start(1, 4.5e-3)) == std::optional<std::size_t>(1));
    CHECK(no_reserve.choose(at_start(1, 3.0e-3)) == std::optional<std::size_t>(2));
    CHECK(no_reserve.choose(at_start(1, 2.0e-3)) == std::optional<std::size_t>(3));  // nothing fits: the highest
    CHECK(no_reserve.choose(at_start(1, std::nullopt)) == std::nullopt);             // no deadline: keep the level

    // Half way: stages 0 and 1 done (1 ms), head 2 next: stage 2 + head 2 = 1.1e6 MACs, 2.2 ms at level 1.
    auto f = at_start(2, 4.0e-3);
    f.stages_run = 2;
    f.elapsed_seconds = 1.5e-3;  // 2.5 ms left: level 1 (2.2 ms) fits, level 0 (4.4 ms) does not
    CHECK(no_reserve.choose(f) == std::optional<std::size_t>(1));

    // The reserve keeps the worst rest at the highest level: after head 1, stages 2-3 and heads 2-3,
    // 2.2e6 MACs = 2.2 ms. With 4.5 ms: 2.3 ms are left for the 2.1e6 MACs: level 3 only.
    dvfs::selector full_reserve(m, {.objective = dvfs::objective::lowest_level, .reserve = 1.0});
    full_reserve.prepare(fx.info);
    CHECK(full_reserve.choose(at_start(1, 4.5e-3)) == std::optional<std::size_t>(3));
    CHECK(full_reserve.choose(at_start(1, 5.05e-3)) == std::optional<std::size_t>(2));  // 2.8 + 2.2 = 5.0
    // Predicting the final head: no rest to reserve. 4.1e6 MACs: 8.2 ms at level 1.
    CHECK(full_reserve.choose(at_start(3, 8.25e-3)) == std::optional<std::size_t>(1));
    // predicted_exit = false always aims at the final head.
    dvfs::selector plain(m, {.objective = dvfs::objective::lowest_level, .predicted_exit = false});
    plain.prepare(fx.info);
    CHECK(plain.choose(at_start(0, 8.25e-3)) == std::optional<std::size_t>(1));
    CHECK(plain.choose(at_start(0, 8.1e-3)) == std::optional<std::size_t>(2));
}

TEST_CASE("deadline rule: a switch costs its latency, staying costs none", "[dvfs][selector]") {
    fixture fx;
    dvfs::selector s(dvfs::platform_model(four_levels(0.5e-3), 1e9), {.objective = dvfs::objective::lowest_level, .reserve = 0.0});
    s.prepare(fx.info);
    // To head 1 at level 1: 4.2 ms, plus 0.5 ms to switch from level 3.
    CHECK(s.choose(at_start(1, 4.6e-3, 3)) == std::optional<std::size_t>(2));
    CHECK(s.choose(at_start(1, 4.75e-3, 3)) == std::optional<std::size_t>(1));
    CHECK(s.choose(at_start(1, 4.25e-3, 1)) == std::optional<std::size_t>(1));  // already at level 1
}

TEST_CASE("deadline rule, least energy: the fitting level that spends the least", "[dvfs][selector]") {
    fixture fx;
    // Static power 2 W and a domain that idles at 0 W (power-gated) make slow levels expensive:
    // energy per 1e6 MACs above idle (time at level l times 2 W + 1 nF * V^2 * f - 0 W): level 0:
    // 4 ms * (2 + 0.32) = 9.28 mJ, level 1: 2 ms * (2 + 0.81) = 5.62 mJ, level 2: 4/3 ms * (2 + 1.5)
    // = 4.67 mJ, level 3: 1 ms * (2 + 2.42) = 4.42 mJ: racing to idle wins.
    const dvfs::frequency_domain d("static", {{0.5e9, 0.8}, {1.0e9, 0.9}, {1.5e9, 1.0}, {2.0e9, 1.1}},
                                   {.static_w = 2.0, .capacitance_f = 1e-9, .idle_w = 0.0});
    const dvfs::platform_model m(d, 1e9);
    CHECK(m.power_w(0) * 4e-3 == Approx(9.28e-3));
    CHECK(m.power_w(3) * 1e-3 == Approx(4.42e-3));
    dvfs::selector lowest(m, {.objective = dvfs::objective::lowest_level, .reserve = 0.0});
    dvfs::selector least(m, {.objective = dvfs::objective::least_energy, .reserve = 0.0});
    lowest.prepare(fx.info);
    least.prepare(fx.info);
    CHECK(lowest.choose(at_start(1, 9e-3)) == std::optional<std::size_t>(0));
    CHECK(least.choose(at_start(1, 9e-3)) == std::optional<std::size_t>(3));
    // Idling at the static power (a clock-gated domain that keeps leaking, the default when a
    // table gives no idle power), the slack costs 2 W whatever the level: above idle a level
    // costs only C V^2 per cycle, and the slowest fitting level is the cheapest. Counting the
    // busy time alone (before Step 8) picked level 3 here too.
    const dvfs::frequency_domain leaky("leaky", {{0.5e9, 0.8}, {1.0e9, 0.9}, {1.5e9, 1.0}, {2.0e9, 1.1}},
                                       {.static_w = 2.0, .capacitance_f = 1e-9});
    dvfs::selector least_leaky(dvfs::platform_model(leaky, 1e9), {.objective = dvfs::objective::least_energy, .reserve = 0.0});
    least_leaky.prepare(fx.info);
    CHECK(least_leaky.choose(at_start(1, 9e-3)) == std::optional<std::size_t>(0));
    CHECK(least_leaky.choose(at_start(1, 4.5e-3)) == std::optional<std::size_t>(1));  // level 0 does not fit
    // Without static power the slowest fitting level is also the cheapest.
    const dvfs::platform_model dynamic_only(four_levels(), 1e9);
    dvfs::selector least_dynamic(dynamic_only, {.objective = dvfs::objective::least_energy, .reserve = 0.0});
    least_dynamic.prepare(fx.info);
    CHECK(least_dynamic.choose(at_start(1, 4.5e-3)) == std::optional<std::size_t>(1));
}

TEST_CASE("reference rule: f = f_max * J / r rounded up to a level", "[dvfs][selector]") {
    // J: stages to the predicted exit, r: stages left in the plain network (4 stages, f_max 2 GHz;
    // levels 0.5, 1, 1.5, 2 GHz). The predicted work stretched over the plain network's time.
    fixture fx;
    const dvfs::platform_model m(four_levels(), 1e9);
    const auto pick = [&](double scale, std::size_t next_head, std::size_t stages_run) {
        dvfs::selector s(m, {.rule = dvfs::rule::reference, .reference_j = scale});
        s.prepare(fx.info);
        auto f = at_start(next_head, std::nullopt);
        f.stages_run = stages_run;
        return s.choose(f);
    };
    CHECK(pick(1.0, 0, 0) == std::optional<std::size_t>(0));  // J 1 of r 4: 0.5 GHz
    CHECK(pick(1.0, 1, 0) == std::optional<std::size_t>(1));  // J 2 of 4: 1 GHz
    CHECK(pick(1.0, 2, 0) == std::optional<std::size_t>(2));  // J 3 of 4: 1.5 GHz
    CHECK(pick(1.0, 3, 0) == std::optional<std::size_t>(3));  // the whole plain network: f_max
    CHECK(pick(1.0, 2, 2) == std::optional<std::size_t>(1));  // from stage 2: J 1 of r 2: 1 GHz
    CHECK(pick(1.0, 3, 2) == std::optional<std::size_t>(3));  // from stage 2 to the end: f_max
    CHECK(pick(1.0, 3, 3) == std::optional<std::size_t>(3));  // the last stage: f_max
    // More predicted work never gets a lower clock (the rule before Step 8 ran backwards: it gave
    // the final head 0.5 GHz and the first head f_max).
    for (std::size_t from = 0; from < 4; ++from)
        for (std::size_t h = from; h + 1 < 4; ++h) CHECK(*pick(1.0, h, from) <= *pick(1.0, h + 1, from));
    // The scale: 1.2 * 1 GHz = 1.2 GHz rounds up to 1.5 GHz; 0.6 * 2 GHz = 1.2 GHz too.
    CHECK(pick(1.2, 1, 0) == std::optional<std::size_t>(2));
    CHECK(pick(0.6, 3, 0) == std::optional<std::size_t>(2));
    // It ignores the deadline.
    dvfs::selector s(m, {.rule = dvfs::rule::reference});
    s.prepare(fx.info);
    CHECK(s.choose(at_start(1, 1e-9)) == std::optional<std::size_t>(1));
}

TEST_CASE("reference rule, live: a sample's level follows its prediction", "[dvfs][selector]") {
    // Exits at head 1 (of 4) when it is checked; the policy predicts it from the start.
    struct to_head_one {
        decision decide(const exit_context<float>& c) const noexcept {
            return c.head == 1 ? decision::stop : decision::proceed;
        }
        std::size_t first_check(const sample_info&) const noexcept { return 1; }
    };
    fixture fx;
    counters count;
    const logit_table table{{{0.f, 1.f}, {0.f, 1.f}, {0.f, 1.f}, {0.f, 1.f}}};
    const auto net = scripted_network(4, {0, 1, 2, 3}, table, count, {1e6, 1e6, 1e6, 1e6}, 1e5);
    const dvfs::platform_model m(four_levels(), 1e9);
    auto runner = make_runner(net, policy::with_dvfs(to_head_one{}, m, {.rule = dvfs::rule::reference}),
                              dvfs::model_clock(m));
    scripted_state st{0, 0};
    const auto r = runner.run(st, {0, std::nullopt, 4.1e-3});
    // J 2 of r 4 stages: 1 GHz (level 1); stages 0-1 and head 1 = 2.1e6 MACs at half speed: 4.2 ms,
    // about the 4.1 ms the plain network takes at f_max (the head's 0.1 ms, stretched, misses it:
    // the rule counts stages, not costs, and ignores the deadline).
    CHECK(r.frequency_level == std::optional<std::size_t>(1));
    CHECK(r.seconds == Approx(4.2e-3));
    CHECK(r.head == 1);
}

TEST_CASE("selector options name the bad value", "[dvfs][selector][errors]") {
    const dvfs::platform_model m(four_levels(), 1e9);
    CHECK_THROWS_WITH(dvfs::selector(m, {.reserve = 1.5}), Catch::Contains("reserve 1.5 is out of range [0, 1]"));
    CHECK_THROWS_WITH(dvfs::selector(m, {.reference_j = 0.0}), Catch::Contains("reference scale (reference_j) 0 must be"));
    CHECK_THROWS_WITH(dvfs::selector(m, {.reference_j = std::numeric_limits<double>::quiet_NaN()}),
                      Catch::Contains("reference scale (reference_j) nan must be"));
    CHECK_THROWS_WITH(dvfs::selector(m, {.reserve = -0.5}), Catch::Contains("reserve -0.5 is out of range"));
}

TEST_CASE("with a full reserve no sample misses a deadline the highest level meets, and energy falls",
          "[dvfs][selector][property]") {
    for (unsigned seed = 1; seed <= 10; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t stages = 2 + rng() % 7;
        const std::vector<std::size_t> positions = random_head_positions(rng, stages);
        std::vector<double> stage_macs(stages);
        for (auto& x : stage_macs) x = static_cast<double>(1e5 + static_cast<double>(rng() % 1000000));
        counters count;
        const std::size_t samples = 100;
        const auto table = random_table(samples, positions.size(), 5, seed * 31);
        const auto net = scripted_network(stages, positions, table, count, stage_macs, 2e4);
        const auto domain = four_levels(1e-5);
        const dvfs::platform_model m(domain, 1e9, 2e-6);
        // The worst case at the highest level: every stage and every head.
        double worst = 0;
        for (const double x : stage_macs) worst += m.seconds(x, 1, 3);
        worst += static_cast<double>(positions.size()) * m.seconds(2e4, 1, 3);
        const double deadline = worst * (1.0 + 0.3 * static_cast<double>(rng() % 4));
        INFO("seed " << seed << ", deadline " << deadline << " s, worst case at f_max " << worst << " s");
        auto fast = make_runner(net, policy::max_prob{0.8}, dvfs::model_clock(m));
        auto slow = make_runner(net, policy::with_dvfs(policy::max_prob{0.8}, m), dvfs::model_clock(m));
        double e_fast = 0, e_slow = 0;
        for (std::size_t i = 0; i < samples; ++i) {
            scripted_state a{i, 0}, b{i, 0};
            const auto rf = fast.run(a, {i, std::nullopt, deadline});
            const auto rs = slow.run(b, {i, std::nullopt, deadline});
            CHECK(rs.head == rf.head);  // the same exits: DVFS changes time, not decisions
            CHECK(rs.seconds <= deadline * (1 + 1e-12));
            e_fast += *rf.energy_joules;
            e_slow += *rs.energy_joules;
        }
        if (deadline > worst * 1.2) CHECK(e_slow < e_fast);
    }
}

TEST_CASE("with_dvfs's defaults never cost more energy than f_max on the shipped tables", "[dvfs][selector][property]") {
    // The default objective is least energy with the deadline guaranteed (reserve 1): per
    // forecast it never picks a level dearer than the one in force. (The paper's lowest level
    // can cost more where static power dominates a table's low levels; see the leaky table above.)
    // Budgets from the worst case at f_max to 11x it.
    for (const char* file : {"exynos5422_a15.json", "amd_phenom_ii_x4_940.json"}) {
        const auto domain = dvfs::read_frequency_domain(std::filesystem::path(EARLYEXIT_TEST_SOURCE_DIR) / ".." / "data" / "dvfs" / file);
        for (unsigned seed = 1; seed <= 6; ++seed) {
            std::mt19937 rng(seed);
            const std::size_t stages = 2 + rng() % 7;
            const std::vector<std::size_t> positions = random_head_positions(rng, stages);
            std::vector<double> stage_macs(stages);
            for (auto& x : stage_macs) x = static_cast<double>(1e6 + static_cast<double>(rng() % 10000000));
            counters count;
            const std::size_t samples = 100;
            const auto table = random_table(samples, positions.size(), 5, seed * 17);
            const auto net = scripted_network(stages, positions, table, count, stage_macs, 2e4);
            const dvfs::platform_model m(domain, 4e9);
            double worst = 0;
            for (const double x : stage_macs) worst += m.seconds(x, 1, m.max_level());
            worst += static_cast<double>(positions.size()) * m.seconds(2e4, 1, m.max_level());
            const double deadline = worst * (1.0 + 2.0 * static_cast<double>(seed % 6));
            INFO(file << ", seed " << seed << ", deadline " << deadline << " s (" << deadline / worst << "x the worst case)");
            auto fast = make_runner(net, policy::max_prob{0.8}, dvfs::model_clock(m));
            auto dvfs_default = make_runner(net, policy::with_dvfs(policy::max_prob{0.8}, m), dvfs::model_clock(m));
            double e_fast = 0, e_default = 0;
            for (std::size_t i = 0; i < samples; ++i) {
                scripted_state a{i, 0}, b{i, 0};
                const auto rf = fast.run(a, {i, std::nullopt, deadline});
                e_fast += *rf.energy_joules;
                const auto r = dvfs_default.run(b, {i, std::nullopt, deadline});
                if (!rf.deadline_missed) CHECK_FALSE(r.deadline_missed);  // a deadline f_max meets is met
                e_default += *r.energy_joules;
            }
            CHECK(e_default <= e_fast * (1 + 1e-9));
        }
    }
}
