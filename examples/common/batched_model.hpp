#pragma once
// batched_model: a staged_model (cifar_net, mobilenet_v2) as an earlyexit::batched_network, so
// a batch_runner runs many samples through it at once, each still exiting on its own.
//
// A stage runs on every row of a batch_feature_state at once (Stage::run_batch: GEMMs over
// many rows, nn.hpp's batch layout), which pays where a sample's products are small (maps of
// 8x8 or 7x7, a head's layers on one pooled vector); where a sample's map is already wide
// (32x32: 1024 columns) a GEMM per sample is as fast. A head runs on the listed rows
// (Head::run_batch). The costs and
// head positions (info()) are those of the per-sample network, model.network(), and every row's
// logits equal the per-sample network's up to float rounding (the GEMMs sum in another order).
//
//   const cifar_net model(weights);
//   const batched_model net(model, 64);             // a batched_cifar_net for up to 64 rows
//   auto state = net.make_state();                  // 64 rows, allocated once
//   for (std::size_t r = 0; r < n; ++r) model.set_input_row(state, r, images[r]);
//   state.begin(model.input_shape(), n);
//   earlyexit::batch_runner runner(net, policy, 64);
//   runner.run(state, samples);                     // samples[r] is row r

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <fmt/core.h>

#include <earlyexit/batch_network.hpp>
#include <earlyexit/earlyexit.hpp>

#include "batch_feature_state.hpp"
#include "feature_state.hpp"
#include "nn.hpp"
#include "staged_model.hpp"

namespace earlyexit::demo {

/// A stage that also runs on rows 0..rows-1 of a batch, in place (advancing its current map).
template <class Stage>
concept batched_stage = requires(const Stage& st, batch_feature_state& s, std::size_t rows) {
    { st.run_batch(s, rows) } noexcept;
    { st.batch_workspace_size(rows) } -> std::convertible_to<std::size_t>;
};

/// A head that also runs on the listed rows of a batch, with batch_workspace_size(capacity)
/// scratch floats: logits row j (of num_classes()) is row list[j]'s.
template <class Head>
concept batched_head = requires(const Head& h, const batch_feature_state& s, std::span<const std::size_t> list,
                                std::span<float> out, std::size_t capacity) {
    { h.run_batch(s, list, out, out) } noexcept;
    { h.batch_workspace_size(capacity) } -> std::convertible_to<std::size_t>;
};

/// The batched network of a staged_model: earlyexit::batched_network over batch_feature_state
/// (see the header comment). Shares the model's layers, like model.network(), so it stays valid
/// after the model is gone. Holds the per-sample network (network()) for info(). The calls
/// allocate nothing and never throw; make_state() and check() size and check a state first.
template <class Stage, class Head>
    requires batched_stage<Stage> && batched_head<Head>
class batched_model {
public:
    using scalar_type = float;
    using batch_state_type = batch_feature_state;

    /// The batched form of `model`, for batches of up to `capacity` rows (the heads' workspace
    /// is sized for it; a state may hold fewer). Throws earlyexit::error when capacity is 0.
    batched_model(const staged_model<Stage, Head>& model, std::size_t capacity)
        : net_(model.network()),
          capacity_(capacity),
          max_size_(model.max_map_size()),
          input_(model.input_shape()),
          holds_(model.holds_maps()) {
        if (capacity_ == 0) fail("batched_model: capacity 0; a batch holds at least one row");
        for (std::size_t i = 0; i < model.num_stages(); ++i) stages_.push_back(model.stage(i).stage);
        for (std::size_t k = 0; k < model.num_heads(); ++k) {
            heads_.push_back(model.head_at(k).head);
            head_ws_ = std::max(head_ws_, static_cast<std::size_t>(heads_.back()->batch_workspace_size(capacity_)));
        }
    }

    /// Shape and costs, those of the per-sample network() (views into it).
    [[nodiscard]] network_info info() const noexcept { return net_.info(); }
    /// The per-sample network of the same model (for runs one sample at a time, and references).
    [[nodiscard]] const dynamic_network<feature_state>& network() const noexcept { return net_; }
    /// Rows the heads' workspace is sized for (a state and a batch may be smaller).
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    /// Head scratch for a batch of capacity() rows, in floats.
    [[nodiscard]] std::size_t batch_workspace_size() const noexcept { return head_ws_; }
    /// What runs the layers, for reports: "Eigen 3.4.0".
    [[nodiscard]] static std::string backend() {
        return fmt::format("Eigen {}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
    }
    /// The model's input shape (what state.begin() takes).
    [[nodiscard]] nn::shape3 input_shape() const noexcept { return input_; }

    /// A batch state of capacity() rows for this model (allocates; make one and reuse it).
    [[nodiscard]] batch_feature_state make_state() const { return make_state(capacity_); }
    /// A batch state of `rows` rows. Throws earlyexit::error naming the value for 0 rows or
    /// more than capacity().
    [[nodiscard]] batch_feature_state make_state(std::size_t rows) const {
        if (rows > capacity_)
            fail("batched_model: a state of {} rows exceeds the capacity {} the heads' workspace is sized for", rows,
                 capacity_);
        return batch_feature_state(rows, max_size_, state_workspace_size(rows), holds_);
    }
    /// Workspace floats a state of `rows` rows needs (batch_feature_state::ws: the stages'
    /// im2col columns).
    [[nodiscard]] std::size_t state_workspace_size(std::size_t rows) const {
        std::size_t ws = 0;
        for (const auto& st : stages_) ws = std::max(ws, static_cast<std::size_t>(st->batch_workspace_size(rows)));
        return ws;
    }

    /// Throws earlyexit::error naming the value unless `s` fits this model: rows of its largest
    /// map, the im2col workspace of every row, at most capacity() rows, the buffer for a held map
    /// when a stage holds one (a state made by another model may be too small).
    void check(const batch_feature_state& s) const {
        if (s.capacity() > capacity_)
            fail("batched_model: the state holds {} rows, more than the capacity {} the heads' workspace is sized for",
                 s.capacity(), capacity_);
        if (s.max_size() < max_size_)
            fail("batched_model: the state's rows hold maps of {} floats, this model's need {}", s.max_size(), max_size_);
        if (const std::size_t need = state_workspace_size(s.capacity()); s.ws.size() < need)
            fail("batched_model: the state's workspace has {} floats, this model needs {} for {} rows", s.ws.size(), need,
                 s.capacity());
        if (holds_ && !s.can_hold())
            fail("batched_model: the state has {} floats to hold a map across stages, this model's half-block stages "
                 "need {}",
                 s.held.size(), s.capacity() * s.max_size());
    }

    /// Stage p on rows 0..rows-1 (rows <= s.capacity()).
    void run_batch_stage(std::size_t p, batch_feature_state& s, std::size_t rows) const noexcept {
        stages_[p]->run_batch(s, rows);
    }
    /// Head k on the listed rows (strictly increasing, each below the rows in use): logits is
    /// list.size() x classes, row-major; ws has batch_workspace_size() floats.
    void run_batch_head(std::size_t k, const batch_feature_state& s, std::span<const std::size_t> list,
                        std::span<float> logits, std::span<float> ws) const noexcept {
        heads_[k]->run_batch(s, list, logits, ws);
    }
    /// Keeps the listed rows (strictly increasing): row keep[j] becomes row j.
    void compact(batch_feature_state& s, std::span<const std::size_t> keep) const noexcept { s.compact(keep); }
    /// src's rows 0..src_rows-1 after dst's rows 0..dst_rows-1, both states at the same stage
    /// (batch_feature_state::append: copies the maps' rows), so a stream_runner can admit new
    /// samples into a running batch.
    void append(batch_feature_state& dst, std::size_t dst_rows, batch_feature_state& src,
                std::size_t src_rows) const noexcept {
        dst.append(dst_rows, src, src_rows);
    }

private:
    dynamic_network<feature_state> net_;
    std::vector<std::shared_ptr<const Stage>> stages_;
    std::vector<std::shared_ptr<const Head>> heads_;
    std::size_t capacity_, max_size_, head_ws_ = 0;
    nn::shape3 input_;
    bool holds_;
};

}  // namespace earlyexit::demo
