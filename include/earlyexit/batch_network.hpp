#pragma once
// Batched networks: the same stages and heads run on many samples ("rows") at once.
//
// A batched network works on a batch state of fixed capacity (rows it can hold, sized once:
// no allocation per batch). Rows are dense: the batch_runner keeps the still-running samples
// in rows 0..rows-1 and calls, in the network's const member functions:
//
//   run_batch_stage(p, state, rows)              stage p on rows 0..rows-1
//   run_batch_head(k, state, list, logits, ws)   head k on the listed rows (strictly increasing,
//                                                each < rows): logits[j*C .. j*C+C) are the logits
//                                                of row list[j] (list.size() x C, row-major);
//                                                ws has batch_workspace_size() scalars
//   compact(state, keep)                         keep the listed rows (strictly increasing): row
//                                                keep[j] becomes row j, the others are dropped
//   batch_workspace_size()                       head scratch for a full batch, in scalars
//   info()                                       shape and declared per-sample costs, exactly as
//                                                a runnable_network's (network_info)
//
// The state has capacity(). All three calls are noexcept and allocate nothing; the runner checks
// every argument before the first (rows <= capacity, lists increasing and in range).
//
// Optional, for stream_runner (continuous batching: new samples join a running batch):
//
//   append(dst, dst_rows, src, src_rows)         src's rows 0..src_rows-1 become dst's rows
//                                                dst_rows..dst_rows+src_rows-1 (dst_rows +
//                                                src_rows <= dst.capacity(), src_rows <=
//                                                src.capacity(), dst and src distinct states);
//                                                both at the same stage position (the same
//                                                stages run on every row). dst's rows below
//                                                dst_rows stay; src's rows are left unspecified
//                                                (a state may swap buffers rather than copy).
//                                                noexcept, allocates nothing.
//
// batched_network_with_append names it; a network without it is refused by stream_runner at
// compile time.
//
// Two models ship:
// * rowwise_network<N>: any per-sample runnable_network batched by running it row by row over
//   a rowwise_state of capacity per-sample states. Compaction permutes an index and appending
//   swaps states: neither copies one. Results are bit-identical to the per-sample runner; it
//   brings no speed of its own.
// * a network whose stages gain from wide batches (the demos' im2col + GEMM convolutions; see
//   examples/common/batched_model.hpp) implements the calls on its own layout.

#include <concepts>
#include <cstddef>
#include <numeric>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "context.hpp"
#include "error.hpp"

namespace earlyexit {

/// A batch state: rows of samples, capacity() of them at most.
template <class B>
concept batch_state = requires(const B& b) {
    { b.capacity() } -> std::convertible_to<std::size_t>;
};

/// What batch_runner needs of a network; see the header comment.
template <class N>
concept batched_network =
    batch_state<typename N::batch_state_type> &&
    requires(const N& n, typename N::batch_state_type& s, const typename N::batch_state_type& cs, std::size_t i,
             std::size_t rows, std::span<const std::size_t> list, std::span<typename N::scalar_type> out) {
        typename N::scalar_type;
        { n.info() } noexcept -> std::same_as<network_info>;
        { n.batch_workspace_size() } -> std::convertible_to<std::size_t>;
        n.run_batch_stage(i, s, rows);
        n.run_batch_head(i, cs, list, out, out);
        n.compact(s, list);
    };

/// A batched_network that can also append one state's rows to another's (see the header
/// comment): what stream_runner needs to admit new samples into a running batch.
template <class N>
concept batched_network_with_append =
    batched_network<N> && requires(const N& n, typename N::batch_state_type& dst, typename N::batch_state_type& src,
                                   std::size_t rows) {
        n.append(dst, rows, src, rows);
    };

/// The batch state of rowwise_network: capacity per-sample states, reached through an index so
/// that compaction moves indices, never states. Put the input of row r in row(r).
template <class State>
class rowwise_state {
public:
    /// capacity states, each made by make() (called capacity times; a state holds its buffers).
    template <class Make>
        requires std::convertible_to<std::invoke_result_t<Make&>, State>
    rowwise_state(std::size_t capacity, Make make) : slot_(capacity) {
        if (capacity == 0) fail("rowwise_state: capacity 0; a batch state holds at least one row");
        states_.reserve(capacity);
        for (std::size_t r = 0; r < capacity; ++r) states_.push_back(make());
        reset_rows();
    }

    [[nodiscard]] std::size_t capacity() const noexcept { return states_.size(); }
    /// The state of row r (r < capacity()).
    [[nodiscard]] State& row(std::size_t r) noexcept { return states_[slot_[r]]; }
    [[nodiscard]] const State& row(std::size_t r) const noexcept { return states_[slot_[r]]; }
    /// Row r is state r again (call before filling a new batch, to start from the states in
    /// their first order; no runner needs it: the rows are refilled in place).
    void reset_rows() noexcept { std::iota(slot_.begin(), slot_.end(), std::size_t{0}); }

    /// Keeps the listed rows (strictly increasing): row keep[j] becomes row j. The dropped
    /// rows' states move behind them, so every state stays in use.
    void compact(std::span<const std::size_t> keep) noexcept {
        // keep is increasing, so keep[j] >= j: swapping forwards never overwrites a kept slot.
        for (std::size_t j = 0; j < keep.size(); ++j) std::swap(slot_[j], slot_[keep[j]]);
    }

    /// Appends src's rows 0..src_rows-1 after rows 0..rows-1 of this state (rows + src_rows <=
    /// capacity(), src_rows <= src.capacity(), src another state): the per-sample states are
    /// swapped, never copied, so src's rows are left holding this state's spare ones.
    void append(std::size_t rows, rowwise_state& src, std::size_t src_rows) noexcept(std::is_nothrow_swappable_v<State>) {
        using std::swap;
        for (std::size_t j = 0; j < src_rows; ++j) swap(states_[slot_[rows + j]], src.states_[src.slot_[j]]);
    }

private:
    std::vector<State> states_;
    std::vector<std::size_t> slot_;
};

/// Any per-sample network (runnable_network: run_stage / run_head / workspace_size / info) as a
/// batched_network over rowwise_state<State>: every call runs row by row. Views the network,
/// which must outlive it.
template <class Network>
class rowwise_network {
public:
    using scalar_type = typename Network::scalar_type;
    using state_type = typename Network::state_type;
    using batch_state_type = rowwise_state<state_type>;

    explicit rowwise_network(const Network& n) : net_(&n), info_(n.info()) {}
    rowwise_network(const Network&&) = delete;

    [[nodiscard]] network_info info() const noexcept { return info_; }
    [[nodiscard]] const Network& network() const noexcept { return *net_; }
    /// One sample's head scratch: heads run one row at a time.
    [[nodiscard]] std::size_t batch_workspace_size() const { return static_cast<std::size_t>(net_->workspace_size()); }

    void run_batch_stage(std::size_t p, batch_state_type& s, std::size_t rows) const noexcept {
        for (std::size_t r = 0; r < rows; ++r) net_->run_stage(p, s.row(r));
    }
    void run_batch_head(std::size_t k, const batch_state_type& s, std::span<const std::size_t> list,
                        std::span<scalar_type> logits, std::span<scalar_type> ws) const noexcept {
        const std::size_t c = info_.classes;
        for (std::size_t j = 0; j < list.size(); ++j) net_->run_head(k, s.row(list[j]), logits.subspan(j * c, c), ws);
    }
    void compact(batch_state_type& s, std::span<const std::size_t> keep) const noexcept { s.compact(keep); }
    /// src's rows 0..src_rows-1 after dst's rows 0..dst_rows-1 (rowwise_state::append: swaps).
    void append(batch_state_type& dst, std::size_t dst_rows, batch_state_type& src, std::size_t src_rows) const
        noexcept(std::is_nothrow_swappable_v<state_type>) {
        dst.append(dst_rows, src, src_rows);
    }

private:
    const Network* net_;
    network_info info_;
};

}  // namespace earlyexit
