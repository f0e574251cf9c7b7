#include <cstddef>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/policy/any_policy.hpp>
#include <earlyexit/policy/static.hpp>
#include <earlyexit/trace/recorder.hpp>
#include <earlyexit/trace/verify.hpp>

#include "support.hpp"

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {

/// A learning policy whose decisions depend on what it has learned: it runs every sample to
/// the final head until it has seen `warmup` samples, then exits at the first head. A copy
/// trained on a stream decides differently from a fresh one on the first `warmup` samples.
struct warms_up {
    std::size_t warmup = 3;
    std::size_t seen = 0;
    [[nodiscard]] decision decide(const exit_context<float>&) const noexcept {
        return seen >= warmup ? decision::stop : decision::proceed;
    }
    void update(const episode<float>&) noexcept { ++seen; }
};

struct fixture {
    earlyexit_test::logit_table table = earlyexit_test::random_table(12, 3, 4, 7);
    earlyexit_test::counters count;
    dynamic_network<earlyexit_test::scripted_state> net = earlyexit_test::scripted_network(5, {1, 3, 4}, table, count);
    std::vector<std::size_t> labels = std::vector<std::size_t>(12, 2);
    earlyexit_test::scripted_state state;
    trace recorded;

    fixture() {
        recorded = record_trace(net, state, table.size(), [&](std::size_t i, earlyexit_test::scripted_state& s) {
            s = {i, 0};
            return std::optional<std::size_t>(labels[i]);
        });
    }
    auto fill() {
        return [this](std::size_t i, earlyexit_test::scripted_state& s) {
            s = {i, 0};
            return std::optional<std::size_t>(labels[i]);
        };
    }
};

}  // namespace

TEST_CASE("live and replay start from the same copy of a learning policy, which stays untouched", "[verify]") {
    fixture f;
    const warms_up learner;
    const auto check = check_live_against_replay(f.net, f.state, f.recorded, learner, f.fill());
    CHECK(check.matches);
    CHECK(check.first_mismatch == npos);
    CHECK(learner.seen == 0);
    REQUIRE(check.live.size() == 12);
    // The first three samples ran to the final head (head 2), the rest stopped at head 0.
    for (std::size_t i = 0; i < 12; ++i) CHECK(check.live[i].head == (i < 3 ? 2u : 0u));
    // The same through any_policy (the demos' case).
    const any_policy<float> erased = warms_up{};
    CHECK(check_live_against_replay(f.net, f.state, f.recorded, erased, f.fill()).matches);
    CHECK(erased.target<warms_up>()->seen == 0);

    // What the demo driver did before: replay into the policy, then run live from it. The live
    // run then starts trained and differs on the first three samples: the check sees that.
    warms_up shared;
    const auto replayed = replay(f.recorded, shared);
    CHECK(shared.seen == 12);
    auto runner = make_runner(f.net, shared);
    std::vector<sample_outcome> live;
    for (std::size_t i = 0; i < 12; ++i) {
        earlyexit_test::scripted_state s{i, 0};
        live.push_back(outcome_of(runner.run(s, {i, f.labels[i]})));
    }
    CHECK_FALSE(same_decisions(live, replayed));
    CHECK(live[0].head == 0);
    CHECK(replayed[0].head == 2);
}

TEST_CASE("a live run that differs from its replay is reported at its first sample", "[verify]") {
    fixture f;
    // The live network's head 0 now says something else for sample 5 than was recorded.
    f.table[5][0] = {0.f, 0.f, 50.f, 0.f};
    f.table[5][1] = {0.f, 0.f, 50.f, 0.f};
    const auto check = check_live_against_replay(f.net, f.state, f.recorded, policy::max_prob{0.99}, f.fill());
    CHECK_FALSE(check.matches);
    CHECK(check.first_mismatch == 5);
}

TEST_CASE("check_live_against_replay refuses another layout and another label", "[verify]") {
    fixture f;
    trace other(trace_layout{4, {1, 3, 4}, {10, 10, 10, 10, 11}, {1, 1, 1}});
    CHECK_THROWS_WITH(check_live_against_replay(f.net, f.state, other, policy::full{}, f.fill()),
                      Contains("the trace: recorded with another network than this one: stage 4 declares 11 MACs "
                               "against 10"));
    f.labels[4] = 1;
    CHECK_THROWS_WITH(check_live_against_replay(f.net, f.state, f.recorded, policy::full{}, f.fill()),
                      Contains("sample 4 has label 1 but the trace recorded 2"));
}
