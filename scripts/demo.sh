#!/usr/bin/env bash
# Build the quickstart example with the `release` preset (no tests, no
# benchmarks) and run it. Arguments are passed to the example.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source-path=SCRIPTDIR source=deps.sh
source "$root/scripts/deps.sh"
earlyexit_require_packages cmake g++ make libeigen3-dev libfmt-dev

export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"

cmake --preset release -DEARLYEXIT_BUILD_TESTS=OFF -DEARLYEXIT_BUILD_BENCHMARKS=OFF \
  -DEARLYEXIT_HEADER_CHECK=OFF >/dev/null
cmake --build --preset release --target example_01_quickstart

exec build/release/examples/01_quickstart "$@"
