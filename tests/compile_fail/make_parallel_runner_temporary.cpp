// make_parallel_runner on a temporary rowwise_network: the workers would dangle.
#include <earlyexit/parallel_runner.hpp>
#include <earlyexit/policy/static.hpp>

#include "case.hpp"

void instantiate() {
    const compile_fail::tiny_network<float> net;
    auto r = earlyexit::make_parallel_runner(earlyexit::rowwise_network(net), earlyexit::policy::full{},
                                             earlyexit::parallel_options{},
                                             [] { return earlyexit::rowwise_state<int>(1, [] { return 0; }); });
    (void)r;
}
