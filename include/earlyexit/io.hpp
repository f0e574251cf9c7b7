#pragma once
// earlyexit/io.hpp: everything in earlyexit.hpp plus files and reports: trace folders (NPY +
// JSON), the result JSON, and gnuplot plots. Needs nlohmann/json: link earlyexit::io.

#include "earlyexit.hpp"
#include "trace/file.hpp"
#include "report/json.hpp"
#include "report/plot.hpp"
