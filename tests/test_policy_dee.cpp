// policy::dee: hand-computed tables on 2- and 3-head networks, the reward models, late
// feedback, probes, and merging (halves equal the whole; a shared base counted once).
#include <cmath>
#include <cstddef>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

namespace {

const float ln3 = std::log(3.0f), ln9 = std::log(9.0f), ln15 = std::log(1.5f);

/// Runs samples (indices into the table) through a runner with the given policy; returns the exit heads.
template <class Runner>
std::vector<std::size_t> run(Runner& r, std::initializer_list<std::size_t> samples,
                             std::optional<std::size_t> label = std::nullopt) {
    std::vector<std::size_t> exits;
    for (std::size_t i : samples) {
        scripted_state s{i, 0};
        exits.push_back(r.run(s, sample_info{i, label}).head);
    }
    return exits;
}

constexpr double eps = 1e-6;  // the fixed-point sums round targets to 2^-24 (6e-8)

}  // namespace

TEST_CASE("dee on 2 heads: the table after each sample, by hand", "[policy][dee]") {
    // Stages cost 1 and 2 MACs, each head 1: full = 1 + 2 + 1 = 4. Cost fraction at head 0:
    // (1 + 1) / 4 = 0.5; at head 1 after head 0: (1 + 1 + 2 + 1) / 4 = 1.25.
    // Sample 0: head 0 max-prob 3/4 (logits ln 3, 0), head 1 max-prob 9/10 (ln 9, 0).
    // Sample 1: head 0 max-prob 0.9, head 1 max-prob 0.75 (top-1 class 1).
    const logit_table table{{{ln3, 0}, {ln9, 0}}, {{ln9, 0}, {0, ln3}}};
    counters count;
    const auto net = scripted_network(2, {0, 1}, table, count, {1, 2}, 1.0);
    // lambda 0.1: r(head 0) = 0.75 - 0.05 = 0.70 for sample 0, 0.9 - 0.05 = 0.85 for sample 1;
    // r(head 1) = 0.9 - 0.125 = 0.775 for sample 0.
    const auto make = [](double alpha) {
        return policy::dee<>(dee_options{.lambda = 0.1, .alpha = alpha, .confidence_bins = 2});
    };
    auto r = make_runner(net, make(0.0));
    const auto& p = r.policy();
    const std::size_t cell = p.cell_of(0, 0.75, 0.5);
    CHECK(cell == 1);  // bin [0.5, 1] of exit 0, one cost bin
    CHECK(p.cell_of(0, 0.9, 0.5) == cell);
    CHECK(p.cell_of(0, 0.3, 0.5) == 0);

    // Sample 0, empty table: the unvisited cell continues; V(0, 1) = r(head 1) = 0.775.
    CHECK(run(r, {0}) == std::vector<std::size_t>{1});
    CHECK(p.continue_stats(cell).count == 1);
    CHECK(p.continue_stats(cell).mean() == Approx(0.775).margin(eps));
    CHECK(p.visit_stats(0).count == 1);
    // Sample 0 again: 0.775 > 0.70, continue; V stays 0.775 with n = 2.
    CHECK(run(r, {0}) == std::vector<std::size_t>{1});
    CHECK(p.continue_stats(cell).count == 2);
    CHECK(p.continue_stats(cell).mean() == Approx(0.775).margin(eps));
    // Sample 1: stop value 0.85 > 0.775: exit at head 0. An exit at head 0 teaches nothing about
    // continuing there: V unchanged, the visit counted.
    CHECK(run(r, {1}) == std::vector<std::size_t>{0});
    CHECK(p.continue_stats(cell).count == 2);
    CHECK(p.visit_stats(0).count == 3);

    // The exploration bonus at sample 1 (N = 2 visits, n = 2): alpha * sqrt(ln 2 / 2) = 0.5887 alpha.
    // alpha 0.1: 0.775 + 0.0589 = 0.834 < 0.85, stop; alpha 0.2: 0.775 + 0.1177 = 0.893 > 0.85, continue.
    for (const auto& [alpha, expected] : {std::pair{0.1, std::size_t{0}}, std::pair{0.2, std::size_t{1}}}) {
        auto ra = make_runner(net, make(alpha));
        CHECK(run(ra, {0, 0, 1}) == std::vector<std::size_t>{1, 1, expected});
    }
}

TEST_CASE("dee on 3 heads: backward induction and Monte-Carlo targets, by hand", "[policy][dee]") {
    // Three stages of 1 MAC, heads of 1 MAC at every stage: full = 3 + 1 = 4. Cost fractions with
    // every head evaluated: 2/4 = 0.5, 4/4 = 1.0, 6/4 = 1.5. Max-probs 0.6, 0.9, 0.75; lambda 0.1:
    // r = 0.55, 0.80, 0.60.
    const logit_table table{{{ln15, 0}, {ln9, 0}, {ln3, 0}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1, 1, 1}, 1.0);
    const auto make = [](value_target t) {
        return policy::dee<>(dee_options{.lambda = 0.1, .alpha = 0.0, .confidence_bins = 2, .target = t});
    };
    SECTION("backward induction") {
        auto r = make_runner(net, make(value_target::backward_induction));
        const auto& p = r.policy();
        const std::size_t c0 = p.cell_of(0, 0.6, 0.5), c1 = p.cell_of(1, 0.9, 1.0);
        CHECK(c0 == 1);
        CHECK(c1 == 3);
        // First sample: all the way. V(1) = r2 = 0.60; V(0) = max(r1, V(1)) = max(0.80, 0.60) = 0.80.
        CHECK(run(r, {0}) == std::vector<std::size_t>{2});
        CHECK(p.continue_stats(c1).mean() == Approx(0.60).margin(eps));
        CHECK(p.continue_stats(c0).mean() == Approx(0.80).margin(eps));
        // Second: head 0 continues (0.80 > 0.55), head 1 stops (0.60 < 0.80); V(0) gets r1 = 0.80.
        CHECK(run(r, {0}) == std::vector<std::size_t>{1});
        CHECK(p.continue_stats(c0).count == 2);
        CHECK(p.continue_stats(c0).mean() == Approx(0.80).margin(eps));
        CHECK(p.continue_stats(c1).count == 1);
        CHECK(p.visit_stats(0).count == 2);
        CHECK(p.visit_stats(1).count == 2);
    }
    SECTION("Monte-Carlo") {
        auto r = make_runner(net, make(value_target::monte_carlo));
        const auto& p = r.policy();
        const std::size_t c0 = p.cell_of(0, 0.6, 0.5), c1 = p.cell_of(1, 0.9, 1.0);
        // First sample: both cells get the reward where it stopped, r2 = 0.60.
        CHECK(run(r, {0}) == std::vector<std::size_t>{2});
        CHECK(p.continue_stats(c1).mean() == Approx(0.60).margin(eps));
        CHECK(p.continue_stats(c0).mean() == Approx(0.60).margin(eps));
        // Second: 0.60 > 0.55 continue, 0.60 < 0.80 stop; V(0) = (0.60 + 0.80) / 2 = 0.70.
        CHECK(run(r, {0}) == std::vector<std::size_t>{1});
        CHECK(p.continue_stats(c0).mean() == Approx(0.70).margin(eps));
    }
}

TEST_CASE("dee with the agreement reward learns stop values only from samples that reached the final head, by hand",
          "[policy][dee]") {
    // Costs as above (0.5, 1.0, 1.5). Top-1: head 0 says class 0, heads 1 and 2 say class 1.
    const logit_table table{{{ln15, 0}, {0, ln9}, {0, ln3}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1, 1, 1}, 1.0);
    auto r = make_runner(net, policy::dee<reward::agreement_reward>(
                                  dee_options{.lambda = 0.1, .alpha = 0.0, .confidence_bins = 2}));
    const auto& p = r.policy();
    const std::size_t c0 = p.cell_of(0, 0.6, 0.5), c1 = p.cell_of(1, 0.9, 1.0);
    // First sample runs to the final head, which agrees with itself: r2 = 1 - 0.15 = 0.85.
    // Revealed qualities: head 0 disagrees with the final head (0), head 1 agrees (1).
    // V(1) = 0.85; r1 = 1 - 0.1 = 0.9, V(0) = max(0.9, 0.85) = 0.9.
    CHECK(run(r, {0}) == std::vector<std::size_t>{2});
    CHECK(p.stop_stats(c0).mean() == Approx(0.0).margin(eps));
    CHECK(p.stop_stats(c1).mean() == Approx(1.0).margin(eps));
    CHECK(p.continue_stats(c1).mean() == Approx(0.85).margin(eps));
    CHECK(p.continue_stats(c0).mean() == Approx(0.9).margin(eps));
    // Second: head 0 stop estimate 0 - 0.05 < 0.9, continue; head 1: 1 - 0.1 = 0.9 > 0.85, stop.
    // The sample stopped before the final head: no head's agreement with it is revealed (head
    // 0 disagrees with head 1 here, but head 1 is not the reference), so both stop estimates
    // keep their one sample. The exit's reward is head 1's estimate 1 - 0.1 = 0.9, so
    // V(0) = (0.9 + 0.9) / 2.
    CHECK(run(r, {0}) == std::vector<std::size_t>{1});
    CHECK(p.stop_stats(c0).count == 1);
    CHECK(p.stop_stats(c1).count == 1);
    CHECK(p.continue_stats(c0).count == 2);
    CHECK(p.continue_stats(c0).mean() == Approx(0.9).margin(eps));
    CHECK(p.continue_stats(c1).count == 1);
}

TEST_CASE("dee agreement stop values compare with the final head, not the deepest head reached, by hand",
          "[policy][dee]") {
    // Head 0 says class 0, head 1 says class 0, the final head says class 1. A sample that stops
    // at head 1 must not teach that head 0 "agrees" (it agrees with head 1 only).
    const logit_table table{{{ln9, 0}, {ln9, 0}, {0, ln3}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1, 1, 1}, 1.0);
    policy::dee<reward::agreement_reward> d(dee_options{.lambda = 0.0, .alpha = 0.0, .confidence_bins = 1});
    auto r = make_runner(net, d);
    const auto& p = r.policy();
    // Sample 0 runs to the final head: head 0 and head 1 disagree with it (S = 0 for both).
    CHECK(run(r, {0}) == std::vector<std::size_t>{2});
    CHECK(p.stop_stats(p.cell_of(0, 0.9, 0.5)).mean() == Approx(0.0).margin(eps));
    CHECK(p.stop_stats(p.cell_of(0, 0.9, 0.5)).count == 1);
    // Every later sample continues (stop 0 < continue 1 at lambda 0): counts only grow on
    // samples that reach the final head, and the means stay 0.
    CHECK(run(r, {0, 0}) == std::vector<std::size_t>{2, 2});
    CHECK(p.stop_stats(p.cell_of(0, 0.9, 0.5)).count == 3);
    CHECK(p.stop_stats(p.cell_of(0, 0.9, 0.5)).mean() == Approx(0.0).margin(eps));
}

TEST_CASE("dee with a revealed reward backs up the value of the rule it applies, not the label's best, by hand",
          "[policy][dee]") {
    // Costs 0.5 / 1.0 / 1.5 of full. Correctness, lambda 0.1, probes on every sample (full
    // information, as a warm start on a labelled trace runs). Sample B (label 1): heads 0 and 1
    // say class 0 (wrong), the final head class 1. Sample A (label 0): every head says class 0.
    // The final head is right on both: r2 = 1 - 0.15 = 0.85 = V(1).
    const logit_table table{{{ln9, 0}, {ln9, 0}, {ln9, 0}}, {{ln9, 0}, {ln9, 0}, {0, ln9}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1, 1, 1}, 1.0);
    auto r = make_runner(net, policy::dee<reward::correctness_reward>(
                                  dee_options{.lambda = 0.1, .alpha = 0.0, .confidence_bins = 1, .probe_rate = 1.0}));
    const auto& p = r.policy();
    scripted_state b{1, 0}, a{0, 0};
    // B first: S(1) = 0, so at head 1 the rule goes on (0 - 0.1 < 0.85): V(0) gets 0.85.
    (void)r.run(b, sample_info{1, 1});
    CHECK(p.continue_stats(p.cell_of(0, 0.9, 0.5)).mean() == Approx(0.85).margin(eps));
    // A: S(1) = 0.5, stop value 0.4 < V(1) = 0.85: the rule still goes on at head 1, so reaching
    // head 1 is worth V(1) = 0.85, not A's own 1 - 0.1 = 0.9 that only its label reveals. V(0)
    // stays 0.85 (the first build backed up max(0.9, 0.85) and made it 0.875).
    (void)r.run(a, sample_info{0, 0});
    CHECK(p.continue_stats(p.cell_of(0, 0.9, 0.5)).count == 2);
    CHECK(p.continue_stats(p.cell_of(0, 0.9, 0.5)).mean() == Approx(0.85).margin(eps));
    CHECK(p.stop_stats(p.cell_of(1, 0.9, 1.0)).mean() == Approx(0.5).margin(eps));
}

TEST_CASE("dee with a memory follows a change: the stop estimate moves by 1/memory per sample, by hand",
          "[policy][dee]") {
    // 2 heads; correctness; every sample probed. Head 0 is right on the first 4 samples (label
    // 0), then wrong (label 1: the final head says 1). With memory 2 the stop estimate S(0) is 1
    // after the first samples, then 0.5, 0.25: it follows; without memory it falls as 4/5, 4/6.
    const logit_table table{{{ln9, 0}, {ln9, 0}}, {{ln9, 0}, {0, ln9}}};
    counters count;
    const auto net = scripted_network(2, {0, 1}, table, count, {1, 1}, 1.0);
    for (const std::size_t memory : {std::size_t{0}, std::size_t{2}}) {
        auto r = make_runner(net, policy::dee<reward::correctness_reward>(dee_options{
                                      .alpha = 0.0, .confidence_bins = 1, .probe_rate = 1.0, .memory = memory}));
        for (int i = 0; i < 4; ++i) run(r, {0}, std::size_t{0});
        const auto& p = r.policy();
        const std::size_t c = p.cell_of(0, 0.9, 0.67);
        CHECK(p.stop_stats(c).mean() == Approx(1.0).margin(eps));
        run(r, {1}, std::size_t{1});
        CHECK(p.stop_stats(c).mean() == Approx(memory == 0 ? 0.8 : 0.5).margin(eps));
        run(r, {1}, std::size_t{1});
        CHECK(p.stop_stats(c).mean() == Approx(memory == 0 ? 4.0 / 6.0 : 0.25).margin(eps));
    }
}

TEST_CASE("dee streak bins: whether the top-1 agrees with the previous head's changes the decision, by hand",
          "[policy][dee]") {
    // Three heads, costs 0.5 / 1.0 / 1.5 of full (stages 1, heads 1), 3 classes. Sample A
    // (label 0): every head says class 0 (streak 2 at head 1, correct). Sample B (label 1): head
    // 0 says class 2, head 1 class 0 (streak 1 at head 1, wrong), the final head class 1. One
    // confidence bin, so only the streak can tell them apart.
    // What training teaches (lambda 0.2, correctness): the final head is right on both, r2 =
    // 1 - 0.3 = 0.7, so V(1) = 0.7; head 0 is right on A only, S(0) = 0.5, stop value 0.4,
    // V(0) = mean of max(r1, V(1)) = (0.8 + 0.7) / 2 = 0.75: both always continue at head 0.
    const float ln9f = ln9;
    const logit_table table{{{ln9f, 0, 0}, {ln9f, 0, 0}, {ln9f, 0, 0}}, {{0, 0, ln9f}, {ln9f, 0, 0}, {0, ln9f, 0}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1, 1, 1}, 1.0);
    const auto train = [&](std::size_t streak_bins) {
        policy::dee<reward::correctness_reward> d(
            dee_options{.lambda = 0.2, .alpha = 0.0, .confidence_bins = 1, .streak_bins = streak_bins});
        auto r = make_runner(net, d);
        // Both samples run to the final head while their cells are new, which teaches:
        // head 1 stop quality: A 1 (correct), B 0 (wrong); continue value at head 1: 1 - 0.3 = 0.7.
        for (int rep = 0; rep < 3; ++rep) {
            scripted_state a{0, 0}, b{1, 0};
            (void)r.run(a, sample_info{0, 0});
            (void)r.run(b, sample_info{1, 1});
        }
        return r.policy();
    };
    const auto decide_at_head1 = [&](const policy::dee<reward::correctness_reward>& p, std::size_t sample) {
        auto r = make_runner(net, policy::frozen(p));
        scripted_state s{sample, 0};
        return r.run(s, sample_info{sample}).head;
    };
    // One streak bin: head 1's stop estimate mixes A and B, (1 + 0) / 2 - 0.2 = 0.3 < 0.7: both
    // continue to the final head.
    const auto one = train(1);
    CHECK(decide_at_head1(one, 0) == 2);
    CHECK(decide_at_head1(one, 1) == 2);
    // Two streak bins: A's cell (agrees with head 0) has S = 1: 1 - 0.2 = 0.8 > V = 0.7, stop at
    // head 1; B's cell (changed its mind) has S = 0: continue.
    const auto two = train(2);
    CHECK(two.cell_of(1, 0.9, 1.0, 2) != two.cell_of(1, 0.9, 1.0, 1));
    CHECK(two.stop_stats(two.cell_of(1, 0.9, 1.0, 2)).mean() == Approx(1.0).margin(eps));
    CHECK(two.stop_stats(two.cell_of(1, 0.9, 1.0, 1)).mean() == Approx(0.0).margin(eps));
    CHECK(decide_at_head1(two, 0) == 1);
    CHECK(decide_at_head1(two, 1) == 2);
    // Streaks past the last bin share it; patience 0 (invalid logits) counts as 1.
    policy::dee<> three(dee_options{.confidence_bins = 1, .streak_bins = 3});
    three.prepare(net.info());
    CHECK(three.cell_of(0, 0.5, 0.0, 3) == three.cell_of(0, 0.5, 0.0, 7));
    CHECK(three.cell_of(0, 0.5, 0.0, 0) == three.cell_of(0, 0.5, 0.0, 1));
    CHECK(three.cell_of(1, 0.5, 0.0, 2) == 3 + 1);
}

TEST_CASE("dee budget cost bins: the time used against the deadline selects the cell, by hand", "[policy][dee]") {
    // Two cost bins over [0, 1] of the budget. The same head and confidence: a sample at 30% of
    // its deadline and one at 70% fall in different cells; without a deadline the declared cost
    // fraction is used.
    const logit_table table{{{ln9, 0}, {ln9, 0}}};
    counters count;
    const auto net = scripted_network(2, {0, 1}, table, count, {1, 1}, 1.0);
    policy::dee<> d(dee_options{.alpha = 0.0, .confidence_bins = 1, .cost_bins = 2, .cost = cost_context::budget});
    d.prepare(net.info());
    CHECK(d.cell_of(0, 0.9, 0.3) == 0);
    CHECK(d.cell_of(0, 0.9, 0.7) == 1);
    // Learn: with a deadline of 10 s on a simulated clock of 1 MAC/s, head 0 is reached at 2 s
    // (20%, bin 0); with a deadline of 2.5 s at 80% (bin 1).
    auto r = make_runner(net, d, simulated_clock{1.0});
    scripted_state s{0, 0};
    (void)r.run(s, sample_info{0, std::nullopt, 10.0});
    CHECK(r.policy().continue_stats(0).count == 1);
    CHECK(r.policy().continue_stats(1).count == 0);
    s = {0, 0};
    (void)r.run(s, sample_info{0, std::nullopt, 2.5});
    CHECK(r.policy().continue_stats(1).count == 1);
    // No deadline: the declared cost fraction at head 0, (1 + 1) / 3 = 0.67, bin 1.
    auto fresh = make_runner(net, d, simulated_clock{1.0});
    s = {0, 0};
    (void)fresh.run(s, sample_info{0});
    CHECK(fresh.policy().continue_stats(0).count == 0);
    CHECK(fresh.policy().continue_stats(1).count == 1);
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.streak_bins = 0}), Contains("streak_bins 0"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.streak_bins = 65}), Contains("streak_bins 65"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.memory = 2000000000}), Contains("memory 2000000000"));
}

TEST_CASE("dee serving copies keep the learned state with another alpha and probe rate, with_reward carries it over",
          "[policy][dee]") {
    const logit_table table{{{ln9, 0}, {ln9, 0}, {0, ln3}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1, 1, 1}, 1.0);
    auto r = make_runner(net, policy::dee<reward::correctness_reward>(dee_options{.lambda = 0.1, .confidence_bins = 2}));
    run(r, {0, 0, 0}, std::size_t{1});
    const auto& trained = r.policy();
    const auto served = trained.serving(0.0, 0.05);
    CHECK(served.options().memory == 0);
    CHECK(trained.serving(0.0, 0.05, 300).options().memory == 300);
    CHECK(served.options().alpha == 0.0);
    CHECK(served.options().probe_rate == 0.05);
    CHECK(served.table() == trained.table());
    CHECK_THROWS_WITH(trained.serving(-1.0), Contains("alpha -1"));
    CHECK_THROWS_WITH(trained.serving(0.0, 2.0), Contains("probe_rate 2"));
    const auto named = trained.serving({.alpha = 0.1, .probe_rate = 0.05, .memory = 300});  // named arguments
    CHECK(named.options().alpha == 0.1);
    CHECK(named.options().probe_rate == 0.05);
    CHECK(named.options().memory == 300);
    CHECK_THROWS_WITH(trained.serving({.probe_rate = 3.0}), Contains("probe_rate 3"));
    const auto agreeing = served.with_reward<reward::agreement_reward>();
    CHECK(agreeing.table() == served.table());
    CHECK(agreeing.heads() == 3);
    CHECK(agreeing.options() == served.options());
    // Merging what the carried-over learner learns later counts the shared start once.
    auto later = agreeing;
    auto rl = make_runner(net, later);
    run(rl, {0});
    auto merged = agreeing;
    merged.merge(rl.policy());
    CHECK(merged.table() == rl.policy().table());
}

TEST_CASE("dee with the correctness reward: a label fed back later teaches what it would have with the sample",
          "[policy][dee]") {
    const auto table = random_table(40, 3, 4, 11);
    counters count;
    const auto net = scripted_network(4, {1, 2, 3}, table, count);
    const dee_options o{.lambda = 0.2, .alpha = 0.3, .confidence_bins = 4};
    auto with_label = make_runner(net, policy::dee<reward::correctness_reward>(o));
    auto later = make_runner(net, policy::dee<reward::correctness_reward>(o));
    for (std::size_t i = 0; i < table.size(); ++i) {
        const std::size_t y = i % 4;
        scripted_state a{i, 0}, b{i, 0};
        const auto ra = with_label.run(a, sample_info{i, y});
        const auto rb = later.run(b, sample_info{i, std::nullopt});
        CHECK(ra.head == rb.head);  // the label never reaches decide()
        CHECK(later.policy().pending().waiting() == 1);
        CHECK(later.policy().feedback(i, y));
        CHECK(later.policy().pending().waiting() == 0);
        CHECK_FALSE(later.policy().feedback(i, y));  // already fed back
    }
    CHECK(later.policy() == with_label.policy());
    CHECK(later.policy().visit_stats(0).count == 40);

    SECTION("a full ring evicts the oldest held sample") {
        auto p = policy::dee<reward::correctness_reward>(dee_options{.feedback_capacity = 2});
        auto r = make_runner(net, p);
        run(r, {0, 1, 2});  // sample 2 takes sample 0's slot
        CHECK(r.policy().pending().dropped() == 1);
        CHECK_FALSE(r.policy().feedback(0, 1));
        CHECK(r.policy().feedback(1, 1));
        CHECK(r.policy().feedback(2, 1));
    }
}

TEST_CASE("dee probes run a fraction of samples to the final head, chosen by seed and index", "[policy][dee]") {
    const auto table = random_table(2000, 3, 4, 5);
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    // Learned to stop at once: lambda 100 makes every later head worse than stopping.
    const dee_options learned{.lambda = 100.0, .alpha = 0.0, .confidence_bins = 1, .probe_rate = 0.0};
    auto r = make_runner(net, policy::dee<>(learned));
    run(r, {0, 1});
    std::size_t reached_final = 0;
    for (std::size_t i = 0; i < table.size(); ++i) reached_final += run(r, {i})[0] == 2;
    CHECK(reached_final == 0);

    auto o = learned;
    o.probe_rate = 0.25;
    o.seed = 9;
    auto probed = make_runner(net, policy::dee<>(o));
    run(probed, {0, 1});  // warm (these may be probes too)
    std::size_t probes = 0;
    for (std::size_t i = 0; i < table.size(); ++i) probes += run(probed, {i})[0] == 2;
    // 2000 draws at p = 0.25: sd = sqrt(2000 * 0.25 * 0.75) = 19.4; 4 sd = 77.
    CHECK(std::abs(static_cast<double>(probes) - 500.0) < 77.0);
    // The draw depends only on (seed, index): a second pass probes the same samples.
    std::size_t again = 0;
    for (std::size_t i = 0; i < table.size(); ++i) again += run(probed, {i})[0] == 2;
    CHECK(again == probes);
}

TEST_CASE("dee options are checked, naming the bad value", "[policy][dee]") {
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.lambda = -1}), Contains("lambda -1"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.alpha = std::nan("")}), Contains("alpha"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.confidence_bins = 0}), Contains("confidence_bins 0"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.cost_bins = 5000}), Contains("cost_bins 5000"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.max_cost_fraction = 0}), Contains("max_cost_fraction 0"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.probe_rate = 1.5}), Contains("probe_rate 1.5"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.confidence_bins = 3, .confidence_edges = {{0.2}}}),
                      Contains("confidence_edges[0] has 1 edges"));
    CHECK_THROWS_WITH(policy::dee<>(dee_options{.confidence_bins = 3, .confidence_edges = {{0.5, 0.4}}}),
                      Contains("not increasing"));
    // Edges for another number of exits, and a learned state for another network.
    const logit_table table{{{0, 1}, {1, 0}, {0, 1}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    CHECK_THROWS_WITH(make_runner(net, policy::dee<>(dee_options{.confidence_bins = 2, .confidence_edges = {{0.5}}})),
                      Contains("confidence_edges has 1 exits, the network has 2"));
    auto r = make_runner(net, policy::dee<>());
    const logit_table two{{{0, 1}, {1, 0}}};
    counters c2;
    const auto net2 = scripted_network(2, {0, 1}, two, c2);
    CHECK_THROWS_WITH(make_runner(net2, r.policy()), Contains("learned state is for 3 heads, the network has 2"));
}

TEST_CASE("dee with given bin edges bins by them", "[policy][dee]") {
    const logit_table table{{{0, 1}, {1, 0}, {0, 1}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    auto r = make_runner(net, policy::dee<>(dee_options{.confidence_bins = 3, .confidence_edges = {{0.6, 0.8}, {0.9, 0.95}}}));
    const auto& p = r.policy();
    CHECK(p.cell_of(0, 0.59, 0.1) == 0);
    CHECK(p.cell_of(0, 0.6, 0.1) == 1);  // an edge belongs to the bin above it
    CHECK(p.cell_of(0, 0.85, 0.1) == 2);
    CHECK(p.cell_of(1, 0.85, 0.1) == 3);
    CHECK(p.cell_of(1, 0.97, 0.1) == 5);
}

namespace {

/// A labelled random trace of n samples (4 heads, 5 classes).
trace random_trace(std::size_t n, unsigned seed) {
    const auto table = random_table(n, 4, 5, seed);
    counters count;
    const auto net = scripted_network(6, {1, 2, 4, 5}, table, count, {10, 20, 30, 10, 40, 5}, 2.0);
    scripted_state s;
    return record_trace(net, s, n, [&](std::size_t i, scripted_state& st) {
        st = {i, 0};
        return std::optional<std::size_t>(top1(table[i][3]));
    });
}

double max_mean_difference(const learned_table& a, const learned_table& b) {
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i].mean() - b[i].mean()));
    return d;
}

}  // namespace

TEST_CASE("dee merge: two learners on the halves of a stream equal one learner on the whole", "[policy][dee][merge]") {
    // Probes on every sample (probe_rate 1) make the episodes independent of what is learned, so
    // the halves see the same episodes as the whole.
    const trace t = random_trace(600, 3);
    const trace first = t.slice(0, 300), second = t.slice(300, 300);
    for (const auto target : {value_target::monte_carlo, value_target::backward_induction}) {
        const dee_options o{.lambda = 0.3, .confidence_bins = 5, .target = target, .probe_rate = 1.0};
        policy::dee<> whole(o), a(o), b(o);
        (void)replay(t, whole);
        (void)replay(first, a);
        (void)replay(second, b);
        a.merge(b);
        for (std::size_t i = 0; i < a.table().size(); ++i) CHECK(a.table()[i].count == whole.table()[i].count);
        if (target == value_target::monte_carlo) {
            CHECK(a == whole);  // exact: the targets do not depend on the state, and sums are fixed-point
        } else {
            // A backward-induction target uses the learner's current V of the next head, which
            // differs between the halves and the whole while they learn. Stated tolerance: 0.05.
            CHECK(max_mean_difference(a.table(), whole.table()) < 0.05);
            CHECK_FALSE(a == whole);
        }
    }
}

TEST_CASE("dee merge: copies of a pre-trained learner merged back count the shared base once", "[policy][dee][merge]") {
    const trace t = random_trace(900, 4);
    const dee_options o{.lambda = 0.3, .confidence_bins = 5, .target = value_target::monte_carlo, .probe_rate = 1.0};
    policy::dee<> whole(o), base(o);
    (void)replay(t, whole);
    (void)replay(t.slice(0, 300), base);
    policy::dee<> c1 = base, c2 = base;  // per-thread copies
    (void)replay(t.slice(300, 300), c1);
    (void)replay(t.slice(600, 300), c2);
    base.merge(c1);
    base.merge(c2);
    CHECK(base == whole);
    CHECK(base.visit_stats(0).count == 900);

    SECTION("merging into one of the copies works the same") {
        policy::dee<> d1 = c1;  // a copy of c1: base = c1's state, so it adds nothing new
        c1.merge(c2);
        c1.merge(d1);
        CHECK(c1.visit_stats(0).count == 900);
    }
    SECTION("merging a learner copied from a state this one never had is refused") {
        policy::dee<> fresh(o);
        (void)replay(t.slice(0, 10), fresh);
        CHECK_THROWS_WITH(fresh.merge(c1), Contains("copied from a state this learner does not contain"));
    }
    SECTION("other options are refused") {
        policy::dee<> other(dee_options{.lambda = 0.5});
        CHECK_THROWS_WITH(other.merge(c1), Contains("other options"));
    }
    SECTION("reset forgets everything") {
        base.reset();
        CHECK(base.visit_stats(0).count == 0);
        for (const auto& c : base.table().cells()) CHECK(c == running_mean{});
        for (const auto& c : base.table().base()) CHECK(c == running_mean{});
    }
}
