#pragma once
// Reader for safetensors weight files (the format of Hugging Face's `safetensors` package):
//
//   8 bytes            N, the header length, unsigned 64-bit little-endian
//   N bytes            JSON object: "<tensor name>": {"dtype", "shape", "data_offsets": [begin, end)}
//                      and optionally "__metadata__": {string: string}
//   the rest           the data section: raw little-endian row-major tensors; offsets are
//                      relative to its start
//
// The demos' weight files (written by examples/train/*.py) hold F32 tensors, and I8 tensors with
// F32 scales for the int8-quantized MobileNetV2. Everything is validated at open: a truncated
// file, offsets outside the data section, overlapping tensors, a size that does not match
// dtype x shape all throw earlyexit::error naming the file and the tensor.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <earlyexit/config.hpp>
#include <earlyexit/error.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace earlyexit::demo {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

enum class st_dtype { f32, f16, i8, u8, i32, i64 };

/// Bytes per element of a safetensors dtype.
[[nodiscard]] constexpr std::size_t dtype_size(st_dtype d) noexcept {
    switch (d) {
        case st_dtype::f32: return 4;
        case st_dtype::f16: return 2;
        case st_dtype::i8: return 1;
        case st_dtype::u8: return 1;
        case st_dtype::i32: return 4;
        case st_dtype::i64: return 8;
    }
    return 0;
}

[[nodiscard]] constexpr std::string_view dtype_name(st_dtype d) noexcept {
    switch (d) {
        case st_dtype::f32: return "F32";
        case st_dtype::f16: return "F16";
        case st_dtype::i8: return "I8";
        case st_dtype::u8: return "U8";
        case st_dtype::i32: return "I32";
        case st_dtype::i64: return "I64";
    }
    return "?";
}

/// One tensor of the file: its dtype, shape and bytes (a view into the file's buffer).
struct st_tensor {
    st_dtype dtype{};
    std::vector<std::size_t> shape;
    std::span<const std::byte> bytes;

    [[nodiscard]] std::size_t numel() const noexcept {
        std::size_t n = 1;
        for (const auto d : shape) n *= d;
        return n;
    }
};

/// A safetensors file read into memory and validated.
class safetensors_file {
public:
    /// Reads and validates `path`; throws earlyexit::error on any problem.
    explicit safetensors_file(const std::filesystem::path& path) : path_(path.string()) {
        std::ifstream in(path, std::ios::binary);
        if (!in) earlyexit::fail("safetensors {}: cannot open", path_);
        in.seekg(0, std::ios::end);
        const auto size = static_cast<std::size_t>(in.tellg());
        in.seekg(0);
        buffer_.resize(size);
        if (size > 0 && !in.read(reinterpret_cast<char*>(buffer_.data()), static_cast<std::streamsize>(size)))
            earlyexit::fail("safetensors {}: read error", path_);
        parse();
    }

    /// Parses an in-memory file (`name` is used in error messages).
    safetensors_file(std::vector<std::byte> bytes, std::string name) : path_(std::move(name)), buffer_(std::move(bytes)) {
        parse();
    }

    // The tensors are views into the buffer: moving keeps them valid, copying would not.
    safetensors_file(const safetensors_file&) = delete;
    safetensors_file& operator=(const safetensors_file&) = delete;
    safetensors_file(safetensors_file&&) noexcept = default;
    safetensors_file& operator=(safetensors_file&&) noexcept = default;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] bool contains(std::string_view name) const { return tensors_.find(std::string(name)) != tensors_.end(); }
    [[nodiscard]] std::vector<std::string> names() const {
        std::vector<std::string> out;
        out.reserve(tensors_.size());
        for (const auto& [k, v] : tensors_) out.push_back(k);
        return out;
    }

    /// The tensor called `name`; throws when it is absent.
    [[nodiscard]] const st_tensor& tensor(std::string_view name) const {
        const auto it = tensors_.find(std::string(name));
        if (it == tensors_.end()) earlyexit::fail("safetensors {}: no tensor named '{}'", path_, name);
        return it->second;
    }

    /// A __metadata__ string; throws when it is absent.
    [[nodiscard]] const std::string& metadata(std::string_view key) const {
        const auto it = metadata_.find(std::string(key));
        if (it == metadata_.end()) earlyexit::fail("safetensors {}: no metadata key '{}'", path_, key);
        return it->second;
    }
    [[nodiscard]] bool has_metadata(std::string_view key) const { return metadata_.count(std::string(key)) != 0; }
    /// A __metadata__ string parsed as JSON (the demos' loaders keep arrays and objects there);
    /// throws earlyexit::error naming the file and the key when it is absent or not JSON.
    [[nodiscard]] nlohmann::json metadata_json(std::string_view key) const {
        try {
            return nlohmann::json::parse(metadata(key));
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("safetensors {}: metadata '{}' is not JSON: {}", path_, key, e.what());
        }
    }

    /// Checks that the "format" metadata names the expected file format (what each demo
    /// network's loader requires first); throws naming the file, the format found and the one expected.
    void require_format(std::string_view expected) const {
        if (const auto& found = metadata("format"); found != expected)
            earlyexit::fail("{}: metadata format is '{}', expected '{}'", path_, found, expected);
    }

    /// Tensor `name` as float32 values, checked against the expected shape. F32 is copied;
    /// I8/U8 need dequantize() instead.
    [[nodiscard]] std::vector<float> floats(std::string_view name, std::span<const std::size_t> expected_shape) const {
        const st_tensor& t = tensor(name);
        check_shape(name, t, expected_shape);
        if (t.dtype != st_dtype::f32)
            earlyexit::fail("safetensors {}: tensor '{}' has dtype {}, expected F32", path_, name, dtype_name(t.dtype));
        std::vector<float> out(t.numel());
        if (!out.empty()) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());  // an empty vector's data() may be null
        return out;
    }
    [[nodiscard]] std::vector<float> floats(std::string_view name, std::initializer_list<std::size_t> shape) const {
        return floats(name, std::span<const std::size_t>(shape.begin(), shape.size()));
    }

    /// F32 tensor `name`, whose shape must be exactly `shape`, as a row-major rows x cols matrix
    /// (e.g. a conv weight [O, I, kh, kw] as O x (I*kh*kw)).
    [[nodiscard]] Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> matrix(
        std::string_view name, std::initializer_list<std::size_t> shape, Eigen::Index rows, Eigen::Index cols) const {
        const auto v = floats(name, shape);
        EARLYEXIT_ASSERT(static_cast<Eigen::Index>(v.size()) == rows * cols);
        return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(v.data(), rows,
                                                                                                       cols);
    }

    /// Raw int8 values of an I8 tensor of the expected shape.
    [[nodiscard]] std::span<const std::int8_t> int8s(std::string_view name, std::span<const std::size_t> expected_shape) const {
        const st_tensor& t = tensor(name);
        check_shape(name, t, expected_shape);
        if (t.dtype != st_dtype::i8)
            earlyexit::fail("safetensors {}: tensor '{}' has dtype {}, expected I8", path_, name, dtype_name(t.dtype));
        return {reinterpret_cast<const std::int8_t*>(t.bytes.data()), t.numel()};
    }

    void check_shape(std::string_view name, const st_tensor& t, std::span<const std::size_t> expected) const {
        if (!std::equal(t.shape.begin(), t.shape.end(), expected.begin(), expected.end()))
            earlyexit::fail("safetensors {}: tensor '{}' has shape [{}], expected [{}]", path_, name,
                         fmt::join(t.shape, ", "), fmt::join(expected, ", "));
    }

private:
    void parse() {
        if (buffer_.size() < 8) earlyexit::fail("safetensors {}: file is {} bytes, shorter than the 8-byte header length", path_, buffer_.size());
        std::uint64_t n = 0;
        std::memcpy(&n, buffer_.data(), 8);
        if (n > buffer_.size() - 8)
            earlyexit::fail("safetensors {}: header length {} exceeds the file ({} bytes)", path_, n, buffer_.size());
        const auto* h = reinterpret_cast<const char*>(buffer_.data() + 8);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(h, h + n);
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("safetensors {}: header is not valid JSON: {}", path_, e.what());
        }
        if (!j.is_object()) earlyexit::fail("safetensors {}: header is not a JSON object", path_);
        const std::span<const std::byte> data(buffer_.data() + 8 + n, buffer_.size() - 8 - n);

        std::vector<std::pair<std::size_t, std::size_t>> ranges;
        for (const auto& [name, v] : j.items()) {
            if (name == "__metadata__") {
                if (!v.is_object()) earlyexit::fail("safetensors {}: __metadata__ is not an object", path_);
                for (const auto& [k, s] : v.items()) {
                    if (!s.is_string()) earlyexit::fail("safetensors {}: metadata '{}' is not a string", path_, k);
                    metadata_[k] = s.get<std::string>();
                }
                continue;
            }
            if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
                earlyexit::fail("safetensors {}: tensor '{}' needs dtype, shape and data_offsets", path_, name);
            st_tensor t;
            t.dtype = parse_dtype(name, v["dtype"]);
            const auto& shape = v["shape"];
            const auto& off = v["data_offsets"];
            if (!shape.is_array()) earlyexit::fail("safetensors {}: tensor '{}': shape is not an array", path_, name);
            for (const auto& d : shape) {
                if (!d.is_number_unsigned()) earlyexit::fail("safetensors {}: tensor '{}': shape entry {} is not a non-negative integer", path_, name, d.dump());
                t.shape.push_back(d.get<std::size_t>());
            }
            // Bytes the shape needs, checked for overflow: a product that wraps would pass for a small tensor.
            const bool empty = std::find(t.shape.begin(), t.shape.end(), std::size_t{0}) != t.shape.end();
            std::size_t need = empty ? 0 : dtype_size(t.dtype);
            for (const auto d : t.shape) {
                if (d != 0 && need > std::numeric_limits<std::size_t>::max() / d)
                    earlyexit::fail("safetensors {}: tensor '{}': shape [{}] of {} needs 2^64 bytes or more", path_, name,
                                    fmt::join(t.shape, ", "), dtype_name(t.dtype));
                need *= d;
            }
            if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
                earlyexit::fail("safetensors {}: tensor '{}': data_offsets {} is not [begin, end]", path_, name, off.dump());
            const auto b = off[0].get<std::size_t>(), e = off[1].get<std::size_t>();
            if (b > e || e > data.size())
                earlyexit::fail("safetensors {}: tensor '{}': data_offsets [{}, {}] outside the data section ({} bytes)", path_,
                             name, b, e, data.size());
            if (e - b != need)
                earlyexit::fail("safetensors {}: tensor '{}': {} bytes for {} x shape [{}] (needs {})", path_, name, e - b,
                             dtype_name(t.dtype), fmt::join(t.shape, ", "), need);
            t.bytes = data.subspan(b, e - b);
            ranges.emplace_back(b, e);
            tensors_.emplace(name, std::move(t));
        }
        std::sort(ranges.begin(), ranges.end());
        for (std::size_t i = 1; i < ranges.size(); ++i)
            if (ranges[i].first < ranges[i - 1].second)
                earlyexit::fail("safetensors {}: tensors overlap at data offset {}", path_, ranges[i].first);
    }

    [[nodiscard]] st_dtype parse_dtype(const std::string& name, const nlohmann::json& d) const {
        if (!d.is_string()) earlyexit::fail("safetensors {}: tensor '{}': dtype is not a string", path_, name);
        const auto s = d.get<std::string>();
        for (const auto t : {st_dtype::f32, st_dtype::f16, st_dtype::i8, st_dtype::u8, st_dtype::i32, st_dtype::i64})
            if (s == dtype_name(t)) return t;
        earlyexit::fail("safetensors {}: tensor '{}': unsupported dtype '{}'", path_, name, s);
    }

    std::string path_;
    std::vector<std::byte> buffer_;
    std::map<std::string, st_tensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace earlyexit::demo
