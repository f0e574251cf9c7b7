// make_batch_runner(rowwise_network(net), ...): the rowwise_network temporary would dangle.
#include <earlyexit/batch_runner.hpp>
#include <earlyexit/policy/static.hpp>

#include "case.hpp"

void instantiate() {
    const compile_fail::tiny_network<float> net;
    auto r = earlyexit::make_batch_runner(earlyexit::rowwise_network(net), earlyexit::policy::full{}, 4);
    (void)r;
}
