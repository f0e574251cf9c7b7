// dvfs::platform_model and dvfs::model_clock: hand-computed times and energies, switches, the
// runner restoring the default level after each sample and reporting the sample's energy.
#include <cstddef>
#include <limits>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/clock.hpp>

#include "error_text.hpp"
#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

namespace {

// Two levels: 1 GHz at 0.9 V and 2 GHz at 1.0 V; P = 1 W + 1 nF * V^2 * f:
//   level 0: 1 + 1e-9 * 0.81 * 1e9 = 1.81 W        level 1: 1 + 1e-9 * 1.0 * 2e9 = 3 W
// idle: the static 1 W unless given.
dvfs::frequency_domain two_levels(double memory_share = 0.0, std::optional<double> idle_w = std::nullopt) {
    return {"two", {{1e9, 0.9}, {2e9, 1.0}},
            {.static_w = 1.0, .capacitance_f = 1e-9, .switch_latency_s = 1e-5, .switch_energy_j = 1e-4,
             .memory_share = memory_share, .idle_w = idle_w}};
}

/// Asks for a level at the sample's start and keeps it.
struct low_level {
    std::size_t want = 0;
    decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept {
        if (f.at == nullptr) return want;
        return std::nullopt;
    }
};

}  // namespace

TEST_CASE("platform_model: time scales with f_max / f, the memory share does not scale", "[dvfs][clock]") {
    const dvfs::platform_model cpu(two_levels(), 1e9);
    CHECK(cpu.seconds(1e6, 1, 1) == Approx(1e-3));
    CHECK(cpu.seconds(1e6, 1, 0) == Approx(2e-3));
    CHECK(cpu.seconds(1e6, 1, 7) == Approx(1e-3));  // past the highest level: the highest
    CHECK(cpu.power_w(0) == Approx(1.81));
    CHECK(cpu.power_w(1) == Approx(3.0));
    // m = 0.25: level 0 takes 0.75 * 2 + 0.25 = 1.75 times as long as level 1.
    const dvfs::platform_model mixed(two_levels(0.25), 1e9, 1e-6);
    CHECK(mixed.slowdown(0) == Approx(1.75));
    CHECK(mixed.slowdown(1) == Approx(1.0));
    CHECK(mixed.seconds(1e6, 3, 0) == Approx(1.75e-3 + 3e-6));
}

TEST_CASE("platform_model: bad parameters name the value", "[dvfs][clock][errors]") {
    CHECK_THROWS_WITH(dvfs::platform_model(two_levels(), 0.0), Catch::Contains("rate 0 MACs/s"));
    CHECK_THROWS_WITH(dvfs::platform_model(two_levels(), 1e9, -1.0), Catch::Contains("overhead -1 s"));
    CHECK_THROWS_WITH(dvfs::platform_model(dvfs::frequency_domain{}, 1e9), Catch::Contains("has no levels"));
    CHECK_THROWS_WITH(dvfs::model_clock(dvfs::platform_model(two_levels(), 1e9), 2),
                      Catch::Contains("default level 2 is past the highest level 1"));
}

TEST_CASE("model_clock: work at the level in force, switches cost latency and energy", "[dvfs][clock]") {
    dvfs::model_clock c(dvfs::platform_model(two_levels(), 1e9));
    CHECK(c.level() == 1);  // the highest by default
    CHECK(c.default_level() == 1);
    c.on_work(1e6);
    CHECK(c.now() == Approx(1e-3));
    CHECK(c.energy_joules() == Approx(3e-3));
    c.set_level(0);
    CHECK(c.switches() == 1);
    CHECK(c.now() == Approx(1e-3 + 1e-5));
    CHECK(c.energy_joules() == Approx(3e-3 + 1e-4));
    c.on_work(1e6);  // 2 ms at 1.81 W
    CHECK(c.now() == Approx(3e-3 + 1e-5));
    CHECK(c.energy_joules() == Approx(3e-3 + 1e-4 + 2e-3 * 1.81));
    c.set_level(0);  // already there: free
    CHECK(c.switches() == 1);
    c.set_level(9);  // past the highest: the highest, counted
    CHECK(c.level() == 1);
    CHECK(c.clamped_requests() == 1);
    CHECK(c.switches() == 2);
    const double e = c.energy_joules();
    const double t = c.now();
    c.advance(1.0);  // idle: time moves at the idle power (no idle_w given: the static 1 W)
    CHECK(c.now() == Approx(t + 1.0));
    CHECK(c.energy_joules() == Approx(e + 1.0));
    CHECK(c.idle_seconds() == Approx(1.0));
    c.idle(-1.0);  // ignored, as are NaN and infinity
    c.idle(std::numeric_limits<double>::quiet_NaN());
    c.idle(std::numeric_limits<double>::infinity());
    CHECK(c.now() == Approx(t + 1.0));
    CHECK(c.energy_joules() == Approx(e + 1.0));
}

TEST_CASE("the runner runs at the level asked for, restores the default and reports the energy", "[dvfs][clock][runner]") {
    counters count;
    const logit_table table{{{0.f, 1.f}, {0.f, 2.f}}};
    // Two stages of 1e6 MACs, heads of 1e5 MACs at both.
    const auto net = scripted_network(2, {0, 1}, table, count, {1e6, 1e6}, 1e5);
    basic_runner runner(net, low_level{0}, dvfs::model_clock(dvfs::platform_model(two_levels(), 1e9)));
    scripted_state s{0, 0};
    const auto r = runner.run(s);
    // Switch down (10 us, 0.1 mJ), then 2.2e6 MACs at 1 GHz: 4.4 ms at 1.81 W; then back up after the
    // exit: its energy is the sample's, its latency is not in the sample's time.
    CHECK(r.seconds == Approx(1e-5 + 4.4e-3));
    REQUIRE(r.energy_joules.has_value());
    CHECK(*r.energy_joules == Approx(2e-4 + 4.4e-3 * 1.81));
    CHECK(r.frequency_level == std::optional<std::size_t>(0));
    CHECK(runner.clock().level() == 1);
    CHECK(runner.clock().switches() == 2);
    CHECK(runner.clock().now() == Approx(2e-5 + 4.4e-3));

    // At the default level already: no switch, no restore, energy = time * 3 W.
    basic_runner fast(net, low_level{1}, dvfs::model_clock(dvfs::platform_model(two_levels(), 1e9)));
    scripted_state s2{0, 0};
    const auto q = fast.run(s2);
    CHECK(q.seconds == Approx(2.2e-3));
    CHECK(*q.energy_joules == Approx(2.2e-3 * 3.0));
    CHECK(fast.clock().switches() == 0);
}

TEST_CASE("episode steps and contexts carry the level in force and the time left", "[dvfs][clock][runner]") {
    struct watcher {
        std::vector<std::size_t> levels;
        std::vector<double> left;
        std::vector<std::size_t> step_levels;
        decision decide(const exit_context<float>& c) noexcept {
            levels.push_back(c.level);
            left.push_back(c.time_left().value_or(-1.0));
            return decision::proceed;
        }
        std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept {
            return f.at == nullptr ? std::optional<std::size_t>(0) : std::optional<std::size_t>(1);
        }
        void update(const episode<float>& e) noexcept {
            for (const auto& st : e.steps) step_levels.push_back(st.level);
        }
    };
    counters count;
    const logit_table table{{{0.f, 1.f}, {0.f, 2.f}, {1.f, 0.f}}};
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1e6, 1e6, 1e6}, 0.0);
    basic_runner runner(net, watcher{}, dvfs::model_clock(dvfs::platform_model(two_levels(), 1e9)));
    scripted_state s{0, 0};
    (void)runner.run(s, {0, std::nullopt, 0.01});
    // Head 0 ran at level 0 (switch 10 us + 2 ms), heads 1 and 2 at level 1.
    CHECK(runner.policy().levels == std::vector<std::size_t>{0, 1});
    CHECK(runner.policy().step_levels == std::vector<std::size_t>{0, 1, 1});
    REQUIRE(runner.policy().left.size() == 2);
    CHECK(runner.policy().left[0] == Approx(0.01 - 1e-5 - 2e-3));
    CHECK(runner.policy().left[1] == Approx(0.01 - 2e-5 - 3e-3));
}

TEST_CASE("energy over a period: active power while working, idle power in the slack, by hand", "[dvfs][clock][runner]") {
    counters count;
    const logit_table table{{{0.f, 1.f}, {0.f, 2.f}}};
    // Two stages of 1e6 MACs, heads of 1e5 MACs at both: 2.2e6 MACs per sample.
    const auto net = scripted_network(2, {0, 1}, table, count, {1e6, 1e6}, 1e5);
    const dvfs::platform_model model(two_levels(0.0, 0.5), 1e9);  // idle 0.5 W
    const sample_info ten_ms{0, std::nullopt, 10e-3};

    // Slowed to level 0, the default restored after the sample: switch down (10 us, 0.1 mJ),
    // 4.4 ms at 1.81 W, switch up (10 us, 0.1 mJ), then idle until 10 ms: 10 - 4.42 = 5.58 ms at
    // 0.5 W. The sample's seconds are the busy time (4.41 ms: the restore is after the exit).
    basic_runner slow(net, low_level{0}, dvfs::model_clock(model));
    scripted_state s{0, 0};
    const auto r = slow.run(s, ten_ms);
    CHECK(r.seconds == Approx(1e-5 + 4.4e-3));
    REQUIRE(r.energy_joules.has_value());
    CHECK(*r.energy_joules == Approx(2e-4 + 4.4e-3 * 1.81 + 5.58e-3 * 0.5));
    CHECK(slow.clock().now() == Approx(10e-3));  // the period is over
    CHECK(slow.clock().idle_seconds() == Approx(5.58e-3));

    // Racing to idle at level 1: 2.2 ms at 3 W, then 7.8 ms at 0.5 W.
    basic_runner fast(net, low_level{1}, dvfs::model_clock(model));
    scripted_state s2{0, 0};
    const auto q = fast.run(s2, ten_ms);
    CHECK(q.seconds == Approx(2.2e-3));
    CHECK(*q.energy_joules == Approx(2.2e-3 * 3.0 + 7.8e-3 * 0.5));
    CHECK(fast.clock().now() == Approx(10e-3));

    // No deadline, or one missed: no idle (the period is the busy time).
    basic_runner none(net, low_level{1}, dvfs::model_clock(model));
    scripted_state s3{0, 0};
    CHECK(*none.run(s3).energy_joules == Approx(2.2e-3 * 3.0));
    CHECK(*none.run(s3, {0, std::nullopt, 1e-3}).energy_joules == Approx(2.2e-3 * 3.0));
    // An infinite deadline is refused (no deadline is std::nullopt): test_runner checks the message.
    CHECK_THROWS(none.run(s3, {0, std::nullopt, std::numeric_limits<double>::infinity()}));
    CHECK(none.clock().idle_seconds() == 0.0);
}

TEST_CASE("keep_level: the level stays across samples, no switch when the policy asks for the level in force",
          "[dvfs][clock][runner]") {
    counters count;
    const logit_table table{{{0.f, 1.f}, {0.f, 2.f}}};
    const auto net = scripted_network(2, {0, 1}, table, count, {1e6, 1e6}, 1e5);
    const dvfs::platform_model model(two_levels(0.0, 0.5), 1e9);
    const sample_info ten_ms{0, std::nullopt, 10e-3};

    // Restoring (the default): two switches per slowed sample.
    basic_runner restoring(net, low_level{0}, dvfs::model_clock(model));
    CHECK(restoring.clock().levels_between_samples() == between_samples::restore_default);
    // Keeping: one switch, at the first sample; then the level in force is the one asked for.
    basic_runner keeping(net, low_level{0}, dvfs::model_clock(model, std::nullopt, between_samples::keep_level));
    for (int i = 0; i < 3; ++i) {
        scripted_state a{0, 0}, b{0, 0};
        (void)restoring.run(a, ten_ms);
        const auto r = keeping.run(b, ten_ms);
        CHECK(keeping.clock().level() == 0);  // kept
        if (i == 0) {
            // switch down (0.1 mJ), 4.4 ms at 1.81 W, idle 10 - 4.41 = 5.59 ms at 0.5 W
            CHECK(*r.energy_joules == Approx(1e-4 + 4.4e-3 * 1.81 + 5.59e-3 * 0.5));
        } else {
            // no switch at all: 4.4 ms at 1.81 W, 5.6 ms idle
            CHECK(*r.energy_joules == Approx(4.4e-3 * 1.81 + 5.6e-3 * 0.5));
            CHECK(r.seconds == Approx(4.4e-3));
        }
    }
    CHECK(restoring.clock().switches() == 6);
    CHECK(keeping.clock().switches() == 1);
    CHECK(restoring.clock().level() == 1);

    // The next sample's frequency() sees the level kept (not the default).
    struct watch_start {
        std::vector<std::size_t> seen;
        decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
        std::optional<std::size_t> frequency(const frequency_context<float>& f) noexcept {
            if (f.at == nullptr) seen.push_back(f.level);
            return f.at == nullptr ? std::optional<std::size_t>(0) : std::nullopt;
        }
    };
    basic_runner watched(net, watch_start{}, dvfs::model_clock(model, std::nullopt, between_samples::keep_level));
    scripted_state w{0, 0};
    (void)watched.run(w, ten_ms);
    (void)watched.run(w, ten_ms);
    CHECK(watched.policy().seen == std::vector<std::size_t>{1, 0});
}
