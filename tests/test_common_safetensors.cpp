// examples/common/safetensors.hpp: a hand-built file read back, and every malformed variant.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/safetensors.hpp"
#include "error_text.hpp"

using namespace earlyexit::demo;
using earlyexit_test::what_of;
using Catch::Matchers::Contains;

namespace {

/// A safetensors file: header JSON text, then the given data bytes.
std::vector<std::byte> file_of(const std::string& header, const std::vector<std::uint8_t>& data) {
    std::vector<std::byte> out(8 + header.size() + data.size());
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, header.data(), header.size());
    if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
    return out;
}

std::vector<std::uint8_t> bytes_of(const std::vector<float>& v) {
    std::vector<std::uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

const std::string good_header =
    R"({"__metadata__":{"format":"unit"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
    R"("q":{"dtype":"I8","shape":[3],"data_offsets":[24,27]}})";

std::vector<std::uint8_t> good_data() {
    auto d = bytes_of({1, 2, 3, 4, 5, 6});
    d.push_back(0xff);  // -1
    d.push_back(0x7f);  // 127
    d.push_back(0x80);  // -128
    return d;
}

}  // namespace

TEST_CASE("safetensors reads F32 and I8 tensors and the metadata") {
    const safetensors_file f(file_of(good_header, good_data()), "unit.safetensors");
    CHECK(f.names() == std::vector<std::string>{"q", "w"});
    CHECK(f.metadata("format") == "unit");
    CHECK(f.has_metadata("format"));
    CHECK_FALSE(f.has_metadata("other"));
    CHECK_NOTHROW(f.require_format("unit"));
    CHECK_THROWS_WITH(f.require_format("other"), "unit.safetensors: metadata format is 'unit', expected 'other'");
    CHECK(f.tensor("w").shape == std::vector<std::size_t>{2, 3});
    CHECK(f.floats("w", {2, 3}) == std::vector<float>{1, 2, 3, 4, 5, 6});
    const auto m = f.matrix("w", {2, 3}, 2, 3);
    CHECK(m(1, 0) == 4.f);
    const std::size_t qs[] = {3};
    const auto q = f.int8s("q", qs);
    CHECK(std::vector<std::int8_t>(q.begin(), q.end()) == std::vector<std::int8_t>{-1, 127, -128});
}

TEST_CASE("safetensors metadata_json parses a metadata value, or names the key that is not JSON") {
    const std::string header = R"({"__metadata__":{"format":"unit","mean":"[0.5, 0.25]","broken":"[1, 2"},)"
                               R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
    const safetensors_file f(file_of(header, bytes_of({1, 2, 3, 4, 5, 6})), "unit.safetensors");
    CHECK(f.metadata_json("mean").get<std::vector<float>>() == std::vector<float>{0.5f, 0.25f});
    CHECK_THAT(what_of([&] { (void)f.metadata_json("broken"); }),
               Contains("safetensors unit.safetensors: metadata 'broken' is not JSON"));
    CHECK_THAT(what_of([&] { (void)f.metadata_json("absent"); }), Contains("no metadata key 'absent'"));
}

TEST_CASE("safetensors errors name the file, the tensor and the value") {
    const safetensors_file f(file_of(good_header, good_data()), "unit.safetensors");
    CHECK(what_of([&] { (void)f.tensor("x"); }) == "safetensors unit.safetensors: no tensor named 'x'");
    CHECK(what_of([&] { (void)f.metadata("y"); }) == "safetensors unit.safetensors: no metadata key 'y'");
    CHECK(what_of([&] { (void)f.floats("w", {3, 2}); }) ==
          "safetensors unit.safetensors: tensor 'w' has shape [2, 3], expected [3, 2]");
    CHECK(what_of([&] { (void)f.floats("q", {3}); }) ==
          "safetensors unit.safetensors: tensor 'q' has dtype I8, expected F32");

    const auto bad = [](const std::string& header, std::vector<std::uint8_t> data = {}) {
        return what_of([&] { safetensors_file(file_of(header, data), "b"); });
    };
    CHECK(bad("{") .starts_with("safetensors b: header is not valid JSON"));
    CHECK(bad("[]") == "safetensors b: header is not a JSON object");
    CHECK(bad(R"({"t":{"dtype":"F32","shape":[2]}})") == "safetensors b: tensor 't' needs dtype, shape and data_offsets");
    CHECK(bad(R"({"t":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", {0, 0, 0, 0}) ==
          "safetensors b: tensor 't': unsupported dtype 'BF16'");
    CHECK(bad(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,4]}})", {0, 0, 0, 0}) ==
          "safetensors b: tensor 't': shape entry -2 is not a non-negative integer");
    CHECK(bad(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", std::vector<std::uint8_t>(8)) ==
          "safetensors b: tensor 't': data_offsets [0, 12] outside the data section (8 bytes)");
    CHECK(bad(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::vector<std::uint8_t>(8)) ==
          "safetensors b: tensor 't': 8 bytes for F32 x shape [3] (needs 12)");
    CHECK(bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
              std::vector<std::uint8_t>(8)) == "safetensors b: tensors overlap at data offset 4");
    CHECK(bad(R"({"__metadata__":{"k":1}})") == "safetensors b: metadata 'k' is not a string");
    CHECK(what_of([] { safetensors_file(std::vector<std::byte>(5), "b"); }) ==
          "safetensors b: file is 5 bytes, shorter than the 8-byte header length");
    CHECK(what_of([] { safetensors_file("/nonexistent/w.safetensors"); }) ==
          "safetensors /nonexistent/w.safetensors: cannot open");
}

TEST_CASE("every truncation of a safetensors file is an error, never a crash") {
    const auto full = file_of(good_header, good_data());
    for (std::size_t n = 0; n < full.size(); ++n) {
        INFO("length " << n);
        CHECK_THROWS_AS(safetensors_file(std::vector<std::byte>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)), "t"),
                        earlyexit::error);
    }
    CHECK_NOTHROW(safetensors_file(full, "t"));
}

TEST_CASE("safetensors: a shape whose byte size wraps 64 bits is an error, not an empty tensor (fuzz_safetensors)") {
    const auto bad = [](const std::string& header) { return what_of([&] { safetensors_file(file_of(header, {}), "b"); }); };
    // 2^32 x 2^32 elements wrap to 0, and 2^62 F32 elements to 0 bytes: both once passed for [0, 0].
    CHECK(bad(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})") ==
          "safetensors b: tensor 't': shape [4294967296, 4294967296] of F32 needs 2^64 bytes or more");
    CHECK(bad(R"({"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})") ==
          "safetensors b: tensor 't': shape [4611686018427387904] of F32 needs 2^64 bytes or more");
    // A zero dimension makes any shape empty, however large the others.
    const safetensors_file f(file_of(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", {}),
                             "b");
    CHECK(f.tensor("t").numel() == 0);
}

TEST_CASE("safetensors: floats() of a zero-element tensor is empty (fuzz_safetensors: memcpy from null)") {
    const safetensors_file f(file_of(R"({"t":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}})", {}), "b");
    CHECK(f.floats("t", {0, 4}).empty());
}
