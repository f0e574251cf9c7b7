#pragma once
// earlyexit::npy: reading and writing NumPy .npy files (numpy.lib.format, NEP 1), so traces
// recorded here load with np.load and arrays saved with np.save load here.
//
// Writes format 1.0 byte-for-byte as numpy >= 1.23 does (64-byte aligned header with numpy's
// growth padding); reads 1.0, 2.0 and 3.0. Only little-endian, C-order arrays of the five
// element types below. Every input is validated before anything is allocated from it: a
// malformed, truncated or hostile file throws earlyexit::error, never crashes.

#include <algorithm>
#include <bit>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../atomic_file.hpp"
#include "../config.hpp"
#include "../error.hpp"

namespace earlyexit::npy {

static_assert(std::endian::native == std::endian::little, "earlyexit::npy supports little-endian hosts only");

/// Element type of an array: '<f4', '<f8', '<i8', '<i4', '|u1' in numpy's notation.
enum class dtype { float32, float64, int64, int32, uint8 };

/// The C++ element types that map to a dtype; anything else is a compile error.
template <class T>
concept element = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, std::int64_t> ||
                  std::same_as<T, std::int32_t> || std::same_as<T, std::uint8_t>;

/// The dtype of element type T (float, double, std::int64_t, std::int32_t, std::uint8_t).
template <element T>
inline constexpr dtype dtype_of = std::same_as<T, float>          ? dtype::float32
                                  : std::same_as<T, double>       ? dtype::float64
                                  : std::same_as<T, std::int64_t> ? dtype::int64
                                  : std::same_as<T, std::int32_t> ? dtype::int32
                                                                  : dtype::uint8;

/// A validated .npy header. shape is in elements, outermost axis first ({} for a scalar);
/// data_offset is the byte offset of the raw C-order data (a multiple of 16, 64 for numpy's files).
/// fortran_order is always false in a header this library returns.
struct header {
    dtype type = dtype::float32;
    std::vector<std::size_t> shape;
    bool fortran_order = false;
    std::size_t data_offset = 0;
};

/// A whole array: data in C order (last axis fastest), data.size() == product of shape
/// (1 for a scalar, shape {}).
template <class T>
struct array {
    std::vector<std::size_t> shape;
    std::vector<T> data;
    /// Number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return data.size(); }
};

namespace detail {

inline constexpr std::string_view magic = "\x93NUMPY";
inline constexpr std::size_t write_align = 64;  // numpy's ARRAY_ALIGN
inline constexpr std::size_t read_align = 16;   // what numpy < 1.9 and most other writers used
inline constexpr std::size_t growth_digits = 21;  // numpy's GROWTH_AXIS_MAX_DIGITS

struct dtype_info {
    std::string_view descr, name;
    std::size_t size;
};
inline constexpr dtype_info dtype_table[] = {
    {"<f4", "float32", 4}, {"<f8", "float64", 8}, {"<i8", "int64", 8}, {"<i4", "int32", 4}, {"|u1", "uint8", 1}};
constexpr const dtype_info& info(dtype t) noexcept { return dtype_table[static_cast<std::size_t>(t)]; }

/// Product of the dimensions, or nullopt if it overflows size_t (a zero dimension wins).
inline std::optional<std::size_t> element_count(std::span<const std::size_t> shape) noexcept {
    std::size_t n = 1;
    for (std::size_t d : shape)
        if (d == 0) return 0;
    for (std::size_t d : shape) {
        if (n > SIZE_MAX / d) return std::nullopt;
        n *= d;
    }
    return n;
}

/// "3x4x10", or "scalar" for shape ().
inline std::string shape_str(std::span<const std::size_t> shape) {
    if (shape.empty()) return "scalar";
    return fmt::format("{}", fmt::join(shape, "x"));
}

/// A piece of untrusted header text fit for an error message: printable ASCII, at most 40 chars.
inline std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40))
        out += (c >= 0x20 && c < 0x7f) ? std::string(1, c) : fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    return s.size() > 40 ? out + "..." : out;
}

/// Validates magic, version and header length from the first min(12, file_size) bytes; returns
/// the data offset (preamble + header length), checked against file_size.
inline std::size_t header_extent(std::span<const std::byte> first, std::size_t file_size, std::string_view what) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(first[i]); };
    for (std::size_t i = 0; i < magic.size() && i < first.size(); ++i)
        if (byte(i) != static_cast<unsigned char>(magic[i])) fail("{}: not an NPY file (bad magic)", what);
    if (first.size() < 8) fail("{}: truncated: {} bytes, shorter than the NPY preamble", what, file_size);
    const unsigned major = byte(6), minor = byte(7);
    if (major < 1 || major > 3 || minor != 0) fail("{}: unsupported version {}.{}", what, major, minor);
    const std::size_t preamble = major == 1 ? 10 : 12;
    if (first.size() < preamble)
        fail("{}: truncated: {} bytes, shorter than the NPY {}.0 preamble", what, file_size, major);
    std::size_t length = 0;
    for (std::size_t i = preamble; i-- > 8;) length = length << 8 | byte(i);
    if (length > file_size - preamble)
        fail("{}: truncated: header length {} runs past the end of the file ({} bytes)", what, length, file_size);
    if ((preamble + length) % read_align != 0)
        fail("{}: malformed header: data offset {} is not a multiple of {}", what, preamble + length, read_align);
    return preamble + length;
}

/// A recursive-descent parser for the one Python dict literal numpy writes:
/// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } (keys in any order, either quote).
class header_parser {
public:
    header_parser(std::string_view text, std::string_view what) : s_(text), what_(what) {}

    header parse() {
        if (s_.empty() || s_.back() != '\n') malformed("not terminated by a newline");
        header h;
        bool seen[3] = {false, false, false};
        expect('{');
        while (peek() != '}') {
            const std::string_view key = string_literal("a key");
            const int k = key == keys[0] ? 0 : key == keys[1] ? 1 : key == keys[2] ? 2 : -1;
            if (k < 0) malformed(fmt::format("unexpected key '{}'", excerpt(key)));
            if (seen[k]) malformed(fmt::format("duplicate key '{}'", key));
            seen[k] = true;
            expect(':');
            if (k == 0) h.type = descr();
            if (k == 1) h.fortran_order = boolean();
            if (k == 2) h.shape = shape();
            if (peek() == ',') ++i_;
            else if (peek() != '}') malformed(fmt::format("expected ',' or '}}', found {}", found()));
        }
        ++i_;
        if (peek() != '\0') malformed(fmt::format("unexpected {} after the closing '}}'", found()));
        for (int k = 0; k < 3; ++k)
            if (!seen[k]) malformed(fmt::format("missing key '{}'", keys[k]));
        if (h.fortran_order) fail("{}: fortran_order True is not supported", what_);
        const auto n = element_count(h.shape);
        if (!n || *n > SIZE_MAX / info(h.type).size)
            fail("{}: shape {} {} is too large: its size in bytes overflows size_t", what_, shape_str(h.shape),
                 info(h.type).name);
        return h;
    }

private:
    // Skips whitespace and returns the next character, '\0' at the end ('\0' is never valid).
    char peek() noexcept {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
        return i_ < s_.size() ? s_[i_] : '\0';
    }
    std::string found() {
        return i_ < s_.size() ? fmt::format("'{}'", excerpt(s_.substr(i_, 1))) : std::string("the end of the header");
    }
    [[noreturn]] void malformed(const std::string& why) {
        fail("{}: malformed header: {} (at header offset {})", what_, why, i_);
    }
    void expect(char c) {
        if (peek() != c) malformed(fmt::format("expected '{}', found {}", c, found()));
        ++i_;
    }
    std::string_view string_literal(std::string_view role) {
        const char quote = peek();
        if (quote != '\'' && quote != '"') malformed(fmt::format("expected {} string, found {}", role, found()));
        const std::size_t begin = ++i_;
        while (i_ < s_.size() && s_[i_] != quote) {
            if (s_[i_] == '\\' || s_[i_] < 0x20 || s_[i_] >= 0x7f) malformed("unsupported character in a string");
            ++i_;
        }
        if (i_ == s_.size()) malformed("unterminated string");
        return s_.substr(begin, i_++ - begin);
    }
    dtype descr() {
        if (peek() == '[') malformed("structured dtypes are not supported");
        const std::string_view d = string_literal("a descr");
        if (d.size() == 3 && d.substr(1) == "u1" && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '='))
            return dtype::uint8;  // byte order is meaningless for one byte
        for (const auto& t : dtype_table)
            if (d == t.descr) return static_cast<dtype>(&t - dtype_table);
        for (const auto& t : dtype_table)
            if (d.size() == 3 && d[0] == '>' && d.substr(1) == t.descr.substr(1))
                fail("{}: big-endian dtype '{}' is not supported", what_, d);
        fail("{}: unsupported dtype '{}' (supported: '<f4', '<f8', '<i8', '<i4', '|u1')", what_, excerpt(d));
    }
    bool boolean() {
        peek();
        for (const std::string_view word : {"True", "False"})
            if (s_.substr(i_, word.size()) == word) {
                i_ += word.size();
                return word == "True";
            }
        malformed(fmt::format("fortran_order must be True or False, found {}", found()));
    }
    std::vector<std::size_t> shape() {
        std::vector<std::size_t> dims;
        bool trailing_comma = false;
        expect('(');
        while (peek() != ')') {
            dims.push_back(dimension());
            trailing_comma = peek() == ',';
            if (trailing_comma) ++i_;
            else if (peek() != ')') malformed(fmt::format("expected ',' or ')' in the shape, found {}", found()));
        }
        ++i_;
        if (dims.size() == 1 && !trailing_comma) malformed("shape is not a tuple: a 1-d shape needs a trailing comma");
        return dims;
    }
    std::size_t dimension() {
        if (peek() == '-') malformed("negative dimension in the shape");
        const std::size_t begin = i_;
        std::size_t d = 0;
        for (; i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; ++i_) {
            const auto digit = static_cast<std::size_t>(s_[i_] - '0');
            if (d > (SIZE_MAX - digit) / 10)
                malformed(fmt::format("dimension {}... does not fit in size_t", s_.substr(begin, 20)));
            d = d * 10 + digit;
        }
        if (i_ == begin) malformed(fmt::format("expected a dimension, found {}", found()));
        if (i_ < s_.size() && (s_[i_] == 'L' || s_[i_] == 'l')) ++i_;  // Python 2 long literal
        return d;
    }

    static constexpr std::string_view keys[] = {"descr", "fortran_order", "shape"};
    std::string_view s_;
    std::string_view what_;
    std::size_t i_ = 0;
};

/// Parses the header in bytes[0, extent), where extent = header_extent(...).
inline header parse_header(std::span<const std::byte> bytes, std::size_t extent, std::string_view what) {
    const std::size_t preamble = static_cast<unsigned char>(bytes[6]) == 1 ? 10 : 12;
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + preamble, extent - preamble);
    header h = header_parser(text, what).parse();
    h.data_offset = extent;
    return h;
}

/// Checks that the file's dtype is T's and that exactly its data follows the header.
template <element T>
void check_payload(const header& h, std::size_t available, std::string_view what) {
    if (h.type != dtype_of<T>)
        fail("{}: dtype '{}' does not match the requested '{}'", what, info(h.type).descr, info(dtype_of<T>).descr);
    const std::size_t bytes = *element_count(h.shape) * sizeof(T);
    if (bytes != available)
        fail("{}: {}: header says {} {} = {} bytes of data, file has {}", what,
             available < bytes ? "truncated" : "trailing bytes after the data", shape_str(h.shape),
             info(h.type).name, bytes, available);
}

[[noreturn]] inline void fail_errno(std::string_view what, std::string_view doing, int err) {
    fail("{}: {}: {}", what, doing, err ? std::generic_category().message(err) : "unknown error");
}

/// Opens file for reading and returns its size in bytes.
inline std::size_t open_for_read(std::ifstream& in, const std::filesystem::path& file, const std::string& what) {
    errno = 0;
    in.open(file, std::ios::binary);
    if (!in) fail_errno(what, "cannot open", errno);
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) fail("{}: cannot open: {}", what, ec.message());
    return static_cast<std::size_t>(size);
}

inline void read_exactly(std::ifstream& in, void* out, std::size_t n, const std::string& what) {
    if (n == 0) return;
    if (!in.read(static_cast<char*>(out), static_cast<std::streamsize>(n)))
        fail("{}: read error: file ended early (was it modified while being read?)", what);
}

/// The two sources read() and parse() decode from: source(out, n) copies the next n bytes.
/// Callers never ask for more than the size they validated, so a memory source has no check to do.
struct stream_source {
    std::ifstream& in;
    const std::string& what;
    void operator()(void* out, std::size_t n) const { read_exactly(in, out, n, what); }
};
struct memory_source {
    std::span<const std::byte> bytes;
    std::size_t at = 0;
    void operator()(void* out, std::size_t n) noexcept {
        EARLYEXIT_ASSERT(n <= bytes.size() - at);
        if (n != 0) std::memcpy(out, bytes.data() + at, n);
        at += n;
    }
};

/// Reads and parses the header from the start of a source holding size bytes.
template <class Source>
header read_header(Source& source, std::size_t size, std::string_view what) {
    const std::size_t first = std::min<std::size_t>(size, 12);
    std::vector<std::byte> bytes(first);
    source(bytes.data(), first);
    const std::size_t extent = header_extent(bytes, size, what);  // >= 16 (aligned), <= size
    bytes.resize(extent);
    source(bytes.data() + first, extent - first);
    return parse_header(bytes, extent, what);
}

/// Reads a whole array from the start of a source holding size bytes: the one decoder behind
/// read() (a file) and parse() (memory), so fuzzing parse() exercises read()'s checks too.
template <element T, class Source>
array<T> read_array(Source& source, std::size_t size, std::string_view what) {
    const header h = read_header(source, size, what);
    check_payload<T>(h, size - h.data_offset, what);
    array<T> a{h.shape, std::vector<T>(*element_count(h.shape))};
    source(a.data.data(), a.data.size() * sizeof(T));
    return a;
}

}  // namespace detail

/// Writes data (C order) with the given shape (elements per axis, {} for a scalar) to file as
/// NPY 1.0, byte-for-byte as numpy.save would; creates or replaces the file in one step
/// (write_file_atomically: an interrupted or failed write leaves the old file). Throws
/// earlyexit::error, before touching the file, if the product of shape is not data.size(); and if
/// the file cannot be written.
template <element T>
void write(const std::filesystem::path& file, std::span<const T> data, std::span<const std::size_t> shape) {
    const std::string what = file.string();
    const auto n = detail::element_count(shape);
    if (!n || *n != data.size())
        earlyexit::fail("{}: shape {} has {} elements but data has {}", what, detail::shape_str(shape),
                     n ? std::to_string(*n) : "too many", data.size());
    std::string dims;
    for (std::size_t d : shape) dims += fmt::format("{}, ", d);
    if (shape.size() == 1) dims.pop_back();  // (5,) not (5, )
    else if (!dims.empty()) dims.resize(dims.size() - 2);
    std::string text = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}",
                                   detail::info(dtype_of<T>).descr, dims);
    // numpy leaves room to grow axis 0 in place, then pads with spaces and a final '\n' to a full
    // alignment unit (64 spaces, not 0, when the header is already aligned).
    if (!shape.empty()) text.append(detail::growth_digits - std::to_string(shape[0]).size(), ' ');
    text.append(detail::write_align - (10 + text.size() + 1) % detail::write_align, ' ');
    text += '\n';
    if (text.size() > 0xffff) earlyexit::fail("{}: a {}-d shape needs a header too long for NPY 1.0", what, shape.size());
    std::string preamble(detail::magic);
    preamble += {'\x01', '\x00', static_cast<char>(text.size() & 0xff), static_cast<char>(text.size() >> 8)};

    const std::string_view parts[] = {preamble, text,
                                      {reinterpret_cast<const char*>(data.data()), data.size_bytes()}};
    write_file_atomically(file, parts, "npy::write");
}

/// Reads and validates the header of file only (magic, version, alignment, dict, overflow of
/// the data size); the data is not read or checked. Throws earlyexit::error naming the file.
inline header read_header(const std::filesystem::path& file) {
    const std::string what = file.string();
    std::ifstream in;
    const std::size_t size = detail::open_for_read(in, file, what);
    detail::stream_source source{in, what};
    return detail::read_header(source, size, what);
}

/// Reads a whole array. T must be the file's dtype exactly (no conversion), and the file must
/// hold exactly the data its header describes. Allocates only after the size is validated
/// against the file's. Throws earlyexit::error naming the file and the problem.
template <element T>
array<T> read(const std::filesystem::path& file) {
    const std::string what = file.string();
    std::ifstream in;
    const std::size_t size = detail::open_for_read(in, file, what);
    detail::stream_source source{in, what};
    return detail::read_array<T>(source, size, what);
}

/// parse<T>(bytes, what): read<T> from an in-memory copy of a file, through the same decoder, so
/// it accepts what read<T> accepts and throws the same messages (with `what` where read<T> names
/// the file). Safe on arbitrary bytes (tests/fuzz/fuzz_npy.cpp fuzzes it).
template <element T>
array<T> parse(std::span<const std::byte> bytes, std::string_view what) {
    detail::memory_source source{bytes};
    return detail::read_array<T>(source, bytes.size(), what);
}

}  // namespace earlyexit::npy
