// libFuzzer target for the demos' image decoder (examples/common/image.hpp: decode_image, stb_image
// behind it). Each input is taken as the bytes of an image file. The decoder's contract, checked
// here:
//   - it returns an image or throws earlyexit::error: any other exception escapes and libFuzzer
//     reports it, and ASan/UBSan report any memory error or undefined behaviour. In fuzz_image,
//     stb_image is Debian's uninstrumented libstb; fuzz_image_stb (EARLYEXIT_FUZZ_STB_IMPLEMENTATION,
//     not a CTest test: it still finds stb_image 2.27's JPEG bugs) compiles stb_image.h in, so
//     the sanitizers see its code too;
//   - only JPEG, PNG, BMP and binary PNM reach stb_image (sniff_image_format);
//   - an image has width x height x 3 bytes, positive sides, and at most max_pixels pixels (2^20
//     here);
//   - a header that claims more than max_pixels is an error naming its size, before stb_image
//     allocates (the run's -malloc_limit_mb=256 catches any buffer the size of a huge header);
//   - the limit holds for a smaller max_pixels too: a decoded image over it is then refused.
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#if EARLYEXIT_FUZZ_STB_IMPLEMENTATION  // stb_image's code in this translation unit, instrumented
#define STB_IMAGE_IMPLEMENTATION
#endif
#include "common/image.hpp"

namespace {

namespace demo = earlyexit::demo;

// Below the default (2^25): a few bytes can claim an image that large, and stb_image, instrumented
// here, takes seconds to decode one; the limit's code is the same at any value.
constexpr std::uint64_t fuzz_max_pixels = std::uint64_t{1} << 20;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_image: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);
    demo::image_u8 image;
    try {
        image = demo::decode_image(bytes, "fuzz.img", fuzz_max_pixels);
    } catch (const earlyexit::error& e) {
        if (std::string_view(e.what()).rfind("image fuzz.img: cannot decode: ", 0) != 0)
            violated("the error names the image", e.what());
        return 0;
    }
    const std::string dims = std::to_string(image.width) + " x " + std::to_string(image.height);
    if (image.width <= 0 || image.height <= 0) violated("positive size", dims);
    const auto pixels = static_cast<std::uint64_t>(image.width) * static_cast<std::uint64_t>(image.height);
    if (pixels > fuzz_max_pixels) violated("at most max_pixels", dims);
    if (image.pixels.size() != pixels * demo::image_u8::channels) violated("width x height x 3 bytes", dims);

    // A limit below the image's size refuses it, naming the size; one at its size decodes it again.
    if (pixels > 1) {
        try {
            (void)demo::decode_image(bytes, "fuzz.img", pixels - 1);
            violated("a smaller max_pixels refuses the image", dims);
        } catch (const earlyexit::error& e) {
            if (std::string_view(e.what()).find(dims) == std::string_view::npos) violated("the error names the size", e.what());
        }
    }
    return 0;
}
