// Writes the fuzz_npy seed corpus (tests/fuzz/npy_corpus): valid files of every dtype and shape
// kind the reader supports, written by the library's own writer (byte-for-byte numpy's), the
// header variants numpy and older writers produce, and a few broken files, one per kind of error.
// The corpus is committed; rerun this only to change it:  make_npy_corpus tests/fuzz/npy_corpus
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <earlyexit/trace/npy.hpp>

#include "../npy_bytes.hpp"

namespace {

namespace fs = std::filesystem;
namespace npy = earlyexit::npy;
using earlyexit_test::npy_file;
using earlyexit_test::slurp;
using earlyexit_test::spit;


template <npy::element T>
void valid(const fs::path& dir, const std::string& name) {
    const std::vector<std::vector<std::size_t>> shapes = {{}, {3}, {2, 3}, {2, 1, 2}, {0, 4}};
    const std::vector<std::string> kinds = {"scalar", "1d", "2d", "3d", "empty"};
    for (std::size_t k = 0; k < shapes.size(); ++k) {
        std::size_t n = 1;
        for (std::size_t d : shapes[k]) n *= d;
        std::vector<T> v(n);
        for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<T>(i * 3 + 1);
        npy::write<T>(dir / ("valid_" + name + "_" + kinds[k] + ".npy"), v, shapes[k]);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_npy_corpus <folder>\n");
        return 2;
    }
    const fs::path dir = argv[1];
    fs::create_directories(dir);
    valid<float>(dir, "f4");
    valid<double>(dir, "f8");
    valid<std::int64_t>(dir, "i8");
    valid<std::int32_t>(dir, "i4");
    valid<std::uint8_t>(dir, "u1");

    const std::string i4x3("\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00", 12);
    const std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
    // Header variants the reader accepts.
    spit(dir / "variant_v2.npy", npy_file(dict, i4x3, 2));
    spit(dir / "variant_v3.npy", npy_file(dict, i4x3, 3));
    spit(dir / "variant_align16.npy", npy_file(dict, i4x3, 1, 16));
    spit(dir / "variant_keys_reordered_double_quotes.npy",
         npy_file("{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"<i4\"}", i4x3));
    spit(dir / "variant_python2_long.npy", npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (3L,), }", i4x3));
    spit(dir / "variant_u1_byte_order.npy", npy_file("{'descr': '>u1', 'fortran_order': False, 'shape': (2,), }", "ab"));

    // Broken files, one per kind of error.
    const std::string good = slurp(dir / "valid_f4_2d.npy");
    spit(dir / "broken_empty.npy", "");
    spit(dir / "broken_magic.npy", "PK\x03\x04 not an npy file");
    spit(dir / "broken_truncated_preamble.npy", good.substr(0, 9));
    spit(dir / "broken_truncated_data.npy", good.substr(0, good.size() - 1));
    spit(dir / "broken_trailing_data.npy", good + "x");
    std::string version = good;
    version[6] = '\x04';
    spit(dir / "broken_version.npy", version);
    std::string length = good;
    length[8] = '\xff';
    length[9] = '\x7f';
    spit(dir / "broken_header_length.npy", length);
    spit(dir / "broken_big_endian.npy", npy_file("{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }", i4x3));
    spit(dir / "broken_fortran.npy", npy_file("{'descr': '<i4', 'fortran_order': True, 'shape': (3,), }", i4x3));
    spit(dir / "broken_structured.npy", npy_file("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (3,), }", i4x3));
    spit(dir / "broken_shape_overflow.npy",
         npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", i4x3));
    spit(dir / "broken_duplicate_key.npy",
         npy_file("{'descr': '<i4', 'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", i4x3));
    spit(dir / "broken_shape_not_tuple.npy", npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (3), }", i4x3));
    return 0;
}
