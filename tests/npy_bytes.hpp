#pragma once
// Byte-level helpers for the NPY tests and the fuzz corpus generator: write and read a file's
// bytes, and build an NPY file by hand (so a test controls every header byte).

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace earlyexit_test {

inline void spit(const std::filesystem::path& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string slurp(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// An NPY file built by hand: preamble of the given major version, `dict` padded with spaces and
/// a '\n' to a multiple of `align`, then `data` verbatim.
inline std::string npy_file(const std::string& dict, const std::string& data = "", int major = 1,
                            std::size_t align = 64) {
    const std::size_t preamble = major == 1 ? 10 : 12;
    std::string header = dict;
    header.append(align - (preamble + header.size() + 1) % align, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += static_cast<char>(major);
    out += '\0';
    for (std::size_t i = 0; i < preamble - 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return out + header + data;
}

}  // namespace earlyexit_test
