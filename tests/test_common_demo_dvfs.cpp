// The DVFS section's bounds (examples/common/demo_dvfs.hpp): the perfect-forecast bound and the
// first-head bound, by hand on a two-level domain, and their order on random samples.
#include <cstddef>
#include <random>
#include <vector>
#include <catch2/catch.hpp>
#include "common/demo_dvfs.hpp"

using namespace earlyexit;

namespace {

// Level 0: 1 GHz at 0.9 V, 0.1 + 1e-9 * 0.81 * 1e9 = 0.91 W; level 1: 2 GHz at 1 V, 2.1 W; idle
// 0.05 W. At 1e9 MACs/s on level 1 (no per-call overhead), 1e6 MACs take 1 ms there, 2 ms on
// level 0, and cost (2.1 - 0.05) * 1e-3 = 2.05 mJ or (0.91 - 0.05) * 2e-3 = 1.72 mJ above idle.
dvfs::platform_model two_level_model() {
    return dvfs::platform_model(
        dvfs::frequency_domain{"two", {{1e9, 0.9}, {2e9, 1.0}}, {.static_w = 0.1, .capacitance_f = 1e-9, .idle_w = 0.05}},
        1e9);
}

// Two stages of 1e6 MACs, head 0 after stage 0, the final head after stage 1, heads free.
const std::vector<std::size_t> positions{0, 1};
const std::vector<double> stage_macs{1e6, 1e6}, head_macs{0.0, 0.0};
network_info two_stage_info() {
    return network_info{.stages = 2, .heads = 2, .classes = 2, .head_positions = positions, .stage_macs = stage_macs,
                        .head_macs = head_macs, .full_macs = 2e6};
}

sample_outcome outcome(double macs, std::size_t positions_run, std::size_t heads_evaluated) {
    sample_outcome o;
    o.macs = macs;
    o.positions_run = positions_run;
    o.heads_evaluated = heads_evaluated;
    return o;
}

}  // namespace

TEST_CASE("DVFS bounds by hand: the perfect forecast and the first head", "[demo][dvfs]") {
    const auto model = two_level_model();
    REQUIRE(model.power_w(0) == Approx(0.91));
    REQUIRE(model.power_w(1) == Approx(2.1));
    const double deadline = 2.5e-3;
    // A exits at head 0 (1e6 MACs); B runs to the final head (2e6 MACs).
    const std::vector<sample_outcome> out{outcome(1e6, 1, 1), outcome(2e6, 2, 2)};

    // Perfect forecast. A: level 0 fits (2 ms), 1.72 mJ < 2.05 mJ. B: level 1 alone 4.1 mJ;
    // level 0 alone takes 4 ms > 2.5 ms, so a quarter of the work at level 0 and the rest at
    // level 1 ends at the deadline: 0.25 * 3.44 + 0.75 * 4.1 = 3.935 mJ. Idle over the period
    // adds 0.05 * 2.5 ms = 0.125 mJ to each.
    CHECK(demo::detail::cheapest_within(model, 1e6, 2, deadline).value() == Approx(1.72e-3));
    CHECK(demo::detail::cheapest_within(model, 2e6, 4, deadline).value() == Approx(3.935e-3));
    CHECK_FALSE(demo::detail::cheapest_within(model, 3e6, 6, deadline).has_value());  // 3 ms at f_max
    CHECK(demo::perfect_forecast_joules(model, out, deadline) == Approx((1.845e-3 + 4.06e-3) / 2));

    // First head (head 0): both samples share the schedule of stage 0 and head 0, which must
    // leave 1 ms for the plain network's rest at f_max: it ends at tp in [1, 1.5] ms. With a
    // share x = (tp - 1 ms) / 1 ms of it at level 0 it costs 2.05 - 0.33 x mJ; B's rest then
    // has 2.5 ms - tp and puts a share 0.5 - x at level 0: 2.05 - 0.33 (0.5 - x) mJ. The mean,
    // 3.1175 - 0.165 x mJ with idle, is least at x = 0.5: 3.035 mJ.
    CHECK(demo::first_head_forecast_joules(model, two_stage_info(), 0, out, deadline) == Approx(3.035e-3));
    // Starting at the final head nothing is known before the end: every sample runs the plain
    // network's schedule, the whole of it known (both samples' work is the prefix).
    const std::vector<sample_outcome> both_final{outcome(2e6, 2, 1), outcome(2e6, 2, 1)};
    CHECK(demo::first_head_forecast_joules(model, two_stage_info(), 1, both_final, deadline) ==
          Approx(demo::perfect_forecast_joules(model, both_final, deadline)));
}

TEST_CASE("DVFS bounds: perfect forecast <= first head <= everything at f_max, on random samples", "[demo][dvfs]") {
    const auto model = two_level_model();
    const auto info = two_stage_info();
    std::mt19937_64 rng(7);
    std::bernoulli_distribution exits_early(0.6);
    for (const double deadline : {2.0e-3, 2.2e-3, 3e-3, 5e-3}) {
        std::vector<sample_outcome> out;
        for (int i = 0; i < 200; ++i) out.push_back(exits_early(rng) ? outcome(1e6, 1, 1) : outcome(2e6, 2, 2));
        double at_fmax = 0;
        for (const auto& o : out)
            at_fmax += model.seconds(o.macs, 0, 1) * (model.power_w(1) - model.idle_w()) + model.idle_w() * deadline;
        at_fmax /= static_cast<double>(out.size());
        const double perfect = demo::perfect_forecast_joules(model, out, deadline);
        const double first = demo::first_head_forecast_joules(model, info, 0, out, deadline);
        INFO("deadline " << deadline);
        CHECK(perfect <= first + 1e-15);
        CHECK(first <= at_fmax + 1e-15);
    }
}
