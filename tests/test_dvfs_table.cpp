// dvfs/table.hpp: the power formula by hand, measured power taking precedence, lookups
// (lowest_at_least, find), and every malformed table refused with a message naming the entry.
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/table.hpp>

#include "error_text.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double infinity = std::numeric_limits<double>::infinity();

// 1 GHz at 0.9 V, 1.5 GHz at 1.0 V (measured 2.2 W), 2 GHz at 1.1 V; P = 1 W + 1 nF * V^2 * f.
dvfs::frequency_domain three_levels() {
    return {"three",
            {{1e9, 0.9}, {1.5e9, 1.0, 2.2}, {2e9, 1.1}},
            {.static_w = 1.0, .capacitance_f = 1e-9, .switch_latency_s = 1e-5, .switch_energy_j = 2e-4,
             .memory_share = 0.25},
            "by hand"};
}

dvfs::frequency_domain with_levels(std::vector<dvfs::level> levels, std::string what = "frequency table") {
    return {"t", std::move(levels), {}, {}, std::move(what)};
}

dvfs::frequency_domain with_model(dvfs::power_model m) { return {"t", {{1e9, 1.0}}, m}; }

}  // namespace

TEST_CASE("frequency_domain: P = P_static + C_eff V^2 f by hand, measured power first", "[dvfs][table]") {
    const auto d = three_levels();
    REQUIRE(d.size() == 3);
    CHECK(d.valid());
    CHECK_FALSE(d.empty());
    CHECK(d.max_level() == 2);
    CHECK(d.name() == "three");
    CHECK(d.source() == "by hand");
    CHECK(d.model().memory_share == 0.25);
    CHECK(d.levels().size() == 3);
    CHECK(d[1].frequency_hz == 1.5e9);
    // level 0: 1 + 1e-9 * 0.81 * 1e9 = 1.81 W; level 2: 1 + 1e-9 * 1.21 * 2e9 = 3.42 W.
    CHECK(d.power_w(0) == Approx(1.81));
    CHECK(d.power_w(1) == 2.2);  // measured, not the model's 1 + 1.5 = 2.5
    CHECK(d.power_w(2) == Approx(3.42));
    CHECK(d.joules_per_cycle(0) == Approx(1.81e-9));
    CHECK(d.joules_per_cycle(2) == Approx(1.71e-9));
}

TEST_CASE("frequency_domain: the model's power grows with the level when voltages do not fall", "[dvfs][table]") {
    const dvfs::frequency_domain d("ladder", {{4e8, 0.8}, {8e8, 0.8}, {1.2e9, 0.9}, {1.6e9, 1.0}, {2e9, 1.2}},
                                   {.static_w = 0.5, .capacitance_f = 2e-9});
    for (std::size_t i = 1; i < d.size(); ++i) CHECK(d.power_w(i) > d.power_w(i - 1));
    // Without static power the dynamic energy per cycle, C V^2, is what the voltage says.
    const dvfs::frequency_domain dyn("dyn", {d.levels().begin(), d.levels().end()}, {.capacitance_f = 2e-9});
    for (std::size_t i = 0; i < dyn.size(); ++i)
        CHECK(dyn.joules_per_cycle(i) == Approx(2e-9 * dyn[i].voltage_v * dyn[i].voltage_v));
    // With static power the lowest level is no longer the cheapest per cycle.
    CHECK(d.joules_per_cycle(0) > d.joules_per_cycle(1));
}

TEST_CASE("frequency_domain: lowest_at_least and find", "[dvfs][table]") {
    const auto d = three_levels();
    CHECK(d.lowest_at_least(0) == 0);
    CHECK(d.lowest_at_least(1e9) == 0);
    CHECK(d.lowest_at_least(1.0000001e9) == 1);
    CHECK(d.lowest_at_least(1.5e9) == 1);
    CHECK(d.lowest_at_least(1.7e9) == 2);
    CHECK(d.lowest_at_least(2e9) == 2);
    CHECK(d.lowest_at_least(5e9) == 2);  // none is: the highest
    CHECK(d.lowest_at_least(not_a_number) == 2);

    CHECK(d.find(1.5e9) == std::optional<std::size_t>(1));
    CHECK(d.find(1.507e9) == std::optional<std::size_t>(1));  // 0.47% off
    CHECK(d.find(1.493e9) == std::optional<std::size_t>(1));
    CHECK_FALSE(d.find(1.49e9).has_value());
    CHECK_FALSE(d.find(1.51e9).has_value());  // 0.67% off
    CHECK_FALSE(d.find(1.2e9).has_value());
    CHECK_FALSE(d.find(not_a_number).has_value());
    // Two levels within 0.5%: the nearest.
    const dvfs::frequency_domain close("close", {{1e9, 1.0}, {1.004e9, 1.0}});
    CHECK(close.find(1.001e9) == std::optional<std::size_t>(0));
    CHECK(close.find(1.003e9) == std::optional<std::size_t>(1));
}

TEST_CASE("frequency_domain: default-constructed is empty, equality compares everything", "[dvfs][table]") {
    const dvfs::frequency_domain e;
    CHECK(e.empty());
    CHECK_FALSE(e.valid());
    CHECK(e.size() == 0);
    CHECK(e.max_level() == 0);
    CHECK_FALSE(e.find(1e9).has_value());
    CHECK(three_levels() == three_levels());
    CHECK_FALSE(three_levels() == e);
    auto other = three_levels();
    CHECK_FALSE(other == dvfs::frequency_domain("three", {{1e9, 0.9}, {1.5e9, 1.0}, {2e9, 1.1}}, other.model(),
                                                "by hand"));  // no measured power at level 1
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<dvfs::frequency_domain>);
}

TEST_CASE("frequency_domain: bad levels are refused naming the entry", "[dvfs][table][errors]") {
    CHECK(what_of([] { (void)dvfs::frequency_domain("odroid", {}, {}, {}, "frequency table odroid.json"); }) ==
          "frequency table odroid.json: 'odroid' has no levels (a frequency domain needs at least one)");
    CHECK(what_of([] {
              (void)with_levels({{1e9, 1.0}, {1.4e9, 1.1}, {1.5e9, 1.1}, {1.2e9, 1.0}}, "frequency table odroid.json");
          }) ==
          "frequency table odroid.json: level 3 frequency 1.2e9 Hz is not above level 2's 1.5e9 Hz (the levels must be "
          "sorted by frequency, strictly increasing)");
    CHECK(what_of([] { (void)with_levels({{1e9, 1.0}, {1.4e9, 1.1}, {1.4e9, 1.2}}, "frequency table odroid.json"); }) ==
          "frequency table odroid.json: level 2 duplicates level 1's frequency 1.4e9 Hz");
    CHECK(what_of([] { (void)with_levels({{1e9, 1.0}, {0, 1.0}}); }) ==
          "frequency table: level 1 frequency 0 Hz is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{-1e9, 1.0}}); }) ==
          "frequency table: level 0 frequency -1e9 Hz is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{not_a_number, 1.0}}); }) ==
          "frequency table: level 0 frequency nan Hz is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{infinity, 1.0}}); }) ==
          "frequency table: level 0 frequency inf Hz is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{1e9, 1.0}, {2e9, 0}}); }) ==
          "frequency table: level 1 voltage 0 V is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{1e9, not_a_number}}); }) ==
          "frequency table: level 0 voltage nan V is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{1e9, 1.0, 0.0}}); }) ==
          "frequency table: level 0 power 0 W is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{1e9, 1.0}, {2e9, 1.1, -3.0}}); }) ==
          "frequency table: level 1 power -3 W is not a finite number > 0");
    CHECK(what_of([] { (void)with_levels({{1e9, 1.0, not_a_number}}); }) ==
          "frequency table: level 0 power nan W is not a finite number > 0");
}

TEST_CASE("frequency_domain: bad model parameters are refused naming the parameter", "[dvfs][table][errors]") {
    CHECK(what_of([] { (void)with_model({.static_w = -1}); }) ==
          "frequency table: model static power -1 W is not a finite number >= 0");
    CHECK(what_of([] { (void)with_model({.capacitance_f = not_a_number}); }) ==
          "frequency table: model capacitance nan F is not a finite number >= 0");
    CHECK(what_of([] { (void)with_model({.switch_latency_s = infinity}); }) ==
          "frequency table: model switch latency inf s is not a finite number >= 0");
    CHECK(what_of([] { (void)with_model({.switch_energy_j = -1e-3}); }) ==
          "frequency table: model switch energy -0.001 J is not a finite number >= 0");
    CHECK(what_of([] { (void)with_model({.memory_share = 1.0}); }) ==
          "frequency table: model memory share 1 is not in [0, 1)");
    CHECK(what_of([] { (void)with_model({.memory_share = -0.1}); }) ==
          "frequency table: model memory share -0.1 is not in [0, 1)");
    CHECK(what_of([] { (void)with_model({.memory_share = not_a_number}); }) ==
          "frequency table: model memory share nan is not in [0, 1)");
    // The bounds themselves are fine.
    CHECK_NOTHROW(with_model({.static_w = 0, .capacitance_f = 0, .memory_share = 0.999}));
    // Idle power (level 0 of with_model draws static_w = 1 W): finite, >= 0, at most every level's power.
    CHECK(what_of([] { (void)with_model({.static_w = 1, .idle_w = -0.5}); }) ==
          "frequency table: model idle power -0.5 W is not a finite number >= 0");
    CHECK(what_of([] { (void)with_model({.static_w = 1, .idle_w = not_a_number}); }) ==
          "frequency table: model idle power nan W is not a finite number >= 0");
    CHECK(what_of([] { (void)with_model({.static_w = 1, .idle_w = infinity}); }) ==
          "frequency table: model idle power inf W is not a finite number >= 0");
    CHECK(what_of([] { (void)with_model({.static_w = 1, .idle_w = 1.5}); }) ==
          "frequency table: model idle power 1.5 W exceeds level 0's active power 1 W");
    CHECK_NOTHROW(with_model({.static_w = 1, .idle_w = 1.0}));
    CHECK_NOTHROW(with_model({.static_w = 1, .idle_w = 0.0}));
    CHECK(what_of([] { (void)with_model({.macs_per_cycle = 0.0}); }) ==
          "frequency table: model MACs per cycle 0 is not a finite number > 0");
    CHECK(what_of([] { (void)with_model({.macs_per_cycle = not_a_number}); }) ==
          "frequency table: model MACs per cycle nan is not a finite number > 0");
}

TEST_CASE("frequency_domain: idle power, energy per cycle above idle, what the figures measure", "[dvfs][table]") {
    // three_levels() gives no idle power: idle = static power (1 W).
    CHECK(three_levels().idle_power_w() == 1.0);
    const dvfs::frequency_domain d("idle", {{1e9, 0.9}, {2e9, 1.1}},
                                   {.static_w = 1.0, .capacitance_f = 1e-9, .idle_w = 0.25}, "by hand",
                                   "frequency table", "one core");
    CHECK(d.idle_power_w() == 0.25);
    CHECK(d.measures() == "one core");
    // Above idle: level 0 (1.81 - 0.25) W / 1 GHz = 1.56 nJ; level 1 (3.42 - 0.25) W / 2 GHz = 1.585 nJ.
    CHECK(d.joules_per_cycle_above_idle(0) == Approx(1.56e-9));
    CHECK(d.joules_per_cycle_above_idle(1) == Approx(1.585e-9));
    CHECK(d != dvfs::frequency_domain("idle", {{1e9, 0.9}, {2e9, 1.1}},
                                      {.static_w = 1.0, .capacitance_f = 1e-9, .idle_w = 0.5}, "by hand",
                                      "frequency table", "one core"));
}

TEST_CASE("hz_text: the shortest exact form, in scientific notation from 1 MHz", "[dvfs][table]") {
    using dvfs::detail::hz_text;
    CHECK(hz_text(1.4e9) == "1.4e9");
    CHECK(hz_text(2e9) == "2e9");
    CHECK(hz_text(1234567890.0) == "1.23456789e9");
    CHECK(hz_text(1.0000001e9) == "1.0000001e9");
    CHECK(hz_text(2.5e6) == "2.5e6");
    CHECK(hz_text(800) == "800");
    CHECK(hz_text(-1e9) == "-1e9");
    CHECK(hz_text(1e20) == "1e20");
    CHECK(hz_text(not_a_number) == "nan");
}
