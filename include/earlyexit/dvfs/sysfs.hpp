#pragma once
// File access for the sysfs backends (dvfs/cpufreq.hpp, dvfs/rapl.hpp), as a policy.
//
// The backends never touch files themselves: they call a Files object with
//   read(path)        -> dvfs::file_read {text, error}: the whole file, or the errno why not
//   write(path, text) -> int: 0, or the errno why the text was not written
// dvfs::real_files (the default) uses POSIX open/read/write, so the errno is the kernel's:
// EACCES or EPERM when the file is not writable by this user, ENOENT when absent, EINVAL when
// the kernel refused the value. Tests pass a layer of their own (a fake sysfs tree in a temp
// folder through real_files, wrapped to fail chosen files with EACCES: as root, chmod alone
// cannot make a file unwritable).

#include <cerrno>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#define EARLYEXIT_DVFS_POSIX_FILES 1
#include <fcntl.h>
#include <unistd.h>
#else
#include <fstream>
#endif

namespace earlyexit::dvfs {

/// What a read gives: the text on success (error 0), else the errno and no text.
struct file_read {
    std::string text;
    int error = 0;
    [[nodiscard]] bool ok() const noexcept { return error == 0; }
};

/// A file access layer: read a whole file, write a text to an existing file.
template <class F>
concept file_access = requires(const F& f, const std::filesystem::path& p, std::string_view text) {
    { f.read(p) } -> std::same_as<file_read>;
    { f.write(p, text) } -> std::same_as<int>;
};

/// Real files through POSIX calls (the errno is the kernel's). A write opens with O_TRUNC and
/// never creates the file: writing a sysfs attribute that does not exist is ENOENT. (Without
/// POSIX, a portable stand-in with iostreams: ENOENT for an absent file, else EACCES.)
struct real_files {
#ifdef EARLYEXIT_DVFS_POSIX_FILES
    [[nodiscard]] file_read read(const std::filesystem::path& path) const {
        file_read r;
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            r.error = errno;
            return r;
        }
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n > 0) {
                r.text.append(buf, static_cast<std::size_t>(n));
            } else if (n == 0) {
                break;
            } else if (errno != EINTR) {
                r.error = errno;
                r.text.clear();
                break;
            }
        }
        ::close(fd);
        return r;
    }

    [[nodiscard]] int write(const std::filesystem::path& path, std::string_view text) const {
        const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) return errno;
        int error = 0;
        std::size_t done = 0;
        while (done < text.size()) {
            const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                error = n < 0 ? errno : EIO;
                break;
            }
        }
        if (::close(fd) != 0 && error == 0) error = errno;
        return error;
    }
#else
    [[nodiscard]] file_read read(const std::filesystem::path& path) const {
        file_read r;
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            std::error_code ec;
            r.error = std::filesystem::exists(path, ec) ? EACCES : ENOENT;
            return r;
        }
        r.text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        return r;
    }
    [[nodiscard]] int write(const std::filesystem::path& path, std::string_view text) const {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) return ENOENT;
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        if (!out) return EACCES;
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        out.close();
        return out ? 0 : EIO;
    }
#endif
};
static_assert(file_access<real_files>);

namespace detail {

/// The text without leading and trailing white space (sysfs values end with a newline).
[[nodiscard]] inline std::string_view trim(std::string_view s) noexcept {
    const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    return s;
}

/// A whole number >= 0 (the entire token), or nullopt.
[[nodiscard]] inline std::optional<std::uint64_t> parse_unsigned(std::string_view s) noexcept {
    s = trim(s);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

/// The white-space separated words of a text.
[[nodiscard]] inline std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
        std::size_t j = i;
        while (j < s.size() && !(s[j] == ' ' || s[j] == '\n' || s[j] == '\t' || s[j] == '\r')) ++j;
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

/// "EACCES (Permission denied)" and the like, for messages.
[[nodiscard]] inline std::string errno_text(int e) {
    const char* name = e == EACCES  ? "EACCES"
                       : e == EPERM  ? "EPERM"
                       : e == ENOENT ? "ENOENT"
                       : e == EINVAL ? "EINVAL"
                       : e == EBUSY  ? "EBUSY"
                       : e == EIO    ? "EIO"
                                     : nullptr;
    const std::string what = std::generic_category().message(e);
    return name ? std::string(name) + " (" + what + ")" : "errno " + std::to_string(e) + " (" + what + ")";
}

[[nodiscard]] inline bool not_permitted(int e) noexcept { return e == EACCES || e == EPERM; }

/// Why a sysfs file could not be read, as read_or_fail() tells a backend's hint.
enum class read_problem : unsigned char {
    folder_absent,  ///< ENOENT, and the folder itself is absent (no such device here)
    file_missing,   ///< ENOENT in a folder that exists (the driver does not offer the file)
    not_permitted,  ///< EACCES or EPERM
};

/// The whole file folder/name through `files`. On failure throws earlyexit::error, prefixed
/// "<who>: ", whose text hint(read_problem) -> std::string completes (called only then):
///   folder_absent  "<folder> not found: <hint>"
///   file_missing   "<path> is missing<hint>"
///   not_permitted  "reading <path> is not permitted (<errno text>): <hint>"
///   any other      "cannot read <path>: <errno text>" (no hint)
/// The cpufreq backend and the RAPL meter read every file through it.
template <file_access Files, class Hint>
[[nodiscard]] std::string read_or_fail(const Files& files, const std::filesystem::path& folder, const char* name,
                                       std::string_view who, Hint&& hint) {
    const auto path = folder / name;
    auto r = files.read(path);
    if (r.ok()) return std::move(r.text);
    if (r.error == ENOENT) {
        std::error_code ec;
        if (!std::filesystem::exists(folder, ec))
            earlyexit::fail("{}: {} not found: {}", who, folder.string(), hint(read_problem::folder_absent));
        earlyexit::fail("{}: {} is missing{}", who, path.string(), hint(read_problem::file_missing));
    }
    if (not_permitted(r.error))
        earlyexit::fail("{}: reading {} is not permitted ({}): {}", who, path.string(), errno_text(r.error),
                        hint(read_problem::not_permitted));
    earlyexit::fail("{}: cannot read {}: {}", who, path.string(), errno_text(r.error));
}

/// The failures of a device's noexcept operations: how many, and the last one's message.
struct failure_log {
    std::size_t count = 0;
    std::string last;

    void note(const char* what) noexcept {
        ++count;
        try {
            last = what;
        } catch (...) {
            last.clear();
        }
    }
    /// Runs f(); true when it returned, false (noted) when it threw. `unknown` names a throw
    /// that is no std::exception.
    template <class F>
    bool attempt(F&& f, const char* unknown) noexcept {
        try {
            f();
            return true;
        } catch (const std::exception& e) {
            note(e.what());
        } catch (...) {
            note(unknown);
        }
        return false;
    }
};

}  // namespace detail

}  // namespace earlyexit::dvfs
