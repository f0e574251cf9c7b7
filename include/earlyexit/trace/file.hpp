#pragma once
// Trace files: a folder that Python users open with numpy alone.
//
//   <dir>/logits.npy          [N, K, C] float32 (float64 for a double trace)
//   <dir>/stage_seconds.npy   [N, L]    float64, measured time of each stage
//   <dir>/head_seconds.npy    [N, K]    float64, measured time of each head evaluation
//   <dir>/labels.npy          [N]       int64, -1 where unknown
//   <dir>/trace.json          format, version, N/K/L/C, head_positions, stage_macs,
//                             head_macs, provenance (free-form strings)
//
// read_trace() validates everything (JSON keys and types, dtypes, every array's shape against
// the JSON, labels in [-1, C), finite non-negative times, the layout) and throws
// earlyexit::error naming the file and the problem. Needs nlohmann/json (target earlyexit::io).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"
#include "../json_read.hpp"
#include "npy.hpp"
#include "trace.hpp"

namespace earlyexit {

inline constexpr std::string_view trace_format_name = "earlyexit-trace";
inline constexpr int trace_format_version = 1;

/// Writes the trace into `dir` (created if needed; existing trace files are replaced). Never
/// half done: trace.json, which makes the folder a trace, is removed first and written last, and
/// every file is written in one step (write_file_atomically), so a write that is interrupted or
/// fails leaves a folder that read_trace refuses (no trace.json), never one that mixes two runs.
template <std::floating_point Scalar>
void write_trace(const std::filesystem::path& dir, const basic_trace<Scalar>& t) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) earlyexit::fail("write_trace: cannot create {}: {}", dir.string(), ec.message());
    const auto path = dir / "trace.json";
    std::filesystem::remove(path, ec);
    if (ec) earlyexit::fail("write_trace: cannot replace {}: {}", path.string(), ec.message());
    const std::size_t n = t.size(), k = t.heads(), l = t.stages(), c = t.classes();
    npy::write<Scalar>(dir / "logits.npy", t.all_logits(), std::vector<std::size_t>{n, k, c});
    npy::write<double>(dir / "stage_seconds.npy", t.all_stage_seconds(), std::vector<std::size_t>{n, l});
    npy::write<double>(dir / "head_seconds.npy", t.all_head_seconds(), std::vector<std::size_t>{n, k});
    npy::write<std::int64_t>(dir / "labels.npy", t.all_labels(), std::vector<std::size_t>{n});

    nlohmann::json j;
    j["format"] = trace_format_name;
    j["version"] = trace_format_version;
    j["samples"] = n;
    j["heads"] = k;
    j["stages"] = l;
    j["classes"] = c;
    j["logits_dtype"] = std::same_as<Scalar, float> ? "float32" : "float64";
    j["head_positions"] = t.layout().head_positions;
    j["stage_macs"] = t.layout().stage_macs;
    j["head_macs"] = t.layout().head_macs;
    j["provenance"] = t.provenance;
    write_file_atomically(path, j.dump(2) + '\n', "write_trace");
}

namespace detail {

/// A whole number of type T from a JSON integer in T's range (json_integer), or an error naming
/// the key.
template <std::integral T>
T json_whole(const nlohmann::json& v, const std::string& key, const std::string& file) {
    if (!v.is_number_integer())
        fail("{}: key '{}' has the wrong type (expected a whole number, got {})", file, key,
             v.is_primitive() ? v.dump() : std::string(v.type_name()));
    if (const auto x = json_integer<T>(v)) return *x;
    fail("{}: key '{}' is {}, out of range [{}, {}]", file, key, v.dump(), std::numeric_limits<T>::min(),
         std::numeric_limits<T>::max());
}

template <class T>
struct is_whole_vector : std::false_type {};
template <std::integral T>
struct is_whole_vector<std::vector<T>> : std::true_type {};

template <class T>
T json_get(const nlohmann::json& j, const char* key, const std::string& file) {
    if (!j.contains(key)) fail("{}: missing key '{}'", file, key);
    if constexpr (std::integral<T>) {
        return json_whole<T>(j.at(key), key, file);
    } else if constexpr (is_whole_vector<T>::value) {
        const auto& v = j.at(key);
        if (!v.is_array())
            fail("{}: key '{}' has the wrong type (expected an array of whole numbers, got {})", file, key,
                 v.is_primitive() ? v.dump() : std::string(v.type_name()));
        T out;
        out.reserve(v.size());
        for (std::size_t i = 0; i < v.size(); ++i)
            out.push_back(json_whole<typename T::value_type>(v[i], fmt::format("{}[{}]", key, i), file));
        return out;
    } else {
        try {
            return j.at(key).get<T>();
        } catch (const nlohmann::json::exception& e) {
            fail("{}: key '{}' has the wrong type ({})", file, key, e.what());
        }
    }
}

template <class T>
npy::array<T> read_shaped(const std::filesystem::path& file, const std::vector<std::size_t>& shape) {
    auto a = npy::read<T>(file);
    if (a.shape != shape)
        fail("{}: shape {} does not match trace.json ({})", file.string(), npy::detail::shape_str(a.shape),
             npy::detail::shape_str(shape));
    return a;
}

}  // namespace detail

/// Reads a trace written by write_trace (or by anyone following the format above). The logits
/// dtype must match Scalar (float32 for earlyexit::trace).
template <std::floating_point Scalar = float>
[[nodiscard]] basic_trace<Scalar> read_trace(const std::filesystem::path& dir) {
    const auto meta_path = dir / "trace.json";
    const std::string meta_name = meta_path.string();
    std::ifstream in(meta_path);
    if (!in) earlyexit::fail("read_trace: cannot open {}", meta_name);
    const nlohmann::json j = detail::parse_json(in, meta_name);
    if (!j.is_object()) earlyexit::fail("{}: expected a JSON object", meta_name);
    const auto format = detail::json_get<std::string>(j, "format", meta_name);
    if (format != trace_format_name) earlyexit::fail("{}: format '{}' is not '{}'", meta_name, format, trace_format_name);
    const auto version = detail::json_get<int>(j, "version", meta_name);
    if (version != trace_format_version)
        earlyexit::fail("{}: trace format version {} is not supported (this build reads {})", meta_name, version,
                     trace_format_version);
    const auto n = detail::json_get<std::size_t>(j, "samples", meta_name);
    const auto k = detail::json_get<std::size_t>(j, "heads", meta_name);
    const auto l = detail::json_get<std::size_t>(j, "stages", meta_name);

    trace_layout layout;
    layout.classes = detail::json_get<std::size_t>(j, "classes", meta_name);
    layout.head_positions = detail::json_get<std::vector<std::size_t>>(j, "head_positions", meta_name);
    layout.stage_macs = detail::json_get<std::vector<double>>(j, "stage_macs", meta_name);
    layout.head_macs = detail::json_get<std::vector<double>>(j, "head_macs", meta_name);
    if (layout.heads() != k || layout.stages() != l)
        earlyexit::fail("{}: {} heads and {} stages declared, but head_positions has {} and stage_macs {}", meta_name, k,
                     l, layout.heads(), layout.stages());
    try {
        layout.validate();
    } catch (const error& e) {
        earlyexit::fail("{}: {}", meta_name, e.what());
    }
    const std::size_t c = layout.classes;

    auto logits = detail::read_shaped<Scalar>(dir / "logits.npy", {n, k, c});
    auto stage_s = detail::read_shaped<double>(dir / "stage_seconds.npy", {n, l});
    auto head_s = detail::read_shaped<double>(dir / "head_seconds.npy", {n, k});
    auto labels = detail::read_shaped<std::int64_t>(dir / "labels.npy", {n});

    const auto check_times = [&dir](const npy::array<double>& a, const char* name) {
        for (std::size_t i = 0; i < a.data.size(); ++i)
            if (!(a.data[i] >= 0.0) || !std::isfinite(a.data[i]))
                earlyexit::fail("{}: entry {} is {}, not a finite time >= 0", (dir / name).string(), i, a.data[i]);
    };
    check_times(stage_s, "stage_seconds.npy");
    check_times(head_s, "head_seconds.npy");
    for (std::size_t i = 0; i < n; ++i)
        if (labels.data[i] < -1 || labels.data[i] >= static_cast<std::int64_t>(c))
            earlyexit::fail("{}: label {} of sample {} is out of range [-1, {})", (dir / "labels.npy").string(),
                         labels.data[i], i, c);

    basic_trace<Scalar> t(std::move(layout));
    t.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::optional<std::size_t> y =
            labels.data[i] < 0 ? std::nullopt : std::optional<std::size_t>(static_cast<std::size_t>(labels.data[i]));
        t.add(std::span<const Scalar>(logits.data).subspan(i * k * c, k * c),
              std::span<const double>(stage_s.data).subspan(i * l, l), std::span<const double>(head_s.data).subspan(i * k, k),
              y);
    }
    if (j.contains("provenance")) {
        try {
            t.provenance = j.at("provenance").get<std::map<std::string, std::string>>();
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("{}: provenance must map strings to strings ({})", meta_name, e.what());
        }
    }
    return t;
}

}  // namespace earlyexit
