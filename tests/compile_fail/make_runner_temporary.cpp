// make_runner on a temporary network: the runner would dangle.
#include <earlyexit/policy/static.hpp>

#include "case.hpp"

void instantiate() {
    auto r = earlyexit::make_runner(compile_fail::tiny_network<float>{}, earlyexit::policy::full{});
    (void)r;
}
