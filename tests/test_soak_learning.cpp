// Soak: every learning policy (DEE with each reward, DEE serving with a memory, the two bandits)
// replays a long stream of samples (a recorded trace, over and over: by default 2 x 10^5 samples per
// policy; EARLYEXIT_SOAK_SAMPLES=10000000 for the figures of docs/reliability.md) and shows:
//   - bounded memory: after the first pass over the trace, not one heap allocation;
//   - no drift of the learned state beyond its counters' range: every cell's count is at most the
//     samples seen (at most the memory, with one), its fixed-point sum within count x the largest
//     reward, its mean a finite number in the rewards' range; and on this stationary stream the
//     means at the end differ from those at a tenth of the run by less than 0.02;
//   - the state still saves and loads exactly (policy/state_file.hpp) after the soak.
// The fixed-point saturation itself is tested in test_policy_learning.cpp.
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/io.hpp>
#include <fmt/core.h>

#include "counting_new.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;

namespace {

/// Samples per policy: EARLYEXIT_SOAK_SAMPLES, else 2 x 10^5 (CI).
std::size_t soak_samples() {
    if (const char* s = std::getenv("EARLYEXIT_SOAK_SAMPLES")) {
        const long long v = std::atoll(s);
        REQUIRE(v >= 10000);
        return static_cast<std::size_t>(v);
    }
    return 200000;
}

/// 4 heads over 4 stages, 10 classes, 2000 samples: head k is right more often as k grows and
/// more confident when right (a stationary stream).
trace stream_trace() {
    constexpr std::size_t classes = 10, heads = 4, samples = 2000;
    trace t(trace_layout{classes, {0, 1, 2, 3}, {1, 1, 1, 1}, {0.05, 0.05, 0.05, 0.05}});
    std::mt19937 rng(20261207);
    std::normal_distribution<float> noise;
    std::uniform_int_distribution<std::size_t> cls(0, classes - 1);
    std::vector<float> logits(classes * heads);
    for (std::size_t i = 0; i < samples; ++i) {
        const std::size_t y = cls(rng);
        const float ease = std::abs(noise(rng));  // some samples are easy at every head
        for (std::size_t k = 0; k < heads; ++k)
            for (std::size_t c = 0; c < classes; ++c)
                logits[k * classes + c] = noise(rng) + (c == y ? (0.8f + 1.2f * static_cast<float>(k)) * ease : 0.0f);
        t.add(logits, std::vector<double>{1e-3, 1e-3, 1e-3, 1e-3}, std::vector<double>{1e-4, 1e-4, 1e-4, 1e-4}, y);
    }
    return t;
}

struct soak_result {
    std::size_t samples = 0;
    long allocations_after_first_pass = 0;
    double seconds = 0;
    learned_table at_tenth, at_end;
};

/// Replays the trace over and over through one replayer (the policy learns throughout).
template <class Policy>
soak_result soak(const trace& t, Policy policy, std::size_t samples) {
    replayer<float, Policy> r(t, std::move(policy));
    soak_result out;
    out.samples = samples;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < t.size(); ++i) (void)r.run(i);  // the first pass: buffers sized
    const long before = earlyexit_test::allocations.load();
    for (std::size_t i = t.size(); i < samples; ++i) {
        (void)r.run(i % t.size());
        if (i + 1 == samples / 10) {
            const long paused = earlyexit_test::allocations.load();
            out.at_tenth = r.policy().table();  // a copy: its allocations are not the policy's
            earlyexit_test::allocations -= earlyexit_test::allocations.load() - paused;
        }
    }
    out.allocations_after_first_pass = earlyexit_test::allocations.load() - before;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.at_end = r.policy().table();
    return out;
}

/// The checks of the file comment on one policy's soak.
void check_state(const soak_result& s, std::int64_t memory, double max_reward) {
    CHECK(s.allocations_after_first_pass == 0);
    REQUIRE(s.at_end.size() == s.at_tenth.size());
    std::size_t learned = 0;
    double worst_drift = 0;
    for (std::size_t i = 0; i < s.at_end.size(); ++i) {
        const running_mean& m = s.at_end[i];
        CHECK(m.count >= 0);
        CHECK(m.count <= static_cast<std::int64_t>(s.samples));
        // With a memory, the stop and continue cells hold at most that many samples (DEE's table
        // ends with one visit counter per exit, 3 here, which count every visit).
        if (memory > 0 && i + 3 < s.at_end.size()) CHECK(m.count <= memory);
        CHECK(std::abs(static_cast<double>(m.sum)) <= static_cast<double>(m.count) * max_reward * running_mean::scale + 1.0);
        CHECK(std::isfinite(m.mean()));
        CHECK(std::abs(m.mean()) <= max_reward);
        if (m.count >= 10000 && s.at_tenth[i].count >= 1000) {
            ++learned;
            worst_drift = std::max(worst_drift, std::abs(m.mean() - s.at_tenth[i].mean()));
        }
    }
    INFO(learned << " cells with enough samples; the largest change of a mean from a tenth of the run to its end: "
                 << worst_drift);
    CHECK(learned > 0);
    CHECK(worst_drift < 0.02);
}

template <class Policy>
void soak_and_check(const std::string& name, const trace& t, Policy policy, std::int64_t memory, double max_reward) {
    const std::size_t n = soak_samples();
    const auto s = soak(t, std::move(policy), n);
    fmt::print("soak {:<28} {:>10} samples in {:6.1f} s ({:.2f} us each), {} allocations after the first pass\n",
               name, s.samples, s.seconds, 1e6 * s.seconds / static_cast<double>(s.samples),
               s.allocations_after_first_pass);
    INFO(name);
    check_state(s, memory, max_reward);
}

}  // namespace

TEST_CASE("soak: every learning policy replays a long stream with bounded memory and no drift", "[soak]") {
    const trace t = stream_trace();
    // Rewards: quality in [0, 1] less lambda (0.25) x cost (at most the whole network, 1).
    constexpr double max_reward = 1.25;
    soak_and_check("dee (max_prob reward)", t, policy::dee<>(dee_options{}), 0, max_reward);
    soak_and_check("dee (correctness reward)", t, policy::dee<reward::correctness_reward>(dee_options{}), 0,
                   max_reward);
    soak_and_check("dee (agreement, probes)", t,
                   policy::dee<reward::agreement_reward>(dee_options{.probe_rate = 0.05, .seed = 3}), 0, max_reward);
    soak_and_check("dee serving (memory 300)", t, policy::dee<>(dee_options{}).serving({.alpha = 0, .memory = 300}),
                   300, max_reward);
    soak_and_check("ucb_exit", t, policy::ucb_exit<>(bandit_options{}), 0, max_reward);
    soak_and_check("epsilon_greedy", t, policy::epsilon_greedy<>(bandit_options{.seed = 5}), 0, max_reward);
}

TEST_CASE("soak: the learned state after a long run saves and loads exactly", "[soak]") {
    const trace t = stream_trace();
    replayer<float, policy::dee<>> r(t, policy::dee<>(dee_options{}));
    for (std::size_t i = 0; i < 20 * t.size(); ++i) (void)r.run(i % t.size());
    earlyexit_test::temp_dir d;
    save_policy_state(d / "dee.json", r.policy());
    const auto back = load_policy_state<policy::dee<>>(d / "dee.json");
    CHECK(back.table() == r.policy().table());
}
