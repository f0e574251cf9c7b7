// basic_runner constructed on a temporary network: it would dangle.
#include <earlyexit/policy/static.hpp>

#include "case.hpp"

void instantiate() {
    using net = compile_fail::tiny_network<float>;
    earlyexit::basic_runner<net, earlyexit::policy::full> r(net{}, earlyexit::policy::full{});
    (void)r;
}
