// learning.hpp: running_mean (exact fixed-point sums), learned_table (copy/move/merge/rebase
// semantics of the base), pending_feedback (the ring of samples waiting for a label),
// detail::uniform01 (the policies' deterministic coin) and the three reward models, on
// hand-made values.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>

#include "error_text.hpp"

using namespace earlyexit;
using earlyexit_test::what_of;
using Catch::Matchers::Contains;

namespace {

constexpr double unit = 1.0 / 16777216.0;  // one fixed-point unit, 2^-24

/// n doubles with full 53-bit mantissas in (-100, 100), of magnitudes 0.01 to 100, from mt19937_64's
/// raw output (standardized, so the values are the same everywhere).
std::vector<double> raw_doubles(std::size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::vector<double> v(n);
    const double scales[] = {0.01, 0.1, 1.0, 10.0, 100.0};
    for (auto& x : v) {
        const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1), 53 bits
        x = (2.0 * u - 1.0) * scales[rng() % 5];
    }
    return v;
}

running_mean mean_of(const std::vector<double>& xs) {
    running_mean m;
    for (double x : xs) m.add(x);
    return m;
}

step_record step(std::size_t head, std::size_t top1, double max_prob, bool valid = true) {
    step_record s;
    s.head = head;
    s.top1 = top1;
    s.max_prob = max_prob;
    s.valid = valid;
    return s;
}

}  // namespace

TEST_CASE("running_mean: count, fixed-point sum, mean and total by hand", "[policy][learning]") {
    running_mean m;
    CHECK(m.count == 0);
    CHECK(m.sum == 0);
    CHECK(m.mean() == 0.0);  // no samples: 0, not NaN
    CHECK(m.total() == 0.0);

    m.add(0.5);
    m.add(0.25);
    m.add(1.0);
    CHECK(m.count == 3);
    CHECK(m.sum == 29360128);  // 1.75 * 2^24
    CHECK(m.total() == 1.75);
    CHECK(m.mean() == 1.75 / 3.0);

    m.add(-0.75);
    CHECK(m.count == 4);
    CHECK(m.total() == 1.0);
    CHECK(m.mean() == 0.25);

    // tick() counts a visit without a target.
    m.tick();
    CHECK(m.count == 5);
    CHECK(m.total() == 1.0);
    CHECK(m.mean() == 0.2);

    // Targets are rounded to the nearest 2^-24: 1e-9 (0.017 units) vanishes, 3e-8 (0.503 units) is one unit,
    // and -3e-8 is minus one (llround rounds half away from zero).
    running_mean r;
    r.add(1e-9);
    CHECK(r.sum == 0);
    r.add(3e-8);
    CHECK(r.sum == 1);
    r.add(-3e-8);
    r.add(-3e-8);
    CHECK(r.sum == -1);
    CHECK(r.count == 4);
    CHECK(r.total() == -unit);

    CHECK(running_mean{2, 5} == running_mean{2, 5});
    CHECK_FALSE(running_mean{2, 5} == running_mean{3, 5});
    CHECK_FALSE(running_mean{2, 5} == running_mean{2, 6});
}

TEST_CASE("running_mean sums are exact: halves add up to the whole and order never matters", "[policy][learning]") {
    SECTION("where double addition depends on the order") {
        // (0.1 + 0.2) + 0.3 and 0.1 + (0.2 + 0.3) differ as doubles.
        const double a = 0.1, b = 0.2, c = 0.3;
        REQUIRE((a + b) + c != a + (b + c));
        running_mean left, right;
        left.add(a), left.add(b), left.add(c);
        right.add(c), right.add(b), right.add(a);
        CHECK(left == right);
        // 1e11 + 1e-6 - 1e11 loses the 1e-6 in doubles (an ulp of 1e11 is 1.5e-5), but not in the
        // other order; the fixed-point sum keeps it (17 units = 1.013e-6) either way.
        const double big = 1e11, tiny = 1e-6;
        REQUIRE((big + tiny) - big == 0.0);
        REQUIRE((big - big) + tiny == tiny);
        running_mean x, y;
        x.add(big), x.add(tiny), x.add(-big);
        y.add(big), y.add(-big), y.add(tiny);
        CHECK(x == y);
        CHECK(x.sum == 17);
        CHECK(x.total() == 17 * unit);
    }
    SECTION("arbitrary doubles: any split and any order") {
        const auto xs = raw_doubles(1000, 42);
        const running_mean whole = mean_of(xs);
        for (const std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{333}, std::size_t{999}, std::size_t{1000}}) {
            const running_mean a = mean_of(std::vector<double>(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(cut)));
            const running_mean b = mean_of(std::vector<double>(xs.begin() + static_cast<std::ptrdiff_t>(cut), xs.end()));
            CHECK(a.count + b.count == whole.count);
            CHECK(a.sum + b.sum == whole.sum);
        }
        auto reversed = xs;
        std::reverse(reversed.begin(), reversed.end());
        auto sorted = xs;
        std::sort(sorted.begin(), sorted.end());
        CHECK(mean_of(reversed) == whole);
        CHECK(mean_of(sorted) == whole);
        // Plain double sums of the same numbers in these orders do not all agree.
        double forward = 0, backward = 0, ascending = 0;
        for (double x : xs) forward += x;
        for (double x : reversed) backward += x;
        for (double x : sorted) ascending += x;
        CHECK((forward != backward || forward != ascending));
        // The exact sum is within 500 units of the double sum: each of the 1000 targets rounds by at most half a unit.
        CHECK(std::abs(whole.total() - forward) < 1000 * unit);
    }
}

TEST_CASE("learned_table: a copy's base is the state at the copy, a move keeps the base", "[policy][learning]") {
    learned_table t(3);
    CHECK(t.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(t.cells()[i] == running_mean{});
        CHECK(t.base()[i] == running_mean{});
    }
    t[0].add(1.0);
    t[1].add(0.5);
    t[1].add(0.5);

    learned_table c = t;  // copy construction
    CHECK(c == t);
    CHECK(std::ranges::equal(c.base(), t.cells()));
    CHECK(t.base()[0] == running_mean{});  // the original's base is untouched
    CHECK(t.base()[1] == running_mean{});

    learned_table assigned(1);
    assigned = t;  // copy assignment: the same rule
    CHECK(assigned.size() == 3);
    CHECK(std::ranges::equal(assigned.base(), t.cells()));

    c[2].add(0.25);  // the copy learns on
    const std::vector<running_mean> c_base(c.base().begin(), c.base().end());
    learned_table moved = std::move(c);  // move construction keeps the base
    CHECK(moved[2] == running_mean{1, 4194304});
    CHECK(std::ranges::equal(moved.base(), c_base));
    CHECK_FALSE(std::ranges::equal(moved.base(), moved.cells()));
    learned_table move_assigned;
    move_assigned = std::move(moved);  // and so does move assignment
    CHECK(std::ranges::equal(move_assigned.base(), c_base));

    // Self-assignment changes nothing (the base is not reset to the state).
    learned_table& alias = t;
    t = alias;
    CHECK(t.base()[0] == running_mean{});
}

TEST_CASE("learned_table::operator== compares the learned cells, never the bases", "[policy][learning]") {
    learned_table a(2);
    a[0].add(0.5);
    const learned_table b = a;  // same cells, base = cells
    REQUIRE_FALSE(std::ranges::equal(a.base(), b.base()));
    CHECK(a == b);
    learned_table c = a;
    c[1].tick();
    CHECK_FALSE(a == c);
    CHECK_FALSE(learned_table(2) == learned_table(3));
}

TEST_CASE("learned_table::merge adds what the other learned since its base, by hand on 3 cells", "[policy][learning]") {
    // The shared start: cell 0 saw 0.25 and 0.75 (count 2, total 1), cell 1 saw 0.5, cell 2 nothing.
    learned_table main_(3);
    main_[0].add(0.25);
    main_[0].add(0.75);
    main_[1].add(0.5);

    learned_table c = main_, d = main_;  // two branches
    const learned_table idle = main_;      // a third copy of the shared start that learns nothing
    c[0].add(0.25);
    c[2].add(1.0);
    c[2].add(-0.5);
    d[1].add(0.75);
    main_[1].add(0.25);  // the original learns on too

    main_.merge(c, "test");
    main_.merge(d, "test");
    // cell 0: 2 + 1 samples, 1.0 + 0.25; cell 1: 1 + 1 (own) + 1 (d), 0.5 + 0.25 + 0.75; cell 2: c's two, 0.5.
    CHECK(main_[0].count == 3);
    CHECK(main_[0].total() == 1.25);
    CHECK(main_[1].count == 3);
    CHECK(main_[1].total() == 1.5);
    CHECK(main_[1].mean() == 0.5);
    CHECK(main_[2].count == 2);
    CHECK(main_[2].total() == 0.5);
    CHECK(main_[2].mean() == 0.25);
    // The merge changes neither this table's base nor the other table.
    for (std::size_t i = 0; i < 3; ++i) CHECK(main_.base()[i] == running_mean{});
    CHECK(c[2].count == 2);

    SECTION("a table learned from empty merges whole") {
        learned_table e(3);
        e[2].add(1.0);
        main_.merge(e, "test");
        CHECK(main_[2].count == 3);
        CHECK(main_[2].total() == 1.5);
    }
    SECTION("merging the same branch twice counts its delta twice (merge is not idempotent)") {
        main_.merge(c, "test");
        // c's delta once more: cell 0 one sample of 0.25, cell 2 two samples totalling 0.5; cell 1 untouched.
        CHECK(main_[0].count == 4);
        CHECK(main_[0].total() == 1.5);
        CHECK(main_[1].count == 3);
        CHECK(main_[1].total() == 1.5);
        CHECK(main_[2].count == 4);
        CHECK(main_[2].total() == 1.0);
        // Rebasing the branch after a merge is what makes a later merge bring only what is new.
        c.rebase();
        main_.merge(c, "test");
        CHECK(main_[2].count == 4);
    }
    SECTION("merging a copy that learned nothing since it was made adds nothing, however often") {
        const learned_table before = main_;
        main_.merge(idle, "test");  // the unchanged copy of the shared start
        main_.merge(idle, "test");
        const learned_table now = main_;  // a copy of the merged result (as parallel_runner::sync hands out)
        main_.merge(now, "test");
        CHECK(std::ranges::equal(main_.cells(), before.cells()));
        for (std::size_t i = 0; i < 3; ++i) CHECK(main_.base()[i] == running_mean{});
    }
}

TEST_CASE("learned_table::merge refuses another size and a base this table does not contain", "[policy][learning]") {
    learned_table two(2), three(3);
    CHECK(what_of([&] { two.merge(three, "who"); }) ==
          "who::merge: the other learner has 3 cells, this one 2 (another configuration)");

    learned_table trained(3);
    trained[1].add(0.5);
    trained[1].add(0.5);
    const learned_table branch = trained;  // base: cell 1 has 2 samples
    learned_table fresh(3);
    fresh[1].add(0.5);  // only one
    CHECK(what_of([&] { fresh.merge(branch, "dee"); }) ==
          "dee::merge: cell 1 of the other learner's base has 2 samples, more than this learner's 1: it was copied "
          "from a state this learner does not contain");
    // A refused merge changes nothing.
    CHECK(fresh[1].count == 1);
    CHECK(fresh[0].count == 0);
}

TEST_CASE("learned_table::rebase makes later merges carry only what comes after, and clear forgets all",
          "[policy][learning]") {
    learned_table origin(2);
    origin[0].add(1.0);
    learned_table branch = origin;
    branch[0].add(0.5);
    origin.merge(branch, "test");  // origin: 2 samples in cell 0, total 1.5
    REQUIRE(origin[0].count == 2);

    // Already merged: rebase the branch so that the next merge brings only what follows.
    branch.rebase();
    CHECK(std::ranges::equal(branch.base(), branch.cells()));
    branch[1].add(0.25);
    origin.merge(branch, "test");
    CHECK(origin[0].count == 2);  // not counted again
    CHECK(origin[0].total() == 1.5);
    CHECK(origin[1].count == 1);
    CHECK(origin[1].total() == 0.25);

    // assign() restores both arrays.
    learned_table restored(2);
    restored.assign({running_mean{3, 7}, running_mean{}}, {running_mean{1, 2}, running_mean{}});
    CHECK(restored[0] == running_mean{3, 7});
    CHECK(restored.base()[0] == running_mean{1, 2});

    origin.clear();
    CHECK(origin.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(origin.cells()[i] == running_mean{});
        CHECK(origin.base()[i] == running_mean{});
    }
    restored.clear();
    CHECK(restored.base()[0] == running_mean{});
}

TEST_CASE("pending_feedback holds, takes and evicts samples in a fixed ring", "[policy][learning]") {
    const std::vector<step_record> a{step(0, 1, 0.5), step(1, 2, 0.6)};
    const std::vector<step_record> b{step(0, 3, 0.7), step(1, 3, 0.8), step(2, 0, 0.9, false)};
    const std::vector<step_record> c{step(2, 4, 0.25)};

    SECTION("capacity 0 refuses everything") {
        pending_feedback p;  // never reserved
        CHECK(p.capacity() == 0);
        CHECK_FALSE(p.hold(0, a));
        CHECK(p.dropped() == 1);
        CHECK(p.waiting() == 0);
        CHECK(p.take(0).empty());
        p.reserve(0, 3);
        CHECK_FALSE(p.hold(1, a));
        CHECK(p.dropped() == 2);
        CHECK(p.take(1).empty());
    }
    SECTION("two slots of up to three steps") {
        pending_feedback p;
        p.reserve(2, 3);
        CHECK(p.capacity() == 2);
        CHECK(p.hold(0, a));  // slot 0
        CHECK(p.hold(1, b));  // slot 1
        CHECK(p.waiting() == 2);
        CHECK(p.dropped() == 0);
        // More steps than a slot holds: refused and counted as dropped, nothing else changes.
        const std::vector<step_record> four(4, step(0, 0, 0.5));
        CHECK_FALSE(p.hold(3, four));
        CHECK(p.dropped() == 1);
        CHECK(p.waiting() == 2);

        const auto got = p.take(1);
        REQUIRE(got.size() == 3);
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(got[i].head == b[i].head);
            CHECK(got[i].top1 == b[i].top1);
            CHECK(got[i].max_prob == b[i].max_prob);
            CHECK(got[i].valid == b[i].valid);
        }
        CHECK(p.waiting() == 1);
        CHECK(p.take(1).empty());  // taken already
        CHECK(p.take(3).empty());  // slot 1 is free, index 3 was never held
        CHECK(p.take(2).empty());  // slot 0 holds sample 0, not 2
        CHECK(p.waiting() == 1);

        // Sample 2 goes to slot 0 and evicts sample 0.
        CHECK(p.hold(2, c));
        CHECK(p.dropped() == 2);
        CHECK(p.waiting() == 1);
        CHECK(p.take(0).empty());
        const auto got2 = p.take(2);
        REQUIRE(got2.size() == 1);
        CHECK(got2[0].head == 2);
        CHECK(got2[0].top1 == 4);
        CHECK(p.waiting() == 0);

        // The ring owns copies: changing the caller's records later does not reach it.
        std::vector<step_record> mine = a;
        CHECK(p.hold(4, mine));
        mine[0].top1 = 99;
        CHECK(p.take(4)[0].top1 == 1);

        CHECK(p.hold(5, a));
        p.clear();
        CHECK(p.waiting() == 0);
        CHECK(p.dropped() == 0);
        CHECK(p.capacity() == 2);
        CHECK(p.take(5).empty());
    }
}

TEST_CASE("uniform01: splitmix64 draws below 1, deterministic, independent across streams and seeds, with uniform moments",
          "[policy][learning]") {
    // splitmix64's reference output: the first value from state 0.
    static_assert(detail::mix64(0) == 0xe220a8397b1dcdafULL);
    static_assert(detail::uniform01(3, 5, 7) == detail::uniform01(3, 5, 7));  // constexpr and pure

    constexpr std::size_t n = 100000;
    double sum = 0, sum_sq = 0;
    std::size_t same_stream = 0, same_seed = 0, same_index = 0, agree_half = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double u = detail::uniform01(11, i, 0);
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        sum += u;
        sum_sq += u * u;
        const double other_stream = detail::uniform01(11, i, 1);
        const double other_seed = detail::uniform01(12, i, 0);
        same_stream += u == other_stream;
        same_seed += u == other_seed;
        same_index += u == detail::uniform01(11, i + 1, 0);
        agree_half += (u < 0.5) == (other_stream < 0.5);
    }
    CHECK(same_stream == 0);
    CHECK(same_seed == 0);
    CHECK(same_index == 0);
    const double mean = sum / n;
    const double variance = sum_sq / n - mean * mean;
    // U(0, 1): mean 1/2, sd of the mean sqrt(1/12 / n); variance 1/12, sd of the sample variance
    // sqrt((E(u - 1/2)^4 - 1/144) / n) = sqrt((1/80 - 1/144) / n) = sqrt(1/180 / n).
    CHECK(std::abs(mean - 0.5) < 4.0 * std::sqrt(1.0 / 12.0 / n));
    CHECK(std::abs(variance - 1.0 / 12.0) < 4.0 * std::sqrt(1.0 / 180.0 / n));
    // Streams are not correlated: the halves agree about half the time (sd sqrt(n / 4)).
    CHECK(std::abs(static_cast<double>(agree_half) - n / 2.0) < 4.0 * std::sqrt(n / 4.0));
    // The largest possible value is 1 - 2^-53, never 1.
    CHECK(static_cast<double>((~std::uint64_t{0}) >> 11) * 0x1.0p-53 < 1.0);
}

TEST_CASE("reward models: names, flags and the concept", "[policy][learning]") {
    static_assert(reward_model<reward::max_prob_reward>);
    static_assert(reward_model<reward::agreement_reward>);
    static_assert(reward_model<reward::correctness_reward>);
    static_assert(!reward_model<int>);
    STATIC_REQUIRE(reward::max_prob_reward::known_at_decision);
    STATIC_REQUIRE_FALSE(reward::max_prob_reward::uses_label);
    STATIC_REQUIRE_FALSE(reward::agreement_reward::known_at_decision);
    STATIC_REQUIRE_FALSE(reward::agreement_reward::uses_label);
    STATIC_REQUIRE_FALSE(reward::correctness_reward::known_at_decision);
    STATIC_REQUIRE(reward::correctness_reward::uses_label);
    CHECK(reward::max_prob_reward::name == "max_prob");
    CHECK(reward::agreement_reward::name == "agreement");
    CHECK(reward::correctness_reward::name == "correctness");
    CHECK(name_of(value_target::backward_induction) == "backward_induction");
    CHECK(name_of(value_target::monte_carlo) == "monte_carlo");
}

TEST_CASE("max_prob_reward: the head's max-prob, 0 for invalid logits", "[policy][learning]") {
    confidence<float> m;
    m.max_prob = 0.75f;
    m.valid = true;
    CHECK(reward::max_prob_reward::quality_now(m) == 0.75);
    m.valid = false;
    CHECK(reward::max_prob_reward::quality_now(m) == 0.0);
    confidence<double> md;
    md.max_prob = 0.3;
    md.valid = true;
    CHECK(reward::max_prob_reward::quality_now(md) == 0.3);

    const std::vector<step_record> s{step(0, 1, 0.6), step(1, 2, 0.9, false), step(2, 2, 0.8)};
    CHECK(reward::max_prob_reward::revealed(s, 0, std::nullopt, 2) == 0.6);
    CHECK(reward::max_prob_reward::revealed(s, 1, std::nullopt, 2) == 0.0);
    CHECK(reward::max_prob_reward::revealed(s, 2, std::size_t{0}, 2) == 0.8);  // the label plays no part
}

TEST_CASE("agreement_reward: agreement with the final head, revealed only when the sample reached it",
          "[policy][learning]") {
    using R = reward::agreement_reward;
    confidence<float> m;
    m.max_prob = 0.9f;
    m.valid = true;
    CHECK(R::quality_now(m) == 0.0);  // never known when deciding

    SECTION("the sample reached the final head") {
        // Heads 0, 1, 2 say 3, 1, 1; head 2 is final.
        const std::vector<step_record> s{step(0, 3, 0.5), step(1, 1, 0.6), step(2, 1, 0.7)};
        CHECK(R::revealed(s, 0, std::nullopt, 2) == 0.0);
        CHECK(R::revealed(s, 1, std::nullopt, 2) == 1.0);
        CHECK(R::revealed(s, 2, std::nullopt, 2) == 1.0);  // the final head agrees with itself
        CHECK(R::revealed(s, 0, std::size_t{3}, 2) == 0.0);  // label-free: a label changes nothing
    }
    SECTION("the sample stopped at a non-final head") {
        // Head 0 agrees with head 1, but head 1 is not the final head: nothing is revealed (the
        // first build compared with the deepest head reached, and credited head 0 with 1 here).
        const std::vector<step_record> s{step(0, 1, 0.5), step(1, 1, 0.6)};
        CHECK(R::revealed(s, 0, std::nullopt, 2) == std::nullopt);
        CHECK(R::revealed(s, 1, std::nullopt, 2) == std::nullopt);
        const std::vector<step_record> one{step(1, 1, 0.6)};  // a bandit's single pull
        CHECK(R::revealed(one, 0, std::nullopt, 2) == std::nullopt);
        const std::vector<step_record> final_only{step(2, 0, 0.6)};
        CHECK(R::revealed(final_only, 0, std::nullopt, 2) == 1.0);
    }
    SECTION("invalid logits") {
        // An invalid step disagrees; an invalid deepest head gives no reference, so nothing is revealed.
        const std::vector<step_record> s{step(0, 1, 0.5, false), step(1, 1, 0.6), step(2, 1, 0.7)};
        CHECK(R::revealed(s, 0, std::nullopt, 2) == 0.0);
        CHECK(R::revealed(s, 1, std::nullopt, 2) == 1.0);
        const std::vector<step_record> t{step(0, 1, 0.5), step(1, 1, 0.6), step(2, 1, 0.7, false)};
        CHECK(R::revealed(t, 0, std::nullopt, 2) == std::nullopt);
        CHECK(R::revealed(t, 1, std::nullopt, 2) == std::nullopt);
        CHECK(R::revealed(t, 2, std::nullopt, 2) == std::nullopt);
    }
}

TEST_CASE("correctness_reward: 1 when the top-1 is the label, nothing without a label", "[policy][learning]") {
    using R = reward::correctness_reward;
    confidence<float> m;
    m.max_prob = 0.9f;
    m.valid = true;
    CHECK(R::quality_now(m) == 0.0);
    const std::vector<step_record> s{step(0, 2, 0.5), step(1, 1, 0.6), step(2, 2, 0.7, false)};
    for (std::size_t i = 0; i < s.size(); ++i) CHECK(R::revealed(s, i, std::nullopt, 2) == std::nullopt);
    CHECK(R::revealed(s, 0, std::size_t{2}, 2) == 1.0);
    CHECK(R::revealed(s, 1, std::size_t{2}, 2) == 0.0);
    CHECK(R::revealed(s, 2, std::size_t{2}, 2) == 0.0);  // right class, invalid logits
    CHECK(R::revealed(s, 1, std::size_t{1}, 2) == 1.0);
    // A non-final deepest head is revealed too (unlike agreement): the label is the reference.
    const std::vector<step_record> early{step(0, 4, 0.5)};
    CHECK(R::revealed(early, 0, std::size_t{4}, 2) == 1.0);
}

TEST_CASE("running_mean::add with a memory: a moving average once the count reaches the cap, by hand",
          "[policy][learning]") {
    running_mean m;
    m.add(1.0, 2);
    m.add(1.0, 2);
    CHECK(m.count == 2);
    CHECK(m.mean() == 1.0);
    // Full: one average sample (1) is forgotten, then 0 is added: mean 1 + (0 - 1) / 2 = 0.5.
    m.add(0.0, 2);
    CHECK(m.count == 2);
    CHECK(m.mean() == 0.5);
    m.add(0.0, 2);  // 0.5 + (0 - 0.5) / 2
    CHECK(m.mean() == 0.25);
    // cap 0: the plain running mean.
    running_mean all;
    for (const double x : {1.0, 1.0, 0.0, 0.0}) all.add(x, 0);
    CHECK(all.count == 4);
    CHECK(all.mean() == 0.5);
}

TEST_CASE("running_mean and learned_table saturate instead of wrapping: huge, infinite and NaN targets",
          "[policy][learning][saturation]") {
    constexpr auto max = std::numeric_limits<std::int64_t>::max(), min = std::numeric_limits<std::int64_t>::min();
    const double inf = std::numeric_limits<double>::infinity();
    // A target is clamped to +-2^38 reward units (2^62 fixed-point units); NaN adds 0.
    running_mean m;
    m.add(1e300);
    CHECK(m.sum == std::int64_t{1} << 62);
    m.add(-inf);
    CHECK(m.sum == 0);
    m.add(std::numeric_limits<double>::quiet_NaN());
    CHECK(m.count == 3);
    CHECK(m.sum == 0);
    // Two clamped targets reach 2^63: the sum holds at the limit, and stays there.
    running_mean up;
    for (int i = 0; i < 3; ++i) up.add(inf);
    CHECK(up.sum == max);
    CHECK(up.mean() > 0.0);
    running_mean down;
    for (int i = 0; i < 3; ++i) down.add(-1e30);
    CHECK(down.sum == min);
    CHECK(down.mean() < 0.0);
    down.add(1.0);  // adds normally again below the limit
    CHECK(down.sum == min + (std::int64_t{1} << 24));
    // The count holds at its limit too.
    running_mean full;
    full.count = max;
    full.add(1.0);
    full.tick();
    CHECK(full.count == max);
    CHECK(running_mean::saturating_add(max, max) == max);
    CHECK(running_mean::saturating_add(min, min) == min);
    CHECK(running_mean::saturating_add(max, min) == -1);
    // Merging saturated learners holds at the limits as well.
    learned_table a(1), b(1);
    a[0] = up;
    learned_table copy = b;  // base: empty
    copy[0] = up;
    a.merge(copy, "test");
    CHECK(a[0].sum == max);
    CHECK(a[0].count == 6);
    learned_table c(1);
    c[0] = down;
    learned_table d = learned_table(1);
    learned_table dc = d;
    dc[0] = down;
    dc[0].sum = min;
    c.merge(dc, "test");
    CHECK(c[0].sum == min);
}
