// libFuzzer target for the CIFAR-10 binary reader (examples/common/datasets.hpp:
// image_dataset::from_cifar10_binary and load). Each input is taken as the bytes of a
// data_batch / test_batch .bin file, written to one scratch file per process. The reader's
// contract, checked here:
//   - it returns a dataset or throws earlyexit::error: any other exception escapes and libFuzzer
//     reports it, and ASan/UBSan report any memory error or undefined behaviour;
//   - a dataset has one image per 3073-byte record (a file of any other size is an error), its
//     label the record's first byte (0..9), its name "<file>#<record>", the 10 CIFAR-10 classes;
//   - load(i) is the 32x32 image of record i: pixel (y, x) channel c is byte 1 + c*1024 + y*32 + x;
//   - options it refuses (a label list, a class count other than 10) are errors, never a dataset.
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "common/datasets.hpp"

#include "fuzz_io.hpp"

namespace {

namespace demo = earlyexit::demo;
constexpr std::size_t record = 1 + 3 * 32 * 32;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_cifar: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

void refused(const std::filesystem::path& file, const demo::dataset_options& options, const char* what) {
    try {
        (void)demo::image_dataset::from_cifar10_binary(file, options);
    } catch (const earlyexit::error&) {
        return;
    }
    violated("options refused", what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const earlyexit_fuzz::scratch_file scratch("cifar", ".bin");
    if (!scratch.write(data, size)) violated("setup", "cannot write " + scratch.path.string());
    // Checked before the file is read, so once is enough.
    static const bool options_refused = [] {
        refused(scratch.path, {.classes = {"a", "b"}}, "2 classes");
        refused(scratch.path, {.labels = "labels.txt"}, "a label list");
        return true;
    }();
    (void)options_refused;

    const std::string what = "cifar10 binary " + scratch.path.string() + ": ";
    try {
        const auto dataset = demo::image_dataset::from_cifar10_binary(scratch.path);
        if (size == 0 || size % record != 0 || dataset.size() != size / record)
            violated("one image per record", std::to_string(size) + " bytes, " + std::to_string(dataset.size()) + " images");
        if (dataset.classes().size() != 10) violated("10 classes", std::to_string(dataset.classes().size()));
        const std::string stem = scratch.path.filename().string();
        for (std::size_t i = 0; i < dataset.size(); ++i) {
            const std::uint8_t* r = data + i * record;
            if (dataset.label(i) != r[0] || r[0] > 9) violated("label", std::to_string(i));
            if (dataset.name(i) != stem + "#" + std::to_string(i)) violated("name", std::string(dataset.name(i)));
            const demo::image_u8 image = dataset.load(i);
            if (image.width != 32 || image.height != 32 || image.pixels.size() != 32 * 32 * 3)
                violated("a 32x32 image", std::to_string(i));
            for (int y = 0; y < 32; ++y)
                for (int x = 0; x < 32; ++x)
                    for (int c = 0; c < 3; ++c)
                        if (image(y, x, c) != r[1 + c * 1024 + y * 32 + x]) violated("pixels", std::to_string(i));
        }
        try {
            (void)dataset.load(dataset.size());
            violated("an index out of range is an error", std::to_string(dataset.size()));
        } catch (const earlyexit::error&) {
        }
    } catch (const earlyexit::error& e) {
        if (std::string_view(e.what()).rfind(what, 0) != 0) violated("the error names the file", e.what());
        bool bad_label = false;
        for (std::size_t i = 0; size % record == 0 && i < size; i += record) bad_label = bad_label || data[i] > 9;
        if (size != 0 && size % record == 0 && !bad_label) violated("a well-formed file opens", e.what());
    }
    return 0;
}
