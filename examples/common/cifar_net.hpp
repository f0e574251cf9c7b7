#pragma once
// The CIFAR-10 multi-exit ResNet of examples/train/train_cifar10.py, run with Eigen.
//
// The weight file (safetensors, written by that script) carries the architecture in its
// metadata ("architecture": JSON with the stages and the heads) and the tensors with batch norm
// already folded into the convolutions:
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
// Every stage and head is one callable of an earlyexit::dynamic_network over feature_state.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <earlyexit/earlyexit.hpp>
#include <nlohmann/json.hpp>

#include "feature_state.hpp"
#include "nn.hpp"
#include "safetensors.hpp"

namespace earlyexit::demo {

class cifar_net {
public:
    static constexpr std::string_view format_name = "earlyexit-cifar10-multiexit";

    /// Loads and validates the weight file; throws earlyexit::error naming the problem.
    explicit cifar_net(const std::filesystem::path& weights) {
        const safetensors_file f(weights);
        f.require_format(format_name);
        nlohmann::json arch;
        try {
            arch = f.metadata_json("architecture");
            const auto in = arch.at("input").get<std::vector<int>>();
            if (in.size() != 3) earlyexit::fail("{}: input shape has {} dimensions, expected 3", f.path(), in.size());
            input_ = {in[0], in[1], in[2]};
            classes_ = arch.at("classes").get<std::size_t>();
            mean_ = f.metadata_json("mean").get<std::array<float, 3>>();
            std_ = f.metadata_json("std").get<std::array<float, 3>>();
            class_names_ = f.metadata_json("class_names").get<std::vector<std::string>>();
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("{}: bad metadata: {}", f.path(), e.what());
        }
        if (input_.c != 3) earlyexit::fail("{}: input has {} channels, expected 3 (RGB)", f.path(), input_.c);
        if (class_names_.size() != classes_)
            earlyexit::fail("{}: {} class names for {} classes", f.path(), class_names_.size(), classes_);
        for (const float s : std_)
            if (!(s > 0.f)) earlyexit::fail("{}: std {} must be positive", f.path(), s);

        nn::shape3 shape = input_;
        std::size_t max_size = input_.size(), ws = 0;
        const auto conv = [&](const std::string& name, int cin, int cout, int k, int stride, nn::activation act) {
            const auto w = f.matrix(name + ".weight", {std::size_t(cout), std::size_t(cin), std::size_t(k), std::size_t(k)},
                                    cout, cin * k * k);
            const auto b = f.floats(name + ".bias", {std::size_t(cout)});
            return nn::conv2d(w, Eigen::Map<const Eigen::VectorXf>(b.data(), cout), cin, k, stride, k / 2, 1, act);
        };
        try {
            for (const auto& st : arch.at("stages")) {
                auto blk = std::make_shared<block>();
                const auto name = st.at("name").get<std::string>();
                const auto type = st.at("type").get<std::string>();
                const int cin = st.at("in_channels").get<int>(), cout = st.at("out_channels").get<int>();
                const int stride = st.at("stride").get<int>();
                blk->in = shape;
                if (type == "conv_bn_relu") {
                    blk->conv1 = conv(name + ".conv", cin, cout, st.at("kernel").get<int>(), stride, nn::activation::relu);
                } else if (type == "basic_block") {
                    blk->conv1 = conv(name + ".conv1", cin, cout, 3, stride, nn::activation::relu);
                    blk->conv2 = conv(name + ".conv2", cout, cout, 3, 1, nn::activation::none);
                    if (st.at("shortcut").get<std::string>() != "identity")
                        blk->shortcut = conv(name + ".shortcut", cin, cout, 1, stride, nn::activation::none);
                } else {
                    earlyexit::fail("{}: stage '{}' has unknown type '{}'", f.path(), name, type);
                }
                blk->mid = blk->conv1.output_shape(shape);
                blk->out = blk->conv2 ? blk->conv2->output_shape(blk->mid) : blk->mid;
                ws = std::max({ws, blk->conv1.workspace_size(shape), blk->conv2 ? blk->conv2->workspace_size(blk->mid) : 0,
                               blk->shortcut ? blk->shortcut->workspace_size(shape) : 0});
                if (blk->shortcut && blk->shortcut->output_shape(shape) != blk->out)
                    earlyexit::fail("{}: stage '{}': shortcut shape differs from the block output", f.path(), name);
                if (!blk->shortcut && blk->conv2 && blk->out != shape)
                    earlyexit::fail("{}: stage '{}': identity shortcut but the shape changes", f.path(), name);
                blk->macs = blk->conv1.macs(shape) + (blk->conv2 ? blk->conv2->macs(blk->mid) : 0.0) +
                            (blk->shortcut ? blk->shortcut->macs(shape) : 0.0);
                if (const double declared = st.at("macs").get<double>(); declared != blk->macs)
                    earlyexit::fail("{}: stage '{}' declares {} MACs, its layers have {}", f.path(), name, declared, blk->macs);
                max_size = std::max({max_size, blk->mid.size(), blk->out.size()});
                shape = blk->out;
                stages_.push_back(std::move(blk));
            }
            for (const auto& h : arch.at("heads")) heads_.push_back(load_head(f, h));
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("{}: bad architecture metadata: {}", f.path(), e.what());
        }
        if (heads_.empty() || heads_.back().after + 1 != stages_.size())
            earlyexit::fail("{}: the last stage must carry the final exit head", f.path());
        max_size_ = max_size;
        workspace_ = ws;
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return classes_; }
    [[nodiscard]] std::size_t num_stages() const noexcept { return stages_.size(); }
    [[nodiscard]] std::size_t num_heads() const noexcept { return heads_.size(); }
    [[nodiscard]] std::size_t head_after(std::size_t k) const noexcept { return heads_[k].after; }
    /// Head k's pooling grid (1: global average pooling).
    [[nodiscard]] std::size_t head_grid(std::size_t k) const noexcept { return heads_[k].head.grid(); }
    [[nodiscard]] const std::vector<std::string>& class_names() const noexcept { return class_names_; }
    [[nodiscard]] nn::shape3 input_shape() const noexcept { return input_; }

    /// A state for this network (allocates; make one and reuse it).
    [[nodiscard]] feature_state make_state() const { return feature_state(max_size_, workspace_); }

    /// Writes a 32x32 RGB image (uint8, HWC, row-major) into the state as the normalized CHW input:
    /// (x / 255 - mean[c]) / std[c], as the training script does.
    void set_input(feature_state& s, std::span<const std::uint8_t> hwc) const noexcept {
        EARLYEXIT_ASSERT(hwc.size() == input_.size());
        float* x = s.input();
        const std::size_t plane = input_.positions();
        for (std::size_t p = 0; p < plane; ++p)
            for (std::size_t c = 0; c < 3; ++c)
                x[c * plane + p] = (static_cast<float>(hwc[p * 3 + c]) / 255.f - mean_[c]) / std_[c];
        s.begin(input_);
    }

    /// The multi-exit network: one stage per block, a pooled linear head where the file says.
    /// The network shares the layers (it stays valid after this object is gone).
    [[nodiscard]] dynamic_network<feature_state> network() const {
        dynamic_network_builder<feature_state> b;
        std::size_t k = 0;
        for (std::size_t i = 0; i < stages_.size(); ++i) {
            std::shared_ptr<const block> blk = stages_[i];
            b.stage([blk](feature_state& s) { (*blk)(s); }, {.macs = blk->macs, .output_size = blk->out.size()});
            for (; k < heads_.size() && heads_[k].after == i; ++k)
                b.exit(project(heads_[k].head, [](const feature_state& s) { return s.map(); }));
        }
        return b.build();
    }

private:
    struct block {
        nn::conv2d conv1;
        std::optional<nn::conv2d> conv2, shortcut;
        nn::shape3 in, mid, out;
        double macs = 0;

        void operator()(feature_state& s) const noexcept {
            const float* x = s.data();
            float* y = s.next();
            if (!conv2) {
                conv1(x, in, y, s.ws);
            } else {
                float* t = s.scratch(0);
                conv1(x, in, t, s.ws);
                (*conv2)(t, mid, y, s.ws);
                const float* sc = x;
                if (shortcut) {
                    (*shortcut)(x, in, s.scratch(1), s.ws);
                    sc = s.scratch(1);
                }
                nn::add_act(y, sc, y, out.size(), nn::activation::relu);
            }
            s.advance(out);
        }
    };
    struct head_entry {
        std::size_t after;
        grid_pooled_head<float> head;
    };

    /// One head of the architecture metadata: "gap_linear" (global average pool + linear) or
    /// "pool_linear" (grid pooling, "avg" or "mixed", + linear), with its tensors.
    [[nodiscard]] head_entry load_head(const safetensors_file& f, const nlohmann::json& h) const {
        const auto name = h.at("name").get<std::string>();
        const auto type = h.at("type").get<std::string>();
        const auto after = h.at("after_stage").get<std::size_t>();
        if (after >= stages_.size())
            earlyexit::fail("{}: head '{}' after stage {}, but there are {} stages", f.path(), name, after, stages_.size());
        const nn::shape3 in = stages_[after]->out;
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
        const std::size_t features = static_cast<std::size_t>(in.c) * grid * grid;
        auto w = f.matrix(name + ".weight", {classes_, features}, static_cast<Eigen::Index>(classes_),
                          static_cast<Eigen::Index>(features));
        const auto b = f.floats(name + ".bias", {classes_});
        try {
            return {after, grid_pooled_head<float>(linear_head<float>(std::move(w), Eigen::Map<const Eigen::VectorXf>(
                                                                                         b.data(), static_cast<Eigen::Index>(classes_))),
                                                   static_cast<std::size_t>(in.h), static_cast<std::size_t>(in.w), grid, max_weight)};
        } catch (const earlyexit::error& e) {  // the head's own checks (grid vs map size, max_weight)
            earlyexit::fail("{}: head '{}': {}", f.path(), name, e.what());
        }
    }

    nn::shape3 input_{};
    std::size_t classes_ = 0, max_size_ = 0, workspace_ = 0;
    std::array<float, 3> mean_{}, std_{};
    std::vector<std::string> class_names_;
    std::vector<std::shared_ptr<const block>> stages_;
    std::vector<head_entry> heads_;
};

}  // namespace earlyexit::demo
