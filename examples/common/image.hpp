#pragma once
// image_u8, decode_image, read_image: the demos' one image type, 8-bit RGB decoded by stb_image.
//
// Every decoded image is 3-channel RGB whatever the file holds (grayscale is replicated, alpha is
// dropped), which is what torchvision's loaders do (`Image.open(f).convert("RGB")`). stb_image
// decodes JPEG with its own IDCT and chroma upsampling, so its pixels may differ by a few levels
// from Pillow's libjpeg-turbo; PNG, BMP and other lossless formats decode identically.

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
/// it reads the data). Other files pass untouched.
inline void check_png(std::span<const std::uint8_t> bytes, std::string_view name, std::uint64_t max_pixels) {
    static constexpr std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (bytes.size() < 8 || !std::equal(signature, signature + 8, bytes.begin())) return;
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

/// Throws when an uncompressed PNM (P5, P6) or TGA (types 2, 3) file holds fewer pixel bytes than
/// its header's width x height x channels: stb_image then returns an image whose missing rows are
/// whatever its buffer held (uninitialized memory), not an error. The header is read as
/// stb_image reads it: `width`, `height` from stbi_info, `is_16_bit` from stbi_is_16_bit.
inline void check_raw_data(std::span<const std::uint8_t> bytes, std::string_view name, int width, int height,
                           bool is_16_bit) {
    const auto pixels = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height);
    std::uint64_t offset = 0, need = 0;
    const char* format = "";
    if (bytes.size() >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6')) {
        // stb_image's PNM header: magic, then width, height and maximum value, each after whitespace
        // and '#' comments; the pixels start after the one character that ends the maximum value.
        // get() returns 0 at the end without moving, as stbi__get8 does.
        std::size_t at = 2;
        const auto end = [&] { return at >= bytes.size(); };
        const auto get = [&]() -> char { return end() ? '\0' : static_cast<char>(bytes[at++]); };
        const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
        char c = get();
        const auto skip = [&] {
            for (;;) {
                while (!end() && space(c)) c = get();
                if (end() || c != '#') break;
                while (!end() && c != '\n' && c != '\r') c = get();
            }
        };
        const auto integer = [&] {
            while (!end() && c >= '0' && c <= '9') c = get();
        };
        for (int field = 0; field < 3; ++field) {
            skip();
            integer();
        }
        offset = at;
        need = pixels * (bytes[1] == '6' ? 3 : 1) * (is_16_bit ? 2 : 1);
        format = "PNM";
    } else if (bytes.size() >= 18 && bytes[1] == 0 && (bytes[2] == 2 || bytes[2] == 3)) {
        // No other format stb_image reads has a 0 second byte: this is an uncompressed TGA without
        // a colour map, whose rows are read with the same all-or-nothing read as PNM's pixels.
        const int bits = bytes[16];
        const int channels = bits == 8 ? 1 : bits == 16 ? (bytes[2] == 3 ? 2 : 0) : bits == 24 ? 3 : bits == 32 ? 4 : 0;
        if (channels == 0) return;  // 15/16-bit colour is read pixel by pixel, zeros past the end
        offset = 18 + std::uint64_t{bytes[0]};  // the header, then the image id field
        need = pixels * static_cast<std::uint64_t>(channels);
        format = "TGA";
    } else {
        return;
    }
    const std::uint64_t have = bytes.size() > offset ? bytes.size() - offset : 0;
    if (have < need)
        earlyexit::fail("image {}: cannot decode: truncated {}: {} x {} pixels need {} bytes, the file has {} after the header",
                        name, format, width, height, need, have);
}

}  // namespace detail

/// The most pixels decode_image decodes by default: 2^25 (8192 x 4096), far more than any photo of
/// the demos' datasets. The header's size is checked before stb_image allocates anything, whose
/// largest buffer is then 4 bytes a pixel (RGBA, a GIF frame): 128 MiB. An image of 16-bit samples
/// (PNG, PNM, PSD) counts each pixel twice and an HDR one four times, as their buffers are as much wider.
inline constexpr std::uint64_t default_max_image_pixels = std::uint64_t{1} << 25;

/// Decodes an encoded image (JPEG, PNG, BMP, TGA, GIF, PNM, ... whatever stb_image reads) to RGB.
/// `name` only labels error messages (a file name, or "archive.tar:member"). An image whose header
/// claims more than max_pixels pixels (see default_max_image_pixels) is an error naming its size,
/// before any decoding, so a corrupt or hostile header cannot make it allocate gigabytes. Thread-safe.
inline image_u8 decode_image(std::span<const std::uint8_t> bytes, std::string_view name,
                             std::uint64_t max_pixels = default_max_image_pixels) {
    if (bytes.empty()) earlyexit::fail("image {}: cannot decode: empty (0 bytes)", name);
    if (bytes.size() > static_cast<std::size_t>(INT_MAX))
        earlyexit::fail("image {}: cannot decode: {} bytes is more than stb_image reads", name, bytes.size());
    detail::check_png(bytes, name, max_pixels);
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
    const std::uint64_t sample_bytes = stbi_is_hdr_from_memory(bytes.data(), size) ? 4 : is_16_bit ? 2 : 1;
    const std::uint64_t pixels = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height);
    if (pixels * sample_bytes > max_pixels)
        earlyexit::fail("image {}: cannot decode: {} x {} pixels{} is more than the {} allowed (max_pixels)", name, width,
                        height, sample_bytes == 1 ? "" : sample_bytes == 2 ? " of 16-bit samples (counted twice)" : " of HDR floats (counted 4 times)",
                        max_pixels);
    detail::check_raw_data(bytes, name, width, height, is_16_bit);
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
