#pragma once
// The demos' backends (--backend, --precision): the same staged model on Eigen (the per-sample
// network and batched_model.hpp: the reference, always built) or on oneDNN (dnnl_model.hpp,
// when CMake found it: EARLYEXIT_HAVE_DNNL, the default then), in fp32 or, on oneDNN, bf16.
// with_backend() makes the chosen networks and hands them to the demo's code, so a demo is
// written once for all: the per-sample network (recording, the one-at-a-time runs) and the
// batched one (--batch, the throughput grid). On oneDNN the per-sample network is the batched
// one on a state of one row (one_row_network), so every figure of a run comes from one backend
// and one precision.

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <earlyexit/context.hpp>
#include <earlyexit/error.hpp>

#include "batched_model.hpp"
#include "demo_batch.hpp"
#include "feature_state.hpp"
#include "staged_model.hpp"
#if EARLYEXIT_HAVE_DNNL
#include "dnnl_model.hpp"
#endif

namespace earlyexit::demo {

/// Whether this build has the oneDNN backend.
inline constexpr bool have_dnnl =
#if EARLYEXIT_HAVE_DNNL
    true;
#else
    false;
#endif

/// The values --backend and --precision take, and the defaults: oneDNN where it was built, fp32.
inline constexpr std::string_view backend_eigen = "eigen", backend_onednn = "onednn";
inline constexpr std::string_view precision_fp32 = "fp32", precision_bf16 = "bf16";
[[nodiscard]] inline std::string default_backend() { return std::string(have_dnnl ? backend_onednn : backend_eigen); }

/// Throws earlyexit::error naming the value unless this build runs `backend` in `precision`.
inline void check_backend(std::string_view backend, std::string_view precision) {
    if (backend == backend_onednn && !have_dnnl)
        fail("--backend onednn: this build has no oneDNN (install libdnnl-dev and configure again); use --backend eigen");
    if (backend != backend_eigen && backend != backend_onednn) fail("--backend {}: unknown; choose eigen or onednn", backend);
    if (precision != precision_fp32 && precision != precision_bf16)
        fail("--precision {}: unknown; choose fp32 or bf16", precision);
    if (precision == precision_bf16 && backend != backend_onednn)
        fail("--precision bf16 runs on oneDNN only (got --backend {})", backend);
}

/// A batched network as a per-sample one (earlyexit::runnable_network): a sample is row 0 of a
/// batch state of one row. Holds a pointer: `net` must outlive it.
template <class BatchNet>
class one_row_network {
public:
    using state_type = typename BatchNet::batch_state_type;
    using scalar_type = typename BatchNet::scalar_type;

    explicit one_row_network(const BatchNet& net) noexcept : net_(&net) {}
    [[nodiscard]] network_info info() const noexcept { return net_->info(); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return net_->batch_workspace_size(); }
    void run_stage(std::size_t p, state_type& s) const noexcept { net_->run_batch_stage(p, s, 1); }
    void run_head(std::size_t k, const state_type& s, std::span<scalar_type> logits, std::span<scalar_type> ws) const noexcept {
        static constexpr std::array<std::size_t, 1> row0{0};
        net_->run_batch_head(k, s, row0, logits, ws);
    }

private:
    const BatchNet* net_;
};

/// Makes `model`'s networks on `backend` in `precision` and returns run(net, state, prepare,
/// batched): net a per-sample network with its state, prepare(i, state) -> label that puts
/// sample i into it, batched the batched_demo for batches of up to `capacity` rows. The demo
/// gives put(i, state) -> label for a per-sample feature_state (the Eigen path) and fill(state,
/// first, count) for batch states (a generic lambda: it serves both batch state types; on
/// oneDNN it also fills the one-row state). On oneDNN every primitive of every row count, and
/// each state's memory objects, are made first (prepare), outside any timed run.
template <class Stage, class Head, class Put, class Fill, class Label, class Run>
decltype(auto) with_backend(const staged_model<Stage, Head>& model, std::size_t capacity, std::string_view backend,
                            std::string_view precision, Put put, Fill fill, Label label, Run&& run) {
    check_backend(backend, precision);
#if EARLYEXIT_HAVE_DNNL
    if (backend == backend_onednn) {
        dnnl_options o;
        o.precision = precision == precision_bf16 ? dnnl_precision::bf16 : dnnl_precision::f32;
        const dnnl_model<Stage, Head> fast(model, capacity, o);
        fast.prepare(capacity);
        const one_row_network one(fast);
        auto state = fast.make_state(1);
        fast.prepare(state, 1);
        const auto prepare = [&](std::size_t i, dnnl_batch_state& s) {
            fill(s, i, 1);
            return label(i);
        };
        // Each batch state gets its memory objects up front too: nothing is made inside a timed run.
        const auto make_state = [&fast](std::size_t r) {
            auto s = fast.make_state(r);
            fast.prepare(s, r);
            return s;
        };
        return run(one, state, prepare, batched_demo{&fast, make_state, fill});
    }
#else
    (void)label;
#endif
    const auto net = model.network();
    auto state = model.make_state();
    const batched_model<Stage, Head> batched(model, capacity);
    return run(net, state, put, batched_demo{&batched, [&batched](std::size_t r) { return batched.make_state(r); }, fill});
}

}  // namespace earlyexit::demo
