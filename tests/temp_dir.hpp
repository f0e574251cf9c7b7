#pragma once
// temp_dir: a fresh directory under the system temp dir, unique per object (random + clock, so
// test cases that ctest runs in parallel never share one), removed with its contents at scope exit.

#include <chrono>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

#include <fmt/core.h>

namespace earlyexit_test {

struct temp_dir {
    std::filesystem::path path;

    explicit temp_dir(std::string_view prefix = "earlyexit_test") {
        std::random_device rd;
        const auto tick = std::chrono::steady_clock::now().time_since_epoch().count();
        path = std::filesystem::temp_directory_path() / fmt::format("{}_{:x}_{:x}", prefix, rd(), tick);
        std::filesystem::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

/// Changes the working directory for the scope of the object (tests that run programs or
/// resolve relative paths from a folder of their own).
struct cwd_override {
    std::filesystem::path old = std::filesystem::current_path();
    explicit cwd_override(const std::filesystem::path& dir) { std::filesystem::current_path(dir); }
    ~cwd_override() {
        std::error_code ec;
        std::filesystem::current_path(old, ec);
    }
    cwd_override(const cwd_override&) = delete;
    cwd_override& operator=(const cwd_override&) = delete;
};

/// Writes `text` and a newline to p (folders made as needed), as sysfs files read: for fake trees.
inline void put(const std::filesystem::path& p, const std::string& text) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::trunc) << text << '\n';
}

/// The text of p without its trailing newlines and blanks.
inline std::string get(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace earlyexit_test
