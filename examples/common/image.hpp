#pragma once
// image_u8, decode_image, read_image: the demos' one image type, 8-bit RGB decoded by stb_image.
//
// Every decoded image is 3-channel RGB whatever the file holds (grayscale is replicated, alpha is
// dropped), which is what torchvision's loaders do (`Image.open(f).convert("RGB")`). stb_image
// decodes JPEG with its own IDCT and chroma upsampling, so its pixels may differ by a few levels
// from Pillow's libjpeg-turbo; PNG, BMP and PNM decode identically. Only those four formats are
// read (decode_image says why).

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <earlyexit/error.hpp>
#include <fmt/format.h>
#include <stb_image.h>

namespace earlyexit::demo {

/// An 8-bit RGB image, channels interleaved (HWC), rows top to bottom: channel c of the pixel
/// at row y, column x is pixels[(y * width + x) * 3 + c]. A plain value type; pixels.size() is
/// always width * height * 3.
struct image_u8 {
    static constexpr int channels = 3;

    int width = 0, height = 0;
    std::vector<std::uint8_t> pixels;

    image_u8() = default;
    /// A width x height image, all pixels zero.
    image_u8(int width_, int height_)
        : width(width_), height(height_),
          pixels(static_cast<std::size_t>(width_) * static_cast<std::size_t>(height_) * channels) {}

    std::uint8_t& operator()(int y, int x, int c) noexcept { return pixels[index(y, x, c)]; }
    std::uint8_t operator()(int y, int x, int c) const noexcept { return pixels[index(y, x, c)]; }

private:
    [[nodiscard]] std::size_t index(int y, int x, int c) const noexcept {
        return (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) * channels +
               static_cast<std::size_t>(c);
    }
};

namespace detail {

/// The whole file as bytes; errors name the file and the system's reason.
inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file) {
    errno = 0;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        const int err = errno;
        earlyexit::fail("{}: cannot open: {}", file.string(),
                                err ? std::generic_category().message(err) : "unknown error");
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) earlyexit::fail("{}: cannot open: {}", file.string(), ec.message());
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    if (!bytes.empty() && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
        earlyexit::fail("{}: read error: file ended early (was it modified while being read?)", file.string());
    return bytes;
}

/// Throws when a PNG's IHDR claims more than max_pixels (see decode_image: stbi_info refuses a PNG
/// over 2^30 bytes as "unknown image type", without its size), or when a chunk claims more bytes
/// than the file has left (stb_image allocates an IDAT chunk's claimed length, up to 2 GiB, before
/// it reads the data). `bytes` is a PNG (sniff_image_format, below: decode_image sniffs once).
inline void check_png(std::span<const std::uint8_t> bytes, std::string_view name, std::uint64_t max_pixels) {
    for (std::size_t at = 8; bytes.size() - at >= 8;) {
        const auto be32 = [&](std::size_t i) {
            return std::uint32_t{bytes[i]} << 24 | std::uint32_t{bytes[i + 1]} << 16 | std::uint32_t{bytes[i + 2]} << 8 |
                   std::uint32_t{bytes[i + 3]};
        };
        const std::uint32_t length = be32(at), type = be32(at + 4);
        const std::size_t left = bytes.size() - at - 8;
        const bool letters = std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(at + 4),
                                         bytes.begin() + static_cast<std::ptrdiff_t>(at + 8),
                                         [](std::uint8_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; });
        if (length > left)
            earlyexit::fail("image {}: cannot decode: PNG chunk {} at offset {} claims {} bytes, the file has {} left", name,
                            letters ? fmt::format("'{}'", std::string(bytes.begin() + static_cast<std::ptrdiff_t>(at + 4),
                                                                      bytes.begin() + static_cast<std::ptrdiff_t>(at + 8)))
                                    : fmt::format("0x{:08x}", type),
                            at, length, left);
        if (type == 0x49484452 && length >= 13) {  // IHDR: width, height, bit depth
            const std::uint64_t width = be32(at + 8), height = be32(at + 12), sample_bytes = bytes[at + 16] == 16 ? 2 : 1;
            if (width * height * sample_bytes > max_pixels)
                earlyexit::fail("image {}: cannot decode: {} x {} pixels{} is more than the {} allowed (max_pixels)", name,
                                width, height, sample_bytes == 1 ? "" : " of 16-bit samples (counted twice)", max_pixels);
        }
        if (type == 0x49454e44) return;  // IEND
        at += 8 + std::size_t{length} + std::min<std::size_t>(4, left - length);  // the CRC, when it is there
    }
}

/// The formats decode_image reads, told apart by their first bytes.
enum class image_format { jpeg, png, bmp, pnm, other };

/// JPEG (FF D8 FF), PNG (its 8-byte signature), BMP ("BM") or binary PNM ("P5", "P6"): what image
/// datasets hold. Anything else is `other`, which decode_image refuses before stb_image sees it.
[[nodiscard]] inline image_format sniff_image_format(std::span<const std::uint8_t> b) noexcept {
    static constexpr std::uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (b.size() >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return image_format::jpeg;
    if (b.size() >= 8 && std::equal(png, png + 8, b.begin())) return image_format::png;
    if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return image_format::bmp;
    if (b.size() >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return image_format::pnm;
    return image_format::other;
}

/// Throws when a JPEG's Huffman table (a DHT segment) declares more than 256 codes: stb_image
/// writes one byte per code into tables of 256 (a buffer overflow; found by fuzz_image once
/// stb_image was compiled into it). The markers are walked as stb_image walks them: segments by
/// their length, fill bytes (FF FF) skipped, and entropy-coded data byte by byte up to the next
/// marker. Bytes past the end count as 0, as stb_image reads them. `b` is a JPEG.
inline void check_jpeg(std::span<const std::uint8_t> b, std::string_view name) {
    const std::size_t n = b.size();
    const auto byte_at = [&](std::size_t i) -> std::size_t { return i < n ? b[i] : 0; };
    for (std::size_t p = 2; p < n;) {
        if (b[p] != 0xff) {  // entropy-coded data, or a stray byte stb_image skips
            ++p;
            continue;
        }
        std::size_t q = p + 1;
        while (q < n && b[q] == 0xff) ++q;
        if (q >= n) return;
        const std::uint8_t m = b[q];
        if (m == 0xd9) return;  // EOI
        if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd8)) {  // a stuffed 0, TEM, RSTn, SOI: no length
            p = q + 1;
            continue;
        }
        const std::size_t length = byte_at(q + 1) << 8 | byte_at(q + 2), end = q + 1 + length;
        if (m == 0xc4) {  // DHT: tables of a class/id byte, 16 code counts, then the codes' symbols
            for (std::size_t t = q + 3; t < end && t < n;) {
                std::size_t codes = 0;
                for (std::size_t i = 1; i <= 16; ++i) codes += byte_at(t + i);
                if (codes > 256)
                    earlyexit::fail("image {}: cannot decode: JPEG Huffman table at offset {} declares {} codes (at most 256)",
                                    name, t, codes);
                t += 17 + codes;
            }
        }
        p = std::max(end, q + 1);
    }
}

/// A binary PNM header (P5, P6) read as stb_image reads it: the magic, then width, height and
/// maximum value, each after whitespace and '#' comments; the pixels start after the one character
/// that ends the maximum value. get() returns 0 at the end without moving, as stbi__get8 does.
/// The numbers saturate at 2^40 (stb_image's own reading overflows an int: undefined behaviour).
struct pnm_header {
    std::uint64_t fields[3] = {};  ///< width, height, maximum value
    std::size_t data_offset = 0;
};

[[nodiscard]] inline pnm_header read_pnm_header(std::span<const std::uint8_t> bytes) {
    pnm_header h;
    std::size_t at = 2;
    const auto end = [&] { return at >= bytes.size(); };
    const auto get = [&]() -> char { return end() ? '\0' : static_cast<char>(bytes[at++]); };
    const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    char c = get();
    for (std::uint64_t& field : h.fields) {
        for (;;) {  // whitespace and comments
            while (!end() && space(c)) c = get();
            if (end() || c != '#') break;
            while (!end() && c != '\n' && c != '\r') c = get();
        }
        for (; !end() && c >= '0' && c <= '9'; c = get())
            field = std::min<std::uint64_t>(field * 10 + static_cast<std::uint64_t>(c - '0'), std::uint64_t{1} << 40);
    }
    h.data_offset = at;
    return h;
}

/// The largest number a PNM header may hold: larger sides exceed any max_pixels anyway.
inline constexpr std::uint64_t max_pnm_header_number = std::uint64_t{1} << 25;

/// Throws when a binary PNM header holds a number over max_pnm_header_number, before stb_image
/// reads it into an int (found by fuzz_image: "P6444444444..." overflowed it), or a maximum value
/// over 255 (16 bits a sample).
inline void check_pnm_header(const pnm_header& h, std::string_view name) {
    static constexpr const char* names[3] = {"width", "height", "maximum value"};
    for (int f = 0; f < 3; ++f)
        if (h.fields[f] > max_pnm_header_number)
            earlyexit::fail("image {}: cannot decode: the PNM header's {} is over {}", name, names[f],
                            max_pnm_header_number);
    // stb_image 2.27 converts a 16-bit PNM's channels with its 8-bit routine, then reads past the
    // end of that buffer (a heap overflow found by fuzz_image): 16-bit PNM is not read.
    if (h.fields[2] > 255)
        earlyexit::fail("image {}: cannot decode: a 16-bit PNM (maximum value {}) is not read (only 8-bit, up to 255)",
                        name, h.fields[2]);
}

/// Throws when a binary PNM (P5, P6) file holds fewer pixel bytes than its header's
/// width x height x channels: stb_image then returns an image whose missing rows are whatever its
/// buffer held (uninitialized memory), not an error. `h` is the file's header (read_pnm_header),
/// `width`, `height` from stbi_info, `is_16_bit` from stbi_is_16_bit.
inline void check_pnm_data(std::span<const std::uint8_t> bytes, const pnm_header& h, std::string_view name, int width,
                           int height, bool is_16_bit) {
    const auto pixels = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height);
    const std::uint64_t need = pixels * (bytes[1] == '6' ? 3 : 1) * (is_16_bit ? 2 : 1);
    const std::uint64_t have = bytes.size() - h.data_offset;
    if (have < need)
        earlyexit::fail("image {}: cannot decode: truncated PNM: {} x {} pixels need {} bytes, the file has {} after the header",
                        name, width, height, need, have);
}

/// Throws when an uncompressed BMP holds fewer pixel bytes than its rows need (each row padded to 4
/// bytes): stb_image reads the missing rows as zeros and returns them as pixels (found by
/// fuzz_image: 180 bytes that claimed 5 x 2097155 pixels). `width`, `height` from stbi_info; the
/// rows start at the header's pixel-data offset (one inside the header sends stb_image to the end
/// of the file: no row is there). `b` is a BMP.
inline void check_bmp_data(std::span<const std::uint8_t> b, std::string_view name, int width, int height) {
    if (b.size() < 30) return;
    const auto le = [&](std::size_t at, int bytes) {
        std::uint64_t v = 0;
        for (int i = bytes - 1; i >= 0; --i) v = v << 8 | b[at + static_cast<std::size_t>(i)];
        return v;
    };
    const std::uint64_t offset = le(10, 4), header = le(14, 4);
    const std::uint64_t bpp = header == 12 ? le(24, 2) : le(28, 2);
    const std::uint64_t compression = header == 12 || b.size() < 34 ? 0 : le(30, 4);
    if ((compression != 0 && compression != 3) || bpp == 0) return;  // stb_image refuses or reads them its own way
    const std::uint64_t header_end = 14 + header + (header == 40 && compression == 3 ? 12 : 0);
    const std::uint64_t stride = (static_cast<std::uint64_t>(width) * bpp + 31) / 32 * 4;
    const std::uint64_t need = stride * static_cast<std::uint64_t>(height);
    const std::uint64_t have = offset >= header_end && b.size() > offset ? b.size() - offset : 0;
    if (have < need)
        earlyexit::fail("image {}: cannot decode: truncated BMP: {} x {} pixels at {} bits need {} bytes, the file has {} "
                        "after the header",
                        name, width, height, bpp, need, have);
}

}  // namespace detail

/// The most pixels decode_image decodes by default: 2^25 (8192 x 4096), far more than any photo of
/// the demos' datasets. The header's size is checked before stb_image allocates anything, whose
/// largest buffer is then 4 bytes a pixel (RGBA): 128 MiB. An image of 16-bit samples (PNG, PNM)
/// counts each pixel twice, as its buffers are twice as wide.
inline constexpr std::uint64_t default_max_image_pixels = std::uint64_t{1} << 25;

/// Decodes a JPEG, PNG, BMP or binary PNM (P5, P6) image to RGB. Other formats are refused before
/// stb_image sees them (sniff_image_format): image datasets do not use them, and stb_image's
/// decoders for GIF, PSD, HDR, PIC and TGA are where most of its fuzzing findings have been.
/// `name` only labels error messages (a file name, or "archive.tar:member"). An image whose header
/// claims more than max_pixels pixels (see default_max_image_pixels) is an error naming its size,
/// before any decoding, so a corrupt or hostile header cannot make it allocate gigabytes. Thread-safe.
inline image_u8 decode_image(std::span<const std::uint8_t> bytes, std::string_view name,
                             std::uint64_t max_pixels = default_max_image_pixels) {
    if (bytes.empty()) earlyexit::fail("image {}: cannot decode: empty (0 bytes)", name);
    if (bytes.size() > static_cast<std::size_t>(INT_MAX))
        earlyexit::fail("image {}: cannot decode: {} bytes is more than stb_image reads", name, bytes.size());
    using detail::image_format;
    const image_format format = detail::sniff_image_format(bytes);
    if (format == image_format::other)
        earlyexit::fail("image {}: cannot decode: not a JPEG, PNG, BMP or binary PNM (P5, P6) file (first bytes {:02x})",
                        name, fmt::join(bytes.first(std::min<std::size_t>(bytes.size(), 4)), " "));
    const detail::pnm_header pnm = format == image_format::pnm ? detail::read_pnm_header(bytes) : detail::pnm_header{};
    if (format == image_format::png) detail::check_png(bytes, name, max_pixels);
    if (format == image_format::jpeg) detail::check_jpeg(bytes, name);
    if (format == image_format::pnm) detail::check_pnm_header(pnm, name);
    const int size = static_cast<int>(bytes.size());
    int width = 0, height = 0, channels_in_file = 0;
    if (!stbi_info_from_memory(bytes.data(), size, &width, &height, &channels_in_file)) {
        const char* reason = stbi_failure_reason();
        earlyexit::fail("image {}: cannot decode: {}", name, reason ? reason : "unknown reason");
    }
    // stb_image "decodes" a PNM header of width or height 0 (e.g. "P6 x 5 255") to an empty image.
    if (width <= 0 || height <= 0)
        earlyexit::fail("image {}: cannot decode: the header says {} x {} pixels, an empty image", name, width, height);
    const bool is_16_bit = stbi_is_16_bit_from_memory(bytes.data(), size) != 0;
    const std::uint64_t sample_bytes = is_16_bit ? 2 : 1;
    const std::uint64_t pixels = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height);
    if (pixels * sample_bytes > max_pixels)
        earlyexit::fail("image {}: cannot decode: {} x {} pixels{} is more than the {} allowed (max_pixels)", name, width,
                        height, sample_bytes == 1 ? "" : " of 16-bit samples (counted twice)", max_pixels);
    if (format == image_format::pnm) detail::check_pnm_data(bytes, pnm, name, width, height, is_16_bit);
    if (format == image_format::bmp) detail::check_bmp_data(bytes, name, width, height);
    const std::unique_ptr<stbi_uc, void (*)(void*)> data(
        stbi_load_from_memory(bytes.data(), size, &width, &height, &channels_in_file,
                              image_u8::channels),
        &stbi_image_free);
    if (!data) {
        const char* reason = stbi_failure_reason();
        earlyexit::fail("image {}: cannot decode: {}", name, reason ? reason : "unknown reason");
    }
    image_u8 image(width, height);
    std::copy_n(data.get(), image.pixels.size(), image.pixels.begin());
    return image;
}

/// Reads and decodes an image file (see decode_image).
inline image_u8 read_image(const std::filesystem::path& file) {
    return decode_image(detail::read_file_bytes(file), file.string());
}

}  // namespace earlyexit::demo
