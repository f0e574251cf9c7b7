#!/usr/bin/env bash
# Install the build dependencies if needed, then configure, build and run every
# test with the `dev` workflow preset (Debug, -Werror, tests + examples), then the
# `release` one (optimized, benchmarks as smoke tests, each header compiled alone).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source-path=SCRIPTDIR source=deps.sh
source "$root/scripts/deps.sh"
earlyexit_require_packages cmake g++ make libeigen3-dev libfmt-dev catch2 libbenchmark-dev \
  nlohmann-json3-dev gnuplot-nox libstb-dev libcli11-dev libdnnl-dev ocl-icd-opencl-dev clang-14 libclang-rt-14-dev

# Workflow presets need CMake 3.25.
cmake_version="$(cmake --version | head -n1 | awk '{print $3}')"
if [ "$(printf '%s\n' 3.25 "$cmake_version" | sort -V | head -n1)" != 3.25 ]; then
  echo "test.sh: CMake >= 3.25 is required, found $cmake_version" >&2
  exit 1
fi

jobs="$(nproc 2>/dev/null || echo 2)"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$jobs}"
export CTEST_PARALLEL_LEVEL="${CTEST_PARALLEL_LEVEL:-$jobs}"

cmake --workflow --preset dev
cmake --workflow --preset release

# The threaded runner under ThreadSanitizer (parallel_runner's workers over one network): any
# data race fails the run. Only its tests are built there, to keep CI short.
cmake --preset tsan -DEARLYEXIT_BUILD_EXAMPLES=OFF >/dev/null
cmake --build --preset tsan --target test_parallel_runner
ctest --preset tsan -R '^test_parallel_runner/'
