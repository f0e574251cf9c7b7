#pragma once
// Learned state of the learning policies (dee, ucb_exit, epsilon_greedy) as versioned JSON.
// Needs nlohmann/json: link earlyexit::io.
//
//   {"format": "earlyexit.policy_state", "version": 2, "policy": "dee", "reward": "max_prob",
//    "options": {...every option...}, "heads": K, "edges": [...] (dee only),
//    "cells": [[count, sum], ...], "base": [[count, sum], ...]}
// sum is the fixed-point sum of learning.hpp (integer units of 2^-24), so a round trip is exact.
// heads 0 (empty cells, base and edges): a learner never bound to a network; it loads unbound.
// Reading checks every field: a missing or mistyped field, a value out of range, another policy
// or reward model than the one asked for, or sizes that do not fit the options are an
// earlyexit::error naming the file and the field.
//
// Fleets: train a learner, save it; each machine loads it and rebase()s (or copies it) before
// serving, saves what it learned (the base is kept in the file); centrally, load the original
// and merge() each machine's file into it: the shared start is counted once.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"
#include "../json_read.hpp"
#include "../report/json.hpp"
#include "bandit.hpp"
#include "dee.hpp"

namespace earlyexit {

inline constexpr std::string_view policy_state_format = "earlyexit.policy_state";
/// Version 2 added DEE's options cost (what its cost bins measure), streak_bins and memory; version 1
/// files are still read (those options then take their defaults, which is what they were).
inline constexpr int policy_state_version = 2;

namespace detail {

template <class P>
struct is_dee : std::false_type {};
template <class R>
struct is_dee<policy::dee<R>> : std::true_type {};
template <class P>
struct is_exit_bandit : std::false_type {};
template <bandit_rule Rule, class R>
struct is_exit_bandit<policy::exit_bandit<Rule, R>> : std::true_type {};

/// Field access that names the field on every failure.
class state_reader {
public:
    explicit state_reader(std::string what) : what_(std::move(what)) {}

    [[nodiscard]] const nlohmann::json& field(const nlohmann::json& obj, const std::string& key,
                                              const std::string& path) const {
        if (!obj.is_object()) fail("{}: '{}' is not a JSON object", what_, path.empty() ? "(top level)" : path);
        const auto it = obj.find(key);
        if (it == obj.end()) fail("{}: field '{}' is missing", what_, join(path, key));
        return *it;
    }
    [[nodiscard]] double number(const nlohmann::json& obj, const std::string& key, const std::string& path = {}) const {
        const auto& v = field(obj, key, path);
        if (!v.is_number()) fail("{}: field '{}' must be a number, got {}", what_, join(path, key), v.dump());
        return v.get<double>();
    }
    [[nodiscard]] std::uint64_t unsigned_int(const nlohmann::json& obj, const std::string& key,
                                             const std::string& path = {}) const {
        const auto& v = field(obj, key, path);
        const auto x = json_integer<std::uint64_t>(v);
        if (!x) fail("{}: field '{}' must be a whole number >= 0, got {}", what_, join(path, key), v.dump());
        return *x;
    }
    [[nodiscard]] std::string string(const nlohmann::json& obj, const std::string& key, const std::string& path = {}) const {
        const auto& v = field(obj, key, path);
        if (!v.is_string()) fail("{}: field '{}' must be a string, got {}", what_, join(path, key), v.dump());
        return v.get<std::string>();
    }
    [[nodiscard]] std::vector<double> numbers(const nlohmann::json& v, const std::string& path) const {
        if (!v.is_array()) fail("{}: field '{}' must be an array of numbers", what_, path);
        std::vector<double> out;
        out.reserve(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (!v[i].is_number()) fail("{}: field '{}[{}]' must be a number, got {}", what_, path, i, v[i].dump());
            out.push_back(v[i].get<double>());
        }
        return out;
    }
    [[nodiscard]] std::vector<running_mean> means(const nlohmann::json& obj, const std::string& key) const {
        const auto& v = field(obj, key, {});
        if (!v.is_array()) fail("{}: field '{}' must be an array of [count, sum] pairs", what_, key);
        std::vector<running_mean> out(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) {
            const auto& p = v[i];
            if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || !p[1].is_number_integer())
                fail("{}: field '{}[{}]' must be [count, sum], two whole numbers, got {}", what_, key, i, p.dump());
            const auto count = json_integer<std::int64_t>(p[0]);
            const auto sum = json_integer<std::int64_t>(p[1]);
            if (count && *count < 0) fail("{}: field '{}[{}]' has a negative count {}", what_, key, i, p[0].dump());
            if (!count) fail("{}: field '{}[{}]' count {} is too large", what_, key, i, p[0].dump());
            if (!sum) fail("{}: field '{}[{}]' sum is too large", what_, key, i);
            out[i].count = *count;
            out[i].sum = *sum;
            if (out[i].count == 0 && out[i].sum != 0)
                fail("{}: field '{}[{}]' has a sum {} with no samples", what_, key, i, out[i].sum);
        }
        return out;
    }
    [[nodiscard]] const std::string& what() const noexcept { return what_; }

private:
    static std::string join(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "." + key;
    }
    std::string what_;
};

[[nodiscard]] inline nlohmann::json means_json(std::span<const running_mean> m) {
    auto a = nlohmann::json::array();
    for (const auto& r : m) a.push_back({r.count, r.sum});
    return a;
}

}  // namespace detail

/// The learned state of a dee, ucb_exit or epsilon_greedy policy as a JSON document.
template <class P>
    requires detail::is_dee<P>::value || detail::is_exit_bandit<P>::value
[[nodiscard]] nlohmann::json policy_state_json(const P& p) {
    nlohmann::json j;
    j["format"] = policy_state_format;
    j["version"] = policy_state_version;
    j["policy"] = P::name();
    j["reward"] = P::reward_type::name;
    const auto& o = p.options();
    if constexpr (detail::is_dee<P>::value) {
        j["options"] = {{"lambda", o.lambda},
                        {"alpha", o.alpha},
                        {"measure", name_of(o.measure)},
                        {"confidence_bins", o.confidence_bins},
                        {"cost_bins", o.cost_bins},
                        {"max_cost_fraction", o.max_cost_fraction},
                        {"cost", name_of(o.cost)},
                        {"streak_bins", o.streak_bins},
                        {"memory", o.memory},
                        {"target", name_of(o.target)},
                        {"probe_rate", o.probe_rate},
                        {"seed", o.seed},
                        {"feedback_capacity", o.feedback_capacity},
                        {"confidence_edges", o.confidence_edges}};
        j["edges"] = std::vector<double>(p.edges().begin(), p.edges().end());
    } else {
        j["options"] = {{"lambda", o.lambda},         {"alpha", o.alpha}, {"epsilon", o.epsilon},
                        {"probe_rate", o.probe_rate}, {"seed", o.seed},   {"feedback_capacity", o.feedback_capacity}};
    }
    j["heads"] = p.heads();
    j["cells"] = detail::means_json(p.table().cells());
    j["base"] = detail::means_json(p.table().base());
    return j;
}

/// The policy a policy_state_json() document describes. `what` names the source in errors.
template <class P>
    requires detail::is_dee<P>::value || detail::is_exit_bandit<P>::value
[[nodiscard]] P policy_from_state_json(const nlohmann::json& j, const std::string& what) {
    const detail::state_reader r(what);
    if (const auto f = r.string(j, "format"); f != policy_state_format)
        fail("{}: field 'format' is '{}', not '{}'", what, f, policy_state_format);
    const auto version = r.unsigned_int(j, "version");
    if (version < 1 || version > static_cast<std::uint64_t>(policy_state_version))
        fail("{}: field 'version' is {}; this build reads versions 1 to {}", what, version, policy_state_version);
    if (const auto n = r.string(j, "policy"); n != P::name())
        fail("{}: field 'policy' is '{}', expected '{}'", what, n, P::name());
    if (const auto n = r.string(j, "reward"); n != P::reward_type::name)
        fail("{}: field 'reward' is '{}', expected '{}'", what, n, P::reward_type::name);
    const auto& o = r.field(j, "options", {});
    const auto heads = r.unsigned_int(j, "heads");
    if (heads > 1u << 20) fail("{}: field 'heads' {} is out of range [0, 2^20]", what, heads);
    auto cells = r.means(j, "cells");
    auto base = r.means(j, "base");
    // heads 0: a learner never bound to a network (nothing learned); it is restored unbound.
    if (heads == 0 && (!cells.empty() || !base.empty()))
        fail("{}: field 'heads' is 0 (a learner never bound to a network) but 'cells' has {} and 'base' {} entries",
             what, cells.size(), base.size());
    for (std::size_t i = 0; i < cells.size() && i < base.size(); ++i)
        if (base[i].count > cells[i].count)
            fail("{}: field 'base[{}]' has {} samples, more than 'cells[{}]' ({})", what, i, base[i].count, i,
                 cells[i].count);
    const auto wrap = [&](auto&& make) {
        try {
            return make();
        } catch (const error& e) {
            fail("{}: {}", what, e.what());
        }
    };
    if constexpr (detail::is_dee<P>::value) {
        dee_options d;
        d.lambda = r.number(o, "lambda", "options");
        d.alpha = r.number(o, "alpha", "options");
        const auto m = r.string(o, "measure", "options");
        if (m == "max_prob") d.measure = context_measure::max_prob;
        else if (m == "margin") d.measure = context_measure::margin;
        else if (m == "entropy") d.measure = context_measure::entropy;
        else fail("{}: field 'options.measure' is '{}'; expected max_prob, margin or entropy", what, m);
        d.confidence_bins = r.unsigned_int(o, "confidence_bins", "options");
        d.cost_bins = r.unsigned_int(o, "cost_bins", "options");
        d.max_cost_fraction = r.number(o, "max_cost_fraction", "options");
        if (version >= 2) {
            const auto c = r.string(o, "cost", "options");
            if (c == "declared") d.cost = cost_context::declared;
            else if (c == "budget") d.cost = cost_context::budget;
            else fail("{}: field 'options.cost' is '{}'; expected declared or budget", what, c);
            d.streak_bins = r.unsigned_int(o, "streak_bins", "options");
            d.memory = r.unsigned_int(o, "memory", "options");
        }
        const auto t = r.string(o, "target", "options");
        if (t == "backward_induction") d.target = value_target::backward_induction;
        else if (t == "monte_carlo") d.target = value_target::monte_carlo;
        else fail("{}: field 'options.target' is '{}'; expected backward_induction or monte_carlo", what, t);
        d.probe_rate = r.number(o, "probe_rate", "options");
        d.seed = r.unsigned_int(o, "seed", "options");
        d.feedback_capacity = r.unsigned_int(o, "feedback_capacity", "options");
        const auto& ce = r.field(o, "confidence_edges", "options");
        if (!ce.is_array()) fail("{}: field 'options.confidence_edges' must be an array", what);
        for (std::size_t k = 0; k < ce.size(); ++k)
            d.confidence_edges.push_back(r.numbers(ce[k], fmt::format("options.confidence_edges[{}]", k)));
        const auto edges = r.numbers(r.field(j, "edges", {}), "edges");
        if (heads != 0 && !d.confidence_edges.empty() && d.confidence_edges.size() != heads - 1)
            fail("{}: field 'options.confidence_edges' has {} exits; 'heads' {} has {} non-final heads", what,
                 d.confidence_edges.size(), heads, heads - 1);
        if (heads == 0 && !edges.empty())
            fail("{}: field 'heads' is 0 (a learner never bound to a network) but 'edges' has {} values", what,
                 edges.size());
        return wrap([&] {
            P p(std::move(d));
            if (heads != 0) p.restore(heads, edges, std::move(cells), std::move(base));
            return p;
        });
    } else {
        bandit_options b;
        b.lambda = r.number(o, "lambda", "options");
        b.alpha = r.number(o, "alpha", "options");
        b.epsilon = r.number(o, "epsilon", "options");
        b.probe_rate = r.number(o, "probe_rate", "options");
        b.seed = r.unsigned_int(o, "seed", "options");
        b.feedback_capacity = r.unsigned_int(o, "feedback_capacity", "options");
        return wrap([&] {
            P p(b);
            if (heads != 0) p.restore(heads, std::move(cells), std::move(base));
            return p;
        });
    }
}

/// Writes the learned state to a JSON file (write_json: the folder is created).
template <class P>
void save_policy_state(const std::filesystem::path& path, const P& p) {
    write_json(path, policy_state_json(p));
}

/// Reads a learned state written by save_policy_state for policy type P.
template <class P>
[[nodiscard]] P load_policy_state(const std::filesystem::path& path) {
    const std::string what = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("load_policy_state: cannot open {}", what);
    return policy_from_state_json<P>(detail::parse_json(in, what), what);
}

}  // namespace earlyexit
