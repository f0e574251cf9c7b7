#pragma once
// The demos' batched and threaded runs: the same policies through parallel_runner over the
// model's batched network (batched_model.hpp), timed on the wall clock; the throughput grid
// (batch sizes x thread counts, full against the validation-chosen headline) with the stage
// occupancy behind it; and the rows of the main table when --batch / --threads are given,
// checked against a replay of the recorded trace batched the same way.

#include <algorithm>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <earlyexit/earlyexit.hpp>
#include <earlyexit/io.hpp>
#include <earlyexit/stream_runner.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "resources.hpp"

namespace earlyexit::demo {

/// A demo's batched network with a maker of its batch states (make_state(capacity)) and
/// fill(state, first, count), which puts evaluation samples first..first+count-1 into rows
/// 0..count-1 (called from the workers concurrently, each on its own state).
template <class BatchNet, class MakeState, class Fill>
struct batched_demo {
    const BatchNet* net;
    MakeState make_state;
    Fill fill;
};

template <class BatchNet, class MakeState, class Fill>
batched_demo(const BatchNet*, MakeState, Fill) -> batched_demo<BatchNet, MakeState, Fill>;

/// A JSON file (PyTorch's throughput result); earlyexit::error naming the file when it cannot
/// be read or parsed, or has no "rows" array.
[[nodiscard]] inline nlohmann::json read_result_json(const std::filesystem::path& file) {
    std::ifstream in(file);
    if (!in) earlyexit::fail("{}: cannot be read", display_path(file).string());
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) earlyexit::fail("{}: not valid JSON", display_path(file).string());
    if (!j.contains("rows") || !j["rows"].is_array())
        earlyexit::fail("{}: no \"rows\" array (write it with benchmarks/pytorch_throughput.py --json)",
                        display_path(file).string());
    return j;
}

/// Every string in `j` (recursively) with absolute paths cut to their last component
/// ("/usr/lib/x/libopenblas.so" -> "libopenblas.so"), so that a JSON copied into the demo's
/// result carries no path of the machine it was made on.
inline void strip_absolute_paths(nlohmann::json& j) {
    if (j.is_string()) {
        const std::string s = j.get<std::string>();
        std::string out;
        for (std::size_t i = 0; i < s.size();) {
            const bool starts = s[i] == '/' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '(' || s[i - 1] == '\'' ||
                                                s[i - 1] == '"' || s[i - 1] == '=' || s[i - 1] == ':');
            if (!starts) {
                out += s[i++];
                continue;
            }
            std::size_t end = i;  // the path runs to a space, quote or closing parenthesis
            while (end < s.size() && s[end] != ' ' && s[end] != ')' && s[end] != '\'' && s[end] != '"') ++end;
            const std::string path = s.substr(i, end - i);
            const auto slash = path.find_last_of('/');
            out += path.substr(slash + 1);
            i = end;
        }
        j = out;
    } else if (j.is_structured()) {
        for (auto& v : j) strip_absolute_paths(v);
    }
}

/// One timed batched run.
struct batched_run {
    std::vector<sample_outcome> outcomes;
    double wall_seconds = 0;  ///< the run, inputs' preparation (fill) included, threads started before
    batch_stats stats;
};

/// The first `count` evaluation samples as the runners take them (labels from the trace).
[[nodiscard]] inline std::vector<sample_info> samples_of(const trace& t, std::size_t count) {
    std::vector<sample_info> s(count);
    for (std::size_t i = 0; i < count; ++i) s[i] = {.index = i, .label = t.label(i)};
    return s;
}

/// Runs `policy` over `samples` with `threads` workers in batches of `batch` (round robin, so
/// a learning policy does the same on every run). warm_up: a first untimed run over a few
/// batches on a copy of the runner's start (for policies that do not learn).
template <class B, class Policy>
[[nodiscard]] batched_run run_batched(const B& b, const Policy& policy, std::span<const sample_info> samples,
                                      std::size_t batch, std::size_t threads, bool warm_up) {
    using net_t = std::remove_cvref_t<decltype(*b.net)>;
    parallel_runner<net_t, Policy> pool(*b.net, policy, {.threads = threads, .batch = batch},
                                        [&] { return b.make_state(batch); });
    batched_run r;
    r.outcomes.resize(samples.size());
    if (warm_up) {
        const std::size_t w = std::min(samples.size(), batch * threads * 2);
        pool.run(samples.first(w), b.fill, std::span<sample_outcome>(r.outcomes).first(w));
        pool.reset_stats();
    }
    const double t0 = wall_clock{}.now();
    pool.run(samples, b.fill, r.outcomes);
    r.wall_seconds = wall_clock{}.now() - t0;
    r.stats = pool.stats();
    return r;
}

/// Runs `policy` over `samples` through a stream_runner of `capacity` rows on one thread
/// (continuous batching: exits' rows are refilled from the samples), timed on the wall clock;
/// outcomes in input order, each sample's seconds from its admission to its exit. warm_up: a
/// first untimed run over 2 * capacity samples (for policies that do not learn).
template <class B, class Policy>
[[nodiscard]] batched_run run_streamed(const B& b, const Policy& policy, std::span<const sample_info> samples,
                                       std::size_t capacity, bool warm_up) {
    using net_t = std::remove_cvref_t<decltype(*b.net)>;
    stream_runner<net_t, Policy> runner(*b.net, policy, {.capacity = capacity}, [&] { return b.make_state(capacity); });
    batched_run r;
    r.outcomes.resize(samples.size());
    if (warm_up) {
        const std::size_t w = std::min(samples.size(), capacity * 2);
        runner.run_in_order(samples.first(w), b.fill, std::span<sample_outcome>(r.outcomes).first(w));
        runner.reset_stats();
    }
    const double t0 = wall_clock{}.now();
    runner.run_in_order(samples, b.fill, r.outcomes);
    r.wall_seconds = wall_clock{}.now() - t0;
    r.stats = runner.stats();
    return r;
}

/// The outcomes of `policy` replayed on the trace through the same batched schedule
/// (rowwise_network over the replay network): what a batched live run must decide.
template <class Policy>
[[nodiscard]] std::vector<sample_outcome> replay_batched(const trace& t, const Policy& policy,
                                                         std::span<const sample_info> samples, std::size_t batch,
                                                         std::size_t threads) {
    const replay_network<float> replayed(t);
    const rowwise_network<replay_network<float>> rows(replayed);
    std::deque<double> charged;  // the replay network's time sinks, one per row state (unused here)
    const auto make = [&] {
        return rowwise_state<replay_state>(batch, [&] { return replay_state{0, &charged.emplace_back(0.0)}; });
    };
    parallel_runner<rowwise_network<replay_network<float>>, Policy> pool(rows, policy, {.threads = threads, .batch = batch},
                                                                         make);
    std::vector<sample_outcome> out(samples.size());
    pool.run(samples, [](rowwise_state<replay_state>& s, std::size_t first, std::size_t n) {
        for (std::size_t r = 0; r < n; ++r) s.row(r).sample = first + r;
    }, out);
    return out;
}

/// Equal decisions (class, exit, heads, stages, declared cost, levels): the batched live run
/// against its batched replay; times differ by nature.
[[nodiscard]] inline bool same_exits(std::span<const sample_outcome> a, std::span<const sample_outcome> b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].predicted != b[i].predicted || a[i].head != b[i].head || a[i].heads_evaluated != b[i].heads_evaluated ||
            a[i].positions_run != b[i].positions_run || a[i].macs != b[i].macs || a[i].frequency_level != b[i].frequency_level)
            return false;
    return true;
}

/// The main table's rows run batched (--batch / --threads): each policy live through the
/// batched network and replayed through the same schedule; replay_matches_live compares them.
template <class B>
[[nodiscard]] std::vector<policy_metrics> run_batched_rows(const B& b, const trace& test,
                                                           const std::vector<named_policy<float>>& policies,
                                                           std::size_t batch, std::size_t threads,
                                                           std::vector<std::vector<sample_outcome>>* live_outcomes) {
    const auto samples = samples_of(test, test.size());
    std::vector<policy_metrics> rows;
    for (const auto& p : policies) {
        progress_line live(fmt::format("live {} (batch {}, {} thread{})", p.name, batch, threads, threads == 1 ? "" : "s"),
                           1);
        auto run = run_batched(b, p.policy, samples, batch, threads, false);
        live.finish();
        const auto replayed = replay_batched(test, p.policy, samples, batch, threads);
        auto row = summarize(p.name, run.outcomes, [&](std::size_t i) { return test.label(i); }, test.info());
        row.throughput_samples_per_s = static_cast<double>(samples.size()) / run.wall_seconds;
        row.replay_matches_live = same_exits(run.outcomes, replayed);
        rows.push_back(std::move(row));
        if (live_outcomes != nullptr) live_outcomes->push_back(std::move(run.outcomes));
    }
    return rows;
}

/// The throughput grid's stream row: `headline` through stream_runner at one thread with
/// `batch` rows (when the batched network has append(); nothing otherwise), printed as a grid
/// row ("stream") with a line naming the runner and its ratio to batch_runner's `batch_rate`,
/// and added to the JSON's rows (runner "stream_runner") and occupancy.
template <class B>
void stream_row(const B& b, const named_policy<float>& headline, const std::vector<sample_outcome>* one_by_one,
                const trace& test, std::span<const sample_info> samples, std::size_t batch, double full_rate,
                double batch_rate, const std::optional<double>& vs_torch, nlohmann::json& json) {
    using net_t = std::remove_cvref_t<decltype(*b.net)>;
    if constexpr (batched_network_with_append<net_t>) {
        const auto info = test.info();
        const std::size_t count = samples.size();
        const auto run = run_streamed(b, headline.policy, samples, batch, true);
        auto m = summarize(headline.name, run.outcomes, [&](std::size_t i) { return test.label(i); }, info);
        const double rate = static_cast<double>(count) / run.wall_seconds;
        std::size_t differ = 0;
        for (std::size_t i = 0; i < count; ++i) differ += run.outcomes[i].head != (*one_by_one)[i].head;
        fmt::print("  {:<9} {:>5} {:>7} {:>11.1f} {:>9.3g} {:>9.3g} {:>9.1f} {:>8.2f} {:>8.2f}x{}\n", 1, batch, "stream",
                   rate, m.p50_seconds * 1e3, m.p99_seconds * 1e3, m.compute_saving * 100, *m.accuracy * 100,
                   rate / full_rate, vs_torch ? fmt::format("  {:>8.2f}x", rate / *vs_torch) : std::string());
        fmt::print("    (stream: {} through stream_runner, {} rows kept full by admitting new samples as others exit: "
                   "{:.2f}x batch_runner's samples/s; latency from admission to exit{})\n",
                   headline.name, batch, rate / batch_rate,
                   differ > 0 ? fmt::format("; {} of {} exits differ from the one-by-one run", differ, count) : "");
        json["rows"].push_back({{"policy", headline.name},
                                {"runner", "stream_runner"},
                                {"batch", batch},
                                {"threads", 1},
                                {"throughput_samples_per_s", rate},
                                {"latency_p50_ms", m.p50_seconds * 1e3},
                                {"latency_p99_ms", m.p99_seconds * 1e3},
                                {"accuracy", *m.accuracy},
                                {"compute_saving", m.compute_saving},
                                {"throughput_vs_full", rate / full_rate},
                                {"throughput_vs_batch_runner", rate / batch_rate},
                                {"exits_differing_from_one_by_one", differ},
                                {"torch_full_samples_per_s", vs_torch ? nlohmann::json(*vs_torch) : nlohmann::json(nullptr)}});
        nlohmann::json occ = nlohmann::json::array();
        for (std::size_t s = 0; s < info.stages; ++s)
            occ.push_back(
                {{"stage", s}, {"occupancy", run.stats.occupancy(s)}, {"rows_per_call", run.stats.rows_per_call(s)}});
        json["occupancy"][fmt::format("stream_runner_batch_{}", batch)] = occ;
    } else {
        (void)b, (void)headline, (void)one_by_one, (void)test, (void)samples, (void)batch, (void)full_rate,
            (void)batch_rate, (void)vs_torch, (void)json;
    }
}

/// For each thread count of the grid: PyTorch's fastest full network at any batch size (its
/// row with the most samples/s: mode, layout and batch as the file names them) against the
/// grid's full network and headline at the largest batch, and PyTorch's fastest batch-1 latency
/// (p50) against the headline's at batch 1; printed, and written to grid["vs_torch_best"].
inline void against_torch_best(const nlohmann::json& torch, const std::vector<std::size_t>& thread_counts,
                               const std::vector<std::size_t>& batches, nlohmann::json& grid) {
    grid["vs_torch_best"] = nlohmann::json::array();
    const auto ours = [&](std::string_view runner, bool full, std::size_t batch, std::size_t threads,
                          const char* key) -> std::optional<double> {
        for (const auto& r : grid["rows"])
            if (r.value("runner", "") == runner && (r.value("policy", "") == "full") == full &&
                r.value("batch", std::size_t{0}) == batch && r.value("threads", std::size_t{0}) == threads)
                return r.value(key, 0.0);
        return std::nullopt;
    };
    for (const std::size_t threads : thread_counts) {
        const nlohmann::json* best = nullptr;
        const nlohmann::json* fastest_one = nullptr;  // the most samples/s at batch 1
        for (const auto& r : torch["rows"]) {
            if (r.value("threads", 0) != static_cast<int>(threads)) continue;
            if (!best || r.value("samples_per_s", 0.0) > (*best).value("samples_per_s", 0.0)) best = &r;
            if (r.value("batch", 0) == 1 &&
                (!fastest_one || r.value("samples_per_s", 0.0) > (*fastest_one).value("samples_per_s", 0.0)))
                fastest_one = &r;
        }
        if (!best) continue;
        const double rate = best->value("samples_per_s", 0.0);
        const std::size_t wide = batches.back();
        const auto full = ours("batch_runner", true, wide, threads, "throughput_samples_per_s");
        const auto early = ours("batch_runner", false, wide, threads, "throughput_samples_per_s");
        const auto early_p50 = ours("batch_runner", false, 1, threads, "latency_p50_ms");
        const double torch_p50 = fastest_one ? fastest_one->value("batch_latency_p50_ms", 0.0) : 0.0;
        const std::string what = fmt::format("{} {} at batch {}", best->value("mode", std::string("eager")),
                                             best->value("layout", std::string("?")), best->value("batch", 0));
        fmt::print("  against PyTorch at its best on {} thread{} ({}: {:.1f} samples/s): full at batch {} {}, headline {}",
                   threads, threads == 1 ? "" : "s", what, rate, wide, full ? fmt::format("{:.2f}x", *full / rate) : "-",
                   early ? fmt::format("{:.2f}x", *early / rate) : "-");
        if (early_p50 && torch_p50 > 0)
            fmt::print("; batch-1 latency p50: headline {:.3g} ms = {:.2f}x PyTorch's fastest at batch 1 ({:.3g} ms)",
                       *early_p50, *early_p50 / torch_p50, torch_p50);
        fmt::print("\n");
        grid["vs_torch_best"].push_back(
            {{"threads", threads},
             {"torch_best", what},
             {"torch_best_samples_per_s", rate},
             {"full_vs_torch_best", full ? nlohmann::json(*full / rate) : nlohmann::json(nullptr)},
             {"headline_vs_torch_best", early ? nlohmann::json(*early / rate) : nlohmann::json(nullptr)},
             {"torch_batch1_p50_ms", torch_p50 > 0 ? nlohmann::json(torch_p50) : nlohmann::json(nullptr)},
             {"headline_batch1_p50_ms", early_p50 ? nlohmann::json(*early_p50) : nlohmann::json(nullptr)}});
    }
}

/// What the throughput grid measured, printed, written to the JSON and plotted.
struct throughput_section {
    nlohmann::json json;
    std::vector<curve> curves;  ///< samples/s against the batch size, one curve per policy and thread count
};

/// The grid: for each thread count and batch size, `full` and the headline over the first
/// `count` samples; their throughput, latency percentiles, accuracy and saving; exits that
/// differ from the one-by-one live runs (`one_by_one`: full's and the headline's outcomes);
/// the headline's stage occupancy; at one thread and the grid's largest batch (> 1), the headline
/// also through stream_runner (continuous batching; "stream" rows, runner "stream_runner" in the
/// JSON, latency from each sample's admission to its exit) beside batch_runner's; and, when
/// torch_rows is given (benchmarks/pytorch_throughput.py --json), PyTorch's full-network
/// throughput (its fastest mode and layout) at the same batch and threads beside it.
template <class B>
[[nodiscard]] throughput_section run_throughput(const B& b, const trace& test, const named_policy<float>& full,
                                                const named_policy<float>& headline,
                                                const std::vector<const std::vector<sample_outcome>*>& one_by_one,
                                                std::size_t count, const std::vector<std::size_t>& batches,
                                                const std::vector<std::size_t>& thread_counts,
                                                const std::optional<nlohmann::json>& torch) {
    const auto info = test.info();
    count = std::min(count, test.size());
    const auto samples = samples_of(test, count);
    throughput_section out;
    out.json = {{"samples", count},
                {"backend", b.net->backend()},
                {"schedule", "round_robin"},
                {"latency", "per sample: from its batch's start to its exit (the batch's inputs prepared before)"},
                {"latency_stream_runner", "per sample: from its admission (its input put into a free row) to its exit"},
                {"throughput", "samples / wall time of the run, the inputs' preparation included"},
                {"rows", nlohmann::json::array()},
                {"occupancy", nlohmann::json::object()}};
    const auto torch_at = [&](std::size_t batch, std::size_t threads) -> std::optional<double> {
        if (!torch) return std::nullopt;
        std::optional<double> best;
        for (const auto& r : (*torch)["rows"])
            if (r.value("batch", 0) == static_cast<int>(batch) && r.value("threads", 0) == static_cast<int>(threads))
                best = std::max(best.value_or(0.0), r.value("samples_per_s", 0.0));
        return best;
    };
    fmt::print("\nthroughput on the first {} images, batched network on {} (wall time, inputs prepared inside the run; "
               "latency from the batch's start to the sample's exit):\n",
               count, b.net->backend());
    fmt::print("  {:<9} {:>5} {:>7} {:>11} {:>9} {:>9} {:>9} {:>8} {:>9}{}\n", "threads", "batch", "policy", "samples/s",
               "p50 ms", "p99 ms", "saving %", "acc %", "vs full", torch ? "  vs torch full" : "");
    const named_policy<float>* both[2] = {&full, &headline};
    for (const std::size_t threads : thread_counts) {
        curve c_full{fmt::format("full, {} thread{}", threads, threads == 1 ? "" : "s"), {}};
        curve c_head{fmt::format("{}, {} thread{}", headline.name, threads, threads == 1 ? "" : "s"), {}};
        for (const std::size_t batch : batches) {
            double full_rate = 0;
            for (int which = 0; which < 2; ++which) {
                const auto& p = *both[which];
                const auto run = run_batched(b, p.policy, samples, batch, threads, true);
                auto m = summarize(p.name, run.outcomes, [&](std::size_t i) { return test.label(i); }, info);
                const double rate = static_cast<double>(count) / run.wall_seconds;
                if (which == 0) full_rate = rate;
                std::size_t differ = 0;
                for (std::size_t i = 0; i < count; ++i) differ += run.outcomes[i].head != (*one_by_one[which])[i].head;
                const auto vs_torch = torch_at(batch, threads);
                fmt::print("  {:<9} {:>5} {:>7} {:>11.1f} {:>9.3g} {:>9.3g} {:>9.1f} {:>8.2f} {:>8.2f}x{}\n", threads,
                           batch, which == 0 ? "full" : "early", rate, m.p50_seconds * 1e3, m.p99_seconds * 1e3,
                           m.compute_saving * 100, *m.accuracy * 100, rate / full_rate,
                           vs_torch ? fmt::format("  {:>8.2f}x", rate / *vs_torch) : std::string());
                (which == 0 ? c_full : c_head).points.emplace_back(static_cast<double>(batch), rate);
                out.json["rows"].push_back({{"policy", p.name},
                                            {"runner", "batch_runner"},
                                            {"batch", batch},
                                            {"threads", threads},
                                            {"throughput_samples_per_s", rate},
                                            {"latency_p50_ms", m.p50_seconds * 1e3},
                                            {"latency_p99_ms", m.p99_seconds * 1e3},
                                            {"accuracy", *m.accuracy},
                                            {"compute_saving", m.compute_saving},
                                            {"throughput_vs_full", rate / full_rate},
                                            {"exits_differing_from_one_by_one", differ},
                                            {"torch_full_samples_per_s", vs_torch ? nlohmann::json(*vs_torch) : nlohmann::json(nullptr)}});
                if (which == 1 && threads == thread_counts.front()) {
                    nlohmann::json occ = nlohmann::json::array();
                    for (std::size_t s = 0; s < info.stages; ++s)
                        occ.push_back({{"stage", s},
                                       {"occupancy", run.stats.occupancy(s)},
                                       {"rows_per_call", run.stats.rows_per_call(s)}});
                    out.json["occupancy"][fmt::format("batch_{}", batch)] = occ;
                }
                if (differ > 0)
                    fmt::print("    ({} of {} exits differ from the one-by-one run: the batched GEMMs sum in another "
                               "order, which moves a confidence across its threshold)\n",
                               differ, count);
                if (which == 1 && threads == 1 && batch == batches.back() && batch > 1)
                    stream_row(b, headline, one_by_one[1], test, samples, batch, full_rate, rate, vs_torch, out.json);
            }
        }
        out.curves.push_back(std::move(c_full));
        out.curves.push_back(std::move(c_head));
        // PyTorch's full network (its fastest mode and layout) at the same batch sizes and
        // threads, when its JSON was given.
        curve c_torch{fmt::format("PyTorch full, {} thread{}", threads, threads == 1 ? "" : "s"), {}};
        for (const std::size_t batch : batches)
            if (const auto t = torch_at(batch, threads)) c_torch.points.emplace_back(static_cast<double>(batch), *t);
        if (!c_torch.points.empty()) out.curves.push_back(std::move(c_torch));
    }
    // The occupancy behind the figures: share of the samples that reached each stage, and the
    // rows per batched call, for the headline at the largest batch.
    const auto& last = out.json["occupancy"][fmt::format("batch_{}", batches.back())];
    fmt::print("  {} at batch {}: share of samples reaching each stage (rows per batched call):", headline.name,
               batches.back());
    for (const auto& s : last)
        fmt::print(" {:.2f} ({:.1f})", s["occupancy"].get<double>(), s["rows_per_call"].get<double>());
    fmt::print("\n");
    if (const auto stream = out.json["occupancy"].find(fmt::format("stream_runner_batch_{}", batches.back()));
        stream != out.json["occupancy"].end()) {
        fmt::print("  {} through stream_runner at batch {}: rows per batched call:", headline.name, batches.back());
        for (const auto& s : *stream) fmt::print(" {:.1f}", s["rows_per_call"].get<double>());
        fmt::print("\n");
    }
    if (torch) {
        against_torch_best(*torch, thread_counts, batches, out.json);
        out.json["torch"] = *torch;
        strip_absolute_paths(out.json["torch"]);  // the file is the user's: copy no machine path
    }
    return out;
}

}  // namespace earlyexit::demo
