// update() for double episodes on a float runner: never called.
#include "case.hpp"

struct learner {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    void update(const earlyexit::episode<double>&) noexcept {}
};

void instantiate() { compile_fail::run_with(learner{}); }
