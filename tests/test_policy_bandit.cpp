// policy::ucb_exit and policy::epsilon_greedy (bandit.hpp): hand-computed UCB indices and arm
// means on a 3-head scripted network, single-head pulls, epsilon draws, probes, the three reward
// models (agreement learns only where the final head is reached, so probe_rate 0 is refused;
// correctness through late feedback), merging (halves equal the whole; a shared base counted once) and option checks.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>

#include "error_text.hpp"
#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

namespace {

const float ln3 = std::log(3.0f), ln9 = std::log(9.0f), ln15 = std::log(1.5f);

constexpr double eps = 1e-6;  // fixed-point sums round targets to 2^-24; float softmax to ~1e-7

// The hand network: 4 stages of 1, 2, 1, 3 MACs, heads of 1 MAC at positions 0, 2, 3.
// Full network: 7 + 1 = 8 MACs. Arm cost (stages up to the head's position + that head alone):
//   a0 = (1 + 1) / 8 = 0.25, a1 = (1 + 2 + 1 + 1) / 8 = 0.625, a2 = (7 + 1) / 8 = 1.
const std::vector<std::size_t> positions{0, 2, 3};
const std::vector<double> stage_macs{1, 2, 1, 3};
constexpr double arm_cost[] = {0.25, 0.625, 1.0};

dynamic_network<scripted_state> hand_network(const logit_table& table, counters& count) {
    return scripted_network(4, positions, table, count, stage_macs, 1.0);
}

/// Runs sample `sample` (row of the logit table) as sample index `index`.
template <class Runner>
exit_result<float> run_one(Runner& r, std::size_t sample, std::size_t index,
                           std::optional<std::size_t> label = std::nullopt) {
    scripted_state s{sample, 0};
    return r.run(s, sample_info{index, label});
}

/// Checks that only head `arm` ran, and only the stages up to its position.
void check_single_pull(const counters& count, const exit_result<float>& res, std::size_t arm) {
    CHECK(res.head == arm);
    CHECK(res.heads_evaluated == 1);
    CHECK(res.macs == arm_cost[arm] * 8.0);
    for (std::size_t k = 0; k < 3; ++k) CHECK(count.head_calls[k] == (k == arm ? 1 : 0));
    for (std::size_t p = 0; p < 4; ++p) CHECK(count.stage_calls[p] == (p <= positions[arm] ? 1 : 0));
}

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

}  // namespace

TEST_CASE("ucb_exit pulls every arm once in order, then the largest UCB index, by hand", "[policy][bandit]") {
    // Max-probs 0.6, 0.9, 0.75 (logits ln 1.5, ln 9, ln 3 against 0); lambda 0.4:
    // r0 = 0.6 - 0.4 * 0.25 = 0.5, r1 = 0.9 - 0.4 * 0.625 = 0.65, r2 = 0.75 - 0.4 * 1 = 0.35.
    const logit_table table{{{ln15, 0}, {ln9, 0}, {ln3, 0}}};
    counters count;
    const auto net = hand_network(table, count);
    auto r = make_runner(net, policy::ucb_exit<>(bandit_options{.lambda = 0.4, .alpha = 1.0}));
    const auto& p = r.policy();
    CHECK(p.heads() == 3);
    // alpha 1, index_k = mean_k + sqrt(ln N / n_k):
    //   pull 3: n = (1, 1, 1), N = 3: 0.5 + 1.0481, 0.65 + 1.0481, 0.35 + 1.0481 -> arm 1
    //   pull 4: n = (1, 2, 1), N = 4: 0.5 + 1.1774 = 1.6774, 0.65 + 0.8326 = 1.4826, 0.35 + 1.1774 = 1.5274 -> arm 0
    //   pull 5: n = (2, 2, 1), N = 5: 0.5 + 0.8971 = 1.3971, 0.65 + 0.8971 = 1.5471, 0.35 + 1.2686 = 1.6186 -> arm 2
    //   pull 6: n = (2, 2, 2), N = 6: bonus 0.9465 for all -> arm 1 (1.5965)
    //   pull 7: n = (2, 3, 2), N = 7: 0.5 + 0.9864 = 1.4864, 0.65 + 0.8054 = 1.4554, 0.35 + 0.9864 = 1.3364 -> arm 0
    //   pull 8: n = (3, 3, 2), N = 8: 0.5 + 0.8326 = 1.3326, 0.65 + 0.8326 = 1.4826, 0.35 + 1.0197 = 1.3697 -> arm 1
    //   pull 9: n = (3, 4, 2), N = 9: 0.5 + 0.8559 = 1.3558, 0.65 + 0.7412 = 1.3912, 0.35 + 1.0481 = 1.3981 -> arm 2
    const std::vector<std::size_t> expected{0, 1, 2, 1, 0, 2, 1, 0, 1, 2};
    for (std::size_t t = 0; t < expected.size(); ++t) {
        INFO("pull " << t);
        // The same choice from the formula on the statistics before the pull.
        if (t >= 3) {
            double pulls = 0;
            for (std::size_t k = 0; k < 3; ++k) pulls += static_cast<double>(p.arm_stats(k).count);
            std::size_t best = 0;
            double best_index = -1e300;
            for (std::size_t k = 0; k < 3; ++k) {
                const auto& a = p.arm_stats(k);
                const double index = a.mean() + std::sqrt(std::log(pulls) / static_cast<double>(a.count));
                if (index > best_index) best_index = index, best = k;
            }
            CHECK(best == expected[t]);
        }
        count.clear();
        const auto res = run_one(r, 0, t);
        CHECK(res.head == expected[t]);
        check_single_pull(count, res, expected[t]);
    }
    CHECK(p.arm_stats(0).count == 3);
    CHECK(p.arm_stats(1).count == 4);
    CHECK(p.arm_stats(2).count == 3);
    CHECK(p.arm_stats(0).mean() == Approx(0.5).margin(eps));
    CHECK(p.arm_stats(1).mean() == Approx(0.65).margin(eps));
    CHECK(p.arm_stats(2).mean() == Approx(0.35).margin(eps));

    SECTION("alpha 0 is greedy after the first pulls") {
        auto g = make_runner(net, policy::ucb_exit<>(bandit_options{.lambda = 0.4, .alpha = 0.0}));
        std::vector<std::size_t> arms;
        for (std::size_t t = 0; t < 8; ++t) arms.push_back(run_one(g, 0, t).head);
        CHECK(arms == std::vector<std::size_t>{0, 1, 2, 1, 1, 1, 1, 1});
    }
    SECTION("lambda moves the best arm: lambda 0 prefers the most confident head") {
        auto g = make_runner(net, policy::ucb_exit<>(bandit_options{.lambda = 0.0, .alpha = 0.0}));
        std::vector<std::size_t> arms;
        for (std::size_t t = 0; t < 5; ++t) arms.push_back(run_one(g, 0, t).head);
        CHECK(arms == std::vector<std::size_t>{0, 1, 2, 1, 1});  // 0.9 beats 0.75 and 0.6
        auto h = make_runner(net, policy::ucb_exit<>(bandit_options{.lambda = 2.0, .alpha = 0.0}));
        arms.clear();
        for (std::size_t t = 0; t < 5; ++t) arms.push_back(run_one(h, 0, t).head);
        // 0.6 - 0.5 = 0.1, 0.9 - 1.25 = -0.35, 0.75 - 2 = -1.25: the first exit.
        CHECK(arms == std::vector<std::size_t>{0, 1, 2, 0, 0});
    }
}

TEST_CASE("epsilon_greedy: epsilon 0 is greedy, epsilon 1 uniform, otherwise the coin decides", "[policy][bandit]") {
    const logit_table table{{{ln15, 0}, {ln9, 0}, {ln3, 0}}};
    counters count;
    const auto net = hand_network(table, count);

    SECTION("epsilon 0: every arm once, then the best mean (arm 1, 0.65)") {
        auto r = make_runner(net, policy::epsilon_greedy<>(bandit_options{.lambda = 0.4, .epsilon = 0.0}));
        for (std::size_t t = 0; t < 12; ++t) {
            count.clear();
            const auto res = run_one(r, 0, t);
            check_single_pull(count, res, t < 3 ? t : 1);
        }
        CHECK(r.policy().arm_stats(1).count == 10);
        CHECK(r.policy().arm_stats(1).mean() == Approx(0.65).margin(eps));
    }
    SECTION("epsilon 1: arms drawn uniformly, whatever was learned") {
        const std::uint64_t seed = 0xfeedULL;
        auto r = make_runner(net, policy::epsilon_greedy<>(bandit_options{.lambda = 0.4, .epsilon = 1.0, .seed = seed}));
        constexpr std::size_t n = 3000;
        std::size_t pulls[3] = {0, 0, 0};
        for (std::size_t t = 0; t < n; ++t) {
            const std::size_t arm = run_one(r, 0, t).head;
            // The draw is a function of (seed, index) only: stream 2 picks the arm.
            CHECK(arm == static_cast<std::size_t>(detail::uniform01(seed, t, 2) * 3.0));
            ++pulls[arm];
        }
        // Each arm: n / 3 = 1000 expected, sd = sqrt(n * 1/3 * 2/3) = 25.8; 4 sd = 103.
        for (std::size_t k = 0; k < 3; ++k) {
            INFO("arm " << k);
            CHECK(std::abs(static_cast<double>(pulls[k]) - n / 3.0) < 4.0 * std::sqrt(n * 2.0 / 9.0));
            CHECK(r.policy().arm_stats(k).count == static_cast<std::int64_t>(pulls[k]));
        }
    }
    SECTION("epsilon 0.2: a draw below epsilon (stream 1) explores, every other sample is greedy") {
        const std::uint64_t seed = 5;
        auto r = make_runner(net, policy::epsilon_greedy<>(bandit_options{.lambda = 0.4, .epsilon = 0.2, .seed = seed}));
        std::size_t explored = 0;
        constexpr std::size_t n = 1000;
        for (std::size_t t = 0; t < n; ++t) {
            const auto& p = r.policy();
            std::size_t expected = 0;
            if (detail::uniform01(seed, t, 1) < 0.2) {
                expected = static_cast<std::size_t>(detail::uniform01(seed, t, 2) * 3.0);
                ++explored;
            } else {
                // Greedy: an arm never pulled first (in order), else the best mean.
                std::size_t k0 = 3;
                for (std::size_t k = 0; k < 3; ++k)
                    if (p.arm_stats(k).count == 0) {
                        k0 = k;
                        break;
                    }
                expected = k0 < 3 ? k0 : 1;  // arm 1 has the best mean once all were pulled
            }
            CHECK(run_one(r, 0, t).head == expected);
        }
        // 1000 draws at 0.2: sd 12.6.
        CHECK(std::abs(static_cast<double>(explored) - 200.0) < 4.0 * std::sqrt(n * 0.2 * 0.8));
    }
}

TEST_CASE("bandit probes evaluate every head and update every arm with its own arm cost", "[policy][bandit]") {
    // Sample 0: max-probs 0.6, 0.9, 0.75; sample 1: 0.75, 0.6 (class 1), 0.9.
    const logit_table table{{{ln15, 0}, {ln9, 0}, {ln3, 0}}, {{ln3, 0}, {0, ln15}, {ln9, 0}}};
    counters count;
    const auto net = hand_network(table, count);
    auto r = make_runner(net, policy::ucb_exit<>(bandit_options{.lambda = 0.4, .alpha = 1.0, .probe_rate = 1.0}));
    const auto& p = r.policy();
    for (std::size_t i = 0; i < 2; ++i) {
        count.clear();
        const auto res = run_one(r, i, i);
        CHECK(res.head == 2);
        CHECK(res.heads_evaluated == 3);
        CHECK(res.macs == 7.0 + 3.0);  // every stage and every head: the probe's cost is counted
        for (std::size_t k = 0; k < 3; ++k) CHECK(count.head_calls[k] == 1);
        for (std::size_t k = 0; k < 3; ++k) CHECK(p.arm_stats(k).count == static_cast<std::int64_t>(i + 1));
    }
    // Arm k learns q_k - lambda * a_k with a_k the cost of pulling it alone, not the probe's
    // cumulative cost: arm 0: (0.6 + 0.75) / 2 - 0.1 = 0.575; arm 1: (0.9 + 0.6) / 2 - 0.25 = 0.5;
    // arm 2: (0.75 + 0.9) / 2 - 0.4 = 0.425.
    CHECK(p.arm_stats(0).mean() == Approx(0.575).margin(eps));
    CHECK(p.arm_stats(1).mean() == Approx(0.5).margin(eps));
    CHECK(p.arm_stats(2).mean() == Approx(0.425).margin(eps));

    SECTION("probe_rate 0.25: exactly the samples whose stream-0 draw is below the rate, about a quarter") {
        const std::uint64_t seed = 9;
        auto q = make_runner(net, policy::epsilon_greedy<>(bandit_options{.lambda = 0.4, .epsilon = 0.0,
                                                                          .probe_rate = 0.25, .seed = seed}));
        constexpr std::size_t n = 2000;
        std::size_t probes = 0;
        for (std::size_t t = 0; t < n; ++t) {
            const bool probe = detail::uniform01(seed, t, 0) < 0.25;
            const auto res = run_one(q, t % 2, t);
            CHECK(res.heads_evaluated == (probe ? 3u : 1u));
            probes += probe;
        }
        // sd = sqrt(2000 * 0.25 * 0.75) = 19.4.
        CHECK(std::abs(static_cast<double>(probes) - 500.0) < 4.0 * std::sqrt(n * 0.25 * 0.75));
        // Every probe updated every arm.
        CHECK(q.policy().arm_stats(0).count >= static_cast<std::int64_t>(probes));
        CHECK(q.policy().arm_stats(2).count >= static_cast<std::int64_t>(probes));
    }
}

TEST_CASE("bandit with the agreement reward learns only where the final head is reached", "[policy][bandit]") {
    // Top-1: heads 0 and 1 say class 0, the final head class 1. A probe reveals every arm:
    // arm 0: 0 - 0.1 = -0.1, arm 1: 0 - 0.25 = -0.25, arm 2 (agrees with itself): 1 - 0.4 = 0.6.
    const logit_table table{{{ln15, 0}, {ln9, 0}, {0, ln3}}};
    counters count;
    const auto net = hand_network(table, count);

    SECTION("without probes it would never learn: probe_rate 0 is refused, naming the value") {
        // A pull stops at its arm's head, so only probes reveal whether an early arm agrees
        // with the final head: arm 0 would never count as pulled and stay the next arm forever.
        const std::string why =
            " with the agreement reward never learns: a pull stops at its arm's head, so only probes (samples "
            "run to the final head) reveal whether an arm agrees with it; give probe_rate > 0";
        CHECK(what_of([] { (void)policy::ucb_exit<reward::agreement_reward>(bandit_options{.lambda = 0.4}); }) ==
              "ucb_exit: probe_rate 0" + why);
        CHECK(what_of([] {
                  (void)policy::epsilon_greedy<reward::agreement_reward>(bandit_options{.epsilon = 1, .probe_rate = 0});
              }) == "epsilon_greedy: probe_rate 0" + why);
        // Any probe rate > 0 is accepted, and the other rewards learn without probes.
        CHECK_NOTHROW(policy::ucb_exit<reward::agreement_reward>(bandit_options{.probe_rate = 1e-3}));
        CHECK_NOTHROW(policy::ucb_exit<>(bandit_options{.probe_rate = 0}));
        CHECK_NOTHROW(policy::epsilon_greedy<reward::correctness_reward>(bandit_options{.probe_rate = 0}));
    }
    SECTION("probes teach every arm; a non-probe pull teaches only when it pulled the final head") {
        const std::uint64_t seed = 8;  // samples 0, 1 and 2 are not probes, sample 3 is
        auto r = make_runner(net, policy::ucb_exit<reward::agreement_reward>(
                                      bandit_options{.lambda = 0.4, .alpha = 0.0, .probe_rate = 0.5, .seed = seed}));
        const auto& p = r.policy();
        std::size_t probes = 0, final_pulls = 0, early_pulls = 0;
        for (std::size_t t = 0; t < 200; ++t) {
            const bool probe = detail::uniform01(seed, t, 0) < 0.5;
            std::int64_t before[3];
            for (std::size_t k = 0; k < 3; ++k) before[k] = p.arm_stats(k).count;
            const auto res = run_one(r, 0, t);
            if (probe) {
                ++probes;
                CHECK(res.heads_evaluated == 3);
                for (std::size_t k = 0; k < 3; ++k) CHECK(p.arm_stats(k).count == before[k] + 1);
            } else {
                CHECK(res.heads_evaluated == 1);
                const bool final_head = res.head == 2;
                final_pulls += final_head;
                early_pulls += !final_head;
                for (std::size_t k = 0; k < 3; ++k)
                    CHECK(p.arm_stats(k).count == before[k] + (final_head && k == 2 ? 1 : 0));
            }
        }
        // Both kinds of non-probe pull happened: arm 0 before the first probe, then the greedy arm 2 (0.6).
        CHECK(early_pulls == 3);
        CHECK(final_pulls > 0);
        CHECK(p.arm_stats(0).count == static_cast<std::int64_t>(probes));
        CHECK(p.arm_stats(1).count == static_cast<std::int64_t>(probes));
        CHECK(p.arm_stats(2).count == static_cast<std::int64_t>(probes + final_pulls));
        CHECK(p.arm_stats(0).mean() == Approx(-0.1).margin(eps));
        CHECK(p.arm_stats(1).mean() == Approx(-0.25).margin(eps));
        CHECK(p.arm_stats(2).mean() == Approx(0.6).margin(eps));
    }
}

TEST_CASE("bandit with the correctness reward: by hand, and a label fed back later teaches the same",
          "[policy][bandit]") {
    SECTION("by hand, with probes") {
        // Every head says class 0. Label 0: arm k gets 1 - lambda a_k; label 1: 0 - lambda a_k.
        const logit_table table{{{ln15, 0}, {ln9, 0}, {ln3, 0}}};
        counters count;
        const auto net = hand_network(table, count);
        auto r = make_runner(net, policy::ucb_exit<reward::correctness_reward>(
                                      bandit_options{.lambda = 0.4, .probe_rate = 1.0}));
        (void)run_one(r, 0, 0, std::size_t{0});
        (void)run_one(r, 0, 1, std::size_t{1});
        // Means: arm 0 (0.9 - 0.1) / 2 = 0.4; arm 1 (0.75 - 0.25) / 2 = 0.25; arm 2 (0.6 - 0.4) / 2 = 0.1.
        CHECK(r.policy().arm_stats(0).mean() == Approx(0.4).margin(eps));
        CHECK(r.policy().arm_stats(1).mean() == Approx(0.25).margin(eps));
        CHECK(r.policy().arm_stats(2).mean() == Approx(0.1).margin(eps));
        CHECK(r.policy().pending().waiting() == 0);
    }
    SECTION("late feedback equals the label with the sample") {
        const auto table = random_table(60, 3, 4, 11);
        counters count;
        const auto net = scripted_network(4, {1, 2, 3}, table, count);
        const bandit_options o{.lambda = 0.2, .alpha = 0.3, .epsilon = 0.3, .probe_rate = 0.2, .seed = 3};
        auto with_label = make_runner(net, policy::ucb_exit<reward::correctness_reward>(o));
        auto later = make_runner(net, policy::ucb_exit<reward::correctness_reward>(o));
        auto eg_label = make_runner(net, policy::epsilon_greedy<reward::correctness_reward>(o));
        auto eg_later = make_runner(net, policy::epsilon_greedy<reward::correctness_reward>(o));
        for (std::size_t i = 0; i < table.size(); ++i) {
            const std::size_t y = i % 4;
            CHECK(run_one(with_label, i, i, y).head == run_one(later, i, i).head);
            CHECK(run_one(eg_label, i, i, y).head == run_one(eg_later, i, i).head);
            CHECK(later.policy().pending().waiting() == 1);
            CHECK(later.policy().feedback(i, y));
            CHECK(eg_later.policy().feedback(i, y));
            CHECK(later.policy().pending().waiting() == 0);
            CHECK_FALSE(later.policy().feedback(i, y));  // already fed back
        }
        CHECK(later.policy() == with_label.policy());
        CHECK(eg_later.policy() == eg_label.policy());
        std::int64_t pulls = 0;
        for (std::size_t k = 0; k < 3; ++k) pulls += later.policy().arm_stats(k).count;
        CHECK(pulls >= 60);  // probes teach every arm, other samples one
    }
    SECTION("a full ring evicts the oldest held sample") {
        const logit_table table{{{ln15, 0}, {ln9, 0}, {ln3, 0}}};
        counters count;
        const auto net = hand_network(table, count);
        auto r = make_runner(net, policy::ucb_exit<reward::correctness_reward>(bandit_options{.feedback_capacity = 2}));
        for (std::size_t t = 0; t < 3; ++t) (void)run_one(r, 0, t);  // sample 2 takes sample 0's slot
        CHECK(r.policy().pending().dropped() == 1);
        CHECK(r.policy().pending().waiting() == 2);
        CHECK_FALSE(r.policy().feedback(0, 0));
        CHECK(r.policy().feedback(1, 0));
        CHECK(r.policy().feedback(2, 0));
        // Nothing is learned until a label arrives, so all three samples pulled arm 0 (still unpulled);
        // the two fed back count, sample 0's never will: q = 1 (head 0 says class 0), a0 = 0.25, lambda 0.25.
        CHECK(r.policy().arm_stats(0).count == 2);
        CHECK(r.policy().arm_stats(0).mean() == Approx(1.0 - 0.25 * 0.25).margin(eps));
        CHECK(r.policy().arm_stats(1).count == 0);
        CHECK(r.policy().arm_stats(2).count == 0);
    }
}

TEST_CASE("bandit merge: halves equal the whole, and copies of a pre-trained learner count the base once",
          "[policy][bandit][merge]") {
    // probe_rate 1: every sample evaluates every head, so the episodes do not depend on the state,
    // and a bandit's targets never do: the merge is exact.
    const trace t = random_trace(900, 3);
    const bandit_options o{.lambda = 0.3, .alpha = 0.4, .epsilon = 0.2, .probe_rate = 1.0, .seed = 4};

    SECTION("ucb_exit halves") {
        policy::ucb_exit<> whole(o), a(o), b(o);
        (void)replay(t.slice(0, 600), whole);
        (void)replay(t.slice(0, 300), a);
        (void)replay(t.slice(300, 300), b);
        a.merge(b);
        CHECK(a == whole);
        CHECK(a.arm_stats(0).count == 600);
        // A never-prepared learner adopts the other's shape.
        policy::ucb_exit<> empty(o);
        CHECK(empty.heads() == 0);
        empty.merge(whole);
        CHECK(empty == whole);
        empty.merge(policy::ucb_exit<>(o));  // an empty other adds nothing
        CHECK(empty == whole);
    }
    SECTION("epsilon_greedy halves") {
        policy::epsilon_greedy<> whole(o), a(o), b(o);
        (void)replay(t.slice(0, 600), whole);
        (void)replay(t.slice(0, 300), a);
        (void)replay(t.slice(300, 300), b);
        b.merge(a);  // either way round
        CHECK(b == whole);
    }
    SECTION("pre-trained copies") {
        policy::ucb_exit<> whole(o), base(o);
        (void)replay(t, whole);
        (void)replay(t.slice(0, 300), base);
        policy::ucb_exit<> c1 = base, c2 = base;  // per-thread copies: their base is base's state
        (void)replay(t.slice(300, 300), c1);
        (void)replay(t.slice(600, 300), c2);
        base.merge(c1);
        base.merge(c2);
        CHECK(base == whole);
        CHECK(base.arm_stats(0).count == 900);
        CHECK(base.arm_stats(3).count == 900);

        // A learner that never had the copies' start refuses them.
        policy::ucb_exit<> fresh(o);
        (void)replay(t.slice(0, 10), fresh);
        CHECK_THROWS_WITH(fresh.merge(c1), Contains("ucb_exit::merge: cell 0 of the other learner's base has 300 samples, "
                                                    "more than this learner's 10"));
        CHECK(fresh.arm_stats(0).count == 10);
        // Other options, other networks.
        policy::ucb_exit<> other(bandit_options{.lambda = 0.5, .probe_rate = 1.0});
        (void)replay(t.slice(0, 10), other);
        CHECK(what_of([&] { other.merge(c1); }) == "ucb_exit::merge: the other learner has other options");
        const logit_table small{{{0, 1}, {1, 0}, {0, 1}}};
        counters count;
        const auto net3 = hand_network(small, count);
        auto three = make_runner(net3, policy::ucb_exit<>(o));
        CHECK(what_of([&] { three.policy().merge(c1); }) == "ucb_exit::merge: the other learner is for 4 heads, this one 3");
    }
    SECTION("reset forgets the arms and the pending labels") {
        policy::ucb_exit<> a(o);
        (void)replay(t.slice(0, 50), a);
        a.reset();
        CHECK(a.heads() == 4);
        for (const auto& c : a.table().cells()) CHECK(c == running_mean{});
        for (const auto& c : a.table().base()) CHECK(c == running_mean{});
    }
}

TEST_CASE("bandit options and networks are checked, naming the bad value", "[policy][bandit]") {
    CHECK(what_of([] { (void)policy::ucb_exit<>(bandit_options{.lambda = -1}); }) ==
          "ucb_exit: lambda -1 is out of range [0, 100]");
    CHECK(what_of([] { (void)policy::epsilon_greedy<>(bandit_options{.lambda = 100.5}); }) ==
          "epsilon_greedy: lambda 100.5 is out of range [0, 100]");
    CHECK_THROWS_WITH(policy::ucb_exit<>(bandit_options{.lambda = std::nan("")}), Contains("ucb_exit: lambda nan"));
    CHECK(what_of([] { (void)policy::ucb_exit<>(bandit_options{.alpha = 101}); }) ==
          "ucb_exit: alpha 101 is out of range [0, 100]");
    CHECK(what_of([] { (void)policy::ucb_exit<>(bandit_options{.alpha = -0.5}); }) ==
          "ucb_exit: alpha -0.5 is out of range [0, 100]");
    CHECK(what_of([] { (void)policy::epsilon_greedy<>(bandit_options{.epsilon = 1.5}); }) ==
          "epsilon_greedy: epsilon 1.5 is out of range [0, 1]");
    CHECK(what_of([] { (void)policy::epsilon_greedy<>(bandit_options{.epsilon = -0.1}); }) ==
          "epsilon_greedy: epsilon -0.1 is out of range [0, 1]");
    CHECK(what_of([] { (void)policy::ucb_exit<>(bandit_options{.probe_rate = 2}); }) ==
          "ucb_exit: probe_rate 2 is out of range [0, 1]");
    CHECK(what_of([] { (void)policy::epsilon_greedy<>(bandit_options{.probe_rate = -0.25}); }) ==
          "epsilon_greedy: probe_rate -0.25 is out of range [0, 1]");
    // The ends of every range are accepted.
    CHECK_NOTHROW(policy::ucb_exit<>(bandit_options{.lambda = 0, .alpha = 0, .epsilon = 0, .probe_rate = 0}));
    CHECK_NOTHROW(policy::epsilon_greedy<>(bandit_options{.lambda = 100, .alpha = 100, .epsilon = 1, .probe_rate = 1}));

    // A learned state for another network, and a network without heads.
    const logit_table table{{{ln15, 0}, {ln9, 0}, {ln3, 0}}};
    counters count;
    const auto net = hand_network(table, count);
    auto r = make_runner(net, policy::ucb_exit<>());
    const logit_table two{{{0, 1}, {1, 0}}};
    counters c2;
    const auto net2 = scripted_network(2, {0, 1}, two, c2);
    CHECK(what_of([&] { (void)make_runner(net2, r.policy()); }) ==
          "ucb_exit: the learned state is for 3 heads, the network has 2");
    CHECK(what_of([&] { (void)make_runner(net2, policy::epsilon_greedy<>()); }) == "(no earlyexit::error thrown)");
    policy::epsilon_greedy<> e;
    CHECK(what_of([&] { e.prepare(network_info{}); }) == "epsilon_greedy: the network has no heads");

    // restore() checks the sizes.
    CHECK(what_of([&] { e.restore(0, {}, {}); }) == "epsilon_greedy state: heads must be >= 1");
    CHECK(what_of([&] { e.restore(3, std::vector<running_mean>(2), std::vector<running_mean>(3)); }) ==
          "epsilon_greedy state: cells has 2 entries, expected 3");
    CHECK(what_of([&] { e.restore(3, std::vector<running_mean>(3), std::vector<running_mean>(4)); }) ==
          "epsilon_greedy state: base has 4 entries, expected 3");
    e.restore(3, {running_mean{1, 2}, {}, {}}, std::vector<running_mean>(3));
    CHECK(e.heads() == 3);
    CHECK(e.arm_stats(0) == running_mean{1, 2});
    CHECK(what_of([&] { (void)make_runner(net2, e); }) == "epsilon_greedy: the learned state is for 3 heads, the network has 2");
}
