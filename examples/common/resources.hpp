#pragma once
// Where the demo programs find their default data (data/...) and weights (models/...) at run
// time, and how they print the paths they found.
//
// Nothing of the machine a demo was built on is compiled into it. Its defaults are looked up
// in a resource root, a folder holding data/ and models/ as this repository does; the roots,
// in order:
//   1. --data-root DIR (the demo's flag): DIR, and nothing else;
//   2. else the environment variable EARLYEXIT_DATA_DIR, when set and not empty: it, and
//      nothing else;
//   3. else <the program's folder>/../share/earlyexit (the install layout: bin/ beside
//      share/earlyexit/; the build tree links its share/earlyexit/data and models to the
//      sources), then <the program's folder>/share/earlyexit (a program unpacked beside its
//      data).
// A root the user names (1 or 2) is the only one, so a demo never quietly reads other data than
// it was pointed at. The program's folder comes from /proc/self/exe, else from argv[0].
// When no root holds a file, the error names every place looked in and the three ways to
// point the program elsewhere (--data-root, EARLYEXIT_DATA_DIR, or the file's own flag).
//
// display_path(): a path the lookup found, relative to the working directory (the build or
// install prefix of this machine stays out of the output); any other path as given.

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <earlyexit/error.hpp>
#include <fmt/core.h>

namespace earlyexit::demo {

/// Help text of the demos' --data-root flag.
inline constexpr const char* data_root_help =
    "folder holding the demos' data/ and models/ (default: $EARLYEXIT_DATA_DIR, else share/earlyexit in or beside "
    "the program's folder)";

/// One folder that may hold data/ and models/, and why it is looked in (for messages).
struct resource_root {
    std::filesystem::path dir;
    std::string origin;  ///< e.g. "--data-root", "EARLYEXIT_DATA_DIR", "<program folder>/../share/earlyexit"
};

namespace detail {

/// The program a shell would run for argv[0]: a path when it has a '/', else the first
/// executable of that name on `path_env` (PATH; an empty entry is the working directory).
/// Absolute and lexically normal; empty when not found.
[[nodiscard]] inline std::filesystem::path executable_from_argv0(std::string_view argv0, const char* path_env) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (argv0.empty()) return {};
    if (argv0.find('/') != std::string_view::npos) {
        fs::path p = fs::absolute(fs::path(argv0), ec);
        return ec ? fs::path{} : p.lexically_normal();
    }
    std::string_view dirs = path_env ? path_env : "";
    while (true) {
        const std::size_t colon = std::min(dirs.find(':'), dirs.size());
        const std::string_view dir = dirs.substr(0, colon);
        const fs::path candidate = fs::path(dir.empty() ? "." : dir) / argv0;
        if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
            fs::path p = fs::absolute(candidate, ec);
            return ec ? fs::path{} : p.lexically_normal();
        }
        if (colon == dirs.size()) return {};
        dirs.remove_prefix(colon + 1);
    }
}

/// The absolute roots the lookup found files in this process, for display_path().
struct found_roots {
    std::mutex mutex;
    std::vector<std::filesystem::path> roots;

    static found_roots& instance() {
        static found_roots r;
        return r;
    }
    void add(const std::filesystem::path& root) {
        const std::lock_guard lock(mutex);
        for (const auto& r : roots)
            if (r == root) return;
        roots.push_back(root);
    }
    [[nodiscard]] bool holds(const std::filesystem::path& p) {
        const std::lock_guard lock(mutex);
        const std::filesystem::path normal = p.lexically_normal();
        for (const auto& r : roots) {
            const std::filesystem::path rel = normal.lexically_relative(r);
            if (!rel.empty() && *rel.begin() != "..") return true;
        }
        return false;
    }
};

}  // namespace detail

/// The running program's file: /proc/self/exe, else argv[0] (see detail::executable_from_argv0);
/// empty when neither tells.
[[nodiscard]] inline std::filesystem::path executable_path(const char* argv0) {
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec && exe.is_absolute()) return exe;
    return detail::executable_from_argv0(argv0 ? argv0 : "", std::getenv("PATH"));
}

/// The roots to look in, in order (see the file comment): `data_root` (the --data-root flag;
/// empty: not given) alone, else `env` (EARLYEXIT_DATA_DIR; empty or absent: not set) alone,
/// else the two folders beside `exe` (none when exe is empty).
[[nodiscard]] inline std::vector<resource_root> resource_roots(const std::filesystem::path& data_root,
                                                               const std::optional<std::string>& env,
                                                               const std::filesystem::path& exe) {
    if (!data_root.empty()) return {{data_root, "--data-root"}};
    if (env && !env->empty()) return {{*env, "EARLYEXIT_DATA_DIR"}};
    if (exe.empty()) return {};
    const std::filesystem::path dir = exe.parent_path();
    return {{(dir / ".." / "share" / "earlyexit").lexically_normal(), "<program folder>/../share/earlyexit"},
            {(dir / "share" / "earlyexit").lexically_normal(), "<program folder>/share/earlyexit"}};
}

/// Finds the demos' default files in the resource roots. Holds the roots (a value); find() only
/// reads the file system.
class resource_finder {
public:
    /// The roots for this process: the --data-root flag's value (empty: not given), then
    /// EARLYEXIT_DATA_DIR, then the folders beside the program (argv0: main's argv[0]).
    resource_finder(const std::filesystem::path& data_root, const char* argv0) {
        const char* env = std::getenv("EARLYEXIT_DATA_DIR");
        const std::filesystem::path exe = executable_path(argv0);
        roots_ = resource_roots(data_root, env ? std::optional<std::string>(env) : std::nullopt, exe);
    }
    explicit resource_finder(std::vector<resource_root> roots) : roots_(std::move(roots)) {}

    [[nodiscard]] const std::vector<resource_root>& roots() const noexcept { return roots_; }

    /// `relative` (e.g. "data/cifar10/test.tar") in the first root that has it (file or folder).
    /// Throws earlyexit::error naming every place looked in, and how to point the program
    /// elsewhere, `flag` among them (the option that gives this file directly, e.g. "--weights").
    [[nodiscard]] std::filesystem::path find(const std::filesystem::path& relative, std::string_view flag) const {
        namespace fs = std::filesystem;
        std::error_code ec;
        std::string looked;
        for (const resource_root& r : roots_) {
            const fs::path p = r.dir / relative;
            if (fs::exists(p, ec)) {
                if (r.dir.is_absolute()) detail::found_roots::instance().add(r.dir.lexically_normal());
                return p;
            }
            const char* missing = !fs::exists(r.dir, ec)         ? "does not exist"
                                  : !fs::is_directory(r.dir, ec) ? "is not a folder"
                                                                 : nullptr;
            looked += fmt::format("\n  {}  ({}{})", p.string(), r.origin,
                                  missing ? fmt::format(": {} {}", r.dir.string(), missing) : "");
        }
        if (roots_.empty())  // no flag, no variable, and the program's folder unknown
            looked += "\n  nowhere: the program's own folder is unknown (neither /proc/self/exe nor argv[0] gave it)";
        earlyexit::fail("cannot find {} (the default of {}); looked in:{}\n"
                        "Point the program at a folder holding data/ and models/ with --data-root DIR or the environment "
                        "variable EARLYEXIT_DATA_DIR=DIR, or give the file itself with {} PATH",
                        relative.string(), flag, looked, flag);
    }

private:
    std::vector<resource_root> roots_;
};

/// How the demos print a path: one that a resource_finder found (under an absolute root) relative
/// to the working directory, so that neither this machine's install prefix nor its build tree
/// shows in the output; any other path exactly as given (it is what the user typed). A path
/// that cannot be made relative is returned as given.
[[nodiscard]] inline std::filesystem::path display_path(const std::filesystem::path& p) {
    if (!p.is_absolute() || !detail::found_roots::instance().holds(p)) return p;
    std::error_code ec;
    std::filesystem::path rel = std::filesystem::proximate(p, ec);
    return ec || rel.empty() ? p : rel;
}

}  // namespace earlyexit::demo
