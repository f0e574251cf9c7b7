#pragma once
// basic_trace: every head's output for every sample of a dataset, recorded once in probe mode
// (see recorder.hpp), so that any policy can be evaluated on it by replay (replay.hpp) without
// running the network again.
//
// Per sample: the logits of all K heads (K x C scalars), the measured time of each of the L
// stages and of each head evaluation (seconds), and the label when known. Per trace: the
// network's layout (head positions, declared stage and head MACs) and free-form provenance.
// Storage is flat and row-major, the same layout as the NPY files of trace/file.hpp:
// logits [N, K, C], stage_seconds [N, L], head_seconds [N, K], labels [N] (-1 = unknown).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../context.hpp"
#include "../error.hpp"

namespace earlyexit {

/// The network facts a trace carries: enough to rebuild network_info for replay.
struct trace_layout {
    std::size_t classes = 0;
    std::vector<std::size_t> head_positions;  ///< strictly increasing; the last is stages - 1
    std::vector<double> stage_macs;           ///< one per stage
    std::vector<double> head_macs;            ///< one per head

    [[nodiscard]] std::size_t stages() const noexcept { return stage_macs.size(); }
    [[nodiscard]] std::size_t heads() const noexcept { return head_positions.size(); }

    /// The layout of a network (copies its info()).
    [[nodiscard]] static trace_layout of(const network_info& n) {
        return {n.classes, {n.head_positions.begin(), n.head_positions.end()},
                {n.stage_macs.begin(), n.stage_macs.end()}, {n.head_macs.begin(), n.head_macs.end()}};
    }

    /// Throws earlyexit::error unless this describes a valid multi-exit network.
    void validate() const {
        if (classes == 0) earlyexit::fail("trace layout: classes must be positive, got 0");
        if (stage_macs.empty()) earlyexit::fail("trace layout: no stages");
        if (head_positions.empty() || head_positions.back() != stages() - 1)
            earlyexit::fail("trace layout: the last head must sit at the last stage ({})", stages() - 1);
        if (head_macs.size() != heads())
            earlyexit::fail("trace layout: {} head costs for {} heads", head_macs.size(), heads());
        for (std::size_t k = 1; k < heads(); ++k)
            if (head_positions[k] <= head_positions[k - 1])
                earlyexit::fail("trace layout: head {} at position {} is not after head {} at position {}", k,
                             head_positions[k], k - 1, head_positions[k - 1]);
        for (double m : stage_macs)
            if (!(m >= 0.0) || !std::isfinite(m)) earlyexit::fail("trace layout: stage cost {} is not finite and >= 0", m);
        for (double m : head_macs)
            if (!(m >= 0.0) || !std::isfinite(m)) earlyexit::fail("trace layout: head cost {} is not finite and >= 0", m);
    }

    friend bool operator==(const trace_layout&, const trace_layout&) = default;

    /// The first way `other` differs from this layout, in words ("" when they are equal).
    [[nodiscard]] std::string difference(const trace_layout& other) const {
        if (classes != other.classes) return fmt::format("{} classes against {}", classes, other.classes);
        if (head_positions != other.head_positions)
            return fmt::format("heads at stages [{}] against [{}]", fmt::join(head_positions, ", "),
                               fmt::join(other.head_positions, ", "));
        if (stages() != other.stages()) return fmt::format("{} stages against {}", stages(), other.stages());
        for (std::size_t p = 0; p < stages(); ++p)
            if (stage_macs[p] != other.stage_macs[p])
                return fmt::format("stage {} declares {} MACs against {}", p, stage_macs[p], other.stage_macs[p]);
        for (std::size_t k = 0; k < heads(); ++k)
            if (head_macs[k] != other.head_macs[k])
                return fmt::format("head {} declares {} MACs against {}", k, head_macs[k], other.head_macs[k]);
        return {};
    }

    /// Throws earlyexit::error unless a network with this layout recorded the trace `what` names
    /// (same classes, head positions and declared costs as `network`).
    void require_same(const network_info& network, std::string_view what) const {
        const std::string d = difference(of(network));
        if (!d.empty())
            fail("{}: recorded with another network than this one: {} (the trace's, then this network's)", what, d);
    }
};

template <std::floating_point Scalar = float>
class basic_trace {
public:
    using scalar_type = Scalar;

    basic_trace() = default;
    /// An empty trace for a network with this layout (validated).
    explicit basic_trace(trace_layout layout) : layout_(std::move(layout)) {
        layout_.validate();
        full_macs_ = full_network_macs(layout_.stage_macs, layout_.head_macs);
    }

    /// Appends one sample. Sizes: logits K*C (head-major), stage_seconds L, head_seconds K.
    void add(std::span<const Scalar> logits, std::span<const double> stage_seconds,
             std::span<const double> head_seconds, std::optional<std::size_t> label) {
        if (logits.size() != heads() * classes() || stage_seconds.size() != stages() ||
            head_seconds.size() != heads())
            earlyexit::fail("trace: sample {} has {} logits, {} stage times, {} head times; expected {}, {}, {}", size(),
                         logits.size(), stage_seconds.size(), head_seconds.size(), heads() * classes(), stages(),
                         heads());
        if (label && *label >= classes())
            earlyexit::fail("trace: sample {} has label {}, out of range [0, {})", size(), *label, classes());
        logits_.insert(logits_.end(), logits.begin(), logits.end());
        stage_seconds_.insert(stage_seconds_.end(), stage_seconds.begin(), stage_seconds.end());
        head_seconds_.insert(head_seconds_.end(), head_seconds.begin(), head_seconds.end());
        labels_.push_back(label ? static_cast<std::int64_t>(*label) : std::int64_t{-1});
    }

    /// Reserves room for n samples in total.
    void reserve(std::size_t n) {
        logits_.reserve(n * heads() * classes());
        stage_seconds_.reserve(n * stages());
        head_seconds_.reserve(n * heads());
        labels_.reserve(n);
    }

    [[nodiscard]] std::size_t size() const noexcept { return labels_.size(); }
    [[nodiscard]] bool empty() const noexcept { return labels_.empty(); }
    [[nodiscard]] std::size_t stages() const noexcept { return layout_.stages(); }
    [[nodiscard]] std::size_t heads() const noexcept { return layout_.heads(); }
    [[nodiscard]] std::size_t classes() const noexcept { return layout_.classes; }
    [[nodiscard]] const trace_layout& layout() const noexcept { return layout_; }

    /// Logits of head k on sample i (C scalars).
    [[nodiscard]] std::span<const Scalar> logits(std::size_t i, std::size_t k) const noexcept {
        return {logits_.data() + (i * heads() + k) * classes(), classes()};
    }
    [[nodiscard]] std::span<const double> stage_seconds(std::size_t i) const noexcept {
        return {stage_seconds_.data() + i * stages(), stages()};
    }
    [[nodiscard]] std::span<const double> head_seconds(std::size_t i) const noexcept {
        return {head_seconds_.data() + i * heads(), heads()};
    }
    [[nodiscard]] std::optional<std::size_t> label(std::size_t i) const noexcept {
        return labels_[i] < 0 ? std::nullopt : std::optional<std::size_t>(static_cast<std::size_t>(labels_[i]));
    }
    /// True when every sample has a label.
    [[nodiscard]] bool labelled() const noexcept {
        return std::all_of(labels_.begin(), labels_.end(), [](std::int64_t l) { return l >= 0; });
    }

    /// The flat arrays, in file order.
    [[nodiscard]] std::span<const Scalar> all_logits() const noexcept { return logits_; }
    [[nodiscard]] std::span<const double> all_stage_seconds() const noexcept { return stage_seconds_; }
    [[nodiscard]] std::span<const double> all_head_seconds() const noexcept { return head_seconds_; }
    [[nodiscard]] std::span<const std::int64_t> all_labels() const noexcept { return labels_; }

    /// The network as policies see it; views into this trace (valid while it lives, unmoved).
    [[nodiscard]] network_info info() const noexcept {
        return network_info{stages(), heads(), classes(), layout_.head_positions, layout_.stage_macs,
                            layout_.head_macs, full_macs_};
    }

    /// Samples [first, first + count) as a new trace (a split for calibration, say).
    [[nodiscard]] basic_trace slice(std::size_t first, std::size_t count) const {
        if (first > size() || count > size() - first)
            earlyexit::fail("trace: slice [{}, {}) is outside the {} samples", first, first + count, size());
        return select_if([&](std::size_t i) { return i >= first && i < first + count; });
    }

    /// The samples whose index satisfies pred, in order.
    template <class Pred>
    [[nodiscard]] basic_trace select_if(Pred pred) const {
        basic_trace out(layout_);
        out.provenance = provenance;
        for (std::size_t i = 0; i < size(); ++i)
            if (pred(i)) out.add(sample_logits(i), stage_seconds(i), head_seconds(i), label(i));
        return out;
    }

    /// Free-form facts about where the trace came from (dataset, model, machine, date...).
    std::map<std::string, std::string> provenance;

private:
    [[nodiscard]] std::span<const Scalar> sample_logits(std::size_t i) const noexcept {
        return {logits_.data() + i * heads() * classes(), heads() * classes()};
    }
    trace_layout layout_;
    double full_macs_ = 0;
    std::vector<Scalar> logits_;
    std::vector<double> stage_seconds_;
    std::vector<double> head_seconds_;
    std::vector<std::int64_t> labels_;
};

using trace = basic_trace<float>;

}  // namespace earlyexit
