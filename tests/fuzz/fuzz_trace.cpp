// libFuzzer target for the trace folder reader (earlyexit/trace/file.hpp). Each input is a
// bundle (fuzz_io.hpp) of a trace folder's files in this order: trace.json, logits.npy,
// stage_seconds.npy, head_seconds.npy, labels.npy; a file the bundle lacks is absent from the
// folder, parts past the fifth are ignored. The folder is written to this process's scratch
// folder and read as a float trace and as a double trace. The reader's contract, checked here:
//   - it returns a trace or throws earlyexit::error naming the file at fault (every message
//     names the folder): any other exception escapes and libFuzzer reports it, ASan/UBSan report
//     any memory error or undefined behaviour, and -malloc_limit_mb any allocation sized from a
//     header or a key before it was checked;
//   - a trace read holds exactly the files' arrays (as npy::parse decodes them);
//   - write_trace of it reads back to the same trace, bit for bit (the round trip).
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined; the
// ctest fuzz_trace (label "fuzz") runs it over tests/fuzz/trace_corpus (written by
// make_reader_corpora) for a bounded time.
#include <concepts>
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
#include <string_view>
#include <system_error>
#include <unistd.h>
#include <vector>

#include <earlyexit/trace/file.hpp>

#include "fuzz_io.hpp"

namespace {

namespace fs = std::filesystem;
namespace npy = earlyexit::npy;

constexpr const char* file_names[] = {"trace.json", "logits.npy", "stage_seconds.npy", "head_seconds.npy",
                                      "labels.npy"};

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_trace: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

// Two folders per fuzzing process (the input, and the round trip's copy), removed at exit.
struct scratch_dir {
    fs::path root = earlyexit_fuzz::scratch_root() / ("earlyexit_fuzz_trace_" + std::to_string(::getpid()));
    fs::path in = root / "in";
    fs::path out = root / "out";
    scratch_dir() {
        std::error_code ec;
        fs::create_directories(in, ec);
        if (ec) violated("setup", "cannot create " + in.string() + ": " + ec.message());
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};

void spit(const fs::path& file, std::string_view bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) violated("setup", "cannot write " + file.string());
}

template <class T>
bool same_bytes(std::span<const T> a, std::span<const T> b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size_bytes()) == 0);
}

// Bitwise (a NaN logit is equal to itself).
template <class Scalar>
bool same_trace(const earlyexit::basic_trace<Scalar>& a, const earlyexit::basic_trace<Scalar>& b) {
    return a.layout() == b.layout() && a.size() == b.size() && same_bytes(a.all_logits(), b.all_logits()) &&
           same_bytes(a.all_stage_seconds(), b.all_stage_seconds()) &&
           same_bytes(a.all_head_seconds(), b.all_head_seconds()) && same_bytes(a.all_labels(), b.all_labels()) &&
           a.provenance == b.provenance;
}

// The array in a part of the bundle, as the NPY reader decodes it from memory.
template <npy::element T>
std::vector<T> array_of(std::string_view part) {
    try {
        return npy::parse<T>(std::as_bytes(std::span(part.data(), part.size())), "part").data;
    } catch (const earlyexit::error& e) {
        violated("a trace was read from a file that does not decode", e.what());
    }
}

template <std::floating_point Scalar>
void check(const std::vector<std::string_view>& parts, const scratch_dir& scratch) {
    std::optional<earlyexit::basic_trace<Scalar>> t;
    try {
        t = earlyexit::read_trace<Scalar>(scratch.in);
    } catch (const earlyexit::error& e) {
        if (std::string_view(e.what()).find(scratch.in.string()) == std::string_view::npos)
            violated("the error does not name the folder", e.what());
        return;
    }
    // The trace holds the files' arrays.
    if (!same_bytes<Scalar>(t->all_logits(), array_of<Scalar>(parts[1])) ||
        !same_bytes<double>(t->all_stage_seconds(), array_of<double>(parts[2])) ||
        !same_bytes<double>(t->all_head_seconds(), array_of<double>(parts[3])) ||
        !same_bytes<std::int64_t>(t->all_labels(), array_of<std::int64_t>(parts[4])))
        violated("the trace's arrays", "are not the files'");
    // Written again, it reads back the same.
    try {
        earlyexit::write_trace(scratch.out, *t);
        if (!same_trace(*t, earlyexit::read_trace<Scalar>(scratch.out)))
            violated("round trip", "write_trace then read_trace gives another trace");
    } catch (const earlyexit::error& e) {
        violated("round trip", e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const scratch_dir scratch;
    const auto parts = earlyexit_fuzz::split_files(std::string_view(reinterpret_cast<const char*>(data), size));
    for (std::size_t i = 0; i < std::size(file_names); ++i) {
        const fs::path file = scratch.in / file_names[i];
        if (i < parts.size()) {
            spit(file, parts[i]);
        } else {
            std::error_code ec;
            fs::remove(file, ec);
        }
    }
    check<float>(parts, scratch);
    check<double>(parts, scratch);
    return 0;
}
