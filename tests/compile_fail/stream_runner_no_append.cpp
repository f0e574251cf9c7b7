// stream_runner on a batched network without append(): it cannot admit into a running batch.
#include <earlyexit/policy/static.hpp>
#include <earlyexit/stream_runner.hpp>

#include "case.hpp"

namespace {
/// A batched network with every call but append().
struct no_append {
    using scalar_type = float;
    using batch_state_type = earlyexit::rowwise_state<int>;
    earlyexit::network_info info() const noexcept { return {}; }
    std::size_t batch_workspace_size() const noexcept { return 0; }
    void run_batch_stage(std::size_t, batch_state_type&, std::size_t) const noexcept {}
    void run_batch_head(std::size_t, const batch_state_type&, std::span<const std::size_t>, std::span<float>,
                        std::span<float>) const noexcept {}
    void compact(batch_state_type&, std::span<const std::size_t>) const noexcept {}
};
}  // namespace

void instantiate() {
    const no_append net;
    earlyexit::stream_runner<no_append, earlyexit::policy::full> r(
        net, earlyexit::policy::full{}, {}, [] { return earlyexit::rowwise_state<int>(1, [] { return 0; }); });
}
