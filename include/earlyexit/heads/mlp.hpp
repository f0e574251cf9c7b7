#pragma once
// mlp_head: hidden linear layers with ReLU, then a linear layer to the classes.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "concept.hpp"
#include "linear.hpp"

namespace earlyexit {

/// A small MLP: hidden linear layers with ReLU, then a linear layer to the classes. Layers are
/// (weight Out x In row-major, bias Out); consecutive shapes must chain. Scratch for the hidden
/// activations comes from the runner (workspace_size() scalars), so the head stays const.
template <std::floating_point Scalar>
class mlp_head {
public:
    using scalar_type = Scalar;
    using layer = linear_head<Scalar>;

    /// Throws earlyexit::error when there is no layer or two consecutive layers do not chain.
    explicit mlp_head(std::vector<layer> layers) : layers_(std::move(layers)) {
        if (layers_.empty()) earlyexit::fail("mlp_head: needs at least one layer, got 0");
        for (std::size_t i = 1; i < layers_.size(); ++i)
            if (layers_[i].input_size() != layers_[i - 1].num_classes())
                earlyexit::fail("mlp_head: layer {} expects {} inputs but layer {} gives {} outputs", i,
                             layers_[i].input_size(), i - 1, layers_[i - 1].num_classes());
        for (std::size_t i = 0; i + 1 < layers_.size(); ++i) widest_ = std::max(widest_, layers_[i].num_classes());
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return layers_.back().num_classes(); }
    [[nodiscard]] std::size_t input_size() const noexcept { return layers_.front().input_size(); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return 2 * widest_; }
    [[nodiscard]] double macs() const noexcept {
        double m = 0;
        for (const auto& l : layers_) m += l.macs();
        return m;
    }
    [[nodiscard]] const std::vector<layer>& layers() const noexcept { return layers_; }

    template <class Input>
    void operator()(const Input& x, std::span<Scalar> logits, std::span<Scalar> ws) const noexcept {
        EARLYEXIT_ASSERT(ws.size() >= workspace_size());
        if (layers_.size() == 1) {
            layers_[0](x, logits);
            return;
        }
        std::span<Scalar> cur = ws.first(layers_[0].num_classes());
        layers_[0](x, cur);
        relu(cur);
        for (std::size_t i = 1; i + 1 < layers_.size(); ++i) {
            // Ping-pong between the two halves of the workspace.
            const std::size_t half = (i % 2 == 1) ? widest_ : 0;
            std::span<Scalar> next = ws.subspan(half, layers_[i].num_classes());
            layers_[i](std::span<const Scalar>(cur), next);
            relu(next);
            cur = next;
        }
        layers_.back()(std::span<const Scalar>(cur), logits);
    }

private:
    static void relu(std::span<Scalar> v) noexcept {
        for (auto& x : v) x = x > Scalar(0) ? x : Scalar(0);
    }

    std::vector<layer> layers_;
    std::size_t widest_ = 0;
};

}  // namespace earlyexit
