// calibrate/hindsight.hpp and calibrate/lambda.hpp: quantile bins, per-head rewards, the best
// rule of DEE's class in hindsight (by hand), regret curves, and lambda chosen for a goal.
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

namespace {

const float ln3 = std::log(3.0f), ln9 = std::log(9.0f), ln15 = std::log(1.5f);

/// Two heads after stages of 1 and 2 MACs, heads of 1 MAC: full 4, in-order costs 0.5 and 1.25.
trace two_head_trace(const std::vector<std::vector<std::vector<float>>>& logits, std::vector<std::size_t> labels) {
    trace t(trace_layout{2, {0, 1}, {1, 2}, {1, 1}});
    for (std::size_t i = 0; i < logits.size(); ++i) {
        std::vector<float> z;
        for (const auto& h : logits[i]) z.insert(z.end(), h.begin(), h.end());
        t.add(z, std::vector<double>{0, 0}, std::vector<double>{0, 0}, labels[i]);
    }
    return t;
}

/// A recorded 4-head trace of random logits (5 classes, stages of 10 MACs at positions 1..4),
/// labelled with the final head's top-1.
trace labelled_random_trace(std::size_t samples, unsigned seed) {
    const auto table = random_table(samples, 4, 5, seed);
    counters count;
    const auto net = scripted_network(5, {1, 2, 3, 4}, table, count);
    scripted_state s;
    return record_trace(net, s, table.size(), [&](std::size_t i, scripted_state& st) {
        st = {i, 0};
        return std::optional<std::size_t>(top1(table[i][3]));
    });
}

}  // namespace

TEST_CASE("stop rewards and the hindsight rule on a 2-head trace, by hand", "[trace][hindsight]") {
    // Max-probs (head 0, head 1): A (0.75, 0.9), B (0.9, 0.6), C (0.6, 0.9). lambda 0.1:
    // r0 = mp0 - 0.05, r1 = mp1 - 0.125: A (0.70, 0.775), B (0.85, 0.475), C (0.55, 0.775).
    const trace t = two_head_trace({{{ln3, 0}, {ln9, 0}}, {{ln9, 0}, {ln15, 0}}, {{ln15, 0}, {ln9, 0}}}, {0, 1, 0});
    const auto ra = stop_rewards<reward::max_prob_reward>(t, 0, 0.1);
    CHECK(ra[0] == Approx(0.70));
    CHECK(ra[1] == Approx(0.775));
    // Correctness: A's heads both say class 0 (label 0): 1 - 0.05, 1 - 0.125; B's say 0, label 1.
    const auto rb = stop_rewards<reward::correctness_reward>(t, 1, 0.1);
    CHECK(rb[0] == Approx(-0.05));
    CHECK(rb[1] == Approx(-0.125));

    // Four uniform bins (edges 0.25, 0.5, 0.75): A and B in bin 3 (0.75 and 0.9), C in bin 2.
    // V(0, 3) = (0.775 + 0.475) / 2 = 0.625: A stops (0.70), B stops (0.85).
    // V(0, 2) = 0.775: C continues (0.55). Mean reward (0.70 + 0.85 + 0.775) / 3 = 0.775.
    const auto h = hindsight_best<reward::max_prob_reward>(t, dee_options{.lambda = 0.1, .confidence_bins = 4});
    CHECK(h.continue_value[3] == Approx(0.625));
    CHECK(h.continue_value[2] == Approx(0.775));
    CHECK(h.exit_head == std::vector<std::size_t>{0, 0, 1});
    CHECK(h.mean_reward() == Approx(0.775));

    // realized_reward: the outcome's own cost (heads skipped cost nothing).
    sample_outcome o;
    o.head = 1;
    o.macs = 4;  // the final head only: cost fraction 1
    CHECK(realized_reward<reward::max_prob_reward>(t, 0, o, 0.1) == Approx(0.9 - 0.1));
}

TEST_CASE("DEE learning online on a stationary trace approaches the hindsight rule", "[trace][hindsight][dee]") {
    // A random 4-head trace repeated 20 times: stationary. DEE's per-sample regret against the
    // hindsight rule on the same samples falls, and is small at the end.
    const auto table = random_table(400, 4, 5, 21);
    counters count;
    const auto net = scripted_network(5, {1, 2, 3, 4}, table, count, {10, 10, 10, 10, 10}, 1.0);
    scripted_state s;
    const trace once = record_trace(net, s, table.size(), [&](std::size_t i, scripted_state& st) {
        st = {i, 0};
        return std::optional<std::size_t>(0);
    });
    trace t(once.layout());
    for (int rep = 0; rep < 20; ++rep)
        for (std::size_t i = 0; i < once.size(); ++i) {
            std::vector<float> z;
            for (std::size_t k = 0; k < once.heads(); ++k) z.insert(z.end(), once.logits(i, k).begin(), once.logits(i, k).end());
            t.add(z, once.stage_seconds(i), once.head_seconds(i), once.label(i));
        }
    const dee_options o{.lambda = 0.3, .alpha = 0.3, .confidence_bins = 6};
    const auto best = hindsight_best<reward::max_prob_reward>(t, o);
    policy::dee<> d(o);
    const auto out = replay(t, d);
    const auto got = realized_rewards<reward::max_prob_reward>(t, out, o.lambda);
    const std::vector<std::size_t> cps{400, 8000};
    const auto curve = average_regret(best.reward, got, cps);
    // Regret over the last half alone.
    double late = 0;
    for (std::size_t i = 4000; i < 8000; ++i) late += best.reward[i] - got[i];
    late /= 4000;
    CHECK(curve[0].avg_regret > 0);
    CHECK(late < curve[0].avg_regret / 3);
    CHECK(std::abs(late) < 0.01);
}

TEST_CASE("quantile edges fill the bins equally and are strictly increasing", "[trace][hindsight]") {
    const auto table = random_table(1000, 3, 4, 2);
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    scripted_state s;
    const trace t = record_trace(net, s, table.size(), [&](std::size_t i, scripted_state& st) {
        st = {i, 0};
        return std::optional<std::size_t>(0);
    });
    const auto e = quantile_edges(t, context_measure::max_prob, 5);
    REQUIRE(e.size() == 2);
    policy::dee<> d(dee_options{.confidence_bins = 5, .confidence_edges = e});
    d.prepare(t.info());
    for (std::size_t k = 0; k < 2; ++k) {
        REQUIRE(e[k].size() == 4);
        std::vector<std::size_t> fill(5, 0);
        for (std::size_t i = 0; i < t.size(); ++i)
            ++fill[d.cell_of(k, static_cast<double>(max_prob(t.logits(i, k))), 0.0) - k * 5];
        for (const auto f : fill) CHECK(f == 200);  // 1000 distinct values in 5 bins
    }
    // Ties: a trace whose head 0 always gives the same max-prob still gets increasing edges.
    const trace same = two_head_trace({{{ln3, 0}, {ln9, 0}}, {{ln3, 0}, {ln9, 0}}}, {0, 0});
    const auto te = quantile_edges(same, context_measure::max_prob, 4);
    CHECK(te[0][1] > te[0][0]);
    CHECK(te[0][2] > te[0][1]);
    CHECK_THROWS_WITH(quantile_edges(same, context_measure::max_prob, 0), Contains("bins 0"));
}

TEST_CASE("average_regret and log_checkpoints", "[trace][hindsight]") {
    const std::vector<double> best{1, 1, 1, 1}, got{0, 1, 0.5, 1};
    const std::vector<std::size_t> cps{1, 2, 4};
    const auto c = average_regret(best, got, cps);
    CHECK(c[0].avg_regret == Approx(1.0));
    CHECK(c[1].avg_regret == Approx(0.5));
    CHECK(c[2].avg_regret == Approx(1.5 / 4));
    const std::vector<std::size_t> bad{2, 1};
    CHECK_THROWS_WITH(average_regret(best, got, bad), Contains("increasing"));
    CHECK(log_checkpoints(1000) == std::vector<std::size_t>{100, 200, 500, 1000});
    CHECK(log_checkpoints(1200) == std::vector<std::size_t>{100, 200, 500, 1000, 1200});
}

TEST_CASE("calibrate_lambda, online scoring: the cheapest lambda meeting the goal on the validation run",
          "[trace][calibrate]") {
    const trace t = labelled_random_trace(1500, 8);
    const auto make = [](double lambda) {
        return policy::dee<>(dee_options{.lambda = lambda, .alpha = 0.5, .confidence_bins = 8});
    };
    const accuracy_target target{10.0, 0.0};  // random heads: even lambda 0 loses 6.3 points here
    const lambda_search online{.score = lambda_score::online};
    const auto c = calibrate_lambda(t, make, target, online);
    REQUIRE(c.met);
    REQUIRE_FALSE(c.falls_back_to_full);
    // By brute force over the same grid.
    double cheapest = 1e300;
    for (const double l : default_lambda_grid) {
        auto p = make(l);
        const auto out = replay(t, p);
        const auto m = summarize({}, out, t);
        if (accuracy_drop_bound(t, out, 0.0) <= 10.0 + 1e-12) cheapest = std::min(cheapest, m.mean_macs);
    }
    CHECK(c.on_calibration.mean_macs == cheapest);
    CHECK(c.drop_bound_points <= 10.0);
    CHECK(c.learned.visit_stats(0).count == 1500);  // the warm start saw the whole validation run
    // A goal no lambda meets: falls back to full, with a note naming the closest lambda.
    const auto none = calibrate_lambda(t, make, accuracy_target{0.0, 0.999},
                                       lambda_search{.grid = {5.0, 10.0}, .score = lambda_score::online});
    CHECK(none.met);
    CHECK(none.falls_back_to_full);
    CHECK(none.on_calibration.compute_saving == 0.0);
    CHECK_THAT(none.note, Contains("no lambda"));
    CHECK_THROWS_WITH(calibrate_lambda(t, make, target, lambda_search{.grid = {}}), Contains("grid is empty"));
    CHECK_THROWS_WITH(calibrate_lambda(t, make, target, lambda_search{.grid = {0.1, -1.0}}),
                      Contains("lambda -1 (grid entry 1)"));
    CHECK_THROWS_WITH(calibrate_lambda(t, make, target, lambda_search{.passes = 0}), Contains("passes 0"));
    CHECK_THROWS_WITH(calibrate_lambda(t, make, target, lambda_search{.folds = 1}), Contains("folds 1"));
}

TEST_CASE("calibrate_lambda, frozen scoring: each fold's rule is trained on the others and replayed frozen",
          "[trace][calibrate]") {
    const trace t = labelled_random_trace(900, 31);
    using learner = policy::dee<reward::correctness_reward>;
    const auto make = [](double lambda) {
        return learner(dee_options{.lambda = lambda, .alpha = 0.3, .confidence_bins = 4, .streak_bins = 2});
    };
    const auto serve = [](const learner& d) { return d.serving(0.0); };
    const lambda_search search{.grid = {0.2, 0.5, 0.8, 1.2}, .passes = 2, .folds = 3};
    const auto c = calibrate_lambda(t, make, accuracy_target{10.0, 0.0}, search, serve);
    // An independent computation of every lambda's score: folds i % 3, two training passes on
    // the other folds, then the served rule (alpha 0) replayed with learning off.
    const double full_macs = summarize({}, replay(t, policy::full{}), t).mean_macs;
    double cheapest = 1e300, chosen = -1;
    for (const double l : search.grid) {
        std::vector<sample_outcome> out(t.size());
        for (std::size_t f = 0; f < 3; ++f) {
            auto p = make(l);
            const trace tr = t.select_if([&](std::size_t i) { return i % 3 != f; });
            (void)replay(tr, p);
            (void)replay(tr, p);
            const trace held = t.select_if([&](std::size_t i) { return i % 3 == f; });
            auto frozen = p.serving(0.0);
            const auto before = frozen.table();
            std::size_t j = 0;
            for (std::size_t i = f; i < t.size(); i += 3) {
                replayer<float, learner> r(held, frozen);  // a fresh copy per sample: nothing learned
                out[i] = outcome_of(r.run(j++));
            }
            CHECK(frozen.table() == before);
        }
        const auto m = summarize({}, out, t);
        if (accuracy_drop_bound(t, out, 0.0) <= 10.0 + 1e-12 && m.mean_macs < std::min(cheapest, full_macs)) {
            cheapest = m.mean_macs;
            chosen = l;
        }
    }
    REQUIRE(chosen >= 0);  // some lambda saves within the goal: no fallback
    REQUIRE_FALSE(c.falls_back_to_full);
    CHECK(c.lambda == chosen);
    CHECK(c.on_calibration.mean_macs == Approx(cheapest).epsilon(1e-12));
    // The returned learner is trained on the whole trace, twice.
    CHECK(c.learned.visit_stats(0).count == 2 * 900);
}

TEST_CASE("apply_rule on the trace the rule was fitted on gives the hindsight rule's exits, on another split it "
          "earns no more than that split's own hindsight rule",
          "[trace][hindsight]") {
    const trace all = labelled_random_trace(1200, 44);
    const trace a = all.slice(0, 600), b = all.slice(600, 600);
    const dee_options o{.lambda = 0.4, .confidence_bins = 4, .streak_bins = 2};
    const auto check = [&](auto reward) {
        using R = decltype(reward);
        const auto fit = hindsight_best<R>(a, o);
        const auto same = apply_rule<R>(fit, a, o);
        CHECK(same.exit_head == fit.exit_head);
        CHECK(same.reward == fit.reward);
        // The rule fitted on a is one rule of the class on b: b's own best does at least as well
        // in expectation; on 600 samples it does here.
        CHECK(apply_rule<R>(fit, b, o).mean_reward() <= hindsight_best<R>(b, o).mean_reward() + 1e-12);
    };
    check(reward::max_prob_reward{});
    check(reward::correctness_reward{});
    CHECK_THROWS_WITH(apply_rule<reward::max_prob_reward>(hindsight_best<reward::max_prob_reward>(a, o), b,
                                                          dee_options{.lambda = 0.4, .confidence_bins = 3}),
                      Contains("apply_rule: the rule has"));
}
