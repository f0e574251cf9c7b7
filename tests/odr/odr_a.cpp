#include "odr.hpp"

#include <array>

#include <earlyexit/dvfs/hardware.hpp>  // not in the umbrella header (POSIX file calls)
#include <earlyexit/earlyexit.hpp>
#if EARLYEXIT_TEST_IO
#include <earlyexit/io.hpp>
#endif

// Instantiates templates and calls inline functions that the other translation unit uses too.
double earlyexit_odr_a() {
    const std::array<float, 3> z{1.f, 2.f, 3.f};
    const earlyexit::policy::max_prob p{0.5};
    const std::array<double, 2> hz{1e9, 2e9};
    return static_cast<double>(earlyexit::max_prob(z)) + p.threshold() + earlyexit::simulated_clock(2.0).rate() +
           earlyexit::dvfs::nearest_frequency_hz(hz, 1.6e9) * 1e-9;
}
