#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "common/corrupt.hpp"
#include "common/image.hpp"
#include "error_text.hpp"

using earlyexit::demo::corrupt;
using earlyexit::demo::corruption;
using earlyexit::demo::describe;
using earlyexit::demo::image_u8;
using earlyexit::demo::parse_corruption;
using earlyexit_test::what_of;

namespace {

image_u8 constant(int width, int height, std::uint8_t v) {
    image_u8 im(width, height);
    std::fill(im.pixels.begin(), im.pixels.end(), v);
    return im;
}

/// Structure in every channel (the same pattern as test_common_preprocess's synthetic()).
image_u8 synthetic(int width, int height) {
    image_u8 im(width, height);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            for (int c = 0; c < 3; ++c)
                im(y, x, c) = static_cast<std::uint8_t>((x * 7 + y * 13 + c * 71 + ((x * y) % 31) * 5) % 256);
    return im;
}

double mean(const image_u8& im) {
    double sum = 0;
    for (const auto v : im.pixels) sum += v;
    return sum / static_cast<double>(im.pixels.size());
}

double stddev(const image_u8& im) {
    const double m = mean(im);
    double sum = 0;
    for (const auto v : im.pixels) sum += (v - m) * (v - m);
    return std::sqrt(sum / static_cast<double>(im.pixels.size()));
}

corruption blur(double sigma) {
    corruption c;
    c.blur_sigma = sigma;
    return c;
}

corruption noise(double std, std::uint64_t seed = 0) {
    corruption c;
    c.noise_std = std;
    c.seed = seed;
    return c;
}

}  // namespace

TEST_CASE("parse_corruption reads every valid form exactly", "[corrupt]") {
    const corruption both = parse_corruption("noise:0.08,blur:1.0");
    CHECK(both.noise_std == 0.08);
    CHECK(both.blur_sigma == 1.0);
    CHECK(both.seed == 0);
    CHECK(parse_corruption("blur:2") == blur(2));
    CHECK(parse_corruption("noise:0.1") == noise(0.1));
    CHECK(parse_corruption("blur:1.0,noise:0.08") == both);       // any order
    CHECK(parse_corruption(" noise : 0.08 ,  blur:1 ") == both);  // spaces around items and ':'
    CHECK(parse_corruption("noise:1e-2").noise_std == 0.01);
    CHECK(parse_corruption("noise:1,blur:10") == corruption{1.0, 10.0, 0});  // the limits are allowed
    CHECK(parse_corruption("noise:0,blur:0").is_none());
    CHECK(parse_corruption("none") == corruption{});
    CHECK(parse_corruption("  none ") == corruption{});
    CHECK(parse_corruption("") == corruption{});
    CHECK(parse_corruption("   ") == corruption{});
}

TEST_CASE("parse_corruption errors quote the spec and name the bad item or value", "[corrupt]") {
    CHECK(what_of([] { (void)parse_corruption("noise:0.08,fog:1"); }) ==
          "corruption \"noise:0.08,fog:1\": unknown kind \"fog\" in \"fog:1\" (kinds: noise, blur)");
    CHECK(what_of([] { (void)parse_corruption("noise0.08"); }) ==
          "corruption \"noise0.08\": item \"noise0.08\" is not kind:value (missing ':'; kinds: noise, blur)");
    CHECK(what_of([] { (void)parse_corruption("blur:abc"); }) ==
          "corruption \"blur:abc\": blur value \"abc\" is not a number");
    CHECK(what_of([] { (void)parse_corruption("noise:-0.1"); }) ==
          "corruption \"noise:-0.1\": noise value \"-0.1\" is negative");
    CHECK(what_of([] { (void)parse_corruption("blur:inf"); }) ==
          "corruption \"blur:inf\": blur value \"inf\" is not finite");
    CHECK(what_of([] { (void)parse_corruption("noise:0.1,noise:0.2"); }) ==
          "corruption \"noise:0.1,noise:0.2\": duplicate kind \"noise\" (each kind at most once)");
    CHECK(what_of([] { (void)parse_corruption("noise:1.5"); }) ==
          "corruption \"noise:1.5\": noise value \"1.5\" is over 1 (the noise std is on the [0, 1] pixel scale: "
          "0.08 is 20.4 levels)");
    CHECK(what_of([] { (void)parse_corruption("blur:10.5"); }) ==
          "corruption \"blur:10.5\": blur value \"10.5\" is over 10 pixels");
    CHECK(what_of([] { (void)parse_corruption("blur:1,,noise:0.1"); }) ==
          "corruption \"blur:1,,noise:0.1\": item 2 is empty (a stray ','?)");
    CHECK(what_of([] { (void)parse_corruption("none,blur:1"); }) ==
          "corruption \"none,blur:1\": \"none\" cannot be combined with other corruptions");
    CHECK(what_of([] { (void)parse_corruption("blur:1e999"); }) ==
          "corruption \"blur:1e999\": blur value \"1e999\" is out of range");

    // Every other malformed spec throws too, with the offending token in the message.
    struct bad {
        const char* spec;
        const char* token;
    };
    for (const bad& b : {bad{"noise:", "\"\""}, bad{"noise:0.1x", "\"0.1x\""}, bad{"noise:+0.1", "\"+0.1\""},
                         bad{"noise:0x1p-3", "\"0x1p-3\""}, bad{"blur:nan", "\"nan\""}, bad{"noise:-inf", "\"-inf\""},
                         bad{"blur:-0", "\"-0\""}, bad{"Blur:1", "\"Blur\""}, bad{":1", "\"\""},
                         bad{"blur", "\"blur\""}, bad{"blur:1,", "item 2"}, bad{",blur:1", "item 1"},
                         bad{"blur:2,blur:2", "\"blur\""}, bad{"blur:1:2", "\"1:2\""}, bad{"noise:0.08;blur:1", "\"0.08;blur:1\""},
                         bad{"blur:1,none", "\"none\""}, bad{"noise:1.0000001", "\"1.0000001\""}}) {
        CAPTURE(b.spec);
        CHECK_THROWS_AS(parse_corruption(b.spec), earlyexit::error);
        CHECK_THROWS_WITH(parse_corruption(b.spec), Catch::Matchers::Contains(b.token));
    }
}

TEST_CASE("describe gives the corruption for reports", "[corrupt]") {
    CHECK(describe(parse_corruption("noise:0.08,blur:1.0")) == "noise 0.08, blur 1");
    CHECK(describe(parse_corruption("blur:1.0,noise:0.08")) == "noise 0.08, blur 1");
    CHECK(describe(parse_corruption("blur:2")) == "blur 2");
    CHECK(describe(parse_corruption("noise:0.1")) == "noise 0.1");
    CHECK(describe(parse_corruption("blur:0.75")) == "blur 0.75");
    CHECK(describe(parse_corruption("none")) == "none");
    CHECK(describe(corruption{0, 0, 42}) == "none");
}

TEST_CASE("a zero corruption returns the image bit for bit", "[corrupt]") {
    const image_u8 im = synthetic(32, 32);
    for (const corruption& c : {corruption{}, corruption{0, 0, 12345}, parse_corruption("noise:0,blur:0")}) {
        const image_u8 out = corrupt(im, c, 17);
        CHECK(out.width == im.width);
        CHECK(out.height == im.height);
        CHECK(out.pixels == im.pixels);
    }
    CHECK(corrupt(image_u8(), noise(0.5), 0).pixels.empty());  // an empty image stays empty
}

TEST_CASE("blur of a constant image is the same constant", "[corrupt][blur]") {
    for (const std::uint8_t v : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{77}, std::uint8_t{128}, std::uint8_t{255}})
        for (const double sigma : {0.3, 1.0, 2.5, 10.0}) {
            CAPTURE(int{v}, sigma);
            const image_u8 im = constant(32, 32, v);
            CHECK(corrupt(im, blur(sigma), 0).pixels == im.pixels);
        }
    // Non-square, and sides shorter than the kernel (sigma 10: radius 30, 61 taps on 1..5 pixels).
    CHECK(corrupt(constant(5, 1, 200), blur(10), 0).pixels == constant(5, 1, 200).pixels);
    CHECK(corrupt(constant(1, 3, 9), blur(4), 0).pixels == constant(1, 3, 9).pixels);
}

// sigma = 1: radius ceil(3 * 1) = 3, e(d) = exp(-d^2 / 2) for d = -3..3:
//   e(0) = 1, e(1) = 0.6065307, e(2) = 0.1353353, e(3) = 0.0111090, sum = 2.5059499,
//   w(d) = e(d) / sum: w(0) = 0.3990503, w(1) = 0.2420362, w(2) = 0.0540056, w(3) = 0.0044330.
// 255 * w(d):        101.758 -> 102,  61.719 -> 62,  13.771 -> 14,  1.130 -> 1.
// 255 * w(dy) w(dx) (a single pixel, separable), rows dy = 0..3, columns dx = 0..3:
//   dy 0: 40.606 -> 41, 24.629 -> 25, 5.495 -> 5, 0.451 -> 0
//   dy 1: 24.629 -> 25, 14.938 -> 15, 3.333 -> 3, 0.274 -> 0
//   dy 2:  5.495 ->  5,  3.333 ->  3, 0.744 -> 1, 0.061 -> 0
//   dy 3:  0.451 ->  0,  0.274 ->  0, 0.061 -> 0, 0.005 -> 0
TEST_CASE("blur spreads a bright line by the normalized Gaussian weights", "[corrupt][blur]") {
    // A vertical line of 255 in the green channel of column 8: the vertical pass leaves it (the
    // column is constant, edges clamped), the horizontal pass spreads it by 255 w(d).
    image_u8 im(17, 9);
    for (int y = 0; y < 9; ++y) im(y, 8, 1) = 255;
    const image_u8 out = corrupt(im, blur(1.0), 0);
    const std::vector<int> expected = {0, 0, 0, 0, 0, 1, 14, 62, 102, 62, 14, 1, 0, 0, 0, 0, 0};
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 17; ++x) {
            CAPTURE(y, x);
            CHECK(out(y, x, 1) == expected[static_cast<std::size_t>(x)]);
            CHECK(out(y, x, 0) == 0);  // channels are blurred on their own
            CHECK(out(y, x, 2) == 0);
        }
}

TEST_CASE("blur spreads a single bright pixel by the product of the weights", "[corrupt][blur]") {
    image_u8 im(15, 15);
    im(7, 7, 0) = 255;  // red only
    const image_u8 out = corrupt(im, blur(1.0), 0);
    const int quadrant[4][4] = {{41, 25, 5, 0}, {25, 15, 3, 0}, {5, 3, 1, 0}, {0, 0, 0, 0}};
    for (int y = 0; y < 15; ++y)
        for (int x = 0; x < 15; ++x) {
            CAPTURE(y, x);
            const int dy = std::abs(y - 7), dx = std::abs(x - 7);
            CHECK(out(y, x, 0) == (dy <= 3 && dx <= 3 ? quadrant[dy][dx] : 0));
            CHECK(out(y, x, 1) == 0);
            CHECK(out(y, x, 2) == 0);
        }
}

// Replicated edges: with 255 in column 0 and 0 elsewhere, output x receives the weights of every
// tap that lands on (or beyond) column 0: x = 0: w(0..3) sum 0.6995 * 255 = 178.4 -> 178;
// x = 1: w(1..3) 0.3005 * 255 = 76.6 -> 77; x = 2: w(2..3) 0.0584 * 255 = 14.9 -> 15;
// x = 3: w(3) * 255 = 1.13 -> 1; beyond: 0.
TEST_CASE("blur clamps at the edges (replicated border)", "[corrupt][blur]") {
    image_u8 im(10, 4);
    for (int y = 0; y < 4; ++y)
        for (int c = 0; c < 3; ++c) im(y, 0, c) = 255;
    const image_u8 out = corrupt(im, blur(1.0), 0);
    const std::vector<int> expected = {178, 77, 15, 1, 0, 0, 0, 0, 0, 0};
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 10; ++x)
            for (int c = 0; c < 3; ++c) {
                CAPTURE(y, x, c);
                CHECK(out(y, x, c) == expected[static_cast<std::size_t>(x)]);
            }
}

TEST_CASE("blur preserves the mean of an image far from its borders", "[corrupt][blur]") {
    // A 24x24 patch of structure in the middle of a black 64x64 image: 20 pixels of black on every
    // side, more than the radius (ceil(3 * 2.5) = 8), so no weight reaches an edge and the blur
    // only moves mass around. Each output rounds by at most 0.5, so the means agree within 0.5;
    // the rounding errors mostly cancel, and in fact they agree far closer.
    image_u8 im(64, 64);
    const image_u8 patch = synthetic(24, 24);
    for (int y = 0; y < 24; ++y)
        for (int x = 0; x < 24; ++x)
            for (int c = 0; c < 3; ++c) im(y + 20, x + 20, c) = patch(y, x, c);
    for (const double sigma : {0.5, 1.0, 2.5}) {
        CAPTURE(sigma);
        const image_u8 out = corrupt(im, blur(sigma), 0);
        CHECK(out.pixels != im.pixels);
        CHECK(std::abs(mean(out) - mean(im)) <= 0.5);
        CHECK(std::abs(mean(out) - mean(im)) <= 0.05 * mean(im) / 10);  // within 0.5% of the mean
        CHECK(stddev(out) < stddev(im));                                 // and smooths it
    }
}

TEST_CASE("noise has the asked standard deviation and leaves the mean", "[corrupt][noise]") {
    // Mid-gray 64x64: 12288 values; 0.08 is 20.4 levels, so 128 +- 6 sigma stays inside [0, 255]
    // (no clipping). The sample std's relative standard error is 1 / sqrt(2n) = 0.6%, the
    // mean's standard error 20.4 / sqrt(n) = 0.18 levels; rounding adds 1/12 level^2 of variance.
    const image_u8 gray = constant(64, 64, 128);
    for (const std::uint64_t seed : {0ull, 1ull, 20240601ull})
        for (const double std : {0.02, 0.08, 0.15}) {
            CAPTURE(seed, std);
            const image_u8 out = corrupt(gray, noise(std, seed), 3);
            CHECK(stddev(out) == Approx(std * 255).epsilon(0.03));
            CHECK(std::abs(mean(out) - 128) < 1.0);
        }
}

TEST_CASE("noise comes from (seed, sample index) alone", "[corrupt][noise]") {
    const image_u8 im = synthetic(32, 32);
    const corruption c = parse_corruption("noise:0.08,blur:1");
    const image_u8 a = corrupt(im, c, 41);
    // Whatever was corrupted in between, or in what order: the same (seed, index), the same pixels.
    (void)corrupt(im, c, 40);
    (void)corrupt(synthetic(16, 16), noise(0.3, 9), 41);
    CHECK(corrupt(im, c, 41).pixels == a.pixels);
    // Another index or another seed: other noise (on a third or more of the values, at 20 levels).
    const auto differing = [](const image_u8& x, const image_u8& y) {
        std::size_t n = 0;
        for (std::size_t i = 0; i < x.pixels.size(); ++i) n += x.pixels[i] != y.pixels[i];
        return n;
    };
    CHECK(differing(corrupt(im, c, 42), a) > a.pixels.size() / 3);
    corruption other_seed = c;
    other_seed.seed = 1;
    CHECK(differing(corrupt(im, other_seed, 41), a) > a.pixels.size() / 3);
    // Adjacent indices are not shifted copies of one stream: index i's values are not index i+1's
    // moved by a value or two.
    const image_u8 n0 = corrupt(constant(8, 8, 128), noise(0.08), 0);
    const image_u8 n1 = corrupt(constant(8, 8, 128), noise(0.08), 1);
    for (std::size_t shift = 1; shift < 4; ++shift) {
        std::size_t same = 0;
        for (std::size_t i = 0; i + shift < n0.pixels.size(); ++i) same += n0.pixels[i + shift] == n1.pixels[i];
        CHECK(same < n0.pixels.size() / 4);
    }
}

TEST_CASE("blur comes before noise: the noise itself is not blurred", "[corrupt]") {
    // Rounding happens once, at the end, so blur+noise is not corrupt(corrupt(blur), noise) exactly;
    // but on a constant image the blur is exact and the two agree.
    const image_u8 gray = constant(32, 32, 100);
    const corruption both = parse_corruption("noise:0.08,blur:2");
    CHECK(corrupt(gray, both, 5).pixels == corrupt(gray, noise(0.08), 5).pixels);
    // And the noise is not blurred: its std is the full 0.08 * 255, not the far smaller std that
    // a blur after the noise would leave.
    CHECK(stddev(corrupt(constant(64, 64, 128), both, 5)) == Approx(0.08 * 255).epsilon(0.03));
}

TEST_CASE("values are clipped to [0, 255], not wrapped", "[corrupt][noise]") {
    // noise 0.5 = 127.5 levels. On black, about half the values are <= -0.5 and clip to 0 (a
    // wrapped uint8 would put them near 255); the mean is that of max(0, N(0, 127.5^2)) rounded,
    // about 127.5 / sqrt(2 pi) = 50.9. White is the mirror image.
    const double levels = 0.5 * 255;
    const double half_normal_mean = levels / std::sqrt(2 * std::numbers::pi);
    const image_u8 black = corrupt(constant(64, 64, 0), noise(0.5, 7), 0);
    const image_u8 white = corrupt(constant(64, 64, 255), noise(0.5, 7), 0);
    const auto count = [](const image_u8& im, std::uint8_t v) {
        return static_cast<double>(std::count(im.pixels.begin(), im.pixels.end(), v)) /
               static_cast<double>(im.pixels.size());
    };
    CHECK(count(black, 0) == Approx(0.5).margin(0.03));
    CHECK(count(white, 255) == Approx(0.5).margin(0.03));
    CHECK(mean(black) == Approx(half_normal_mean).epsilon(0.05));
    CHECK(255 - mean(white) == Approx(half_normal_mean).epsilon(0.05));
    // No black value lands beyond 5 sigma above (a wrapped negative would).
    CHECK(*std::max_element(black.pixels.begin(), black.pixels.end()) < 5 * levels);
    CHECK(*std::min_element(white.pixels.begin(), white.pixels.end()) > 255 - 5 * levels);
    // Noise 1 (255 levels) on mid-gray: both ends are hit.
    const image_u8 wild = corrupt(constant(32, 32, 128), noise(1.0), 0);
    CHECK(count(wild, 0) > 0.2);
    CHECK(count(wild, 255) > 0.2);
}

TEST_CASE("the random stream is pinned: splitmix64, Box-Muller and the pixels", "[corrupt][noise]") {
    // Reference splitmix64.c from seed 1234567.
    earlyexit::demo::detail::splitmix64 rng{1234567};
    CHECK(rng.next() == 6457827717110365317ull);
    CHECK(rng.next() == 3203168211198807973ull);
    CHECK(rng.next() == 9817491932198370423ull);
    CHECK(rng.next() == 4593380528125082431ull);
    CHECK(rng.next() == 16408922859458223821ull);
    // The stream of (seed 42, sample 7) and its first normals, as an independent Python
    // implementation of the same steps computes them (math.log/cos/sin).
    const std::uint64_t state = earlyexit::demo::detail::noise_stream_state(42, 7);
    CHECK(state == 0xec82485eec5d3ee6ull);
    earlyexit::demo::detail::box_muller normal(state);
    for (const double z : {0.11843252345666606, 0.09338116496860682, 1.0792394857171024, -0.7709076570359021,
                           -0.7962484189992617, 0.28633337584022084})
        CHECK(normal.next() == Approx(z).epsilon(1e-12));
    // The pixels those make on mid-gray at noise 0.08 (128 + 20.4 z, rounded), in HWC order.
    const image_u8 out = corrupt(constant(2, 2, 128), noise(0.08, 42), 7);
    CHECK(out.pixels == std::vector<std::uint8_t>{130, 130, 150, 112, 112, 134, 131, 119, 140, 126, 142, 144});
}

TEST_CASE("corrupt rejects corruptions parse_corruption would and mis-sized images", "[corrupt]") {
    const image_u8 im = constant(4, 4, 10);
    CHECK(what_of([&] { (void)corrupt(im, noise(-0.1), 0); }) == "corruption: noise_std -0.1 is outside [0, 1]");
    CHECK(what_of([&] { (void)corrupt(im, noise(2), 0); }) == "corruption: noise_std 2 is outside [0, 1]");
    CHECK(what_of([&] { (void)corrupt(im, blur(NAN), 0); }) == "corruption: blur_sigma nan is outside [0, 10] pixels");
    CHECK(what_of([&] { (void)corrupt(im, blur(11), 0); }) == "corruption: blur_sigma 11 is outside [0, 10] pixels");
    image_u8 broken = im;
    broken.pixels.pop_back();
    CHECK(what_of([&] { (void)corrupt(broken, blur(1), 0); }) == "corrupt: a 4x4 image holds 47 bytes, not 4x4x3");
}
