// earlyexit/json_read.hpp: reading JSON documents the way every earlyexit file reader does
// (trace.json, frequency tables, learned policy state): one strict parse whose error names the
// file, and whole numbers taken only when they are integers in range. Needs nlohmann_json
// (earlyexit::io).
#pragma once

#include <concepts>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace earlyexit::detail {

/// `v` as a T when it is a JSON integer within T's range, otherwise nullopt (the caller names
/// the field in its error). nlohmann's get<T> would cast a float (1e30, -1.0: undefined
/// behaviour) or wrap an integer (-1 read as 2^64 - 1).
template <std::integral T>
[[nodiscard]] std::optional<T> json_integer(const nlohmann::json& v) noexcept {
    if (v.is_number_unsigned()) {
        if (const auto x = v.get<std::uint64_t>(); std::in_range<T>(x)) return static_cast<T>(x);
    } else if (v.is_number_integer()) {
        if (const auto x = v.get<std::int64_t>(); std::in_range<T>(x)) return static_cast<T>(x);
    }
    return std::nullopt;
}

/// Parses one JSON document, strictly: bytes after the value are an error. Errors read
/// "<what>: not valid JSON (<the parser's message>)".
[[nodiscard]] inline nlohmann::json parse_json(std::istream& in, const std::string& what) {
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        fail("{}: not valid JSON ({})", what, e.what());
    }
}

/// The same from bytes in memory (the fuzz targets read this way).
[[nodiscard]] inline nlohmann::json parse_json(std::string_view text, const std::string& what) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail("{}: not valid JSON ({})", what, e.what());
    }
}

}  // namespace earlyexit::detail
