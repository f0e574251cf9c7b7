// dvfs/rapl.hpp against a fake powercap zone in a temp folder: joules accumulated since
// construction, a wrap of the counter (from near its range to a small value), an absent zone,
// a zone without a counter, a counter that only root may read (through a file layer that fails
// with EACCES: the tests run as root) and the noexcept path counting failures.
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/rapl.hpp>

#include "error_text.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
namespace fs = std::filesystem;

namespace {

// A real range: 2^32 energy units of 61.035 uJ, as a Skylake package zone shows it.
constexpr std::uint64_t range_uj = 262143328850;


fs::path make_zone(const fs::path& root, std::uint64_t energy_uj, std::uint64_t range = range_uj) {
    const auto zone = root / "intel-rapl:0";
    put(zone / "name", "package-0");
    put(zone / "energy_uj", std::to_string(energy_uj));
    put(zone / "max_energy_range_uj", std::to_string(range));
    return zone;
}

void set_counter(const fs::path& zone, std::uint64_t uj) { put(zone / "energy_uj", std::to_string(uj)); }

/// Real files, failing reads of chosen paths with `error`.
struct refusing_files {
    std::shared_ptr<std::set<std::string>> deny = std::make_shared<std::set<std::string>>();
    int error = EACCES;
    dvfs::real_files real;
    [[nodiscard]] dvfs::file_read read(const fs::path& p) const {
        if (deny->count(p.string())) return {{}, error};
        return real.read(p);
    }
    [[nodiscard]] int write(const fs::path& p, std::string_view text) const { return real.write(p, text); }
};

}  // namespace

TEST_CASE("rapl: joules since construction", "[dvfs][rapl]") {
    const temp_dir root("earlyexit_rapl");
    const auto zone = make_zone(root.path, 1'000'000);
    dvfs::rapl_meter m(zone);
    CHECK(m.name() == "package-0");
    CHECK(m.zone() == zone);
    CHECK(m.max_energy_range_j() == Approx(262143.32885));
    CHECK(m.joules() == 0.0);
    set_counter(zone, 3'500'000);
    CHECK(m.joules() == Approx(2.5));
    CHECK(m.last_joules() == Approx(2.5));
    set_counter(zone, 3'600'001);
    CHECK(m.joules() == Approx(2.600001));
    CHECK(m.joules() == Approx(2.600001));  // no change, no energy
    CHECK(m.wraps() == 0);
    CHECK(dvfs::rapl_meter::available(zone));
}

TEST_CASE("rapl: a wrapped counter adds the range", "[dvfs][rapl]") {
    const temp_dir root("earlyexit_rapl");
    const auto zone = make_zone(root.path, range_uj - 1'000'000);  // 1 J below the top
    dvfs::rapl_meter m(zone);
    set_counter(zone, 500'000);
    // (range + 1 - previous) + current = 1000001 + 500000 uJ.
    CHECK(m.joules() == Approx(1.500001).epsilon(1e-12));
    CHECK(m.wraps() == 1);
    set_counter(zone, 2'500'000);
    CHECK(m.joules() == Approx(3.500001).epsilon(1e-12));
    // A second wrap, later: counted once more.
    set_counter(zone, range_uj);
    (void)m.joules();
    set_counter(zone, 0);
    CHECK(m.joules() == Approx(3.500001 + (range_uj - 2'500'000) * 1e-6 + 1e-6).epsilon(1e-12));
    CHECK(m.wraps() == 2);
    // A small range: 990 -> 10 with range 1000 is 1000 + 1 - 990 + 10 = 21 uJ.
    const auto small = make_zone(root.path / "small", 990, 1000);
    dvfs::rapl_meter s(small);
    set_counter(small, 10);
    CHECK(s.joules() == Approx(21e-6));
}

TEST_CASE("rapl: an absent zone or counter is named", "[dvfs][rapl][errors]") {
    const temp_dir root("earlyexit_rapl");
    const auto zone = root.path / "intel-rapl:0";
    CHECK(what_of([&] { dvfs::rapl_meter m(zone); }) ==
          "rapl: " + zone.string() +
              " not found: no RAPL powercap zone here (a CPU or VM without RAPL, or the intel_rapl_msr module not "
              "loaded; see /sys/class/powercap)");
    CHECK_FALSE(dvfs::rapl_meter::available(zone));
    fs::create_directories(zone);
    CHECK(what_of([&] { dvfs::rapl_meter m(zone); }) ==
          "rapl: " + (zone / "energy_uj").string() + " is missing: " + zone.string() +
              " is not an energy-counting powercap zone");
    make_zone(root.path, 5);
    fs::remove(zone / "max_energy_range_uj");
    CHECK(what_of([&] { dvfs::rapl_meter m(zone); }) ==
          "rapl: " + (zone / "max_energy_range_uj").string() + " is missing: " + zone.string() +
              " is not an energy-counting powercap zone");
}

TEST_CASE("rapl: a counter only root may read says so", "[dvfs][rapl][errors]") {
    const temp_dir root("earlyexit_rapl");
    const auto zone = make_zone(root.path, 7);
    refusing_files files;
    files.deny->insert((zone / "energy_uj").string());
    CHECK(what_of([&] { dvfs::basic_rapl_meter<refusing_files> m(zone, files); }) ==
          "rapl: reading " + (zone / "energy_uj").string() +
              " is not permitted (EACCES (Permission denied)): since Linux 5.10 energy_uj is readable by root only "
              "(CVE-2020-8694); run as root, or make it readable (chmod a+r, or a udev rule)");
    CHECK_FALSE(dvfs::basic_rapl_meter<refusing_files>::available(zone, files));
}

TEST_CASE("rapl: malformed files are named", "[dvfs][rapl][errors]") {
    const temp_dir root("earlyexit_rapl");
    const auto zone = make_zone(root.path, 7);
    put(zone / "energy_uj", "lots");
    CHECK(what_of([&] { dvfs::rapl_meter m(zone); }) ==
          "rapl: " + (zone / "energy_uj").string() + " holds 'lots', not a whole number of microjoules");
    CHECK_FALSE(dvfs::rapl_meter::available(zone));
    make_zone(root.path, 7, 0);
    CHECK(what_of([&] { dvfs::rapl_meter m(zone); }) ==
          "rapl: " + (zone / "max_energy_range_uj").string() + " is 0, not a counter range");
}

TEST_CASE("rapl: the noexcept read records the error and counts failures", "[dvfs][rapl][errors]") {
    STATIC_REQUIRE(noexcept(std::declval<dvfs::rapl_meter&>().try_read(std::declval<double&>())));
    const temp_dir root("earlyexit_rapl");
    const auto zone = make_zone(root.path, 100);
    refusing_files files;
    dvfs::basic_rapl_meter<refusing_files> m(zone, files);
    set_counter(zone, 2'000'100);
    double j = -1;
    CHECK(m.try_read(j));
    CHECK(j == Approx(2.0));
    files.deny->insert((zone / "energy_uj").string());  // the meter holds a copy sharing the set
    j = -1;
    CHECK_FALSE(m.try_read(j));
    CHECK(j == -1);  // unchanged
    CHECK(m.failures() == 1);
    CHECK_THAT(m.last_error(), Catch::StartsWith("rapl: reading " + (zone / "energy_uj").string() + " is not permitted"));
    files.deny->clear();
    fs::remove(zone / "energy_uj");
    CHECK_FALSE(m.try_read(j));
    CHECK(m.failures() == 2);
    CHECK(m.last_error() == "rapl: " + (zone / "energy_uj").string() + " is missing: " + zone.string() +
                                " is not an energy-counting powercap zone");
    set_counter(zone, 3'000'100);
    CHECK(m.try_read(j));
    CHECK(j == Approx(3.0));  // nothing lost while the reads failed
    CHECK(m.failures() == 2);
}
