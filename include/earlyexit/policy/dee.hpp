#pragma once
// policy::dee: early exit as a contextual bandit (DEE, after Ju et al., CIKM 2021), learning
// online which exit is worth stopping at. Our reconstruction (../docs/algorithms.md section 2):
//
//   Reward of stopping at head k: r_k = q_k - lambda * c_k (learning.hpp: q from the reward model,
//   c_k = exit_context::cost_fraction(), declared MACs, never wall time, so a replay decides
//   exactly as the live run did).
//   Context at a non-final head k: a cell b = (bin of a confidence measure, bin of the cost used,
//   bin of the top-1 streak). The confidence bins are uniform on [0, 1] or given per exit (e.g.
//   quantile_edges() from a warm-up trace, calibrate/hindsight.hpp). The cost bins are uniform on
//   [0, max_cost_fraction] of either c_k (cost_context::declared) or the time used against the
//   sample's budget, elapsed seconds / deadline (cost_context::budget: the latency half of DEE's
//   context; a sample without a deadline falls back to c_k). With every head evaluated in
//   order, c_k is the same for every sample, so cost_bins = 1 (the default) loses nothing for
//   declared cost; time varies per sample. The streak bins (streak_bins = s) split on the
//   runner's patience: s = 2 asks whether the top-1 agrees with the previous evaluated head's,
//   s > 2 bins the streak length 1, 2, ..., s (and longer). A confidence number alone cannot
//   tell a head that is sure and consistent from one that is sure and has just changed its mind;
//   on the CIFAR-10 validation trace that bit is what moved DEE past the best static rule.
//   Table per (k, b): n(k, b) and the mean value of continuing V(k, b); for reward models not
//   known when deciding, also the mean stop quality S(k, b), learned only from samples that
//   revealed it (a deeper head, or a label).
//   Decision at k < K-1: stop value s = r_k (known) or S(k, b) - lambda * c_k (estimated).
//   Continue iff V(k, b) + alpha * sqrt(ln N_k / n(k, b)) > s, N_k the samples that reached
//   k. An unvisited cell (or one with no stop estimate yet) continues: continuing is the only
//   action that reveals anything. The final head always stops (the runner never asks).
//   Update after a sample stopped at step j (O(steps)): walking back from j, the target of
//   continuing at step i is G_i = max(r_{i+1}, V(i+1)) (backward induction; G_{j-1} = r_j) or
//   G_i = r_j (value_target::monte_carlo). For a reward not known when deciding, the rule at
//   i+1 is the one decide() applies: G_i = r_{i+1} (the sample's revealed reward, else its
//   estimate) when S(i+1) - lambda c_{i+1} >= V(i+1), else V(i+1); the max of the revealed
//   reward and V would credit the rule with knowing the label. r of a head whose quality this
//   sample does not reveal is its stop estimate; without one the sample teaches nothing about
//   continuing.
//   Probes: with probe_rate p, a fraction p of the samples (chosen by a hash of the seed and
//   sample index) run to the final head whatever the table says; their cost is counted like
//   any other. They keep the label-free agreement estimates honest. probe_rate 1 while training
//   on a labelled trace runs every sample through every head: full information, every cell
//   learns (what the demos' warm start does).
//
// Learning and serving: a learner from empty needs the UCB bonus (alpha) to explore; a learner
// trained beforehand (e.g. with correctness_reward for several passes over a labelled
// validation trace, calibrate/lambda.hpp's warm_start) serves better with little or no
// bonus, and a few probes (probe_rate) to follow drift: serving(alpha, probe_rate) is that
// copy, and with_reward<R>() carries what was learned over to another reward model (e.g. the
// label-free agreement_reward while serving).
//
// decide() is O(log bins), noexcept, allocation-free; update() is O(heads visited) and
// allocation-free (buffers are sized in prepare()). The state is a value: copy (a copy starts a
// branch, see learned_table), reset(), merge(), save/load (policy/state_file.hpp, earlyexit::io).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../context.hpp"
#include "../error.hpp"
#include "../result.hpp"
#include "learning.hpp"

namespace earlyexit {

/// The confidence measure a context is binned on.
enum class context_measure : unsigned char { max_prob, margin, entropy };

[[nodiscard]] constexpr std::string_view name_of(context_measure m) noexcept {
    switch (m) {
        case context_measure::max_prob: return "max_prob";
        case context_measure::margin: return "margin";
        case context_measure::entropy: return "entropy";
    }
    return "unknown";
}

/// What DEE's cost bins measure (see policy::dee).
enum class cost_context : unsigned char {
    declared,  ///< the declared cost used so far, as a fraction of the plain network's
    budget,    ///< the time used so far against the sample's deadline (declared without one)
};

[[nodiscard]] constexpr std::string_view name_of(cost_context c) noexcept {
    return c == cost_context::budget ? "budget" : "declared";
}

/// The measure's value for binning: max-prob, margin or normalized entropy, all in [0, 1]; 0 for
/// invalid logits.
template <std::floating_point Scalar>
[[nodiscard]] double measure_value(context_measure m, const confidence<Scalar>& c) noexcept {
    if (!c.valid) return 0.0;
    switch (m) {
        case context_measure::margin: return static_cast<double>(c.margin);
        case context_measure::entropy: return static_cast<double>(c.entropy);
        default: return static_cast<double>(c.max_prob);
    }
}

/// DEE's parameters. Users tune lambda (or let calibrate_lambda() choose it for an accuracy
/// goal), alpha and the bins; the rest have sensible defaults.
struct dee_options {
    double lambda = 0.25;  ///< cost weight: quality units per plain-network cost, in [0, 100]
    /// Exploration weight of the UCB bonus, in [0, 100]. 0.2 was chosen on the synthetic environment of
    /// the regret example (never on a demo's images): its regret ratio 10^5 : 10^3 was 0.02 at 0.1,
    /// 0.04 at 0.2, 0.06 at 0.3, 0.09 at 0.5, 0.16 at 1.0 (3 seeds); 0.2 keeps some margin of exploration.
    double alpha = 0.2;
    context_measure measure = context_measure::max_prob;
    std::size_t confidence_bins = 10;  ///< per exit, in [1, 1024]
    std::size_t cost_bins = 1;         ///< per exit, in [1, 1024]
    double max_cost_fraction = 1.0;    ///< the cost bins span [0, this]; larger costs go to the last bin
    cost_context cost = cost_context::declared;  ///< what the cost bins measure
    /// Bins of the top-1 streak (the runner's patience), in [1, 64]: 1 ignores it, 2 splits on
    /// whether the top-1 agrees with the previous evaluated head's, s > 2 bins streaks 1..s.
    std::size_t streak_bins = 1;
    value_target target = value_target::backward_induction;
    double probe_rate = 0.0;           ///< fraction of samples run to the final head, in [0, 1]
    std::uint64_t seed = 0;            ///< for the probe draw
    /// Samples held for a label fed back later (correctness_reward only): slots in the ring, at
    /// most 2^24.
    std::size_t feedback_capacity = 1024;
    /// Samples a cell remembers (its stop and continue estimates), in [0, 10^9]: 0 remembers
    /// every sample (a running mean: exact merges, the right choice on a stationary stream); n > 0
    /// forgets one average sample for each new one past n (a moving average over about n
    /// samples), so a served learner follows drift. Merging learners that forgot is approximate.
    std::size_t memory = 0;
    /// Per non-final exit, confidence_bins - 1 increasing interior edges; empty: uniform on [0, 1].
    std::vector<std::vector<double>> confidence_edges{};

    friend bool operator==(const dee_options&, const dee_options&) = default;

    [[nodiscard]] static constexpr std::size_t cells_per_exit_of(std::size_t conf, std::size_t cost,
                                                                 std::size_t streak) noexcept {
        return conf * cost * streak;
    }

    /// Throws earlyexit::error naming the first bad value.
    void validate(std::string_view who = "dee") const {
        detail::checked_nonnegative(lambda, who, "lambda", 100.0);
        detail::checked_nonnegative(alpha, who, "alpha", 100.0);
        if (confidence_bins < 1 || confidence_bins > 1024)
            fail("{}: confidence_bins {} is out of range [1, 1024]", who, confidence_bins);
        if (cost_bins < 1 || cost_bins > 1024) fail("{}: cost_bins {} is out of range [1, 1024]", who, cost_bins);
        if (streak_bins < 1 || streak_bins > 64)
            fail("{}: streak_bins {} is out of range [1, 64]", who, streak_bins);
        if (cells_per_exit_of(confidence_bins, cost_bins, streak_bins) > (std::size_t{1} << 20))
            fail("{}: {} x {} x {} bins make more than 2^20 cells per exit", who, confidence_bins, cost_bins,
                 streak_bins);
        if (!(max_cost_fraction > 0.0 && std::isfinite(max_cost_fraction)))
            fail("{}: max_cost_fraction {} must be finite and > 0", who, max_cost_fraction);
        detail::checked_rate(probe_rate, who, "probe_rate");
        // Bound: binding to a network reserves feedback_capacity x heads records.
        if (feedback_capacity > (std::size_t{1} << 24))
            fail("{}: feedback_capacity {} is out of range [0, 2^24]", who, feedback_capacity);
        if (memory > 1000000000) fail("{}: memory {} is out of range [0, 10^9]", who, memory);
        for (std::size_t k = 0; k < confidence_edges.size(); ++k) {
            const auto& e = confidence_edges[k];
            if (e.size() + 1 != confidence_bins)
                fail("{}: confidence_edges[{}] has {} edges; {} bins need {}", who, k, e.size(), confidence_bins,
                     confidence_bins - 1);
            for (std::size_t i = 0; i < e.size(); ++i) {
                if (!std::isfinite(e[i])) fail("{}: confidence_edges[{}][{}] = {} is not finite", who, k, i, e[i]);
                if (i > 0 && !(e[i] > e[i - 1]))
                    fail("{}: confidence_edges[{}] is not increasing at {} ({} after {})", who, k, i, e[i], e[i - 1]);
            }
        }
    }
};

namespace policy {

/// What a served copy of a trained DEE changes (dee::serving): exploration weight, the share of
/// samples probed to the final head for label-free feedback, and the memory (0: average all).
struct serving_options {
    double alpha = 0.0;
    double probe_rate = 0.0;
    std::size_t memory = 0;
};

/// DEE (see the file comment). Reward: a reward_model (learning.hpp), max_prob_reward by default.
template <reward_model Reward = reward::max_prob_reward>
class dee {
public:
    using reward_type = Reward;

    explicit dee(dee_options o = {}) : opt_(std::move(o)) { opt_.validate(); }

    [[nodiscard]] static constexpr std::string_view name() noexcept { return "dee"; }
    [[nodiscard]] const dee_options& options() const noexcept { return opt_; }
    /// The heads of the network it is bound to (0 before prepare() or restore()).
    [[nodiscard]] std::size_t heads() const noexcept { return heads_; }
    [[nodiscard]] std::size_t cells_per_exit() const noexcept {
        return dee_options::cells_per_exit_of(opt_.confidence_bins, opt_.cost_bins, opt_.streak_bins);
    }

    /// Binds to a network: sizes the table on first use; afterwards (or after restore()) the
    /// network must have the same number of heads. Throws earlyexit::error otherwise.
    void prepare(const network_info& net) {
        if (net.heads == 0) fail("dee: the network has no heads");
        if (heads_ == 0) {
            bind(net.heads);
        } else if (net.heads != heads_) {
            fail("dee: the learned state is for {} heads, the network has {}", heads_, net.heads);
        }
        records_.assign(heads_, step_record{});
        if constexpr (Reward::uses_label)
            if (pending_.capacity() != opt_.feedback_capacity) pending_.reserve(opt_.feedback_capacity, heads_);
    }

    /// Whether the sample runs to the final head as a probe (a hash of the seed and its index).
    [[nodiscard]] bool probing(const sample_info& s) const noexcept {
        return opt_.probe_rate > 0.0 && detail::uniform01(opt_.seed, s.index, 0) < opt_.probe_rate;
    }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        if ((c.sample != nullptr && probing(*c.sample)) || heads_ == 0) return decision::proceed;
        if (c.head + 1 >= heads_) return decision::stop;
        const double cost = c.cost_fraction();
        const double used = opt_.cost == cost_context::budget && c.deadline_seconds && *c.deadline_seconds > 0
                                ? c.elapsed_seconds / *c.deadline_seconds
                                : cost;
        const std::size_t cell = cell_of(c.head, measure_value(opt_.measure, c.measures), used, c.patience);
        const running_mean& v = table_[cont_index(cell)];
        if (v.count == 0) return decision::proceed;
        double stop_value = 0;
        if constexpr (Reward::known_at_decision) {
            stop_value = Reward::quality_now(c.measures) - opt_.lambda * cost;
        } else {
            const running_mean& s = table_[stop_index(cell)];
            if (s.count == 0) return decision::proceed;
            stop_value = s.mean() - opt_.lambda * cost;
        }
        const auto reached = static_cast<double>(table_[visit_index(c.head)].count);
        const double bonus = opt_.alpha * std::sqrt(std::log(std::max(reached, 1.0)) / static_cast<double>(v.count));
        return v.mean() + bonus > stop_value ? decision::proceed : decision::stop;
    }

    /// Learns from a finished sample. With correctness_reward and no label, the sample is held
    /// (an owning copy) until feedback(index, label).
    template <std::floating_point Scalar>
    void update(const episode<Scalar>& e) noexcept {
        if (heads_ == 0) return;
        detail::learn_or_hold<Reward>(
            e, records_, pending_,
            [this](step_record& r, const episode_step<Scalar>& st) noexcept {
                if (r.head + 1 < heads_)
                    r.cell = cell_of(r.head, measure_value(opt_.measure, st.measures),
                                     opt_.cost == cost_context::budget && r.budget >= 0 ? r.budget : r.cost,
                                     r.patience);
            },
            [this](std::span<const step_record> s, std::optional<std::size_t> y) noexcept { learn(s, y); });
    }

    /// The label of a served sample, arriving later (correctness_reward): learns from the held
    /// sample. False when the sample is not held (never served, already fed back, or evicted).
    bool feedback(std::size_t index, std::size_t label) noexcept
        requires Reward::uses_label
    {
        return detail::learn_fed_back(pending_, index, label,
                                      [this](std::span<const step_record> s, std::optional<std::size_t> y) noexcept { learn(s, y); });
    }
    /// Samples waiting for feedback, and those evicted or refused (correctness_reward).
    [[nodiscard]] const pending_feedback& pending() const noexcept { return pending_; }

    /// A copy for serving: the same learned state, with exploration weight `alpha`,
    /// `probe_rate` and `memory` (e.g. alpha 0, a few probes and a memory of a few hundred
    /// samples after a warm start, to follow drift). The copy starts a
    /// branch (learned_table): merging it back adds only what it learns while serving. Throws
    /// earlyexit::error naming a value out of range.
    [[nodiscard]] dee serving(double alpha, double probe_rate = 0.0, std::size_t memory = 0) const {
        return serving(serving_options{.alpha = alpha, .probe_rate = probe_rate, .memory = memory});
    }
    /// The same with named arguments: serving({.alpha = 0, .probe_rate = 0.02, .memory = 300}).
    [[nodiscard]] dee serving(const serving_options& o) const {
        dee d(*this);
        d.opt_.alpha = o.alpha;
        d.opt_.probe_rate = o.probe_rate;
        d.opt_.memory = o.memory;
        d.opt_.validate("dee::serving");
        return d;
    }

    /// What was learned, carried over to another reward model whose stop quality is learned
    /// from revealed outcomes too (e.g. trained on labels with correctness_reward, served with
    /// agreement_reward on probes). The stop and continue estimates are kept as they are; new
    /// samples are averaged into them. The result is unbound when this learner is.
    template <reward_model Other>
        requires(!Reward::known_at_decision && !Other::known_at_decision)
    [[nodiscard]] dee<Other> with_reward() const {
        dee<Other> d(opt_);
        if (heads_ != 0) {
            std::vector<running_mean> cells(table_.cells().begin(), table_.cells().end());
            std::vector<running_mean> base = cells;  // a new branch: later merges add only what comes after
            d.restore(heads_, edges_, std::move(cells), std::move(base));
        }
        return d;
    }

    /// Forgets what was learned (the bins and the binding to a network stay).
    void reset() {
        table_.clear();
        pending_.clear();
    }

    /// Folds in what `other` (same options, same network) learned since it was copied from a
    /// state of this learner, or since it started empty. Throws earlyexit::error otherwise.
    void merge(const dee& other) {
        if (!(other.opt_ == opt_)) fail("dee::merge: the other learner has other options (lambda, bins, reward, ...)");
        if (other.heads_ == 0) return;
        if (heads_ == 0) bind(other.heads_);
        if (other.heads_ != heads_) fail("dee::merge: the other learner is for {} heads, this one {}", other.heads_, heads_);
        if (other.edges_ != edges_) fail("dee::merge: the other learner has other bin edges");
        table_.merge(other.table_, "dee");
    }
    /// Makes the current state the base that later merges subtract (see learned_table).
    void rebase() { table_.rebase(); }

    // Inspection (tests, reports, state files).
    [[nodiscard]] const learned_table& table() const noexcept { return table_; }
    [[nodiscard]] std::span<const double> edges() const noexcept { return edges_; }
    /// Context cell of head k (k < heads - 1) for a measure value, a cost used (what
    /// options().cost names) and a top-1 streak (the runner's patience; 0 for invalid logits
    /// counts as 1). Cells are numbered exit-major, then confidence, cost and streak bin.
    [[nodiscard]] std::size_t cell_of(std::size_t k, double measure, double cost,
                                      std::size_t patience = 1) const noexcept {
        const std::size_t nb = opt_.confidence_bins;
        const auto e = std::span<const double>(edges_).subspan(k * (nb - 1), nb - 1);
        const auto b = static_cast<std::size_t>(std::upper_bound(e.begin(), e.end(), measure) - e.begin());
        std::size_t t = 0;
        if (opt_.cost_bins > 1) {
            // NaN (a NaN deadline) goes to bin 0 rather than through an undefined cast.
            const double x = std::isnan(cost) ? 0.0 : std::clamp(cost / opt_.max_cost_fraction, 0.0, 1.0);
            t = std::min(opt_.cost_bins - 1, static_cast<std::size_t>(x * static_cast<double>(opt_.cost_bins)));
        }
        const std::size_t s = std::min(std::max<std::size_t>(patience, 1), opt_.streak_bins) - 1;
        return ((k * nb + b) * opt_.cost_bins + t) * opt_.streak_bins + s;
    }
    /// V and n of a cell (value of continuing), S (stop quality, label-late rewards), N_k.
    [[nodiscard]] const running_mean& continue_stats(std::size_t cell) const noexcept { return table_[cont_index(cell)]; }
    [[nodiscard]] const running_mean& stop_stats(std::size_t cell) const noexcept { return table_[stop_index(cell)]; }
    [[nodiscard]] const running_mean& visit_stats(std::size_t k) const noexcept { return table_[visit_index(k)]; }

    /// Restores a saved state (policy/state_file.hpp): edges flat, per exit; the table's cells
    /// and base. Throws earlyexit::error naming the field that does not fit these options.
    void restore(std::size_t heads, std::vector<double> edges, std::vector<running_mean> cells,
                 std::vector<running_mean> base) {
        if (heads == 0) fail("dee state: heads must be >= 1");
        const std::size_t exits = heads - 1;
        if (edges.size() != exits * (opt_.confidence_bins - 1))
            fail("dee state: edges has {} values; {} exits x {} bins need {}", edges.size(), exits, opt_.confidence_bins,
                 exits * (opt_.confidence_bins - 1));
        for (std::size_t k = 0; k < exits; ++k)
            for (std::size_t i = 1; i + 1 < opt_.confidence_bins; ++i)
                if (!(edges[k * (opt_.confidence_bins - 1) + i] > edges[k * (opt_.confidence_bins - 1) + i - 1]))
                    fail("dee state: edges of exit {} are not increasing at {}", k, i);
        const std::size_t n = table_size(exits);
        if (cells.size() != n) fail("dee state: cells has {} entries, expected {}", cells.size(), n);
        if (base.size() != n) fail("dee state: base has {} entries, expected {}", base.size(), n);
        heads_ = heads;
        edges_ = std::move(edges);
        table_ = learned_table(n);
        table_.assign(std::move(cells), std::move(base));
        records_.assign(heads_, step_record{});
    }

    /// Same options, binding, edges and learned cells (bases aside).
    friend bool operator==(const dee& a, const dee& b) noexcept {
        return a.opt_ == b.opt_ && a.heads_ == b.heads_ && a.edges_ == b.edges_ && a.table_ == b.table_;
    }

private:
    void bind(std::size_t heads) {
        const std::size_t exits = heads - 1;
        if (!opt_.confidence_edges.empty() && opt_.confidence_edges.size() != exits)
            fail("dee: confidence_edges has {} exits, the network has {} non-final heads", opt_.confidence_edges.size(),
                 exits);
        heads_ = heads;
        const std::size_t nb = opt_.confidence_bins;
        edges_.assign(exits * (nb - 1), 0.0);
        for (std::size_t k = 0; k < exits; ++k)
            for (std::size_t i = 0; i + 1 < nb; ++i)
                edges_[k * (nb - 1) + i] = opt_.confidence_edges.empty()
                                               ? static_cast<double>(i + 1) / static_cast<double>(nb)
                                               : opt_.confidence_edges[k][i];
        table_ = learned_table(table_size(exits));
    }
    [[nodiscard]] std::size_t table_size(std::size_t exits) const noexcept { return exits * (2 * cells_per_exit() + 1); }
    [[nodiscard]] std::size_t exit_cells() const noexcept { return (heads_ - 1) * cells_per_exit(); }
    [[nodiscard]] std::size_t cont_index(std::size_t cell) const noexcept { return cell; }
    [[nodiscard]] std::size_t stop_index(std::size_t cell) const noexcept { return exit_cells() + cell; }
    [[nodiscard]] std::size_t visit_index(std::size_t k) const noexcept { return 2 * exit_cells() + k; }

    /// Reward of stopping at step i: revealed, else estimated from S, else unknown.
    [[nodiscard]] std::optional<double> stop_reward(std::span<const step_record> s, std::size_t i,
                                                    std::optional<std::size_t> label) const noexcept {
        if (const auto q = Reward::revealed(s, i, label, heads_ - 1)) return *q - opt_.lambda * s[i].cost;
        if (s[i].head + 1 < heads_) {
            const running_mean& st = table_[stop_index(s[i].cell)];
            if (st.count > 0) return st.mean() - opt_.lambda * s[i].cost;
        }
        return std::nullopt;
    }

    [[nodiscard]] std::int64_t cap() const noexcept { return static_cast<std::int64_t>(opt_.memory); }

    /// The stop value decide() compares with V at a non-final step for a reward not known when
    /// deciding: S - lambda c (nullopt: no estimate yet, the rule goes on).
    [[nodiscard]] std::optional<double> estimated_stop(const step_record& r) const noexcept {
        if (r.head + 1 >= heads_) return std::nullopt;
        const running_mean& st = table_[stop_index(r.cell)];
        if (st.count == 0) return std::nullopt;
        return st.mean() - opt_.lambda * r.cost;
    }

    void learn(std::span<const step_record> s, std::optional<std::size_t> label) noexcept {
        const std::size_t j = s.size() - 1;
        for (std::size_t i = 0; i <= j; ++i) {
            if (s[i].head + 1 >= heads_) continue;
            table_[visit_index(s[i].head)].tick();
            if constexpr (!Reward::known_at_decision)
                if (const auto q = Reward::revealed(s, i, label, heads_ - 1))
                    table_[stop_index(s[i].cell)].add(*q, cap());
        }
        std::optional<double> next = stop_reward(s, j, label);
        if (!next) return;
        const double at_exit = *next;
        for (std::size_t i = j; i-- > 0;) {
            running_mean& v = table_[cont_index(s[i].cell)];
            v.add(opt_.target == value_target::monte_carlo ? at_exit : *next, cap());
            // The value of reaching step i under the greedy rule: what stopping there earns when
            // the rule would stop (its estimate against V), else the value of going on. With a
            // reward known when deciding this is max(r_i, V); with a revealed one (a label, the
            // final head) the choice is made on the estimate S - lambda c, as decide() makes it,
            // and the sample's actual reward is what it earns: taking max(actual r_i, V) would
            // credit the rule with knowing the label, and bias V upwards.
            const auto actual = stop_reward(s, i, label);
            if constexpr (Reward::known_at_decision) {
                next = actual ? std::max(*actual, v.mean()) : v.mean();
            } else {
                const auto estimate = estimated_stop(s[i]);
                next = estimate && *estimate >= v.mean() ? actual.value_or(*estimate) : v.mean();
            }
        }
    }

    dee_options opt_;
    std::size_t heads_ = 0;
    std::vector<double> edges_;     // (heads - 1) x (confidence_bins - 1)
    learned_table table_;           // [continue cells][stop cells][visits per exit]
    std::vector<step_record> records_;  // scratch for update(), sized in prepare()
    pending_feedback pending_;
};

}  // namespace policy
}  // namespace earlyexit
