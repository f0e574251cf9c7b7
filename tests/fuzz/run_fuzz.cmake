# The fuzz ctests (tests/CMakeLists.txt, label "fuzz"), in two modes:
#
#   cmake -DMODE=build -DCLANGXX=... -DSOURCE_DIR=<tests/fuzz> -DBINARY_DIR=... -DEARLYEXIT_SOURCE_DIR=...
#         -DPREFIX_PATH=... -DGENERATOR=... [-DMAKE_PROGRAM=...] -P run_fuzz.cmake
#     (fuzz_build, the fixture of the others) configures tests/fuzz with clang (libFuzzer, ASan,
#     UBSan) and builds every target.
#   cmake -DMODE=run -DCLANGXX=... -DSOURCE_DIR=... -DBINARY_DIR=... -DNAME=<name> -DSECONDS=20 -P run_fuzz.cmake
#     (fuzz_<name>) runs fuzz_<name> for SECONDS seconds from the seed corpus <name>_corpus (new
#     inputs go to a scratch corpus in BINARY_DIR, never into the source tree).
#
# A run fails on any crash, sanitizer report, leak, timeout (10 s per input), memory above 2 GB or
# single allocation above 256 MB, or contract violation, with the fuzzer's output and the
# crashing input's path. Both modes print "fuzz: SKIPPED" (the tests' SKIP_REGULAR_EXPRESSION) when
# there is no clang or no libFuzzer.
set(_apt "Debian: apt-get install clang-14 libclang-rt-14-dev")
if(NOT CLANGXX)
  message("fuzz: SKIPPED: clang++-14 not found (${_apt})")
  return()
endif()

if(MODE STREQUAL "build")
  set(_configure "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}"
                 "-DCMAKE_CXX_COMPILER=${CLANGXX}" "-DEARLYEXIT_SOURCE_DIR=${EARLYEXIT_SOURCE_DIR}"
                 "-DCMAKE_PREFIX_PATH=${PREFIX_PATH}")
  if(MAKE_PROGRAM)
    list(APPEND _configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  execute_process(COMMAND ${_configure} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    if(out MATCHES "earlyexit_fuzz: no libFuzzer")
      file(WRITE "${BINARY_DIR}/skipped" "${CLANGXX} has no libFuzzer")
      message("fuzz: SKIPPED: ${CLANGXX} has no libFuzzer (${_apt})")
      return()
    endif()
    message(FATAL_ERROR "fuzz_build: configuring ${SOURCE_DIR} with ${CLANGXX} failed:\n${out}")
  endif()
  file(REMOVE "${BINARY_DIR}/skipped")
  execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BINARY_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fuzz_build: building the fuzz targets failed:\n${out}")
  endif()
  file(GLOB _built "${BINARY_DIR}/fuzz_*")
  list(LENGTH _built _n)
  message("fuzz_build: ${_n} fuzz targets built in ${BINARY_DIR}")
  return()
endif()

if(NOT MODE STREQUAL "run")
  message(FATAL_ERROR "run_fuzz.cmake: MODE '${MODE}' (choose build or run)")
endif()
if(EXISTS "${BINARY_DIR}/skipped")
  file(READ "${BINARY_DIR}/skipped" _why)
  message("fuzz: SKIPPED: ${_why} (${_apt})")
  return()
endif()
set(_exe "${BINARY_DIR}/fuzz_${NAME}")
if(NOT EXISTS "${_exe}")
  message(FATAL_ERROR "fuzz_${NAME}: ${_exe} was not built (run the test fuzz_build first)")
endif()
set(_corpus "${BINARY_DIR}/corpus_${NAME}")
file(REMOVE_RECURSE "${_corpus}")
file(MAKE_DIRECTORY "${_corpus}")
execute_process(
  COMMAND "${_exe}" -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -seed=1
          -print_final_stats=1 "-artifact_prefix=${BINARY_DIR}/${NAME}-" "${_corpus}" "${SOURCE_DIR}/${NAME}_corpus"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_${NAME}: the fuzzer found a failure (exit ${rc}); reproduce with "
                      "${_exe} <the crash- file named below>:\n${out}")
endif()
string(REGEX MATCH "stat::number_of_executed_units: *([0-9]+)" _ "${out}")
set(_runs "${CMAKE_MATCH_1}")
string(REGEX MATCH "stat::new_units_added: *([0-9]+)" _ "${out}")
message("fuzz_${NAME}: no failure in ${SECONDS} s: ${_runs} inputs run, ${CMAKE_MATCH_1} new corpus entries")
