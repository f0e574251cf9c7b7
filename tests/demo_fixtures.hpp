#pragma once
// What the tests of the demo networks' backends share (test_common_batched_model.cpp,
// test_common_dnnl_model.cpp, test_common_cifar_fine_net.cpp): deterministic inputs, the shipped
// models, a way to write an input into a per-sample or batch state, every head of the Eigen
// per-sample network (the reference), and the relative error the parity checks compare.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include <earlyexit/context.hpp>

#include "common/cifar_net.hpp"
#include "common/feature_state.hpp"
#include "common/image.hpp"
#include "common/mobilenet_v2.hpp"

namespace earlyexit_test::demo_fixtures {

using earlyexit::demo::cifar_net;
using earlyexit::demo::feature_state;
using earlyexit::demo::image_u8;
using earlyexit::demo::mobilenet_v2;

inline const std::filesystem::path source_root = EARLYEXIT_SOURCE_DIR;

/// A deterministic, non-constant 8-bit RGB image.
inline image_u8 pattern(int width, int height, int seed) {
    image_u8 im(width, height);
    for (std::size_t i = 0; i < im.pixels.size(); ++i)
        im.pixels[i] = static_cast<std::uint8_t>((i * 37 + static_cast<std::size_t>(seed) * 101 + i / 97 + i * i % 11) % 256);
    return im;
}

/// The shipped networks, loaded once.
inline const cifar_net& cifar() {
    static const cifar_net m(source_root / "models" / "cifar10_multiexit.safetensors");
    return m;
}
/// The fine-grained variant: its half-block stages hold a map across stages.
inline const cifar_net& cifar_fine() {
    static const cifar_net m(source_root / "models" / "cifar10_fine_exits.safetensors");
    return m;
}
inline const mobilenet_v2& mobilenet() {
    static const mobilenet_v2 m(source_root / "models" / "mobilenet_v2_imagenet.safetensors");
    return m;
}
/// The 10-class network: exits whose fc gives the logits (no shared classifier).
inline const mobilenet_v2& imagenette() {
    static const mobilenet_v2 m(source_root / "models" / "mobilenet_v2_imagenette.safetensors");
    return m;
}

/// What a test needs of a model: its inputs and how to write one into a per-sample state or a
/// row of any batch state (batch_feature_state, dnnl_batch_state).
struct cifar_case {
    const cifar_net& model;
    image_u8 input(int i) const { return pattern(32, 32, i); }
    void set(feature_state& s, const image_u8& im) const { model.set_input(s, im.pixels); }
    template <class BatchState>
    void set_row(BatchState& s, std::size_t r, const image_u8& im) const {
        model.set_input_row(s, r, im.pixels);
    }
};
struct mobilenet_case {
    const mobilenet_v2& model;
    image_u8 input(int i) const { return pattern(224, 224, i); }
    void set(feature_state& s, const image_u8& im) const { model.set_cropped_input(s, im); }
    template <class BatchState>
    void set_row(BatchState& s, std::size_t r, const image_u8& im) const {
        model.set_cropped_input_row(s, r, im);
    }
};

/// logits[k] of every head of `model`'s Eigen per-sample network, its input written by set(state).
template <class Model, class Set>
std::vector<std::vector<float>> every_head(const Model& model, Set set) {
    const auto net = model.network();
    auto state = model.make_state();
    std::vector<float> ws(net.workspace_size());
    std::vector<std::vector<float>> out;
    set(state);
    for (std::size_t p = 0, k = 0; p < net.num_stages(); ++p) {
        net.run_stage(p, state);
        if (k < net.num_heads() && net.head_position(k) == p) {
            out.emplace_back(net.num_classes());
            net.run_head(k++, state, out.back(), ws);
        }
    }
    return out;
}

/// logits[k] of every head of the Eigen per-sample network on one input.
template <class Case>
std::vector<std::vector<float>> per_sample(const Case& c, const image_u8& im) {
    return every_head(c.model, [&](auto& state) { c.set(state, im); });
}

/// Largest |got - want| over the largest |want| (at least 1).
inline double relative_error(std::span<const float> got, std::span<const float> want) {
    double diff = 0, scale = 1;
    for (std::size_t i = 0; i < want.size(); ++i) {
        diff = std::max(diff, static_cast<double>(std::abs(got[i] - want[i])));
        scale = std::max(scale, static_cast<double>(std::abs(want[i])));
    }
    return diff / scale;
}

/// Runs the batched network `net` on `rows` inputs (input(r) in row r of `state`, a state of
/// `net`) through every stage and head; after head k, keep(k, rows) lists the rows to keep
/// (compaction). check(k, sample, logits) sees every row at every head.
template <class Case, class Net, class State, class Keep, class Check>
void run_rows(const Case& c, const Net& net, State& state, std::size_t rows, Keep keep, Check check) {
    const earlyexit::network_info info = net.info();
    std::vector<std::size_t> sample(rows), list(rows);
    for (std::size_t r = 0; r < rows; ++r) {
        c.set_row(state, r, c.input(static_cast<int>(r)));
        sample[r] = r;
    }
    state.begin(c.model.input_shape(), rows);
    std::vector<float> logits(state.capacity() * info.classes), ws(net.batch_workspace_size());
    for (std::size_t p = 0, k = 0; p < info.stages && rows > 0; ++p) {
        net.run_batch_stage(p, state, rows);
        if (k == info.heads || info.head_positions[k] != p) continue;
        for (std::size_t r = 0; r < rows; ++r) list[r] = r;
        net.run_batch_head(k, state, std::span<const std::size_t>(list.data(), rows),
                           std::span<float>(logits.data(), rows * info.classes), ws);
        for (std::size_t r = 0; r < rows; ++r)
            check(k, sample[r], std::span<const float>(logits.data() + r * info.classes, info.classes));
        const std::vector<std::size_t> kept = keep(k, rows);
        if (kept.size() < rows) {
            net.compact(state, kept);
            for (std::size_t j = 0; j < kept.size(); ++j) sample[j] = sample[kept[j]];
            rows = kept.size();
        }
        ++k;
    }
}

/// A keep() for run_rows that drops nothing.
inline std::vector<std::size_t> keep_all(std::size_t, std::size_t rows) {
    std::vector<std::size_t> all(rows);
    for (std::size_t r = 0; r < rows; ++r) all[r] = r;
    return all;
}

}  // namespace earlyexit_test::demo_fixtures
