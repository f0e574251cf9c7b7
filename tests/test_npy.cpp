#include <catch2/catch.hpp>
#include <earlyexit/trace/npy.hpp>

#include "npy_bytes.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "temp_dir.hpp"

namespace fs = std::filesystem;
namespace npy = earlyexit::npy;
using earlyexit_test::npy_file;
using earlyexit_test::slurp;
using earlyexit_test::spit;
using Catch::Matchers::Contains;

namespace {

using earlyexit_test::temp_dir;

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }


template <class T>
std::string raw(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

/// Distinct values of T, with extremes and (for floats) signed zero, infinity, NaN, subnormals.
template <class T>
std::vector<T> sample_values(std::size_t n) {
    using lim = std::numeric_limits<T>;
    std::vector<T> special = {lim::min(), lim::max(), lim::lowest(), T(0), T(1)};
    if constexpr (std::is_floating_point_v<T>)
        special.insert(special.end(), {T(-0.0), lim::infinity(), -lim::infinity(), lim::quiet_NaN(), lim::denorm_min()});
    std::vector<T> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = i < special.size() ? special[i] : static_cast<T>(i * 7 + 3);
    return v;
}

template <class T>
void check_round_trip(const temp_dir& dir, const std::vector<std::size_t>& shape) {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    const std::vector<T> values = sample_values<T>(n);
    const fs::path file = dir / "round_trip.npy";
    npy::write<T>(file, values, shape);

    const npy::header h = npy::read_header(file);
    CHECK(h.type == npy::dtype_of<T>);
    CHECK(h.shape == shape);
    CHECK_FALSE(h.fortran_order);
    CHECK(h.data_offset % 64 == 0);
    CHECK(fs::file_size(file) == h.data_offset + n * sizeof(T));

    const npy::array<T> a = npy::read<T>(file);
    CHECK(a.shape == shape);
    CHECK(a.size() == n);
    CHECK(raw(a.data) == raw(values));  // bitwise: NaN and -0.0 included

    const std::string bytes = slurp(file);
    const npy::array<T> b = npy::parse<T>(bytes_of(bytes), "memory");
    CHECK(b.shape == shape);
    CHECK(raw(b.data) == raw(values));
}

const std::string f4_2x3_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

/// The 2x3 float32 array 0..5 as numpy.save writes it (checked against numpy 1.24).
std::string valid_file() { return npy_file(f4_2x3_dict + std::string(20, ' '), raw(std::vector<float>{0, 1, 2, 3, 4, 5})); }

}  // namespace

TEST_CASE("npy dtype_of maps the five element types", "[npy]") {
    STATIC_REQUIRE(npy::dtype_of<float> == npy::dtype::float32);
    STATIC_REQUIRE(npy::dtype_of<double> == npy::dtype::float64);
    STATIC_REQUIRE(npy::dtype_of<std::int64_t> == npy::dtype::int64);
    STATIC_REQUIRE(npy::dtype_of<std::int32_t> == npy::dtype::int32);
    STATIC_REQUIRE(npy::dtype_of<std::uint8_t> == npy::dtype::uint8);
    STATIC_REQUIRE_FALSE(npy::element<std::int16_t>);
    STATIC_REQUIRE_FALSE(npy::element<const float>);
    STATIC_REQUIRE_FALSE(npy::element<char>);
}

TEMPLATE_TEST_CASE("npy round trip of every dtype and shape", "[npy]", float, double, std::int64_t, std::int32_t,
                   std::uint8_t) {
    temp_dir dir;
    for (const std::vector<std::size_t>& shape : std::vector<std::vector<std::size_t>>{{}, {0}, {5}, {2, 3, 4}}) {
        CAPTURE(shape);
        check_round_trip<TestType>(dir, shape);
    }
}

TEST_CASE("npy write produces exactly numpy's bytes", "[npy]") {
    temp_dir dir;
    const fs::path file = dir / "exact.npy";

    SECTION("2x3 float32") {
        npy::write<float>(file, std::vector<float>{0, 1, 2, 3, 4, 5}, std::vector<std::size_t>{2, 3});
        const std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                                     "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
                                     std::string(20 + 38, ' ') + "\n" +  // growth room for axis 0, then pad to 128
                                     std::string("\x00\x00\x00\x00"
                                                 "\x00\x00\x80\x3f"
                                                 "\x00\x00\x00\x40"
                                                 "\x00\x00\x40\x40"
                                                 "\x00\x00\x80\x40"
                                                 "\x00\x00\xa0\x40",
                                                 24);
        CHECK(slurp(file) == expected);
        CHECK(expected == valid_file());
    }
    SECTION("scalar float64: no growth room, shape ()") {
        npy::write<double>(file, std::vector<double>{1.0}, std::vector<std::size_t>{});
        const std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                                     "{'descr': '<f8', 'fortran_order': False, 'shape': (), }" +
                                     std::string(62, ' ') + "\n" + std::string("\0\0\0\0\0\0\xf0\x3f", 8);
        CHECK(slurp(file) == expected);
    }
    SECTION("1-d uint8: trailing comma and '|u1'") {
        npy::write<std::uint8_t>(file, std::vector<std::uint8_t>{1, 2, 3, 4, 255}, std::vector<std::size_t>{5});
        const std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                                     "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }" +
                                     std::string(20 + 40, ' ') + "\n\x01\x02\x03\x04\xff";
        CHECK(slurp(file) == expected);
    }
    SECTION("a header that is already aligned gets a full 64 spaces of padding, like numpy") {
        const std::vector<std::size_t> shape = {1, 0, 10, 10, 10, 10, 10, 10, 10, 10, 1000};
        npy::write<std::int64_t>(file, std::vector<std::int64_t>{}, shape);
        const std::string expected =
            std::string("\x93NUMPY\x01\x00\xb6\x00", 10) +
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 0, 10, 10, 10, 10, 10, 10, 10, 10, 1000), }" +
            std::string(20 + 64, ' ') + "\n";
        CHECK(slurp(file) == expected);
        CHECK(expected.size() == 192);
    }
}

TEST_CASE("npy reads versions 2.0 and 3.0 and the header variants numpy accepts", "[npy]") {
    const std::string data = raw(std::vector<std::int32_t>{-1, 7, 1 << 30});
    const std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
    for (int major : {2, 3}) {
        const std::string file = npy_file(dict, data, major);
        CHECK(std::string(file.data() + 8, 4) == std::string("\x74\0\0\0", 4));  // u32 header length 116
        const auto a = npy::parse<std::int32_t>(bytes_of(file), "v2.npy");
        CHECK(a.shape == std::vector<std::size_t>{3});
        CHECK(a.data == std::vector<std::int32_t>{-1, 7, 1 << 30});
    }
    for (const std::string& variant : {
             std::string("{\"shape\": (3,), \"descr\": \"<i4\", \"fortran_order\": False}"),  // any order, "quotes"
             std::string("{'descr':'<i4','fortran_order':False,'shape':(3L,)}"),            // Python 2 long, no spaces
             std::string(" {\t'descr': '<i4',\n 'fortran_order': False, 'shape': ( 3 , ) , } "),
         }) {
        CAPTURE(variant);
        CHECK(npy::parse<std::int32_t>(bytes_of(npy_file(variant, data)), "variant").data.size() == 3);
        CHECK(npy::parse<std::int32_t>(bytes_of(npy_file(variant, data, 1, 16)), "16-aligned").data.size() == 3);
    }
    const auto u = npy::parse<std::uint8_t>(
        bytes_of(npy_file("{'descr': '<u1', 'fortran_order': False, 'shape': (2, 1), }", "\x05\x06")), "u1");
    CHECK(u.data == std::vector<std::uint8_t>{5, 6});
}

TEST_CASE("npy read_header validates the header only", "[npy]") {
    temp_dir dir;
    const fs::path file = dir / "header_only.npy";
    spit(file, npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 5), }", "only 3 bytes"));
    const npy::header h = npy::read_header(file);
    CHECK(h.type == npy::dtype::float64);
    CHECK(h.shape == std::vector<std::size_t>{4, 5});
    CHECK(h.data_offset == 128);
    CHECK_THROWS_WITH(npy::read<double>(file), Contains("truncated: header says 4x5 float64 = 160 bytes of data, file has 12"));
}

TEST_CASE("npy errors name the source and the offending value", "[npy]") {
    const auto parse_f4 = [](const std::string& bytes) { return npy::parse<float>(bytes_of(bytes), "trace.logits.npy"); };
    const auto header_error = [&](const std::string& dict) { return parse_f4(npy_file(dict, raw(std::vector<float>(6)))); };

    CHECK_THROWS_WITH(npy::parse<float>(bytes_of(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                                                          std::string(8, '\0'))),
                                        "trace.logits.npy"),
                      "trace.logits.npy: dtype '<f8' does not match the requested '<f4'");
    CHECK_THROWS_WITH(parse_f4(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, 10), }",
                                        std::string(212, '\0'))),
                      "trace.logits.npy: truncated: header says 3x4x10 float32 = 480 bytes of data, file has 212");
    CHECK_THROWS_WITH(parse_f4(npy_file(f4_2x3_dict, std::string(28, '\0'))),
                      Contains("trailing bytes after the data: header says 2x3 float32 = 24 bytes of data, file has 28"));
    CHECK_THROWS_WITH(parse_f4("\x93NUMPZ\x01\x00"), "trace.logits.npy: not an NPY file (bad magic)");
    CHECK_THROWS_WITH(parse_f4("PK\x03\x04 this is a zip"), Contains("not an NPY file (bad magic)"));

    std::string v9 = valid_file();
    v9[6] = '\x09';
    CHECK_THROWS_WITH(parse_f4(v9), "trace.logits.npy: unsupported version 9.0");
    v9[6] = '\x01';
    v9[7] = '\x01';
    CHECK_THROWS_WITH(parse_f4(v9), Contains("unsupported version 1.1"));

    CHECK_THROWS_WITH(header_error("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }"),
                      "trace.logits.npy: big-endian dtype '>f4' is not supported");
    CHECK_THROWS_WITH(header_error("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"),
                      "trace.logits.npy: fortran_order True is not supported");
    CHECK_THROWS_WITH(header_error("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }"),
                      Contains("unsupported dtype '<i2'"));
    CHECK_THROWS_WITH(header_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }"),
                      Contains("malformed header: structured dtypes are not supported"));

    struct malformed_case {
        std::string dict, message;
    };
    for (const auto& [dict, message] : std::vector<malformed_case>{
             {"{'descr': '<f4', 'fortran_order': False, }", "missing key 'shape'"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1, }", "unexpected key 'extra'"},
             {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "duplicate key 'descr'"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", "shape is not a tuple: a 1-d shape needs a trailing comma"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", "expected '(', found '['"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", "negative dimension"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,, 3), }", "expected a dimension, found ','"},
             {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", "fortran_order must be True or False, found '0'"},
             {"{'descr': '<f4'; 'fortran_order': False, 'shape': (2, 3), }", "expected ',' or '}', found ';'"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", "unexpected 'x' after the closing '}'"},
             {"{'descr': '<f4', 'fortran_order': False 'shape': (2, 3), }", "expected ',' or '}', found '''"},
             {"{'descr': '<\\x66\\x34', 'fortran_order': False, 'shape': (2, 3), }", "unsupported character in a string"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
              "dimension 99999999999999999999... does not fit in size_t"},
             {"'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "expected '{', found '''"},
             {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", "expected a key string, found the end"},
         }) {
        CAPTURE(dict);
        CHECK_THROWS_WITH(header_error(dict), Contains("trace.logits.npy: malformed header: " + message));
    }

    std::string no_newline = valid_file();
    no_newline[127] = ' ';
    CHECK_THROWS_WITH(parse_f4(no_newline), Contains("malformed header: not terminated by a newline"));
    std::string misaligned = valid_file();
    misaligned.erase(120, 1);
    misaligned[8] = '\x75';
    CHECK_THROWS_WITH(parse_f4(misaligned), Contains("malformed header: data offset 127 is not a multiple of 16"));
}

TEST_CASE("npy rejects absurd shapes without allocating", "[npy]") {
    const auto parse_f4 = [](const std::string& dict) {
        return npy::parse<float>(bytes_of(npy_file(dict, std::string(16, '\0'))), "huge.npy");
    };
    CHECK_THROWS_WITH(parse_f4("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
                      Contains("huge.npy: shape 4294967296x4294967296 float32 is too large"));
    CHECK_THROWS_WITH(parse_f4("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }"),
                      Contains("too large: its size in bytes overflows size_t"));
    CHECK_THROWS_WITH(parse_f4("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"),
                      Contains("truncated: header says 1000000000000 float32 = 4000000000000 bytes of data, file has 16"));
    // A zero dimension makes the product 0 however large the others are.
    const auto zero = npy::parse<float>(
        bytes_of(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 0), }")), "zero");
    CHECK(zero.size() == 0);
    CHECK(zero.shape == std::vector<std::size_t>{18446744073709551615ULL, 0});
    // A header length past the end of the file.
    std::string long_header = valid_file().substr(0, 64);
    long_header[8] = '\xff';
    long_header[9] = '\xff';
    CHECK_THROWS_WITH(npy::parse<float>(bytes_of(long_header), "h.npy"),
                      Contains("h.npy: truncated: header length 65535 runs past the end of the file (64 bytes)"));
}

TEST_CASE("npy file errors name the file", "[npy]") {
    temp_dir dir;
    const fs::path missing = dir / "missing.npy";
    CHECK_THROWS_WITH(npy::read<float>(missing), missing.string() + ": cannot open: No such file or directory");
    CHECK_THROWS_WITH(npy::read_header(missing), Contains("missing.npy: cannot open: No such file or directory"));
    CHECK_THROWS_WITH(npy::read<float>(dir.path), Contains("cannot open"));

    const std::vector<float> five(5);
    CHECK_THROWS_WITH(npy::write<float>(dir / "w.npy", five, std::vector<std::size_t>{2, 3}),
                      (dir / "w.npy").string() + ": shape 2x3 has 6 elements but data has 5");
    CHECK_THROWS_WITH(npy::write<float>(dir / "w.npy", five, std::vector<std::size_t>{1ULL << 32, 1ULL << 32}),
                      Contains("has too many elements but data has 5"));
    CHECK_FALSE(fs::exists(dir / "w.npy"));
    CHECK_THROWS_WITH(npy::write<float>(dir / "no_such_dir" / "w.npy", five, std::vector<std::size_t>{5}),
                      Contains("no_such_dir/w.npy: No such file or directory"));

    const fs::path wrong = dir / "wrong.npy";
    npy::write<double>(wrong, std::vector<double>{1, 2}, std::vector<std::size_t>{2});
    CHECK_THROWS_WITH(npy::read<float>(wrong), wrong.string() + ": dtype '<f8' does not match the requested '<f4'");
    npy::write<float>(wrong, five, std::vector<std::size_t>{5});  // overwrites
    CHECK(npy::read<float>(wrong).size() == 5);
}

namespace {

/// A decode's outcome: "ok <shape> <first element>" or the error message.
template <class T, class F>
std::string outcome(F&& decode) {
    try {
        const npy::array<T> a = decode();
        return fmt::format("ok {} {}", fmt::join(a.shape, "x"), a.data.empty() ? 0.0 : static_cast<double>(a.data[0]));
    } catch (const earlyexit::error& e) {
        return e.what();
    }
}

}  // namespace

TEST_CASE("npy parse (memory) and read (file) decode alike: the same array or the same error", "[npy]") {
    temp_dir dir;
    const fs::path file = dir / "same.npy";
    const std::string valid = valid_file();
    std::vector<std::string> inputs = {valid, valid + "x", npy_file(f4_2x3_dict, raw(std::vector<float>(6, 2.f)), 2),
                                       npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw(std::vector<double>{1}))};
    for (std::size_t n = 0; n < valid.size(); n += 7) inputs.push_back(valid.substr(0, n));
    for (const std::string& bytes : inputs) {
        spit(file, bytes);
        const auto from_memory = outcome<float>([&] { return npy::parse<float>(bytes_of(bytes), file.string()); });
        CAPTURE(bytes.size(), from_memory);
        CHECK(outcome<float>([&] { return npy::read<float>(file); }) == from_memory);
    }
    CHECK(outcome<float>([&] { return npy::parse<float>(bytes_of(valid), "m"); }) == "ok 2x3 0");
}

TEST_CASE("npy the fuzzer's seed corpus: valid files decode and broken ones throw", "[npy]") {
    // tests/fuzz/npy_corpus, written by tests/fuzz/make_npy_corpus.cpp.
    int valid = 0, broken = 0;
    for (const auto& entry : fs::directory_iterator(fs::path(EARLYEXIT_TEST_SOURCE_DIR) / "fuzz" / "npy_corpus")) {
        const std::string name = entry.path().filename().string();
        const std::string bytes = slurp(entry.path());
        std::size_t decoded = 0;
        const auto try_as = [&](auto tag) {
            try {
                (void)npy::parse<decltype(tag)>(bytes_of(bytes), name);
                ++decoded;
            } catch (const earlyexit::error&) {
            }
        };
        try_as(float{}), try_as(double{}), try_as(std::int64_t{}), try_as(std::int32_t{}), try_as(std::uint8_t{});
        CAPTURE(name);
        if (name.starts_with("broken_")) {
            ++broken;
            CHECK(decoded == 0);
        } else {
            ++valid;
            CHECK(decoded == 1);  // as exactly its own dtype
        }
    }
    CHECK(valid >= 25);
    CHECK(broken >= 10);
}

TEST_CASE("npy every truncation of a valid file throws earlyexit::error", "[npy][robustness]") {
    temp_dir dir;
    const std::string file = valid_file();
    REQUIRE(npy::parse<float>(bytes_of(file), "valid").size() == 6);
    for (std::size_t n = 0; n < file.size(); ++n) {
        CAPTURE(n);
        const std::string prefix = file.substr(0, n);
        CHECK_THROWS_AS(npy::parse<float>(bytes_of(prefix), "prefix"), earlyexit::error);
        spit(dir / "prefix.npy", prefix);
        CHECK_THROWS_AS(npy::read<float>(dir / "prefix.npy"), earlyexit::error);
        if (n < 128) CHECK_THROWS_AS(npy::read_header(dir / "prefix.npy"), earlyexit::error);
    }
}

TEST_CASE("npy random mutations of a valid file parse or throw earlyexit::error", "[npy][robustness]") {
    const std::string valid = valid_file();
    // Bytes that steer the parser somewhere interesting, besides uniformly random ones.
    const std::string alphabet = "{}()[],:'\" \n\t-0123456789LTrueFalsdcip<>|f4u1\x93\x01\x02\x03\xff";
    std::mt19937 rng(20240611);
    const auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    int parsed = 0, rejected = 0;
    for (int trial = 0; trial < 5000; ++trial) {
        std::string bytes = valid;
        for (std::size_t m = 1 + pick(4); m > 0; --m) {
            // Mostly the preamble and header (first 128 bytes), sometimes anywhere.
            const std::size_t at = pick(pick(4) == 0 ? bytes.size() : std::min<std::size_t>(bytes.size(), 128));
            const char c = pick(2) ? alphabet[pick(alphabet.size())] : static_cast<char>(pick(256));
            switch (pick(4)) {
                case 0: bytes[at] = c; break;
                case 1: bytes.insert(at, 1, c); break;
                case 2: bytes.erase(at, 1); break;
                default: bytes[at] = static_cast<char>(bytes[at] ^ (1 << pick(8))); break;
            }
            if (bytes.empty()) break;
        }
        CAPTURE(trial);
        try {
            const auto a = npy::parse<float>(bytes_of(bytes), "mutant");
            std::size_t n = 1;
            for (std::size_t d : a.shape) n *= d;
            CHECK(a.size() == n);
            ++parsed;
        } catch (const earlyexit::error&) {
            ++rejected;
        }
    }
    CHECK(parsed > 0);
    CHECK(rejected > 0);
}
