// next_check() taking the head index instead of the context.
#include <cstddef>

#include "case.hpp"

struct skipper {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    std::size_t next_check(std::size_t head) const noexcept { return head + 2; }
};

void instantiate() { compile_fail::run_with(skipper{}); }
