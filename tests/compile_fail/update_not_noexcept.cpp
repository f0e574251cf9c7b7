// A per-sample hook that may throw: the hot path is noexcept.
#include "case.hpp"

struct learner {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    void update(const earlyexit::episode<float>&) {}
};

void instantiate() { compile_fail::run_with(learner{}); }
