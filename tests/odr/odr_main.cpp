#include "odr.hpp"

#include <earlyexit/earlyexit.hpp>

// The umbrella header leaves out the DVFS hardware backends and so their POSIX file calls
// (open/read/write through dvfs/sysfs.hpp): <earlyexit/dvfs/hardware.hpp> adds them.
#ifdef EARLYEXIT_DVFS_POSIX_FILES
#error "earlyexit/earlyexit.hpp includes dvfs/sysfs.hpp; the hardware backends belong in dvfs/hardware.hpp"
#endif

int main() { return earlyexit_odr_a() == earlyexit_odr_b() ? 0 : 1; }
