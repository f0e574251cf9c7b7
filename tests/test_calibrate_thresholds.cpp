#include <cmath>
#include <iterator>
#include <optional>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/calibrate/thresholds.hpp>

#include "support.hpp"

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {

// Heads grow more accurate with depth, every other sample is easy (support.hpp).
trace synthetic(std::size_t samples, unsigned seed) { return earlyexit_test::synthetic_calibration_trace(samples, seed); }

/// What a family does on one sample, computed from the logits alone (no runner, no replay):
/// the exit head, the heads evaluated and the declared cost.
struct brute_exit {
    std::size_t head = 0;
    double macs = 0;
};

brute_exit brute_force_exit(const trace& t, std::size_t i, threshold_family f, double parameter) {
    const auto& l = t.layout();
    const std::size_t last = t.heads() - 1;
    std::vector<std::size_t> evaluated;
    std::size_t k = 0;
    if (f == threshold_family::fixed) {
        k = static_cast<std::size_t>(parameter);
        evaluated.push_back(k);
    } else {
        std::size_t streak = 0, previous = npos;
        for (;; ++k) {
            evaluated.push_back(k);
            if (k == last) break;
            const auto z = t.logits(i, k);
            const std::size_t top = top1(z);
            streak = top == previous ? streak + 1 : 1;
            previous = top;
            const double v = f == threshold_family::max_prob ? static_cast<double>(max_prob(z))
                             : f == threshold_family::entropy ? static_cast<double>(normalized_entropy(z))
                                                              : static_cast<double>(margin(z));
            const bool stop = f == threshold_family::max_prob  ? v >= parameter
                              : f == threshold_family::entropy ? v <= parameter
                              : f == threshold_family::margin  ? v >= parameter
                                                               : static_cast<double>(streak) >= std::round(parameter);
            if (stop) break;
        }
    }
    brute_exit e{k, 0.0};
    for (std::size_t p = 0; p <= l.head_positions[k]; ++p) e.macs += l.stage_macs[p];
    for (std::size_t h : evaluated) e.macs += l.head_macs[h];
    return e;
}

struct brute_point {
    double parameter = 0, accuracy = 0, mean_macs = 0, bound = 0;
};

/// Accuracy, mean cost and the 95% (or measured, z = 0) loss bound of a family at a parameter,
/// with the bound's formula written out here.
brute_point brute_force_point(const trace& t, threshold_family f, double parameter, double z) {
    std::size_t correct = 0, lost = 0, won = 0;
    double macs = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const auto e = brute_force_exit(t, i, f, parameter);
        const std::size_t y = *t.label(i);
        const bool right = top1(t.logits(i, e.head)) == y, final_right = top1(t.logits(i, t.heads() - 1)) == y;
        correct += right;
        lost += final_right && !right;
        won += right && !final_right;
        macs += e.macs;
    }
    const double n = static_cast<double>(t.size());
    const double d = (static_cast<double>(lost) - static_cast<double>(won)) / n;
    const double var = (static_cast<double>(lost + won) / n - d * d) / n;
    return {parameter, static_cast<double>(correct) / n, macs / n, 100 * (d + z * std::sqrt(std::max(0.0, var)))};
}

/// The calibration rule by exhaustive search over the same candidates: the cheapest point
/// within the bound that costs less than the plain network (ties: the more accurate), or none.
std::optional<brute_point> brute_force_choice(const trace& t, threshold_family f, double max_drop, double z,
                                              std::size_t resolution) {
    double full_cost = t.layout().head_macs.back();
    for (double m : t.layout().stage_macs) full_cost += m;
    std::optional<brute_point> best;
    for (double p : candidate_parameters(t, f, resolution)) {
        const auto b = brute_force_point(t, f, p, z);
        if (b.bound <= max_drop + 1e-12 && b.mean_macs < full_cost &&
            (!best || b.mean_macs < best->mean_macs || (b.mean_macs == best->mean_macs && b.accuracy > best->accuracy)))
            best = b;
    }
    return best;
}

constexpr double z95 = 1.6448536269514722;

}  // namespace

TEST_CASE("calibration by hand: four samples, three heads", "[calibrate]") {
    // Labels are all 0 and the final head is right on every sample. Head 0 and head 1 see:
    //   sample 0: [3, 0] at both (max-prob 0.9526, right)   sample 1: [2, 0] (0.8808, right)
    //   sample 2: [0, 1] then [0, 2] (wrong, 0.7311 / 0.8808)
    //   sample 3: [0, 0.5] then [1, 0] (wrong at 0.6225, then right at 0.7311)
    // Losing nothing needs tau > 0.8808 (sample 2 must not exit); at tau = 0.9526 only sample 0
    // exits, at head 0: cost (1 + 3 + 3 + 3) / 4 = 2.5 of 3, a saving of 1/6.
    trace t(trace_layout{2, {0, 1, 2}, {1.0, 1.0, 1.0}, {0.0, 0.0, 0.0}});
    const std::vector<std::vector<float>> h0{{3, 0}, {2, 0}, {0, 1}, {0, 0.5f}}, h1{{3, 0}, {2, 0}, {0, 2}, {1, 0}};
    for (std::size_t i = 0; i < 4; ++i) {
        std::vector<float> z{h0[i][0], h0[i][1], h1[i][0], h1[i][1], 1.f, 0.f};
        t.add(z, std::vector<double>(3, 0.0), std::vector<double>(3, 0.0), std::size_t{0});
    }
    const auto c = calibrate(t, threshold_family::max_prob, accuracy_target{0.0});
    REQUIRE(c.met);
    CHECK_FALSE(c.falls_back_to_full);
    CHECK(c.parameter == Approx(1.0 / (1.0 + std::exp(-3.0))).epsilon(1e-6));
    CHECK(c.on_calibration.mean_macs == Approx(2.5));
    CHECK(c.on_calibration.compute_saving == Approx(1.0 / 6.0));
    CHECK(*c.on_calibration.accuracy == 1.0);
    CHECK(c.drop_bound_points == 0.0);
    CHECK(c.parameter_text() == "0.9526");
    // Allowing one sample in four (25 points): tau = 0.7311 lets sample 2 exit wrong at head 0,
    // samples 0 and 1 exit there too, sample 3 exits right at head 1: cost (1 + 1 + 1 + 2) / 4.
    // Lower, sample 3 would exit wrong at head 0 as well (50 points).
    const auto loose = calibrate(t, threshold_family::max_prob, accuracy_target{25.0});
    CHECK(loose.parameter == Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-6));
    CHECK(loose.on_calibration.mean_macs == Approx(1.25));
    CHECK(*loose.on_calibration.accuracy == 0.75);
    CHECK(loose.drop_bound_points == Approx(25.0));
    // fixed: head 0 loses 2 of 4 (50 points), head 1 loses 1 (25 points), head 2 none.
    CHECK(calibrate(t, threshold_family::fixed, accuracy_target{25.0}).parameter == 1.0);
    CHECK(calibrate(t, threshold_family::fixed, accuracy_target{50.0}).parameter == 0.0);
    const auto fixed_none = calibrate(t, threshold_family::fixed, accuracy_target{0.0});
    CHECK(fixed_none.falls_back_to_full);  // head 2 is the plain network: not cheaper than full
    CHECK(fixed_none.parameter_text() == "full (fallback)");
}

TEST_CASE("calibration equals an exhaustive search written independently of replay", "[calibrate]") {
    const auto all = synthetic(1200, 21);
    const auto calib = all.slice(0, 600);
    const auto test = all.slice(600, 600);
    for (const auto f : all_families) {
        for (const double confidence : {0.0, 0.95}) {
            INFO(name_of(f) << " at confidence " << confidence);
            const double z = confidence == 0.0 ? 0.0 : z95;
            const auto c = calibrate(calib, f, accuracy_target{1.0, confidence}, 64);
            const auto b = brute_force_choice(calib, f, 1.0, z, 64);
            REQUIRE(c.met);
            REQUIRE(c.falls_back_to_full == !b.has_value());
            if (!b) continue;
            CHECK(c.parameter == b->parameter);
            CHECK(c.on_calibration.mean_macs == Approx(b->mean_macs).epsilon(1e-12));
            CHECK(*c.on_calibration.accuracy == Approx(b->accuracy).epsilon(1e-12));
            CHECK(c.drop_bound_points == Approx(b->bound).margin(1e-9));
            CHECK(c.on_calibration.compute_saving > 0.0);
            // On the held-out split the calibrated policy does what the brute force says.
            const auto held_out = evaluate(test, c);
            const auto hand = brute_force_point(test, f, c.parameter, 0.0);
            CHECK(held_out.name == c.name());
            CHECK(*held_out.accuracy == Approx(hand.accuracy).epsilon(1e-12));
            CHECK(held_out.mean_macs == Approx(hand.mean_macs).epsilon(1e-12));
        }
    }
    // The bound is not vacuous on this trace: it makes the max_prob threshold stricter.
    CHECK(calibrate(calib, threshold_family::max_prob, accuracy_target{1.0, 0.95}, 64).parameter >
          calibrate(calib, threshold_family::max_prob, accuracy_target{1.0}, 64).parameter);
}

TEST_CASE("no calibrated point costs more than the plain network: a family that cannot beat it falls back to full",
          "[calibrate]") {
    // Head 0 costs 20 MACs on top of a 10-MAC stage; the plain network costs 10 + 1 + 1 = 12.
    // Every sample is sure at head 0, so max_prob exits there at 30 MACs: 150% more than full.
    trace t(trace_layout{2, {0, 1}, {10.0, 1.0}, {20.0, 1.0}});
    for (std::size_t i = 0; i < 20; ++i)
        t.add(std::vector<float>{9, 0, 9, 0}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::size_t{0});
    for (const auto f : all_families) {
        INFO(name_of(f));
        const auto c = calibrate(t, f, accuracy_target{0.5, 0.95}, 16);
        CHECK(c.met);
        CHECK(c.falls_back_to_full);
        CHECK(c.on_calibration.mean_macs == 12.0);
        CHECK(c.on_calibration.compute_saving == 0.0);
        CHECK(c.on_calibration.name == c.name());
        CHECK(c.drop_bound_points == 0.0);
        CHECK(c.make().name() == "full");
        CHECK_FALSE(c.note.empty());
    }
    CHECK_THAT(calibrate(t, threshold_family::max_prob, accuracy_target{0.5}, 16).note,
               Contains("costs 150.0% more than full"));
    // Under a cost budget that affords the plain network, a costlier point is not chosen either.
    const auto budget = calibrate(t, threshold_family::max_prob, cost_target{5.0}, 16);
    CHECK(budget.falls_back_to_full);
    CHECK(budget.on_calibration.mean_macs == 12.0);
}

TEST_CASE("calibrate_all and the headline: the family that saves the most on the calibration split", "[calibrate]") {
    const auto t = synthetic(600, 5);
    const auto all = calibrate_all(t, all_families, accuracy_target{1.0, 0.95}, 64);
    REQUIRE(all.size() == std::size(all_families));
    std::size_t best = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
        CHECK(all[i].family == all_families[i]);
        CHECK(all[i].parameter == calibrate(t, all_families[i], accuracy_target{1.0, 0.95}, 64).parameter);
        if (all[i].on_calibration.compute_saving > all[best].on_calibration.compute_saving) best = i;
    }
    CHECK(headline(all) == best);
    // Hand-made points: the larger saving wins, points that missed their target never do,
    // ties go to the first listed.
    std::vector<calibration> points(3);
    points[0].met = true;
    points[0].on_calibration.compute_saving = 0.2;
    points[1].met = false;
    points[1].on_calibration.compute_saving = 0.9;
    points[2].met = true;
    points[2].on_calibration.compute_saving = 0.3;
    CHECK(headline(points) == 2);
    points[2].on_calibration.compute_saving = 0.2;
    CHECK(headline(points) == 0);
    points[0].met = points[2].met = false;
    CHECK(headline(points) == npos);
    CHECK(headline({}) == npos);
}

TEST_CASE("the smallest non-zero loss bound a split allows", "[calibrate]") {
    // n = 200, one lost: d = 0.005, variance (0.005 - 0.005^2) / 200, bound at 95%:
    // 100 * (0.005 + 1.6448536 * sqrt(2.4875e-5)) = 1.3204 points: above a 1-point target.
    CHECK(smallest_nonzero_drop_bound(200, 0.95) == Approx(100 * (0.005 + z95 * std::sqrt(2.4875e-5))).epsilon(1e-12));
    CHECK(smallest_nonzero_drop_bound(200, 0.95) == Approx(1.3204).epsilon(1e-4));
    CHECK(smallest_nonzero_drop_bound(5000, 0.95) < 0.1);
    CHECK(accuracy_drop_bound(3, 1, 10, 0.0) == Approx(20.0));
    CHECK_THROWS_WITH(accuracy_drop_bound(6, 5, 10, 0.95), Contains("6 lost + 5 won samples out of only 10"));
    CHECK_THROWS_WITH(accuracy_drop_bound(0, 0, 0, 0.95), Contains("no samples"));
}

TEST_CASE("calibration under a cost budget picks the most accurate affordable point", "[calibrate]") {
    const auto t = synthetic(1000, 4);
    for (auto f : all_threshold_families) {
        const auto c = calibrate(t, f, cost_target{0.6}, 96);
        INFO(name_of(f));
        REQUIRE(c.met);
        CHECK(c.on_calibration.mean_macs <= 0.6 * t.info().full_macs + 1e-9);
        for (double p : candidate_parameters(t, f, 96)) {
            const auto b = brute_force_point(t, f, p, 0.0);
            if (b.mean_macs <= 0.6 * t.info().full_macs) CHECK(b.accuracy <= *c.on_calibration.accuracy);
        }
    }
}

TEST_CASE("an unreachable target returns the closest point, flagged as not met", "[calibrate]") {
    const auto t = synthetic(500, 9);
    const auto cheap = calibrate(t, threshold_family::max_prob, cost_target{0.01}, 64);
    CHECK_FALSE(cheap.met);
    CHECK(cheap.on_calibration.mean_heads == 1.0);  // the cheapest point: exit at head 0
    CHECK_THROWS_WITH(calibrate(t, threshold_family::max_prob, accuracy_target{-1}), Contains("drop -1 points"));
    CHECK_THROWS_WITH(calibrate(t, threshold_family::max_prob, cost_target{0}), Contains("budget 0"));
    CHECK_THROWS_WITH(calibrate(trace(t.layout()), threshold_family::max_prob, accuracy_target{}), Contains("empty"));
}

TEST_CASE("normal_quantile inverts the standard normal CDF", "[calibrate]") {
    CHECK(detail::normal_quantile(0.5) == Approx(0.0).margin(1e-12));
    CHECK(detail::normal_quantile(0.95) == Approx(1.6448536269514722).epsilon(1e-10));
    CHECK(detail::normal_quantile(0.975) == Approx(1.959963984540054).epsilon(1e-10));
    CHECK(detail::normal_quantile(0.05) == Approx(-1.6448536269514722).epsilon(1e-10));
    CHECK_THROWS_WITH(detail::normal_quantile(1.0), Contains("probability 1 is not in (0, 1)"));
}

TEST_CASE("accuracy_drop_bound: the paired drop and its upper confidence bound, by hand", "[calibrate]") {
    // Ten samples, two heads, label 0 throughout. The final head is right on samples 0-7.
    trace t(trace_layout{2, {0, 1}, {1.0, 1.0}, {0.0, 0.0}});
    for (std::size_t i = 0; i < 10; ++i) {
        const float final_class0 = i < 8 ? 1.f : 0.f;
        const std::vector<float> z{0.f, 1.f, final_class0, 1.f - final_class0};
        t.add(z, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::size_t{0});
    }
    // Outcomes: wrong on samples 0 and 1 (lost: the final head was right), right on sample 8
    // (won), and as the final head elsewhere.
    std::vector<sample_outcome> out(10);
    for (std::size_t i = 0; i < 10; ++i) out[i].predicted = i < 8 ? 0 : 1;
    out[0].predicted = out[1].predicted = 1;
    out[8].predicted = 0;
    // d = (2 - 1) / 10 = 0.1; variance = (3/10 - 0.01) / 10 = 0.029; z(0.95) = 1.6448536...
    CHECK(accuracy_drop_bound(t, out, 0.0) == Approx(10.0).epsilon(1e-12));
    CHECK(accuracy_drop_bound(t, out, 0.5) == Approx(10.0).epsilon(1e-9));
    CHECK(accuracy_drop_bound(t, out, 0.95) == Approx(100 * (0.1 + 1.6448536269514722 * std::sqrt(0.029))).epsilon(1e-9));
    CHECK(accuracy_drop_bound(t, out, 0.95) == Approx(38.0109).epsilon(1e-5));
    // The final head's own outcomes lose nothing, with no spread.
    std::vector<sample_outcome> same(10);
    for (std::size_t i = 0; i < 10; ++i) same[i].predicted = i < 8 ? 0 : 1;
    CHECK(accuracy_drop_bound(t, same, 0.99) == 0.0);
    CHECK_THROWS_WITH(accuracy_drop_bound(t, out, 0.3), Contains("confidence 0.3"));
    CHECK_THROWS_WITH(accuracy_drop_bound(t, out, 1.0), Contains("confidence 1 "));
    CHECK_THROWS_WITH(accuracy_drop_bound(t, std::span(out).first(9), 0.95), Contains("9 outcomes for a trace of 10"));
}

TEST_CASE("calibration with a confidence bound: within the bound, never cheaper than without it", "[calibrate]") {
    const auto t = synthetic(1000, 33);
    for (auto f : all_threshold_families) {
        INFO(name_of(f));
        const auto plain = calibrate(t, f, accuracy_target{1.0}, 128);
        const auto bounded = calibrate(t, f, accuracy_target{1.0, 0.95}, 128);
        const auto stricter = calibrate(t, f, accuracy_target{1.0, 0.99}, 128);
        REQUIRE(plain.met);
        REQUIRE(bounded.met);
        REQUIRE(stricter.met);
        // The reported bound is the chosen point's, recomputed by hand, and within the target.
        CHECK(bounded.drop_bound_points == Approx(brute_force_point(t, f, bounded.parameter, z95).bound).margin(1e-9));
        CHECK(bounded.drop_bound_points <= 1.0 + 1e-9);
        // Without a confidence the bound is the measured drop.
        CHECK(plain.drop_bound_points == Approx((plain.final_accuracy - *plain.on_calibration.accuracy) * 100).margin(1e-9));
        // A higher confidence only removes candidates: the cost never falls.
        CHECK(bounded.on_calibration.mean_macs >= plain.on_calibration.mean_macs);
        CHECK(stricter.on_calibration.mean_macs >= bounded.on_calibration.mean_macs);
    }
    // On this trace the bound changes the choice for max_prob (a test that cannot pass vacuously).
    CHECK(calibrate(t, threshold_family::max_prob, accuracy_target{1.0, 0.95}, 128).parameter >
          calibrate(t, threshold_family::max_prob, accuracy_target{1.0}, 128).parameter);
    CHECK_THROWS_WITH(calibrate(t, threshold_family::max_prob, accuracy_target{0.5, 0.2}), Contains("confidence 0.2"));
    CHECK(valid_confidence(0.0));
    CHECK(valid_confidence(0.5));
    CHECK(valid_confidence(0.999));
    CHECK_FALSE(valid_confidence(0.2));
    CHECK_FALSE(valid_confidence(1.0));
    CHECK_FALSE(valid_confidence(std::nan("")));
}

TEST_CASE("family_wise_confidence: Bonferroni over the candidates searched, by hand", "[calibrate]") {
    CHECK(family_wise_confidence(0.95, 1) == 0.95);
    CHECK(family_wise_confidence(0.95, 5) == Approx(0.99).epsilon(1e-15));
    CHECK(family_wise_confidence(0.9, 4) == Approx(0.975).epsilon(1e-15));
    CHECK(family_wise_confidence(0.0, 7) == 0.0);  // no bound stays no bound
    CHECK(valid_confidence(family_wise_confidence(0.95, 1000)));
    CHECK_THROWS_WITH(family_wise_confidence(0.95, 0), Contains("m 0"));
    CHECK_THROWS_WITH(family_wise_confidence(0.3, 2), Contains("confidence 0.3"));
}

TEST_CASE("family_wise_confidence keeps the chosen candidate's bound honest: the winner's curse, simulated",
          "[calibrate]") {
    // m candidates, each truly losing exactly the target (q of n samples lost, none won). A
    // search accepts one when its bound is within the target: a false acceptance. One bound at
    // 95% accepts falsely about 5% of the time; the best of 5 such about 1 - 0.95^5 = 23%; the
    // best of 5 at family_wise_confidence(0.95, 5) at most about 5% (a little more: the bound is
    // a normal approximation, slightly optimistic in the tail at 500 expected losses).
    constexpr std::size_t m = 5, n = 10000, trials = 4000;
    constexpr double q = 0.05;  // 5 points: the target
    std::mt19937_64 rng(20261206);
    std::binomial_distribution<std::size_t> lost(n, q);
    const auto false_accept_rate = [&](double confidence, std::size_t candidates) {
        std::size_t accepted = 0;
        for (std::size_t trial = 0; trial < trials; ++trial) {
            bool any = false;
            for (std::size_t c = 0; c < candidates; ++c) any |= accuracy_drop_bound(lost(rng), 0, n, confidence) <= 100 * q;
            accepted += any;
        }
        return static_cast<double>(accepted) / static_cast<double>(trials);
    };
    const double one = false_accept_rate(0.95, 1);
    const double each = false_accept_rate(0.95, m);
    const double joint = false_accept_rate(family_wise_confidence(0.95, m), m);
    CHECK(one < 0.07);
    CHECK(each > 0.15);
    CHECK(joint < 0.07);
}
