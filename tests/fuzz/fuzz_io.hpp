#pragma once
// Helpers of the fuzz targets that read files.
//
// scratch_root(): where a target writes its scratch files: $TMPDIR when set, else /dev/shm when
// there is one (memory: no disk write per input), else the system's temporary folder.
// scratch_file: one file there per fuzzing process, named after the target, removed at exit;
// write(bytes) makes it hold the input (false when it cannot be written).
//
// A fuzz input that stands for several files (fuzz_trace: a trace folder): the files' bytes one
// after the other, separated by file_separator. split_files() gives the parts (as many as there
// are separators plus one); join_files() is its inverse, for the corpus generator. A separator
// that the mutator breaks merges two parts, which the reader then sees as one corrupt file and
// a missing one: both worth trying.

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace earlyexit_fuzz {

[[nodiscard]] inline std::filesystem::path scratch_root() {
    if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') return t;
    std::error_code ec;
    if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";
    return std::filesystem::temp_directory_path();
}

struct scratch_file {
    std::filesystem::path path;

    /// <scratch_root>/earlyexit_fuzz_<target>_<pid><extension>
    scratch_file(std::string_view target, std::string_view extension)
        : path(scratch_root() / (std::string("earlyexit_fuzz_") + std::string(target) + "_" + std::to_string(::getpid()) +
                                 std::string(extension))) {}
    scratch_file(const scratch_file&) = delete;
    scratch_file& operator=(const scratch_file&) = delete;
    ~scratch_file() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }

    [[nodiscard]] bool write(const void* data, std::size_t size) const {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
        return static_cast<bool>(out.flush());
    }
};

inline constexpr std::string_view file_separator = "\n--file--\n";

[[nodiscard]] inline std::vector<std::string_view> split_files(std::string_view bytes) {
    std::vector<std::string_view> parts;
    for (;;) {
        const auto at = bytes.find(file_separator);
        parts.push_back(bytes.substr(0, at));
        if (at == std::string_view::npos) return parts;
        bytes.remove_prefix(at + file_separator.size());
    }
}

/// The bundle of these files (none may contain the separator: split_files would cut it).
[[nodiscard]] inline std::string join_files(const std::vector<std::string>& files) {
    std::string out;
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (i > 0) out += file_separator;
        out += files[i];
    }
    return out;
}

}  // namespace earlyexit_fuzz
