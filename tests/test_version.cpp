#include <string>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <earlyexit/version.hpp>

TEST_CASE("version.hpp agrees with the CMake project version", "[version]") {
    CHECK(std::string(earlyexit::version_string) == EARLYEXIT_CMAKE_VERSION);
    CHECK(fmt::format("{}.{}.{}", earlyexit::version_major, earlyexit::version_minor, earlyexit::version_patch) ==
          EARLYEXIT_CMAKE_VERSION);
}
