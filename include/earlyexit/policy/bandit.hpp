#pragma once
// Simpler bandit baselines for DEE: one arm per exit point; each sample pulls one arm, i.e.
// runs to that head, evaluates it alone (first_check) and exits there, like fixed(k).
//
//   ucb_exit        pull the arm with the largest mean reward + alpha * sqrt(ln N / n_k)
//                   (LEE-style; every arm is pulled once first, in order)
//   epsilon_greedy  with probability epsilon a uniformly drawn arm, else the best mean
//                   (an arm never pulled counts as best)
// Reward of arm k: q_k - lambda * a_k, a reward model's quality (learning.hpp) less the cost of
// running to head k and evaluating that head alone, a_k, as a fraction of the plain network.
// LEE's "reward per unit cost" is taken as this cost-weighted reward, the same objective DEE
// optimizes: a plain ratio q_k / a_k would always favour the first exit.
// An arm learns only when its quality is revealed: always for max_prob_reward, with a label for
// correctness_reward (fed back later through feedback() otherwise), and for agreement_reward only
// on probes: with probe_rate p, a fraction p of the samples evaluate every head and run to the
// final head (cost counted), which reveals every arm's agreement with the final head. Without
// probes only pulls of the final arm would ever reveal anything, so an agreement bandit refuses
// probe_rate 0 at construction.
// Draws (probes, epsilon) hash the seed and the sample index: replay and live runs draw alike.
// decide() is O(1), first_check() O(heads); both noexcept and allocation-free.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "../context.hpp"
#include "../error.hpp"
#include "../result.hpp"
#include "learning.hpp"

namespace earlyexit {

/// The bandit baselines' parameters.
struct bandit_options {
    double lambda = 0.25;      ///< cost weight, in [0, 100]
    double alpha = 0.2;        ///< ucb_exit: exploration weight, in [0, 100] (as DEE's default)
    double epsilon = 0.1;      ///< epsilon_greedy: exploration rate, in [0, 1]
    double probe_rate = 0.0;   ///< fraction of samples run through every head, in [0, 1]
    std::uint64_t seed = 0;
    std::size_t feedback_capacity = 1024;  ///< correctness_reward: samples held for a later label (<= 2^24)

    friend bool operator==(const bandit_options&, const bandit_options&) = default;

    void validate(std::string_view who) const {
        detail::checked_nonnegative(lambda, who, "lambda", 100.0);
        detail::checked_nonnegative(alpha, who, "alpha", 100.0);
        detail::checked_rate(epsilon, who, "epsilon");
        detail::checked_rate(probe_rate, who, "probe_rate");
        // Bound: binding to a network reserves feedback_capacity x heads records.
        if (feedback_capacity > (std::size_t{1} << 24))
            fail("{}: feedback_capacity {} is out of range [0, 2^24]", who, feedback_capacity);
    }
};

enum class bandit_rule : unsigned char { ucb, epsilon_greedy };

namespace policy {

/// One arm per exit (see the file comment). Rule: ucb (ucb_exit) or epsilon_greedy.
template <bandit_rule Rule, reward_model Reward = reward::max_prob_reward>
class exit_bandit {
public:
    using reward_type = Reward;

    /// Throws earlyexit::error naming an option out of range, or probe_rate 0 with
    /// agreement_reward (see the file comment: it would never learn).
    explicit exit_bandit(bandit_options o = {}) : opt_(o) {
        opt_.validate(name());
        if constexpr (std::same_as<Reward, reward::agreement_reward>)
            if (opt_.probe_rate == 0.0)
                fail("{}: probe_rate {} with the agreement reward never learns: a pull stops at its arm's head, so "
                     "only probes (samples run to the final head) reveal whether an arm agrees with it; give "
                     "probe_rate > 0",
                     name(), opt_.probe_rate);
    }

    [[nodiscard]] static constexpr std::string_view name() noexcept {
        return Rule == bandit_rule::ucb ? "ucb_exit" : "epsilon_greedy";
    }
    [[nodiscard]] const bandit_options& options() const noexcept { return opt_; }
    [[nodiscard]] std::size_t heads() const noexcept { return heads_; }

    void prepare(const network_info& net) {
        if (net.heads == 0) fail("{}: the network has no heads", name());
        if (heads_ == 0) {
            heads_ = net.heads;
            arms_ = learned_table(heads_);
        } else if (net.heads != heads_) {
            fail("{}: the learned state is for {} heads, the network has {}", name(), heads_, net.heads);
        }
        arm_cost_.assign(heads_, 0.0);
        for (std::size_t k = 0; k < heads_; ++k)
            arm_cost_[k] = net.full_macs > 0 ? (net.macs_through(net.head_positions[k]) + net.head_macs[k]) / net.full_macs
                                             : 0.0;
        records_.assign(heads_, step_record{});
        if constexpr (Reward::uses_label)
            if (pending_.capacity() != opt_.feedback_capacity) pending_.reserve(opt_.feedback_capacity, heads_);
    }

    /// Whether the sample runs to the final head as a probe (a hash of the seed and its index).
    [[nodiscard]] bool probing(const sample_info& s) const noexcept {
        return opt_.probe_rate > 0.0 && detail::uniform01(opt_.seed, s.index, 0) < opt_.probe_rate;
    }
    /// The arm pulled: the only head evaluated (0 for a probe, which evaluates every head).
    [[nodiscard]] std::size_t first_check(const sample_info& s) const noexcept {
        return heads_ == 0 || probing(s) ? 0 : choose(s.index);
    }

    /// Stops at the arm's head (the first one evaluated) unless the sample is a probe. Reads
    /// the sample from the context, so rows of a batch can interleave.
    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        return c.sample != nullptr && probing(*c.sample) ? decision::proceed : decision::stop;
    }

    template <std::floating_point Scalar>
    void update(const episode<Scalar>& e) noexcept {
        if (heads_ == 0) return;
        detail::learn_or_hold<Reward>(
            e, records_, pending_, [](step_record&, const episode_step<Scalar>&) noexcept {},
            [this](std::span<const step_record> s, std::optional<std::size_t> y) noexcept { learn(s, y); });
    }

    bool feedback(std::size_t index, std::size_t label) noexcept
        requires Reward::uses_label
    {
        return detail::learn_fed_back(pending_, index, label,
                                      [this](std::span<const step_record> s, std::optional<std::size_t> y) noexcept { learn(s, y); });
    }
    [[nodiscard]] const pending_feedback& pending() const noexcept { return pending_; }

    void reset() {
        arms_.clear();
        pending_.clear();
    }
    void merge(const exit_bandit& other) {
        if (!(other.opt_ == opt_)) fail("{}::merge: the other learner has other options", name());
        if (other.heads_ == 0) return;
        if (heads_ == 0) {
            heads_ = other.heads_;
            arms_ = learned_table(heads_);
        }
        if (other.heads_ != heads_) fail("{}::merge: the other learner is for {} heads, this one {}", name(), other.heads_, heads_);
        arms_.merge(other.arms_, name());
    }
    void rebase() { arms_.rebase(); }

    [[nodiscard]] const learned_table& table() const noexcept { return arms_; }
    [[nodiscard]] const running_mean& arm_stats(std::size_t k) const noexcept { return arms_[k]; }

    void restore(std::size_t heads, std::vector<running_mean> cells, std::vector<running_mean> base) {
        if (heads == 0) fail("{} state: heads must be >= 1", name());
        if (cells.size() != heads) fail("{} state: cells has {} entries, expected {}", name(), cells.size(), heads);
        if (base.size() != heads) fail("{} state: base has {} entries, expected {}", name(), base.size(), heads);
        heads_ = heads;
        arms_ = learned_table(heads);
        arms_.assign(std::move(cells), std::move(base));
    }

    friend bool operator==(const exit_bandit& a, const exit_bandit& b) noexcept {
        return a.opt_ == b.opt_ && a.heads_ == b.heads_ && a.arms_ == b.arms_;
    }

private:
    [[nodiscard]] std::size_t choose(std::size_t index) const noexcept {
        if constexpr (Rule == bandit_rule::epsilon_greedy) {
            if (opt_.epsilon > 0.0 && detail::uniform01(opt_.seed, index, 1) < opt_.epsilon) {
                const auto k = static_cast<std::size_t>(detail::uniform01(opt_.seed, index, 2) * static_cast<double>(heads_));
                return std::min(k, heads_ - 1);
            }
        }
        double pulls = 0;
        for (std::size_t k = 0; k < heads_; ++k) {
            if (arms_[k].count == 0) return k;
            pulls += static_cast<double>(arms_[k].count);
        }
        std::size_t best = 0;
        double best_value = -1e300;
        for (std::size_t k = 0; k < heads_; ++k) {
            double v = arms_[k].mean();
            if constexpr (Rule == bandit_rule::ucb)
                v += opt_.alpha * std::sqrt(std::log(pulls) / static_cast<double>(arms_[k].count));
            if (v > best_value) {
                best_value = v;
                best = k;
            }
        }
        return best;
    }

    void learn(std::span<const step_record> s, std::optional<std::size_t> label) noexcept {
        for (std::size_t i = 0; i < s.size(); ++i)
            if (const auto q = Reward::revealed(s, i, label, heads_ - 1))
                arms_[s[i].head].add(*q - opt_.lambda * arm_cost_[s[i].head]);
    }

    bandit_options opt_;
    std::size_t heads_ = 0;
    learned_table arms_;
    std::vector<double> arm_cost_;
    std::vector<step_record> records_;
    pending_feedback pending_;
};

/// LEE-style UCB over exit points.
template <reward_model Reward = reward::max_prob_reward>
using ucb_exit = exit_bandit<bandit_rule::ucb, Reward>;
/// Epsilon-greedy over exit points.
template <reward_model Reward = reward::max_prob_reward>
using epsilon_greedy = exit_bandit<bandit_rule::epsilon_greedy, Reward>;

}  // namespace policy
}  // namespace earlyexit
