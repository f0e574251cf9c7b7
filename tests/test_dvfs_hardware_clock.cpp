// dvfs::hardware_clock on a fake sysfs tree (cpufreq and a RAPL zone the test writes): levels
// are applied through the backend in kHz, the runner restores the default level after every
// sample (or keeps it, between_samples::keep_level), sleeps through a deadline's slack, and the
// sample's energy is the meter's difference. The clock is move-only (one per frequency domain):
// a runner takes it by std::move, and a runner that would copy it does not compile.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/hardware_clock.hpp>
#include <earlyexit/runner.hpp>

#include "support.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
namespace fs = std::filesystem;

namespace {

/// A tree with cpu0 (1, 1.5, 2 GHz, schedutil at 2 GHz) and a RAPL zone at 1000 uJ.
struct fake_machine {
    temp_dir dir{"earlyexit_hwclock"};
    fs::path cpu = dir.path / "cpu";
    fs::path freq = cpu / "cpu0" / "cpufreq";
    fs::path zone = dir.path / "intel-rapl:0";
    fake_machine() {
        put(freq / "scaling_governor", "schedutil");
        put(freq / "scaling_available_governors", "userspace schedutil performance");
        put(freq / "scaling_available_frequencies", "2000000 1500000 1000000");
        put(freq / "scaling_cur_freq", "2000000");
        put(freq / "scaling_setspeed", "<unsupported>");
        put(freq / "scaling_min_freq", "1000000");
        put(freq / "scaling_max_freq", "2000000");
        put(zone / "name", "package-0");
        put(zone / "energy_uj", "1000");
        put(zone / "max_energy_range_uj", "262143328850");
    }
};

dvfs::frequency_domain table() { return {"fake", {{1.0e9, 0.9}, {1.5e9, 1.0}, {2.0e9, 1.1}}}; }

/// Asks for level 0 at the start; its stage "consumes" 500 uJ by writing the fake counter.
struct slow_policy {
    decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept {
        return f.at == nullptr ? std::optional<std::size_t>(0) : std::nullopt;
    }
};

}  // namespace

TEST_CASE("hardware_clock applies levels through cpufreq and restores the default after each sample",
          "[dvfs][hardware_clock]") {
    fake_machine m;
    {
        dvfs::cpufreq_backend backend(m.cpu);
        dvfs::rapl_meter meter(m.zone);
        CHECK(get(m.freq / "scaling_governor") == "userspace");
        dvfs::hardware_clock clock(backend, meter, table());
        CHECK(get(m.freq / "scaling_setspeed") == "2000000");  // the default level, applied
        CHECK(clock.level() == 2);

        counters count;
        const logit_table logits{{{0.f, 1.f}, {1.f, 0.f}}};
        const auto net = scripted_network(2, {0, 1}, logits, count);
        basic_runner runner(net, slow_policy{}, std::move(clock));
        scripted_state s{0, 0};
        put(m.zone / "energy_uj", "1000");
        const auto r = runner.run(s);
        CHECK(r.frequency_level == std::optional<std::size_t>(0));
        CHECK(backend.failures() == 0);
        // Level 0 was written (1 GHz = 1000000 kHz), then the default again after the exit.
        CHECK(get(m.freq / "scaling_setspeed") == "2000000");
        CHECK(runner.clock().level() == 2);
        CHECK(runner.clock().switches() == 2);
        REQUIRE(r.energy_joules.has_value());
        CHECK(*r.energy_joules == Approx(0.0));  // the fake counter did not move

        // A level asked for directly is written in kHz; asking again for it writes nothing new.
        runner.clock().set_level(1);
        CHECK(get(m.freq / "scaling_setspeed") == "1500000");
        CHECK(runner.clock().level() == 1);
        runner.clock().set_level(7);  // past the highest: the highest
        CHECK(get(m.freq / "scaling_setspeed") == "2000000");

        // The counter moves by 2500 uJ during the next sample: a stage writes it.
        put(m.zone / "energy_uj", "1000");
        (void)runner.clock().energy_joules();
        put(m.zone / "energy_uj", "3500");
        CHECK(runner.clock().energy_joules() == Approx(2.5e-3));
    }
    // The backend restored the governor when destroyed.
    CHECK(get(m.freq / "scaling_governor") == "schedutil");
}

TEST_CASE("hardware_clock names a default level past the table", "[dvfs][hardware_clock][errors]") {
    fake_machine m;
    dvfs::cpufreq_backend backend(m.cpu);
    dvfs::rapl_meter meter(m.zone);
    CHECK_THROWS_WITH(dvfs::hardware_clock(backend, meter, table(), 3),
                      Catch::Contains("default level 3 is past the highest level 2 of 'fake'"));
}

TEST_CASE("hardware_clock keeps its level across samples when asked, and sleeps through a deadline's slack",
          "[dvfs][hardware_clock]") {
    fake_machine m;
    dvfs::cpufreq_backend backend(m.cpu);
    dvfs::rapl_meter meter(m.zone);
    dvfs::hardware_clock clock(backend, meter, table(), std::nullopt, between_samples::keep_level);
    CHECK(clock.levels_between_samples() == between_samples::keep_level);
    counters count;
    const logit_table logits{{{0.f, 1.f}, {1.f, 0.f}}};
    const auto net = scripted_network(2, {0, 1}, logits, count);
    basic_runner runner(net, slow_policy{}, std::move(clock));
    scripted_state s{0, 0};
    // A 20 ms deadline: the runner idles the clock until it (the meter measures the whole period).
    const double t0 = runner.clock().now();
    const auto r = runner.run(s, {0, std::nullopt, 20e-3});
    const double spent = runner.clock().now() - t0;
    CHECK(r.seconds < 20e-3);
    CHECK(spent >= 20e-3);
    CHECK(runner.clock().idle_seconds() == Approx(20e-3 - r.seconds).margin(1e-3));
    // Level 0 kept: written once, not restored; the next sample asks for it again: no write.
    CHECK(get(m.freq / "scaling_setspeed") == "1000000");
    CHECK(runner.clock().level() == 0);
    (void)runner.run(s);
    CHECK(runner.clock().switches() == 1);
    // idle() ignores what is not a positive finite time.
    runner.clock().idle(-1.0);
    runner.clock().idle(std::numeric_limits<double>::infinity());
    CHECK(runner.clock().idle_seconds() == Approx(20e-3 - r.seconds).margin(1e-3));
}

TEST_CASE("hardware_clock is move-only: one clock per frequency domain, so no runner copies it",
          "[dvfs][hardware_clock]") {
    using clock_type = dvfs::hardware_clock<>;
    // Copies would drive the same CPUs and count the same package energy side by side (as the
    // workers of a parallel_runner, which copies its clock for each of them, would).
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<clock_type>);
    STATIC_REQUIRE_FALSE(std::is_copy_assignable_v<clock_type>);
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<clock_type>);
    STATIC_REQUIRE(std::is_nothrow_move_assignable_v<clock_type>);
    // A runner takes it moved in, never copied.
    using net_type = dynamic_network<scripted_state>;
    using runner_type = basic_runner<net_type, slow_policy, clock_type>;
    STATIC_REQUIRE(std::is_constructible_v<runner_type, const net_type&, slow_policy, clock_type&&>);
    STATIC_REQUIRE_FALSE(std::is_constructible_v<runner_type, const net_type&, slow_policy, clock_type&>);
    STATIC_REQUIRE_FALSE(std::is_constructible_v<runner_type, const net_type&, slow_policy, const clock_type&>);

    // A move carries the level in force, the default, the policy between samples and the counts.
    fake_machine m;
    dvfs::cpufreq_backend backend(m.cpu);
    dvfs::rapl_meter meter(m.zone);
    dvfs::hardware_clock c(backend, meter, table(), 0);  // the target of the move assignment below
    CHECK(get(m.freq / "scaling_setspeed") == "1000000");
    dvfs::hardware_clock a(backend, meter, table(), 1, between_samples::keep_level);
    CHECK(get(m.freq / "scaling_setspeed") == "1500000");
    a.set_level(0);
    a.idle(1e-4);
    dvfs::hardware_clock b(std::move(a));
    CHECK(b.level() == 0);
    CHECK(b.default_level() == 1);
    CHECK(b.levels_between_samples() == between_samples::keep_level);
    CHECK(b.switches() == 1);
    CHECK(b.idle_seconds() == Approx(1e-4));
    CHECK(b.domain().name() == "fake");
    b.set_level(2);
    CHECK(get(m.freq / "scaling_setspeed") == "2000000");

    // Move assignment: the target becomes the moved clock, level in force included.
    c = std::move(b);
    CHECK(c.level() == 2);
    CHECK(c.default_level() == 1);
    CHECK(c.switches() == 2);
    c.set_level(c.default_level());
    CHECK(get(m.freq / "scaling_setspeed") == "1500000");
    CHECK(backend.failures() == 0);
}
