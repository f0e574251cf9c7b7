#pragma once
// The DVFS selector: the frequency level for the rest of a sample, and policy::with_dvfs, which
// adds it to any exit policy.
//
// The runner asks for a level when a sample starts and after every proceed, once it knows the
// head it evaluates next (frequency_context::next_head). The selector takes that head as where
// the sample is expected to exit (predicted_exit, the default: exact for a policy that predicts
// its exit, such as policy::predictive, and the simple "exits at the next head it checks"
// estimate for a static policy that checks every head), or the final head (predicted_exit =
// false: the plain network's remaining work), and then applies one rule:
//
//   deadline   the lowest level l (objective lowest_level; or, objective least_energy, the
//              one of least modelled energy for the work to that head, counted over the
//              period: (P_l - P_idle) * time + the switch, since the time not spent working
//              is spent idle) such that
//                switch(l) + time(work to that head, l)
//                  + reserve * [switch(max) + time(worst rest, max)]  <=  time left,
//              where the worst rest is every stage and head after that head at the highest
//              level (what a wrong prediction can cost). reserve = 1 guarantees the deadline
//              whenever the highest level can meet it (the model being the clock's); 0 trusts
//              the prediction. No level fits: the highest. A sample without a deadline keeps
//              the level in force (no answer).
//   reference  f = f_max * J / r rounded up to a level (times reference_j, 1 by default): J
//              the stages to that head, r the stages left in the plain network (both counted
//              from the next stage to run, so J <= r): the predicted work stretched over the time
//              the plain network would take at f_max (Predictive Exit's rule). A sample that
//              needs the whole plain network (J = r) runs at f_max; one predicted to exit half
//              way at half the clock. It ignores the deadline: a forecast that exits later than
//              predicted, or stages of unequal cost, can miss it.
//
// Before Step 8 the reference rule computed f = J * f_max / r with J a constant (reference_j)
// and r the stages to the predicted head: more predicted work got a *lower* clock, and it missed
// every deadline. J is now the stages to the predicted exit, and reference_j a scale on the
// result (headroom above 1, more aggressive below).
//
// Time is the platform_model's (dvfs/clock.hpp), the one the model clock charges, switch
// latency included. In a batch (frequency_context::batch_rows > 1) the work counts for every
// row still running, so reserve 1 keeps its guarantee for the whole batch. frequency() is O(levels), noexcept and allocation-free (the prefix sums
// are built in prepare()).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../context.hpp"
#include "../error.hpp"
#include "../policy/concepts.hpp"
#include "../result.hpp"
#include "clock.hpp"

namespace earlyexit {

namespace dvfs {

/// Which rule the selector applies (see the file comment).
enum class rule : unsigned char {
    deadline,   ///< the lowest level that fits the time left (see the file comment)
    reference,  ///< f = J * f_max / r, rounded up to a level
};

[[nodiscard]] constexpr std::string_view name_of(rule r) noexcept {
    return r == rule::deadline ? "deadline" : "reference";
}

/// Which of the levels that fit the deadline the deadline rule takes.
enum class objective : unsigned char {
    lowest_level,  ///< the lowest (slowest) level that fits: the rule as the Predictive Exit paper states it
    least_energy,  ///< the fitting level with the least modelled energy for the work to the predicted head
};

[[nodiscard]] constexpr std::string_view name_of(objective o) noexcept {
    return o == objective::lowest_level ? "lowest_level" : "least_energy";
}

/// The selector's settings. The defaults take the level of least modelled energy among those
/// that keep the deadline guaranteed (reserve 1), so they never pick a level dearer than the one
/// in force (tested on both shipped tables against f_max). The paper's rule is
/// objective::lowest_level, which costs more where static power dominates a table's low levels.
struct options {
    dvfs::rule rule = dvfs::rule::deadline;
    /// deadline rule: which fitting level (with static power, the lowest level can cost more
    /// energy than a faster one that finishes sooner).
    dvfs::objective objective = dvfs::objective::least_energy;
    /// The head checked next is where the sample is expected to exit (false: the final head).
    bool predicted_exit = true;
    /// deadline rule: share in [0, 1] of the worst rest at the highest level kept in reserve.
    double reserve = 1.0;
    /// reference rule: a scale (finite, > 0) on f = f_max * J / r; 1 is the rule (the name is
    /// kept from when this was a constant J, see the file comment).
    double reference_j = 1.0;
};

}  // namespace dvfs

/// The names these had before they moved into namespace dvfs.
using dvfs_rule [[deprecated("use earlyexit::dvfs::rule")]] = dvfs::rule;
using dvfs_objective [[deprecated("use earlyexit::dvfs::objective")]] = dvfs::objective;
using dvfs_options [[deprecated("use earlyexit::dvfs::options")]] = dvfs::options;

namespace dvfs {

/// Chooses levels on a platform model for a network (bind with prepare()).
class selector {
public:
    selector(platform_model model, dvfs::options o = {}) : model_(std::move(model)), o_(o) {
        if (!(o_.reserve >= 0.0 && o_.reserve <= 1.0))
            earlyexit::fail("dvfs selector: reserve {} is out of range [0, 1]", o_.reserve);
        if (!(o_.reference_j > 0.0) || !std::isfinite(o_.reference_j))
            earlyexit::fail("dvfs selector: reference scale (reference_j) {} must be finite and > 0", o_.reference_j);
    }

    /// Precomputes the cost prefix sums of the network (allocates; call before running).
    void prepare(const network_info& n) {
        heads_ = n.heads;
        positions_.assign(n.head_positions.begin(), n.head_positions.end());
        stage_prefix_.assign(n.stages + 1, 0.0);
        for (std::size_t p = 0; p < n.stages; ++p) stage_prefix_[p + 1] = stage_prefix_[p] + n.stage_macs[p];
        head_prefix_.assign(n.heads + 1, 0.0);
        for (std::size_t k = 0; k < n.heads; ++k) head_prefix_[k + 1] = head_prefix_[k] + n.head_macs[k];
    }

    /// The level for the work from f.stages_run on (see the file comment); nullopt keeps the
    /// level in force.
    template <std::floating_point Scalar>
    [[nodiscard]] std::optional<std::size_t> choose(const frequency_context<Scalar>& f) const noexcept {
        if (heads_ == 0) return std::nullopt;  // not prepared
        const std::size_t last = heads_ - 1;
        const std::size_t h = o_.predicted_exit ? std::min(f.next_head, last) : last;
        const std::size_t from = std::min(f.stages_run, positions_[h] + 1);
        const std::size_t stages = positions_[h] + 1 - from;
        if (o_.rule == dvfs::rule::reference) {
            // J: stages to the predicted exit; r: stages left in the plain network (J <= r).
            const std::size_t left = positions_[last] + 1 - from;
            if (left == 0) return std::nullopt;  // nothing left to run
            const double f_max = model_.domain()[model_.max_level()].frequency_hz;
            const double want =
                o_.reference_j * f_max * static_cast<double>(stages) / static_cast<double>(left);
            return model_.domain().lowest_at_least(want);
        }
        const auto left = f.time_left();
        if (!left) return std::nullopt;
        // A batch runs its rows together: its work is about batch_rows samples' (an upper
        // bound, rows leave on the way), in as many calls as one sample's.
        const double rows = static_cast<double>(std::max<std::size_t>(f.batch_rows, 1));
        const double work = rows * (stage_prefix_[positions_[h] + 1] - stage_prefix_[from] + head_macs(h));
        const std::size_t calls = stages + 1;
        double rest = 0.0;
        if (h < last && o_.reserve > 0.0) {
            const std::size_t rest_calls = (positions_[last] - positions_[h]) + (last - h);
            const double rest_macs = stage_prefix_[positions_[last] + 1] - stage_prefix_[positions_[h] + 1] +
                                     head_prefix_[last + 1] - head_prefix_[h + 1];
            rest = o_.reserve * model_.seconds(rows * rest_macs, rest_calls, model_.max_level());
        }
        const std::size_t now = f.level == npos ? model_.max_level() : model_.clamp(f.level);
        const std::size_t top = model_.max_level();
        std::optional<std::size_t> best;
        double best_joules = 0.0;
        for (std::size_t l = 0; l <= top; ++l) {
            const double sw = l == now ? 0.0 : model_.switch_seconds();
            const double back = (h < last && o_.reserve > 0.0 && l != top) ? o_.reserve * model_.switch_seconds() : 0.0;
            const double t = model_.seconds(work, calls, l);
            if (sw + t + back + rest > *left) continue;
            if (o_.objective == dvfs::objective::lowest_level) return l;
            // Over the period: the time not spent working is spent idle, so a level costs its
            // power above idle for its time.
            const double joules = (l == now ? 0.0 : model_.switch_joules()) + t * (model_.power_w(l) - model_.idle_w());
            if (!best || joules < best_joules) {
                best = l;
                best_joules = joules;
            }
        }
        return best ? *best : top;
    }

    [[nodiscard]] const platform_model& model() const noexcept { return model_; }
    [[nodiscard]] const dvfs::options& options() const noexcept { return o_; }

private:
    [[nodiscard]] double head_macs(std::size_t k) const noexcept { return head_prefix_[k + 1] - head_prefix_[k]; }

    platform_model model_;
    dvfs::options o_;
    std::size_t heads_ = 0;
    std::vector<std::size_t> positions_;
    std::vector<double> stage_prefix_;
    std::vector<double> head_prefix_;
};

}  // namespace dvfs

namespace policy {

/// Any exit policy plus the DVFS selector: every hook goes to the wrapped policy, frequency()
/// to the selector. Run it on a clock that knows levels (dvfs::model_clock, or hardware).
template <class Policy>
class with_dvfs {
public:
    with_dvfs(Policy inner, dvfs::platform_model model, dvfs::options o = {})
        : inner_(std::move(inner)), selector_(std::move(model), o) {
        if constexpr (requires { std::string_view(inner_.name()); }) name_ = std::string(std::string_view(inner_.name()));
        else name_ = "policy";
        name_ += "+dvfs";
    }

    /// The wrapped policy's name (when it has one) and "+dvfs".
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) noexcept {
        static_assert(exit_policy<Policy, Scalar>, "with_dvfs: the wrapped policy is no exit policy for this scalar");
        return inner_.decide(c);
    }
    void begin(const sample_info& s) noexcept { hooks::begin(inner_, s); }
    [[nodiscard]] std::size_t first_check(const sample_info& s) noexcept { return hooks::first_check(inner_, s); }
    template <std::floating_point Scalar>
    [[nodiscard]] std::size_t next_check(const exit_context<Scalar>& c) noexcept {
        return hooks::next_check(inner_, c);
    }
    template <std::floating_point Scalar>
    [[nodiscard]] std::optional<std::size_t> frequency(const frequency_context<Scalar>& f) noexcept {
        return selector_.choose(f);
    }
    template <std::floating_point Scalar>
    void update(const episode<Scalar>& e) noexcept {
        hooks::update(inner_, e);
    }
    void prepare(const network_info& n) {
        hooks::prepare(inner_, n);
        selector_.prepare(n);
    }
    [[nodiscard]] bool needs_label() const { return hooks::needs_label(inner_); }
    void reset() { hooks::reset(inner_); }
    void merge(const with_dvfs& other) { hooks::merge(inner_, other.inner_); }

    [[nodiscard]] Policy& inner() noexcept { return inner_; }
    [[nodiscard]] const Policy& inner() const noexcept { return inner_; }
    [[nodiscard]] const dvfs::selector& selector() const noexcept { return selector_; }

private:
    Policy inner_;
    dvfs::selector selector_;
    std::string name_;
};

}  // namespace policy
}  // namespace earlyexit
