#pragma once
// Library version. Kept equal to project(VERSION) in CMakeLists.txt (a test checks it).

#include <string_view>

#define EARLYEXIT_VERSION_MAJOR 0
#define EARLYEXIT_VERSION_MINOR 1
#define EARLYEXIT_VERSION_PATCH 0

namespace earlyexit {

inline constexpr int version_major = EARLYEXIT_VERSION_MAJOR;
inline constexpr int version_minor = EARLYEXIT_VERSION_MINOR;
inline constexpr int version_patch = EARLYEXIT_VERSION_PATCH;
inline constexpr std::string_view version_string = "0.1.0";

}  // namespace earlyexit
