#pragma once
// The per-sample state of the demo CNNs: the current feature map and the buffers every stage
// writes into, allocated once (make it once per thread and reuse it for every sample).

#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include "nn.hpp"

namespace earlyexit::demo {

struct feature_state {
    /// Buffers of `max_size` floats each and an im2col workspace of `workspace` floats.
    feature_state(std::size_t max_size, std::size_t workspace) : ws(workspace) {
        for (auto& b : bufs) b.resize(max_size);
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
    /// Where to write the network input; then call begin(input shape).
    [[nodiscard]] float* input() noexcept { return bufs[0].data(); }
    void begin(nn::shape3 s) noexcept {
        cur = 0;
        shape = s;
    }
    /// The current map as the C x (H*W) matrix pooled heads read.
    [[nodiscard]] nn::cmap map() const noexcept { return nn::pooled(data(), shape); }

    std::array<std::vector<float>, 4> bufs;  // 0/1: stage input/output, 2/3: scratch
    std::vector<float> ws;                   // im2col columns
    int cur = 0;
    nn::shape3 shape{};
};

}  // namespace earlyexit::demo
