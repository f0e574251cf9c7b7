#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/confidence.hpp>
#include <earlyexit/earlyexit.hpp>

#include "common/synthetic_stopping.hpp"
#include "error_text.hpp"

using earlyexit::demo::stopping_env;
using earlyexit_test::what_of;
using Catch::Matchers::Contains;
namespace demo = earlyexit::demo;

namespace {

/// Two heads, two levels (0.25, 0.75), 5 classes. Stages {1, 1}, heads at 0 and 1 costing 0:
/// c = {1/2, 2/2} = {0.5, 1}. lambda = 0.2:
///   r(0, .) = {0.25 - 0.1, 0.75 - 0.1} = {0.15, 0.65}
///   r(1, .) = {0.25 - 0.2, 0.75 - 0.2} = {0.05, 0.55}
/// P_0 = [[0.5, 0.5], [0.1, 0.9]]:
///   V*(0, 0) = 0.5 * 0.05 + 0.5 * 0.55 = 0.30   > r(0, 0) = 0.15: go on
///   V*(0, 1) = 0.1 * 0.05 + 0.9 * 0.55 = 0.50   < r(0, 1) = 0.65: stop
/// initial = {0.6, 0.4}: J* = 0.6 * 0.30 + 0.4 * 0.65 = 0.18 + 0.26 = 0.44.
stopping_env two_head_env() {
    stopping_env e;
    e.classes = 5;
    e.levels = {0.25, 0.75};
    e.initial = {0.6, 0.4};
    e.transition = {{{0.5, 0.5}, {0.1, 0.9}}};
    e.layout = earlyexit::trace_layout{5, {0, 1}, {1, 1}, {0, 0}};
    e.lambda = 0.2;
    return e;
}

/// Three heads, two levels (0.25, 0.75), 5 classes. Stages {1, 1, 2}, heads at 0, 1, 2 costing 0:
/// c = {1/4, 2/4, 4/4} = {0.25, 0.5, 1}. lambda = 0.4:
///   r(0, .) = {0.15, 0.65},  r(1, .) = {0.05, 0.55},  r(2, .) = {-0.15, 0.35}
/// P_1 = [[0.2, 0.8], [0, 1]]:
///   V*(1, 0) = 0.2 * -0.15 + 0.8 * 0.35 = 0.25   > r(1, 0) = 0.05: go on
///   V*(1, 1) = 0 * -0.15 + 1 * 0.35     = 0.35   < r(1, 1) = 0.55: stop
///   so max(r(1, j), V*(1, j)) = {0.25, 0.55}
/// P_0 = [[0.5, 0.5], [0.25, 0.75]]:
///   V*(0, 0) = 0.5 * 0.25 + 0.5 * 0.55   = 0.40   > r(0, 0) = 0.15: go on
///   V*(0, 1) = 0.25 * 0.25 + 0.75 * 0.55 = 0.475  < r(0, 1) = 0.65: stop
/// initial = {0.5, 0.5}: J* = 0.5 * 0.40 + 0.5 * 0.65 = 0.525.
/// Fixed exits: levels at head 1 {0.375, 0.625}, at head 2 {0.075, 0.925}:
///   head 0: 0.5 * 0.15 + 0.5 * 0.65 = 0.40;  head 1: 0.375 * 0.05 + 0.625 * 0.55 = 0.3625;
///   head 2: 0.075 * -0.15 + 0.925 * 0.35 = 0.3125.
/// Optimal exits: head 0 takes level 1 (0.5); level 0 (0.5) goes to head 1 as {0.25, 0.25}: head 1
/// takes 0.25, head 2 the other 0.25.
stopping_env three_head_env() {
    stopping_env e;
    e.classes = 5;
    e.levels = {0.25, 0.75};
    e.initial = {0.5, 0.5};
    e.transition = {{{0.5, 0.5}, {0.25, 0.75}}, {{0.2, 0.8}, {0.0, 1.0}}};
    e.layout = earlyexit::trace_layout{5, {0, 1, 2}, {1, 1, 2}, {0, 0, 0}};
    e.lambda = 0.4;
    return e;
}

/// Calls f(trajectory, probability) for every level trajectory of env (B^K of them).
void for_each_trajectory(const stopping_env& env,
                         const std::function<void(const std::vector<std::uint8_t>&, double)>& f) {
    const std::size_t K = env.heads(), B = env.bins();
    std::vector<std::uint8_t> t(K, 0);
    for (;;) {
        double p = env.initial[t[0]];
        for (std::size_t k = 1; k < K; ++k) p *= env.transition[k - 1][t[k - 1]][t[k]];
        f(t, p);
        std::size_t k = 0;
        while (k < K && static_cast<std::size_t>(++t[k]) == B) t[k++] = 0;
        if (k == K) return;
    }
}

/// The samples the statistical tests share (generated once).
const demo::synthetic_stream& big_stream() {
    static const demo::synthetic_stream s = demo::generate(demo::default_stopping_env(), 200000, 20240601);
    return s;
}

/// |observed - p| within 4 binomial standard errors of n draws (exact when p is 0 or 1).
bool within_4se(double observed, double p, std::size_t n) {
    const double se = std::sqrt(p * (1 - p) / static_cast<double>(n));
    return std::abs(observed - p) <= 4 * se + 1e-12;
}

}  // namespace

TEST_CASE("cost fractions of a small layout, by hand", "[synthetic_stopping]") {
    stopping_env e;
    e.layout = earlyexit::trace_layout{3, {0, 2}, {10, 20, 30}, {1, 2}};
    // full = 10 + 20 + 30 + 2 = 62; c_0 = (10 + 1) / 62; c_1 = (10 + 20 + 30 + 1 + 2) / 62.
    const auto c = demo::cost_fractions(e);
    REQUIRE(c.size() == 2);
    CHECK(c[0] == 11.0 / 62.0);
    CHECK(c[1] == 63.0 / 62.0);
    // Four heads on five stages: full = 15 + 4 = 19.
    e.layout = earlyexit::trace_layout{3, {0, 1, 3, 4}, {1, 2, 3, 4, 5}, {1, 1, 1, 4}};
    const auto d = demo::cost_fractions(e);
    REQUIRE(d.size() == 4);
    CHECK(d[0] == 2.0 / 19.0);   // 1 + 1
    CHECK(d[1] == 5.0 / 19.0);   // 1 + 2 + 1 + 1
    CHECK(d[2] == 13.0 / 19.0);  // 1 + 2 + 3 + 4 + 1 + 1 + 1
    CHECK(d[3] == 22.0 / 19.0);  // 15 + 7
}

TEST_CASE("two heads, two levels: V* and J* by hand", "[synthetic_stopping]") {
    const auto env = two_head_env();
    REQUIRE_NOTHROW(env.validate());
    const auto s = demo::solve(env);
    REQUIRE(s.continue_value.size() == 1);
    REQUIRE(s.continue_value[0].size() == 2);
    CHECK(s.continue_value[0][0] == Approx(0.30).margin(1e-12));
    CHECK(s.continue_value[0][1] == Approx(0.50).margin(1e-12));
    CHECK(s.optimal_value == Approx(0.44).margin(1e-12));
    CHECK_FALSE(demo::optimal_stops(s, env, 0, 0));
    CHECK(demo::optimal_stops(s, env, 0, 1));
    CHECK(demo::optimal_stops(s, env, 1, 0));  // the final head always stops
    CHECK(demo::optimal_stops(s, env, 1, 1));
    const std::vector<std::uint8_t> low_high{0, 1}, high_low{1, 0};
    CHECK(demo::optimal_reward(env, s, low_high) == Approx(0.55).margin(1e-12));
    CHECK(demo::optimal_reward(env, s, high_low) == Approx(0.65).margin(1e-12));
    CHECK(demo::reward_at(env, high_low, 1) == Approx(0.05).margin(1e-12));
    CHECK(demo::reward_at(env, low_high, 0) == Approx(0.15).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 0) == Approx(0.6 * 0.15 + 0.4 * 0.65).margin(1e-12));
    // Level at head 1: {0.6 * 0.5 + 0.4 * 0.1, 0.6 * 0.5 + 0.4 * 0.9} = {0.34, 0.66}.
    CHECK(demo::fixed_exit_value(env, 1) == Approx(0.34 * 0.05 + 0.66 * 0.55).margin(1e-12));
}

TEST_CASE("three heads, two levels: V*, J*, fixed exits and exit probabilities by hand", "[synthetic_stopping]") {
    const auto env = three_head_env();
    const auto s = demo::solve(env);
    REQUIRE(s.continue_value.size() == 2);
    CHECK(s.continue_value[1][0] == Approx(0.25).margin(1e-12));
    CHECK(s.continue_value[1][1] == Approx(0.35).margin(1e-12));
    CHECK(s.continue_value[0][0] == Approx(0.40).margin(1e-12));
    CHECK(s.continue_value[0][1] == Approx(0.475).margin(1e-12));
    CHECK(s.optimal_value == Approx(0.525).margin(1e-12));
    CHECK_FALSE(demo::optimal_stops(s, env, 0, 0));
    CHECK(demo::optimal_stops(s, env, 0, 1));
    CHECK_FALSE(demo::optimal_stops(s, env, 1, 0));
    CHECK(demo::optimal_stops(s, env, 1, 1));
    CHECK(demo::fixed_exit_value(env, 0) == Approx(0.40).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 1) == Approx(0.3625).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 2) == Approx(0.3125).margin(1e-12));
    const auto exits = demo::optimal_exit_probabilities(env, s);
    REQUIRE(exits.size() == 3);
    CHECK(exits[0] == Approx(0.5).margin(1e-12));
    CHECK(exits[1] == Approx(0.25).margin(1e-12));
    CHECK(exits[2] == Approx(0.25).margin(1e-12));
    const std::vector<std::uint8_t> stuck{0, 0, 0}, late{0, 1, 0}, early{1, 0, 0};
    CHECK(demo::optimal_exit(env, s, stuck) == 2);
    CHECK(demo::optimal_reward(env, s, stuck) == Approx(-0.15).margin(1e-12));
    CHECK(demo::optimal_exit(env, s, late) == 1);
    CHECK(demo::optimal_reward(env, s, late) == Approx(0.55).margin(1e-12));
    CHECK(demo::optimal_exit(env, s, early) == 0);
    CHECK(demo::optimal_reward(env, s, early) == Approx(0.65).margin(1e-12));
    // J* is the expectation of optimal_reward over all 8 trajectories.
    double expectation = 0, mass = 0;
    for_each_trajectory(env, [&](const std::vector<std::uint8_t>& t, double p) {
        expectation += p * demo::optimal_reward(env, s, t);
        mass += p;
    });
    CHECK(mass == Approx(1.0).margin(1e-12));
    CHECK(expectation == Approx(s.optimal_value).margin(1e-12));
}

TEST_CASE("a tie between stopping and going on stops, one head only stops at once", "[synthetic_stopping]") {
    const auto env = two_head_env();
    auto s = demo::solve(env);
    s.continue_value[0][0] = demo::reward(env, s.costs, 0, 0);
    CHECK(demo::optimal_stops(s, env, 0, 0));
    s.continue_value[0][0] = std::nextafter(s.continue_value[0][0], 1.0);
    CHECK_FALSE(demo::optimal_stops(s, env, 0, 0));

    stopping_env one;
    one.classes = 5;
    one.levels = {0.25, 0.75};
    one.initial = {0.5, 0.5};
    one.layout = earlyexit::trace_layout{5, {1}, {1, 3}, {0}};
    one.lambda = 0.5;
    const auto s1 = demo::solve(one);
    CHECK(s1.continue_value.empty());
    CHECK(s1.optimal_value == Approx(0.5 - 0.5).margin(1e-12));  // mean level 0.5, c_0 = 1
    CHECK(demo::optimal_reward(one, s1, std::vector<std::uint8_t>{1}) == Approx(0.25).margin(1e-12));
}

TEST_CASE("validate rejects each malformed field, naming it", "[synthetic_stopping][error]") {
    const auto good = three_head_env();
    REQUIRE_NOTHROW(good.validate());
    const auto bad = [&](const std::function<void(stopping_env&)>& edit) {
        auto e = good;
        edit(e);
        return what_of([&] { e.validate(); });
    };
    CHECK_THAT(bad([](stopping_env& e) { e.layout.head_positions = {0, 1}; }),
               Contains("trace layout: the last head must sit at the last stage (2)"));
    CHECK(bad([](stopping_env& e) { e.classes = 4; }) == "stopping env: classes = 4 but layout.classes = 5");
    CHECK(bad([](stopping_env& e) { e.classes = e.layout.classes = 1; }) ==
          "stopping env: classes = 1 must be at least 2");
    CHECK(bad([](stopping_env& e) { e.levels.clear(); }) == "stopping env: levels has 0 entries, expected 1 to 256");
    CHECK(bad([](stopping_env& e) { e.levels[1] = 0.7; }) ==
          "stopping env: levels[1] = 0.7 is not 0.75, the centre of bin 1 of 2");
    CHECK(bad([](stopping_env& e) { e.initial = {0.5, 0.25, 0.25}; }) ==
          "stopping env: initial has 3 entries for 2 levels");
    CHECK(bad([](stopping_env& e) { e.initial = {-0.5, 1.5}; }) ==
          "stopping env: initial[0] = -0.5 is not a probability");
    CHECK(bad([](stopping_env& e) { e.initial = {0.5, NAN}; }) ==
          "stopping env: initial[1] = nan is not a probability");
    CHECK(bad([](stopping_env& e) { e.initial = {0.5, 0.4}; }) == "stopping env: initial sums to 0.9, not 1");
    CHECK(bad([](stopping_env& e) { e.transition.pop_back(); }) ==
          "stopping env: transition has 1 matrices for 3 heads, expected 2");
    CHECK(bad([](stopping_env& e) { e.transition[1].pop_back(); }) ==
          "stopping env: transition[1] has 1 rows for 2 levels");
    CHECK(bad([](stopping_env& e) { e.transition[0][1] = {0.5, 0.25, 0.25}; }) ==
          "stopping env: transition[0][1] has 3 entries for 2 levels");
    CHECK(bad([](stopping_env& e) { e.transition[1][0] = {1.25, -0.25}; }) ==
          "stopping env: transition[1][0][0] = 1.25 is not a probability");
    CHECK(bad([](stopping_env& e) { e.transition[1][1] = {-0.25, 1.25}; }) ==
          "stopping env: transition[1][1][0] = -0.25 is not a probability");
    CHECK(bad([](stopping_env& e) { e.transition[0][1] = {0.5, 0.6}; }) ==
          "stopping env: transition[0][1] sums to 1.1, not 1");
    CHECK(bad([](stopping_env& e) { e.lambda = -1; }) == "stopping env: lambda = -1 is not finite and >= 0");
    CHECK(bad([](stopping_env& e) { e.lambda = INFINITY; }) == "stopping env: lambda = inf is not finite and >= 0");
    CHECK(bad([](stopping_env& e) { e.lambda = NAN; }) == "stopping env: lambda = nan is not finite and >= 0");
    // A level not above 1/classes: an error only when some probability leads to it.
    CHECK(bad([](stopping_env& e) { e.classes = e.layout.classes = 4; }) ==
          "stopping env: levels[0] = 0.25 is not above 1/classes = 0.25 (no softmax of 4 classes has that "
          "max-prob) yet initial or transition leads to it");
    CHECK(bad([](stopping_env& e) {
              e.classes = e.layout.classes = 4;
              e.initial = {0, 1};
              e.transition = {{{0.5, 0.5}, {0, 1}}, {{0, 1}, {0, 1}}};
          }) == "stopping env: levels[0] = 0.25 is not above 1/classes = 0.25 (no softmax of 4 classes has that "
                "max-prob) yet initial or transition leads to it");
    auto unreachable = good;
    unreachable.classes = unreachable.layout.classes = 4;
    unreachable.initial = {0, 1};
    unreachable.transition = {{{0, 1}, {0, 1}}, {{0, 1}, {0, 1}}};
    CHECK_NOTHROW(unreachable.validate());
    // solve and generate validate first.
    auto e = good;
    e.lambda = -1;
    CHECK_THROWS_WITH(demo::solve(e), Contains("lambda = -1"));
    CHECK_THROWS_WITH(demo::generate(e, 1, 0), Contains("lambda = -1"));
    const auto s = demo::solve(good);
    CHECK_THROWS_WITH(demo::optimal_reward(good, s, std::vector<std::uint8_t>{0, 0}),
                      Contains("a trajectory of 2 levels for 3 heads"));
    CHECK_THROWS_WITH(demo::reward_at(good, std::vector<std::uint8_t>{0, 0, 0}, 3), Contains("exit head 3 of 3"));
}

TEST_CASE("the generator is pinned: xoshiro256** seeded by splitmix64", "[synthetic_stopping]") {
    // Vigna's reference code; a change here changes every stream generated with this file.
    demo::stopping_rng a(0), b(42);
    CHECK(a.next() == 0x99ec5f36cb75f2b4ULL);
    CHECK(a.next() == 0xbf6e1f784956452aULL);
    CHECK(a.next() == 0x1a5f849d4933e6e0ULL);
    CHECK(b.next() == 0x15780b2e0c2ec716ULL);
    CHECK(b.next() == 0x6104d9866d113a7eULL);
    CHECK(b.next() == 0xae17533239e499a1ULL);
    demo::stopping_rng c(7);
    for (int i = 0; i < 1000; ++i) {
        const double u = c.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        REQUIRE(c.below(3) < 3);
        const std::vector<double> p{0.0, 0.5, 0.0, 0.5, 0.0};
        const auto j = c.pick(p);
        REQUIRE((j == 1 || j == 3));
    }
}

TEST_CASE("generated logits have the level as max-prob, the label as top-1, the level's bin as cell",
          "[synthetic_stopping]") {
    const auto env = demo::default_stopping_env();
    const auto s = demo::generate(env, 3000, 5);
    REQUIRE(s.trace.size() == 3000);
    REQUIRE(s.level.size() == 3000);
    CHECK(s.trace.layout() == env.layout);
    CHECK(s.trace.labelled());
    std::vector<std::size_t> label_count(env.classes, 0);
    for (std::size_t i = 0; i < s.trace.size(); ++i) {
        const std::size_t label = *s.trace.label(i);
        ++label_count[label];
        REQUIRE(s.level[i].size() == env.heads());
        for (std::size_t k = 0; k < env.heads(); ++k) {
            const auto z = s.trace.logits(i, k);
            const std::size_t b = s.level[i][k];
            REQUIRE(b >= 1);  // level 0.05 is unreachable in the default env
            const float p = earlyexit::max_prob(z);
            REQUIRE(std::abs(static_cast<double>(p) - env.levels[b]) <= 1e-6);
            REQUIRE(earlyexit::top1(z) == label);
            const auto cell = std::min<std::size_t>(env.bins() - 1, static_cast<std::size_t>(p * 10.0f));
            REQUIRE(cell == b);
        }
        for (std::size_t p = 0; p < s.trace.stages(); ++p)
            REQUIRE(s.trace.stage_seconds(i)[p] == env.layout.stage_macs[p] * 1e-9);
        for (std::size_t k = 0; k < s.trace.heads(); ++k)
            REQUIRE(s.trace.head_seconds(i)[k] == env.layout.head_macs[k] * 1e-9);
    }
    for (std::size_t c = 0; c < env.classes; ++c) CHECK(within_4se(label_count[c] / 3000.0, 0.1, 3000));
    // Levels 0.15 (just above 1/C = 0.1) and 0.95 through the softmax, on a 2-level env too.
    const auto two = demo::generate(two_head_env(), 200, 9);
    for (std::size_t i = 0; i < two.trace.size(); ++i)
        for (std::size_t k = 0; k < 2; ++k)
            REQUIRE(std::abs(earlyexit::max_prob(two.trace.logits(i, k)) - (two.level[i][k] ? 0.75 : 0.25)) <= 1e-6);
}

TEST_CASE("the same seed gives the same stream, another seed another", "[synthetic_stopping]") {
    const auto env = demo::default_stopping_env();
    const auto a = demo::generate(env, 500, 11), b = demo::generate(env, 500, 11), c = demo::generate(env, 500, 12);
    const auto logits = [](const demo::synthetic_stream& s) {
        return std::vector<float>(s.trace.all_logits().begin(), s.trace.all_logits().end());
    };
    const auto labels = [](const demo::synthetic_stream& s) {
        return std::vector<std::int64_t>(s.trace.all_labels().begin(), s.trace.all_labels().end());
    };
    CHECK(logits(a) == logits(b));
    CHECK(labels(a) == labels(b));
    CHECK(a.level == b.level);
    CHECK(logits(a) != logits(c));
    CHECK(labels(a) != labels(c));
    CHECK(a.level != c.level);
    // A prefix of a longer stream is the shorter stream.
    const auto longer = demo::generate(env, 800, 11);
    CHECK(std::vector<std::vector<std::uint8_t>>(longer.level.begin(), longer.level.begin() + 500) == a.level);
}

TEST_CASE("empirical initial and transition frequencies match the matrices (4 standard errors)",
          "[synthetic_stopping][statistics]") {
    const auto env = demo::default_stopping_env();
    const auto& s = big_stream();
    const std::size_t n = s.level.size(), B = env.bins(), K = env.heads();
    std::vector<std::size_t> first(B, 0);
    std::vector<std::vector<std::vector<std::size_t>>> moves(
        K - 1, std::vector<std::vector<std::size_t>>(B, std::vector<std::size_t>(B, 0)));
    for (const auto& t : s.level) {
        ++first[t[0]];
        for (std::size_t k = 0; k + 1 < K; ++k) ++moves[k][t[k]][t[k + 1]];
    }
    for (std::size_t b = 0; b < B; ++b) {
        INFO("initial level " << b << ": " << first[b] << " of " << n);
        CHECK(within_4se(static_cast<double>(first[b]) / static_cast<double>(n), env.initial[b], n));
    }
    std::size_t rows_checked = 0;
    for (std::size_t k = 0; k + 1 < K; ++k)
        for (std::size_t i = 0; i < B; ++i) {
            const std::size_t from = std::accumulate(moves[k][i].begin(), moves[k][i].end(), std::size_t{0});
            if (from < 100) continue;  // too few visits for the normal approximation
            ++rows_checked;
            for (std::size_t j = 0; j < B; ++j) {
                INFO("transition[" << k << "] " << i << " -> " << j << ": " << moves[k][i][j] << " of " << from);
                CHECK(within_4se(static_cast<double>(moves[k][i][j]) / static_cast<double>(from),
                                 env.transition[k][i][j], from));
            }
        }
    CHECK(rows_checked >= 3 * 8);  // every reachable row but the rarest
}

TEST_CASE("the Monte-Carlo mean of optimal_reward is J* (4 standard errors), it beats every fixed exit",
          "[synthetic_stopping][statistics]") {
    const auto env = demo::default_stopping_env();
    const auto sol = demo::solve(env);
    const auto& s = big_stream();
    const std::size_t n = s.level.size(), K = env.heads();
    double sum = 0, sum2 = 0;
    std::vector<double> gain(K, 0), gain2(K, 0);
    std::vector<std::size_t> exits(K, 0);
    for (const auto& t : s.level) {
        const double r = demo::optimal_reward(env, sol, t);
        sum += r;
        sum2 += r * r;
        ++exits[demo::optimal_exit(env, sol, t)];
        for (std::size_t k = 0; k < K; ++k) {
            const double g = r - demo::reward_at(env, t, k);
            gain[k] += g;
            gain2[k] += g * g;
        }
    }
    const double dn = static_cast<double>(n);
    const double mean = sum / dn, se = std::sqrt((sum2 / dn - mean * mean) / dn);
    INFO("mean " << mean << " J* " << sol.optimal_value << " se " << se);
    CHECK(std::abs(mean - sol.optimal_value) <= 4 * se);
    const auto p_exit = demo::optimal_exit_probabilities(env, sol);
    for (std::size_t k = 0; k < K; ++k) {
        CHECK(within_4se(static_cast<double>(exits[k]) / dn, p_exit[k], n));
        // Paired: the optimal rule's reward minus exiting at head k on the same samples.
        const double g = gain[k] / dn, g_se = std::sqrt((gain2[k] / dn - g * g) / dn);
        INFO("fixed exit " << k << ": gain " << g << " se " << g_se);
        CHECK(g - 4 * g_se >= 0.01);
        CHECK(std::abs(g - (sol.optimal_value - demo::fixed_exit_value(env, k))) <= 4 * g_se);
    }
}

TEST_CASE("the default environment: valid, and its optimal rule is not trivial", "[synthetic_stopping]") {
    const auto env = demo::default_stopping_env();
    REQUIRE_NOTHROW(env.validate());
    REQUIRE(env.heads() == 4);
    REQUIRE(env.bins() == 10);
    CHECK(env.classes == 10);
    CHECK(env.lambda == 0.5);
    CHECK_FALSE(env.reachable(0));  // 0.05 is not above 1/C
    for (std::size_t b = 1; b < 10; ++b) CHECK(env.reachable(b));
    const auto sol = demo::solve(env);

    // Stops at head 0 on some levels head 0 can have, goes on on others.
    std::size_t stop0 = 0, go0 = 0;
    for (std::size_t b = 0; b < env.bins(); ++b)
        if (env.initial[b] > 0) (demo::optimal_stops(sol, env, 0, b) ? stop0 : go0) += 1;
    CHECK(stop0 > 0);
    CHECK(go0 > 0);

    // Every head is an optimal exit with positive probability.
    const auto exits = demo::optimal_exit_probabilities(env, sol);
    CHECK(std::accumulate(exits.begin(), exits.end(), 0.0) == Approx(1.0).margin(1e-12));
    for (std::size_t k = 0; k < env.heads(); ++k) {
        INFO("head " << k);
        CHECK(exits[k] > 0.1);
    }

    // J* beats every fixed exit by at least 0.01.
    for (std::size_t k = 0; k < env.heads(); ++k) {
        INFO("fixed exit " << k << ": " << demo::fixed_exit_value(env, k) << " against J* " << sol.optimal_value);
        CHECK(sol.optimal_value - demo::fixed_exit_value(env, k) >= 0.01);
    }

    // Known values (an independent computation of the same DP), so a change of the env shows.
    CHECK(sol.optimal_value == Approx(0.3433140618786702).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 0) == Approx(0.2865318352059925).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 1) == Approx(0.30589700374531836).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 2) == Approx(0.30115939450686646).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 3) == Approx(0.26521002086512235).margin(1e-12));
    CHECK(exits[0] == Approx(0.12).margin(1e-12));
    CHECK(exits[1] == Approx(0.1565).margin(1e-12));
    // The rule: stop from level 0.75 up at every head.
    for (std::size_t k = 0; k + 1 < env.heads(); ++k)
        for (std::size_t b = 1; b < env.bins(); ++b) {
            INFO("head " << k << " level " << b);
            CHECK(demo::optimal_stops(sol, env, k, b) == (b >= 7));
        }

    // J* is exactly the expectation of optimal_reward over all 10^4 trajectories.
    double expectation = 0, mass = 0;
    for_each_trajectory(env, [&](const std::vector<std::uint8_t>& t, double p) {
        if (p == 0) return;
        expectation += p * demo::optimal_reward(env, sol, t);
        mass += p;
    });
    CHECK(mass == Approx(1.0).margin(1e-12));
    CHECK(expectation == Approx(sol.optimal_value).margin(1e-12));

    const auto c = demo::cost_fractions(env);
    REQUIRE(c.size() == 4);
    CHECK(c[0] == (2e6 + 1e4) / 8.01e6);
    CHECK(c[3] == (8e6 + 4e4) / 8.01e6);
}

// ---------------------------------------------------------------------------------------------
// The agreement environment: state (level, top-1 agreement bit).

namespace {

using demo::agreement_env;
using demo::agreement_path;

/// Three heads, two levels (0.25, 0.75), 5 classes; states s = 2 b + a: (0,0), (0,1), (1,0), (1,1).
/// Stages {1, 1, 2}, heads costing 0: c = {0.25, 0.5, 1}; lambda = 0.4:
///   r(0, .) = {0.15, 0.65},  r(1, .) = {0.05, 0.55},  r(2, .) = {-0.15, 0.35}
/// P_1: (0,0) -> (1,1) 0.8, (0,0) 0.2;  (0,1) -> (0,1);  (1,0) -> (1,1);  (1,1) -> (1,1):
///   V*(1, .) = {0.8 * 0.35 + 0.2 * -0.15, -0.15, 0.35, 0.35} = {0.25, -0.15, 0.35, 0.35}
///   at level 0.25: bit 0 goes on (0.05 < 0.25), bit 1 stops (0.05 >= -0.15)
///   max(r(1, .), V*(1, .)) = {0.25, 0.05, 0.55, 0.55}
/// P_0 (head 0's bit is 0; rows (0,1), (1,1) unreachable, kept in place):
///   (0,0) -> (0,0) 0.6, (0,1) 0.4:  V*(0, (0,0)) = 0.6 * 0.25 + 0.4 * 0.05 = 0.17  > 0.15: go on
///   (1,0) -> (0,0) 0.5, (1,1) 0.5:  V*(0, (1,0)) = 0.5 * 0.25 + 0.5 * 0.55 = 0.40  < 0.65: stop
///   V*(0, (0,1)) = 0.05, V*(0, (1,1)) = 0.55
/// initial = {0.5, 0.5}: J* = 0.5 * 0.17 + 0.5 * 0.65 = 0.41.
/// Exits of the optimal rule: head 0 0.5; head 1 gets (0,0) 0.3 (goes on), (0,1) 0.2 (stops); head 2 0.3.
/// Single thresholds (tau = 0, 0.5, 1):
///   tau 0: stop at head 0: 0.5 * 0.15 + 0.5 * 0.65 = 0.40
///   tau 0.5: level 1 stops at head 0 (0.325); level 0 reaches head 2 as (1,1) 0.24, (0,0) 0.06,
///            (0,1) 0.2: 0.24 * 0.35 - 0.26 * 0.15 = 0.045; total 0.37
///   tau 1 (the final head): head 1 (0,0) 0.55, (0,1) 0.2, (1,1) 0.25; head 2 level 1 0.44 + 0.25,
///            level 0 0.31: 0.69 * 0.35 - 0.31 * 0.15 = 0.195
/// Fixed exit at head 1: levels {0.75, 0.25}: 0.75 * 0.05 + 0.25 * 0.55 = 0.175.
/// Rules without the bit: stop everything at head 0 (0.40) is the best; stopping level 1 there and
/// going on at level 0 earns 0.325 + max(0.5 * 0.05, 0.3 * 0.25 + 0.2 * -0.15 = 0.045) = 0.37.
agreement_env tiny_agreement_env() {
    agreement_env e;
    e.classes = 5;
    e.levels = {0.25, 0.75};
    e.initial = {0.5, 0.5};
    e.transition = {{{0.6, 0.4, 0, 0}, {0, 1, 0, 0}, {0.5, 0, 0, 0.5}, {0, 0, 0, 1}},
                    {{0.2, 0, 0, 0.8}, {0, 1, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 1}}};
    e.layout = earlyexit::trace_layout{5, {0, 1, 2}, {1, 1, 2}, {0, 0, 0}};
    e.lambda = 0.4;
    return e;
}

/// Calls f(path, probability) for every path of env with positive probability.
void for_each_path(const agreement_env& env, const std::function<void(const agreement_path&, double)>& f) {
    const std::size_t K = env.heads(), S = env.states();
    agreement_path p{std::vector<std::uint8_t>(K, 0), std::vector<std::uint8_t>(K, 0)};
    const std::function<void(std::size_t, std::size_t, double)> walk = [&](std::size_t k, std::size_t s, double prob) {
        p.level[k] = static_cast<std::uint8_t>(s / 2);
        p.agree[k] = static_cast<std::uint8_t>(s % 2);
        if (k + 1 == K) return f(p, prob);
        for (std::size_t j = 0; j < S; ++j)
            if (env.transition[k][s][j] > 0) walk(k + 1, j, prob * env.transition[k][s][j]);
    };
    for (std::size_t b = 0; b < env.bins(); ++b)
        if (env.initial[b] > 0) walk(0, agreement_env::state_of(b, 0), env.initial[b]);
}

/// The mean of best - got over samples [from, to).
double mean_regret(const std::vector<double>& best, const std::vector<double>& got, std::size_t from, std::size_t to) {
    double sum = 0;
    for (std::size_t i = from; i < to; ++i) sum += best[i] - got[i];
    return sum / static_cast<double>(to - from);
}

/// What a policy earns on each sample of an agreement stream, learning online (replay).
template <class Policy>
std::vector<double> earned(const agreement_env& env, const demo::agreement_stream& s, Policy policy) {
    const auto out = earlyexit::replay(s.trace, policy);
    const double full = s.trace.info().full_macs;
    std::vector<double> got(s.trace.size());
    for (std::size_t i = 0; i < got.size(); ++i)
        got[i] = env.levels[s.path[i].level[out[i].head]] - env.lambda * out[i].macs / full;
    return got;
}

}  // namespace

TEST_CASE("agreement env, three heads, two levels: V*, J*, thresholds and exits by hand", "[synthetic_stopping]") {
    const auto env = tiny_agreement_env();
    REQUIRE_NOTHROW(env.validate());
    const auto s = demo::solve(env);
    REQUIRE(s.continue_value.size() == 2);
    REQUIRE(s.continue_value[0].size() == 4);
    const std::vector<double> v1{0.25, -0.15, 0.35, 0.35}, v0{0.17, 0.05, 0.40, 0.55};
    for (std::size_t i = 0; i < 4; ++i) {
        INFO("state " << i);
        CHECK(s.continue_value[1][i] == Approx(v1[i]).margin(1e-12));
        CHECK(s.continue_value[0][i] == Approx(v0[i]).margin(1e-12));
    }
    CHECK(s.optimal_value == Approx(0.41).margin(1e-12));
    CHECK_FALSE(demo::optimal_stops(s, env, 0, 0, 0));
    CHECK(demo::optimal_stops(s, env, 0, 1, 0));
    // The same head and level, the other decision: the bit decides.
    CHECK_FALSE(demo::optimal_stops(s, env, 1, 0, 0));
    CHECK(demo::optimal_stops(s, env, 1, 0, 1));
    CHECK(demo::optimal_stops(s, env, 1, 1, 0));
    CHECK(demo::optimal_stops(s, env, 1, 1, 1));
    CHECK(demo::optimal_stops(s, env, 2, 0, 0));  // the final head always stops

    const auto exits = demo::optimal_exit_probabilities(env, s);
    REQUIRE(exits.size() == 3);
    CHECK(exits[0] == Approx(0.5).margin(1e-12));
    CHECK(exits[1] == Approx(0.2).margin(1e-12));
    CHECK(exits[2] == Approx(0.3).margin(1e-12));
    CHECK(demo::threshold_value(env, 0.0) == Approx(0.40).margin(1e-12));
    CHECK(demo::threshold_value(env, 0.5) == Approx(0.37).margin(1e-12));
    CHECK(demo::threshold_value(env, 1.0) == Approx(0.195).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 0) == Approx(0.40).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 1) == Approx(0.175).margin(1e-12));
    CHECK(demo::fixed_exit_value(env, 2) == Approx(0.195).margin(1e-12));
    const auto t = demo::best_threshold(env);
    CHECK(t.tau == 0.0);
    CHECK(t.value == Approx(0.40).margin(1e-12));
    CHECK(demo::best_blind_value(env, s) == Approx(0.40).margin(1e-12));
    const auto head1 = demo::state_distribution(env, 1);
    CHECK(head1 == std::vector<double>{0.55, 0.2, 0.0, 0.25});

    // Paths: two low heads that agree stop at head 1; two that differ go on to head 2.
    const agreement_path settled{{0, 0, 0}, {0, 1, 1}}, unsettled{{0, 0, 1}, {0, 0, 1}}, sure{{1, 1, 1}, {0, 1, 1}};
    CHECK(demo::optimal_exit(env, s, settled) == 1);
    CHECK(demo::optimal_reward(env, s, settled) == Approx(0.05).margin(1e-12));
    CHECK(demo::optimal_exit(env, s, unsettled) == 2);
    CHECK(demo::optimal_reward(env, s, unsettled) == Approx(0.35).margin(1e-12));
    CHECK(demo::optimal_exit(env, s, sure) == 0);
    CHECK(demo::threshold_exit(env, 0.5, settled) == 2);
    CHECK(demo::threshold_exit(env, 0.5, sure) == 0);
    CHECK(demo::reward_at(env, s.costs, settled, 2) == Approx(-0.15).margin(1e-12));

    // J* is the expectation of optimal_reward over every path.
    double expectation = 0, mass = 0;
    for_each_path(env, [&](const agreement_path& p, double prob) {
        expectation += prob * demo::optimal_reward(env, s, p);
        mass += prob;
    });
    CHECK(mass == Approx(1.0).margin(1e-12));
    CHECK(expectation == Approx(0.41).margin(1e-12));
}

TEST_CASE("agreement env: validate rejects malformed fields, naming them", "[synthetic_stopping][error]") {
    const auto good = tiny_agreement_env();
    const auto bad = [&](const std::function<void(agreement_env&)>& edit) {
        auto e = good;
        edit(e);
        return what_of([&] { e.validate(); });
    };
    CHECK(bad([](agreement_env& e) { e.classes = 4; }) == "agreement env: classes = 4 but layout.classes = 5");
    CHECK(bad([](agreement_env& e) { e.levels[0] = 0.2; }) ==
          "agreement env: levels[0] = 0.2 is not 0.25, the centre of bin 0 of 2");
    CHECK(bad([](agreement_env& e) { e.initial = {0.25, 0.25, 0.5}; }) ==
          "agreement env: initial has 3 entries for 2 levels");
    CHECK(bad([](agreement_env& e) { e.transition.pop_back(); }) ==
          "agreement env: transition has 1 matrices for 3 heads, expected 2");
    CHECK(bad([](agreement_env& e) { e.transition[0].pop_back(); }) ==
          "agreement env: transition[0] has 3 rows for 4 states");
    CHECK(bad([](agreement_env& e) { e.transition[1][2] = {0.5, 0.5}; }) ==
          "agreement env: transition[1][2] has 2 entries for 4 states");
    CHECK(bad([](agreement_env& e) { e.transition[1][3] = {0, 0, 0.5, 0.4}; }) ==
          "agreement env: transition[1][3] sums to 0.9, not 1");
    CHECK(bad([](agreement_env& e) { e.transition[0][0] = {1.5, -0.5, 0, 0}; }) ==
          "agreement env: transition[0][0][0] = 1.5 is not a probability");
    CHECK(bad([](agreement_env& e) { e.lambda = NAN; }) == "agreement env: lambda = nan is not finite and >= 0");
    CHECK(bad([](agreement_env& e) { e.classes = e.layout.classes = 4; }) ==
          "agreement env: levels[0] = 0.25 is not above 1/classes = 0.25 (no softmax of 4 classes has that "
          "max-prob) yet initial or transition leads to it");
    const auto s = demo::solve(good);
    CHECK_THROWS_WITH(demo::optimal_exit(good, s, agreement_path{{0, 0}, {0, 0}}),
                      Contains("a path of 2 levels and 2 bits for 3 heads"));
    CHECK_THROWS_WITH(demo::optimal_stops(s, good, 0, 0, 2), Contains("head 0 level 0 bit 2 is outside it"));
    CHECK_THROWS_WITH(demo::reward_at(good, s.costs, agreement_path{{0, 0, 0}, {0, 0, 0}}, 3),
                      Contains("exit head 3 of 3"));
    auto e = good;
    e.lambda = -1;
    CHECK_THROWS_WITH(demo::solve(e), Contains("lambda = -1"));
    CHECK_THROWS_WITH(demo::generate(e, 1, 0), Contains("lambda = -1"));
}

TEST_CASE("the agreement environment: the optimal rule needs the head and the bit, one threshold falls short",
          "[synthetic_stopping]") {
    const auto env = demo::agreement_stopping_env();
    REQUIRE_NOTHROW(env.validate());
    REQUIRE(env.heads() == 4);
    REQUIRE(env.bins() == 10);
    CHECK(env.classes == 10);
    CHECK(env.lambda == 0.5);
    CHECK_FALSE(env.reachable(0));
    for (std::size_t b = 1; b < 10; ++b) CHECK(env.reachable(b));
    const auto sol = demo::solve(env);

    // Cells reachable with both bits where the optimal decisions differ.
    std::size_t differ = 0;
    for (std::size_t k = 1; k + 1 < env.heads(); ++k) {
        const auto p = demo::state_distribution(env, k);
        for (std::size_t b = 0; b < env.bins(); ++b)
            if (p[agreement_env::state_of(b, 0)] > 0.01 && p[agreement_env::state_of(b, 1)] > 0.01 &&
                demo::optimal_stops(sol, env, k, b, 0) != demo::optimal_stops(sol, env, k, b, 1))
                ++differ;
    }
    CHECK(differ >= 8);
    // The rule: a settled answer stops; a changed one goes on below 0.75 at head 0, below 0.85 at
    // heads 1 and 2 (so level 0.75 with bit 0 stops at head 0 and goes on at head 1: the head matters).
    for (std::size_t k = 0; k + 1 < env.heads(); ++k)
        for (std::size_t b = 1; b < env.bins(); ++b) {
            INFO("head " << k << " level " << b);
            CHECK(demo::optimal_stops(sol, env, k, b, 1));
            CHECK(demo::optimal_stops(sol, env, k, b, 0) == (b >= (k == 0 ? 7u : 8u)));
        }

    // Every head is an optimal exit with positive probability.
    const auto exits = demo::optimal_exit_probabilities(env, sol);
    CHECK(std::accumulate(exits.begin(), exits.end(), 0.0) == Approx(1.0).margin(1e-12));
    for (std::size_t k = 0; k < env.heads(); ++k) {
        INFO("head " << k);
        CHECK(exits[k] > 0.1);
    }

    // The best single threshold, the best rule without the bit and every fixed exit are below J*.
    const auto t = demo::best_threshold(env);
    const double blind = demo::best_blind_value(env, sol);
    INFO("J* " << sol.optimal_value << ", threshold " << t.value << " at " << t.tau << ", without the bit " << blind);
    CHECK(sol.optimal_value - t.value >= 0.03);
    CHECK(sol.optimal_value - blind >= 0.02);
    CHECK(blind >= t.value);  // a single threshold is a rule without the bit
    for (std::size_t k = 0; k < env.heads(); ++k) CHECK(sol.optimal_value - demo::fixed_exit_value(env, k) >= 0.05);
    for (std::size_t b = 0; b <= env.bins(); ++b) CHECK(demo::threshold_value(env, b / 10.0) <= t.value);

    // Known values (the same DP in an independent script), so a change of the env shows.
    CHECK(sol.optimal_value == Approx(0.3825378848).margin(1e-9));
    CHECK(t.tau == 0.5);
    CHECK(t.value == Approx(0.3476171628).margin(1e-9));
    CHECK(blind == Approx(0.3585850142).margin(1e-9));

    // J* is exactly the expectation of optimal_reward over every path.
    double expectation = 0, mass = 0, threshold = 0;
    for_each_path(env, [&](const agreement_path& p, double prob) {
        expectation += prob * demo::optimal_reward(env, sol, p);
        threshold += prob * demo::reward_at(env, sol.costs, p, demo::threshold_exit(env, t.tau, p));
        mass += prob;
    });
    CHECK(mass == Approx(1.0).margin(1e-12));
    CHECK(expectation == Approx(sol.optimal_value).margin(1e-12));
    CHECK(threshold == Approx(t.value).margin(1e-12));
}

TEST_CASE("agreement env: the logits realise the state: max-prob is the level, the top-1 changes iff the bit is 0",
          "[synthetic_stopping]") {
    const auto env = demo::agreement_stopping_env();
    const auto s = demo::generate(env, 3000, 5);
    REQUIRE(s.trace.size() == 3000);
    REQUIRE(s.path.size() == 3000);
    CHECK(s.trace.layout() == env.layout);
    CHECK(s.trace.labelled());
    std::size_t changed = 0, kept = 0;
    for (std::size_t i = 0; i < s.trace.size(); ++i) {
        const auto& p = s.path[i];
        REQUIRE(p.level.size() == env.heads());
        REQUIRE(p.agree.size() == env.heads());
        REQUIRE(p.agree[0] == 0);
        std::size_t previous = 0;
        for (std::size_t k = 0; k < env.heads(); ++k) {
            const auto z = s.trace.logits(i, k);
            REQUIRE(p.level[k] >= 1);
            REQUIRE(std::abs(static_cast<double>(earlyexit::max_prob(z)) - env.levels[p.level[k]]) <= 1e-6);
            const std::size_t top = earlyexit::top1(z);
            if (k > 0) {
                REQUIRE((top == previous) == (p.agree[k] == 1));
                (p.agree[k] ? kept : changed) += 1;
            }
            previous = top;
        }
        REQUIRE(*s.trace.label(i) == previous);  // the label is the final head's top-1
    }
    CHECK(changed > 1000);
    CHECK(kept > 4000);
    // Reproducible, and a prefix of a longer stream is the shorter stream.
    const auto again = demo::generate(env, 2000, 5), other = demo::generate(env, 2000, 6);
    for (std::size_t i = 0; i < 2000; ++i) {
        REQUIRE(again.path[i].level == s.path[i].level);
        REQUIRE(again.path[i].agree == s.path[i].agree);
    }
    CHECK(std::vector<float>(again.trace.all_logits().begin(), again.trace.all_logits().end()) ==
          std::vector<float>(s.trace.all_logits().begin(), s.trace.all_logits().begin() + 2000 * 4 * 10));
    std::size_t same = 0;
    for (std::size_t i = 0; i < 2000; ++i) same += other.path[i].level == s.path[i].level;
    CHECK(same < 1000);
}

TEST_CASE("agreement env: empirical transitions match the matrices, the Monte-Carlo mean of optimal_reward is J*",
          "[synthetic_stopping][statistics]") {
    const auto env = demo::agreement_stopping_env();
    const auto sol = demo::solve(env);
    const auto s = demo::generate(env, 100000, 20240602);
    const std::size_t n = s.path.size(), S = env.states(), K = env.heads();
    std::vector<std::vector<std::vector<std::size_t>>> moves(
        K - 1, std::vector<std::vector<std::size_t>>(S, std::vector<std::size_t>(S, 0)));
    double sum = 0, sum2 = 0;
    for (const auto& p : s.path) {
        for (std::size_t k = 0; k + 1 < K; ++k)
            ++moves[k][agreement_env::state_of(p.level[k], p.agree[k])]
                   [agreement_env::state_of(p.level[k + 1], p.agree[k + 1])];
        const double r = demo::optimal_reward(env, sol, p);
        sum += r;
        sum2 += r * r;
    }
    std::size_t rows_checked = 0;
    for (std::size_t k = 0; k + 1 < K; ++k)
        for (std::size_t i = 0; i < S; ++i) {
            const std::size_t from = std::accumulate(moves[k][i].begin(), moves[k][i].end(), std::size_t{0});
            if (from < 200) continue;
            ++rows_checked;
            for (std::size_t j = 0; j < S; ++j) {
                INFO("transition[" << k << "] " << i << " -> " << j << ": " << moves[k][i][j] << " of " << from);
                CHECK(within_4se(static_cast<double>(moves[k][i][j]) / static_cast<double>(from),
                                 env.transition[k][i][j], from));
            }
        }
    CHECK(rows_checked >= 35);
    const double dn = static_cast<double>(n), mean = sum / dn, se = std::sqrt((sum2 / dn - mean * mean) / dn);
    INFO("mean " << mean << " J* " << sol.optimal_value << " se " << se);
    CHECK(std::abs(mean - sol.optimal_value) <= 4 * se);
}

TEST_CASE("agreement env: DEE with the streak bit learns the optimal rule, without it, or ucb_exit, it cannot",
          "[synthetic_stopping][dee]") {
    // Fixed seeds: the stream and the learners are deterministic, so these bounds cannot flake;
    // they hold with a wide margin (measured: see the comments).
    const auto env = demo::agreement_stopping_env();
    const auto sol = demo::solve(env);
    constexpr std::size_t n = 20000;
    const auto s = demo::generate(env, n, 3);
    std::vector<double> best(n);
    for (std::size_t i = 0; i < n; ++i) best[i] = demo::optimal_reward(env, sol, s.path[i]);
    const earlyexit::dee_options sees_bit{.lambda = env.lambda, .confidence_bins = env.bins(), .streak_bins = 2};
    auto blind_options = sees_bit;
    blind_options.streak_bins = 1;
    const auto dee = earned(env, s, earlyexit::policy::dee<>(sees_bit));
    const auto blind = earned(env, s, earlyexit::policy::dee<>(blind_options));
    const auto ucb = earned(env, s, earlyexit::policy::ucb_exit<>(earlyexit::bandit_options{.lambda = env.lambda}));
    const double dee_early = mean_regret(best, dee, 0, 1000), dee_late = mean_regret(best, dee, n - 5000, n);
    const double blind_late = mean_regret(best, blind, n - 5000, n), ucb_late = mean_regret(best, ucb, n - 5000, n);
    INFO("dee early " << dee_early << " late " << dee_late << "; streak_bins 1 late " << blind_late
                      << "; ucb_exit late " << ucb_late << "; J* - without the bit "
                      << sol.optimal_value - demo::best_blind_value(env, sol));
    CHECK(dee_late < dee_early / 5);
    CHECK(dee_late < 0.004);
    CHECK(blind_late > 0.015);  // at least J* minus the best rule without the bit (0.024) in expectation
    CHECK(ucb_late > 0.04);
}
