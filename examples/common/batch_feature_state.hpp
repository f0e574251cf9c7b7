#pragma once
// The batch state of the demo CNNs (batched_model.hpp): what feature_state is for one sample,
// for up to `capacity` samples ("rows") at once, in nn.hpp's batch layout (channel c of row r
// is the H*W plane at (c * capacity + r) * H*W), so that a layer of every row is one GEMM.
// Every buffer is allocated once, at construction: capacity times the per-sample sizes.
// A map held across stages (feature_state::advance_holding: a residual block cut in two) is
// held for every row, and compact() and append() move its rows with the current map's.

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include <earlyexit/config.hpp>
#include <earlyexit/error.hpp>

#include "nn.hpp"

namespace earlyexit::demo {

/// capacity rows of feature maps: the current map, the next one and two scratch maps, each
/// capacity * max_size floats, plus a workspace (im2col columns of every row, head scratch).
/// Rows are filled through input_row(r) and begin(); stages then run on rows 0..rows-1 in
/// place, and compact() drops rows. Make it once (batched_model::make_state) and reuse it.
class batch_feature_state {
public:
    /// Buffers for `capacity` rows of maps of up to `max_size` floats and a workspace of
    /// `workspace` floats; with can_hold, also the buffer advance_holding() keeps a map in.
    /// Throws earlyexit::error when capacity is 0.
    batch_feature_state(std::size_t capacity, std::size_t max_size, std::size_t workspace, bool can_hold = false)
        : ws(workspace), capacity_(capacity), max_size_(max_size) {
        if (capacity_ == 0) fail("batch_feature_state: capacity 0; a batch state holds at least one row");
        for (auto& b : bufs) b.resize(capacity_ * max_size_);
        if (can_hold) held.resize(capacity_ * max_size_);
    }

    /// Rows the state holds at most.
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    /// Floats of the largest map of one row.
    [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }
    /// Rows 0..rows-1 of a map of this state.
    [[nodiscard]] nn::batch_extent extent(std::size_t rows) const noexcept { return {rows, capacity_}; }

    /// Where to write row r's network input, a CHW map (r < capacity()) as feature_state::input()
    /// takes it; after the rows are written, begin() makes them the current map.
    [[nodiscard]] float* input_row(std::size_t r) noexcept { return bufs[2].data() + r * max_size_; }

    /// Makes the inputs written to input_row(0..rows-1), of shape s, the current map. Throws
    /// earlyexit::error naming the value when rows exceeds the capacity or s does not fit a row.
    void begin(nn::shape3 s, std::size_t rows) {
        if (rows > capacity_) fail("batch_feature_state: begin with {} rows, the capacity is {}", rows, capacity_);
        if (s.size() > max_size_)
            fail("batch_feature_state: input of {}x{}x{} = {} floats, a row holds {}", s.c, s.h, s.w, s.size(), max_size_);
        for (std::size_t r = 0; r < rows; ++r) nn::batch_put_row(input_row(r), s, capacity_, r, bufs[0].data());
        cur = 0;
        shape = s;
        holding_ = false;
    }

    /// The current map of every row (the input after begin(), then each stage's output).
    [[nodiscard]] const float* data() const noexcept { return bufs[static_cast<std::size_t>(cur)].data(); }
    /// Where the next stage writes its output (never the current map).
    [[nodiscard]] float* next() noexcept { return bufs[static_cast<std::size_t>(1 - cur)].data(); }
    /// Scratch maps a stage may use for intermediate maps (i = 0 or 1).
    [[nodiscard]] float* scratch(int i) noexcept { return bufs[static_cast<std::size_t>(2 + i)].data(); }
    /// Makes next() the current map, of shape s.
    void advance(nn::shape3 s) noexcept {
        cur = 1 - cur;
        shape = s;
    }
    /// Keeps the current map of every row for a later stage, then makes next() the current map,
    /// of shape s (feature_state::advance_holding; no copy). Precondition: can_hold(), none held.
    void advance_holding(nn::shape3 s) noexcept {
        EARLYEXIT_ASSERT(can_hold() && !holding_);
        held.swap(bufs[static_cast<std::size_t>(cur)]);
        held_shape = shape;
        holding_ = true;
        advance(s);
    }
    /// The maps advance_holding() kept (batch layout, shape held_shape).
    [[nodiscard]] const float* held_data() const noexcept { return held.data(); }
    /// The held maps are no longer needed: compact() stops moving them.
    void release_held() noexcept { holding_ = false; }
    /// Whether the state has the buffer advance_holding() needs.
    [[nodiscard]] bool can_hold() const noexcept { return held.size() == capacity_ * max_size_; }
    /// Whether a map is held now (between advance_holding() and release_held()).
    [[nodiscard]] bool holding() const noexcept { return holding_; }

    /// Row r's current map as the C x (H*W) matrix pooled heads read (feature_state::map()).
    [[nodiscard]] nn::cbmap row_map(std::size_t r) const noexcept { return nn::batch_row(data(), shape, capacity_, r); }

    /// Keeps the listed rows (strictly increasing, each < the rows in use): row keep[j] becomes
    /// row j. Only the current map and a held one move: the other buffers hold nothing between stages.
    void compact(std::span<const std::size_t> keep) noexcept {
        nn::batch_compact(bufs[static_cast<std::size_t>(cur)].data(), shape, capacity_, keep);
        if (holding_) nn::batch_compact(held.data(), held_shape, capacity_, keep);
    }

    /// Copies src's rows 0..src_rows-1 after rows 0..rows-1 of this state (rows + src_rows <=
    /// capacity(), src_rows <= src.capacity(), src another state at the same stage: the same
    /// map shape, and a held map when src holds one): the current map's rows and a held map's.
    /// With rows == 0 this state takes src's shape and holding. O(src_rows * map size); no
    /// allocation. (stream_runner admits new samples this way.)
    void append(std::size_t rows, const batch_feature_state& src, std::size_t src_rows) noexcept {
        EARLYEXIT_ASSERT(&src != this && rows + src_rows <= capacity_ && src_rows <= src.capacity_);
        EARLYEXIT_ASSERT(rows == 0 || (shape == src.shape && holding_ == src.holding_ &&
                                       (!holding_ || held_shape == src.held_shape)));
        EARLYEXIT_ASSERT(!src.holding_ || can_hold());
        shape = src.shape;
        held_shape = src.held_shape;
        holding_ = src.holding_;
        append_rows(bufs[static_cast<std::size_t>(cur)].data(), src.data(), shape, rows, src.capacity_, src_rows);
        if (holding_) append_rows(held.data(), src.held_data(), held_shape, rows, src.capacity_, src_rows);
    }

    std::array<std::vector<float>, 4> bufs;  // 0/1: stage input/output, 2/3: scratch (2: the inputs before begin())
    std::vector<float> ws;                   // im2col columns of every row, head scratch
    std::vector<float> held;                 // the maps kept across stages (empty unless can_hold)
    int cur = 0;
    nn::shape3 shape{}, held_shape{};

private:
    /// Rows 0..n-1 of `from` (a batch of shape s laid out for from_capacity rows) become rows
    /// at..at+n-1 of `to` (laid out for this state's capacity): one block per channel.
    void append_rows(float* to, const float* from, nn::shape3 s, std::size_t at, std::size_t from_capacity,
                     std::size_t n) const noexcept {
        const std::size_t plane = s.positions();
        for (std::size_t c = 0; c < static_cast<std::size_t>(s.c); ++c)
            std::copy_n(from + c * from_capacity * plane, n * plane, to + (c * capacity_ + at) * plane);
    }

    std::size_t capacity_, max_size_;
    bool holding_ = false;
};

}  // namespace earlyexit::demo
