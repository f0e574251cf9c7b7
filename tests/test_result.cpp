#include <catch2/catch.hpp>
#include <earlyexit/result.hpp>

#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include <earlyexit/runner.hpp>

#include "support.hpp"

using namespace earlyexit;

TEST_CASE("exit_result tells an early exit from a final one", "[result]") {
    network_info n;
    n.heads = 3;
    exit_result<float> r;
    r.head = 1;
    CHECK(r.exited_early(n));
    r.head = 2;
    CHECK_FALSE(r.exited_early(n));
    const episode_step<float> step;
    CHECK(step.taken == decision::proceed);
    const episode<double> e;
    CHECK(e.steps.empty());
}

namespace {

// The hand-computed episode tests below use one network:
//
//   positions   0    1    2    3    4        (5 stages)
//   stage MACs  100  200  300  400  500
//   heads            h0   h1        h2       (head k at positions 1, 2, 4)
//   head MACs        10   20        40       (each head declares its own cost)
//
// and a simulated_clock{10 MACs/s, 0.5 s per executed stage or head}, so every time is an exact
// binary fraction: seconds = MACs / 10 + 0.5 * (stages run + heads evaluated).
//
// Logits (3 classes), with their softmax and measures worked out by hand (H = Shannon entropy
// in nats, normalized by ln 3; ln 2 / ln 3 = 0.63092975357...):
//   LA = {ln 2, 0, 0}:   e^z = (2, 1, 1), sum 4   -> p = (1/2, 1/4, 1/4)
//        max_prob 0.5, margin 0.5 - 0.25 = 0.25, top1 0, extremum ln 2 = 0.6931471806
//        H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2  -> 1.5 ln 2 / ln 3 = 0.9463946304
//   LB = {0, ln 6, 0}:   e^z = (1, 6, 1), sum 8   -> p = (1/8, 3/4, 1/8)
//        max_prob 0.75, margin 0.75 - 0.125 = 0.625, top1 1, extremum ln 6 = 1.7917594692
//        H = 2 * 1/8 ln 8 + 3/4 ln(4/3) = 2.25 ln 2 - 0.75 ln 3 -> 2.25 ln 2 / ln 3 - 0.75 = 0.6695919455
//   LC = {0, 0, ln 14}:  e^z = (1, 1, 14), sum 16 -> p = (1/16, 1/16, 7/8)
//        max_prob 0.875, margin 0.875 - 0.0625 = 0.8125, top1 2, extremum ln 14 = 2.6390573296
//        H = 2 * 1/16 ln 16 + 7/8 ln(8/7) = 3.125 ln 2 - 0.875 ln 7 -> / ln 3 = 0.4218171994
//   LN = {NaN, 0, 0}: invalid -> uniform: max_prob 1/3, margin 0, H 1, top1 0, extremum 0, !valid
//
// Sample 0 shows LA, LB, LC at heads 0, 1, 2; sample 1 shows LN, LA, LB.

constexpr float ln2 = 0.69314718056f;
constexpr float ln6 = 1.79175946923f;
constexpr float ln14 = 2.63905732962f;
constexpr float nan = std::numeric_limits<float>::quiet_NaN();

constexpr double eps = 1e-6;  // relative: float logits and float arithmetic, well under 1e-6

earlyexit_test::logit_table hand_table() {
    return {
        {{ln2, 0.f, 0.f}, {0.f, ln6, 0.f}, {0.f, 0.f, ln14}},  // sample 0: LA, LB, LC
        {{nan, 0.f, 0.f}, {ln2, 0.f, 0.f}, {0.f, ln6, 0.f}},   // sample 1: LN, LA, LB
    };
}

using earlyexit_test::scripted_state;

/// The network drawn above: head k outputs table[sample][k]; stages and heads declare the costs.
dynamic_network<scripted_state> hand_network(const earlyexit_test::logit_table& table) {
    const std::vector<double> stage_macs{100, 200, 300, 400, 500};
    const std::vector<std::size_t> positions{1, 2, 4};
    const std::vector<double> head_macs{10, 20, 40};
    dynamic_network_builder<scripted_state> b;
    std::size_t k = 0;
    for (std::size_t p = 0; p < stage_macs.size(); ++p) {
        b.stage([](scripted_state& s) { ++s.stages_run; }, {.macs = stage_macs[p]});
        if (k < positions.size() && positions[k] == p) {
            b.exit(make_head(
                       [&table, k](const scripted_state& s, std::span<float> out) {
                           const auto& row = table[s.sample][k];
                           std::copy(row.begin(), row.end(), out.begin());
                       },
                       3),
                   {.macs = head_macs[k]});
            ++k;
        }
    }
    return b.build();
}

/// What the policy keeps of an episode: an owning copy (the episode itself is a view valid only
/// during update()).
struct episode_record {
    std::vector<episode_step<float>> steps;
    std::vector<std::size_t> decided_at;  // heads decide() was asked at
    std::size_t updates = 0;
    std::size_t sample_index = npos;
    std::optional<std::size_t> label;
    std::size_t network_heads = 0;
    std::optional<sample_outcome> outcome;
};

/// Stops once max_prob >= threshold; after a proceed asks for head + stride. Copies the
/// episode it receives in update() into *record.
struct recording_policy {
    float threshold = 1.0f;
    std::size_t stride = 1;
    episode_record* record = nullptr;

    std::size_t next_check(const exit_context<float>& c) const noexcept { return c.head + stride; }
    decision decide(const exit_context<float>& c) noexcept {
        record->decided_at.push_back(c.head);
        return c.measures.max_prob >= threshold ? decision::stop : decision::proceed;
    }
    void update(const episode<float>& e) noexcept {
        ++record->updates;
        record->steps.assign(e.steps.begin(), e.steps.end());
        record->sample_index = e.sample->index;
        record->label = e.sample->label;
        record->network_heads = e.network->heads;
        record->outcome = outcome_of(*e.result);
    }
};

struct hand_measures {
    double max_prob, margin, entropy, extremum;
    std::size_t top1;
    bool valid;
};

// The hand values above, as literals.
constexpr hand_measures LA{0.5, 0.25, 0.9463946304, 0.6931471806, 0, true};
constexpr hand_measures LB{0.75, 0.625, 0.6695919455, 1.7917594692, 1, true};
constexpr hand_measures LC{0.875, 0.8125, 0.4218171994, 2.6390573296, 2, true};
constexpr hand_measures LN{1.0 / 3.0, 0.0, 1.0, 0.0, 0, false};

void check_step(const episode_step<float>& s, std::size_t head, std::size_t position, const hand_measures& m,
                double macs, double seconds, decision taken) {
    INFO("head " << head);
    CHECK(s.head == head);
    CHECK(s.position == position);
    CHECK(s.measures.max_prob == Approx(m.max_prob).epsilon(eps));
    CHECK(s.measures.margin == Approx(m.margin).epsilon(eps).margin(1e-7));
    CHECK(s.measures.entropy == Approx(m.entropy).epsilon(eps));
    CHECK(s.measures.logit_extremum == Approx(m.extremum).epsilon(eps).margin(1e-7));
    CHECK(s.measures.top1 == m.top1);
    CHECK(s.measures.valid == m.valid);
    CHECK(s.elapsed_macs == macs);        // sums of integers: exact
    CHECK(s.elapsed_seconds == seconds);  // sums of exact binary fractions: exact
    CHECK(s.taken == taken);
}

void check_non_decreasing_seconds(const std::vector<episode_step<float>>& steps) {
    for (std::size_t i = 1; i < steps.size(); ++i) CHECK(steps[i - 1].elapsed_seconds <= steps[i].elapsed_seconds);
}

}  // namespace

TEST_CASE("an episode that evaluates every head and stops at head 1 of 3 has the hand-computed steps",
          "[result][episode]") {
    const auto table = hand_table();
    const auto net = hand_network(table);
    episode_record rec;
    basic_runner runner(net, recording_policy{0.7f, 1, &rec}, simulated_clock{10.0, 0.5});
    scripted_state s{0, 0};
    const auto r = runner.run(s, sample_info{7, 2});

    REQUIRE(rec.updates == 1);
    REQUIRE(rec.steps.size() == 2);
    // head 0 at position 1: stages 0, 1 + head 0 = 100 + 200 + 10 = 310 MACs;
    //   31 s + 0.5 * 3 (2 stages, 1 head) = 32.5 s; LA: 0.5 < 0.7 -> proceed
    check_step(rec.steps[0], 0, 1, LA, 310.0, 32.5, decision::proceed);
    // head 1 at position 2: 310 + stage 2 (300) + head 1 (20) = 630 MACs;
    //   63 s + 0.5 * 5 (3 stages, 2 heads) = 65.5 s; LB: 0.75 >= 0.7 -> stop
    check_step(rec.steps[1], 1, 2, LB, 630.0, 65.5, decision::stop);
    check_non_decreasing_seconds(rec.steps);
    CHECK(rec.decided_at == std::vector<std::size_t>{0, 1});

    // The rest of the record, copied from the episode's pointers.
    CHECK(rec.sample_index == 7);
    CHECK(rec.label == std::optional<std::size_t>(2));
    CHECK(rec.network_heads == 3);
    REQUIRE(rec.outcome.has_value());
    CHECK(*rec.outcome == sample_outcome{1, 1, 3, 2, 65.5, 630.0, std::nullopt});
    CHECK(outcome_of(r) == *rec.outcome);
    CHECK(s.stages_run == 3);  // stages 3, 4 never ran
}

TEST_CASE("an episode that skips a head through next_check excludes the skipped head's cost",
          "[result][episode]") {
    const auto table = hand_table();
    const auto net = hand_network(table);
    episode_record rec;
    // stride 2: after head 0 the policy asks for head 2 (the final head); head 1 is never run.
    basic_runner runner(net, recording_policy{0.9f, 2, &rec}, simulated_clock{10.0, 0.5});
    scripted_state s{0, 0};
    const auto r = runner.run(s, sample_info{3, std::nullopt});

    REQUIRE(rec.steps.size() == 2);
    // head 0 as before: 310 MACs, 32.5 s; LA: 0.5 < 0.9 -> proceed
    check_step(rec.steps[0], 0, 1, LA, 310.0, 32.5, decision::proceed);
    // head 2 at position 4: 310 + stages 2, 3, 4 (300 + 400 + 500) + head 2 (40) = 1550 MACs
    //   (not 1570: head 1's 20 MACs are not spent); 155 s + 0.5 * 7 (5 stages, 2 heads) = 158.5 s;
    //   LC; the final head records stop
    check_step(rec.steps[1], 2, 4, LC, 1550.0, 158.5, decision::stop);
    check_non_decreasing_seconds(rec.steps);
    CHECK(rec.decided_at == std::vector<std::size_t>{0});  // decide() is not asked at the final head
    CHECK(rec.sample_index == 3);
    CHECK_FALSE(rec.label.has_value());
    CHECK(r.macs == 1550.0);
    CHECK(r.seconds == 158.5);
    CHECK(r.heads_evaluated == 2);
    CHECK(r.predicted == 2);
}

TEST_CASE("an episode that reaches the final head records every head, invalid logits included",
          "[result][episode]") {
    const auto table = hand_table();
    const auto net = hand_network(table);
    episode_record rec;
    basic_runner runner(net, recording_policy{0.9f, 1, &rec}, simulated_clock{10.0, 0.5});
    scripted_state s{1, 0};
    const auto r = runner.run(s, sample_info{1, 0});

    REQUIRE(rec.steps.size() == 3);
    // head 0: 310 MACs, 32.5 s; LN (invalid): max_prob 1/3 < 0.9 -> proceed
    check_step(rec.steps[0], 0, 1, LN, 310.0, 32.5, decision::proceed);
    // head 1: 310 + 300 + 20 = 630 MACs, 65.5 s; LA: 0.5 < 0.9 -> proceed
    check_step(rec.steps[1], 1, 2, LA, 630.0, 65.5, decision::proceed);
    // head 2: 630 + stages 3, 4 (400 + 500) + head 2 (40) = 1570 MACs;
    //   157 s + 0.5 * 8 (5 stages, 3 heads) = 161 s; LB (0.75 < 0.9), but the final head stops
    check_step(rec.steps[2], 2, 4, LB, 1570.0, 161.0, decision::stop);
    check_non_decreasing_seconds(rec.steps);
    CHECK(rec.decided_at == std::vector<std::size_t>{0, 1});
    // Every stage once and every head: the plain network (1500 + 40 = 1540) plus heads 0 and 1 (30).
    CHECK(r.macs == 1570.0);
    CHECK(r.macs == runner.info().full_macs + 10.0 + 20.0);
    CHECK(r.predicted == 1);
    CHECK_FALSE(r.exited_early(runner.info()));
    CHECK(*rec.outcome == sample_outcome{1, 2, 5, 3, 161.0, 1570.0, std::nullopt});
}

TEST_CASE("a copied episode record outlives the run, the runner's step buffer does not", "[result][episode]") {
    const auto table = hand_table();
    const auto net = hand_network(table);
    episode_record rec;
    std::vector<episode_record> kept;  // what a policy fed labels later would hold: owning copies
    basic_runner runner(net, recording_policy{0.7f, 1, &rec}, simulated_clock{10.0, 0.5});

    scripted_state s0{0, 0};
    (void)runner.run(s0, sample_info{0, std::nullopt});
    kept.push_back(rec);
    scripted_state s1{1, 0};
    (void)runner.run(s1, sample_info{1, std::nullopt});
    kept.push_back(rec);

    // Sample 0 stopped at head 1 (LB 0.75 >= 0.7); sample 1 never reached 0.7 (LN, LA, then LB at the
    // final head). The first record still holds sample 0's steps after the second run reused the
    // runner's buffer, and the clock's start (t0 = 65.5 s after sample 0) is subtracted out.
    REQUIRE(kept[0].steps.size() == 2);
    check_step(kept[0].steps[0], 0, 1, LA, 310.0, 32.5, decision::proceed);
    check_step(kept[0].steps[1], 1, 2, LB, 630.0, 65.5, decision::stop);
    CHECK(kept[0].sample_index == 0);
    REQUIRE(kept[1].steps.size() == 3);
    check_step(kept[1].steps[0], 0, 1, LN, 310.0, 32.5, decision::proceed);
    // LA at head 1: 0.5 < 0.7 -> proceed; head 2 is final (its LB would have stopped anyway)
    check_step(kept[1].steps[1], 1, 2, LA, 630.0, 65.5, decision::proceed);
    check_step(kept[1].steps[2], 2, 4, LB, 1570.0, 161.0, decision::stop);
    CHECK(kept[1].sample_index == 1);
}
