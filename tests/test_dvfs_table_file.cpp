// dvfs/table_file.hpp: a frequency table survives a write/read round trip, every malformed
// field is refused naming the file and the field, and every shipped table in data/dvfs/ loads,
// validates, states the origin of each model parameter and has the known values of its source.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/io.hpp>  // brings dvfs/table_file.hpp
#include <nlohmann/json.hpp>

#include "error_text.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using nlohmann::json;

namespace {

const std::filesystem::path data_dir = EARLYEXIT_DVFS_DATA_DIR;

dvfs::frequency_domain sample() {
    return {"sample",
            {{8e8, 0.9}, {1.4e9, 1.05, 3.5}, {2e9, 1.25}},
            {.static_w = 1.5,
             .capacitance_f = 2.5e-9,
             .switch_latency_s = 140e-6,
             .switch_energy_j = 1.5e-3,
             .memory_share = 0.25},
            "made up for the test"};
}

json sample_json() { return dvfs::frequency_domain_json(sample()); }

/// The message parse_frequency_domain gives for the document `edit` makes of sample_json().
std::string error_for(const std::function<void(json&)>& edit) {
    json j = sample_json();
    edit(j);
    return what_of([&] { (void)dvfs::parse_frequency_domain(j, "t.json"); });
}

std::vector<std::filesystem::path> shipped_tables() {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(data_dir))
        if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

json read_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    return json::parse(in);
}

}  // namespace

TEST_CASE("table file: the JSON document in human units", "[dvfs][table_file]") {
    const json j = sample_json();
    CHECK(j["format"] == "earlyexit.frequency_domain");
    CHECK(j["version"] == 2);
    CHECK(j["name"] == "sample");
    CHECK(j["source"] == "made up for the test");
    REQUIRE(j["levels"].size() == 3);
    CHECK(j["levels"][0] == json({{"frequency_mhz", 800.0}, {"voltage_v", 0.9}}));  // no power: none written
    CHECK(j["levels"][1]["frequency_mhz"] == 1400.0);
    CHECK(j["levels"][1]["power_w"] == 3.5);
    CHECK(j["model"]["static_w"] == 1.5);
    CHECK(j["model"]["capacitance_nf"].get<double>() == Approx(2.5));
    CHECK(j["model"]["switch_latency_us"].get<double>() == Approx(140));
    CHECK(j["model"]["switch_energy_uj"].get<double>() == Approx(1500));
    CHECK(j["model"]["memory_share"] == 0.25);
}

TEST_CASE("table file: write and read give the same domain", "[dvfs][table_file]") {
    const temp_dir dir("earlyexit_dvfs_table");
    const auto path = dir / "sub" / "sample.json";  // the folder is created
    dvfs::write_frequency_domain(path, sample());
    const auto back = dvfs::read_frequency_domain(path);
    CHECK(back == sample());
    CHECK(back.power_w(1) == 3.5);
    CHECK_FALSE(back[0].power_w.has_value());
    // Written twice: replaced, not appended.
    dvfs::write_frequency_domain(path, back);
    CHECK(dvfs::read_frequency_domain(path) == sample());
    // Bytes after the document are refused (the JSON parse is strict).
    std::ofstream(path, std::ios::binary | std::ios::app) << "x";
    const std::string msg = what_of([&] { (void)dvfs::read_frequency_domain(path); });
    CHECK(msg.rfind("frequency table " + path.string() + ": not valid JSON", 0) == 0);
    CHECK(msg.find("end of input") != std::string::npos);
}

TEST_CASE("table file: random domains round-trip up to the unit conversions", "[dvfs][table_file]") {
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int rep = 0; rep < 50; ++rep) {
        std::vector<dvfs::level> levels;
        double f = 1e8 + u(rng) * 1e8;
        for (int i = 0; i < 1 + rep % 7; ++i) {
            dvfs::level l{f, 0.6 + u(rng)};
            if (u(rng) < 0.5) l.power_w = 0.1 + 10 * u(rng);
            levels.push_back(l);
            f += 1e6 + u(rng) * 3e8;
        }
        const dvfs::frequency_domain d("r", levels,
                                       {.static_w = u(rng), .capacitance_f = 1e-9 * u(rng),
                                        .switch_latency_s = 1e-4 * u(rng), .switch_energy_j = 1e-3 * u(rng),
                                        .memory_share = 0.9 * u(rng)});
        const auto back = dvfs::parse_frequency_domain(json::parse(dvfs::frequency_domain_json(d).dump()), "r");
        REQUIRE(back.size() == d.size());
        for (std::size_t i = 0; i < d.size(); ++i) {
            CHECK(back[i].frequency_hz == Approx(d[i].frequency_hz).epsilon(1e-15));
            CHECK(back[i].voltage_v == d[i].voltage_v);
            CHECK(back[i].power_w == d[i].power_w);
            CHECK(back.power_w(i) == Approx(d.power_w(i)).epsilon(1e-14));
        }
        CHECK(back.model().static_w == d.model().static_w);
        CHECK(back.model().capacitance_f == Approx(d.model().capacitance_f).epsilon(1e-15));
        CHECK(back.model().switch_latency_s == Approx(d.model().switch_latency_s).epsilon(1e-15));
        CHECK(back.model().switch_energy_j == Approx(d.model().switch_energy_j).epsilon(1e-15));
        CHECK(back.model().memory_share == d.model().memory_share);
    }
}

TEST_CASE("table file: notes are optional, a string or an array of strings, and not kept", "[dvfs][table_file]") {
    json j = sample_json();
    j["notes"] = "every number made up";
    CHECK(dvfs::parse_frequency_domain(j, "t.json") == sample());
    j["notes"] = json::array({"one", "two"});
    CHECK(dvfs::parse_frequency_domain(j, "t.json") == sample());
    CHECK_FALSE(dvfs::frequency_domain_json(sample()).contains("notes"));
}

TEST_CASE("table file: malformed documents name the file and the field", "[dvfs][table_file][errors]") {
    CHECK(what_of([] { (void)dvfs::parse_frequency_domain(json::array(), "t.json"); }) ==
          "t.json: the document must be a JSON object, got []");
    CHECK(error_for([](json& j) { j.erase("format"); }) == "t.json: field 'format' is missing");
    CHECK(error_for([](json& j) { j["format"] = "earlyexit.policy_state"; }) ==
          "t.json: field 'format' is 'earlyexit.policy_state', not 'earlyexit.frequency_domain'");
    CHECK(error_for([](json& j) { j["format"] = 3; }) == "t.json: field 'format' must be a string, got 3");
    CHECK(error_for([](json& j) { j.erase("version"); }) == "t.json: field 'version' is missing");
    CHECK(error_for([](json& j) { j["version"] = 3; }) == "t.json: field 'version' is 3; this build reads versions 1 to 2");
    CHECK(error_for([](json& j) { j["version"] = 0; }) == "t.json: field 'version' is 0; this build reads versions 1 to 2");
    CHECK(error_for([](json& j) { j["version"] = "1"; }) == "t.json: field 'version' must be a whole number, got \"1\"");
    CHECK(error_for([](json& j) { j["version"] = 1.5; }) == "t.json: field 'version' must be a whole number, got 1.5");
    CHECK(error_for([](json& j) { j["name"] = json::array(); }) == "t.json: field 'name' must be a string, got []");
    CHECK(error_for([](json& j) { j.erase("source"); }) == "t.json: field 'source' is missing");
    CHECK(error_for([](json& j) { j["notes"] = 7; }) ==
          "t.json: field 'notes' must be a string or an array of strings, got 7");
    CHECK(error_for([](json& j) { j["notes"] = json::array({"a", 1}); }) ==
          "t.json: field 'notes' must be a string or an array of strings, got [\"a\",1]");
    CHECK(error_for([](json& j) { j["comment"] = "x"; }) ==
          "t.json: unknown field 'comment' (expected format, version, name, source, measures, notes, levels, model)");
}

TEST_CASE("table file: malformed levels name the level and the field", "[dvfs][table_file][errors]") {
    CHECK(error_for([](json& j) { j.erase("levels"); }) == "t.json: field 'levels' is missing");
    CHECK(error_for([](json& j) { j["levels"] = json::object(); }) ==
          "t.json: field 'levels' must be an array of levels, got {}");
    CHECK(error_for([](json& j) { j["levels"][1] = 1400; }) == "t.json: field 'levels[1]' must be a JSON object, got 1400");
    CHECK(error_for([](json& j) { j["levels"][2].erase("frequency_mhz"); }) ==
          "t.json: field 'levels[2].frequency_mhz' is missing");
    CHECK(error_for([](json& j) { j["levels"][0]["frequency_mhz"] = "800"; }) ==
          "t.json: field 'levels[0].frequency_mhz' must be a number, got \"800\"");
    CHECK(error_for([](json& j) { j["levels"][0]["frequency_mhz"] = -800; }) ==
          "t.json: field 'levels[0].frequency_mhz' must be > 0, got -800");
    CHECK(error_for([](json& j) { j["levels"][1]["voltage_v"] = 0; }) ==
          "t.json: field 'levels[1].voltage_v' must be > 0, got 0");
    CHECK(error_for([](json& j) { j["levels"][1]["power_w"] = 0.0; }) ==
          "t.json: field 'levels[1].power_w' must be > 0, got 0");
    CHECK(error_for([](json& j) { j["levels"][1]["voltage_v"] = std::numeric_limits<double>::quiet_NaN(); }) ==
          "t.json: field 'levels[1].voltage_v' must be a finite number, got nan");
    CHECK(error_for([](json& j) { j["levels"][1]["power_W"] = 3.0; }) ==
          "t.json: unknown field 'levels[1].power_W' (expected frequency_mhz, voltage_v, power_w)");
    // Order and emptiness are the domain's checks, with the same file name.
    CHECK(error_for([](json& j) { j["levels"] = json::array(); }) ==
          "t.json: 'sample' has no levels (a frequency domain needs at least one)");
    CHECK(error_for([](json& j) { j["levels"][2]["frequency_mhz"] = 1200; }) ==
          "t.json: level 2 frequency 1.2e9 Hz is not above level 1's 1.4e9 Hz (the levels must be sorted by "
          "frequency, strictly increasing)");
    CHECK(error_for([](json& j) { j["levels"][2]["frequency_mhz"] = 1400; }) ==
          "t.json: level 2 duplicates level 1's frequency 1.4e9 Hz");
}

TEST_CASE("table file: malformed models name the field", "[dvfs][table_file][errors]") {
    CHECK(error_for([](json& j) { j.erase("model"); }) == "t.json: field 'model' is missing");
    CHECK(error_for([](json& j) { j["model"] = 1; }) == "t.json: field 'model' must be a JSON object, got 1");
    for (const char* key : {"static_w", "capacitance_nf", "switch_latency_us", "switch_energy_uj", "memory_share"}) {
        CHECK(error_for([&](json& j) { j["model"].erase(key); }) ==
              fmt::format("t.json: field 'model.{}' is missing", key));
        CHECK(error_for([&](json& j) { j["model"][key] = "x"; }) ==
              fmt::format("t.json: field 'model.{}' must be a number, got \"x\"", key));
    }
    CHECK(error_for([](json& j) { j["model"]["capacitance_nf"] = -1; }) ==
          "t.json: field 'model.capacitance_nf' must be >= 0, got -1");
    CHECK(error_for([](json& j) { j["model"]["switch_latency_us"] = -0.5; }) ==
          "t.json: field 'model.switch_latency_us' must be >= 0, got -0.5");
    CHECK(error_for([](json& j) { j["model"]["memory_share"] = 1; }) ==
          "t.json: field 'model.memory_share' must be in [0, 1), got 1");
    CHECK(error_for([](json& j) { j["model"]["memory_share"] = -0.25; }) ==
          "t.json: field 'model.memory_share' must be in [0, 1), got -0.25");
    CHECK(error_for([](json& j) { j["model"]["leakage_w"] = 1; }) ==
          "t.json: unknown field 'model.leakage_w' (expected static_w, capacitance_nf, switch_latency_us, "
          "switch_energy_uj, memory_share, idle_w, macs_per_cycle)");
}

TEST_CASE("table file: unreadable files name the file", "[dvfs][table_file][errors]") {
    const temp_dir dir("earlyexit_dvfs_table");
    const auto missing = dir / "missing.json";
    CHECK(what_of([&] { (void)dvfs::read_frequency_domain(missing); }) ==
          "frequency table " + missing.string() + ": cannot open the file");
    const auto broken = dir / "broken.json";
    std::ofstream(broken) << "{\"format\": ";
    CHECK_THAT(what_of([&] { (void)dvfs::read_frequency_domain(broken); }),
               Catch::StartsWith("frequency table " + broken.string() + ": not valid JSON ("));
    const auto unsorted = dir / "odroid.json";
    json j = sample_json();
    j["levels"][2]["frequency_mhz"] = 1200;
    std::ofstream(unsorted) << j.dump();
    CHECK(what_of([&] { (void)dvfs::read_frequency_domain(unsorted); }) ==
          "frequency table " + unsorted.string() +
              ": level 2 frequency 1.2e9 Hz is not above level 1's 1.4e9 Hz (the levels must be sorted by frequency, "
              "strictly increasing)");
    CHECK_THAT(what_of([&] { dvfs::write_frequency_domain(dir / "broken.json" / "x.json", sample()); }),
               Catch::StartsWith("write_frequency_domain: cannot create the folder " + broken.string()));  // a file there
}

TEST_CASE("shipped tables: every file in data/dvfs loads, validates and states its sources", "[dvfs][table_file][data]") {
    const auto files = shipped_tables();
    REQUIRE(files.size() >= 2);
    for (const auto& path : files) {
        INFO(path.string());
        dvfs::frequency_domain d;
        REQUIRE_NOTHROW(d = dvfs::read_frequency_domain(path));
        CHECK(d.valid());
        CHECK_FALSE(d.name().empty());
        CHECK(d.source().size() > 100);  // a citation, not a word
        // Every model parameter's origin is stated in the notes.
        const json j = read_json(path);
        REQUIRE(j.contains("notes"));
        std::string notes = j["notes"].is_string() ? j["notes"].get<std::string>() : std::string();
        if (j["notes"].is_array())
            for (const auto& line : j["notes"]) notes += line.get<std::string>() + "\n";
        for (const char* key : {"static_w", "capacitance_nf", "switch_latency_us", "switch_energy_uj", "memory_share",
                                "idle_w", "macs_per_cycle"})
            CHECK(notes.find(fmt::format("model.{}", key)) != std::string::npos);
        // Version 2: every shipped table says what its figures measure, gives an idle power (its
        // source in the notes: measured, or an estimate marked as one) and its chip's speed.
        CHECK(j["version"] == 2);
        CHECK(d.measures().size() > 40);
        const auto& m = d.model();
        REQUIRE(m.idle_w.has_value());
        CHECK(notes.find("model.idle_w") != std::string::npos);
        CHECK((notes.find("estimate") != std::string::npos || notes.find("measured") != std::string::npos));
        REQUIRE(m.macs_per_cycle.has_value());
        // Plausible physics: a static share, an idle power below every level's active power, and
        // lower levels cost less dynamic energy per cycle (C V^2) than the highest.
        CHECK(m.static_w > 0);
        CHECK(*m.idle_w < d.power_w(0));
        CHECK(m.capacitance_f > 0);
        CHECK(d[0].voltage_v < d[d.max_level()].voltage_v);
        for (std::size_t i = 0; i < d.size(); ++i) CHECK(d.power_w(i) <= d.power_w(d.max_level()));
        // A rewrite reads back the same.
        const temp_dir dir("earlyexit_dvfs_shipped");
        dvfs::write_frequency_domain(dir / "copy.json", d);
        CHECK(dvfs::read_frequency_domain(dir / "copy.json") == d);
    }
}

TEST_CASE("shipped tables: the values of their sources", "[dvfs][table_file][data]") {
    SECTION("Exynos 5422 A15 cluster: the kernel's 19 OPPs, 16 per-core powers from the board's, the fitted model") {
        const auto d = dvfs::read_frequency_domain(data_dir / "exynos5422_a15.json");
        REQUIRE(d.size() == 19);
        CHECK(d[0].frequency_hz == 200e6);
        CHECK(d[0].voltage_v == 0.9);
        CHECK_FALSE(d[0].power_w.has_value());
        CHECK(d[3].frequency_hz == 500e6);
        // One core's share above the board's idle: (board power - 3.89 W idle) / 4 loaded cores.
        CHECK(*d[3].power_w == Approx((5.125 - 3.89) / 4).epsilon(1e-12));
        CHECK(d[d.max_level()].frequency_hz == 2000e6);
        CHECK(d[d.max_level()].voltage_v == 1.3125);
        CHECK(d.power_w(d.max_level()) == Approx((12.64 - 3.89) / 4).epsilon(1e-12));
        std::size_t measured = 0;
        for (const auto& l : d.levels()) measured += l.power_w.has_value();
        CHECK(measured == 16);
        CHECK(d.model().switch_latency_s == Approx(140e-6));
        CHECK(d.model().switch_energy_j == Approx(140e-6 * 2.1875));
        // The unmeasured 200 MHz level: 0.0764 W + 0.5565 nF * 0.81 V^2 * 200 MHz.
        CHECK(d.power_w(0) == Approx(0.0764 + 0.5565e-9 * 0.81 * 200e6));
        // The fit is close to the per-core figures: within 0.25 W at every measured level.
        for (const auto& l : d.levels())
            if (l.power_w)
                CHECK(std::fabs(d.model().static_w + d.model().capacitance_f * l.voltage_v * l.voltage_v * l.frequency_hz -
                                *l.power_w) < 0.25);
        CHECK(d.idle_power_w() == 0.0764);
        // Above idle, 2000 MHz costs more than twice as much per cycle as 800 MHz: slowing down
        // pays on this domain whenever the period leaves the time.
        CHECK(d.joules_per_cycle_above_idle(d.max_level()) > 2.0 * d.joules_per_cycle_above_idle(6));
        for (std::size_t i = 0; i < d.max_level(); ++i)
            CHECK(d.joules_per_cycle_above_idle(i) < d.joules_per_cycle_above_idle(d.max_level()));
    }
    SECTION("Phenom II X4 940: three P-states, the model at the 125 W TDP") {
        const auto d = dvfs::read_frequency_domain(data_dir / "amd_phenom_ii_x4_940.json");
        REQUIRE(d.size() == 3);
        CHECK(d[0].frequency_hz == 800e6);
        CHECK(d[0].voltage_v == 0.992);
        CHECK(d[1].voltage_v == 1.15);
        CHECK(d[2].frequency_hz == 3000e6);
        CHECK(d[2].voltage_v == 1.35);
        // One core: a quarter of the TDP at 3 GHz (3.75 W static share + 27.5 W dynamic).
        CHECK(d.power_w(2) == Approx(125.0 / 4).epsilon(1e-3));
        CHECK(d.power_w(1) == Approx(15.72).epsilon(1e-3));
        CHECK(d.power_w(0) == Approx(7.71).epsilon(1e-3));
        CHECK(d.model().static_w == 3.75);
        CHECK(d.idle_power_w() == 2.0);
        // Busy time only, 1800 MHz is the cheapest per cycle; over a period (above idle) 800 MHz is.
        CHECK(d.joules_per_cycle(1) < d.joules_per_cycle(0));
        CHECK(d.joules_per_cycle(1) < d.joules_per_cycle(2));
        CHECK(d.joules_per_cycle_above_idle(0) < d.joules_per_cycle_above_idle(1));
        CHECK(d.joules_per_cycle_above_idle(1) < d.joules_per_cycle_above_idle(2));
    }
}

TEST_CASE("table file: earlyexit/io.hpp brings it", "[dvfs][table_file]") {
    // This file includes only earlyexit/io.hpp: it compiles when io.hpp includes dvfs/table_file.hpp.
    CHECK(dvfs::frequency_domain_format == "earlyexit.frequency_domain");
    CHECK(dvfs::frequency_domain_version == 2);
}

TEST_CASE("table file version 2: idle power, MACs per cycle and what the figures measure", "[dvfs][table_file]") {
    json j = sample_json();
    j["measures"] = "one core";
    j["model"]["idle_w"] = 0.5;
    j["model"]["macs_per_cycle"] = 2;
    const auto d = dvfs::parse_frequency_domain(j, "t.json");
    CHECK(d.measures() == "one core");
    CHECK(d.model().idle_w == 0.5);
    CHECK(d.idle_power_w() == 0.5);
    CHECK(d.model().macs_per_cycle == 2.0);
    // A round trip keeps them.
    const auto back = dvfs::parse_frequency_domain(dvfs::frequency_domain_json(d), "t.json");
    CHECK(back == d);
    CHECK(dvfs::frequency_domain_json(d)["model"]["idle_w"] == 0.5);
    // Without them: the idle power is the static power, no speed, no statement.
    CHECK(sample().idle_power_w() == 1.5);
    CHECK_FALSE(sample_json()["model"].contains("idle_w"));
    CHECK_FALSE(sample_json().contains("measures"));
}

TEST_CASE("table file: version 1 documents are read, without the version 2 fields", "[dvfs][table_file]") {
    json j = sample_json();
    j["version"] = 1;
    CHECK(dvfs::parse_frequency_domain(j, "t.json") == sample());
    j["model"]["idle_w"] = 0.5;
    CHECK(what_of([&] { (void)dvfs::parse_frequency_domain(j, "t.json"); }) ==
          "t.json: field 'model.idle_w' needs version 2 (the file says version 1)");
    j["model"].erase("idle_w");
    j["measures"] = "x";
    CHECK(what_of([&] { (void)dvfs::parse_frequency_domain(j, "t.json"); }) ==
          "t.json: field 'measures' needs version 2 (the file says version 1)");
}

TEST_CASE("table file: bad idle power and speed name the value", "[dvfs][table_file][errors]") {
    CHECK(error_for([](json& j) { j["model"]["idle_w"] = -0.25; }) == "t.json: field 'model.idle_w' must be >= 0, got -0.25");
    CHECK(error_for([](json& j) { j["model"]["idle_w"] = "1"; }) ==
          "t.json: field 'model.idle_w' must be a number, got \"1\"");
    CHECK(error_for([](json& j) { j["model"]["idle_w"] = std::numeric_limits<double>::quiet_NaN(); }) ==
          "t.json: field 'model.idle_w' must be a finite number, got nan");
    CHECK(error_for([](json& j) { j["model"]["macs_per_cycle"] = 0; }) ==
          "t.json: field 'model.macs_per_cycle' must be > 0, got 0");
    CHECK(error_for([](json& j) { j["measures"] = 3; }) == "t.json: field 'measures' must be a string, got 3");
    // An idle power above a level's active power (sample(): level 0 draws 1.5 + 2.5 nF * 0.81 * 0.8 GHz = 3.12 W).
    CHECK_THAT(error_for([](json& j) { j["model"]["idle_w"] = 3.2; }),
               Catch::StartsWith("t.json: model idle power 3.2 W exceeds level 0's active power 3.12"));
}
