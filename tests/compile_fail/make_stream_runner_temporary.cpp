// make_stream_runner on a temporary rowwise_network: the runner would dangle.
#include <earlyexit/policy/static.hpp>
#include <earlyexit/stream_runner.hpp>

#include "case.hpp"

void instantiate() {
    const compile_fail::tiny_network<float> net;
    auto r = earlyexit::make_stream_runner(earlyexit::rowwise_network(net), earlyexit::policy::full{},
                                           earlyexit::stream_options{},
                                           [] { return earlyexit::rowwise_state<int>(1, [] { return 0; }); });
    (void)r;
}
