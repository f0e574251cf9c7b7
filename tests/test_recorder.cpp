#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/trace/recorder.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

TEST_CASE("record_trace stores every head's logits and every stage's time in probe mode", "[trace][recorder]") {
    counters count;
    const auto table = random_table(20, 3, 4, 9);
    const auto net = scripted_network(5, {1, 3, 4}, table, count, {10, 20, 30, 40, 50}, 5.0);
    scripted_state s;
    std::size_t progress_calls = 0;
    const auto t = record_trace(
        net, s, 20,
        [](std::size_t i, scripted_state& st) {
            st = {i, 0};
            return std::optional<std::size_t>(i % 4);
        },
        simulated_clock{10.0}, [&](std::size_t) { ++progress_calls; });
    REQUIRE(t.size() == 20);
    CHECK(progress_calls == 20);
    CHECK(count.head_calls == std::vector<int>{20, 20, 20});  // probe: every head, every sample
    CHECK(count.stage_calls == std::vector<int>(5, 20));
    CHECK(t.layout() == trace_layout::of(net.info()));
    for (std::size_t i = 0; i < 20; ++i) {
        CHECK(t.label(i) == std::optional<std::size_t>(i % 4));
        for (std::size_t k = 0; k < 3; ++k)
            CHECK(std::vector<float>(t.logits(i, k).begin(), t.logits(i, k).end()) == table[i][k]);
        // Simulated clock at 10 MACs/s: stage p takes macs/10 s, each head 5/10 s.
        for (std::size_t p = 0; p < 5; ++p) CHECK(t.stage_seconds(i)[p] == Approx(static_cast<double>(p + 1)));
        for (std::size_t k = 0; k < 3; ++k) CHECK(t.head_seconds(i)[k] == Approx(0.5));
    }
}

TEST_CASE("the recorder rejects runs that skipped heads", "[trace][recorder]") {
    counters count;
    const auto table = random_table(2, 3, 4, 9);
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    trace t(trace_layout::of(net.info()));
    basic_runner runner(net, policy::full{}, simulated_clock{}, trace_recorder<float>(t));
    scripted_state s{0, 0};
    (void)runner.run(s);
    CHECK(runner.observer().rejected() == 1);
    CHECK(t.empty());
}
