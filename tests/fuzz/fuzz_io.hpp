#pragma once
// Helpers of the fuzz targets that read files.
//
// scratch_root(): where a target writes its scratch files: $TMPDIR when set, else /dev/shm when
// there is one (memory: no disk write per input), else the system's temporary folder.
//
// A fuzz input that stands for several files (fuzz_trace: a trace folder): the files' bytes one
// after the other, separated by file_separator. split_files() gives the parts (as many as there
// are separators plus one); join_files() is its inverse, for the corpus generator. A separator
// that the mutator breaks merges two parts, which the reader then sees as one corrupt file and
// a missing one: both worth trying.

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace earlyexit_fuzz {

[[nodiscard]] inline std::filesystem::path scratch_root() {
    if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') return t;
    std::error_code ec;
    if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";
    return std::filesystem::temp_directory_path();
}

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
