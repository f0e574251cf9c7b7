// reset() with a parameter, wrapped in an any_policy: any_policy checks every hook too.
#include "case.hpp"

struct learner {
    earlyexit::decision decide(const earlyexit::exit_context<float>&) const noexcept { return earlyexit::decision::stop; }
    void reset(int) {}
};

void instantiate() { (void)compile_fail::erase(learner{}); }
