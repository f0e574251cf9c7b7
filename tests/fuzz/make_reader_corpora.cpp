// Writes the seed corpora of fuzz_trace, fuzz_dvfs_table and fuzz_policy_state
// (tests/fuzz/<name>_corpus): valid files written by the library's own writers (write_trace,
// write_frequency_domain, save_policy_state), and broken ones, one per kind of error, most
// edited from a valid one. The shipped tables of data/dvfs/ are copied in as they are. The
// corpora are committed; rerun this only to change them:
//   make_reader_corpora <source tree> tests/fuzz
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <earlyexit/dvfs/table_file.hpp>
#include <earlyexit/policy/state_file.hpp>
#include <earlyexit/trace/file.hpp>
#include <earlyexit/trace/replay.hpp>

#include "../npy_bytes.hpp"
#include "fuzz_io.hpp"

namespace {

namespace fs = std::filesystem;
using namespace earlyexit;
using earlyexit_test::slurp;
using earlyexit_test::spit;
using nlohmann::json;

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "make_reader_corpora: %s\n", why.c_str());
    std::exit(1);
}

/// s with its one `from` replaced by `to` (dies when `from` is not there: the writer changed).
std::string edited(std::string s, std::string_view from, std::string_view to) {
    const auto at = s.find(from);
    if (at == std::string::npos) die("'" + std::string(from) + "' not found in:\n" + s);
    return s.replace(at, from.size(), to);
}

fs::path scratch() {
    const fs::path d = fs::temp_directory_path() / "earlyexit_make_reader_corpora";
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

// ---- traces: bundles of trace.json, logits.npy, stage_seconds.npy, head_seconds.npy, labels.npy

constexpr const char* trace_files[] = {"trace.json", "logits.npy", "stage_seconds.npy", "head_seconds.npy",
                                       "labels.npy"};

template <class Scalar>
basic_trace<Scalar> random_trace(trace_layout layout, std::size_t n, unsigned seed) {
    basic_trace<Scalar> t(std::move(layout));
    std::mt19937 rng(seed);
    std::normal_distribution<Scalar> z;
    std::uniform_real_distribution<double> u(1e-4, 1e-2);
    for (std::size_t i = 0; i < n; ++i) {
        std::vector<Scalar> logits(t.heads() * t.classes());
        for (auto& v : logits) v = z(rng);
        std::vector<double> stage(t.stages()), head(t.heads());
        for (auto& v : stage) v = u(rng);
        for (auto& v : head) v = u(rng);
        const std::optional<std::size_t> label =
            i % 3 == 2 ? std::nullopt : std::optional<std::size_t>((i * 7 + seed) % t.classes());
        t.add(logits, stage, head, label);
    }
    return t;
}

/// The five files of a trace, as write_trace writes them.
template <class Scalar>
std::vector<std::string> trace_parts(const basic_trace<Scalar>& t) {
    const fs::path dir = scratch() / "trace";
    write_trace(dir, t);
    std::vector<std::string> parts;
    for (const char* f : trace_files) parts.push_back(slurp(dir / f));
    return parts;
}

void spit_bundle(const fs::path& file, const std::vector<std::string>& parts) {
    for (const auto& p : parts)
        if (p.find(earlyexit_fuzz::file_separator) != std::string::npos) die(file.string() + ": a part holds the separator");
    spit(file, earlyexit_fuzz::join_files(parts));
}

void trace_corpus(const fs::path& dir) {
    fs::create_directories(dir);
    trace t = random_trace<float>(trace_layout{3, {0, 2}, {10, 20, 30}, {1, 2}}, 4, 1);
    t.provenance = {{"dataset", "fuzz"}, {"model", "toy"}};
    const auto good = trace_parts(t);
    spit_bundle(dir / "valid_float.bundle", good);
    spit_bundle(dir / "valid_double.bundle", trace_parts(random_trace<double>(trace_layout{2, {0}, {1}, {1}}, 2, 2)));
    spit_bundle(dir / "valid_empty.bundle", trace_parts(random_trace<float>(trace_layout{4, {0, 1}, {5, 5}, {1, 1}}, 0, 3)));
    spit_bundle(dir / "valid_one_head.bundle", trace_parts(random_trace<float>(trace_layout{5, {1}, {2, 3}, {4}}, 3, 4)));

    const auto with_json = [&](const fs::path& file, std::string_view from, std::string_view to) {
        auto parts = good;
        parts[0] = edited(parts[0], from, to);
        spit_bundle(file, parts);
    };
    with_json(dir / "broken_json_version.bundle", "\"version\": 1", "\"version\": 2");
    with_json(dir / "broken_json_samples_mismatch.bundle", "\"samples\": 4", "\"samples\": 5");
    with_json(dir / "broken_json_samples_negative.bundle", "\"samples\": 4", "\"samples\": -1");
    with_json(dir / "broken_json_samples_float.bundle", "\"samples\": 4", "\"samples\": 1e30");
    with_json(dir / "broken_json_classes_text.bundle", "\"classes\": 3", "\"classes\": \"three\"");
    with_json(dir / "broken_json_head_positions.bundle", "\"head_positions\": [\n    0,\n    2\n  ]",
              "\"head_positions\": [\n    2,\n    -1.0\n  ]");
    with_json(dir / "broken_json_provenance.bundle", "\"dataset\": \"fuzz\"", "\"dataset\": 1");
    with_json(dir / "broken_json_truncated.bundle", "\"stage_macs\"", "");
    {
        auto parts = good;
        parts.pop_back();  // no labels.npy
        spit_bundle(dir / "broken_missing_labels.bundle", parts);
    }
    {
        const fs::path d = scratch();
        auto parts = good;
        npy::write<std::int64_t>(d / "labels.npy", std::vector<std::int64_t>{0, 3, -1, 1}, std::vector<std::size_t>{4});
        parts[4] = slurp(d / "labels.npy");
        spit_bundle(dir / "broken_label_range.bundle", parts);
        npy::write<double>(d / "stage.npy", std::vector<double>(12, -1.0), std::vector<std::size_t>{4, 3});
        parts = good;
        parts[2] = slurp(d / "stage.npy");
        spit_bundle(dir / "broken_negative_time.bundle", parts);
        parts = good;
        parts[1] = parts[1].substr(0, parts[1].size() - 5);
        spit_bundle(dir / "broken_truncated_logits.bundle", parts);
    }
}

// ---- frequency tables

void dvfs_table_corpus(const fs::path& source, const fs::path& dir) {
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(source / "data" / "dvfs"))
        if (e.path().extension() == ".json") fs::copy_file(e.path(), dir / ("shipped_" + e.path().filename().string()),
                                                           fs::copy_options::overwrite_existing);
    const dvfs::frequency_domain d("sample", {{8e8, 0.9}, {1.4e9, 1.05, 3.5}, {2e9, 1.25}},
                                   {.static_w = 1.5,
                                    .capacitance_f = 2.5e-9,
                                    .switch_latency_s = 140e-6,
                                    .switch_energy_j = 1.5e-3,
                                    .memory_share = 0.25,
                                    .idle_w = 0.5,
                                    .macs_per_cycle = 2},
                                   "made up for the fuzzer", "frequency table", "one core");
    dvfs::write_frequency_domain(dir / "valid_v2.json", d);
    const std::string v2 = slurp(dir / "valid_v2.json");
    const std::string v1 = R"({"format": "earlyexit.frequency_domain", "version": 1, "name": "one", "source": "s",
 "notes": "every number made up",
 "levels": [{"frequency_mhz": 1000, "voltage_v": 1.0}],
 "model": {"static_w": 1, "capacitance_nf": 1, "switch_latency_us": 10, "switch_energy_uj": 5, "memory_share": 0}}
)";
    spit(dir / "valid_v1.json", v1);
    spit(dir / "broken_version.json", edited(v2, "\"version\": 2", "\"version\": 3"));
    spit(dir / "broken_v1_with_idle_w.json", edited(v1, "\"memory_share\": 0", "\"memory_share\": 0, \"idle_w\": 0.5"));
    spit(dir / "broken_unknown_field.json", edited(v1, "\"voltage_v\": 1.0", "\"voltage_v\": 1.0, \"volts\": 1"));
    spit(dir / "broken_unsorted.json", edited(v2, "\"frequency_mhz\": 800.0", "\"frequency_mhz\": 1500.0"));
    spit(dir / "broken_duplicate.json", edited(v2, "\"frequency_mhz\": 800.0", "\"frequency_mhz\": 1400.0"));
    spit(dir / "broken_frequency_overflow.json", edited(v1, "\"frequency_mhz\": 1000", "\"frequency_mhz\": 1e303"));
    spit(dir / "broken_memory_share.json", edited(v2, "\"memory_share\": 0.25", "\"memory_share\": 1"));
    spit(dir / "broken_idle_above_power.json", edited(v2, "\"idle_w\": 0.5", "\"idle_w\": 50"));
    spit(dir / "broken_notes.json", edited(v1, "\"every number made up\"", "[\"a\", 7]"));
    spit(dir / "broken_no_levels.json", edited(v1, "[{\"frequency_mhz\": 1000, \"voltage_v\": 1.0}]", "[]"));
    spit(dir / "broken_truncated.json", v2.substr(0, v2.size() / 2));
    spit(dir / "broken_not_object.json", "[\"earlyexit.frequency_domain\", 2]\n");
}

// ---- policy states

template <class P>
P trained(P p, const trace& t) {
    (void)replay(t.slice(0, 20), p);
    p.rebase();  // a base that is neither empty nor the final state
    (void)replay(t.slice(20, 20), p);
    return p;
}

void policy_state_corpus(const fs::path& dir) {
    fs::create_directories(dir);
    const trace t = random_trace<float>(trace_layout{3, {0, 1, 2}, {1, 1, 1}, {0.1, 0.1, 0.1}}, 40, 5);
    const dee_options o{.lambda = 0.3,
                        .alpha = 0.7,
                        .measure = context_measure::margin,
                        .confidence_bins = 3,
                        .cost_bins = 2,
                        .max_cost_fraction = 1.5,
                        .cost = cost_context::budget,
                        .streak_bins = 2,
                        .probe_rate = 0.3,
                        .seed = (std::uint64_t{1} << 63) + 12345,
                        .feedback_capacity = 77,
                        .memory = 100,
                        .confidence_edges = {{0.2, 0.6}, {0.1, 0.5}}};
    dee_options uniform{.confidence_bins = 2, .probe_rate = 0.5};
    const bandit_options b{.lambda = 0.35, .alpha = 0.45, .epsilon = 0.15, .probe_rate = 0.2, .seed = 7, .feedback_capacity = 33};

    save_policy_state(dir / "valid_dee_max_prob.json", trained(policy::dee<>(o), t));
    save_policy_state(dir / "valid_dee_agreement.json", trained(policy::dee<reward::agreement_reward>(uniform), t));
    save_policy_state(dir / "valid_dee_correctness_fresh.json", policy::dee<reward::correctness_reward>(uniform));
    save_policy_state(dir / "valid_ucb_exit_max_prob.json", trained(policy::ucb_exit<>(b), t));
    save_policy_state(dir / "valid_ucb_exit_agreement_fresh.json", policy::ucb_exit<reward::agreement_reward>(b));
    save_policy_state(dir / "valid_epsilon_greedy_correctness.json",
                      trained(policy::epsilon_greedy<reward::correctness_reward>(b), t));
    // Version 1: DEE without cost, streak_bins and memory.
    json v1 = policy_state_json(trained(policy::dee<>(uniform), t));
    v1["version"] = 1;
    for (const char* key : {"cost", "streak_bins", "memory"}) v1["options"].erase(key);
    spit(dir / "valid_dee_version_1.json", v1.dump(2) + '\n');

    const std::string dee = slurp(dir / "valid_dee_max_prob.json");
    const std::string ucb = slurp(dir / "valid_ucb_exit_max_prob.json");
    spit(dir / "broken_version.json", edited(ucb, "\"version\": 2", "\"version\": 3"));
    spit(dir / "broken_heads_too_many.json", edited(ucb, "\"heads\": 3", "\"heads\": 2097152"));
    spit(dir / "broken_heads_mismatch.json", edited(dee, "\"heads\": 3", "\"heads\": 2"));
    spit(dir / "broken_confidence_bins.json", edited(dee, "\"confidence_bins\": 3", "\"confidence_bins\": 0"));
    spit(dir / "broken_seed_negative.json", edited(ucb, "\"seed\": 7", "\"seed\": -7"));
    spit(dir / "broken_lambda_text.json", edited(ucb, "\"lambda\": 0.35", "\"lambda\": \"0.35\""));
    json j = json::parse(ucb);
    j["cells"][0] = {-1, 0};
    spit(dir / "broken_negative_count.json", j.dump(2));
    j = json::parse(ucb);
    j["cells"][1] = {0, 5};
    spit(dir / "broken_sum_without_samples.json", j.dump(2));
    j = json::parse(ucb);
    j["base"][2] = {j["cells"][2][0].get<std::int64_t>() + 1, 0};
    spit(dir / "broken_base_above_cells.json", j.dump(2));
    j = json::parse(dee);
    j["edges"][1] = 0.0;
    spit(dir / "broken_edges_not_increasing.json", j.dump(2));
    spit(dir / "broken_truncated.json", ucb.substr(0, ucb.size() / 2));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: make_reader_corpora <source tree> <tests/fuzz>\n");
        return 2;
    }
    const fs::path source = argv[1], out = argv[2];
    trace_corpus(out / "trace_corpus");
    dvfs_table_corpus(source, out / "dvfs_table_corpus");
    policy_state_corpus(out / "policy_state_corpus");
    fs::remove_all(fs::temp_directory_path() / "earlyexit_make_reader_corpora");
    return 0;
}
