// dvfs::platform_model and dvfs::model_clock: hand-computed times and energies, switches, the
// runner restoring the default level after each sample and reporting the sample's energy.
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
dvfs::frequency_domain two_levels(double memory_share = 0.0) {
    return {"two", {{1e9, 0.9}, {2e9, 1.0}},
            {.static_w = 1.0, .capacitance_f = 1e-9, .switch_latency_s = 1e-5, .switch_energy_j = 1e-4,
             .memory_share = memory_share}};
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
    c.advance(1.0);  // idle: time moves, no energy
    CHECK(c.energy_joules() == e);
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
