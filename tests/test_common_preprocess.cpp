#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <earlyexit/trace/npy.hpp>

#include "common/image.hpp"
#include "common/preprocess.hpp"
#include "error_text.hpp"

namespace fs = std::filesystem;
using earlyexit::demo::center_crop;
using earlyexit::demo::image_size;
using earlyexit::demo::image_u8;
using earlyexit::demo::imagenet_eval_transform;
using earlyexit::demo::normalize_chw;
using earlyexit::demo::read_image;
using earlyexit::demo::resize_bilinear;
using earlyexit::demo::resize_shorter_side;
using earlyexit::demo::resized_shorter_side;
using earlyexit_test::what_of;

namespace {

/// tests/data/preprocess/<name>: references made by tests/data/preprocess/make_reference.py
/// with Pillow 9.4 and torchvision 0.14.
fs::path reference(const std::string& name) {
    return fs::path(EARLYEXIT_TEST_SOURCE_DIR) / "data" / "preprocess" / name;
}

/// make_reference.py's synthetic(width, height): sharp and smooth structure in every channel.
image_u8 synthetic(int width, int height) {
    image_u8 im(width, height);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            for (int c = 0; c < 3; ++c)
                im(y, x, c) = static_cast<std::uint8_t>((x * 7 + y * 13 + c * 71 + ((x * y) % 31) * 5) % 256);
    return im;
}

/// torchvision's Resize(256) + CenterCrop(224).
image_u8 eval224(const image_u8& im) { return center_crop(resize_shorter_side(im, 256), {224, 224}); }

/// Byte-for-byte comparison with a reference PNG; on failure, says how many bytes differ and by
/// how much, which tells a rounding slip (a few bytes off by 1) from a geometry bug.
void check_equal(const image_u8& got, const std::string& reference_png) {
    const image_u8 want = read_image(reference(reference_png));
    INFO(reference_png);
    REQUIRE(got.width == want.width);
    REQUIRE(got.height == want.height);
    std::size_t differing = 0;
    int worst = 0;
    for (std::size_t i = 0; i < got.pixels.size(); ++i) {
        const int d = std::abs(got.pixels[i] - want.pixels[i]);
        differing += d != 0;
        worst = std::max(worst, d);
    }
    INFO("bytes differing: " << differing << " of " << got.pixels.size() << ", worst by " << worst);
    CHECK(differing == 0);
}

}  // namespace

TEST_CASE("resize_bilinear equals Pillow's Image.resize(BILINEAR) byte for byte", "[preprocess]") {
    check_equal(resize_bilinear(synthetic(500, 375), {123, 97}), "synthetic_500x375_to_123x97.png");
    check_equal(resize_bilinear(synthetic(5, 7), {13, 11}), "synthetic_5x7_to_13x11.png");
    check_equal(resize_bilinear(synthetic(61, 47), {61, 20}), "synthetic_61x47_to_61x20.png");  // vertical pass only
    check_equal(resize_bilinear(synthetic(61, 47), {20, 47}), "synthetic_61x47_to_20x47.png");  // horizontal only
}

TEST_CASE("resize_bilinear to the same size is the identity", "[preprocess]") {
    const image_u8 im = synthetic(9, 4);
    CHECK(resize_bilinear(im, {9, 4}).pixels == im.pixels);
}

TEST_CASE("Resize(256) + CenterCrop(224) equals torchvision on a real ImageNet image", "[preprocess]") {
    check_equal(eval224(read_image(reference("imagenet_227.png"))), "imagenet_227_eval224.png");
    // A grayscale file goes through RGB, as ImageFolder's convert("RGB") does.
    const image_u8 gray = read_image(reference("gray_61x47.png"));
    REQUIRE((gray.width == 61 && gray.height == 47));
    check_equal(eval224(gray), "gray_61x47_eval224.png");
}

TEST_CASE("Resize(256) + CenterCrop(224) equals torchvision on odd sizes", "[preprocess]") {
    const std::vector<std::pair<int, int>> sizes = {{500, 375}, {1, 1}, {3, 2}, {300, 20}, {257, 300}, {256, 301}};
    for (const auto& [w, h] : sizes) {
        CAPTURE(w, h);
        check_equal(eval224(synthetic(w, h)), fmt::format("synthetic_{}x{}_eval224.png", w, h));
    }
    check_equal(center_crop(synthetic(31, 17), {40, 40}), "synthetic_31x17_crop40.png");  // zero padding
}

TEST_CASE("resized_shorter_side follows torchvision's arithmetic", "[preprocess]") {
    CHECK(resized_shorter_side({500, 375}, 256) == image_size{341, 256});  // int(341.33)
    CHECK(resized_shorter_side({375, 500}, 256) == image_size{256, 341});
    CHECK(resized_shorter_side({227, 227}, 256) == image_size{256, 256});
    CHECK(resized_shorter_side({1, 1}, 256) == image_size{256, 256});
    CHECK(resized_shorter_side({3, 2}, 256) == image_size{384, 256});
    CHECK(resized_shorter_side({300, 20}, 256) == image_size{3840, 256});
    CHECK(resized_shorter_side({257, 300}, 256) == image_size{256, 298});  // int(298.83)
    CHECK(resized_shorter_side({256, 301}, 256) == image_size{256, 301});
    CHECK(resized_shorter_side({100000, 3}, 256) == image_size{8533333, 256});  // no int overflow in 256 * long
    CHECK(what_of([] { (void)resized_shorter_side({0, 5}, 256); }) ==
          "resize: cannot resize 0x5 to shorter side 256: sizes must be positive");
}

TEST_CASE("center_crop offsets round half to even, as Python's round does", "[preprocess]") {
    // Pixel (y, x) holds (y, x, 200), so the crop's top-left pixel tells its offset.
    const auto coordinates = [](int w, int h) {
        image_u8 im(w, h);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                im(y, x, 0) = static_cast<std::uint8_t>(y);
                im(y, x, 1) = static_cast<std::uint8_t>(x);
                im(y, x, 2) = 200;
            }
        return im;
    };
    const auto origin = [](const image_u8& im) { return std::pair<int, int>{im(0, 0, 0), im(0, 0, 1)}; };
    CHECK(origin(center_crop(coordinates(10, 10), {4, 4})) == std::pair{3, 3});  // 6 / 2 = 3
    CHECK(origin(center_crop(coordinates(11, 10), {4, 4})) == std::pair{3, 4});  // 3.5 -> 4
    CHECK(origin(center_crop(coordinates(10, 9), {4, 4})) == std::pair{2, 3});   // 2.5 -> 2
    CHECK(origin(center_crop(coordinates(15, 4), {4, 4})) == std::pair{0, 6});   // 5.5 -> 6
    CHECK(origin(center_crop(coordinates(4, 4), {4, 4})) == std::pair{0, 0});
    // Larger than the image: zeros before (the smaller half) and after, as torchvision pads.
    const image_u8 padded = center_crop(coordinates(2, 1), {5, 4});  // x: 1 before, 2 after; y: 1, 2
    const auto px = [&](int y, int x) { return std::array<int, 3>{padded(y, x, 0), padded(y, x, 1), padded(y, x, 2)}; };
    CHECK(px(1, 1) == std::array{0, 0, 200});
    CHECK(px(1, 2) == std::array{0, 1, 200});
    for (const auto& [y, x] : std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {1, 0}, {1, 3}, {1, 4}, {2, 1}, {3, 2}})
        CHECK(px(y, x) == std::array{0, 0, 0});
    CHECK(what_of([] { (void)center_crop(image_u8(3, 3), {0, 2}); }) == "center_crop: crop 0x2 must be positive");
}

TEST_CASE("normalize_chw is ToTensor + Normalize, CHW, bit for bit", "[preprocess]") {
    image_u8 im(2, 1);
    im.pixels = {0, 255, 51, 255, 0, 102};
    const std::array<float, 3> half = {0.5f, 0.5f, 0.5f};
    std::array<float, 6> out{};
    normalize_chw(im, half, half, out.data());
    CHECK(out == std::array<float, 6>{-1.f, 1.f, 1.f, -1.f, (51 / 255.f - 0.5f) / 0.5f, (102 / 255.f - 0.5f) / 0.5f});

    // torchvision's Resize(40), CenterCrop(32), ToTensor, Normalize(ImageNet) through the transform.
    const auto want = earlyexit::npy::read<float>(reference("synthetic_61x47_r40_c32.npy"));
    REQUIRE(want.shape == std::vector<std::size_t>{3, 32, 32});
    const imagenet_eval_transform small{.resize = 40, .crop = 32};
    std::vector<float> got(small.output_size());
    small(synthetic(61, 47), got);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < got.size(); ++i) differing += std::memcmp(&got[i], &want.data[i], sizeof(float)) != 0;
    CHECK(differing == 0);
}

TEST_CASE("imagenet_eval_transform: torchvision defaults, 3x224x224 out, checked buffer", "[preprocess]") {
    const imagenet_eval_transform t;
    CHECK(t.resize == 256);
    CHECK(t.crop == 224);
    CHECK(t.mean == std::array<float, 3>{0.485f, 0.456f, 0.406f});
    CHECK(t.stddev == std::array<float, 3>{0.229f, 0.224f, 0.225f});
    REQUIRE(t.output_size() == 3 * 224 * 224);
    std::vector<float> got(t.output_size()), want(t.output_size());
    t(read_image(reference("imagenet_227.png")), got);
    normalize_chw(read_image(reference("imagenet_227_eval224.png")), t.mean, t.stddev, want.data());
    CHECK(got == want);
    std::vector<float> small(10);
    CHECK(what_of([&] { t(image_u8(4, 4), small); }) ==
          "imagenet_eval_transform: output holds 10 floats, needs 3x224x224 = 150528");

    // In two steps (what the ImageNet demo caches: the 8-bit crop), the same tensor bit for bit.
    const image_u8 square = t.resize_and_crop(read_image(reference("imagenet_227.png")));
    CHECK(square.width == 224);
    CHECK(square.height == 224);
    CHECK(square.pixels == read_image(reference("imagenet_227_eval224.png")).pixels);
    std::vector<float> two_steps(t.output_size());
    t.normalize(square, two_steps);
    CHECK(two_steps == want);
    CHECK(what_of([&] { t.normalize(image_u8(225, 224), two_steps); }) ==
          "imagenet_eval_transform: a 225x224 image is not the 224x224 crop to normalize");
    CHECK(what_of([&] { t.normalize(square, small); }) ==
          "imagenet_eval_transform: output holds 10 floats, needs 3x224x224 = 150528");
}

TEST_CASE("resize_bilinear rejects empty sizes", "[preprocess]") {
    CHECK(what_of([] { (void)resize_bilinear(image_u8(), {4, 4}); }) ==
          "resize_bilinear: cannot resize 0x0 to 4x4: sizes must be positive");
    CHECK(what_of([] { (void)resize_bilinear(image_u8(2, 2), {4, 0}); }) ==
          "resize_bilinear: cannot resize 2x2 to 4x0: sizes must be positive");
}
