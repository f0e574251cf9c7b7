// The ODR test: odr_a.cpp and odr_b.cpp both include the whole library (the umbrella header,
// dvfs/hardware.hpp and, with nlohmann_json, io.hpp) and are linked into one executable. A
// header that defines a non-inline function or variable breaks the link with a duplicate symbol.
#pragma once

#include <cstddef>

double earlyexit_odr_a();
double earlyexit_odr_b();
