// libFuzzer target for the safetensors reader (examples/common/safetensors.hpp). Each input is
// taken as the bytes of a .safetensors file and opened from memory and from a file. The reader's
// contract, checked here:
//   - it returns a validated file or throws earlyexit::error: any other exception escapes and
//     libFuzzer reports it, and ASan/UBSan report any memory error or undefined behaviour;
//   - every tensor's bytes are product(shape) x the dtype's size (the product not overflowing)
//     and lie inside the data section, after the header; no two tensors overlap;
//   - the accessors work on what open accepted: floats() / int8s() at the tensor's own shape,
//     metadata() and metadata_json() (earlyexit::error when not JSON);
//   - opening the bytes and opening the file agree: the same tensors, or the same error message.
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined.
#include <algorithm>
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
#include <utility>
#include <vector>

#include "common/safetensors.hpp"
#include "fuzz_io.hpp"

namespace {

namespace demo = earlyexit::demo;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_safetensors: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

struct outcome {
    std::optional<demo::safetensors_file> file;
    std::string error;
};

template <class Open>
outcome attempt(Open&& f) {
    try {
        return {f(), {}};
    } catch (const earlyexit::error& e) {
        return {std::nullopt, e.what()};
    }
}

// `header` is the file's header JSON, parsed here; `data` the data section's bytes.
void check(const demo::safetensors_file& f, const nlohmann::json& header, std::span<const std::byte> data) {
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    for (const auto& name : f.names()) {
        const demo::st_tensor& t = f.tensor(name);
        std::size_t n = 1;
        for (const std::size_t d : t.shape)
            if (__builtin_mul_overflow(n, d, &n) && std::find(t.shape.begin(), t.shape.end(), 0) == t.shape.end())
                violated("element count overflows", name);
        std::size_t size = 0;
        if (__builtin_mul_overflow(n, demo::dtype_size(t.dtype), &size)) violated("byte size overflows", name);
        if (t.bytes.size() != size || t.numel() != n) violated("byte size", name);
        // The tensor's bytes are those its data_offsets name in the data section.
        const auto& off = header.at(name).at("data_offsets");
        const auto b = off.at(0).get<std::size_t>(), e = off.at(1).get<std::size_t>();
        if (b > e || e > data.size() || e - b != size) violated("data_offsets", name);
        if (size != 0 && std::memcmp(t.bytes.data(), data.data() + b, size) != 0) violated("tensor bytes", name);
        if (size != 0) ranges.emplace_back(b, e);
        if (t.dtype == demo::st_dtype::f32) {
            const auto v = f.floats(name, t.shape);
            if (v.size() != n || (size != 0 && std::memcmp(v.data(), t.bytes.data(), size) != 0)) violated("floats", name);
        }
        if (t.dtype == demo::st_dtype::i8) {
            const auto v = f.int8s(name, t.shape);
            if (v.size() != n || (size != 0 && std::memcmp(v.data(), t.bytes.data(), size) != 0)) violated("int8s", name);
        }
    }
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i)
        if (ranges[i].first < ranges[i - 1].second) violated("tensors overlap", std::to_string(ranges[i].first));
}

void use_metadata(const demo::safetensors_file& f, const nlohmann::json& header) {
    if (!header.contains("__metadata__")) return;
    for (const auto& [key, value] : header["__metadata__"].items()) {
        if (!f.has_metadata(key) || f.metadata(key) != value.get<std::string>()) violated("metadata", key);
        try {
            (void)f.metadata_json(key);
        } catch (const earlyexit::error&) {
        }
    }
    try {
        f.require_format("earlyexit");
    } catch (const earlyexit::error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const earlyexit_fuzz::scratch_file scratch("safetensors", ".safetensors");
    const auto* first = reinterpret_cast<const std::byte*>(data);
    const std::vector<std::byte> bytes(first, first + size);
    if (!scratch.write(data, size)) violated("setup", "cannot write " + scratch.path.string());
    const std::string what = scratch.path.string();
    const outcome memory = attempt([&] { return demo::safetensors_file(bytes, what); });
    const outcome disk = attempt([&] { return demo::safetensors_file(scratch.path); });
    if (memory.file.has_value() != disk.file.has_value() || memory.error != disk.error)
        violated("memory and file disagree", "memory: '" + memory.error + "', file: '" + disk.error + "'");
    if (!memory.file) {
        if (memory.error.rfind("safetensors " + what + ": ", 0) != 0) violated("error names the file", memory.error);
        return 0;
    }
    const auto& f = *memory.file;
    if (f.names() != disk.file->names()) violated("memory and file disagree", "on the tensor names");
    for (const auto& name : f.names()) {
        const auto& a = f.tensor(name);
        const auto& b = disk.file->tensor(name);
        if (a.dtype != b.dtype || a.shape != b.shape || a.bytes.size() != b.bytes.size() ||
            (!a.bytes.empty() && std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) != 0))
            violated("memory and file disagree", name);
    }
    std::uint64_t length = 0;
    std::memcpy(&length, data, 8);  // the reader accepted the file: it has these 8 bytes and the header
    const nlohmann::json header = nlohmann::json::parse(data + 8, data + 8 + length);
    check(f, header, std::span(bytes).subspan(8 + length));
    use_metadata(f, header);
    return 0;
}
