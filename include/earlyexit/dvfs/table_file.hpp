#pragma once
// Frequency tables as versioned JSON files (the shipped ones are in data/dvfs/). Needs
// nlohmann/json: link earlyexit::io.
//
//   {"format": "earlyexit.frequency_domain", "version": 2,
//    "name": "...", "source": "where the numbers come from",
//    "measures": "what the powers are the power of" (optional, version 2),
//    "notes": "..." or ["...", ...]            (optional: the origin of each number, for people),
//    "levels": [{"frequency_mhz": 800, "voltage_v": 0.992, "power_w": 31.5 (optional, measured)}, ...],
//    "model": {"static_w": 15, "capacitance_nf": 20.12, "switch_latency_us": 50,
//              "switch_energy_uj": 6250, "memory_share": 0,
//              "idle_w": 2.0 (optional, version 2), "macs_per_cycle": 2 (optional, version 2)}}
//
// Version 2 adds the three optional fields; version 1 files (which cannot have them) are still
// read, their idle power being the static power (frequency_domain::idle_power_w()). Writing
// always gives version 2.
//
// Human units in the file; dvfs::frequency_domain holds SI units (Hz, F, s, J). Levels are
// sorted by frequency, slowest first. Reading checks every field: a missing, mistyped or unknown
// field, another format or version, or a bad value is an earlyexit::error naming the file and the
// field ("levels[2].voltage_v"); ordering errors name the levels. "notes" is checked (a string or
// an array of strings) and not kept: frequency_domain_json() writes no notes. A round trip keeps
// every value up to the unit conversions (MHz, nF, us, uJ: exact for the usual round numbers).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../atomic_file.hpp"
#include "../error.hpp"
#include "../json_read.hpp"
#include "table.hpp"

namespace earlyexit::dvfs {

inline constexpr std::string_view frequency_domain_format = "earlyexit.frequency_domain";
/// The version written; every version from frequency_domain_oldest_version on is read.
inline constexpr int frequency_domain_version = 2;
inline constexpr int frequency_domain_oldest_version = 1;

namespace detail {

/// Field access that names the file and the field on every failure.
class domain_reader {
public:
    explicit domain_reader(std::string_view what) : what_(what) {}

    [[nodiscard]] const nlohmann::json& field(const nlohmann::json& obj, std::string_view key,
                                              const std::string& path) const {
        const auto it = obj.find(key);
        if (it == obj.end()) fail("{}: field '{}' is missing", what_, join(path, key));
        return *it;
    }
    /// A finite number (from a field of obj).
    [[nodiscard]] double number(const nlohmann::json& obj, std::string_view key, const std::string& path) const {
        const auto& v = field(obj, key, path);
        if (!v.is_number()) fail("{}: field '{}' must be a number, got {}", what_, join(path, key), v.dump());
        const double x = v.get<double>();
        if (!std::isfinite(x)) fail("{}: field '{}' must be a finite number, got {}", what_, join(path, key), x);
        return x;
    }
    [[nodiscard]] double positive(const nlohmann::json& obj, std::string_view key, const std::string& path) const {
        const double x = number(obj, key, path);
        if (!(x > 0)) fail("{}: field '{}' must be > 0, got {}", what_, join(path, key), x);
        return x;
    }
    [[nodiscard]] double nonnegative(const nlohmann::json& obj, std::string_view key, const std::string& path) const {
        const double x = number(obj, key, path);
        if (!(x >= 0)) fail("{}: field '{}' must be >= 0, got {}", what_, join(path, key), x);
        return x;
    }
    [[nodiscard]] std::string string(const nlohmann::json& obj, std::string_view key, const std::string& path) const {
        const auto& v = field(obj, key, path);
        if (!v.is_string()) fail("{}: field '{}' must be a string, got {}", what_, join(path, key), v.dump());
        return v.get<std::string>();
    }
    /// obj must be a JSON object with no keys but `known` (a misspelt optional field would
    /// otherwise be dropped silently).
    void object(const nlohmann::json& obj, const std::string& path, std::initializer_list<std::string_view> known) const {
        if (!obj.is_object())
            fail("{}: {} must be a JSON object, got {}", what_, path.empty() ? "the document" : "field '" + path + "'",
                 obj.dump());
        for (const auto& [key, value] : obj.items()) {
            bool ok = false;
            for (const auto k : known) ok = ok || key == k;
            if (!ok) {
                std::string list;
                for (const auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
                fail("{}: unknown field '{}' (expected {})", what_, join(path, key), list);
            }
        }
    }
    [[nodiscard]] const std::string& what() const noexcept { return what_; }

private:
    static std::string join(const std::string& path, std::string_view key) {
        return path.empty() ? std::string(key) : path + "." + std::string(key);
    }
    std::string what_;
};

}  // namespace detail

/// The frequency domain a JSON document describes (format above). `what` names the source in
/// errors, e.g. "frequency table data/dvfs/odroid.json".
[[nodiscard]] inline frequency_domain parse_frequency_domain(const nlohmann::json& j, std::string_view what) {
    const detail::domain_reader r(what);
    r.object(j, "", {"format", "version", "name", "source", "measures", "notes", "levels", "model"});
    if (const auto f = r.string(j, "format", ""); f != frequency_domain_format)
        fail("{}: field 'format' is '{}', not '{}'", what, f, frequency_domain_format);
    const auto& version_field = r.field(j, "version", "");
    if (!version_field.is_number_integer())
        fail("{}: field 'version' must be a whole number, got {}", what, version_field.dump());
    const auto version = version_field.get<std::int64_t>();
    if (version < frequency_domain_oldest_version || version > frequency_domain_version)
        fail("{}: field 'version' is {}; this build reads versions {} to {}", what, version_field.dump(),
             frequency_domain_oldest_version, frequency_domain_version);
    // Fields version 1 does not have: an old file with them is a mistake, not a silent upgrade.
    const auto require_v2 = [&](std::string_view field) {
        if (version < 2) fail("{}: field '{}' needs version 2 (the file says version {})", what, field, version);
    };
    auto name = r.string(j, "name", "");
    auto source = r.string(j, "source", "");
    std::string measures;
    if (j.contains("measures")) {
        require_v2("measures");
        measures = r.string(j, "measures", "");
    }
    if (const auto it = j.find("notes"); it != j.end()) {
        bool ok = it->is_string() || it->is_array();
        if (it->is_array())
            for (const auto& line : *it) ok = ok && line.is_string();
        if (!ok) fail("{}: field 'notes' must be a string or an array of strings, got {}", what, it->dump());
    }

    const auto& lv = r.field(j, "levels", "");
    if (!lv.is_array()) fail("{}: field 'levels' must be an array of levels, got {}", what, lv.dump());
    std::vector<level> levels;
    levels.reserve(lv.size());
    for (std::size_t i = 0; i < lv.size(); ++i) {
        const std::string path = fmt::format("levels[{}]", i);
        r.object(lv[i], path, {"frequency_mhz", "voltage_v", "power_w"});
        level l;
        l.frequency_hz = r.positive(lv[i], "frequency_mhz", path) * 1e6;
        l.voltage_v = r.positive(lv[i], "voltage_v", path);
        if (lv[i].contains("power_w")) l.power_w = r.positive(lv[i], "power_w", path);
        levels.push_back(l);
    }

    const auto& m = r.field(j, "model", "");
    r.object(m, "model",
             {"static_w", "capacitance_nf", "switch_latency_us", "switch_energy_uj", "memory_share", "idle_w",
              "macs_per_cycle"});
    power_model model;
    model.static_w = r.nonnegative(m, "static_w", "model");
    model.capacitance_f = r.nonnegative(m, "capacitance_nf", "model") * 1e-9;
    model.switch_latency_s = r.nonnegative(m, "switch_latency_us", "model") * 1e-6;
    model.switch_energy_j = r.nonnegative(m, "switch_energy_uj", "model") * 1e-6;
    model.memory_share = r.number(m, "memory_share", "model");
    if (!(model.memory_share >= 0 && model.memory_share < 1))
        fail("{}: field 'model.memory_share' must be in [0, 1), got {}", what, model.memory_share);
    if (m.contains("idle_w")) {
        require_v2("model.idle_w");
        model.idle_w = r.nonnegative(m, "idle_w", "model");
    }
    if (m.contains("macs_per_cycle")) {
        require_v2("model.macs_per_cycle");
        model.macs_per_cycle = r.positive(m, "macs_per_cycle", "model");
    }
    return frequency_domain(std::move(name), std::move(levels), model, std::move(source), std::string(what),
                            std::move(measures));
}

/// The JSON document of a frequency domain (format above; no notes).
[[nodiscard]] inline nlohmann::json frequency_domain_json(const frequency_domain& d) {
    nlohmann::json j;
    j["format"] = frequency_domain_format;
    j["version"] = frequency_domain_version;
    j["name"] = d.name();
    j["source"] = d.source();
    if (!d.measures().empty()) j["measures"] = d.measures();
    auto levels = nlohmann::json::array();
    for (const auto& l : d.levels()) {
        nlohmann::json e = {{"frequency_mhz", l.frequency_hz / 1e6}, {"voltage_v", l.voltage_v}};
        if (l.power_w) e["power_w"] = *l.power_w;
        levels.push_back(std::move(e));
    }
    j["levels"] = std::move(levels);
    const auto& m = d.model();
    j["model"] = {{"static_w", m.static_w},
                  {"capacitance_nf", m.capacitance_f / 1e-9},
                  {"switch_latency_us", m.switch_latency_s / 1e-6},
                  {"switch_energy_uj", m.switch_energy_j / 1e-6},
                  {"memory_share", m.memory_share}};
    if (m.idle_w) j["model"]["idle_w"] = *m.idle_w;
    if (m.macs_per_cycle) j["model"]["macs_per_cycle"] = *m.macs_per_cycle;
    return j;
}

/// Reads a frequency table file; errors name it ("frequency table <path>: ...").
[[nodiscard]] inline frequency_domain read_frequency_domain(const std::filesystem::path& path) {
    const std::string what = "frequency table " + path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open the file", what);
    return parse_frequency_domain(earlyexit::detail::parse_json(in, what), what);
}

/// Writes a frequency table file (the folder is created; an existing file is replaced in one
/// step: write_file_atomically).
inline void write_frequency_domain(const std::filesystem::path& path, const frequency_domain& d) {
    if (const auto parent = path.parent_path(); !parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec) fail("write_frequency_domain: cannot create the folder {}: {}", parent.string(), ec.message());
    }
    const std::string text = frequency_domain_json(d).dump(2) + '\n';
    write_file_atomically(path, text, "write_frequency_domain");
}

}  // namespace earlyexit::dvfs
