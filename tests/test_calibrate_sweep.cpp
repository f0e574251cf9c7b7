#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/calibrate/sweep.hpp>

#include "support.hpp"

using namespace earlyexit;

namespace {

trace synthetic(std::size_t samples, unsigned seed) {
    const std::size_t heads = 5, classes = 4;
    const auto table = earlyexit_test::random_table(samples, heads, classes, seed);
    trace t(trace_layout{classes, {0, 1, 2, 3, 4}, {10, 10, 10, 10, 10}, {1, 1, 1, 1, 1}});
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < samples; ++i) {
        std::vector<float> z;
        for (const auto& h : table[i]) z.insert(z.end(), h.begin(), h.end());
        // The label is the final head's class 85% of the time.
        const std::size_t final_top = top1(table[i].back());
        const std::size_t y = rng() % 100 < 85 ? final_top : (final_top + 1) % classes;
        t.add(z, std::vector<double>(5, 1e-3), std::vector<double>(5, 1e-4), y);
    }
    return t;
}

}  // namespace

TEST_CASE("candidate parameters span [0, 1] in order, patience counts every head", "[sweep]") {
    const auto t = synthetic(200, 3);
    const auto c = candidate_parameters(t, threshold_family::max_prob, 50);
    REQUIRE(c.size() >= 3);
    CHECK(c.size() <= 50);
    CHECK(c.front() == 0.0);
    CHECK(c.back() == 1.0);
    CHECK(std::is_sorted(c.begin(), c.end()));
    CHECK(std::adjacent_find(c.begin(), c.end()) == c.end());
    CHECK(candidate_parameters(t, threshold_family::patience) == std::vector<double>{1, 2, 3, 4, 5});
    CHECK(candidate_parameters(t, threshold_family::fixed) == std::vector<double>{0, 1, 2, 3, 4});
}

TEST_CASE("a max_prob sweep trades compute for accuracy monotonically in the threshold", "[sweep][property]") {
    const auto t = synthetic(400, 5);
    const auto points = sweep(t, threshold_family::max_prob, 64);
    for (std::size_t i = 1; i < points.size(); ++i) {
        CHECK(points[i].parameter > points[i - 1].parameter);
        CHECK(points[i].metrics.compute_saving <= points[i - 1].metrics.compute_saving);
        CHECK(points[i].metrics.mean_heads >= points[i - 1].metrics.mean_heads);
    }
    CHECK(points.front().metrics.mean_heads == 1.0);  // tau = 0: everyone exits at head 0
    CHECK(points.front().metrics.name == "max_prob 0");
}

TEST_CASE("the Pareto front holds exactly the undominated points", "[sweep][property]") {
    const auto t = synthetic(400, 8);
    for (auto f : all_threshold_families) {
        const auto points = sweep(t, f, 48);
        const auto front = pareto_front(points);
        REQUIRE_FALSE(front.empty());
        auto dominates = [](const policy_metrics& b, const policy_metrics& a) {
            return *b.accuracy >= *a.accuracy && b.compute_saving >= a.compute_saving &&
                   (*b.accuracy > *a.accuracy || b.compute_saving > a.compute_saving);
        };
        for (std::size_t i = 0; i < front.size(); ++i) {
            if (i > 0) CHECK(points[front[i]].metrics.compute_saving >= points[front[i - 1]].metrics.compute_saving);
            for (const auto& p : points) CHECK_FALSE(dominates(p.metrics, points[front[i]].metrics));
        }
        for (std::size_t j = 0; j < points.size(); ++j) {
            if (std::find(front.begin(), front.end(), j) != front.end()) continue;
            bool beaten = false;
            for (std::size_t i : front)
                beaten = beaten || dominates(points[i].metrics, points[j].metrics) ||
                         (*points[i].metrics.accuracy == *points[j].metrics.accuracy &&
                          points[i].metrics.compute_saving == points[j].metrics.compute_saving);
            CHECK(beaten);
        }
    }
}

TEST_CASE("make_policy builds each family and rejects bad parameters", "[sweep][error]") {
    CHECK(make_policy(threshold_family::entropy, 0.3).name() == "entropy");
    CHECK(make_policy(threshold_family::patience, 2.0).target<policy::patience>()->count() == 2);
    CHECK_THROWS_AS(make_policy(threshold_family::margin, 1.5), earlyexit::error);
    CHECK_THROWS_WITH(make_policy(threshold_family::patience, 0.0), Catch::Matchers::Contains("count 0 must be >= 1"));
    CHECK(name_of(threshold_family::margin) == "margin");
    CHECK(name_of(threshold_family::fixed) == "fixed");
    CHECK(make_policy(threshold_family::fixed, 3.0).target<policy::fixed>()->head() == 3);
    CHECK_THROWS_WITH(make_policy(threshold_family::fixed, 1.5), Catch::Matchers::Contains("fixed: head 1.5 must be a whole number"));
    CHECK_THROWS_WITH(make_policy(threshold_family::fixed, -1.0), Catch::Matchers::Contains("fixed: head -1 must be"));
}
