#pragma once
// earlyexit/io.hpp: everything in earlyexit.hpp plus files and reports: trace folders (NPY +
// JSON), the result JSON, gnuplot plots, the learned state of the learning policies
// (policy/state_file.hpp) and frequency tables (dvfs/table_file.hpp), all written whole or not at
// all (atomic_file.hpp). Needs nlohmann/json: link earlyexit::io.

#include "earlyexit.hpp"
#include "atomic_file.hpp"
#include "trace/file.hpp"
#include "report/json.hpp"
#include "report/plot.hpp"
#include "policy/state_file.hpp"
#include "dvfs/table_file.hpp"
