// batch_runner::run(state, samples, deliver) with a deliver that may throw.
#include <earlyexit/batch_runner.hpp>
#include <earlyexit/policy/static.hpp>

#include "case.hpp"

void instantiate() {
    const compile_fail::tiny_network<float> net;
    const earlyexit::rowwise_network batched(net);
    auto r = earlyexit::make_batch_runner(batched, earlyexit::policy::full{}, 2);
    earlyexit::rowwise_state<int> state(2, [] { return 0; });
    const earlyexit::sample_info one[1]{};
    (void)r.run(state, one, [](std::size_t, const earlyexit::exit_result<float>&) {});
}
