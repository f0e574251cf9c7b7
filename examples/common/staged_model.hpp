#pragma once
// staged_model: the checked loader the demo networks share (cifar_net, mobilenet_v2).
//
// A staged weight file (safetensors) carries, besides its tensors, this metadata:
//
//   "format"        the model's format name (checked first)
//   "architecture"  JSON {"input": [3, H, W], "classes": N,
//                         "stages": [{"name", "macs", ...model-specific}, ...],
//                         "heads":  [{"name", "after_stage", ...model-specific}, ...]}
//   "mean", "std"   JSON [3 floats]: the input normalization, per RGB channel (std > 0)
//   "class_names"   JSON [N strings], optional
//
// The model supplies two loaders, one for a stage entry and one for a head entry; staged_model
// runs them in file order and checks what every model must hold: each stage's declared "macs"
// equal the MACs its loader computed from its layers; heads are listed in the order of the
// stages they follow, at most one per stage, and the last one follows the last stage (the
// final exit); a stage that holds its input for a later one (a residual block cut in two, see
// feature_state.hpp) is followed by the stage that reads it before any other holds one, and
// that map is read by the end. A violation throws earlyexit::error naming the file, the stage
// or head and the value. A new model is one header: its stage and head types, the two loaders, and a class
// deriving from staged_model<Stage, Head> (see cifar_net.hpp).

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <earlyexit/earlyexit.hpp>
#include <nlohmann/json.hpp>

#include "feature_state.hpp"
#include "nn.hpp"
#include "safetensors.hpp"

namespace earlyexit::demo {

/// A stage entry of the file as staged_model hands it to the model's stage loader.
struct stage_site {
    std::string name;   ///< the entry's "name" (the prefix of its tensors)
    std::size_t index;  ///< its position: stage 0 runs first
    nn::shape3 in;      ///< the map it reads: the previous stage's output, or the input
    std::string held_by;  ///< the stage whose input the state holds for a later stage (empty: none)
    nn::shape3 held{};    ///< that map (held_by's input)
};

/// What a stage loader returns: the stage and the facts the loader checks and the state needs.
template <class Stage>
struct stage_part {
    Stage stage;
    nn::shape3 out{};                  ///< the map it leaves as the state's current map
    double macs = 0;                   ///< multiply-accumulates of its layers (checked against the file)
    std::size_t buffer_floats = 0;     ///< largest map it writes into a state buffer besides `out`
    std::size_t workspace_floats = 0;  ///< im2col workspace it needs (feature_state::ws)
    bool holds_input = false;          ///< it keeps its input for a later stage (feature_state::advance_holding)
    bool releases_held = false;        ///< it reads and releases the map an earlier stage held
};

/// A head entry of the file as staged_model hands it to the model's head loader.
struct head_site {
    std::string name;     ///< the entry's "name"
    std::size_t after;    ///< the stage it follows ("after_stage", checked < the stage count)
    nn::shape3 in;        ///< that stage's output map, which the head reads
    std::size_t classes;  ///< logits it must produce ("classes" of the architecture)
    nn::shape3 last;      ///< the last stage's output map (what a shared final classifier reads)
};

namespace detail {

/// A head kept by shared_ptr in a network: the network shares the model's weights instead of
/// copying them, and the head's declared facts (classes, MACs, workspace, input size) pass through.
template <class Head>
class shared_head {
public:
    explicit shared_head(std::shared_ptr<const Head> h) noexcept : h_(std::move(h)) {}

    [[nodiscard]] std::size_t num_classes() const noexcept { return static_cast<std::size_t>(h_->num_classes()); }
    [[nodiscard]] double macs() const noexcept { return head_macs(*h_); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return head_workspace_size(*h_); }
    [[nodiscard]] std::size_t input_size() const noexcept
        requires requires(const Head& h) { h.input_size(); }
    {
        return static_cast<std::size_t>(h_->input_size());
    }
    void operator()(const feature_state& s, std::span<float> logits, std::span<float> ws) const noexcept {
        (*h_)(s, logits, ws);
    }

private:
    std::shared_ptr<const Head> h_;
};

}  // namespace detail

/// A multi-exit CNN loaded from a staged weight file (see the header comment) and checked.
/// Stage: run in place on a feature_state (`stage(state)`, noexcept); Head: an exit head over
/// feature_state called as `head(state, logits, workspace)`, with num_classes() and, optionally,
/// macs(), workspace_size() and input_size(). Stages and heads are kept as shared_ptr<const>,
/// so network() and copies of the model share the weights. Loading allocates; nothing after it does.
template <class Stage, class Head>
    requires std::invocable<const Stage&, feature_state&> &&
             exit_head<Head, feature_state, float>
class staged_model {
public:
    struct stage_entry {
        std::string name;
        std::shared_ptr<const Stage> stage;
        double macs = 0;  ///< declared by the file, equal to its layers' MACs
        nn::shape3 in{}, out{};
    };
    struct head_entry {
        std::string name;
        std::size_t after = 0;  ///< the stage it follows
        std::shared_ptr<const Head> head;
    };

    /// Checks `f`'s format and metadata, then loads every stage with
    /// load_stage(f, stage_json, stage_site) -> stage_part<Stage> and every head with
    /// load_head(f, head_json, head_site) -> Head, in file order, checking each against the
    /// rules of the header comment. Throws earlyexit::error naming the file and the value.
    template <class LoadStage, class LoadHead>
    staged_model(const safetensors_file& f, std::string_view format, LoadStage&& load_stage, LoadHead&& load_head) {
        f.require_format(format);
        nlohmann::json arch;
        try {
            arch = f.metadata_json("architecture");
            const auto in = arch.at("input").get<std::vector<int>>();
            if (in.size() != 3) earlyexit::fail("{}: input shape has {} dimensions, expected 3", f.path(), in.size());
            input_ = {in[0], in[1], in[2]};
            classes_ = arch.at("classes").get<std::size_t>();
            mean_ = f.metadata_json("mean").get<std::array<float, 3>>();
            std_ = f.metadata_json("std").get<std::array<float, 3>>();
            if (f.has_metadata("class_names"))
                class_names_ = f.metadata_json("class_names").get<std::vector<std::string>>();
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("{}: bad metadata: {}", f.path(), e.what());
        }
        if (input_.c != 3) earlyexit::fail("{}: input has {} channels, expected 3 (RGB)", f.path(), input_.c);
        if (input_.h <= 0 || input_.w <= 0)
            earlyexit::fail("{}: input is {}x{}, must not be empty", f.path(), input_.h, input_.w);
        if (classes_ == 0) earlyexit::fail("{}: classes is 0", f.path());
        if (!class_names_.empty() && class_names_.size() != classes_)
            earlyexit::fail("{}: {} class names for {} classes", f.path(), class_names_.size(), classes_);
        for (const float s : std_)
            if (!(s > 0.f)) earlyexit::fail("{}: std {} must be positive", f.path(), s);
        try {
            load_stages(f, arch.at("stages"), load_stage);
            load_heads(f, arch.at("heads"), load_head);
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("{}: bad architecture metadata: {}", f.path(), e.what());
        }
    }

    [[nodiscard]] std::size_t num_classes() const noexcept { return classes_; }
    [[nodiscard]] std::size_t num_stages() const noexcept { return stages_.size(); }
    [[nodiscard]] std::size_t num_heads() const noexcept { return heads_.size(); }
    /// The stage head k follows. Precondition: k < num_heads().
    [[nodiscard]] std::size_t head_after(std::size_t k) const noexcept { return heads_[k].after; }
    [[nodiscard]] const stage_entry& stage(std::size_t i) const noexcept { return stages_[i]; }
    [[nodiscard]] const head_entry& head_at(std::size_t k) const noexcept { return heads_[k]; }
    [[nodiscard]] const Head& head(std::size_t k) const noexcept { return *heads_[k].head; }
    [[nodiscard]] nn::shape3 input_shape() const noexcept { return input_; }
    /// The input normalization, (x / 255 - mean[c]) / std[c] per RGB channel.
    [[nodiscard]] const std::array<float, 3>& mean() const noexcept { return mean_; }
    [[nodiscard]] const std::array<float, 3>& stddev() const noexcept { return std_; }
    /// The file's class names (empty when it has none).
    [[nodiscard]] const std::vector<std::string>& class_names() const noexcept { return class_names_; }

    /// A state for this network (allocates; make one and reuse it).
    [[nodiscard]] feature_state make_state() const { return feature_state(max_size_, workspace_, holds_); }
    /// Whether a stage holds its input for a later one (the state then needs can_hold()).
    [[nodiscard]] bool holds_maps() const noexcept { return holds_; }
    /// Floats of the largest map a stage reads, leaves or writes (a feature_state buffer's size).
    [[nodiscard]] std::size_t max_map_size() const noexcept { return max_size_; }
    /// Workspace floats of the hungriest stage (feature_state::ws; im2col columns).
    [[nodiscard]] std::size_t stage_workspace_size() const noexcept { return workspace_; }

    /// The multi-exit network: one stage per stage entry, each head after the stage it follows.
    /// The network shares the layers (it stays valid after this object is gone).
    [[nodiscard]] dynamic_network<feature_state> network() const {
        dynamic_network_builder<feature_state> b;
        std::size_t k = 0;
        for (std::size_t i = 0; i < stages_.size(); ++i) {
            std::shared_ptr<const Stage> st = stages_[i].stage;
            b.stage([st](feature_state& s) { (*st)(s); }, {.macs = stages_[i].macs, .output_size = stages_[i].out.size()});
            if (k < heads_.size() && heads_[k].after == i) b.exit(detail::shared_head<Head>(heads_[k++].head));
        }
        return b.build();
    }

private:
    template <class LoadStage>
    void load_stages(const safetensors_file& f, const nlohmann::json& stages, LoadStage& load_stage) {
        nn::shape3 shape = input_;
        std::size_t max_size = input_.size(), ws = 0;
        std::string held_by;  // the stage whose input is held now (empty: none)
        nn::shape3 held{};
        for (const auto& js : stages) {
            stage_site site{js.at("name").get<std::string>(), stages_.size(), shape, held_by, held};
            const double declared = js.at("macs").get<double>();
            stage_part<Stage> part = std::invoke(load_stage, f, js, std::as_const(site));
            if (declared != part.macs)
                earlyexit::fail("{}: stage '{}' declares {} MACs, its layers have {}", f.path(), site.name, declared, part.macs);
            if (part.releases_held) {
                if (held_by.empty())
                    earlyexit::fail("{}: stage '{}' reads a held map, but no stage before it holds one", f.path(), site.name);
                held_by.clear();
            }
            if (part.holds_input) {
                if (!held_by.empty())
                    earlyexit::fail("{}: stage '{}' holds its input while the input of stage '{}' is still held: one at a time",
                                    f.path(), site.name, held_by);
                held_by = site.name;
                held = site.in;
                holds_ = true;
            }
            max_size = std::max({max_size, part.buffer_floats, part.out.size()});
            ws = std::max(ws, part.workspace_floats);
            shape = part.out;
            stages_.push_back({std::move(site.name), std::make_shared<const Stage>(std::move(part.stage)), part.macs, site.in,
                               part.out});
        }
        if (stages_.empty()) earlyexit::fail("{}: the architecture has no stages", f.path());
        if (!held_by.empty())
            earlyexit::fail("{}: stage '{}' holds its input for a later stage, but no stage after it reads it", f.path(),
                            held_by);
        max_size_ = max_size;
        workspace_ = ws;
    }

    template <class LoadHead>
    void load_heads(const safetensors_file& f, const nlohmann::json& heads, LoadHead& load_head) {
        const stage_entry& last = stages_.back();
        for (const auto& jh : heads) {
            head_site site{jh.at("name").get<std::string>(), jh.at("after_stage").get<std::size_t>(), {}, classes_, last.out};
            if (site.after >= stages_.size())
                earlyexit::fail("{}: head '{}' after stage {}, but there are {} stages", f.path(), site.name, site.after,
                                stages_.size());
            if (!heads_.empty()) {
                const head_entry& prev = heads_.back();
                if (site.after < prev.after)
                    earlyexit::fail("{}: head '{}' after stage {} is listed after head '{}' after stage {}: heads must be "
                                    "listed in the order of their stages",
                                    f.path(), site.name, site.after, prev.name, prev.after);
                if (site.after == prev.after)
                    earlyexit::fail("{}: heads '{}' and '{}' both follow stage {}: at most one head per stage", f.path(),
                                    prev.name, site.name, site.after);
            }
            site.in = stages_[site.after].out;
            Head h = std::invoke(load_head, f, jh, std::as_const(site));
            if (static_cast<std::size_t>(h.num_classes()) != classes_)
                earlyexit::fail("{}: head '{}' has {} classes, the architecture {}", f.path(), site.name, h.num_classes(),
                                classes_);
            heads_.push_back({std::move(site.name), site.after, std::make_shared<const Head>(std::move(h))});
        }
        if (heads_.empty())
            earlyexit::fail("{}: no heads: the final head must follow the last stage {} ('{}')", f.path(), stages_.size() - 1,
                            last.name);
        if (const head_entry& back = heads_.back(); back.after + 1 != stages_.size())
            earlyexit::fail("{}: the last head '{}' follows stage {}, but the final head must follow the last stage {} ('{}')",
                            f.path(), back.name, back.after, stages_.size() - 1, last.name);
    }

    nn::shape3 input_{};
    std::size_t classes_ = 0, max_size_ = 0, workspace_ = 0;
    bool holds_ = false;
    std::array<float, 3> mean_{}, std_{};
    std::vector<std::string> class_names_;
    std::vector<stage_entry> stages_;
    std::vector<head_entry> heads_;
};

}  // namespace earlyexit::demo
