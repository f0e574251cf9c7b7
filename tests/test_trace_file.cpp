#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/trace/file.hpp>

#include "error_text.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

using earlyexit_test::temp_dir;

trace sample_trace() {
    trace t(trace_layout{3, {1, 3}, {10, 20, 30, 40}, {2, 3}});
    std::mt19937 rng(3);
    std::normal_distribution<float> n;
    for (std::size_t i = 0; i < 7; ++i) {
        std::vector<float> z(6);
        for (auto& v : z) v = n(rng);
        t.add(z, std::vector<double>{0.1, 0.2, 0.3, 0.4 + static_cast<double>(i)}, std::vector<double>{0.01, 0.02},
              i == 4 ? std::nullopt : std::optional<std::size_t>(i % 3));
    }
    t.provenance = {{"dataset", "unit"}, {"model", "toy"}};
    return t;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("a trace survives write then read exactly", "[trace][file]") {
    temp_dir d;
    const auto t = sample_trace();
    write_trace(d.path, t);
    for (const char* f : {"logits.npy", "stage_seconds.npy", "head_seconds.npy", "labels.npy", "trace.json"})
        CHECK(fs::exists(d.path / f));
    const auto r = read_trace(d.path);
    CHECK(r.layout() == t.layout());
    CHECK(r.size() == t.size());
    CHECK(std::equal(r.all_logits().begin(), r.all_logits().end(), t.all_logits().begin(), t.all_logits().end()));
    CHECK(std::equal(r.all_stage_seconds().begin(), r.all_stage_seconds().end(), t.all_stage_seconds().begin()));
    CHECK(std::equal(r.all_head_seconds().begin(), r.all_head_seconds().end(), t.all_head_seconds().begin()));
    CHECK(std::equal(r.all_labels().begin(), r.all_labels().end(), t.all_labels().begin()));
    CHECK_FALSE(r.label(4).has_value());
    CHECK(r.provenance == t.provenance);
    // The arrays are plain NPY with the documented shapes.
    CHECK(npy::read_header(d.path / "logits.npy").shape == std::vector<std::size_t>{7, 2, 3});
    CHECK(npy::read_header(d.path / "labels.npy").type == npy::dtype::int64);
    CHECK(npy::read_header(d.path / "stage_seconds.npy").shape == std::vector<std::size_t>{7, 4});
}

TEST_CASE("double traces round-trip as float64 and refuse to load as float32", "[trace][file]") {
    temp_dir d;
    basic_trace<double> t(trace_layout{2, {0}, {1}, {1}});
    t.add(std::vector<double>{0.125, -3.5}, std::vector<double>{1e-3}, std::vector<double>{1e-4}, 1);
    write_trace(d.path, t);
    const auto r = read_trace<double>(d.path);
    CHECK(r.logits(0, 0)[1] == -3.5);
    CHECK_THROWS_WITH(read_trace<float>(d.path), Contains("logits.npy") && Contains("'<f8'"));
}

TEST_CASE("every truncated trace file is an error, never a crash", "[trace][file][error]") {
    temp_dir d;
    write_trace(d.path, sample_trace());
    for (const char* f : {"logits.npy", "stage_seconds.npy", "head_seconds.npy", "labels.npy", "trace.json"}) {
        const std::string good = read_bytes(d.path / f);
        for (std::size_t len = 0; len < good.size(); len += 1 + len / 8) {
            write_bytes(d.path / f, good.substr(0, len));
            INFO(f << " cut to " << len << " bytes");
            CHECK_THROWS_AS(read_trace(d.path), earlyexit::error);
        }
        write_bytes(d.path / f, good);
    }
    CHECK_NOTHROW(read_trace(d.path));
}

TEST_CASE("inconsistent or corrupt trace files name the problem", "[trace][file][error]") {
    temp_dir d;
    write_trace(d.path, sample_trace());
    const std::string json = read_bytes(d.path / "trace.json");
    auto with_json = [&](const std::string& from, const std::string& to) {
        std::string j = json;
        const auto at = j.find(from);
        REQUIRE(at != std::string::npos);
        j.replace(at, from.size(), to);
        write_bytes(d.path / "trace.json", j);
    };
    with_json("\"samples\": 7", "\"samples\": 8");
    CHECK_THROWS_WITH(read_trace(d.path), Contains("logits.npy") && Contains("does not match trace.json"));
    with_json("\"classes\": 3", "\"classes\": \"three\"");
    CHECK_THROWS_WITH(read_trace(d.path), Contains("key 'classes' has the wrong type"));
    with_json("\"version\": 1", "\"version\": 99");
    CHECK_THROWS_WITH(read_trace(d.path), Contains("version 99 is not supported"));
    with_json("\"format\": \"earlyexit-trace\"", "\"format\": \"other\"");
    CHECK_THROWS_WITH(read_trace(d.path), Contains("format 'other'"));
    with_json("\"heads\": 2", "\"heads\": 3");
    CHECK_THROWS_WITH(read_trace(d.path), Contains("3 heads and 4 stages declared"));
    write_bytes(d.path / "trace.json", "{ not json");
    CHECK_THROWS_WITH(read_trace(d.path), Contains("not valid JSON"));
    write_bytes(d.path / "trace.json", json);

    // A label out of range, a negative time.
    trace bad(trace_layout{3, {0}, {1}, {1}});
    bad.add(std::vector<float>{1, 2, 3}, std::vector<double>{0.5}, std::vector<double>{0.1}, 2);
    write_trace(d.path, bad);
    npy::write<std::int64_t>(d.path / "labels.npy", std::vector<std::int64_t>{7}, std::vector<std::size_t>{1});
    CHECK_THROWS_WITH(read_trace(d.path), Contains("label 7 of sample 0 is out of range [-1, 3)"));
    write_trace(d.path, bad);
    npy::write<double>(d.path / "stage_seconds.npy", std::vector<double>{-1.0}, std::vector<std::size_t>{1, 1});
    CHECK_THROWS_WITH(read_trace(d.path), Contains("entry 0 is -1, not a finite time"));
    CHECK_THROWS_WITH(read_trace(d.path / "missing"), Contains("cannot open"));
}

// Found by tests/fuzz/fuzz_trace: nlohmann's get<std::size_t> cast a float ("samples": 1e30,
// "head_positions": [-1.0]: undefined behaviour) and wrapped a negative ("samples": -1 read as
// 2^64 - 1); whole numbers are now checked for type and range and the key is named.
TEST_CASE("trace.json whole numbers that are floats, negative or out of range name the key", "[trace][file][error]") {
    temp_dir d;
    write_trace(d.path, sample_trace());
    const std::string json = read_bytes(d.path / "trace.json");
    const std::string meta = (d.path / "trace.json").string();
    auto error_with = [&](const std::string& from, const std::string& to) {
        std::string j = json;
        const auto at = j.find(from);
        REQUIRE(at != std::string::npos);
        j.replace(at, from.size(), to);
        write_bytes(d.path / "trace.json", j);
        return earlyexit_test::what_of([&] { (void)read_trace(d.path); });
    };
    CHECK(error_with("\"samples\": 7", "\"samples\": 1e30") ==
          meta + ": key 'samples' has the wrong type (expected a whole number, got 1e+30)");
    CHECK(error_with("\"samples\": 7", "\"samples\": 7.0") ==
          meta + ": key 'samples' has the wrong type (expected a whole number, got 7.0)");
    CHECK(error_with("\"samples\": 7", "\"samples\": -1") ==
          meta + ": key 'samples' is -1, out of range [0, 18446744073709551615]");
    CHECK(error_with("\"classes\": 3", "\"classes\": -1e300") ==
          meta + ": key 'classes' has the wrong type (expected a whole number, got -1e+300)");
    CHECK(error_with("\"version\": 1", "\"version\": 4294967297") ==
          meta + ": key 'version' is 4294967297, out of range [-2147483648, 2147483647]");
    CHECK(error_with("\"head_positions\": [\n    1,", "\"head_positions\": [\n    -1.0,") ==
          meta + ": key 'head_positions[0]' has the wrong type (expected a whole number, got -1.0)");
    CHECK(error_with("\"head_positions\": [\n    1,\n    3\n  ]", "\"head_positions\": [\n    1,\n    -3\n  ]") ==
          meta + ": key 'head_positions[1]' is -3, out of range [0, 18446744073709551615]");
    CHECK(error_with("\"head_positions\": [\n    1,\n    3\n  ]", "\"head_positions\": {}") ==
          meta + ": key 'head_positions' has the wrong type (expected an array of whole numbers, got object)");
    write_bytes(d.path / "trace.json", json);
    CHECK_NOTHROW(read_trace(d.path));
}

TEST_CASE("bytes after trace.json's document are refused", "[trace][file]") {
    temp_dir d;
    write_trace(d.path, sample_trace());
    std::ofstream(d.path / "trace.json", std::ios::binary | std::ios::app) << "{}";
    CHECK_THROWS_WITH(read_trace(d.path), Catch::Matchers::StartsWith((d.path / "trace.json").string() +
                                                                      ": not valid JSON") &&
                                              Contains("end of input"));
}
