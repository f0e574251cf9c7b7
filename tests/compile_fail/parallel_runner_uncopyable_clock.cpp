// parallel_runner on a clock that cannot be copied (one hardware frequency domain): each worker
// would need its own copy.
#include <earlyexit/parallel_runner.hpp>
#include <earlyexit/policy/static.hpp>

#include "case.hpp"

namespace {
struct one_domain_clock {
    one_domain_clock() = default;
    one_domain_clock(const one_domain_clock&) = delete;
    one_domain_clock(one_domain_clock&&) = default;
    double now() const noexcept { return 0.0; }
};
}  // namespace

void instantiate() {
    const compile_fail::tiny_network<float> net;
    const earlyexit::rowwise_network batched(net);
    earlyexit::parallel_runner<earlyexit::rowwise_network<compile_fail::tiny_network<float>>, earlyexit::policy::full,
                               one_domain_clock>
        pool(batched, earlyexit::policy::full{}, {}, [] { return earlyexit::rowwise_state<int>(1, [] { return 0; }); });
}
