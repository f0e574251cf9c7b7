#pragma once
// earlyexit: early-exit inference scheduling for any forward pass that can be cut into stages.
// The umbrella header: the whole library except the parts that need nlohmann/json or POSIX
// process control, which <earlyexit/io.hpp> adds (trace files, JSON reports, gnuplot plots).

#include "version.hpp"
#include "config.hpp"
#include "error.hpp"
#include "confidence.hpp"
#include "context.hpp"
#include "result.hpp"
#include "head.hpp"
#include "network.hpp"
#include "clock.hpp"
#include "observer.hpp"
#include "policy/concepts.hpp"
#include "policy/static.hpp"
#include "policy/any_policy.hpp"
#include "runner.hpp"
#include "trace/trace.hpp"
#include "trace/npy.hpp"
#include "trace/recorder.hpp"
#include "trace/replay.hpp"
#include "trace/metrics.hpp"
#include "trace/sweep.hpp"
#include "trace/calibrate.hpp"
#include "trace/verify.hpp"
#include "report/table.hpp"
#include "report/progress.hpp"
