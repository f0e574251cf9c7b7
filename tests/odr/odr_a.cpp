#include "odr.hpp"

#include <array>

#include <earlyexit/earlyexit.hpp>
#if EARLYEXIT_TEST_IO
#include <earlyexit/io.hpp>
#endif

// Instantiates templates and calls inline functions that the other translation unit uses too.
double earlyexit_odr_a() {
    const std::array<float, 3> z{1.f, 2.f, 3.f};
    const earlyexit::policy::max_prob p{0.5};
    return static_cast<double>(earlyexit::max_prob(z)) + p.threshold() + earlyexit::simulated_clock(2.0).rate();
}
