// first_check() taking an exit context: it is asked before any head, with the sample_info.
#include <cstddef>

#include "case.hpp"

struct starter {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    std::size_t first_check(const earlyexit::exit_context<float>&) const noexcept { return 1; }
};

void instantiate() { compile_fail::run_with(starter{}); }
