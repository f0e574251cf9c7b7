#pragma once
// Test support: a scripted multi-exit network whose heads return fixed logits per sample and
// whose stages and heads count their calls, so tests can assert exactly what a runner ran.

#include <cstddef>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include <earlyexit/earlyexit.hpp>

namespace earlyexit_test {

/// The state flowing through a scripted network: which sample it is and how far it got.
struct scripted_state {
    std::size_t sample = 0;
    std::size_t stages_run = 0;
};

/// Call counters, shared by reference with the network's stages and heads.
struct counters {
    std::vector<int> stage_calls;
    std::vector<int> head_calls;
    void clear() {
        std::fill(stage_calls.begin(), stage_calls.end(), 0);
        std::fill(head_calls.begin(), head_calls.end(), 0);
    }
};

/// logits[sample][head][class]
using logit_table = std::vector<std::vector<std::vector<float>>>;

/// A dynamic network of `stages` stages with heads at `positions` (last = stages-1) whose head k
/// outputs table[sample][k]. Stage p declares `stage_macs[p]`, every head `head_macs`.
inline earlyexit::dynamic_network<scripted_state> scripted_network(std::size_t stages,
                                                                   const std::vector<std::size_t>& positions,
                                                                   const logit_table& table, counters& count,
                                                                   std::vector<double> stage_macs = {},
                                                                   double head_macs = 1.0) {
    count.stage_calls.assign(stages, 0);
    count.head_calls.assign(positions.size(), 0);
    if (stage_macs.empty()) stage_macs.assign(stages, 10.0);
    const std::size_t classes = table.at(0).at(0).size();
    earlyexit::dynamic_network_builder<scripted_state> b;
    std::size_t k = 0;
    for (std::size_t p = 0; p < stages; ++p) {
        b.stage(
            [&count, p](scripted_state& s) {
                ++count.stage_calls[p];
                ++s.stages_run;
            },
            {.macs = stage_macs[p]});
        if (k < positions.size() && positions[k] == p) {
            b.exit(earlyexit::make_head(
                [&count, &table, k](const scripted_state& s, std::span<float> out) {
                    ++count.head_calls[k];
                    const auto& row = table[s.sample][k];
                    std::copy(row.begin(), row.end(), out.begin());
                },
                classes, head_macs));
            ++k;
        }
    }
    return b.build();
}

/// Random logits for n samples x heads x classes; deeper heads get sharper on average.
inline logit_table random_table(std::size_t samples, std::size_t heads, std::size_t classes, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::uniform_int_distribution<std::size_t> pick(0, classes - 1);
    logit_table t(samples, std::vector<std::vector<float>>(heads, std::vector<float>(classes)));
    for (auto& sample : t) {
        const std::size_t truth = pick(rng);
        for (std::size_t k = 0; k < heads; ++k) {
            for (auto& z : sample[k]) z = noise(rng);
            sample[k][truth] += 3.0f * static_cast<float>(k + 1) / static_cast<float>(heads) * std::abs(noise(rng));
        }
    }
    return t;
}

/// Head positions for a random network of `stages` stages: each stage but the last gets a head
/// with probability 1/2 (one rng() draw per stage, in order), the last always has one.
inline std::vector<std::size_t> random_head_positions(std::mt19937& rng, std::size_t stages) {
    std::vector<std::size_t> positions;
    for (std::size_t p = 0; p + 1 < stages; ++p)
        if (rng() % 2 == 0) positions.push_back(p);
    positions.push_back(stages - 1);
    return positions;
}

/// A random scripted network for the property tests: 1-8 stages with random costs (1-1000
/// MACs), heads at random_head_positions, 2-10 classes, and a random_table of `samples` rows
/// (seeded with table_seed); heads declare head_macs. The draws come from rng in this order:
/// stages, head positions, classes, the stage costs. Not movable: the network's stages and
/// heads refer to its table and counters.
struct random_scripted {
    random_scripted(std::mt19937& rng, std::size_t samples, unsigned table_seed, double head_macs)
        : stages(1 + rng() % 8), positions(random_head_positions(rng, stages)), classes(2 + rng() % 9),
          stage_macs(stages) {
        for (auto& m : stage_macs) m = static_cast<double>(1 + rng() % 1000);
        table = random_table(samples, positions.size(), classes, table_seed);
        net.emplace(scripted_network(stages, positions, table, count, stage_macs, head_macs));
    }
    random_scripted(const random_scripted&) = delete;
    random_scripted& operator=(const random_scripted&) = delete;

    std::size_t stages;
    std::vector<std::size_t> positions;
    std::size_t classes;
    std::vector<double> stage_macs;
    logit_table table;
    counters count;
    std::optional<earlyexit::dynamic_network<scripted_state>> net;
};

/// A context for policy unit tests, with the given measures and patience.
inline earlyexit::exit_context<float> context_with(float max_prob, float margin, float entropy, std::size_t top1,
                                                   std::size_t patience = 1, bool valid = true) {
    earlyexit::exit_context<float> c;
    c.measures.max_prob = max_prob;
    c.measures.margin = margin;
    c.measures.entropy = entropy;
    c.measures.top1 = top1;
    c.measures.valid = valid;
    c.patience = patience;
    return c;
}

/// The calibration tests' synthetic trace: 6 heads after stages 0..5 (100 MACs each, heads
/// `head_macs`), 5 classes. Heads grow more accurate with depth; the label is the final head's
/// class 90% of the time; every other sample is easy (all heads see its final class clearly),
/// so early exits pay. Each stage and head recorded `stage_seconds` / `head_seconds`.
inline earlyexit::trace synthetic_calibration_trace(std::size_t samples, unsigned seed, double head_macs = 5.0,
                                                    double stage_seconds = 1e-3, double head_seconds = 1e-4) {
    const std::size_t heads = 6, classes = 5;
    const auto table = random_table(samples, heads, classes, seed);
    earlyexit::trace t(earlyexit::trace_layout{classes, {0, 1, 2, 3, 4, 5}, std::vector<double>(heads, 100.0),
                                               std::vector<double>(heads, head_macs)});
    std::mt19937 rng(seed + 1);
    for (std::size_t i = 0; i < samples; ++i) {
        const std::size_t final_top = earlyexit::top1(table[i].back());
        std::vector<float> z;
        for (auto h : table[i]) {
            if (i % 2 == 0) h[final_top] += 6.f;
            z.insert(z.end(), h.begin(), h.end());
        }
        const std::size_t y = rng() % 100 < 90 ? final_top : (final_top + 2) % classes;
        t.add(z, std::vector<double>(heads, stage_seconds), std::vector<double>(heads, head_seconds), y);
    }
    return t;
}

}  // namespace earlyexit_test
