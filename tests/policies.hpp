#pragma once
// The policies the property tests run over (replay == live, batched == one by one): every
// policy of the library in several configurations, and a test learner whose state records the
// order of its updates.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

#include <earlyexit/earlyexit.hpp>

namespace earlyexit_test {

using earlyexit::decision;
using earlyexit::episode;
using earlyexit::exit_context;
using earlyexit::frequency_context;
using earlyexit::sample_info;

/// Skips heads (every other one from head 1), asks for levels, and learns: it keeps the order
/// of the samples it was updated with, which replay must reproduce.
struct skipping_learner {
    std::vector<std::size_t> updates;
    double bar = 0.7;
    std::size_t first_check(const sample_info&) const noexcept { return 1; }
    std::size_t next_check(const exit_context<float>& c) const noexcept { return c.head + 2; }
    std::optional<std::size_t> frequency(const frequency_context<float>& f) const noexcept { return f.next_head % 3; }
    decision decide(const exit_context<float>& c) const noexcept {
        return c.measures.max_prob >= bar ? decision::stop : decision::proceed;
    }
    void update(const episode<float>& e) noexcept {
        updates.push_back(e.sample->index);
        bar = std::min(0.95, bar + 0.001 * static_cast<double>(e.result->head));  // state that drifts
    }
};

/// Every policy of the library, in the configurations the property tests run (heads: the
/// network's), plus skipping_learner.
inline std::vector<earlyexit::any_policy<float>> every_policy(std::size_t heads) {
    using namespace earlyexit;
    return {policy::max_prob{0.5},  policy::max_prob{0.9},  policy::entropy{0.3}, policy::entropy{0.7},
            policy::margin{0.2},    policy::margin{0.6},    policy::patience{1},  policy::patience{2},
            policy::patience{3},    policy::fixed{0},       policy::fixed{heads - 1},
            policy::fixed{heads / 2}, policy::full{},       policy::probe{},      policy::oracle{},
            skipping_learner{},
            // The learning policies, whose decisions depend on what they learned on the samples
            // before: replay must learn in the same order with the same contexts.
            policy::dee<>(dee_options{.lambda = 0.3, .alpha = 0.2, .confidence_bins = 4}),
            policy::dee<>(dee_options{.lambda = 0.1, .cost_bins = 3, .target = value_target::monte_carlo,
                                      .probe_rate = 0.2, .seed = 5}),
            policy::dee<reward::agreement_reward>(dee_options{.lambda = 0.2, .probe_rate = 0.1}),
            policy::dee<reward::correctness_reward>(dee_options{.lambda = 0.2}),
            policy::ucb_exit<>(bandit_options{.lambda = 0.3}),
            policy::epsilon_greedy<reward::agreement_reward>(bandit_options{.lambda = 0.3, .probe_rate = 0.2}),
            policy::predictive({.beta = 1.0}, std::vector<double>(heads, 2.5)),
            policy::predictive({.beta = 0.7, .rounds = 2, .start_head = heads / 2}, std::vector<double>(heads, 2.5)),
            policy::predictive({.predict = false}, std::vector<double>(heads, 2.5))};
}


}  // namespace earlyexit_test
