#pragma once
// The CIFAR-10 multi-exit ResNet of examples/train/train_cifar10.py, run with Eigen.
//
// The weight file (safetensors, written by that script) carries the architecture in its
// metadata ("architecture": JSON with the stages and the heads; read and checked by
// staged_model.hpp) and the tensors with batch norm already folded into the convolutions:
//
//   stem.conv.{weight,bias}                      conv 3x3 + ReLU
//   blocks.<i>.conv1.{weight,bias}               conv 3x3 (stride s) + ReLU
//   blocks.<i>.conv2.{weight,bias}               conv 3x3
//   blocks.<i>.shortcut.{weight,bias}            conv 1x1 (stride s), when the shape changes
//                                                block output = ReLU(conv2 + shortcut or input)
//   heads.<k>.{weight,bias}                      "gap_linear": global average pool + linear;
//   heads.<k>.max_weight                         "pool_linear": pool to a grid (average, or
//                                                mixed with max by max_weight), then linear
//
// Stage 0 is the stem, stage i+1 is block i; head k sits after the stage its metadata names.
// Every stage and head is one callable of an earlyexit::dynamic_network over feature_state;
// batched_model runs them on a batch_feature_state (run_batch), many samples at once.
//
// The fine-grained variant (models/cifar10_fine_exits.safetensors, format_version 3, written by
// examples/train/fit_fine_heads.py) has an exit after every convolution: the same backbone with
// each block cut in two stages, "basic_block_conv1" (conv1 + ReLU) and "basic_block_conv2"
// (conv2 + shortcut + add + ReLU), 13 stages in all. The block input must outlive the first
// half: that stage holds it in the state (feature_state::advance_holding, no copy) and the
// second half reads it for the shortcut. A stage entry of a half names its block ("block":
// "blocks.<i>", the prefix of the tensors above); the loader checks that the second half follows
// the first half of the same block.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include <earlyexit/earlyexit.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "batch_feature_state.hpp"
#include "batched_model.hpp"
#include "feature_state.hpp"
#include "nn.hpp"
#include "safetensors.hpp"
#include "stage_program.hpp"
#include "staged_model.hpp"

namespace earlyexit::demo {

namespace detail {

/// A cifar_net stage: the stem (conv1 alone), a basic block (conv1, conv2, shortcut), or half
/// of one: conv1 (holding the block input in the state) or conv2 + shortcut (reading it). The
/// halves compute exactly what the whole block does, in the same order.
struct cifar_block {
    enum class part : std::uint8_t {
        stem,         ///< conv1 (+ ReLU)
        block,        ///< ReLU(conv2(conv1(x)) + shortcut(x) or x)
        block_conv1,  ///< conv1(x) (+ ReLU); holds x, the block input
        block_conv2,  ///< ReLU(conv2(x) + shortcut(held) or held); releases the block input
    };
    part kind = part::stem;
    nn::conv2d conv1;                           // stem, block, block_conv1
    std::optional<nn::conv2d> conv2, shortcut;  // block, block_conv2 (shortcut: when the shape changes)
    nn::shape3 in, mid, out;  // the stage's input, conv2's input (conv1's output), the output
    nn::shape3 block_in;      // the block's input, which the shortcut reads (block, block_conv2)

    void operator()(feature_state& s) const noexcept {
        const float* x = s.data();
        float* y = s.next();
        switch (kind) {
            case part::stem:
                conv1(x, in, y, s.ws);
                break;
            case part::block:
                conv1(x, in, s.scratch(0), s.ws);
                residual(s, s.scratch(0), x, y);
                break;
            case part::block_conv1:
                conv1(x, in, y, s.ws);
                s.advance_holding(out);
                return;
            case part::block_conv2:
                residual(s, x, s.held_data(), y);
                s.release_held();
                break;
        }
        s.advance(out);
    }

    /// The same on rows 0..rows-1 of a batch (conv2d::run_batch: GEMMs over many rows).
    void run_batch(batch_feature_state& s, std::size_t rows) const noexcept {
        const nn::batch_extent e = s.extent(rows);
        const float* x = s.data();
        float* y = s.next();
        switch (kind) {
            case part::stem:
                conv1.run_batch(x, in, e, y, s.ws);
                break;
            case part::block:
                conv1.run_batch(x, in, e, s.scratch(0), s.ws);
                residual(s, e, s.scratch(0), x, y);
                break;
            case part::block_conv1:
                conv1.run_batch(x, in, e, y, s.ws);
                s.advance_holding(out);
                return;
            case part::block_conv2:
                residual(s, e, x, s.held_data(), y);
                s.release_held();
                break;
        }
        s.advance(out);
    }
    /// The stage as convolutions between a state's buffers (stage_program.hpp), for another
    /// backend: the same order of layers and sums as operator() and run_batch.
    [[nodiscard]] nn::stage_program program() const {
        using nn::slot;
        nn::stage_program p{.steps = {}, .out = out, .holds_input = kind == part::block_conv1,
                            .releases_held = kind == part::block_conv2};
        // conv2 + (shortcut of the block input, or the block input itself), then ReLU.
        const auto residual = [&](slot t, slot x) {
            slot sc = x;
            if (shortcut) {
                p.steps.push_back(nn::step(*shortcut, block_in, x, slot::scratch1));
                sc = slot::scratch1;
            }
            p.steps.push_back(nn::step(*conv2, mid, t, slot::next, sc, nn::activation::relu));
        };
        switch (kind) {
            case part::stem:
            case part::block_conv1:
                p.steps.push_back(nn::step(conv1, in, slot::current, slot::next));
                break;
            case part::block:
                p.steps.push_back(nn::step(conv1, in, slot::current, slot::scratch0));
                residual(slot::scratch0, slot::current);
                break;
            case part::block_conv2:
                residual(slot::current, slot::held);
                break;
        }
        return p;
    }

    /// Workspace floats run_batch needs for `rows` rows.
    [[nodiscard]] std::size_t batch_workspace_size(std::size_t rows) const {
        const bool has_conv1 = kind != part::block_conv2;
        return std::max({has_conv1 ? conv1.batch_workspace_size(in, rows) : 0,
                         conv2 ? conv2->batch_workspace_size(mid, rows) : 0,
                         shortcut ? shortcut->batch_workspace_size(block_in, rows) : 0});
    }

private:
    /// y = ReLU(conv2(t) + shortcut(x) or x): the block's second half, t its conv1 output, x its input.
    void residual(feature_state& s, const float* t, const float* x, float* y) const noexcept {
        (*conv2)(t, mid, y, s.ws);
        const float* sc = x;
        if (shortcut) {
            (*shortcut)(x, block_in, s.scratch(1), s.ws);
            sc = s.scratch(1);
        }
        nn::add_act(y, sc, y, out.size(), nn::activation::relu);
    }
    void residual(batch_feature_state& s, nn::batch_extent e, const float* t, const float* x, float* y) const noexcept {
        conv2->run_batch(t, mid, e, y, s.ws);
        const float* sc = x;
        if (shortcut) {
            shortcut->run_batch(x, block_in, e, s.scratch(1), s.ws);
            sc = s.scratch(1);
        }
        nn::batch_add_act(y, sc, y, out, e, nn::activation::relu);
    }
};

/// A cifar_net exit: the grid-pooled linear head on the state's current map.
struct cifar_head {
    grid_pooled_head<float> pooled;

    [[nodiscard]] std::size_t num_classes() const noexcept { return pooled.num_classes(); }
    [[nodiscard]] double macs() const noexcept { return pooled.macs(); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return pooled.workspace_size(); }
    [[nodiscard]] std::size_t input_size() const noexcept { return pooled.input_size(); }
    void operator()(const feature_state& s, std::span<float> logits, std::span<float> ws) const noexcept {
        pooled(s.map(), logits, ws);
    }

    /// The head as operations (stage_program.hpp), for another backend: the grid's cells
    /// pooled (mixed with their maximum when the head mixes), then the linear layer.
    [[nodiscard]] nn::head_program program() const {
        const auto g = pooled.grid(), h = pooled.height(), w = pooled.width();
        const nn::shape3 in{static_cast<int>(pooled.channels()), static_cast<int>(h), static_cast<int>(w)};
        return {.in = in,
                .ops = {nn::pool_op{.kernel_h = static_cast<int>(h / g), .kernel_w = static_cast<int>(w / g),
                                    .max_weight = pooled.max_weight()},
                        nn::linear_op{.linear = &pooled.linear()}}};
    }

    /// Scratch floats of run_batch: one row at a time, so one sample's.
    [[nodiscard]] std::size_t batch_workspace_size(std::size_t /*capacity*/) const noexcept { return workspace_size(); }
    /// The head on the listed rows of a batch, row by row (it is tiny): logits row j is row list[j]'s.
    void run_batch(const batch_feature_state& s, std::span<const std::size_t> list, std::span<float> logits,
                   std::span<float> ws) const noexcept {
        const std::size_t c = num_classes();
        for (std::size_t j = 0; j < list.size(); ++j) pooled(s.row_map(list[j]), logits.subspan(j * c, c), ws);
    }
};

}  // namespace detail

/// The CIFAR-10 multi-exit ResNet of a weight file (see the header comment): the 6-exit network
/// (a stage per block) or its fine-grained variant (a stage per convolution, 13 exits), the
/// same class and loader. Per-sample stages and heads allocate nothing; states come from
/// make_state() (per sample) or batched_cifar_net::make_state() (batches).
class cifar_net : public staged_model<detail::cifar_block, detail::cifar_head> {
public:
    static constexpr std::string_view format_name = "earlyexit-cifar10-multiexit";

    /// Loads and validates the weight file; throws earlyexit::error naming the problem.
    explicit cifar_net(const std::filesystem::path& weights)
        : staged_model(
              safetensors_file(weights), format_name,
              [open_block = std::string()](const safetensors_file& f, const nlohmann::json& st, const stage_site& site) mutable {
                  return load_block(f, st, site, open_block);
              },
              &load_head) {
        if (class_names().empty()) earlyexit::fail("safetensors {}: no metadata key 'class_names'", weights.string());
    }

    /// Head k's pooling grid (1: global average pooling).
    [[nodiscard]] std::size_t head_grid(std::size_t k) const noexcept { return head(k).pooled.grid(); }

    /// Writes a 32x32 RGB image (uint8, HWC, row-major) into the state as the normalized CHW input:
    /// (x / 255 - mean[c]) / std[c], as the training script does.
    void set_input(feature_state& s, std::span<const std::uint8_t> hwc) const noexcept {
        normalize(hwc, s.input());
        s.begin(input_shape());
    }

    /// The same into row r of a batch (r < s.capacity()); once its rows are written,
    /// s.begin(input_shape(), rows) starts the batch. Any batch state with input_row(r) (a CHW
    /// float map): batch_feature_state, dnnl_batch_state.
    template <class BatchState>
    void set_input_row(BatchState& s, std::size_t r, std::span<const std::uint8_t> hwc) const noexcept {
        normalize(hwc, s.input_row(r));
    }

private:
    /// hwc (32x32 RGB, uint8) as the normalized CHW input into x.
    void normalize(std::span<const std::uint8_t> hwc, float* x) const noexcept {
        const nn::shape3 input = input_shape();
        EARLYEXIT_ASSERT(hwc.size() == input.size());
        const std::size_t plane = input.positions();
        const auto& m = mean();
        const auto& sd = stddev();
        for (std::size_t p = 0; p < plane; ++p)
            for (std::size_t c = 0; c < 3; ++c)
                x[c * plane + p] = (static_cast<float>(hwc[p * 3 + c]) / 255.f - m[c]) / sd[c];
    }

    static nn::conv2d conv(const safetensors_file& f, const std::string& name, int cin, int cout, int k, int stride,
                           nn::activation act) {
        const auto w = f.matrix(name + ".weight", {std::size_t(cout), std::size_t(cin), std::size_t(k), std::size_t(k)},
                                cout, cin * k * k);
        const auto b = f.floats(name + ".bias", {std::size_t(cout)});
        return nn::conv2d(w, Eigen::Map<const Eigen::VectorXf>(b.data(), cout), cin, k, stride, k / 2, 1, act);
    }

    /// One stage of the architecture metadata: "conv_bn_relu" (the stem), "basic_block", or a
    /// block's halves "basic_block_conv1" and "basic_block_conv2" (their tensors under "block").
    /// open_block: the block whose first half was loaded and whose second half was not yet
    /// (empty: none), carried from one stage to the next.
    static stage_part<detail::cifar_block> load_block(const safetensors_file& f, const nlohmann::json& st,
                                                      const stage_site& site, std::string& open_block) {
        using part = detail::cifar_block::part;
        const std::string& name = site.name;
        const auto type = st.at("type").get<std::string>();
        const int cin = st.at("in_channels").get<int>(), cout = st.at("out_channels").get<int>();
        const int stride = st.at("stride").get<int>();
        detail::cifar_block blk;
        blk.in = site.in;
        blk.block_in = site.in;
        // The block's conv2 and shortcut, read from the tensors under `block`.
        const auto load_residual = [&](const std::string& block) {
            blk.conv2 = conv(f, block + ".conv2", cout, cout, 3, 1, nn::activation::none);
            if (st.at("shortcut").get<std::string>() != "identity")
                blk.shortcut = conv(f, block + ".shortcut", cin, cout, 1, stride, nn::activation::none);
        };
        if (type == "conv_bn_relu") {
            blk.conv1 = conv(f, name + ".conv", cin, cout, st.at("kernel").get<int>(), stride, nn::activation::relu);
        } else if (type == "basic_block") {
            blk.kind = part::block;
            blk.conv1 = conv(f, name + ".conv1", cin, cout, 3, stride, nn::activation::relu);
            load_residual(name);
        } else if (type == "basic_block_conv1") {
            blk.kind = part::block_conv1;
            open_block = st.at("block").get<std::string>();
            blk.conv1 = conv(f, open_block + ".conv1", cin, cout, 3, stride, nn::activation::relu);
        } else if (type == "basic_block_conv2") {
            blk.kind = part::block_conv2;
            const auto block = st.at("block").get<std::string>();
            if (block != open_block)
                earlyexit::fail("{}: stage '{}' ends block '{}', but {}; a 'basic_block_conv2' stage must follow the "
                                "'basic_block_conv1' stage of its block",
                                f.path(), name, block,
                                open_block.empty() ? std::string("no block is open") : fmt::format("block '{}' is open", open_block));
            open_block.clear();
            blk.block_in = site.held;
            load_residual(block);
        } else {
            earlyexit::fail("{}: stage '{}' has unknown type '{}'", f.path(), name, type);
        }
        // Shapes: conv1's output (the stage's output for the stem and a first half), then conv2's.
        blk.mid = blk.kind == part::block_conv2 ? site.in : blk.conv1.output_shape(site.in);
        blk.out = blk.conv2 ? blk.conv2->output_shape(blk.mid) : blk.mid;
        if (blk.shortcut && blk.shortcut->output_shape(blk.block_in) != blk.out)
            earlyexit::fail("{}: stage '{}': shortcut shape differs from the block output", f.path(), name);
        if (!blk.shortcut && blk.conv2 && blk.out != blk.block_in)
            earlyexit::fail("{}: stage '{}': identity shortcut but the shape changes", f.path(), name);
        const bool has_conv1 = blk.kind != part::block_conv2;
        const std::size_t ws = std::max({has_conv1 ? blk.conv1.workspace_size(site.in) : 0,
                                         blk.conv2 ? blk.conv2->workspace_size(blk.mid) : 0,
                                         blk.shortcut ? blk.shortcut->workspace_size(blk.block_in) : 0});
        const double macs = (has_conv1 ? blk.conv1.macs(site.in) : 0.0) + (blk.conv2 ? blk.conv2->macs(blk.mid) : 0.0) +
                            (blk.shortcut ? blk.shortcut->macs(blk.block_in) : 0.0);
        // A whole block writes conv1's output into a scratch buffer; a shortcut writes its own.
        const std::size_t scratch = std::max(blk.kind == part::block ? blk.mid.size() : 0,
                                             blk.shortcut ? blk.out.size() : 0);
        const nn::shape3 out = blk.out;
        const bool holds = blk.kind == part::block_conv1, releases = blk.kind == part::block_conv2;
        return {std::move(blk), out, macs, scratch, ws, holds, releases};
    }


    /// One head of the architecture metadata: "gap_linear" (global average pool + linear) or
    /// "pool_linear" (grid pooling, "avg" or "mixed", + linear), with its tensors.
    static detail::cifar_head load_head(const safetensors_file& f, const nlohmann::json& h, const head_site& site) {
        const std::string& name = site.name;
        const auto type = h.at("type").get<std::string>();
        const nn::shape3 in = site.in;
        std::size_t grid = 1;
        std::optional<float> max_weight;
        if (type == "pool_linear") {
            grid = h.at("grid").get<std::size_t>();
            const auto pool = h.at("pool").get<std::string>();
            if (pool == "mixed")
                max_weight = f.floats(name + ".max_weight", {1})[0];
            else if (pool != "avg")
                earlyexit::fail("{}: head '{}' has unknown pooling '{}'", f.path(), name, pool);
        } else if (type != "gap_linear") {
            earlyexit::fail("{}: head '{}' has unknown type '{}'", f.path(), name, type);
        }
        const std::size_t classes = site.classes;
        const std::size_t features = static_cast<std::size_t>(in.c) * grid * grid;
        auto w = f.matrix(name + ".weight", {classes, features}, static_cast<Eigen::Index>(classes),
                          static_cast<Eigen::Index>(features));
        const auto b = f.floats(name + ".bias", {classes});
        try {
            return {grid_pooled_head<float>(
                linear_head<float>(std::move(w), Eigen::Map<const Eigen::VectorXf>(b.data(), static_cast<Eigen::Index>(classes))),
                static_cast<std::size_t>(in.h), static_cast<std::size_t>(in.w), grid, max_weight)};
        } catch (const earlyexit::error& e) {  // the head's own checks (grid vs map size, max_weight)
            earlyexit::fail("{}: head '{}': {}", f.path(), name, e.what());
        }
    }
};

/// The batched network of a cifar_net: batched_model(model).
using batched_cifar_net = batched_model<detail::cifar_block, detail::cifar_head>;
static_assert(earlyexit::batched_network<batched_cifar_net>);

}  // namespace earlyexit::demo
