// The demo driver's live-and-replayed step, with a learning policy: both runs must start from
// the same state (before, the replay trained the policy the live run then started from).
#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/demo_driver.hpp"
#include "error_text.hpp"
#include "support.hpp"

using namespace earlyexit;

namespace {

/// Runs every sample to the final head until it has learned from `warmup` samples, then exits
/// at the first head: a trained copy and a fresh one decide differently.
struct warms_up {
    std::size_t warmup = 4;
    std::size_t seen = 0;
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "warms_up"; }
    [[nodiscard]] decision decide(const exit_context<float>&) const noexcept {
        return seen >= warmup ? decision::stop : decision::proceed;
    }
    void update(const episode<float>&) noexcept { ++seen; }
};

}  // namespace

TEST_CASE("run_live_and_replayed: a learning policy matches its replay and is left untouched", "[demo_driver]") {
    const auto table = earlyexit_test::random_table(10, 3, 4, 11);
    earlyexit_test::counters count;
    const auto net = earlyexit_test::scripted_network(4, {0, 2, 3}, table, count);
    earlyexit_test::scripted_state state;
    const auto fill = [](std::size_t i, earlyexit_test::scripted_state& s) {
        s = {i, 0};
        return std::optional<std::size_t>(i % 4);
    };
    const trace test = record_trace(net, state, table.size(), fill);
    const std::vector<named_policy<float>> policies{{"full", policy::full{}}, {"learner", warms_up{}}};
    const auto rows = demo::run_live_and_replayed(net, state, test, policies, fill);
    REQUIRE(rows.size() == 2);
    CHECK(rows[1].name == "learner");
    CHECK(*rows[1].replay_matches_live);
    CHECK(*rows[0].replay_matches_live);
    // Four samples ran to the final head (head 2), six stopped at head 0.
    CHECK(rows[1].exit_histogram == std::vector<std::size_t>{6, 0, 4});
    CHECK(policies[1].policy.target<warms_up>()->seen == 0);
}

TEST_CASE("run_live_and_replayed: DEE and the bandits, learning online, match their replays", "[demo_driver]") {
    const auto table = earlyexit_test::random_table(200, 3, 4, 12);
    earlyexit_test::counters count;
    const auto net = earlyexit_test::scripted_network(4, {0, 2, 3}, table, count);
    earlyexit_test::scripted_state state;
    const auto fill = [](std::size_t i, earlyexit_test::scripted_state& s) {
        s = {i, 0};
        return std::optional<std::size_t>(i % 4);
    };
    const trace test = record_trace(net, state, table.size(), fill);
    const std::vector<named_policy<float>> policies{
        {"dee", policy::dee<>(dee_options{.lambda = 0.3})},
        {"dee_agreement", policy::dee<reward::agreement_reward>(dee_options{.lambda = 0.3, .probe_rate = 0.1})},
        {"ucb_exit", policy::ucb_exit<>(bandit_options{.lambda = 0.3})},
        {"epsilon_greedy", policy::epsilon_greedy<>(bandit_options{.lambda = 0.3})}};
    std::vector<std::vector<sample_outcome>> live;
    const auto rows = demo::run_live_and_replayed(net, state, test, policies, fill, &live);
    REQUIRE(rows.size() == 4);
    REQUIRE(live.size() == 4);
    for (std::size_t j = 0; j < rows.size(); ++j) {
        INFO(rows[j].name);
        CHECK(*rows[j].replay_matches_live);
        CHECK(live[j].size() == 200);
    }
    // DEE learned something: it does not run every sample to the final head.
    CHECK(rows[0].exit_histogram[2] < 200);
    // The given policies are left as they were: empty tables.
    CHECK(policies[0].policy.target<policy::dee<>>()->heads() == 0);
}

TEST_CASE("strip_absolute_paths cuts every absolute path in a JSON to its last component", "[demo_driver]") {
    nlohmann::json j = {{"blas", "OpenBLAS (/usr/lib/x86_64-linux-gnu/libopenblasp-r0.3.21.so)"},
                        {"model", "/home/someone/models/net.safetensors"},
                        {"relative", "models/net.safetensors"},
                        {"ratio", "3/4 of it"},
                        {"rows", {{{"note", "read from '/tmp/x/a.json' twice"}}, 7}},
                        {"count", 3}};
    earlyexit::demo::strip_absolute_paths(j);
    CHECK(j["blas"] == "OpenBLAS (libopenblasp-r0.3.21.so)");
    CHECK(j["model"] == "net.safetensors");
    CHECK(j["relative"] == "models/net.safetensors");
    CHECK(j["ratio"] == "3/4 of it");
    CHECK(j["rows"][0]["note"] == "read from 'a.json' twice");
    CHECK(j["rows"][1] == 7);
    CHECK(j["count"] == 3);
}

TEST_CASE("check_demo_flags refuses the NaN and infinite values CLI11's range checks let through (fuzz_demo_cli)",
          "[demo_driver]") {
    // The demos' order: CLI11 parses (add_demo_flags), then check_demo_flags.
    const auto parse = [](std::vector<std::string> args) {
        demo::demo_options o;
        CLI::App app{"t"};
        demo::add_demo_flags(app, o);
        std::reverse(args.begin(), args.end());  // CLI11 takes a vector last word first
        app.parse(args);
        demo::check_demo_flags(o);
    };
    CHECK(earlyexit_test::what_of([&] { parse({"--max-loss", "nan"}); }) == "--max-loss nan: must be a number in [0, 100]");
    CHECK(earlyexit_test::what_of([&] { parse({"--calibration-margin", "nan"}); }) ==
          "--calibration-margin nan: must be a number in [0, 100]");
    CHECK(earlyexit_test::what_of([&] { parse({"--deadline-ms", "nan"}); }) ==
          "--deadline-ms nan: must be a finite positive number of milliseconds");
    // CLI11 still refuses what it checks (inf included), and good values pass.
    CHECK_THROWS_AS(parse({"--deadline-ms", "inf"}), CLI::ValidationError);
    CHECK_THROWS_AS(parse({"--max-loss", "101"}), CLI::ValidationError);
    CHECK_NOTHROW(parse({"--max-loss", "1", "--calibration-margin", "0.5", "--deadline-ms", "2.5", "--backend", "eigen"}));
    // Batch sizes and thread counts are bounded before anything is sized by them (fuzz_demo_cli).
    using Catch::Matchers::Contains;
    CHECK_THROWS_WITH(parse({"--batch", "1000000000000"}), Contains("--batch: Value 1000000000000 not in range 1 to 1024"));
    CHECK_THROWS_WITH(parse({"--threads", "1025"}), Contains("--threads: Value 1025 not in range 1 to 1024"));
    CHECK_THROWS_WITH(parse({"--throughput-batches", "1,8,5000"}), Contains("Value 5000 not in range 1 to 1024"));
    CHECK_THROWS_WITH(parse({"--throughput-threads", "0"}), Contains("Value 0 not in range 1 to 1024"));
    CHECK_NOTHROW(parse({"--batch", "1024", "--threads", "1024", "--throughput-batches", "1,1024"}));
}
