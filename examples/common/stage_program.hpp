#pragma once
// stage_program: what a demo network's stage computes, as a list of convolutions between the
// buffers of a state, for a backend other than the Eigen one the stage runs itself (oneDNN:
// dnnl_model.hpp). A stage type (cifar_block, mobilenet_stage) describes itself with
// program(); the backend then runs the same layers, with the same weights, in its own layout.
//
// A step is one convolution (nn::conv2d: its weights, bias, kernel, stride, padding, groups and
// its own activation) from one buffer into another, optionally followed by the sum with a third
// buffer (a residual) and an activation after that sum:
//
//   dst = after_add(act(conv(src) + bias) [+ add])
//
// The buffers are those of feature_state / batch_feature_state: the current map, the next one
// (the stage's output, which becomes the current map), two scratch maps and the map held across
// stages (a residual block cut in two). A stage that holds its input (holds_input) keeps the
// current map as the held one; one that releases it (releases_held) reads it last.
//
// A head describes itself the same way (head_program): from the map it reads, a list of
// operations in order, the last of which gives the logits:
//   - pool: a kxk-window average (stride k, no padding: a grid of cells, or one cell for
//     global pooling), optionally mixed with the window's maximum (w * max + (1 - w) * avg);
//   - conv: a convolution with its own activation (nn::conv2d);
//   - linear: W x + b (W row-major out x in, over the CHW flattening of a map), then an
//     activation.

#include <optional>
#include <variant>
#include <vector>

#include <earlyexit/heads/linear.hpp>

#include "nn.hpp"

namespace earlyexit::demo::nn {

/// A buffer of a state, as a stage program names it.
enum class slot : unsigned char { current, next, scratch0, scratch1, held };

/// One convolution of a stage program (see the header comment).
struct conv_step {
    const conv2d* conv = nullptr;  ///< the layer; owned by the stage that made the program
    shape3 in{};                   ///< its input shape (conv->output_shape(in) is its output)
    slot src = slot::current, dst = slot::next;
    std::optional<slot> add;                  ///< a map of the output's shape summed after the activation
    activation after_add = activation::none;  ///< applied after that sum
};

/// A conv_step (a function, so that callers name only what they use).
[[nodiscard]] inline conv_step step(const conv2d& conv, shape3 in, slot src, slot dst, std::optional<slot> add = {},
                                    activation after_add = activation::none) noexcept {
    return {.conv = &conv, .in = in, .src = src, .dst = dst, .add = add, .after_add = after_add};
}

/// A stage as convolutions: steps in order, the output shape it leaves as the current map, and
/// whether it holds its input for a later stage or reads and releases a held map.
struct stage_program {
    std::vector<conv_step> steps;
    shape3 out{};
    bool holds_input = false, releases_held = false;
};

/// Head operation: average pooling over kernel_h x kernel_w windows with the same stride (no
/// padding; windows past the map's end dropped), mixed with the windows' maximum when
/// max_weight is set: max_weight * max + (1 - max_weight) * avg.
struct pool_op {
    int kernel_h = 1, kernel_w = 1;
    std::optional<float> max_weight;
};
/// Head operation: a convolution with its own bias and activation.
struct conv_op {
    const conv2d* conv = nullptr;  ///< owned by the head that made the program
};
/// Head operation: a linear layer over the (CHW-flattened) map, then an activation.
struct linear_op {
    const linear_head<float>* linear = nullptr;  ///< owned by the head that made the program
    activation act = activation::none;
};
using head_op = std::variant<pool_op, conv_op, linear_op>;

/// A head as operations on the map it reads (of shape in); the last one is a linear_op whose
/// outputs are the logits.
struct head_program {
    shape3 in{};
    std::vector<head_op> ops;
};

}  // namespace earlyexit::demo::nn
