#pragma once
// Recording traces: run a network in probe mode (every head evaluated, no early exit) with a
// trace_recorder observer, which stores each head's logits and the time of every stage and
// head into a basic_trace. record_trace() does the whole loop.

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "../clock.hpp"
#include "../context.hpp"
#include "../policy/static.hpp"
#include "../result.hpp"
#include "../runner.hpp"
#include "trace.hpp"

namespace earlyexit {

/// An observer that appends one trace sample per finished run. Head time is the clock time
/// from the end of the stage (or head) before it to the point its context was built: the head
/// itself plus the measures, which is what evaluating a head costs a live run.
/// The run must evaluate every head (probe mode); a run that skipped a head is an error.
template <std::floating_point Scalar>
class trace_recorder {
public:
    explicit trace_recorder(basic_trace<Scalar>& out)
        : out_(&out),
          logits_(out.heads() * out.classes()),
          stage_seconds_(out.stages()),
          head_seconds_(out.heads()) {}

    void on_stage(std::size_t position, double seconds, double) noexcept {
        stage_seconds_[position] = seconds;
        stage_total_ += seconds;
    }

    void on_head(const exit_context<Scalar>& c) noexcept {
        std::copy(c.logits.begin(), c.logits.end(), logits_.begin() + static_cast<std::ptrdiff_t>(c.head * out_->classes()));
        head_seconds_[c.head] = std::max(0.0, c.elapsed_seconds - stage_total_ - head_total_);
        head_total_ += head_seconds_[c.head];
        ++heads_seen_;
    }

    /// Appends the sample. Never throws (it runs inside the runner's noexcept path): a sample
    /// that skipped a head, or that could not be stored, is counted in rejected() instead.
    void on_exit(const exit_result<Scalar>&, const episode<Scalar>& e) noexcept {
        if (heads_seen_ == out_->heads()) {
            try {
                out_->add(logits_, stage_seconds_, head_seconds_, e.sample ? e.sample->label : std::nullopt);
            } catch (...) {
                ++rejected_;
            }
        } else {
            ++rejected_;
        }
        stage_total_ = head_total_ = 0;
        heads_seen_ = 0;
    }

    /// Samples not recorded: runs that did not evaluate every head (not probe mode), or a
    /// failed allocation. record_trace() turns a nonzero count into an error.
    [[nodiscard]] std::size_t rejected() const noexcept { return rejected_; }

private:
    basic_trace<Scalar>* out_;
    std::vector<Scalar> logits_;
    std::vector<double> stage_seconds_;
    std::vector<double> head_seconds_;
    double stage_total_ = 0;
    double head_total_ = 0;
    std::size_t heads_seen_ = 0;
    std::size_t rejected_ = 0;
};

/// Records a trace of `samples` samples: for each i, fill(i, state) puts sample i's input into
/// `state` and returns its label (or std::nullopt), then the network runs in probe mode.
/// progress(i) is called after each sample (pass a no-op or a progress line).
template <class Network, class Fill, class Clock = wall_clock, class Progress = void (*)(std::size_t)>
    requires std::invocable<Fill&, std::size_t, typename Network::state_type&>
[[nodiscard]] basic_trace<typename Network::scalar_type> record_trace(
    const Network& network, typename Network::state_type& state, std::size_t samples, Fill&& fill,
    Clock clock = Clock{}, Progress progress = [](std::size_t) {}) {
    using Scalar = typename Network::scalar_type;
    basic_trace<Scalar> out(trace_layout::of(network.info()));
    out.reserve(samples);
    basic_runner<Network, policy::probe, Clock, trace_recorder<Scalar>> runner(
        network, policy::probe{}, std::move(clock), trace_recorder<Scalar>(out));
    for (std::size_t i = 0; i < samples; ++i) {
        const std::optional<std::size_t> label = fill(i, state);
        (void)runner.run(state, sample_info{i, label});
        if (runner.observer().rejected() != 0)
            earlyexit::fail("record_trace: sample {} could not be recorded (out of memory?)", i);
        progress(i);
    }
    return out;
}

}  // namespace earlyexit
