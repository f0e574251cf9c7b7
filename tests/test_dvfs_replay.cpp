// The DVFS rows of the paper's comparison replay bit for bit: on a model clock that keeps its
// level across samples and counts each sample's period (idle power in the slack), a replay on a
// copy of the clock gives the live exits, levels, times and energy, for every row the demos run
// (the plain network, a static threshold and Predictive Exit at f_max, with the deadline rule,
// and with the reference rule), on random networks and budgets.
#include <cstddef>
#include <optional>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/clock.hpp>
#include <earlyexit/dvfs/selector.hpp>
#include <earlyexit/policy/any_policy.hpp>
#include <earlyexit/policy/predictive.hpp>
#include <earlyexit/trace/recorder.hpp>
#include <earlyexit/trace/replay.hpp>
#include <earlyexit/trace/verify.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

TEST_CASE("every DVFS row replays its live levels and energy over the period, the level kept across samples",
          "[dvfs][replay][property]") {
    const dvfs::frequency_domain domain("test", {{0.6e9, 0.80}, {1.0e9, 0.90}, {1.4e9, 1.00}, {2.0e9, 1.15}},
                                        {.static_w = 0.5, .capacitance_f = 1e-9, .switch_latency_s = 2e-6,
                                         .switch_energy_j = 1e-6, .memory_share = 0.2, .idle_w = 0.2});
    for (unsigned seed = 1; seed <= 8; ++seed) {
        std::mt19937 rng(seed);
        const std::size_t stages = 2 + rng() % 7;
        const std::vector<std::size_t> positions = random_head_positions(rng, stages);
        const std::size_t samples = 120;
        std::vector<double> stage_macs(stages);
        for (auto& m : stage_macs) m = static_cast<double>(1000 + rng() % 100000);
        counters count;
        const auto table = random_table(samples, positions.size(), 2 + rng() % 9, seed * 7727);
        const auto net = scripted_network(stages, positions, table, count, stage_macs, 500.0);
        const auto fill = [&](std::size_t i, scripted_state& st) {
            st = {i, 0};
            return std::optional<std::size_t>(top1(table[i].back()));
        };
        scripted_state s;
        const auto t = record_trace(net, s, samples, fill, simulated_clock{1e6});
        const dvfs::platform_model model(domain, 1e9, 1e-6);
        const dvfs::model_clock clock(model, std::nullopt, between_samples::keep_level);
        double full_seconds = 0;
        for (const double m : stage_macs) full_seconds += model.seconds(m, 1, model.max_level());
        // Budgets from tight (many misses) to 3x the plain network's time.
        const double deadline = full_seconds * (0.8 + 0.55 * static_cast<double>(seed % 5));
        const any_policy<float> headline = policy::max_prob{0.7};
        const policy::predictive predictive({.beta = 1.0, .rounds = 3}, std::vector<double>(positions.size(), 2.5));
        const std::vector<any_policy<float>> rows{
            policy::full{},
            headline,
            policy::with_dvfs(headline, model, {.reserve = 0.25}),
            predictive,
            policy::with_dvfs(predictive, model, {.objective = dvfs::objective::least_energy, .reserve = 0.0}),
            policy::with_dvfs(predictive, model, {.reserve = 1.0}),
            policy::with_dvfs(predictive, model, {.rule = dvfs::rule::reference}),
        };
        INFO("seed " << seed << ", " << stages << " stages, " << positions.size() << " heads, deadline " << deadline);
        for (const auto& p : rows) {
            INFO("policy " << p.name());
            // Live against a replay on a copy of the clock, sample by sample, levels and energy included.
            const auto check = check_live_against_replay(net, s, t, p, fill, clock, [](std::size_t) {}, deadline);
            CHECK(check.matches);
            CHECK(check.first_mismatch == npos);
            REQUIRE(check.live.size() == samples);
            for (std::size_t i = 0; i < samples; ++i) {
                CHECK(check.live[i] == check.replayed[i]);  // seconds and energy too, exactly
                REQUIRE(check.live[i].energy_joules.has_value());
                // A sample that met its deadline paid for its whole period: at least the idle power's.
                if (check.live[i].seconds <= deadline) CHECK(*check.live[i].energy_joules >= deadline * 0.2 * (1 - 1e-12));
            }
        }
    }
}
