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

}  // namespace detail

/// Decodes an encoded image (JPEG, PNG, BMP, TGA, GIF, PNM, ... whatever stb_image reads) to RGB.
/// `name` only labels error messages (a file name, or "archive.tar:member"). Thread-safe.
inline image_u8 decode_image(std::span<const std::uint8_t> bytes, std::string_view name) {
    if (bytes.empty()) earlyexit::fail("image {}: cannot decode: empty (0 bytes)", name);
    if (bytes.size() > static_cast<std::size_t>(INT_MAX))
        earlyexit::fail("image {}: cannot decode: {} bytes is more than stb_image reads", name, bytes.size());
    int width = 0, height = 0, channels_in_file = 0;
    const std::unique_ptr<stbi_uc, void (*)(void*)> data(
        stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height, &channels_in_file,
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
