#!/usr/bin/env bash
# Install the build dependencies if needed, then build and run the tests (what CI runs):
#   1. dev:  Debug, -Werror, every example, demo and benchmark (as smoke tests), the consumer and
#            compile-failure tests, each public header compiled alone, and every libFuzzer target
#            fuzzed briefly (label fuzz). The unit tests are left to phase 2, which builds them
#            once instead of twice (the dev preset alone builds them too);
#   2. asan: the library's unit tests and the readers' tests (label unit), -Werror, under
#            AddressSanitizer + UndefinedBehaviorSanitizer (the examples are not built);
#   3. tsan: ThreadSanitizer on every test that starts threads.
# scripts/test.sh --release also runs the `release` workflow (optimized, every test again).
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

release=0
for arg in "$@"; do
  case "$arg" in
    --release) release=1 ;;
    *) echo "test.sh: unknown argument '$arg' (only --release)" >&2; exit 2 ;;
  esac
done

start=$SECONDS
phase() { echo "test.sh: $1 ($((SECONDS - start)) s since the start)"; }

phase "1/3 dev: examples, demos, benchmarks, consumers, header check, fuzz"
# Line tables only (-g1): CI needs file and line in a report, not a debugger's view; it builds faster.
cmake --preset dev -DEARLYEXIT_BUILD_UNIT_TESTS=OFF -DEARLYEXIT_FUZZ_SECONDS=10 -DCMAKE_CXX_FLAGS_DEBUG=-g1 >/dev/null
cmake --build --preset dev
ctest --preset dev

# The library's unit tests and the readers' tests under ASan + UBSan, their only build in CI, with
# warnings as errors: any report fails the test (the fuzz targets have ASan and UBSan of their
# own, and ran in phase 1).
phase "2/3 asan: unit tests"
cmake --preset asan -DEARLYEXIT_BUILD_EXAMPLES=OFF -DEARLYEXIT_BUILD_UNIT_TESTS=ON -DEARLYEXIT_WERROR=ON >/dev/null
cmake --build --preset asan
ctest --preset asan -L unit

# Every test that starts threads, under ThreadSanitizer: any data race fails the run. Only
# these are built there, to keep CI short. (test_common_dnnl_model is left out: oneDNN's OpenMP
# runtime is not built with TSan, so it would report races inside it.)
phase "3/3 tsan: threaded tests"
tsan_tests=(test_runner test_parallel_runner test_batch_runner_alloc test_common_parallel_demo)
cmake --preset tsan -DEARLYEXIT_BUILD_EXAMPLES=OFF >/dev/null
cmake --build --preset tsan --target "${tsan_tests[@]}"
ctest --preset tsan -R "^($(IFS='|'; echo "${tsan_tests[*]}"))/"

if [ "$release" = 1 ]; then
  phase "release workflow"
  cmake --workflow --preset release
fi
phase "done"
