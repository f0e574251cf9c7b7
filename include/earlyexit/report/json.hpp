#pragma once
// The machine-readable result of a comparison: one JSON document per (dataset, model) run.
//
// Needs nlohmann/json (CMake target earlyexit::io). The core library does not depend on it.

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "../atomic_file.hpp"
#include "../error.hpp"
#include "../calibrate/thresholds.hpp"
#include "../trace/metrics.hpp"

namespace earlyexit {
namespace detail {

template <class T>
[[nodiscard]] nlohmann::json json_or_null(const std::optional<T>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace detail

/// One row of the result JSON's "policies" (the fields result_json lists).
[[nodiscard]] inline nlohmann::json policy_json(const policy_metrics& m) {
    return {
        {"name", m.name},
        {"accuracy", detail::json_or_null(m.accuracy)},
        {"mean_stages", m.mean_stages},
        {"p50_stages", m.p50_stages},
        {"p90_stages", m.p90_stages},
        {"p99_stages", m.p99_stages},
        {"mean_heads", m.mean_heads},
        {"mean_macs", m.mean_macs},
        {"compute_saving", m.compute_saving},
        {"wall_ms_per_sample", m.mean_seconds * 1e3},
        {"latency_p50_ms", m.p50_seconds * 1e3},
        {"latency_p99_ms", m.p99_seconds * 1e3},
        {"throughput_samples_per_s", m.throughput_samples_per_s},
        {"energy_mj_per_sample", m.energy_joules ? nlohmann::json(*m.energy_joules * 1e3) : nlohmann::json(nullptr)},
        {"deadline_miss_rate", detail::json_or_null(m.deadline_miss_rate)},
        {"replay_matches_live", detail::json_or_null(m.replay_matches_live)},
        {"mean_reward", detail::json_or_null(m.mean_reward)},
        {"exit_histogram", m.exit_histogram},
    };
}

/// The result document:
///   {"dataset", "model", "samples", "final_accuracy",
///    "policies": [{"name", "accuracy", "mean_stages", "p50_stages", "p90_stages", "p99_stages",
///                  "mean_heads", "mean_macs", "compute_saving", "wall_ms_per_sample",
///                  "latency_p50_ms", "latency_p99_ms", "throughput_samples_per_s",
///                  "energy_mj_per_sample", "deadline_miss_rate", "replay_matches_live", "mean_reward",
///                  "exit_histogram"}, ...]}
/// Fractions stay in [0, 1] (accuracy, compute_saving, deadline_miss_rate, final_accuracy);
/// wall_ms_per_sample is mean_seconds * 1000 and energy_mj_per_sample energy_joules * 1000.
/// Unmeasured values are null. Policies keep the order of `rows`.
/// Throws earlyexit::error unless rows named "full" and "oracle" are present, or when the
/// rows do not all cover the same number of samples.
[[nodiscard]] inline nlohmann::json result_json(std::string_view dataset, std::string_view model,
                                                std::span<const policy_metrics> rows,
                                                std::optional<double> final_accuracy) {
    bool has_full = false, has_oracle = false;
    for (const policy_metrics& m : rows) {
        has_full = has_full || m.name == "full";
        has_oracle = has_oracle || m.name == "oracle";
    }
    if (!has_full || !has_oracle)
        earlyexit::fail("result_json: the rows must include `full` and `oracle` (the baselines every result is read "
                     "against); missing: {}",
                     !has_full && !has_oracle ? "full, oracle" : !has_full ? "full" : "oracle");
    const std::size_t samples = rows.front().samples;
    for (const policy_metrics& m : rows)
        if (m.samples != samples)
            earlyexit::fail("result_json: row '{}' covers {} samples but row '{}' covers {}; every row must be measured "
                         "on the same samples",
                         m.name, m.samples, rows.front().name, samples);

    nlohmann::json policies = nlohmann::json::array();
    for (const policy_metrics& m : rows) policies.push_back(policy_json(m));
    return {
        {"dataset", std::string(dataset)},
        {"model", std::string(model)},
        {"samples", samples},
        {"final_accuracy", detail::json_or_null(final_accuracy)},
        {"policies", std::move(policies)},
    };
}

/// The calibration a result came from: {"samples", "target": {"max_drop_points", "confidence"},
/// "points": [{"name", "family", "parameter", "met", "falls_back_to_full", "note", "accuracy",
/// "compute_saving", "loss_bound_points"}, ...]} (accuracy and compute_saving on the
/// calibration split, as fractions).
[[nodiscard]] inline nlohmann::json calibration_json(std::span<const calibration> points, std::size_t samples,
                                                     const accuracy_target& target) {
    nlohmann::json list = nlohmann::json::array();
    for (const calibration& c : points)
        list.push_back({
            {"name", c.name()},
            {"family", std::string(name_of(c.family))},
            {"parameter", c.parameter},
            {"met", c.met},
            {"falls_back_to_full", c.falls_back_to_full},
            {"note", c.note},
            {"accuracy", detail::json_or_null(c.on_calibration.accuracy)},
            {"compute_saving", c.on_calibration.compute_saving},
            {"loss_bound_points", c.drop_bound_points},
        });
    return {
        {"samples", samples},
        {"target", {{"max_drop_points", target.max_drop_points}, {"confidence", target.confidence}}},
        {"points", std::move(list)},
    };
}

/// Writes `j` to `path`, indented by 2 with a trailing newline, replacing the file in one step
/// (write_file_atomically: an interrupted write leaves the old file) and creating
/// its folder if needed. Invalid UTF-8 in strings is written as U+FFFD rather than failing.
/// Throws earlyexit::error naming the path when the folder or the file cannot be written.
inline void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
    if (const auto parent = path.parent_path(); !parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec) earlyexit::fail("write_json: cannot create the folder {} for {}: {}", parent.string(), path.string(), ec.message());
    }
    const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    write_file_atomically(path, text, "write_json");
}

}  // namespace earlyexit
