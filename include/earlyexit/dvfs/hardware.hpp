#pragma once
// earlyexit/dvfs/hardware.hpp: the DVFS parts that drive real hardware, kept out of the umbrella
// header <earlyexit/earlyexit.hpp> because they need POSIX file calls (open/read/write through
// dvfs/sysfs.hpp) and touch the machine:
//   dvfs::cpufreq_backend   Linux cpufreq's userspace governor (dvfs/cpufreq.hpp)
//   dvfs::rapl_meter        RAPL energy through Linux powercap (dvfs/rapl.hpp)
//   dvfs::hardware_clock    a runner clock over both, move-only: one per frequency domain
//                           (dvfs/hardware_clock.hpp)
//   dvfs::restore_on_signal the governor restored when a signal ends the program
//                           (dvfs/signal_restore.hpp)
// The frequency tables, the model clock and the selector (dvfs/table.hpp, clock.hpp,
// selector.hpp) stay in the umbrella header; they compute and never touch the machine.

#include "cpufreq.hpp"
#include "hardware_clock.hpp"
#include "rapl.hpp"
#include "signal_restore.hpp"
#include "sysfs.hpp"
