// stream_runner::run with a deliver that may throw.
#include <earlyexit/policy/static.hpp>
#include <earlyexit/stream_runner.hpp>

#include "case.hpp"

void instantiate() {
    const compile_fail::tiny_network<float> net;
    const earlyexit::rowwise_network batched(net);
    auto r = earlyexit::make_stream_runner(batched, earlyexit::policy::full{}, earlyexit::stream_options{},
                                           [] { return earlyexit::rowwise_state<int>(1, [] { return 0; }); });
    const earlyexit::sample_info one[1]{};
    r.run(
        one, [](earlyexit::rowwise_state<int>&, std::size_t, std::size_t) {},
        [](const earlyexit::stream_exit<float>&) {});
}
