// update() taking a non-const episode: the runner passes a const one, so it was never called.
#include "case.hpp"

struct learner {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    void update(earlyexit::episode<float>&) noexcept {}
};

void instantiate() { compile_fail::run_with(learner{}); }
