// libFuzzer target for the NPY reader (earlyexit/trace/npy.hpp). Each input is taken as the
// bytes of an .npy file and decoded as each of the five element types, from memory (parse) and
// from a file (read). The reader's contract, checked here:
//   - it returns an array or throws earlyexit::error: any other exception escapes and libFuzzer
//     reports it, and ASan/UBSan report any memory error or undefined behaviour;
//   - a returned array has product(shape) elements, equal to the file's last bytes;
//   - read(file) and parse(bytes) agree: the same array, or the same error message.
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined; the
// ctest fuzz_npy (label "fuzz") runs it over tests/fuzz/npy_corpus for a bounded time.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <unistd.h>

#include <earlyexit/trace/npy.hpp>

#include "fuzz_io.hpp"

namespace {

namespace npy = earlyexit::npy;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_npy: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

struct outcome {
    std::optional<npy::array<std::byte>> value;  // the array's shape and bytes, when it decoded
    std::string error;
};

template <npy::element T, class Decode>
outcome decode(Decode&& f) {
    try {
        const npy::array<T> a = f();
        const auto bytes = std::as_bytes(std::span(a.data));
        return {npy::array<std::byte>{a.shape, {bytes.begin(), bytes.end()}}, {}};
    } catch (const earlyexit::error& e) {
        return {std::nullopt, e.what()};
    }
}

template <npy::element T>
void check(std::span<const std::byte> bytes, const std::filesystem::path& file) {
    const std::string what = file.string();
    const outcome memory = decode<T>([&] { return npy::parse<T>(bytes, what); });
    const outcome disk = decode<T>([&] { return npy::read<T>(file); });
    if (memory.value.has_value() != disk.value.has_value() || memory.error != disk.error)
        violated("parse and read disagree", "parse: '" + memory.error + "', read: '" + disk.error + "'");
    if (!memory.value) return;
    const auto& a = *memory.value;
    if (a.shape != disk.value->shape || a.data != disk.value->data) violated("parse and read disagree", "on the array");
    std::size_t n = 1;
    for (std::size_t d : a.shape) n *= d;  // cannot overflow: the reader checked it
    if (a.data.size() != n * sizeof(T)) violated("element count", npy::detail::shape_str(a.shape));
    if (a.data.size() > bytes.size() ||
        (n != 0 && std::memcmp(a.data.data(), bytes.data() + bytes.size() - a.data.size(), a.data.size()) != 0))
        violated("data", "not the file's last bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const earlyexit_fuzz::scratch_file scratch("npy", ".npy");
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    if (!scratch.write(data, size)) violated("setup", "cannot write " + scratch.path.string());
    check<float>(bytes, scratch.path);
    check<double>(bytes, scratch.path);
    check<std::int64_t>(bytes, scratch.path);
    check<std::int32_t>(bytes, scratch.path);
    check<std::uint8_t>(bytes, scratch.path);
    return 0;
}
