#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/report/json.hpp>
#include <earlyexit/trace/metrics.hpp>

#include "error_text.hpp"

using namespace earlyexit;
using nlohmann::json;

using earlyexit_test::what_of;

namespace {

policy_metrics row(std::string name, std::size_t samples = 4) {
    policy_metrics m;
    m.name = std::move(name);
    m.samples = samples;
    return m;
}

std::vector<policy_metrics> sample_rows() {
    policy_metrics full = row("full");
    full.accuracy = 0.75;
    full.mean_stages = 3;
    full.p50_stages = full.p90_stages = full.p99_stages = 3;
    full.mean_heads = 1;
    full.mean_macs = 300;
    full.compute_saving = 0;
    full.mean_seconds = 0.002;
    full.p50_seconds = 0.001953125;  // 2^-9 and 2^-8: exact in ms too
    full.p99_seconds = 0.00390625;
    full.throughput_samples_per_s = 500;
    full.energy_joules = 0.25;
    full.deadline_miss_rate = 0.5;
    full.exit_histogram = {0, 0, 4};
    full.replay_matches_live = true;

    policy_metrics oracle = row("oracle");
    oracle.accuracy = 1.0;
    oracle.mean_stages = 1.5;
    oracle.p50_stages = 1;
    oracle.p90_stages = 3;
    oracle.p99_stages = 3;
    oracle.mean_heads = 1.5;
    oracle.mean_macs = 150;
    oracle.compute_saving = 0.5;
    oracle.mean_seconds = 0.001;
    oracle.exit_histogram = {3, 0, 1};

    policy_metrics unlabelled = row("max_prob 0.9");
    unlabelled.mean_stages = 2;
    unlabelled.compute_saving = 0.25;
    unlabelled.exit_histogram = {1, 2, 1};
    unlabelled.replay_matches_live = false;
    return {full, oracle, unlabelled};
}

std::filesystem::path scratch_dir(const char* name) {
    auto dir = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace

TEST_CASE("result_json: the document's top-level fields", "[report][json]") {
    const auto rows = sample_rows();
    const json j = result_json("cifar10", "resnet18-ee", rows, 0.75);
    CHECK(j.size() == 5);
    CHECK(j.at("dataset") == "cifar10");
    CHECK(j.at("model") == "resnet18-ee");
    CHECK(j.at("samples") == 4);
    CHECK(j.at("final_accuracy") == 0.75);
    REQUIRE(j.at("policies").is_array());
    REQUIRE(j.at("policies").size() == 3);
    CHECK(j["policies"][0]["name"] == "full");
    CHECK(j["policies"][1]["name"] == "oracle");
    CHECK(j["policies"][2]["name"] == "max_prob 0.9");

    CHECK(result_json("d", "m", rows, std::nullopt).at("final_accuracy").is_null());
}

TEST_CASE("result_json: a row's fields, units converted, fractions kept", "[report][json]") {
    const auto rows = sample_rows();
    const json p = result_json("d", "m", rows, 0.75)["policies"][0];
    const json expected = {
        {"name", "full"},
        {"accuracy", 0.75},
        {"mean_stages", 3.0},
        {"p50_stages", 3.0},
        {"p90_stages", 3.0},
        {"p99_stages", 3.0},
        {"mean_heads", 1.0},
        {"mean_macs", 300.0},
        {"compute_saving", 0.0},
        {"wall_ms_per_sample", 2.0},
        {"latency_p50_ms", 1.953125},
        {"latency_p99_ms", 3.90625},
        {"throughput_samples_per_s", 500.0},
        {"energy_mj_per_sample", 250.0},
        {"deadline_miss_rate", 0.5},
        {"replay_matches_live", true},
        {"mean_reward", nullptr},
        {"exit_histogram", {0, 0, 4}},
    };
    CHECK(p == expected);
    auto with_reward = rows;
    with_reward[0].mean_reward = 0.625;
    CHECK(result_json("d", "m", with_reward, 0.75)["policies"][0].at("mean_reward") == 0.625);
    const json o = result_json("d", "m", rows, 0.75)["policies"][1];
    CHECK(o.at("compute_saving") == 0.5);
    CHECK(o.at("wall_ms_per_sample") == 1.0);
    CHECK(o.at("p50_stages") == 1.0);
    CHECK(o.at("exit_histogram") == json({3, 0, 1}));
}

TEST_CASE("result_json: unmeasured values are null, never a number", "[report][json]") {
    const auto rows = sample_rows();
    const json j = result_json("d", "m", rows, 0.75);
    const json& oracle = j["policies"][1];
    CHECK(oracle.at("energy_mj_per_sample").is_null());
    CHECK(oracle.at("deadline_miss_rate").is_null());
    CHECK(oracle.at("replay_matches_live").is_null());
    const json& unlabelled = j["policies"][2];
    CHECK(unlabelled.at("accuracy").is_null());
    CHECK(unlabelled.at("replay_matches_live") == false);
    // Null survives a round trip through text.
    const json back = json::parse(j.dump());
    CHECK(back == j);
    CHECK(back["policies"][2]["accuracy"].is_null());
    CHECK(j.dump().find("\"accuracy\":null") != std::string::npos);
}

TEST_CASE("result_json: full and oracle rows are required", "[report][json]") {
    auto rows = sample_rows();
    const std::vector<policy_metrics> no_full{rows[1], rows[2]};
    const std::vector<policy_metrics> no_oracle{rows[0], rows[2]};
    const std::vector<policy_metrics> neither{rows[2]};
    CHECK(what_of([&] { (void)result_json("d", "m", no_full, {}); }) ==
          "result_json: the rows must include `full` and `oracle` (the baselines every result is read against); "
          "missing: full");
    CHECK(what_of([&] { (void)result_json("d", "m", no_oracle, {}); }).ends_with("missing: oracle"));
    CHECK(what_of([&] { (void)result_json("d", "m", neither, {}); }).ends_with("missing: full, oracle"));
    CHECK(what_of([&] { (void)result_json("d", "m", std::vector<policy_metrics>{}, {}); })
              .ends_with("missing: full, oracle"));
}

TEST_CASE("result_json: every row must cover the same samples", "[report][json]") {
    auto rows = sample_rows();
    rows[2].samples = 5;
    CHECK(what_of([&] { (void)result_json("d", "m", rows, {}); }) ==
          "result_json: row 'max_prob 0.9' covers 5 samples but row 'full' covers 4; every row must be measured on "
          "the same samples");
}

TEST_CASE("write_json: pretty, indent 2, trailing newline, parses back", "[report][json]") {
    const auto dir = scratch_dir("earlyexit_test_report_json");
    const auto path = dir / "result.json";
    const json small = {{"a", 1}, {"b", nullptr}};
    write_json(path, small);
    std::ifstream in(path, std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    CHECK(text == "{\n  \"a\": 1,\n  \"b\": null\n}\n");

    const auto rows = sample_rows();
    const json j = result_json("d", "m", rows, 0.75);
    write_json(path, j);  // replaces the file
    std::ifstream in2(path);
    CHECK(json::parse(in2) == j);
    std::filesystem::remove_all(dir);
}

TEST_CASE("write_json: creates the folder, the error names the path", "[report][json]") {
    const auto dir = scratch_dir("earlyexit_test_report_json_err");
    const auto nested = dir / "no such dir" / "deeper" / "result.json";
    write_json(nested, json::object());
    std::ifstream in(nested);
    CHECK(json::parse(in) == json::object());
    // A regular file where the folder should be: neither the folder nor the file can be made.
    std::ofstream(dir / "blocker") << "x";
    const auto blocked = dir / "blocker" / "result.json";
    const std::string msg = what_of([&] { write_json(blocked, json::object()); });
    CHECK(msg.rfind("write_json: cannot create the folder " + (dir / "blocker").string() + " for " + blocked.string(), 0) == 0);
    // A folder where the file should be.
    std::filesystem::create_directories(dir / "a_folder.json");
    const std::string msg2 = what_of([&] { write_json(dir / "a_folder.json", json::object()); });
    CHECK(msg2 == "write_json: cannot write " + (dir / "a_folder.json").string() + ": rename failed: Is a directory");
    std::filesystem::remove_all(dir);
}
