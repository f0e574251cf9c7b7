// dvfs/cpufreq.hpp (and the file layer of dvfs/sysfs.hpp) against a fake sysfs tree in a temp
// folder: the governor switched to userspace, setspeed written in kHz, the granted speed read
// back, governor and speed restored on destruction and when an exception unwinds past the
// backend, moves, several CPUs, an absent tree, a missing userspace governor, permission errors
// (through a file layer that fails chosen files with EACCES: the tests run as root, where chmod
// cannot make a file unwritable) and the noexcept path counting failures.
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/cpufreq.hpp>

#include "error_text.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
namespace fs = std::filesystem;

namespace {

/// One CPU of the fake tree: what its cpufreq files hold at the start.
struct fake_cpu {
    std::string governor = "schedutil";
    std::string governors = "conservative ondemand userspace powersave performance schedutil";
    std::string frequencies = "2000000 1500000 1000000";  // kHz, fastest first as acpi-cpufreq lists them
    std::string cur = "2000000";
    std::string setspeed = "<unsupported>";
    bool table = true;  // scaling_available_frequencies present
};



fs::path make_cpu(const fs::path& root, unsigned cpu, const fake_cpu& c = {}) {
    const auto dir = root / fmt::format("cpu{}", cpu) / "cpufreq";
    put(dir / "scaling_governor", c.governor);
    put(dir / "scaling_available_governors", c.governors);
    if (c.table) put(dir / "scaling_available_frequencies", c.frequencies);
    put(dir / "scaling_cur_freq", c.cur);
    put(dir / "scaling_setspeed", c.setspeed);
    put(dir / "scaling_min_freq", "1000000");
    put(dir / "scaling_max_freq", "2000000");
    return dir;
}

/// What the fake layer does, shared by copies of it (the backend holds one by value).
struct control {
    std::set<std::string> deny_write;  // paths whose writes fail with `error`
    std::set<std::string> deny_read;
    int error = EACCES;
    bool kernel = true;  // behave like the kernel: setspeed grants the lowest frequency >= the request
    std::string governor_instead;  // when set: a governor write stores this instead (a driver that refuses quietly)
    std::vector<std::string> writes;
};

/// Real files, plus the kernel's reaction to writes and chosen failures.
struct fake_kernel {
    std::shared_ptr<control> c = std::make_shared<control>();
    dvfs::real_files real;

    [[nodiscard]] dvfs::file_read read(const fs::path& p) const {
        if (c->deny_read.count(p.string())) return {{}, c->error};
        return real.read(p);
    }
    [[nodiscard]] int write(const fs::path& p, std::string_view text) const {
        if (c->deny_write.count(p.string())) return c->error;
        if (p.filename() == "scaling_governor" && !c->governor_instead.empty() && text == "userspace")
            text = c->governor_instead;
        const int e = real.write(p, text);
        if (e != 0) return e;
        c->writes.push_back(p.filename().string() + "=" + std::string(text));
        if (!c->kernel) return 0;
        const auto dir = p.parent_path();
        if (p.filename() == "scaling_setspeed") {
            const auto want = std::stoull(std::string(text));
            std::uint64_t grant = 0;
            std::istringstream list(get(dir / "scaling_available_frequencies"));
            for (std::uint64_t f; list >> f;)
                if (f >= want && (grant == 0 || f < grant)) grant = f;
            if (grant == 0) grant = want;
            put(dir / "scaling_cur_freq", std::to_string(grant));
        } else if (p.filename() == "scaling_governor") {
            put(dir / "scaling_setspeed", text == "userspace" ? get(dir / "scaling_cur_freq") : "<unsupported>");
        }
        return 0;
    }
};

using backend = dvfs::basic_cpufreq_backend<fake_kernel>;

}  // namespace

TEST_CASE("cpufreq: switches to userspace, writes kHz, reads back the granted speed, restores", "[dvfs][cpufreq]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0);
    fake_kernel files;
    {
        backend b(tree.path, {0}, files);
        CHECK(get(dir / "scaling_governor") == "userspace");
        CHECK(b.previous_governor() == "schedutil");
        CHECK(b.previous_hz() == 2e9);
        CHECK(b.granted_hz() == 2e9);
        CHECK(b.cpus() == std::vector<unsigned>{0});
        CHECK(b.root() == tree.path);
        CHECK_FALSE(b.continuous());
        CHECK(std::vector<double>(b.available_hz().begin(), b.available_hz().end()) ==
              std::vector<double>{1e9, 1.5e9, 2e9});  // sorted

        CHECK(b.set_frequency_hz(1e9) == 1e9);
        CHECK(get(dir / "scaling_setspeed") == "1000000");
        // The kernel grants the lowest of its frequencies >= the request: 1.2 GHz gives 1.5 GHz.
        CHECK(b.set_frequency_hz(1.2e9) == 1.5e9);
        CHECK(get(dir / "scaling_setspeed") == "1200000");
        CHECK(b.granted_hz() == 1.5e9);
        CHECK(b.set_frequency_hz(1999999.6e3) == 2e9);  // rounded to whole kHz: 2000000
        CHECK(get(dir / "scaling_setspeed") == "2000000");
        CHECK(b.failures() == 0);
    }
    CHECK(get(dir / "scaling_governor") == "schedutil");
    CHECK(files.c->writes.back() == "scaling_governor=schedutil");
}

TEST_CASE("cpufreq: the granted speed is what scaling_cur_freq says, not the request", "[dvfs][cpufreq]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0, {.cur = "1800000"});
    dvfs::cpufreq_backend b(tree.path);  // real files: nothing updates scaling_cur_freq
    CHECK(b.set_frequency_hz(1.5e9) == 1.8e9);
    CHECK(get(dir / "scaling_setspeed") == "1500000");
    // Without a readable scaling_cur_freq, scaling_setspeed is read back.
    fs::remove(dir / "scaling_cur_freq");
    CHECK(b.set_frequency_hz(1e9) == 1e9);
}

TEST_CASE("cpufreq: a CPU already on userspace gets its speed back", "[dvfs][cpufreq]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0, {.governor = "userspace", .cur = "1000000", .setspeed = "1000000"});
    fake_kernel files;
    {
        backend b(tree.path, {0}, files);
        CHECK(files.c->writes.empty());  // nothing to switch
        CHECK(b.previous_governor() == "userspace");
        CHECK(b.previous_hz() == 1e9);
        CHECK(b.set_frequency_hz(2e9) == 2e9);
    }
    CHECK(get(dir / "scaling_governor") == "userspace");
    CHECK(get(dir / "scaling_setspeed") == "1000000");
    CHECK(get(dir / "scaling_cur_freq") == "1000000");
}

TEST_CASE("cpufreq: an exception unwinding past the backend restores the governor", "[dvfs][cpufreq]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0, {.governor = "ondemand"});
    bool caught = false;
    try {
        backend b(tree.path, {0}, fake_kernel{});
        (void)b.set_frequency_hz(1e9);
        REQUIRE(get(dir / "scaling_governor") == "userspace");
        throw std::runtime_error("inference failed");
    } catch (const std::runtime_error&) {
        caught = true;
    }
    CHECK(caught);
    CHECK(get(dir / "scaling_governor") == "ondemand");
}

TEST_CASE("cpufreq: moves hand the CPUs over, moved-from backends restore nothing", "[dvfs][cpufreq]") {
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<dvfs::cpufreq_backend>);
    STATIC_REQUIRE_FALSE(std::is_copy_assignable_v<dvfs::cpufreq_backend>);
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<dvfs::cpufreq_backend>);
    STATIC_REQUIRE(std::is_nothrow_move_assignable_v<dvfs::cpufreq_backend>);
    STATIC_REQUIRE(noexcept(std::declval<dvfs::cpufreq_backend&>().try_set_frequency_hz(1e9)));

    const temp_dir tree("earlyexit_cpufreq");
    const auto dir0 = make_cpu(tree.path, 0, {.governor = "powersave"});
    const auto dir1 = make_cpu(tree.path, 1, {.governor = "performance"});
    {
        std::optional<backend> a(std::in_place, tree.path, std::vector<unsigned>{0}, fake_kernel{});
        backend b(std::move(*a));
        a.reset();  // the moved-from one restores nothing
        CHECK(get(dir0 / "scaling_governor") == "userspace");
        CHECK(b.cpus() == std::vector<unsigned>{0});
        CHECK(a == std::nullopt);
        backend c(tree.path, {1}, fake_kernel{});
        CHECK(get(dir1 / "scaling_governor") == "userspace");
        b = std::move(c);  // b gives cpu0 back first
        CHECK(get(dir0 / "scaling_governor") == "powersave");
        CHECK(b.cpus() == std::vector<unsigned>{1});
        CHECK(c.cpus().empty());
        CHECK(what_of([&] { (void)c.set_frequency_hz(1e9); }) == "cpufreq: this backend was moved from; it controls no CPU");
        CHECK(b.set_frequency_hz(1e9) == 1e9);
    }
    CHECK(get(dir1 / "scaling_governor") == "performance");
}

TEST_CASE("cpufreq: several CPUs get the same speed and their own governors back", "[dvfs][cpufreq]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto d0 = make_cpu(tree.path, 0, {.governor = "schedutil"});
    const auto d2 = make_cpu(tree.path, 2, {.governor = "powersave"});
    {
        backend b(tree.path, {0, 2}, fake_kernel{});
        CHECK(b.cpus() == std::vector<unsigned>{0, 2});
        CHECK(get(d0 / "scaling_governor") == "userspace");
        CHECK(get(d2 / "scaling_governor") == "userspace");
        CHECK(b.set_frequency_hz(1.5e9) == 1.5e9);
        CHECK(get(d0 / "scaling_setspeed") == "1500000");
        CHECK(get(d2 / "scaling_setspeed") == "1500000");
    }
    CHECK(get(d0 / "scaling_governor") == "schedutil");
    CHECK(get(d2 / "scaling_governor") == "powersave");

    CHECK(what_of([&] { backend b(tree.path, {0, 0}, fake_kernel{}); }) == "cpufreq: cpu0 is listed twice");
    CHECK(what_of([&] { backend b(tree.path, {}, fake_kernel{}); }) == "cpufreq: no CPUs given");
    make_cpu(tree.path, 3, {.frequencies = "2000000 1000000"});
    CHECK(what_of([&] { backend b(tree.path, {0, 3}, fake_kernel{}); }) ==
          "cpufreq: cpu3 offers other frequencies than cpu0: give the CPUs of one frequency domain (one cpufreq "
          "policy, see related_cpus)");
    CHECK(get(d0 / "scaling_governor") == "schedutil");  // refused before anything changed
}

TEST_CASE("cpufreq: a failure on the second CPU gives the first one back", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto d0 = make_cpu(tree.path, 0, {.governor = "schedutil"});
    const auto d1 = make_cpu(tree.path, 1, {.governor = "schedutil"});
    fake_kernel files;
    files.c->deny_write.insert((d1 / "scaling_governor").string());
    CHECK_THAT(what_of([&] { backend b(tree.path, {0, 1}, files); }),
               Catch::StartsWith("cpufreq: cannot switch to the userspace governor on cpu1: writing " +
                                 (d1 / "scaling_governor").string() + " is not permitted"));
    CHECK(get(d0 / "scaling_governor") == "schedutil");
    CHECK(get(d1 / "scaling_governor") == "schedutil");
}

TEST_CASE("cpufreq: a governor that does not stick is an error, and restored", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0);
    fake_kernel files;
    files.c->governor_instead = "performance";
    CHECK(what_of([&] { backend b(tree.path, {0}, files); }) ==
          "cpufreq: cpu0 accepted the userspace governor but now runs 'performance'");
    CHECK(get(dir / "scaling_governor") == "schedutil");
}

TEST_CASE("cpufreq: an absent tree or a missing file is named", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = tree.path / "cpu0" / "cpufreq";
    CHECK(what_of([&] { dvfs::cpufreq_backend b(tree.path); }) ==
          "cpufreq: " + dir.string() + " not found: this kernel has no cpufreq for cpu0 (a VM or container?)");
    CHECK_FALSE(dvfs::cpufreq_backend::available(tree.path));
    fs::create_directories(tree.path / "cpu0");  // a CPU without cpufreq
    CHECK(what_of([&] { dvfs::cpufreq_backend b(tree.path); }) ==
          "cpufreq: " + dir.string() + " not found: this kernel has no cpufreq for cpu0 (a VM or container?)");
    make_cpu(tree.path, 0);
    fs::remove(dir / "scaling_available_governors");
    CHECK(what_of([&] { dvfs::cpufreq_backend b(tree.path); }) ==
          "cpufreq: " + (dir / "scaling_available_governors").string() +
              " is missing (the cpufreq driver of cpu0 does not offer it)");
    CHECK(get(dir / "scaling_governor") == "schedutil");
    CHECK(what_of([&] { dvfs::cpufreq_backend b(tree.path, {7}); }) ==
          "cpufreq: " + (tree.path / "cpu7" / "cpufreq").string() +
              " not found: this kernel has no cpufreq for cpu7 (a VM or container?)");
}

TEST_CASE("cpufreq: no userspace governor is a clear error and changes nothing", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0, {.governor = "powersave", .governors = "performance powersave"});
    CHECK(what_of([&] { dvfs::cpufreq_backend b(tree.path); }) ==
          "cpufreq: cpu0 offers no userspace governor (" + (dir / "scaling_available_governors").string() +
              " lists: performance powersave); load it (modprobe cpufreq_userspace), or, with intel_pstate or amd-pstate "
              "in active mode (they offer only performance and powersave), boot with intel_pstate=passive or "
              "amd_pstate=passive");
    CHECK(get(dir / "scaling_governor") == "powersave");
    CHECK_FALSE(dvfs::cpufreq_backend::available(tree.path));
}

TEST_CASE("cpufreq: writes that are not permitted say to run as root and name the file", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0);
    const auto governor = (dir / "scaling_governor").string();
    for (const int error : {EACCES, EPERM}) {
        fake_kernel files;
        files.c->deny_write.insert(governor);
        files.c->error = error;
        const std::string name = error == EACCES ? "EACCES (Permission denied)" : "EPERM (Operation not permitted)";
        CHECK(what_of([&] { backend b(tree.path, {0}, files); }) ==
              "cpufreq: cannot switch to the userspace governor on cpu0: writing " + governor + " is not permitted (" +
                  name + "); run as root (or give this user write access to scaling_governor and scaling_setspeed in " +
                  dir.string() + ")");
        CHECK(get(dir / "scaling_governor") == "schedutil");
    }
    // Reading may be refused too.
    fake_kernel files;
    files.c->deny_read.insert(governor);
    CHECK(what_of([&] { backend b(tree.path, {0}, files); }) ==
          "cpufreq: reading " + governor + " is not permitted (EACCES (Permission denied)): run as root");
}

TEST_CASE("cpufreq: the noexcept path records the error and counts failures", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0);
    const auto setspeed = (dir / "scaling_setspeed").string();
    fake_kernel files;
    {
        backend b(tree.path, {0}, files);
        files.c->deny_write.insert(setspeed);
        const std::string refused = "cpufreq: cannot set 1500000 kHz on cpu0: writing " + setspeed +
                                    " is not permitted (EACCES (Permission denied)); run as root (or give this user "
                                    "write access to scaling_governor and scaling_setspeed in " +
                                    dir.string() + ")";
        CHECK(what_of([&] { (void)b.set_frequency_hz(1.5e9); }) == refused);
        CHECK(b.failures() == 0);  // the throwing form counts nothing
        CHECK_FALSE(b.try_set_frequency_hz(1.5e9));
        CHECK(b.failures() == 1);
        CHECK(b.last_error() == refused);
        CHECK_FALSE(b.try_set_frequency_hz(1.5e9));
        CHECK_FALSE(b.try_set_frequency_hz(-1.0));
        CHECK(b.failures() == 3);
        CHECK(b.last_error() == "cpufreq: frequency -1 Hz is not a finite number > 0");
        CHECK(b.granted_hz() == 2e9);  // unchanged
        // The kernel refusing the value (EINVAL: the governor changed behind our back).
        files.c->error = EINVAL;
        CHECK_FALSE(b.try_set_frequency_hz(1e9));
        CHECK(b.last_error() == "cpufreq: cannot set 1000000 kHz on cpu0: the kernel refused '1000000' in " + setspeed +
                                    " (EINVAL (Invalid argument)); is its governor still userspace?");
        files.c->deny_write.clear();
        CHECK(b.try_set_frequency_hz(1e9));
        CHECK(b.granted_hz() == 1e9);
        CHECK(b.failures() == 4);
    }
    CHECK(get(dir / "scaling_governor") == "schedutil");  // restored all the same
}

TEST_CASE("cpufreq: bad requests are refused", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    make_cpu(tree.path, 0);
    backend b(tree.path, {0}, fake_kernel{});
    CHECK(what_of([&] { (void)b.set_frequency_hz(0); }) == "cpufreq: frequency 0 Hz is not a finite number > 0");
    CHECK(what_of([&] { (void)b.set_frequency_hz(std::numeric_limits<double>::quiet_NaN()); }) ==
          "cpufreq: frequency nan Hz is not a finite number > 0");
    CHECK(what_of([&] { (void)b.set_frequency_hz(400); }) == "cpufreq: frequency 400 Hz rounds to 0 kHz");
    CHECK(what_of([&] { (void)b.apply(dvfs::frequency_domain{}, 0); }) ==
          "cpufreq: the frequency table '' has no levels");
    CHECK_FALSE(b.try_apply(dvfs::frequency_domain{}, 0));
    CHECK(b.failures() == 1);
}

TEST_CASE("cpufreq: malformed kernel files are named", "[dvfs][cpufreq][errors]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0, {.frequencies = "2000000 fast 1000000"});
    CHECK(what_of([&] { dvfs::cpufreq_backend b(tree.path); }) ==
          "cpufreq: " + (dir / "scaling_available_frequencies").string() + " lists 'fast', not a frequency in kHz");
    put(dir / "scaling_available_frequencies", "");
    CHECK(what_of([&] { dvfs::cpufreq_backend b(tree.path); }) ==
          "cpufreq: " + (dir / "scaling_available_frequencies").string() + " lists no frequencies");
    CHECK(get(dir / "scaling_governor") == "schedutil");
}

TEST_CASE("cpufreq: a driver without a frequency table takes any speed in [min, max]", "[dvfs][cpufreq]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0, {.table = false});
    backend b(tree.path, {0}, fake_kernel{});
    CHECK(b.continuous());
    CHECK(std::vector<double>(b.available_hz().begin(), b.available_hz().end()) == std::vector<double>{1e9, 2e9});
    CHECK(b.kernel_frequency_hz(1.234e9) == 1.234e9);
    CHECK(b.kernel_frequency_hz(0.5e9) == 1e9);
    CHECK(b.kernel_frequency_hz(3e9) == 2e9);
    CHECK(dvfs::read_available_frequencies_hz(tree.path) == std::vector<double>{1e9, 2e9});
    put(dir / "scaling_min_freq", "3000000");
    CHECK(what_of([&] { (void)dvfs::read_available_frequencies_hz(tree.path); }) ==
          "cpufreq: cpu0's scaling_min_freq 3000000 kHz is above scaling_max_freq 2000000 kHz");
}

TEST_CASE("cpufreq: a table's level goes to the nearest kernel frequency", "[dvfs][cpufreq]") {
    using dvfs::nearest_frequency_hz;
    const std::vector<double> avail{1e9, 1.5e9, 2e9};
    CHECK(nearest_frequency_hz(avail, 0) == 1e9);
    CHECK(nearest_frequency_hz(avail, 1.2e9) == 1e9);
    CHECK(nearest_frequency_hz(avail, 1.25e9) == 1.5e9);  // a tie: the higher one
    CHECK(nearest_frequency_hz(avail, 1.4e9) == 1.5e9);
    CHECK(nearest_frequency_hz(avail, 9e9) == 2e9);
    CHECK(nearest_frequency_hz(avail, std::numeric_limits<double>::quiet_NaN()) == 2e9);
    CHECK(nearest_frequency_hz({}, 1e9) == 0);

    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0);
    CHECK(dvfs::read_available_frequencies_hz(tree.path) == avail);
    const dvfs::frequency_domain table("t", {{1e9, 0.9}, {1.4e9, 1.0}, {2e9, 1.2}});
    backend b(tree.path, {0}, fake_kernel{});
    CHECK(b.apply(table, 1) == 1.5e9);
    CHECK(get(dir / "scaling_setspeed") == "1500000");
    CHECK(b.apply(table, 0) == 1e9);
    CHECK(b.apply(table, 99) == 2e9);  // past the highest: the highest
    CHECK(b.try_apply(table, 1));
    CHECK(b.granted_hz() == 1.5e9);
}

TEST_CASE("cpufreq: available() looks without touching", "[dvfs][cpufreq]") {
    const temp_dir tree("earlyexit_cpufreq");
    const auto dir = make_cpu(tree.path, 0);
    CHECK(dvfs::cpufreq_backend::available(tree.path));
    CHECK(dvfs::cpufreq_backend::available(tree.path, 0));
    CHECK_FALSE(dvfs::cpufreq_backend::available(tree.path, 1));
    CHECK(get(dir / "scaling_governor") == "schedutil");
    STATIC_REQUIRE(noexcept(dvfs::cpufreq_backend::available(std::declval<const fs::path&>(), 0u,
                                                              std::declval<const dvfs::real_files&>())));
}

TEST_CASE("real_files: the kernel's errno, no file created, text replaced", "[dvfs][cpufreq][sysfs]") {
    const temp_dir dir("earlyexit_sysfs");
    const dvfs::real_files files;
    CHECK(files.read(dir / "absent").error == ENOENT);
    CHECK_FALSE(files.read(dir / "absent").ok());
    CHECK(files.write(dir / "absent", "1") == ENOENT);
    CHECK_FALSE(fs::exists(dir / "absent"));
    CHECK(files.read(dir.path).error == EISDIR);
    put(dir / "f", "performance");
    CHECK(files.write(dir / "f", "userspace") == 0);
    const auto r = files.read(dir / "f");
    CHECK(r.ok());
    CHECK(r.text == "userspace");  // truncated, not overwritten in place
    STATIC_REQUIRE(dvfs::file_access<fake_kernel>);

    using dvfs::detail::parse_unsigned;
    CHECK(parse_unsigned("1500000\n") == std::optional<std::uint64_t>(1500000));
    CHECK_FALSE(parse_unsigned("").has_value());
    CHECK_FALSE(parse_unsigned("-1").has_value());
    CHECK_FALSE(parse_unsigned("12 kHz").has_value());
    CHECK_FALSE(parse_unsigned("<unsupported>").has_value());
    CHECK(dvfs::detail::words(" a  b\nc\n") == std::vector<std::string_view>{"a", "b", "c"});
}
