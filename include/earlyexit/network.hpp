#pragma once
// multi_exit_network: a forward pass cut into stages, with exit heads attached at positions.
//
// A stage is any callable invocable as `stage(state)` on a `State&` (const-callable): it
// transforms the sample's activations in place. State is yours (an Eigen vector, a struct of
// preallocated buffers, a handle to a tensor runtime); preallocate its buffers and the hot path
// allocates nothing. A head at position p reads the state right after stage p.
//
// Two storages, one class:
// * compile-time: make_network<State>().stage(f0).exit(h0).stage(f1).exit(h1).build() keeps
//   heterogeneous stages and heads in tuples (no indirect call);
// * run-time: dynamic_network_builder<State> keeps them in vectors (std::function and any_head
//   by default), for networks loaded from files.
// The network is immutable once built and can be shared by runners on several threads.
//
// Invariants checked at build time (earlyexit::error otherwise, naming the value): at least
// one stage; the last position carries a head (the final exit); all heads have the same
// positive number of classes; a head's declared input_size() equals the declared output_size
// of its stage when both are known; declared costs are finite and >= 0, and the plain network
// (all stages and the final head) costs more than 0: savings are ratios to that cost.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "context.hpp"
#include "error.hpp"
#include "head.hpp"

namespace earlyexit {

/// Declared facts about a stage. macs: multiply-accumulates (or any consistent cost unit) the
/// stage performs; output_size: scalars it outputs, checked against the head attached to it.
struct stage_info {
    double macs = 0.0;
    std::optional<std::size_t> output_size{};
};

/// Declared facts about a head; macs, when given, overrides the head's own macs().
struct head_info {
    std::optional<double> macs{};
};

template <class S, class State>
concept network_stage = std::invocable<const S&, State&>;

namespace detail {

/// Uniform index access over the two storages (tuple: compile-time list, vector: run-time).
template <class Seq>
struct seq;

template <class... Ts>
struct seq<std::tuple<Ts...>> {
    static constexpr std::size_t size(const std::tuple<Ts...>&) noexcept { return sizeof...(Ts); }
    template <class F>
    static void visit(const std::tuple<Ts...>& t, std::size_t i, F&& f) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (void)((i == I ? (f(std::get<I>(t)), true) : false) || ...);
        }(std::index_sequence_for<Ts...>{});
    }
};

template <class T, class A>
struct seq<std::vector<T, A>> {
    static std::size_t size(const std::vector<T, A>& v) noexcept { return v.size(); }
    template <class F>
    static void visit(const std::vector<T, A>& v, std::size_t i, F&& f) {
        f(v[i]);
    }
};

template <class Seq, class F>
void for_each_index(const Seq& s, F&& f) {
    for (std::size_t i = 0; i < seq<Seq>::size(s); ++i) seq<Seq>::visit(s, i, [&](const auto& x) { f(i, x); });
}

inline void check_cost(double macs, const char* what, std::size_t index) {
    if (!(macs >= 0.0) || !std::isfinite(macs))
        fail("{} {}: declared macs {} must be finite and >= 0", what, index, macs);
}

}  // namespace detail

/// A built network; see the header comment. Stages and Heads are std::tuple<...> (compile-time
/// list) or std::vector<...> (run-time list).
template <class State, std::floating_point Scalar, class Stages, class Heads>
class multi_exit_network {
public:
    using state_type = State;
    using scalar_type = Scalar;

    /// Validates everything listed in the header comment; head_positions[k] is the position of
    /// head k. Prefer the builders, which fill these in.
    multi_exit_network(Stages stages, Heads heads, std::vector<stage_info> stage_infos,
                       std::vector<std::size_t> head_positions, std::vector<head_info> head_infos)
        : stages_(std::move(stages)), heads_(std::move(heads)), head_pos_(std::move(head_positions)) {
        const std::size_t n_stages = detail::seq<Stages>::size(stages_);
        const std::size_t n_heads = detail::seq<Heads>::size(heads_);
        if (n_stages == 0) earlyexit::fail("multi_exit_network: a network needs at least one stage, got 0");
        if (stage_infos.size() != n_stages)
            earlyexit::fail("multi_exit_network: {} stage infos for {} stages", stage_infos.size(), n_stages);
        if (head_pos_.size() != n_heads || head_infos.size() != n_heads)
            earlyexit::fail("multi_exit_network: {} head positions and {} head infos for {} heads", head_pos_.size(),
                         head_infos.size(), n_heads);
        if (n_heads == 0 || head_pos_.back() != n_stages - 1)
            earlyexit::fail("multi_exit_network: no head at the last position (stage {}); the final exit is required",
                         n_stages - 1);
        for (std::size_t k = 0; k < n_heads; ++k) {
            if (head_pos_[k] >= n_stages)
                earlyexit::fail("multi_exit_network: head {} at position {}, but there are only {} stages", k,
                             head_pos_[k], n_stages);
            if (k > 0 && head_pos_[k] <= head_pos_[k - 1])
                earlyexit::fail("multi_exit_network: head {} at position {} is not after head {} at position {}", k,
                             head_pos_[k], k - 1, head_pos_[k - 1]);
        }
        stage_macs_.reserve(n_stages);
        for (std::size_t p = 0; p < n_stages; ++p) {
            detail::check_cost(stage_infos[p].macs, "stage", p);
            stage_macs_.push_back(stage_infos[p].macs);
        }
        head_macs_.assign(n_heads, 0.0);
        detail::for_each_index(heads_, [&](std::size_t k, const auto& h) {
            const std::size_t c = static_cast<std::size_t>(h.num_classes());
            if (c == 0) earlyexit::fail("multi_exit_network: head {} has 0 classes", k);
            if (k == 0) classes_ = c;
            else if (c != classes_)
                earlyexit::fail("multi_exit_network: head {} has {} classes but head 0 has {}", k, c, classes_);
            head_macs_[k] = head_infos[k].macs.value_or(head_macs(h));
            detail::check_cost(head_macs_[k], "head", k);
            workspace_ = std::max(workspace_, head_workspace_size(h));
            const auto in = detail::declared_input_size(h);
            const auto out = stage_infos[head_pos_[k]].output_size;
            if (in && out && *in != *out)
                earlyexit::fail("multi_exit_network: head {} expects {} inputs but stage {} outputs {}", k, *in,
                             head_pos_[k], *out);
        });
        // Costs left at their default 0 make every saving read 0 without a word: refuse them.
        if (std::all_of(stage_macs_.begin(), stage_macs_.end(), [](double m) { return m == 0.0; }) &&
            std::all_of(head_macs_.begin(), head_macs_.end(), [](double m) { return m == 0.0; }))
            earlyexit::fail("multi_exit_network: every declared cost is 0 ({} stages, {} heads), so compute savings "
                            "would all read 0; declare them with stage(f, {{.macs = ...}}) and a head's macs() or "
                            "exit(h, head_info{{.macs = ...}}) ({{.macs = 1}} per stage counts stages)",
                            n_stages, n_heads);
        full_macs_ = full_network_macs(stage_macs_, head_macs_);
        // Savings are ratios to the plain network's cost: with only early heads declared it is 0.
        if (full_macs_ == 0.0)
            earlyexit::fail("multi_exit_network: the plain network (every stage and the final head {}) declares cost "
                            "0 while an early head costs more, so compute savings would divide by 0; declare the "
                            "stages' costs with stage(f, {{.macs = ...}})",
                            n_heads - 1);
    }

    [[nodiscard]] std::size_t num_stages() const noexcept { return stage_macs_.size(); }
    [[nodiscard]] std::size_t num_heads() const noexcept { return head_pos_.size(); }
    [[nodiscard]] std::size_t num_classes() const noexcept { return classes_; }
    [[nodiscard]] std::size_t head_position(std::size_t k) const noexcept { return head_pos_[k]; }
    [[nodiscard]] std::span<const std::size_t> head_positions() const noexcept { return head_pos_; }
    [[nodiscard]] double stage_macs(std::size_t p) const noexcept { return stage_macs_[p]; }
    [[nodiscard]] double head_macs_at(std::size_t k) const noexcept { return head_macs_[k]; }
    /// Declared cost of the plain network: every stage plus the final head.
    [[nodiscard]] double full_macs() const noexcept { return full_macs_; }
    /// Scratch scalars the largest head needs (the runner preallocates it).
    [[nodiscard]] std::size_t workspace_size() const noexcept { return workspace_; }

    /// Shape and costs as policies see them; views into this network.
    [[nodiscard]] network_info info() const noexcept {
        return network_info{num_stages(), num_heads(), classes_, head_pos_, stage_macs_, head_macs_, full_macs_};
    }

    /// Runs stage p on the state. Precondition: p < num_stages().
    void run_stage(std::size_t p, State& state) const noexcept {
        detail::seq<Stages>::visit(stages_, p, [&](const auto& s) { std::invoke(s, state); });
    }

    /// Runs head k on the state into logits (num_classes() scalars) with the given scratch
    /// (workspace_size() scalars). Precondition: k < num_heads().
    void run_head(std::size_t k, const State& state, std::span<Scalar> logits, std::span<Scalar> ws) const noexcept {
        detail::seq<Heads>::visit(heads_, k, [&](const auto& h) { detail::invoke_head(h, state, logits, ws); });
    }

    [[nodiscard]] const Stages& stages() const noexcept { return stages_; }
    [[nodiscard]] const Heads& heads() const noexcept { return heads_; }

private:
    Stages stages_;
    Heads heads_;
    std::vector<std::size_t> head_pos_;
    std::vector<double> stage_macs_;
    std::vector<double> head_macs_;
    std::size_t classes_ = 0;
    std::size_t workspace_ = 0;
    double full_macs_ = 0;
};

namespace detail {

/// Bookkeeping both builders share: stage infos and the heads' positions.
class layout_builder {
public:
    void add_stage(const stage_info& info) { stage_infos_.push_back(info); }
    void add_head(const head_info& info, std::size_t head_index) {
        if (stage_infos_.empty())
            fail("network builder: exit {} added before any stage; add the stage it reads first", head_index);
        const std::size_t p = stage_infos_.size() - 1;
        if (!positions_.empty() && positions_.back() == p)
            fail("network builder: stage {} already has head {}; add a stage before the next exit", p,
                 positions_.size() - 1);
        positions_.push_back(p);
        head_infos_.push_back(info);
    }
    std::vector<stage_info> stage_infos_;
    std::vector<std::size_t> positions_;
    std::vector<head_info> head_infos_;
};

}  // namespace detail

template <class State, std::floating_point Scalar, class Stages, class Heads>
class network_builder;

/// Builder for a network with compile-time lists of stages and heads. Each call returns a new
/// builder type; chain them on a temporary:
///   auto net = make_network<State>().stage(f0, {.macs = 1e6}).exit(h0).stage(f1).exit(h1).build();
/// exit(h) attaches h to the stage added last. Calling them on a named builder is a compile
/// error saying so (std::move(b).stage(...) works; dynamic_network_builder grows in a loop).
template <class State, std::floating_point Scalar, class... Stages, class... Heads>
class network_builder<State, Scalar, std::tuple<Stages...>, std::tuple<Heads...>> {
public:
    network_builder() = default;
    network_builder(std::tuple<Stages...> s, std::tuple<Heads...> h, detail::layout_builder l)
        : stages_(std::move(s)), heads_(std::move(h)), layout_(std::move(l)) {}

    template <class F>
    [[nodiscard]] auto stage(F&& f, stage_info info = {}) && {
        static_assert(network_stage<std::decay_t<F>, State>,
                      "a stage must be callable as f(state) on a State& (and const-callable)");
        layout_.add_stage(info);
        return network_builder<State, Scalar, std::tuple<Stages..., std::decay_t<F>>, std::tuple<Heads...>>(
            std::tuple_cat(std::move(stages_), std::tuple<std::decay_t<F>>(std::forward<F>(f))), std::move(heads_),
            std::move(layout_));
    }

    template <class H>
    [[nodiscard]] auto exit(H&& h, head_info info = {}) && {
        static_assert(exit_head<std::decay_t<H>, State, Scalar>,
                      "an exit head needs num_classes() and must be callable as h(state, logits) or "
                      "h(state, logits, workspace); wrap it with project() to read part of the state");
        layout_.add_head(info, sizeof...(Heads));
        return network_builder<State, Scalar, std::tuple<Stages...>, std::tuple<Heads..., std::decay_t<H>>>(
            std::move(stages_), std::tuple_cat(std::move(heads_), std::tuple<std::decay_t<H>>(std::forward<H>(h))),
            std::move(layout_));
    }

    /// Validates and returns the network (earlyexit::error on any violated invariant).
    [[nodiscard]] auto build() && {
        return multi_exit_network<State, Scalar, std::tuple<Stages...>, std::tuple<Heads...>>(
            std::move(stages_), std::move(heads_), std::move(layout_.stage_infos_), std::move(layout_.positions_),
            std::move(layout_.head_infos_));
    }

    // On a named builder (an lvalue) the calls above would not compile with an unhelpful
    // "discards qualifiers"; these overloads say why and what to do instead.
    template <class F>
    auto stage(F&&, stage_info = {}) const& -> network_builder<State, Scalar, std::tuple<Stages..., std::decay_t<F>>,
                                                               std::tuple<Heads...>> {
        static_assert(detail::dependent_false<F>,
                      "network_builder::stage() called on a named builder: each stage()/exit() returns a new "
                      "builder type, so chain the calls on the temporary, make_network<State>().stage(f, "
                      "{...}).exit(h).build() (or std::move(b).stage(...)), or use dynamic_network_builder "
                      "to grow a builder in a loop");
        std::terminate();
    }
    template <class H>
    auto exit(H&&, head_info = {}) const& -> network_builder<State, Scalar, std::tuple<Stages...>,
                                                             std::tuple<Heads..., std::decay_t<H>>> {
        static_assert(detail::dependent_false<H>,
                      "network_builder::exit() called on a named builder: each stage()/exit() returns a new "
                      "builder type, so chain the calls on the temporary, make_network<State>().stage(f, "
                      "{...}).exit(h).build() (or std::move(b).exit(...)), or use dynamic_network_builder "
                      "to grow a builder in a loop");
        std::terminate();
    }
    template <class Self = network_builder>
    auto build() const& -> multi_exit_network<State, Scalar, std::tuple<Stages...>, std::tuple<Heads...>> {
        static_assert(detail::dependent_false<Self>,
                      "network_builder::build() called on a named builder: each stage()/exit() returns a new "
                      "builder type, so chain the calls on the temporary, make_network<State>().stage(f, "
                      "{...}).exit(h).build() (or std::move(b).build()), or use dynamic_network_builder "
                      "to grow a builder in a loop");
        std::terminate();
    }

private:
    std::tuple<Stages...> stages_;
    std::tuple<Heads...> heads_;
    detail::layout_builder layout_;
};

/// Starts a compile-time network builder for the given State and logit Scalar.
template <class State, std::floating_point Scalar = float>
[[nodiscard]] auto make_network() {
    return network_builder<State, Scalar, std::tuple<>, std::tuple<>>{};
}

/// Builder for a network assembled at run time (from a file, a loop): stages and heads are kept
/// in vectors of one type each, type-erased by default.
template <class State, std::floating_point Scalar = float, class Stage = std::function<void(State&)>,
          class Head = any_head<State, Scalar>>
class dynamic_network_builder {
public:
    using network_type = multi_exit_network<State, Scalar, std::vector<Stage>, std::vector<Head>>;

    dynamic_network_builder& stage(Stage s, stage_info info = {}) {
        layout_.add_stage(info);
        stages_.push_back(std::move(s));
        return *this;
    }

    /// Adds n stages calling f(i, state) for i = 0..n-1: a forward pass that can run block i
    /// on its own. info(i) gives each stage's declared facts.
    template <class F, class Info>
        requires std::invocable<const F&, std::size_t, State&> && std::invocable<const Info&, std::size_t>
    dynamic_network_builder& stages(std::size_t n, F f, Info info) {
        for (std::size_t i = 0; i < n; ++i) stage(Stage([f, i](State& s) { f(i, s); }), info(i));
        return *this;
    }

    dynamic_network_builder& exit(Head h, head_info info = {}) {
        layout_.add_head(info, heads_.size());
        heads_.push_back(std::move(h));
        return *this;
    }

    [[nodiscard]] std::size_t num_stages() const noexcept { return stages_.size(); }

    /// Validates and returns the network; the builder keeps its content (build again freely).
    [[nodiscard]] network_type build() const {
        return network_type(stages_, heads_, layout_.stage_infos_, layout_.positions_, layout_.head_infos_);
    }

private:
    std::vector<Stage> stages_;
    std::vector<Head> heads_;
    detail::layout_builder layout_;
};

/// The network type dynamic_network_builder<State, Scalar> builds.
template <class State, std::floating_point Scalar = float>
using dynamic_network = typename dynamic_network_builder<State, Scalar>::network_type;

}  // namespace earlyexit
