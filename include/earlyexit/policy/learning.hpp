#pragma once
// What the learning policies (dee.hpp, bandit.hpp) share: reward models, the owning record of a
// finished sample, the statistics tables they learn, and their deterministic coin.
//
// Reward of stopping at head k for one sample: r_k = q_k - lambda * c_k, q_k in [0, 1] a
// quality signal given by the reward model, c_k the elapsed declared cost as a fraction of the
// plain network's (exit_context::cost_fraction()), lambda the cost weight (quality units per
// plain network). Reward models:
//   max_prob_reward      q = the head's max-prob. Label-free, known when deciding (the default).
//   agreement_reward     q = 1 when the head's top-1 equals the final head's, else 0. Label-free,
//                        known only later: only a sample that ran to the final head (a probe, or
//                        one that never stopped) reveals q at the heads it visited. A sample
//                        that stopped early reveals nothing: comparing with the deepest head it
//                        reached instead would credit early heads for agreeing with another
//                        early head, and bias the stop values upwards.
//   correctness_reward   q = 1 when the head's top-1 equals the label. Supervised: the label can
//                        come with the sample (sample_info::label) or be fed back after serving.
// A reward model is a type with `static constexpr std::string_view name`, `static constexpr bool
// known_at_decision`, `static constexpr bool uses_label`, `quality_now(confidence)` (used only when
// known_at_decision) and `revealed(steps, i, label)` (std::optional: nullopt when this sample
// does not reveal q at step i); write your own the same way.
//
// Statistics are stored as a count and a fixed-point sum (units of 2^-24) so that adding and
// merging are exact and associative: two learners on the halves of a stream fed the same
// targets merge into exactly the learner of the whole stream. The sum holds |target| totals up to
// 5.5e11 per cell (e.g. 1.8e9 updates of |r| <= 300); targets are rounded to 6e-8. Beyond that
// range nothing wraps: a target is clamped to +-2^38 (NaN counts as 0), and count and sum
// saturate at the int64 limits (a saturated cell keeps its sign; tests/test_policy_learning.cpp).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "../confidence.hpp"
#include "../context.hpp"
#include "../error.hpp"
#include "../result.hpp"

namespace earlyexit {

/// What a learning policy keeps of one visited head (an owning copy: no view into the runner).
struct step_record {
    std::size_t head = 0;
    std::size_t cell = npos;  ///< the policy's context cell at that head (npos: none, e.g. the final head)
    std::size_t top1 = 0;
    double max_prob = 0;
    bool valid = false;       ///< the head's logits were valid (confidence.hpp)
    double cost = 0;          ///< elapsed declared cost fraction at that head
    std::size_t patience = 0; ///< evaluated heads in a row with this top-1, this one included (0: invalid)
    double budget = -1;       ///< elapsed time / the sample's deadline at that head (< 0: no deadline)
};

namespace reward {

/// q = max-prob of the head (0 for invalid logits). Known at decision time; label-free.
struct max_prob_reward {
    static constexpr std::string_view name = "max_prob";
    static constexpr bool known_at_decision = true;
    static constexpr bool uses_label = false;
    template <std::floating_point Scalar>
    [[nodiscard]] static double quality_now(const confidence<Scalar>& m) noexcept {
        return m.valid ? static_cast<double>(m.max_prob) : 0.0;
    }
    [[nodiscard]] static std::optional<double> revealed(std::span<const step_record> steps, std::size_t i,
                                                        std::optional<std::size_t>, std::size_t) noexcept {
        return steps[i].valid ? steps[i].max_prob : 0.0;
    }
};

/// q = 1 when the head's top-1 agrees with the final head's. Label-free; revealed only when the
/// sample ran to the final head (see the file comment).
struct agreement_reward {
    static constexpr std::string_view name = "agreement";
    static constexpr bool known_at_decision = false;
    static constexpr bool uses_label = false;
    template <std::floating_point Scalar>
    [[nodiscard]] static double quality_now(const confidence<Scalar>&) noexcept {
        return 0.0;
    }
    /// final_head: the network's last head index.
    [[nodiscard]] static std::optional<double> revealed(std::span<const step_record> steps, std::size_t i,
                                                        std::optional<std::size_t>, std::size_t final_head) noexcept {
        const step_record& last = steps.back();
        if (last.head != final_head || !last.valid) return std::nullopt;  // no reference answer
        return steps[i].valid && steps[i].top1 == last.top1 ? 1.0 : 0.0;
    }
};

/// q = 1 when the head's top-1 is the label. Without a label nothing is revealed (the policy
/// holds the sample until feedback() brings it).
struct correctness_reward {
    static constexpr std::string_view name = "correctness";
    static constexpr bool known_at_decision = false;
    static constexpr bool uses_label = true;
    template <std::floating_point Scalar>
    [[nodiscard]] static double quality_now(const confidence<Scalar>&) noexcept {
        return 0.0;
    }
    [[nodiscard]] static std::optional<double> revealed(std::span<const step_record> steps, std::size_t i,
                                                        std::optional<std::size_t> label, std::size_t) noexcept {
        if (!label) return std::nullopt;
        return steps[i].valid && steps[i].top1 == *label ? 1.0 : 0.0;
    }
};

}  // namespace reward

/// A reward model (see the file comment).
template <class R>
concept reward_model = requires(const confidence<float>& m, std::span<const step_record> s) {
    { R::name } -> std::convertible_to<std::string_view>;
    { R::known_at_decision } -> std::convertible_to<bool>;
    { R::uses_label } -> std::convertible_to<bool>;
    { R::quality_now(m) } noexcept -> std::convertible_to<double>;
    { R::revealed(s, std::size_t{}, std::optional<std::size_t>{}, std::size_t{}) } noexcept
        -> std::same_as<std::optional<double>>;
};

/// How a learner turns a finished sample into targets for the value of continuing.
enum class value_target : unsigned char {
    backward_induction,  ///< G_i = max(r_{i+1}, V(i+1)): the better of stopping or going on at the next head
    monte_carlo,         ///< G_i = r_j, the reward where the sample actually stopped
};

[[nodiscard]] constexpr std::string_view name_of(value_target t) noexcept {
    return t == value_target::monte_carlo ? "monte_carlo" : "backward_induction";
}

/// A count and an exact fixed-point sum of targets: the mean of what a cell has seen.
struct running_mean {
    static constexpr double scale = 16777216.0;        ///< 2^24 units per reward unit
    static constexpr double max_target = 274877906944.0;  ///< 2^38: larger targets are clamped to it

    std::int64_t count = 0;
    std::int64_t sum = 0;  ///< in units of 1/scale

    /// a + b, held at the int64 limits instead of wrapping (signed overflow is undefined).
    [[nodiscard]] static constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
        if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
        if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
        return a + b;
    }
    /// x in units of 1/scale: clamped to +-max_target, NaN as 0 (never undefined behaviour).
    [[nodiscard]] static std::int64_t units(double x) noexcept {
        if (std::isnan(x)) return 0;
        return static_cast<std::int64_t>(std::llround(std::clamp(x, -max_target, max_target) * scale));
    }

    void add(double x) noexcept {
        count = saturating_add(count, 1);
        sum = saturating_add(sum, units(x));
    }
    /// add(x) with a memory of `cap` samples (cap > 0): once the count reaches cap, one average
    /// sample is forgotten before x is added, so the mean moves by (x - mean) / cap, an
    /// exponential moving average that follows drift. cap 0: add(x). Integer arithmetic, so
    /// still deterministic; but sums that forgot are no longer exact to merge.
    void add(double x, std::int64_t cap) noexcept {
        if (cap > 0 && count >= cap) {
            sum -= sum / count;
            --count;
        }
        add(x);
    }
    /// Counts a visit without a target (the visit counters of UCB).
    void tick() noexcept { count = saturating_add(count, 1); }
    [[nodiscard]] double mean() const noexcept {
        return count == 0 ? 0.0 : static_cast<double>(sum) / scale / static_cast<double>(count);
    }
    [[nodiscard]] double total() const noexcept { return static_cast<double>(sum) / scale; }

    friend bool operator==(const running_mean&, const running_mean&) = default;
};

/// The learned state of a learning policy: a flat array of running means, plus the state it
/// was copied from (its base), so that merging copies of one learner counts their shared start
/// once. Copying a table starts a branch: the copy's base is the state at the copy. merge(other)
/// adds what `other` learned since its base. Moving keeps the base.
class learned_table {
public:
    learned_table() = default;
    explicit learned_table(std::size_t cells) : cells_(cells), base_(cells) {}

    learned_table(const learned_table& o) : cells_(o.cells_), base_(o.cells_) {}
    learned_table& operator=(const learned_table& o) {
        if (this != &o) {
            cells_ = o.cells_;
            base_ = o.cells_;
        }
        return *this;
    }
    learned_table(learned_table&&) noexcept = default;
    learned_table& operator=(learned_table&&) noexcept = default;
    ~learned_table() = default;

    [[nodiscard]] std::size_t size() const noexcept { return cells_.size(); }
    [[nodiscard]] running_mean& operator[](std::size_t i) noexcept { return cells_[i]; }
    [[nodiscard]] const running_mean& operator[](std::size_t i) const noexcept { return cells_[i]; }
    [[nodiscard]] std::span<const running_mean> cells() const noexcept { return cells_; }
    [[nodiscard]] std::span<const running_mean> base() const noexcept { return base_; }

    /// Adds what `other` learned since its base: cell by cell, other's count and sum less its
    /// base's (exact, so merges commute). This table's own base is left as it is.
    /// Not idempotent: a merge remembers nothing, so merging the same learner twice counts what
    /// it learned twice. Merging a copy that learned nothing since it was made (cells equal to
    /// its base, e.g. an unchanged copy of the shared start) adds nothing. To merge a learner
    /// again later, restart its branch after each merge (rebase() it, or give it a copy of the
    /// merged result, as parallel_runner::sync() does): the next merge then adds only what it
    /// learned since. Throws earlyexit::error when the sizes differ, or when other's base holds
    /// more than this table (it was copied from a state this learner never had, e.g. a later
    /// one: merging would count samples twice or lose them).
    void merge(const learned_table& other, std::string_view who) {
        if (other.size() != size())
            fail("{}::merge: the other learner has {} cells, this one {} (another configuration)", who, other.size(),
                 size());
        for (std::size_t i = 0; i < size(); ++i)
            if (other.base_[i].count > cells_[i].count)
                fail("{}::merge: cell {} of the other learner's base has {} samples, more than this learner's {}: it "
                     "was copied from a state this learner does not contain",
                     who, i, other.base_[i].count, cells_[i].count);
        for (std::size_t i = 0; i < size(); ++i) {
            // other's cells hold at least its base (it only adds), so count's difference is >= 0;
            // the sums' difference cannot overflow unless a cell saturated: held at the limits.
            const auto& oc = other.cells_[i];
            const auto& ob = other.base_[i];
            cells_[i].count = running_mean::saturating_add(cells_[i].count, oc.count - ob.count);
            cells_[i].sum = running_mean::saturating_add(
                cells_[i].sum, running_mean::saturating_add(oc.sum, ob.sum == INT64_MIN ? INT64_MAX : -ob.sum));
        }
    }
    /// Makes the current state the base: what is merged from here on is only what comes later.
    void rebase() { base_ = cells_; }
    /// Forgets everything (cells and base).
    void clear() noexcept {
        std::fill(cells_.begin(), cells_.end(), running_mean{});
        std::fill(base_.begin(), base_.end(), running_mean{});
    }
    /// Restores a saved state (both arrays must have size() cells; the loaders check).
    void assign(std::vector<running_mean> cells, std::vector<running_mean> base) {
        cells_ = std::move(cells);
        base_ = std::move(base);
    }

    /// Equal learned state (the bases may differ).
    friend bool operator==(const learned_table& a, const learned_table& b) noexcept { return a.cells_ == b.cells_; }

private:
    std::vector<running_mean> cells_;
    std::vector<running_mean> base_;
};

namespace detail {

/// splitmix64: the policies' deterministic coin. A sample's draw depends only on the seed, the
/// sample index and a stream number, never on time or order, so replay, live runs and
/// per-thread copies draw the same.
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
/// A uniform draw in [0, 1) for (seed, index, stream).
[[nodiscard]] constexpr double uniform01(std::uint64_t seed, std::uint64_t index, std::uint64_t stream) noexcept {
    const std::uint64_t h = mix64(mix64(seed ^ mix64(stream)) ^ index);
    return static_cast<double>(h >> 11) * 0x1.0p-53;
}

inline double checked_rate(double v, std::string_view who, std::string_view what) {
    if (!(v >= 0.0 && v <= 1.0)) fail("{}: {} {} is out of range [0, 1]", who, what, v);
    return v;
}
inline double checked_nonnegative(double v, std::string_view who, std::string_view what, double max) {
    if (!(v >= 0.0 && v <= max)) fail("{}: {} {} is out of range [0, {}]", who, what, v, max);
    return v;
}

/// The record of one episode step (cell filled in by the policy).
template <std::floating_point Scalar>
[[nodiscard]] step_record record_of(const episode_step<Scalar>& s, double full_macs) noexcept {
    return {s.head, npos, s.measures.top1, static_cast<double>(s.measures.max_prob), s.measures.valid,
            full_macs > 0 ? s.elapsed_macs / full_macs : 0.0, 0, -1.0};
}

}  // namespace detail

/// Samples waiting for their label (correctness_reward fed back later): a fixed ring of
/// `capacity` slots allocated once, each holding up to `heads` step records. Sample index i goes
/// to slot i % capacity; a newer sample in an occupied slot evicts the older one (counted in
/// dropped()). Never allocates after reserve().
class pending_feedback {
public:
    void reserve(std::size_t capacity, std::size_t heads) {
        capacity_ = capacity;
        heads_ = heads;
        steps_.assign(capacity * heads, step_record{});
        slots_.assign(capacity, slot{});
    }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t waiting() const noexcept { return waiting_; }
    [[nodiscard]] std::size_t dropped() const noexcept { return dropped_; }

    /// Keeps a finished sample's steps until its label arrives; false when there is no room at all.
    bool hold(std::size_t index, std::span<const step_record> steps) noexcept {
        if (capacity_ == 0 || steps.size() > heads_) {
            ++dropped_;
            return false;
        }
        slot& s = slots_[index % capacity_];
        if (s.used) ++dropped_;
        else ++waiting_;
        s = slot{index, steps.size(), true};
        std::copy(steps.begin(), steps.end(), steps_.begin() + static_cast<std::ptrdiff_t>((index % capacity_) * heads_));
        return true;
    }
    /// The held steps of sample `index`, removed from the ring; empty when it is not held.
    [[nodiscard]] std::span<const step_record> take(std::size_t index) noexcept {
        if (capacity_ == 0) return {};
        slot& s = slots_[index % capacity_];
        if (!s.used || s.index != index) return {};
        s.used = false;
        --waiting_;
        return {steps_.data() + (index % capacity_) * heads_, s.steps};
    }
    void clear() noexcept {
        for (auto& s : slots_) s = slot{};
        waiting_ = dropped_ = 0;
    }

private:
    struct slot {
        std::size_t index = 0, steps = 0;
        bool used = false;
    };
    std::size_t capacity_ = 0, heads_ = 0, waiting_ = 0, dropped_ = 0;
    std::vector<step_record> steps_;
    std::vector<slot> slots_;
};

namespace detail {

/// What update() does in every learner: copy the episode into owning records (cell(record,
/// step) fills in the context cell), then learn(records, label) now, or hold the records in
/// `pending` when the reward needs a label that has not come yet. No-op for an empty episode or
/// one longer than `records` (sized in prepare()). Allocation-free.
template <reward_model Reward, std::floating_point Scalar, class Cell, class Learn>
void learn_or_hold(const episode<Scalar>& e, std::vector<step_record>& records, pending_feedback& pending, Cell&& cell,
                   Learn&& learn) noexcept {
    if (e.steps.empty() || e.steps.size() > records.size()) return;
    const double full = e.network != nullptr ? e.network->full_macs : 0.0;
    // 0 when the sample has no deadline (a plain double: GCC's TSan build misread the optional).
    const double deadline =
        e.sample != nullptr && e.sample->deadline_seconds ? *e.sample->deadline_seconds : 0.0;
    std::size_t streak = 0, previous = npos;  // the runner's patience (runner.hpp, sample_cursor)
    for (std::size_t i = 0; i < e.steps.size(); ++i) {
        records[i] = record_of(e.steps[i], full);
        streak = !records[i].valid ? 0 : (records[i].top1 == previous ? streak + 1 : 1);
        previous = records[i].valid ? records[i].top1 : npos;
        records[i].patience = streak;
        if (deadline > 0) records[i].budget = e.steps[i].elapsed_seconds / deadline;
        cell(records[i], e.steps[i]);
    }
    const std::span<const step_record> steps(records.data(), e.steps.size());
    const std::optional<std::size_t> label = e.sample != nullptr ? e.sample->label : std::nullopt;
    if constexpr (Reward::uses_label) {
        if (!label) {
            (void)pending.hold(e.sample != nullptr ? e.sample->index : 0, steps);
            return;
        }
    }
    learn(steps, label);
}

/// What feedback() does in every learner: learn from the held sample; false when it is not held.
template <class Learn>
bool learn_fed_back(pending_feedback& pending, std::size_t index, std::size_t label, Learn&& learn) noexcept {
    const auto steps = pending.take(index);
    if (steps.empty()) return false;
    learn(steps, std::optional<std::size_t>(label));
    return true;
}

}  // namespace detail
}  // namespace earlyexit
