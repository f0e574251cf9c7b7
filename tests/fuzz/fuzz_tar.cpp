// libFuzzer target for the demos' tar index and member reads (examples/common/datasets.hpp:
// detail::list_tar, image_dataset::from_tar and load). Each input is taken as the bytes of an
// uncompressed tar (ustar, pax or GNU), written to one scratch file per process. The reader's
// contract, checked here:
//   - it returns an index / dataset or throws earlyexit::error: any other exception escapes and
//     libFuzzer reports it, and ASan/UBSan report any memory error or undefined behaviour;
//   - every indexed member lies inside the file: its data starts on a 512-byte block after its
//     header and offset + size is at most the file's size; names are sorted and unique, without
//     a hidden component or a leading "./";
//   - a member's bytes as load reads them are the file's bytes at its offset: the dataset opened
//     from the index decodes each (of the first few) images, or throws naming the member.
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include "common/datasets.hpp"

#include "fuzz_io.hpp"

namespace {

namespace demo = earlyexit::demo;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_tar: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

void check_index(const std::vector<demo::detail::dataset_member>& members, std::size_t file_size) {
    for (std::size_t i = 0; i < members.size(); ++i) {
        const auto& m = members[i];
        if (m.offset < 512 || m.offset % 512 != 0) violated("data on a block after its header", m.name);
        if (m.offset > file_size || m.size > file_size - m.offset) violated("member inside the file", m.name);
        if (m.name.starts_with("./") || demo::detail::is_hidden(m.name)) violated("name", m.name);
        if (i > 0 && !(members[i - 1].name < m.name)) violated("names sorted and unique", m.name);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const earlyexit_fuzz::scratch_file scratch("tar", ".tar");
    if (!scratch.write(data, size)) violated("setup", "cannot write " + scratch.path.string());
    const std::string what = "tar " + scratch.path.string() + ": ";
    std::vector<demo::detail::dataset_member> members;
    try {
        members = demo::detail::list_tar(scratch.path);
    } catch (const earlyexit::error& e) {
        if (std::string_view(e.what()).rfind(what, 0) != 0) violated("the error names the tar", e.what());
        return 0;
    }
    check_index(members, size);

    // The dataset over the same index: its images, labelled by class folder or not.
    try {
        const auto dataset = demo::image_dataset::from_tar(scratch.path);
        if (dataset.size() > members.size()) violated("dataset size", std::to_string(dataset.size()));
        for (std::size_t i = 0; i < std::min<std::size_t>(dataset.size(), 4); ++i) {
            const auto it = std::find_if(members.begin(), members.end(),
                                         [&](const auto& m) { return m.name == dataset.name(i); });
            if (it == members.end()) violated("a dataset image is an indexed member", std::string(dataset.name(i)));
            const std::span<const std::uint8_t> bytes(data + it->offset, it->size);
            try {
                const demo::image_u8 image = dataset.load(i);
                // load decodes the member's bytes: the same image as decoding them here.
                if (image.pixels != demo::decode_image(bytes, "member").pixels) violated("load reads the member", it->name);
            } catch (const earlyexit::error& e) {
                if (std::string_view(e.what()).find(it->name) == std::string_view::npos)
                    violated("a load error names the member", e.what());
            }
        }
    } catch (const earlyexit::error& e) {
        if (std::string_view(e.what()).rfind("tar " + scratch.path.string(), 0) != 0)
            violated("the error names the tar", e.what());
    }
    return 0;
}
