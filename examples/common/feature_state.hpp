#pragma once
// The per-sample state of the demo CNNs: the current feature map and the buffers every stage
// writes into, allocated once (make it once per thread and reuse it for every sample).
//
// A network cut inside a residual block (cifar_net's half-block stages: an exit after every
// convolution) needs the block's input after the stage that read it: that stage holds it
// (advance_holding), and a later one reads it (held_data) and lets it go (release_held). Holding
// trades the current buffer with the held one (std::vector::swap), so it copies and allocates
// nothing; a state only has the held buffer when its model asks for it (can_hold).

#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include <earlyexit/config.hpp>

#include "nn.hpp"

namespace earlyexit::demo {

/// One sample's maps: the current one, the next stage's output, two scratch maps of `max_size`
/// floats each, an im2col workspace, and (when made to hold) one map kept across stages. All
/// allocated at construction; stages only move between the buffers. Not thread-safe: one per thread.
struct feature_state {
    /// Buffers of `max_size` floats each and an im2col workspace of `workspace` floats; with
    /// can_hold, also the buffer advance_holding() keeps a map in.
    feature_state(std::size_t max_size, std::size_t workspace, bool can_hold = false) : ws(workspace) {
        for (auto& b : bufs) b.resize(max_size);
        if (can_hold) held.resize(max_size);
    }

    /// The current feature map (the input before the first stage, then each stage's output).
    [[nodiscard]] const float* data() const noexcept { return bufs[cur].data(); }
    /// Where the next stage writes its output (never the current map).
    [[nodiscard]] float* next() noexcept { return bufs[1 - cur].data(); }
    /// Scratch buffers a stage may use for intermediate maps (i = 0 or 1).
    [[nodiscard]] float* scratch(int i) noexcept { return bufs[static_cast<std::size_t>(2 + i)].data(); }
    /// Makes next() the current map, of shape s.
    void advance(nn::shape3 s) noexcept {
        cur = 1 - cur;
        shape = s;
    }
    /// Keeps the current map (the stage's input) for a later stage of this sample, then makes
    /// next() the current map, of shape s. No copy: the held buffer trades places with the current
    /// one. Precondition: can_hold() and no map held yet.
    void advance_holding(nn::shape3 s) noexcept {
        EARLYEXIT_ASSERT(can_hold() && !holding);
        held.swap(bufs[static_cast<std::size_t>(cur)]);
        held_shape = shape;
        holding = true;
        advance(s);
    }
    /// The map advance_holding() kept, of shape held_shape.
    [[nodiscard]] const float* held_data() const noexcept { return held.data(); }
    /// The held map is no longer needed (its buffer stays, for the next advance_holding()).
    void release_held() noexcept { holding = false; }
    /// Whether the state has the buffer advance_holding() needs.
    [[nodiscard]] bool can_hold() const noexcept { return !held.empty() && held.size() == bufs[0].size(); }

    /// Where to write the network input; then call begin(input shape).
    [[nodiscard]] float* input() noexcept { return bufs[0].data(); }
    void begin(nn::shape3 s) noexcept {
        cur = 0;
        shape = s;
        holding = false;
    }
    /// The current map as the C x (H*W) matrix pooled heads read.
    [[nodiscard]] nn::cmap map() const noexcept { return nn::pooled(data(), shape); }

    std::array<std::vector<float>, 4> bufs;  // 0/1: stage input/output, 2/3: scratch
    std::vector<float> ws;                   // im2col columns
    std::vector<float> held;                 // the map kept across stages (empty unless can_hold)
    int cur = 0;
    nn::shape3 shape{}, held_shape{};
    bool holding = false;  // whether held holds a map now
};

}  // namespace earlyexit::demo
