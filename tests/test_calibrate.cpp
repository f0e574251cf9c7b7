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
