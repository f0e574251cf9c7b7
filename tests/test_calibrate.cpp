#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/trace/calibrate.hpp>

#include "support.hpp"

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {

// Heads grow more accurate with depth; the label is the final head's class 90% of the time.
// Every other sample is easy: all heads see its final class clearly, so early exits pay.
trace synthetic(std::size_t samples, unsigned seed) {
    const std::size_t heads = 6, classes = 5;
    const auto table = earlyexit_test::random_table(samples, heads, classes, seed);
    trace t(trace_layout{classes, {0, 1, 2, 3, 4, 5}, std::vector<double>(6, 100.0), std::vector<double>(6, 5.0)});
    std::mt19937 rng(seed + 1);
    for (std::size_t i = 0; i < samples; ++i) {
        const std::size_t final_top = top1(table[i].back());
        std::vector<float> z;
        for (auto h : table[i]) {
            if (i % 2 == 0) h[final_top] += 6.f;
            z.insert(z.end(), h.begin(), h.end());
        }
        const std::size_t y = rng() % 100 < 90 ? final_top : (final_top + 2) % classes;
        t.add(z, std::vector<double>(6, 1e-3), std::vector<double>(6, 1e-4), y);
    }
    return t;
}

/// Independent of replay: exit at the first head whose max-prob reaches tau.
double hand_accuracy(const trace& t, double tau) {
    std::size_t correct = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        std::size_t k = 0;
        while (k + 1 < t.heads() && !(static_cast<double>(max_prob(t.logits(i, k))) >= tau)) ++k;
        correct += top1(t.logits(i, k)) == *t.label(i);
    }
    return static_cast<double>(correct) / static_cast<double>(t.size());
}

}  // namespace

TEST_CASE("calibration meets an accuracy target at least cost and reports it on a held-out split", "[calibrate]") {
    const auto all = synthetic(2000, 21);
    const auto calib = all.slice(0, 1000);
    const auto test = all.slice(1000, 1000);
    const auto c = calibrate(calib, threshold_family::max_prob, accuracy_target{0.5}, 128);
    REQUIRE(c.met);
    CHECK(c.name() == "max_prob_calibrated");
    CHECK(*c.on_calibration.accuracy >= c.final_accuracy - 0.005 - 1e-12);
    CHECK(c.on_calibration.compute_saving > 0.0);
    // No candidate that meets the target is cheaper.
    for (const auto& p : sweep(calib, threshold_family::max_prob, 128))
        if (*p.metrics.accuracy >= c.final_accuracy - 0.005 - 1e-12) CHECK(p.metrics.mean_macs >= c.on_calibration.mean_macs);
    // The held-out figure is what an independent computation gives for the chosen threshold.
    const auto held_out = evaluate(test, c);
    CHECK(held_out.name == "max_prob_calibrated");
    CHECK(*held_out.accuracy == Approx(hand_accuracy(test, c.parameter)).margin(1e-12));
    CHECK(*c.on_calibration.accuracy == Approx(hand_accuracy(calib, c.parameter)).margin(1e-12));
}

TEST_CASE("calibration under a cost budget picks the most accurate affordable point", "[calibrate]") {
    const auto t = synthetic(1000, 4);
    for (auto f : all_threshold_families) {
        const auto c = calibrate(t, f, cost_target{0.6}, 96);
        INFO(name_of(f));
        REQUIRE(c.met);
        CHECK(c.on_calibration.mean_macs <= 0.6 * t.info().full_macs + 1e-9);
        for (const auto& p : sweep(t, f, 96))
            if (p.metrics.mean_macs <= 0.6 * t.info().full_macs) CHECK(*p.metrics.accuracy <= *c.on_calibration.accuracy);
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
        // The reported bound is the chosen point's, recomputed independently, and within the target.
        const auto out = replay(t, bounded.make());
        CHECK(bounded.drop_bound_points == Approx(accuracy_drop_bound(t, out, 0.95)).margin(1e-12));
        CHECK(bounded.drop_bound_points <= 1.0 + 1e-9);
        // Without a confidence the bound is the measured drop.
        CHECK(plain.drop_bound_points == Approx((plain.final_accuracy - *plain.on_calibration.accuracy) * 100).margin(1e-9));
        // A higher confidence only removes candidates: the cost never falls.
        CHECK(bounded.on_calibration.mean_macs >= plain.on_calibration.mean_macs);
        CHECK(stricter.on_calibration.mean_macs >= bounded.on_calibration.mean_macs);
        // No affordable candidate is cheaper than the bounded choice.
        for (double p : candidate_parameters(t, f, 128)) {
            const auto o = replay(t, make_policy(f, p));
            if (accuracy_drop_bound(t, o, 0.95) <= 1.0) CHECK(summarize("p", o, t).mean_macs >= bounded.on_calibration.mean_macs);
        }
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
