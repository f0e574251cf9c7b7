# cmake -DCLANGXX=... -DSOURCE_DIR=<tests/fuzz> -DBINARY_DIR=... -DEARLYEXIT_INCLUDE_DIR=... -Dfmt_DIR=...
#       -DGENERATOR=... [-DMAKE_PROGRAM=...] -DSECONDS=20 -P run_fuzz.cmake
# Configures and builds tests/fuzz with clang (libFuzzer, ASan, UBSan), then fuzzes the NPY reader
# for SECONDS seconds starting from npy_corpus (new inputs go to a scratch corpus in BINARY_DIR,
# never into the source tree). Fails on any crash, sanitizer report, leak, timeout or contract
# violation, with the fuzzer's output and the crashing input's path. Prints "fuzz_npy: SKIPPED"
# (the test's SKIP_REGULAR_EXPRESSION) when there is no clang or no libFuzzer.
set(_apt "Debian: apt-get install clang-14 libclang-rt-14-dev")
if(NOT CLANGXX)
  message("fuzz_npy: SKIPPED: clang++-14 not found (${_apt})")
  return()
endif()

set(_configure "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}"
               "-DCMAKE_CXX_COMPILER=${CLANGXX}" "-DEARLYEXIT_INCLUDE_DIR=${EARLYEXIT_INCLUDE_DIR}"
               "-Dfmt_DIR=${fmt_DIR}")
if(MAKE_PROGRAM)
  list(APPEND _configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
execute_process(COMMAND ${_configure} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  if(out MATCHES "earlyexit_fuzz: no libFuzzer")
    message("fuzz_npy: SKIPPED: ${CLANGXX} has no libFuzzer (${_apt})")
    return()
  endif()
  message(FATAL_ERROR "fuzz_npy: configuring ${SOURCE_DIR} with ${CLANGXX} failed:\n${out}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BINARY_DIR}" --target fuzz_npy
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_npy: building the fuzzer failed:\n${out}")
endif()

set(_corpus "${BINARY_DIR}/corpus")
file(REMOVE_RECURSE "${_corpus}")
file(MAKE_DIRECTORY "${_corpus}")
execute_process(
  COMMAND "${BINARY_DIR}/fuzz_npy" -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -seed=1
          -print_final_stats=1 "-artifact_prefix=${BINARY_DIR}/" "${_corpus}" "${SOURCE_DIR}/npy_corpus"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_npy: the fuzzer found a failure (exit ${rc}); reproduce with "
                      "${BINARY_DIR}/fuzz_npy <the crash- file named below>:\n${out}")
endif()
string(REGEX MATCH "stat::number_of_executed_units: *([0-9]+)" _ "${out}")
set(_runs "${CMAKE_MATCH_1}")
string(REGEX MATCH "stat::new_units_added: *([0-9]+)" _ "${out}")
message("fuzz_npy: no failure in ${SECONDS} s: ${_runs} inputs run, ${CMAKE_MATCH_1} new corpus entries")
