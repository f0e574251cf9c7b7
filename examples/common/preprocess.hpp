#pragma once
// Image preprocessing that matches the Python side exactly, so the C++ demos feed their networks
// the very tensors PyTorch evaluated:
//   - resize_bilinear: Pillow's Image.resize(size, Image.BILINEAR) on 8-bit RGB, byte for byte
//     (Pillow 9's ImagingResample: separable, antialiased, fixed-point);
//   - resize_shorter_side / center_crop: torchvision 0.14's Resize(int) and CenterCrop on a PIL
//     image, sizes and offsets computed as torchvision does;
//   - normalize_chw: ToTensor + Normalize in float32, bit for bit;
//   - imagenet_eval_transform: the ImageNet eval pipeline built from them.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <earlyexit/error.hpp>

#include "common/image.hpp"

namespace earlyexit::demo {

namespace detail {

/// Pillow's fixed-point format for 8-bit resampling: weights carry 22 fractional bits, leaving
/// 8 bits for the pixel value and 2 for sums that overshoot 1.0 (Resample.c's PRECISION_BITS).
constexpr int resample_precision_bits = 32 - 8 - 2;

/// The taps of a 1-D resampling pass from in_size to out_size samples: output i reads inputs
/// first[i] .. first[i] + count[i] - 1 with weights[i * taps ...], in Pillow's fixed point.
struct resample_taps {
    int taps = 0;
    std::vector<int> first, count;
    std::vector<std::int32_t> weights;
};

/// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter. When
/// downsampling, the triangle is stretched by the scale so that every input contributes
/// (antialiasing). The arithmetic, including its order, follows Pillow's, because the fixed-point
/// rounding of a weight can flip an output byte.
inline resample_taps bilinear_taps(int in_size, int out_size) {
    constexpr double filter_support = 1.0;
    // std::abs between the product (the argument) and `1.0 - x` also keeps compilers from fusing
    // them into one FMA, as center below is kept from fusing.
    const auto triangle = [](double x) {
        x = std::abs(x);
        return x < 1.0 ? 1.0 - x : 0.0;
    };
    const double scale = static_cast<double>(in_size) / out_size;
    const double filter_scale = std::max(scale, 1.0);
    const double support = filter_support * filter_scale;
    const double inv_scale = 1.0 / filter_scale;
    resample_taps r;
    r.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
    r.first.resize(static_cast<std::size_t>(out_size));
    r.count.resize(static_cast<std::size_t>(out_size));
    r.weights.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(r.taps), 0);
    std::vector<double> k(static_cast<std::size_t>(r.taps));
    for (int i = 0; i < out_size; ++i) {
        // Pillow's build rounds this product. A compiler allowed to contract (GCC's default
        // -ffp-contract=fast, with FMA under -march=native) could fuse it into the subtractions
        // below, rounding once less and flipping a weight's last bit: volatile keeps it rounded.
        const volatile double rounded_center = (i + 0.5) * scale;
        const double center = rounded_center;
        // Truncation toward zero of (value + 0.5): Pillow's "round", kept for identical bounds.
        const int first = std::max(static_cast<int>(center - support + 0.5), 0);
        const int count = std::min(static_cast<int>(center + support + 0.5), in_size) - first;
        double sum = 0.0;
        for (int x = 0; x < count; ++x) {
            k[static_cast<std::size_t>(x)] = triangle((x + first - center + 0.5) * inv_scale);
            sum += k[static_cast<std::size_t>(x)];
        }
        for (int x = 0; x < count; ++x) {
            double w = k[static_cast<std::size_t>(x)];
            if (sum != 0.0) w /= sum;
            r.weights[static_cast<std::size_t>(i * r.taps + x)] = static_cast<std::int32_t>(
                w < 0 ? -0.5 + w * (1 << resample_precision_bits) : 0.5 + w * (1 << resample_precision_bits));
        }
        r.first[static_cast<std::size_t>(i)] = first;
        r.count[static_cast<std::size_t>(i)] = count;
    }
    return r;
}

/// A weighted sum in fixed point (started at one half, for round-half-up) back to a byte.
inline std::uint8_t clip8(std::int32_t sum) noexcept {
    return static_cast<std::uint8_t>(std::clamp(sum >> resample_precision_bits, 0, 255));
}

/// Pillow's horizontal pass (ImagingResampleHorizontal_8bpc): every row resampled along x.
inline image_u8 resample_horizontal(const image_u8& in, int out_width) {
    const resample_taps t = bilinear_taps(in.width, out_width);
    image_u8 out(out_width, in.height);
    for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < out_width; ++x) {
            const std::int32_t* w = &t.weights[static_cast<std::size_t>(x * t.taps)];
            const int first = t.first[static_cast<std::size_t>(x)], count = t.count[static_cast<std::size_t>(x)];
            for (int c = 0; c < image_u8::channels; ++c) {
                std::int32_t sum = 1 << (resample_precision_bits - 1);
                for (int k = 0; k < count; ++k) sum += in(y, first + k, c) * w[k];
                out(y, x, c) = clip8(sum);
            }
        }
    return out;
}

/// Pillow's vertical pass (ImagingResampleVertical_8bpc): every column resampled along y. The
/// sums run over whole rows at a time (same integer sums, in an order the compiler vectorizes).
inline image_u8 resample_vertical(const image_u8& in, int out_height) {
    const resample_taps t = bilinear_taps(in.height, out_height);
    image_u8 out(in.width, out_height);
    const std::size_t row = static_cast<std::size_t>(in.width) * image_u8::channels;
    std::vector<std::int32_t> sums(row);
    for (std::size_t y = 0; y < static_cast<std::size_t>(out_height); ++y) {
        std::fill(sums.begin(), sums.end(), 1 << (resample_precision_bits - 1));
        for (int k = 0; k < t.count[y]; ++k) {
            const std::int32_t w = t.weights[y * static_cast<std::size_t>(t.taps) + static_cast<std::size_t>(k)];
            const std::uint8_t* src = &in.pixels[static_cast<std::size_t>(t.first[y] + k) * row];
            for (std::size_t i = 0; i < row; ++i) sums[i] += src[i] * w;
        }
        std::transform(sums.begin(), sums.end(), out.pixels.begin() + static_cast<std::ptrdiff_t>(y * row), clip8);
    }
    return out;
}

}  // namespace detail

/// Width and height of an image.
struct image_size {
    int width = 0, height = 0;
    bool operator==(const image_size&) const = default;
};

/// Pillow's `image.resize((out_width, out_height), Image.BILINEAR)` on an RGB image, byte for
/// byte: a horizontal pass then a vertical one, each rounding to 8 bits; a pass is skipped when
/// that side keeps its size. Throws for empty input or output sizes.
inline image_u8 resize_bilinear(const image_u8& in, image_size out_size) {
    if (in.width <= 0 || in.height <= 0 || out_size.width <= 0 || out_size.height <= 0)
        earlyexit::fail("resize_bilinear: cannot resize {}x{} to {}x{}: sizes must be positive", in.width,
                                in.height, out_size.width, out_size.height);
    const bool across = out_size.width != in.width, down = out_size.height != in.height;
    if (across && down) return detail::resample_vertical(detail::resample_horizontal(in, out_size.width), out_size.height);
    if (across) return detail::resample_horizontal(in, out_size.width);
    if (down) return detail::resample_vertical(in, out_size.height);
    return in;
}

/// torchvision 0.14's `Resize(size)` output size for an int size: the shorter side becomes
/// `size`, the longer `int(size * long / short)` (truncated, as Python's int() does).
inline image_size resized_shorter_side(image_size in, int size) {
    if (in.width <= 0 || in.height <= 0 || size <= 0)
        earlyexit::fail("resize: cannot resize {}x{} to shorter side {}: sizes must be positive", in.width,
                                in.height, size);
    const int short_side = std::min(in.width, in.height), long_side = std::max(in.width, in.height);
    const int new_long = static_cast<int>(static_cast<double>(static_cast<std::int64_t>(size) * long_side) / short_side);
    return in.width <= in.height ? image_size{size, new_long} : image_size{new_long, size};
}

/// torchvision 0.14's `Resize(size)` (bilinear, antialiased) on a PIL image.
inline image_u8 resize_shorter_side(const image_u8& in, int size) {
    return resize_bilinear(in, resized_shorter_side({in.width, in.height}, size));
}

/// torchvision 0.14's `CenterCrop((crop.height, crop.width))`: offsets
/// `int(round((side - crop) / 2.0))` with Python's round-half-to-even; a crop larger than the
/// image is zero-padded the way torchvision pads (the extra pixel, if odd, after).
inline image_u8 center_crop(const image_u8& in, image_size crop) {
    if (crop.width <= 0 || crop.height <= 0)
        earlyexit::fail("center_crop: crop {}x{} must be positive", crop.width, crop.height);
    // Where the crop starts in the image; negative: that much zero padding before the image.
    const auto start = [](int side, int crop_side) {
        if (crop_side > side) return -((crop_side - side) / 2);
        const int d = side - crop_side, half = d / 2;
        return d % 2 == 0 || half % 2 == 0 ? half : half + 1;  // x.5 rounds to the even neighbour
    };
    const int top = start(in.height, crop.height), left = start(in.width, crop.width);
    image_u8 out(crop.width, crop.height);
    for (int y = 0; y < crop.height; ++y) {
        const int sy = y + top;
        if (sy < 0 || sy >= in.height) continue;
        for (int x = 0; x < crop.width; ++x) {
            const int sx = x + left;
            if (sx < 0 || sx >= in.width) continue;
            for (int c = 0; c < image_u8::channels; ++c) out(y, x, c) = in(sy, sx, c);
        }
    }
    return out;
}

/// torchvision's `ToTensor()` then `Normalize(mean, stddev)`: out[c][y][x] =
/// (pixel / 255 - mean[c]) / stddev[c], every step in float32 as PyTorch rounds it (bit-identical).
/// `out` must hold 3 * width * height floats (CHW). Allocates nothing.
inline void normalize_chw(const image_u8& image, std::span<const float, 3> mean, std::span<const float, 3> stddev,
                          float* out) noexcept {
    const std::size_t plane = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height);
    for (std::size_t p = 0; p < plane; ++p)
        for (std::size_t c = 0; c < 3; ++c)
            out[c * plane + p] = (static_cast<float>(image.pixels[p * 3 + c]) / 255.0f - mean[c]) / stddev[c];
}

/// torchvision's ImageNet eval transform: Resize(resize) -> CenterCrop(crop) -> ToTensor ->
/// Normalize(mean, stddev) on an RGB image; the tensor equals torchvision's bit for bit when the
/// image does (JPEG: see image.hpp). Defaults are the ImageNet ones every torchvision model uses.
struct imagenet_eval_transform {
    int resize = 256;  // Resize(resize): the shorter side, in pixels
    int crop = 224;    // CenterCrop(crop): the square fed to the network
    std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};
    std::array<float, 3> stddev = {0.229f, 0.224f, 0.225f};

    /// Floats the output holds: 3 * crop * crop.
    [[nodiscard]] std::size_t output_size() const noexcept {
        return 3 * static_cast<std::size_t>(crop) * static_cast<std::size_t>(crop);
    }

    /// Resize(resize) then CenterCrop(crop): the 8-bit crop x crop square the tensor is made of.
    /// Allocates; keep the squares to preprocess an image once and normalize it many times.
    [[nodiscard]] image_u8 resize_and_crop(const image_u8& image) const {
        return center_crop(resize_shorter_side(image, resize), {crop, crop});
    }

    /// ToTensor + Normalize of a resize_and_crop() square into out (output_size() floats).
    /// Throws naming the size when the square is not crop x crop or out has another size;
    /// allocates nothing.
    void normalize(const image_u8& square, std::span<float> out) const {
        if (out.size() != output_size())
            earlyexit::fail("imagenet_eval_transform: output holds {} floats, needs 3x{}x{} = {}", out.size(),
                                    crop, crop, output_size());
        if (square.width != crop || square.height != crop)
            earlyexit::fail("imagenet_eval_transform: a {}x{} image is not the {}x{} crop to normalize",
                                    square.width, square.height, crop, crop);
        normalize_chw(square, mean, stddev, out.data());
    }

    /// Writes the CHW tensor into out (output_size() floats; another size throws).
    void operator()(const image_u8& image, std::span<float> out) const { normalize(resize_and_crop(image), out); }
};

}  // namespace earlyexit::demo
