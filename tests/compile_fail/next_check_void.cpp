// next_check() returning nothing: the runner cannot read the next head from it.
#include "case.hpp"

struct skipper {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    void next_check(const earlyexit::exit_context<float>&) const noexcept {}
};

void instantiate() { compile_fail::run_with(skipper{}); }
