#pragma once
// corruption, parse_corruption, describe, corrupt: deterministic image corruptions for the drift
// experiments (clean test images, then from some sample on the same images corrupted).
//
// A corruption is a separable Gaussian blur followed by additive Gaussian noise, in that order:
//   1. blur (blur_sigma > 0): the image is convolved with a normalized Gaussian of standard
//      deviation blur_sigma pixels, radius ceil(3 * blur_sigma), horizontally then vertically,
//      each channel on its own; pixels outside the image are the nearest edge pixel (clamped,
//      i.e. replicated edges). Both passes are computed in double, without rounding in between.
//   2. noise (noise_std > 0): an independent N(0, noise_std^2) value on the [0, 1] pixel scale is
//      added to every channel value (noise_std 0.08 is 0.08 * 255 = 20.4 levels).
//   3. the result is clipped to [0, 255] and rounded to the nearest integer (halves up), once,
//      at the end.
// A corruption with neither blur nor noise returns the image unchanged, bit for bit.
//
// The noise of an image depends only on (seed, sample_index), never on what was corrupted before,
// so a replay and a live run (or two runs in any order, on any thread) see the same pixels. The
// random stream is self-contained and specified exactly: splitmix64 seeded from (seed,
// sample_index), 53-bit uniforms, Box-Muller written here (std::normal_distribution's output is
// implementation-defined). Only std::log/std::sqrt/std::cos/std::sin come from the C library;
// libraries that round those differently in the last bit could flip a pixel that lands exactly
// on a rounding boundary, which in practice does not happen.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include <earlyexit/error.hpp>

#include "common/image.hpp"

namespace earlyexit::demo {

/// What corrupt() does to an image: blur first, then noise (see the top of this file). All zero
/// (the default) is no corruption. seed only matters with noise.
struct corruption {
    static constexpr double max_noise_std = 1.0;    // on the [0, 1] pixel scale
    static constexpr double max_blur_sigma = 10.0;  // pixels

    double noise_std = 0;   // std of the additive Gaussian noise, [0, 1] pixel scale
    double blur_sigma = 0;  // std of the Gaussian blur, pixels
    std::uint64_t seed = 0; // with sample_index, chooses the noise

    /// True when corrupt() returns its image unchanged (no blur, no noise).
    [[nodiscard]] bool is_none() const noexcept { return noise_std == 0 && blur_sigma == 0; }

    bool operator==(const corruption&) const = default;
};

namespace detail {

/// splitmix64 (Steele, Lea and Flood; Vigna's reference splitmix64.c): a 64-bit generator whose
/// every output is a bijective mix of a counter, so any starting state is a good one.
struct splitmix64 {
    std::uint64_t state = 0;

    /// The mixing function alone (the finalizer of the reference code).
    static constexpr std::uint64_t mix(std::uint64_t z) noexcept {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    constexpr std::uint64_t next() noexcept { return mix(state += 0x9E3779B97F4A7C15ull); }
};

/// The starting state of the noise stream of one image. mix is a bijection, so for one seed every
/// sample_index starts its own stream; two seeds share a stream only where mix(seed1) ^ mix(seed2)
/// equals index1 ^ index2, a chance of about one in 2^64 per pair.
constexpr std::uint64_t noise_stream_state(std::uint64_t seed, std::uint64_t sample_index) noexcept {
    return splitmix64::mix(splitmix64::mix(seed) ^ sample_index);
}

/// Standard normal values by Box-Muller from a splitmix64 stream, two per pair of uniforms: u1 in
/// (0, 1] (so log(u1) is finite), u2 in [0, 1), both on 53-bit grids; then
/// r = sqrt(-2 log u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), returned z0 first.
class box_muller {
public:
    explicit box_muller(std::uint64_t state) noexcept : rng_{state} {}

    double next() noexcept {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        constexpr double to_unit = 1.0 / 9007199254740992.0;  // 2^-53
        const double u1 = static_cast<double>((rng_.next() >> 11) + 1) * to_unit;
        const double u2 = static_cast<double>(rng_.next() >> 11) * to_unit;
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double theta = 2.0 * std::numbers::pi * u2;
        spare_ = r * std::sin(theta);
        has_spare_ = true;
        return r * std::cos(theta);
    }

private:
    splitmix64 rng_;
    double spare_ = 0;
    bool has_spare_ = false;
};

/// The normalized Gaussian of standard deviation sigma > 0 at d = -radius .. radius, radius =
/// ceil(3 sigma): exp(-d^2 / (2 sigma^2)) / sum.
inline std::vector<double> gaussian_kernel(double sigma) {
    const int radius = static_cast<int>(std::ceil(3.0 * sigma));
    std::vector<double> k(static_cast<std::size_t>(2 * radius + 1));
    double sum = 0;
    for (int d = -radius; d <= radius; ++d) {
        const double x = static_cast<double>(d) / sigma;
        const double w = std::exp(-0.5 * x * x);
        k[static_cast<std::size_t>(d + radius)] = w;
        sum += w;
    }
    for (double& w : k) w /= sum;
    return k;
}

/// The separable blur of an HWC image with `channels` values per pixel, in double: every output
/// is the sum over d = -radius .. radius, in that order, of kernel(d) times the input d pixels
/// away, the index clamped into the image (replicated edges); first along rows, then along
/// columns. Both passes run over contiguous memory (a padded copy of each row, whole rows for the
/// vertical pass), which the compiler vectorizes.
inline std::vector<double> gaussian_blur(const std::vector<double>& in, int width, int height, int channels,
                                         double sigma) {
    const std::vector<double> kernel = gaussian_kernel(sigma);
    const int radius = static_cast<int>(kernel.size() / 2);
    const std::size_t w = static_cast<std::size_t>(width), h = static_cast<std::size_t>(height),
                      ch = static_cast<std::size_t>(channels), row = w * ch, r = static_cast<std::size_t>(radius);
    std::vector<double> across(in.size(), 0.0), out(in.size(), 0.0), padded((w + 2 * r) * ch);
    for (std::size_t y = 0; y < h; ++y) {
        const double* src = &in[y * row];
        for (std::size_t p = 0; p < w + 2 * r; ++p) {  // padded pixel p is pixel clamp(p - r)
            const std::size_t x = std::min(p < r ? 0 : p - r, w - 1);
            std::copy_n(src + x * ch, ch, &padded[p * ch]);
        }
        double* dst = &across[y * row];
        for (std::size_t k = 0; k < kernel.size(); ++k) {
            const double wt = kernel[k];
            const double* shifted = &padded[k * ch];  // input at offset d = k - radius
            for (std::size_t i = 0; i < row; ++i) dst[i] += wt * shifted[i];
        }
    }
    for (std::size_t y = 0; y < h; ++y) {
        double* dst = &out[y * row];
        for (int d = -radius; d <= radius; ++d) {
            const double wt = kernel[static_cast<std::size_t>(d + radius)];
            const auto sy = static_cast<std::size_t>(std::clamp(static_cast<int>(y) + d, 0, height - 1));
            const double* src = &across[sy * row];
            for (std::size_t i = 0; i < row; ++i) dst[i] += wt * src[i];
        }
    }
    return out;
}

/// x clipped to [0, 255] and rounded to the nearest integer, halves up (std::round's result on
/// these non-negative values, without its library call: x - floor(x) is exact here).
inline std::uint8_t round_to_u8(double x) noexcept {
    x = std::clamp(x, 0.0, 255.0);
    const int whole = static_cast<int>(x);
    return static_cast<std::uint8_t>(whole + (x - whole >= 0.5 ? 1 : 0));
}

/// Throws naming the field and value when c is outside what parse_corruption accepts.
inline void check_corruption(const corruption& c) {
    if (!std::isfinite(c.noise_std) || c.noise_std < 0 || c.noise_std > corruption::max_noise_std)
        earlyexit::fail("corruption: noise_std {} is outside [0, {}]", c.noise_std, corruption::max_noise_std);
    if (!std::isfinite(c.blur_sigma) || c.blur_sigma < 0 || c.blur_sigma > corruption::max_blur_sigma)
        earlyexit::fail("corruption: blur_sigma {} is outside [0, {}] pixels", c.blur_sigma,
                        corruption::max_blur_sigma);
}

constexpr std::string_view trim(std::string_view s) noexcept {
    const auto space = [](char ch) { return ch == ' ' || ch == '\t'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace detail

/// Parses a corruption spec: comma-separated kind:value items, kinds `noise` (noise_std, [0, 1]
/// pixel scale, at most 1) and `blur` (blur_sigma, pixels, at most 10), each at most once, in any
/// order, spaces around items and around ':' allowed: "noise:0.08,blur:1.0", "blur:2",
/// "noise:0.1". "none", or an empty (or blank) spec, is no corruption. The seed is not part of the
/// spec (it stays 0; set it separately). Every malformed spec throws earlyexit::error quoting the
/// spec and naming the bad item or value: unknown kind, missing ':', empty item, a value that is
/// not a number, negative, not finite or over its limit, a kind given twice, "none" with others.
inline corruption parse_corruption(std::string_view spec) {
    corruption c;
    const std::string_view whole = detail::trim(spec);
    if (whole.empty() || whole == "none") return c;
    bool seen_noise = false, seen_blur = false;
    std::string_view rest = whole;
    for (int item_number = 1;; ++item_number) {
        const std::size_t comma = rest.find(',');
        const std::string_view item = detail::trim(rest.substr(0, comma));
        if (item.empty())
            earlyexit::fail("corruption \"{}\": item {} is empty (a stray ','?)", spec, item_number);
        if (item == "none")
            earlyexit::fail("corruption \"{}\": \"none\" cannot be combined with other corruptions", spec);
        const std::size_t colon = item.find(':');
        if (colon == std::string_view::npos)
            earlyexit::fail("corruption \"{}\": item \"{}\" is not kind:value (missing ':'; kinds: noise, blur)",
                            spec, item);
        const std::string_view kind = detail::trim(item.substr(0, colon));
        const std::string_view text = detail::trim(item.substr(colon + 1));
        const bool is_noise = kind == "noise";
        if (!is_noise && kind != "blur")
            earlyexit::fail("corruption \"{}\": unknown kind \"{}\" in \"{}\" (kinds: noise, blur)", spec, kind,
                            item);
        bool& seen = is_noise ? seen_noise : seen_blur;
        if (seen) earlyexit::fail("corruption \"{}\": duplicate kind \"{}\" (each kind at most once)", spec, kind);
        seen = true;
        double value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc::result_out_of_range)
            earlyexit::fail("corruption \"{}\": {} value \"{}\" is out of range", spec, kind, text);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size())
            earlyexit::fail("corruption \"{}\": {} value \"{}\" is not a number", spec, kind, text);
        if (!std::isfinite(value))
            earlyexit::fail("corruption \"{}\": {} value \"{}\" is not finite", spec, kind, text);
        if (std::signbit(value))
            earlyexit::fail("corruption \"{}\": {} value \"{}\" is negative", spec, kind, text);
        if (is_noise && value > corruption::max_noise_std)
            earlyexit::fail("corruption \"{}\": noise value \"{}\" is over {} (the noise std is on the [0, 1] "
                            "pixel scale: 0.08 is 20.4 levels)",
                            spec, text, corruption::max_noise_std);
        if (!is_noise && value > corruption::max_blur_sigma)
            earlyexit::fail("corruption \"{}\": blur value \"{}\" is over {} pixels", spec, text,
                            corruption::max_blur_sigma);
        (is_noise ? c.noise_std : c.blur_sigma) = value;
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
    }
    return c;
}

/// A corruption for reports: "noise 0.08, blur 1", "blur 2", "noise 0.1", or "none" (numbers in
/// their shortest exact form; the seed is not shown).
inline std::string describe(const corruption& c) {
    if (c.is_none()) return "none";
    std::string out;
    if (c.noise_std != 0) out += fmt::format("noise {}", c.noise_std);
    if (c.blur_sigma != 0) out += fmt::format("{}blur {}", out.empty() ? "" : ", ", c.blur_sigma);
    return out;
}

/// The image corrupted by c (blur, then noise, then rounding and clipping: see the top of this
/// file), the noise chosen by (c.seed, sample_index) alone. A corruption that is_none() returns
/// the image unchanged. Throws earlyexit::error when c holds a value parse_corruption would reject
/// or the image's pixels do not match its size. Allocates (a few buffers of the image's size). On
/// a 32x32 image (-O3, SSE2): about 12 us at blur 1, 56 us with noise (libm's log and sincos
/// dominate), 63 us for both: 10 000 CIFAR-10 images in about 0.6 s.
inline image_u8 corrupt(const image_u8& in, const corruption& c, std::uint64_t sample_index) {
    detail::check_corruption(c);
    if (in.width < 0 || in.height < 0 ||
        in.pixels.size() != static_cast<std::size_t>(in.width) * static_cast<std::size_t>(in.height) * image_u8::channels)
        earlyexit::fail("corrupt: a {}x{} image holds {} bytes, not {}x{}x3", in.width, in.height, in.pixels.size(),
                        in.width, in.height);
    if (c.is_none() || in.pixels.empty()) return in;
    std::vector<double> v(in.pixels.begin(), in.pixels.end());
    if (c.blur_sigma > 0) v = detail::gaussian_blur(v, in.width, in.height, image_u8::channels, c.blur_sigma);
    if (c.noise_std > 0) {
        const double levels = c.noise_std * 255.0;
        detail::box_muller normal(detail::noise_stream_state(c.seed, sample_index));
        for (double& x : v) x += levels * normal.next();
    }
    image_u8 out(in.width, in.height);
    std::transform(v.begin(), v.end(), out.pixels.begin(), detail::round_to_u8);
    return out;
}

}  // namespace earlyexit::demo
