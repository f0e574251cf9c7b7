#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/policy/any_policy.hpp>
#include <earlyexit/policy/static.hpp>
#include <earlyexit/calibrate/predictive.hpp>
#include <earlyexit/trace/replay.hpp>

#include "support.hpp"

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {

constexpr double z95 = 1.6448536269514722;

/// The calibration tests' synthetic trace (support.hpp) with heads of `head_macs` and no
/// recorded time.
trace synthetic(std::size_t samples, unsigned seed, double head_macs = 5.0) {
    return earlyexit_test::synthetic_calibration_trace(samples, seed, head_macs, 0.0, 0.0);
}

/// The exit head and declared cost of one sample, from algorithms.md section 3 with plain loops
/// (no runner, no replay, no policy).
struct brute_exit {
    std::size_t head = 0;
    double macs = 0;
};

brute_exit brute_force_exit(const trace& t, std::size_t i, const std::vector<double>& T, double beta,
                            std::size_t start, bool predict, std::size_t rounds = 8) {
    const auto& l = t.layout();
    const std::size_t last = t.heads() - 1, C = t.classes();
    std::size_t k = start;
    double heads_macs = 0;
    for (;;) {
        heads_macs += l.head_macs[k];
        if (k == last) break;
        const auto z = t.logits(i, k);
        double ext = 0;
        for (float v : z) ext = std::max(ext, double(std::abs(v)));
        if (ext > beta * T[k]) break;
        if (!predict) {
            ++k;
            continue;
        }
        std::vector<double> v(z.begin(), z.end()), w(C);
        std::size_t jump = rounds;
        for (std::size_t r = 1; r <= rounds; ++r) {
            double m = 0;
            for (std::size_t c = 0; c < C; ++c) {
                w[c] = (c > 0 ? v[c - 1] : 0.0) + v[c] + (c + 1 < C ? v[c + 1] : 0.0);
                m = std::max(m, std::abs(w[c]));
            }
            v = w;
            if (m > beta * T[std::min(k + r, last)]) {
                jump = r;
                break;
            }
        }
        k = std::min(k + jump, last);
    }
    double stages = 0;
    for (std::size_t p = 0; p <= l.head_positions[k]; ++p) stages += l.stage_macs[p];
    return {k, stages + heads_macs};
}

struct brute_point {
    std::size_t start = 0;
    double beta = 0, accuracy = 0, mean_macs = 0, bound = 0;
};

brute_point brute_force_point(const trace& t, const std::vector<double>& T, double beta, std::size_t start,
                              bool predict, double z) {
    std::size_t correct = 0, lost = 0, won = 0;
    double macs = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const auto e = brute_force_exit(t, i, T, beta, start, predict);
        const std::size_t y = *t.label(i);
        const bool right = top1(t.logits(i, e.head)) == y, final_right = top1(t.logits(i, t.heads() - 1)) == y;
        correct += right;
        lost += final_right && !right;
        won += right && !final_right;
        macs += e.macs;
    }
    const double n = double(t.size());
    const double d = (double(lost) - double(won)) / n;
    const double var = (double(lost + won) / n - d * d) / n;
    return {start, beta, double(correct) / n, macs / n, 100 * (d + z * std::sqrt(std::max(0.0, var)))};
}

/// The calibration rule by exhaustive search: the cheapest (start, beta) within the bound that
/// costs less than the plain network (ties: more accurate, then the first), or none.
std::optional<brute_point> brute_force_choice(const trace& t, const std::vector<double>& betas,
                                              const std::vector<std::size_t>& starts, bool predict, double max_drop,
                                              double z) {
    std::vector<double> T(t.heads(), 0.0);
    for (std::size_t k = 0; k < t.heads(); ++k) {
        for (std::size_t i = 0; i < t.size(); ++i) {
            double e = 0;
            for (float v : t.logits(i, k)) e = std::max(e, double(std::abs(v)));
            T[k] += e;
        }
        T[k] /= double(t.size());
    }
    double full_cost = t.layout().head_macs.back();
    for (double m : t.layout().stage_macs) full_cost += m;
    std::optional<brute_point> best;
    for (std::size_t s : starts)
        for (double b : betas) {
            const auto p = brute_force_point(t, T, b, s, predict, z);
            if (p.bound <= max_drop + 1e-12 && p.mean_macs < full_cost &&
                (!best || p.mean_macs < best->mean_macs ||
                 (p.mean_macs == best->mean_macs && p.accuracy > best->accuracy)))
                best = p;
        }
    return best;
}

trace hand_trace() {
    // Three heads, two classes, every label 0, the final head [1, 0] right on all four samples.
    // Stages cost 1, heads 0: the plain network costs 3.
    //   sample 0: head 0 [4, 0], head 1 [4, 0]   extremum 4, 4   right, right
    //   sample 1: [2, 0], [2, 0]                  2, 2           right, right
    //   sample 2: [0, 3], [0, 1]                  3, 1           wrong, wrong
    //   sample 3: [0, 1], [2, 0]                  1, 2           wrong, right
    trace t(trace_layout{2, {0, 1, 2}, {1.0, 1.0, 1.0}, {0.0, 0.0, 0.0}});
    const std::vector<std::vector<float>> h0{{4, 0}, {2, 0}, {0, 3}, {0, 1}}, h1{{4, 0}, {2, 0}, {0, 1}, {2, 0}};
    for (std::size_t i = 0; i < 4; ++i)
        t.add(std::vector<float>{h0[i][0], h0[i][1], h1[i][0], h1[i][1], 1.f, 0.f}, std::vector<double>(3, 0.0),
              std::vector<double>(3, 0.0), std::size_t{0});
    return t;
}

}  // namespace

TEST_CASE("mean_logit_extremum by hand, invalid logits left out", "[calibrate][predictive]") {
    const trace t = hand_trace();
    // T0 = (4 + 2 + 3 + 1) / 4 = 2.5, T1 = (4 + 2 + 1 + 2) / 4 = 2.25, T2 = 1.
    CHECK(mean_logit_extremum(t) == std::vector<double>{2.5, 2.25, 1.0});
    // A NaN sample at head 0 is left out of head 0's mean only: T0 = (4 + 2) / 2 = 3.
    trace u(trace_layout{2, {0, 1}, {1.0, 1.0}, {0.0, 0.0}});
    const float nan = std::numeric_limits<float>::quiet_NaN();
    u.add(std::vector<float>{4, 0, -3, 1}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::size_t{0});
    u.add(std::vector<float>{nan, 0, 1, 0}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::size_t{0});
    u.add(std::vector<float>{0, -2, 0, 2}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::size_t{0});
    CHECK(mean_logit_extremum(u) == std::vector<double>{3.0, 2.0});
    CHECK_THROWS_WITH(mean_logit_extremum(trace(u.layout())), Contains("mean_logit_extremum: the trace is empty"));
    trace dead(trace_layout{2, {0, 1}, {1.0, 1.0}, {0.0, 0.0}});
    dead.add(std::vector<float>{nan, 0, 1, 0}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::nullopt);
    CHECK_THROWS_WITH(mean_logit_extremum(dead), Contains("head 0 has no valid logits in the 1 samples"));
    trace zero(trace_layout{2, {0, 1}, {1.0, 1.0}, {0.0, 0.0}});
    zero.add(std::vector<float>{1, 0, 0, 0}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::nullopt);
    CHECK_THROWS_WITH(mean_logit_extremum(zero), Contains("head 1 has mean logit extremum 0"));
}

TEST_CASE("the beta grid", "[calibrate][predictive]") {
    const auto g = default_beta_grid();
    REQUIRE(g.size() == 321);
    CHECK(g.front() == 1.0 / 32.0);
    CHECK(g.back() == 32.0);
    CHECK(g[160] == 1.0);
    for (std::size_t j = 1; j < g.size(); ++j) CHECK(g[j] / g[j - 1] == Approx(std::exp2(1.0 / 32.0)));
    CHECK(log_beta_grid(0.5, 2.0, 2) == std::vector<double>{0.5, std::exp2(-0.5), 1.0, std::exp2(0.5), 2.0});
    CHECK(log_beta_grid(0.3, 0.3, 1).empty());  // no power of two in [0.3, 0.3]
    CHECK_THROWS_WITH(log_beta_grid(0.0, 1.0, 4), Contains("range [0, 1]"));
    CHECK_THROWS_WITH(log_beta_grid(2.0, 1.0, 4), Contains("range [2, 1]"));
    CHECK_THROWS_WITH(log_beta_grid(1.0, 2.0, 0), Contains("per_octave 0"));
}

TEST_CASE("calibration by hand: check_every_head on four samples", "[calibrate][predictive]") {
    // T = [2.5, 2.25, 1]. Over the grid {0.5, 1, 1.5, 2}:
    //   beta 0.5 (bars 1.25, 1.125): samples 0, 1, 2 exit at head 0 (2 wrong), sample 3 at head 1
    //            (2 > 1.125, right): accuracy 3/4, 25 points lost, cost (1 + 1 + 1 + 2) / 4 = 1.25
    //   beta 1   (2.5, 2.25): 0 and 2 exit at head 0, 1 and 3 run to the final head: 3/4, cost 2
    //   beta 1.5 (3.75, 3.375): only sample 0 exits (4 > 3.75): 4/4, cost (1 + 3 + 3 + 3) / 4 = 2.5
    //   beta 2   (5, 4.5): nobody exits early: cost 3, the plain network's
    const trace t = hand_trace();
    const predictive_search grid{{0.5, 1.0, 1.5, 2.0}};
    const auto strict = predictive_calibrated(t, accuracy_target{0.0}, {.predict = false}, grid);
    REQUIRE(strict.met);
    CHECK_FALSE(strict.falls_back_to_full);
    CHECK(strict.beta == 1.5);
    CHECK(strict.start_head == 0);
    CHECK(strict.thresholds == std::vector<double>{2.5, 2.25, 1.0});
    CHECK(strict.on_calibration.mean_macs == 2.5);
    CHECK(*strict.on_calibration.accuracy == 1.0);
    CHECK(strict.drop_bound_points == 0.0);
    CHECK(strict.final_accuracy == 1.0);
    CHECK(strict.candidates == 4);
    CHECK(strict.name() == "check_every_head_calibrated");
    CHECK(strict.on_calibration.name == "check_every_head_calibrated");
    CHECK(strict.parameter_text() == "beta 1.5 from head 0");
    CHECK(strict.make().name() == "check_every_head");
    CHECK_FALSE(strict.make().falls_back_to_full());
    CHECK(any_policy<float>(strict.make()).name() == "check_every_head");
    CHECK(predictive_calibrated(t, accuracy_target{0.0}, {}, grid).make().name() == "predictive");
    // make() converts to policy::predictive (which names itself as always).
    const policy::predictive sliced = strict.make();
    CHECK(sliced.beta() == 1.5);
    CHECK(strict.make().beta() == 1.5);
    // 25 points allowed: beta 0.5 (cheapest at 25 points lost).
    const auto loose = predictive_calibrated(t, accuracy_target{25.0}, {.predict = false}, grid);
    CHECK(loose.beta == 0.5);
    CHECK(loose.on_calibration.mean_macs == 1.25);
    CHECK(loose.drop_bound_points == Approx(25.0));
    // Choosing the start head too: from head 1 at beta 0.5 (bar 1.125) samples 0, 1, 3 exit
    // there (extrema 4, 2, 2, all right) and sample 2 (extremum 1) runs on to the final head
    // (right): 4/4 at cost (2 + 2 + 3 + 2) / 4 = 2.25, below beta 1.5 from head 0 (2.5). From
    // head 1 at beta 1 (bar 2.25) only sample 0 exits: cost 2.75.
    const auto joint = predictive_calibrated(t, accuracy_target{0.0}, {.predict = false},
                                             predictive_search{{0.5, 1.0, 1.5, 2.0}, true});
    CHECK(joint.start_head == 1);
    CHECK(joint.beta == 0.5);
    CHECK(joint.on_calibration.mean_macs == 2.25);
    CHECK(joint.candidates == 8);  // start heads 0 and 1, four betas each
    CHECK(joint.parameter_text() == "beta 0.5 from head 1");
    CHECK(joint.make().first_check({}) == 1);
}

TEST_CASE("calibration equals an exhaustive search written independently of replay", "[calibrate][predictive]") {
    const auto betas = log_beta_grid(0.25, 8.0, 6);  // 31 values
    std::size_t chosen = 0;
    // Cheap heads (5 MACs against a 100-MAC stage) and dear ones (60).
    for (const double head_macs : {5.0, 60.0}) {
        const auto all = synthetic(900, 21, head_macs);
        const auto calib = all.slice(0, 450);
        const auto test = all.slice(450, 450);
        for (const bool predict : {true, false})
            for (const bool joint : {false, true})
                for (const double confidence : {0.0, 0.95}) {
                    INFO("head macs " << head_macs << " predict " << predict << " joint start " << joint
                                      << " confidence " << confidence);
                    const std::vector<std::size_t> starts =
                        joint ? std::vector<std::size_t>{0, 1, 2, 3, 4} : std::vector<std::size_t>{0};
                    const auto c = predictive_calibrated(calib, accuracy_target{1.0, confidence},
                                                         {.predict = predict}, predictive_search{betas, joint});
                    const auto b =
                        brute_force_choice(calib, betas, starts, predict, 1.0, confidence == 0.0 ? 0.0 : z95);
                    REQUIRE(c.met);
                    REQUIRE(c.falls_back_to_full == !b.has_value());
                    CHECK(c.candidates == betas.size() * starts.size());
                    if (!b) continue;
                    ++chosen;
                    CHECK(c.beta == b->beta);
                    CHECK(c.start_head == b->start);
                    CHECK(c.on_calibration.mean_macs == Approx(b->mean_macs).epsilon(1e-12));
                    CHECK(*c.on_calibration.accuracy == Approx(b->accuracy).epsilon(1e-12));
                    CHECK(c.drop_bound_points == Approx(b->bound).margin(1e-9));
                    CHECK(c.on_calibration.compute_saving > 0.0);
                    // On the held-out split the calibrated policy does what the brute force says
                    // (with the calibration split's thresholds).
                    const auto held_out = evaluate(test, c);
                    std::size_t correct = 0;
                    double macs = 0;
                    for (std::size_t i = 0; i < test.size(); ++i) {
                        const auto e = brute_force_exit(test, i, c.thresholds, c.beta, c.start_head, predict);
                        correct += top1(test.logits(i, e.head)) == *test.label(i);
                        macs += e.macs;
                    }
                    CHECK(held_out.name == c.name());
                    CHECK(*held_out.accuracy == Approx(double(correct) / double(test.size())).epsilon(1e-12));
                    CHECK(held_out.mean_macs == Approx(macs / double(test.size())).epsilon(1e-12));
                }
    }
    CHECK(chosen == 16);  // every combination finds a point cheaper than full on these traces
}

TEST_CASE("compute is monotone in beta for check_every_head, with prediction it need not be",
          "[calibrate][predictive][property]") {
    const auto t = synthetic(400, 7);
    const auto T = mean_logit_extremum(t);
    const auto betas = log_beta_grid(0.25, 8.0, 8);
    std::vector<std::size_t> prev_head(t.size(), 0);
    double prev_cost = 0;
    for (double b : betas) {
        const auto out = replay(t, policy::predictive({.beta = b, .predict = false}, T));
        double cost = 0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            CHECK(out[i].head >= prev_head[i]);  // a higher bar never exits earlier
            prev_head[i] = out[i].head;
            cost += out[i].macs;
        }
        CHECK(cost >= prev_cost);
        prev_cost = cost;
    }
    CHECK(prev_cost / double(t.size()) > t.info().full_macs);  // the top of the grid runs every head

    // With prediction: C = 1 (the convolution leaves [x] alone, so round r fires iff
    // |x| > beta * T[i + r]), seven heads, T = [10, 3, 1, 1, 1, 1, 1], stages 10 MACs, heads 1.
    // Logits: head 0 [4], head 1 [0.5], head 2 [3], later heads [0].
    //   beta 1: head 0: 4 <= 10, round 1 fires (4 > 3): head 1. 0.5 <= 3 and no round fires
    //           (0.5 <= 1): the horizon, clamped to head 6. Exit at 6: 7 stages + 3 heads = 73.
    //   beta 2: head 0: 4 <= 20, round 1: 4 <= 6, round 2: 4 > 2: head 2. 3 > 2: exit at 2,
    //           3 stages + 2 heads = 32. The higher beta costs less.
    //   check_every_head: beta 1 exits at head 2 (4 <= 10, 0.5 <= 3, 3 > 1), beta 2 too (3 > 2).
    const std::vector<double> T7{10, 3, 1, 1, 1, 1, 1};
    trace u(trace_layout{1, {0, 1, 2, 3, 4, 5, 6}, std::vector<double>(7, 10.0), std::vector<double>(7, 1.0)});
    u.add(std::vector<float>{4, 0.5f, 3, 0, 0, 0, 0}, std::vector<double>(7, 0.0), std::vector<double>(7, 0.0),
          std::size_t{0});
    const auto at1 = replay(u, policy::predictive({.beta = 1.0}, T7));
    const auto at2 = replay(u, policy::predictive({.beta = 2.0}, T7));
    CHECK(at1[0].head == 6);
    CHECK(at1[0].heads_evaluated == 3);
    CHECK(at1[0].macs == 73.0);
    CHECK(at2[0].head == 2);
    CHECK(at2[0].heads_evaluated == 2);
    CHECK(at2[0].macs == 32.0);
    CHECK(replay(u, policy::predictive({.beta = 1.0, .predict = false}, T7))[0].head == 2);
    CHECK(replay(u, policy::predictive({.beta = 2.0, .predict = false}, T7))[0].head == 2);
}

TEST_CASE("no calibrated point costs more than the plain network: the fallback runs as full",
          "[calibrate][predictive]") {
    // As in test_calibrate.cpp: head 0 costs 20 MACs on a 10-MAC stage, the plain network
    // 10 + 1 + 1 = 12. Every sample exits at head 0 for any beta below 1 (extremum 9 = T0):
    // 30 MACs, 150% more than full; from beta 1 on none exits early: 32 MACs.
    trace t(trace_layout{2, {0, 1}, {10.0, 1.0}, {20.0, 1.0}});
    for (std::size_t i = 0; i < 20; ++i)
        t.add(std::vector<float>{9, 0, 9, 0}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), std::size_t{0});
    for (const bool predict : {true, false}) {
        const auto c = predictive_calibrated(t, accuracy_target{0.5, 0.95}, {.predict = predict},
                                             predictive_search{log_beta_grid(0.25, 4.0, 4)});
        CHECK(c.met);
        CHECK(c.falls_back_to_full);
        CHECK(c.on_calibration.mean_macs == 12.0);
        CHECK(c.on_calibration.compute_saving == 0.0);
        CHECK(c.drop_bound_points == 0.0);
        CHECK(c.on_calibration.name == c.name());
        CHECK(c.parameter_text() == "full (fallback)");
        CHECK_THAT(c.note, Contains("its cheapest point within the target (beta 0.25 from head 0) costs 150.0% more "
                                    "than full"));
        // make() starts at the final head: exactly policy::full's run, and named so (as
        // calibrate()'s fallback, policy::full); the row keeps the calibration's name.
        CHECK(c.make().first_check({}) == 1);
        CHECK(c.make().name() == "full");
        CHECK(c.make().falls_back_to_full());
        CHECK(any_policy<float>(c.make()).name() == "full");
        CHECK(evaluate(t, c).name == c.name());
        CHECK(same_decisions(replay(t, c.make()), replay(t, policy::full{})));
        CHECK(evaluate(t, c).mean_macs == 12.0);
    }
    // Free heads and nothing to gain: the cheapest point within the target costs as much as full.
    trace free(trace_layout{2, {0, 1}, {10.0, 1.0}, {0.0, 0.0}});
    for (std::size_t i = 0; i < 10; ++i)
        free.add(std::vector<float>{0, 1, 1, 0}, std::vector<double>(2, 0.0), std::vector<double>(2, 0.0),
                 std::size_t{0});
    const auto same = predictive_calibrated(free, accuracy_target{0.0}, {}, predictive_search{{0.5, 2.0}});
    CHECK(same.falls_back_to_full);
    CHECK_THAT(same.note, Contains("(beta 2 from head 0) costs as much as full"));
    // Every beta loses too much: the closest one is named.
    const auto synth = synthetic(300, 3);
    const auto none = predictive_calibrated(synth, accuracy_target{0.0}, {}, predictive_search{{0.01}});
    CHECK(none.met);
    CHECK(none.falls_back_to_full);
    CHECK_THAT(none.note, Contains("no beta meets the target (closest: beta 0.01 from head 0, bound"));
}

TEST_CASE("predictive_calibrated: errors name the value", "[calibrate][predictive][error]") {
    const trace t = hand_trace();
    CHECK_THROWS_WITH(predictive_calibrated(trace(t.layout()), accuracy_target{}), Contains("trace is empty"));
    trace unl(t.layout());
    unl.add(std::vector<float>(6, 1.f), std::vector<double>(3, 0.0), std::vector<double>(3, 0.0), std::nullopt);
    CHECK_THROWS_WITH(predictive_calibrated(unl, accuracy_target{}), Contains("unlabelled samples"));
    CHECK_THROWS_WITH(predictive_calibrated(t, accuracy_target{-1}), Contains("accuracy drop -1 points"));
    CHECK_THROWS_WITH(predictive_calibrated(t, accuracy_target{1, 0.3}), Contains("confidence 0.3"));
    CHECK_THROWS_WITH(predictive_calibrated(t, accuracy_target{}, {}, predictive_search{{}}),
                      Contains("the beta grid of the logit_extremum test is empty"));
    CHECK_THROWS_WITH(predictive_calibrated(t, accuracy_target{}, {}, predictive_search{{1.0, -3.0}}),
                      Contains("beta -3 (entry 1 of the logit_extremum grid) must be finite and > 0"));
    CHECK_THROWS_WITH(predictive_calibrated(t, accuracy_target{}, {.start_head = 5}),
                      Contains("start_head 5 does not exist; the network has 3 heads"));
    CHECK_THROWS_WITH(predictive_calibrated(t, accuracy_target{}, {.rounds = 0}), Contains("rounds 0"));
    // choose_start_head overrides options.start_head, so a bad one is not an error there.
    CHECK_NOTHROW(predictive_calibrated(t, accuracy_target{}, {.start_head = 5}, predictive_search{{1.0}, true}));
}

TEST_CASE("predictor_error scores every forecast against the next head whose test passes, by hand",
          "[calibrate][predictive]") {
    // 4 heads, 2 classes, log_softmax test at max-prob 0.8: a head with logits (a, 0) passes when
    // a >= ln 4. Sample 0: a = 0, 0, 2, 2 (first passes at head 2); sample 1: never passes;
    // sample 2: passes at head 0 (no forecast).
    trace t(trace_layout{2, {0, 1, 2, 3}, {10, 10, 10, 10}, {1, 1, 1, 1}});
    for (const std::vector<float>& a : {std::vector<float>{0, 0, 2, 2}, {0, 0, 0, 0}, {3, 3, 3, 3}}) {
        std::vector<float> z;
        for (const float x : a) z.insert(z.end(), {x, 0.0f});
        t.add(z, std::vector<double>(4, 0.0), std::vector<double>(4, 0.0), std::size_t{0});
    }
    const std::vector<double> T(4, 1.0);
    // check_every_head forecasts head + 1: sample 0 at head 0 (1 for 2: early by 1), at head 1
    // (2: exact); sample 1 at heads 0, 1, 2 (1, 2, 3 for the final head 3: early by 2, 1, exact).
    const auto every = predictor_error(
        t, policy::predictive({.beta = 0.8, .predict = false, .test = exit_test::log_softmax}, T));
    CHECK(every.forecasts == 5);
    CHECK(every.exact_rate == Approx(0.4));
    CHECK(every.mean_abs_error == Approx(0.8));
    CHECK(every.early_rate == Approx(0.6));
    CHECK(every.late_rate == 0.0);
    // The predictor on (0, 0): no round ever fires, the horizon sends it to the final head:
    // sample 0 late by 1 (the test passes at head 2), sample 1 exact.
    const auto pred = predictor_error(t, policy::predictive({.beta = 0.8, .test = exit_test::log_softmax}, T));
    CHECK(pred.forecasts == 2);
    CHECK(pred.exact_rate == Approx(0.5));
    CHECK(pred.mean_abs_error == Approx(0.5));
    CHECK(pred.late_rate == Approx(0.5));
}

TEST_CASE("predictive_calibrated searches the listed exit tests and keeps the one chosen", "[calibrate][predictive]") {
    // The trace of the predictor_error case plus shifted copies: a constant +5 on every logit
    // of head 1 makes the logit test pass there on wrong answers; the softmax test ignores it.
    trace t(trace_layout{2, {0, 1, 2}, {10, 10, 10}, {1, 1, 1}});
    for (int i = 0; i < 40; ++i) {
        const std::size_t label = i % 2;
        const float sure = (i % 4 < 2) ? 3.0f : 0.2f;  // half the samples are clear at head 1
        std::vector<float> z{0.1f, 0.0f};  // head 0 always says class 0, unsure
        std::vector<float> h1(2, 5.0f), h2(2, 0.0f);
        h1[label] += sure;
        h2[label] += 4.0f;
        z.insert(z.end(), h1.begin(), h1.end());
        z.insert(z.end(), h2.begin(), h2.end());
        t.add(z, std::vector<double>(3, 0.0), std::vector<double>(3, 0.0), label);
    }
    predictive_search search;
    search.tests = {exit_test::logit_extremum, exit_test::log_softmax};
    const auto c = predictive_calibrated(t, accuracy_target{0.0}, {.predict = false}, search);
    REQUIRE_FALSE(c.falls_back_to_full);
    CHECK(c.options.test == exit_test::log_softmax);
    CHECK(c.make().options().test == exit_test::log_softmax);
    CHECK(c.parameter_text().find("max-prob") == 0);
    CHECK(c.candidates == search.betas.size() + search.softmax_betas.size());
    CHECK_THROWS_WITH(predictive_calibrated(t, accuracy_target{}, {},
                                            predictive_search{.softmax_betas = {0.5, 1.5},
                                                              .tests = {exit_test::log_softmax}}),
                      Contains("beta 1.5 (entry 1 of the log_softmax grid) must be finite and in (0, 1]"));
}
