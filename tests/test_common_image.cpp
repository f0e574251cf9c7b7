#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "common/image.hpp"
#include "error_text.hpp"

namespace fs = std::filesystem;
using earlyexit::demo::decode_image;
using earlyexit::demo::image_u8;
using earlyexit::demo::read_image;
using earlyexit_test::what_of;

namespace {

/// tests/data/image/<name>: tiny images written by tests/data/preprocess/make_reference.py.
fs::path fixture(const std::string& name) { return fs::path(EARLYEXIT_TEST_SOURCE_DIR) / "data" / "image" / name; }

std::vector<std::uint8_t> rgb(const image_u8& im, int y, int x) { return {im(y, x, 0), im(y, x, 1), im(y, x, 2)}; }

std::vector<std::uint8_t> gray(std::uint8_t v) { return {v, v, v}; }

}  // namespace

TEST_CASE("image_u8 is HWC, row-major, zero-initialized", "[image]") {
    image_u8 im(3, 2);
    CHECK(im.width == 3);
    CHECK(im.height == 2);
    REQUIRE(im.pixels.size() == 3 * 2 * 3);
    CHECK(std::all_of(im.pixels.begin(), im.pixels.end(), [](std::uint8_t v) { return v == 0; }));
    im(1, 2, 0) = 7;  // row 1, column 2, red
    im(0, 1, 2) = 9;  // row 0, column 1, blue
    CHECK(im.pixels[(1 * 3 + 2) * 3 + 0] == 7);
    CHECK(im.pixels[(0 * 3 + 1) * 3 + 2] == 9);
    CHECK(image_u8().pixels.empty());
}

TEST_CASE("decode_image reads PNG and BMP pixels exactly", "[image]") {
    // rgb_4x3.png: R = 10 + 60x, G = 20 + 80y, B = 255 - 30(x + y).
    const image_u8 png = read_image(fixture("rgb_4x3.png"));
    REQUIRE(png.width == 4);
    REQUIRE(png.height == 3);
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 4; ++x) {
            CAPTURE(y, x);
            CHECK(rgb(png, y, x) == std::vector<std::uint8_t>{static_cast<std::uint8_t>(10 + 60 * x),
                                                              static_cast<std::uint8_t>(20 + 80 * y),
                                                              static_cast<std::uint8_t>(255 - 30 * (x + y))});
        }
    // rgb_3x2.bmp: the top-left 3x2 of the same image (BMP stores rows bottom-up, BGR).
    const image_u8 bmp = read_image(fixture("rgb_3x2.bmp"));
    REQUIRE(bmp.width == 3);
    REQUIRE(bmp.height == 2);
    for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 3; ++x) CHECK(rgb(bmp, y, x) == rgb(png, y, x));
}

TEST_CASE("grayscale, gray+alpha, RGBA and palette images decode to RGB", "[image]") {
    const image_u8 g = read_image(fixture("gray_3x2.png"));  // 40 * (3y + x) + 5, replicated
    REQUIRE((g.width == 3 && g.height == 2));
    CHECK(g.pixels ==
          std::vector<std::uint8_t>{5, 5, 5, 45, 45, 45, 85, 85, 85, 125, 125, 125, 165, 165, 165, 205, 205, 205});

    const image_u8 la = read_image(fixture("gray_alpha_2x2.png"));  // alpha (0, 255, 128, 7) dropped
    REQUIRE((la.width == 2 && la.height == 2));
    CHECK(rgb(la, 0, 0) == gray(5));
    CHECK(rgb(la, 0, 1) == gray(45));
    CHECK(rgb(la, 1, 0) == gray(125));
    CHECK(rgb(la, 1, 1) == gray(165));

    const image_u8 rgba = read_image(fixture("rgba_2x2.png"));  // colour kept as is, not premultiplied
    const image_u8 ref = read_image(fixture("rgb_4x3.png"));
    REQUIRE((rgba.width == 2 && rgba.height == 2));
    for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 2; ++x) CHECK(rgb(rgba, y, x) == rgb(ref, y, x));

    const image_u8 p = read_image(fixture("palette_4x1.png"));  // indices 3 2 1 0
    REQUIRE((p.width == 4 && p.height == 1));
    CHECK(p.pixels == std::vector<std::uint8_t>{17, 34, 51, 0, 0, 255, 0, 255, 0, 255, 0, 0});
}

TEST_CASE("JPEG decodes within a few levels of what was encoded", "[image]") {
    // stb_image and Pillow's libjpeg-turbo differ slightly on JPEG, so only a tolerance is exact.
    const image_u8 solid = read_image(fixture("solid_16x16.jpg"));  // RGB (200, 100, 50)
    REQUIRE((solid.width == 16 && solid.height == 16));
    const int expected[3] = {200, 100, 50};
    for (std::size_t i = 0; i < solid.pixels.size(); ++i) {
        CAPTURE(i);
        CHECK(std::abs(solid.pixels[i] - expected[i % 3]) <= 3);
    }
    const image_u8 g = read_image(fixture("gray_8x8.jpg"));  // L 128
    REQUIRE((g.width == 8 && g.height == 8));
    for (const auto v : g.pixels) CHECK(std::abs(v - 128) <= 1);
}

TEST_CASE("decode_image errors name the image and stb_image's reason", "[image]") {
    CHECK(what_of([] { (void)decode_image({}, "empty.png"); }) == "image empty.png: cannot decode: empty (0 bytes)");
    const std::vector<std::uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
    CHECK(what_of([&] { (void)decode_image(text, "hello.txt"); }) ==
          "image hello.txt: cannot decode: not a JPEG, PNG, BMP or binary PNM (P5, P6) file (first bytes 68 65 6c 6c)");
    const auto png = earlyexit::demo::detail::read_file_bytes(fixture("rgb_4x3.png"));
    const std::vector<std::uint8_t> half(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2));
    CHECK_THROWS_WITH(decode_image(half, "half.png"), Catch::Matchers::StartsWith("image half.png: cannot decode: "));
}

TEST_CASE("read_image errors name the file", "[image]") {
    const fs::path missing = fixture("no_such_image.png");
    CHECK(what_of([&] { (void)read_image(missing); }) == missing.string() + ": cannot open: No such file or directory");
    CHECK_THROWS_WITH(read_image(fixture("")), Catch::Matchers::Contains("cannot open"));
}

TEST_CASE("every truncation of a PNG decodes or throws earlyexit::error", "[image][robustness]") {
    const auto png = earlyexit::demo::detail::read_file_bytes(fixture("rgb_4x3.png"));
    for (std::size_t n = 0; n < png.size(); ++n) {
        CAPTURE(n);
        try {
            const image_u8 im = decode_image(std::span(png).first(n), "prefix.png");
            CHECK((im.width == 4 && im.height == 3));
        } catch (const earlyexit::error& e) {
            CHECK_THAT(e.what(), Catch::Matchers::StartsWith("image prefix.png: cannot decode: "));
        }
    }
}

TEST_CASE("decode_image refuses a header's size above max_pixels before decoding (fuzz_image)", "[image][robustness]") {
    const auto png = earlyexit::demo::detail::read_file_bytes(fixture("rgb_4x3.png"));
    // The same PNG whose IHDR claims 60000 x 60000 (10.8 GB as RGB): stb_image would allocate that.
    std::vector<std::uint8_t> huge = png;
    const std::uint8_t side[4] = {0x00, 0x00, 0xea, 0x60};  // 60000, big-endian
    std::copy(side, side + 4, huge.begin() + 16);
    std::copy(side, side + 4, huge.begin() + 20);
    CHECK(what_of([&] { (void)decode_image(huge, "huge.png"); }) ==
          "image huge.png: cannot decode: 60000 x 60000 pixels is more than the 33554432 allowed (max_pixels)");
    const std::string ppm = "P6 60000 60000 255\n";
    CHECK(what_of([&] { (void)decode_image(std::span(reinterpret_cast<const std::uint8_t*>(ppm.data()), ppm.size()), "huge.ppm"); }) ==
          "image huge.ppm: cannot decode: 60000 x 60000 pixels is more than the 33554432 allowed (max_pixels)");
    // 16-bit samples count twice: 5000 x 5000 x 2 is over 2^25 (IHDR bit depth at offset 24).
    std::vector<std::uint8_t> deep = png;
    const std::uint8_t side5000[4] = {0x00, 0x00, 0x13, 0x88};
    std::copy(side5000, side5000 + 4, deep.begin() + 16);
    std::copy(side5000, side5000 + 4, deep.begin() + 20);
    deep[24] = 16;
    CHECK(what_of([&] { (void)decode_image(deep, "deep.png"); }) ==
          "image deep.png: cannot decode: 5000 x 5000 pixels of 16-bit samples (counted twice) is more than the 33554432 "
          "allowed (max_pixels)");
    // The limit is a parameter: 4 x 3 = 12 pixels.
    CHECK(what_of([&] { (void)decode_image(png, "small.png", 11); }) ==
          "image small.png: cannot decode: 4 x 3 pixels is more than the 11 allowed (max_pixels)");
    CHECK(decode_image(png, "small.png", 12).width == 4);
}

TEST_CASE("decode_image refuses a PNG chunk longer than the file (fuzz_image: stb_image allocated its length)",
          "[image][robustness]") {
    auto png = earlyexit::demo::detail::read_file_bytes(fixture("rgb_4x3.png"));
    // The chunk after IHDR (offset 33) claims 0x3a00001a = 973078554 bytes.
    REQUIRE(png.size() > 41);
    const std::uint8_t length[4] = {0x3a, 0x00, 0x00, 0x1a};
    std::copy(length, length + 4, png.begin() + 33);
    const std::string type(png.begin() + 37, png.begin() + 41);
    CHECK(what_of([&] { (void)decode_image(png, "long.png"); }) ==
          "image long.png: cannot decode: PNG chunk '" + type + "' at offset 33 claims 973078554 bytes, the file has " +
              std::to_string(png.size() - 41) + " left");
}

TEST_CASE("decode_image refuses empty and truncated PNM images (fuzz_image)", "[image][robustness]") {
    const auto bytes = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };
    // stb_image returned a 0 x 60001 image for a width it could not read.
    CHECK(what_of([&] { (void)decode_image(bytes("P6'60000 60001 255\n"), "zero.ppm"); }) ==
          "image zero.ppm: cannot decode: the header says 0 x 0 pixels, an empty image");
    CHECK(what_of([&] { (void)decode_image(bytes("P5 7 0 255\n"), "flat.pgm"); }) ==
          "image flat.pgm: cannot decode: the header says 7 x 0 pixels, an empty image");
    // stb_image returned truncated PNM pixels as whatever its buffer held (uninitialized).
    const image_u8 ppm = decode_image(bytes("P6\n# a comment\n2 1\n255\n\x01\x02\x03\x04\x05\x06"), "full.ppm");
    CHECK(ppm.pixels == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6});
    CHECK(what_of([&] { (void)decode_image(bytes("P6\n# a comment\n2 1\n255\n\x01\x02\x03\x04\x05"), "cut.ppm"); }) ==
          "image cut.ppm: cannot decode: truncated PNM: 2 x 1 pixels need 6 bytes, the file has 5 after the header");
    // stb_image read "P6444444444..." into an int and overflowed (fuzz_image): numbers over 2^25 are refused.
    CHECK(what_of([&] { (void)decode_image(bytes("P6" + std::string(60, '4') + "\n1 255\n"), "wide.ppm"); }) ==
          "image wide.ppm: cannot decode: the PNM header's width is over 33554432");
    CHECK(what_of([&] { (void)decode_image(bytes("P5 1 33554433 255\n"), "tall.pgm"); }) ==
          "image tall.pgm: cannot decode: the PNM header's height is over 33554432");
    CHECK(what_of([&] { (void)decode_image(bytes("P5 1 1 #c\n 99999999999\n"), "max.pgm"); }) ==
          "image max.pgm: cannot decode: the PNM header's maximum value is over 33554432");
    // 16-bit PNM: stb_image 2.27 overflowed its buffer converting a gray one to RGB (fuzz_image).
    CHECK(what_of([&] { (void)decode_image(bytes("P5 3 6 355\n" + std::string(36, '\x7f')), "deep.pgm"); }) ==
          "image deep.pgm: cannot decode: a 16-bit PNM (maximum value 355) is not read (only 8-bit, up to 255)");
}

TEST_CASE("decode_image reads JPEG, PNG, BMP and binary PNM only, and refuses the rest before stb_image",
          "[image][robustness]") {
    using earlyexit::demo::detail::image_format;
    using earlyexit::demo::detail::sniff_image_format;
    const auto sniff = [](std::vector<std::uint8_t> b) { return sniff_image_format(b); };
    CHECK(sniff({0xff, 0xd8, 0xff, 0xe0}) == image_format::jpeg);
    CHECK(sniff({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}) == image_format::png);
    CHECK(sniff({'B', 'M'}) == image_format::bmp);
    CHECK(sniff({'P', '5'}) == image_format::pnm);
    CHECK(sniff({'P', '6'}) == image_format::pnm);
    CHECK(sniff({'P', '3'}) == image_format::other);  // ASCII PNM: stb_image does not read it either
    CHECK(sniff({0xff, 0xd8}) == image_format::other);
    CHECK(sniff({0x89, 'P', 'N', 'G'}) == image_format::other);
    CHECK(sniff({}) == image_format::other);
    // An uncompressed 24-bit TGA, 2 x 1 (stb_image decodes it), and a GIF header: refused by name.
    const std::vector<std::uint8_t> tga = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 24, 0x20, 3, 2, 1, 6, 5, 4};
    CHECK(what_of([&] { (void)decode_image(tga, "a.tga"); }) ==
          "image a.tga: cannot decode: not a JPEG, PNG, BMP or binary PNM (P5, P6) file (first bytes 00 00 02 00)");
    const std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
    CHECK(what_of([&] { (void)decode_image(gif, "a.gif"); }) ==
          "image a.gif: cannot decode: not a JPEG, PNG, BMP or binary PNM (P5, P6) file (first bytes 47 49 46 38)");
    CHECK(what_of([&] { (void)decode_image(std::vector<std::uint8_t>{'P'}, "p"); }) ==
          "image p: cannot decode: not a JPEG, PNG, BMP or binary PNM (P5, P6) file (first bytes 50)");
}

TEST_CASE("decode_image refuses a JPEG Huffman table of more than 256 codes (fuzz_image: stb_image overflowed)",
          "[image][robustness]") {
    // SOI, then a DHT segment (length 20) with one table: class/id 0, counts 255 + 2 = 257 codes.
    std::vector<std::uint8_t> jpeg = {0xff, 0xd8, 0xff, 0xc4, 0x00, 0x14, 0x00, 255, 2};
    jpeg.resize(jpeg.size() + 14, 0);
    jpeg.insert(jpeg.end(), {0xff, 0xd9});
    CHECK(what_of([&] { (void)decode_image(jpeg, "dht.jpg"); }) ==
          "image dht.jpg: cannot decode: JPEG Huffman table at offset 6 declares 257 codes (at most 256)");
    // The same after fill bytes (FF FF) and after a scan's entropy-coded bytes (a stuffed FF 00).
    std::vector<std::uint8_t> filled = {0xff, 0xd8, 0xff, 0xff, 0xff};
    filled.insert(filled.end(), jpeg.begin() + 3, jpeg.end());
    CHECK(what_of([&] { (void)decode_image(filled, "fill.jpg"); }) ==
          "image fill.jpg: cannot decode: JPEG Huffman table at offset 8 declares 257 codes (at most 256)");
    std::vector<std::uint8_t> scan = {0xff, 0xd8, 0xff, 0xda, 0x00, 0x02, 0x12, 0xff, 0x00, 0x34, 0xff};
    scan.insert(scan.end(), jpeg.begin() + 3, jpeg.end());
    CHECK(what_of([&] { (void)decode_image(scan, "scan.jpg"); }) ==
          "image scan.jpg: cannot decode: JPEG Huffman table at offset 14 declares 257 codes (at most 256)");
    // 256 codes is a full table: not refused here (stb_image then judges the file).
    jpeg[8] = 1;
    CHECK_THROWS_WITH(decode_image(jpeg, "full.jpg"),
                      !Catch::Matchers::Contains("Huffman table") && Catch::Matchers::StartsWith("image full.jpg: cannot decode: "));
    // A real JPEG's tables pass.
    CHECK(read_image(fs::path(EARLYEXIT_SOURCE_DIR) / "data/imagenet/sample/ILSVRC2012_val_00000807.JPEG").width > 0);
}

TEST_CASE("decode_image refuses a truncated BMP (fuzz_image: stb_image read the missing rows as zeros)",
          "[image][robustness]") {
    auto bmp = earlyexit::demo::detail::read_file_bytes(fixture("rgb_3x2.bmp"));  // 24-bit, rows of 12 bytes
    CHECK(decode_image(bmp, "full.bmp").width == 3);
    bmp.pop_back();
    CHECK(what_of([&] { (void)decode_image(bmp, "cut.bmp"); }) ==
          "image cut.bmp: cannot decode: truncated BMP: 3 x 2 pixels at 24 bits need 24 bytes, the file has 23 after the "
          "header");
    // The fuzzer's finding (as make_demo_corpora.py writes it): 102 bytes whose header claims 5 x 2097155 pixels.
    const auto claim = earlyexit::demo::detail::read_file_bytes(fs::path(EARLYEXIT_TEST_SOURCE_DIR) / "fuzz" /
                                                               "image_corpus" / "bmp_claims_10m_pixels.bmp");
    CHECK_THROWS_WITH(decode_image(claim, "claim.bmp"),
                      Catch::Matchers::StartsWith("image claim.bmp: cannot decode: truncated BMP: 5 x 2097155 pixels"));
    // A pixel-data offset inside the header: stb_image would skip to the end of the file.
    bmp.push_back(0x82);
    bmp[10] = 20;
    CHECK(what_of([&] { (void)decode_image(bmp, "offset.bmp"); }) ==
          "image offset.bmp: cannot decode: truncated BMP: 3 x 2 pixels at 24 bits need 24 bytes, the file has 0 after the "
          "header");
}

