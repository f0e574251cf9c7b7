#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/resources.hpp"
#include "error_text.hpp"
#include "temp_dir.hpp"

using namespace earlyexit::demo;
namespace fs = std::filesystem;
using earlyexit_test::what_of;

namespace {

void touch(const fs::path& p) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << "x";
}

/// Sets (or, with nullopt, unsets) an environment variable for the scope of the object.
struct env_override {
    std::string name;
    std::optional<std::string> old;
    env_override(std::string n, const std::optional<std::string>& value) : name(std::move(n)) {
        if (const char* p = std::getenv(name.c_str())) old = p;
        if (value) ::setenv(name.c_str(), value->c_str(), 1);
        else ::unsetenv(name.c_str());
    }
    ~env_override() {
        if (old) ::setenv(name.c_str(), old->c_str(), 1);
        else ::unsetenv(name.c_str());
    }
};

using earlyexit_test::cwd_override;

std::vector<fs::path> dirs(const std::vector<resource_root>& roots) {
    std::vector<fs::path> out;
    for (const auto& r : roots) out.push_back(r.dir);
    return out;
}

}  // namespace

TEST_CASE("resource_roots: --data-root alone, else EARLYEXIT_DATA_DIR alone, else share/earlyexit by the program",
          "[common][resources]") {
    const fs::path exe = "/opt/x/bin/earlyexit-cifar10";
    const auto beside = resource_roots({}, std::nullopt, exe);
    REQUIRE(beside.size() == 2);
    CHECK(beside[0].dir == "/opt/x/share/earlyexit");
    CHECK(beside[0].origin == "<program folder>/../share/earlyexit");
    CHECK(beside[1].dir == "/opt/x/bin/share/earlyexit");
    CHECK(beside[1].origin == "<program folder>/share/earlyexit");
    CHECK(dirs(resource_roots({}, std::string(), exe)) == dirs(beside));  // set but empty: not set

    const auto env = resource_roots({}, std::string("/data/ee"), exe);
    REQUIRE(env.size() == 1);
    CHECK(env[0].dir == "/data/ee");
    CHECK(env[0].origin == "EARLYEXIT_DATA_DIR");

    const auto flag = resource_roots("rel/root", std::string("/data/ee"), exe);
    REQUIRE(flag.size() == 1);
    CHECK(flag[0].dir == "rel/root");
    CHECK(flag[0].origin == "--data-root");

    CHECK(resource_roots({}, std::nullopt, {}).empty());  // the program's folder unknown
}

TEST_CASE("resource_finder::find: the first root holding the file, else every place looked in",
          "[common][resources]") {
    const earlyexit_test::temp_dir t("earlyexit_test_resources");
    touch(t.path / "b" / "data" / "cifar10" / "test.tar");
    touch(t.path / "a" / "models" / "w.safetensors");
    touch(t.path / "b" / "models" / "w.safetensors");
    fs::create_directories(t.path / "b" / "data" / "cifar10" / "val_trace");
    touch(t.path / "file");
    const resource_finder f({{t.path / "a", "first"}, {t.path / "b", "second"}, {t.path / "none", "third"},
                              {t.path / "file", "fourth"}});
    CHECK(f.find("data/cifar10/test.tar", "--data") == t.path / "b" / "data/cifar10/test.tar");
    CHECK(f.find("models/w.safetensors", "--weights") == t.path / "a" / "models/w.safetensors");
    CHECK(f.find("data/cifar10/val_trace", "--calibration") == t.path / "b" / "data/cifar10/val_trace");  // a folder
    CHECK(what_of([&] { (void)f.find("models/other.safetensors", "--weights"); }) ==
          "cannot find models/other.safetensors (the default of --weights); looked in:\n"
          "  " + (t.path / "a" / "models/other.safetensors").string() + "  (first)\n"
          "  " + (t.path / "b" / "models/other.safetensors").string() + "  (second)\n"
          "  " + (t.path / "none" / "models/other.safetensors").string() + "  (third: " + (t.path / "none").string() +
              " does not exist)\n"
          "  " + (t.path / "file" / "models/other.safetensors").string() + "  (fourth: " + (t.path / "file").string() +
              " is not a folder)\n"
          "Point the program at a folder holding data/ and models/ with --data-root DIR or the environment variable "
          "EARLYEXIT_DATA_DIR=DIR, or give the file itself with --weights PATH");
    CHECK(what_of([&] { (void)resource_finder(std::vector<resource_root>{}).find("data/x", "--data"); }) ==
          "cannot find data/x (the default of --data); looked in:\n"
          "  nowhere: the program's own folder is unknown (neither /proc/self/exe nor argv[0] gave it)\n"
          "Point the program at a folder holding data/ and models/ with --data-root DIR or the environment variable "
          "EARLYEXIT_DATA_DIR=DIR, or give the file itself with --data PATH");
}

TEST_CASE("resource_finder: a named root is the only one, even where the program's own share/ has the file",
          "[common][resources]") {
    const earlyexit_test::temp_dir t("earlyexit_test_resources");
    touch(t.path / "mine" / "data" / "cifar10" / "test.tar");
    {
        const env_override env("EARLYEXIT_DATA_DIR", (t.path / "mine").string());
        const resource_finder from_env({}, nullptr);
        REQUIRE(from_env.roots().size() == 1);
        CHECK(from_env.find("data/cifar10/test.tar", "--data") == t.path / "mine" / "data/cifar10/test.tar");
        // The build tree's share/earlyexit has the weights, but the named root does not.
        CHECK(what_of([&] { (void)from_env.find("models/cifar10_multiexit.safetensors", "--weights"); })
                  .starts_with("cannot find models/cifar10_multiexit.safetensors (the default of --weights); looked in:\n"
                               "  " + (t.path / "mine" / "models/cifar10_multiexit.safetensors").string() +
                               "  (EARLYEXIT_DATA_DIR)\nPoint"));

        const resource_finder from_flag(t.path / "nothing", nullptr);  // the flag wins over the variable
        REQUIRE(from_flag.roots().size() == 1);
        CHECK(what_of([&] { (void)from_flag.find("data/cifar10/test.tar", "--data"); })
                  .find("  (--data-root: " + (t.path / "nothing").string() + " does not exist)\n") != std::string::npos);
    }
}

TEST_CASE("resource_finder: in the build tree, <program folder>/../share/earlyexit links to the sources",
          "[common][resources]") {
    // This test program is in <build>/tests, the demos in <build>/examples: both find <build>/share.
    const env_override env("EARLYEXIT_DATA_DIR", std::nullopt);
    const resource_finder f({}, nullptr);
    const fs::path found = f.find("models/cifar10_multiexit.safetensors", "--weights");
    CHECK(found.is_absolute());
    CHECK(fs::equivalent(found, fs::path(EARLYEXIT_SOURCE_DIR) / "models" / "cifar10_multiexit.safetensors"));
    CHECK(fs::equivalent(f.find("data/cifar10/val_trace", "--calibration"),
                         fs::path(EARLYEXIT_SOURCE_DIR) / "data" / "cifar10" / "val_trace"));
}

TEST_CASE("executable_path: /proc/self/exe, else argv[0] as a shell finds it", "[common][resources]") {
    CHECK(executable_path(nullptr) == fs::read_symlink("/proc/self/exe"));
    CHECK(fs::equivalent(executable_path("whatever"), "/proc/self/exe"));

    const earlyexit_test::temp_dir t("earlyexit_test_resources");
    touch(t.path / "bin1" / "prog");  // not executable: skipped
    touch(t.path / "bin2" / "prog");
    fs::permissions(t.path / "bin2" / "prog", fs::perms::owner_all);
    const std::string path = (t.path / "missing").string() + ":" + (t.path / "bin1").string() + ":" +
                             (t.path / "bin2").string();
    CHECK(detail::executable_from_argv0("prog", path.c_str()) == t.path / "bin2" / "prog");
    CHECK(detail::executable_from_argv0("prog", "").empty());
    CHECK(detail::executable_from_argv0("prog", nullptr).empty());
    CHECK(detail::executable_from_argv0("", path.c_str()).empty());
    CHECK(detail::executable_from_argv0("/a/b/../c/prog", path.c_str()) == "/a/c/prog");
    {
        const cwd_override cwd(t.path);
        CHECK(detail::executable_from_argv0("./bin2/prog", nullptr) == fs::current_path() / "bin2" / "prog");
        CHECK(detail::executable_from_argv0("prog", ":/nonexistent").empty());  // "" = the working directory
        CHECK(detail::executable_from_argv0("prog", (":" + (t.path / "bin2").string()).c_str()) ==
              fs::current_path() / "bin2" / "prog");
    }
}

TEST_CASE("display_path: what the lookup found relative to the working directory, anything else as given",
          "[common][resources]") {
    const earlyexit_test::temp_dir t("earlyexit_test_resources");
    touch(t.path / "root" / "data" / "cifar10" / "test.tar");
    touch(t.path / "other" / "data" / "cifar10" / "test.tar");
    const fs::path root = fs::canonical(t.path) / "root";
    const fs::path typed = fs::canonical(t.path) / "other" / "data" / "cifar10" / "test.tar";
    CHECK(display_path(root / "data/cifar10/test.tar") == root / "data/cifar10/test.tar");  // not found yet
    const fs::path found = resource_finder({{root, "r"}}).find("data/cifar10/test.tar", "--data");
    const cwd_override cwd(t.path);
    CHECK(display_path(found) == "root/data/cifar10/test.tar");
    CHECK(display_path(root / "data" / "cifar10") == "root/data/cifar10");  // a path made from what it found
    CHECK(display_path(typed) == typed);                                   // absolute, but given: as given
    CHECK(display_path("../x/./y") == "../x/./y");                         // relative: as given
    {
        const cwd_override below(root / "data");
        CHECK(display_path(found) == "cifar10/test.tar");
    }
}
