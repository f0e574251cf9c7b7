#!/usr/bin/env bash
# Build the CIFAR-10 demo (earlyexit-cifar10) with the `release` preset (no tests, no
# benchmarks) and run it: every policy, calibrated on the shipped validation trace, live and
# replayed on the 10 000 shipped test images. Arguments are passed to the demo (--help).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source-path=SCRIPTDIR source=deps.sh
source "$root/scripts/deps.sh"
earlyexit_require_packages cmake g++ make libeigen3-dev libfmt-dev nlohmann-json3-dev libstb-dev libcli11-dev libdnnl-dev ocl-icd-opencl-dev

export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"

cmake --preset release -DEARLYEXIT_BUILD_TESTS=OFF -DEARLYEXIT_BUILD_BENCHMARKS=OFF \
  -DEARLYEXIT_HEADER_CHECK=OFF >/dev/null
cmake --build --preset release --target example_04_cifar10

exec build/release/examples/earlyexit-cifar10 "$@"
