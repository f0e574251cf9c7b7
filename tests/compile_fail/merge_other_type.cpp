// merge() taking another type: a runner never calls merge, yet the runner still checks it.
#include "case.hpp"

struct stats {
    int n = 0;
};

struct learner {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    void merge(const stats&) {}
};

void instantiate() { compile_fail::run_with(learner{}); }
