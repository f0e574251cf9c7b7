# Committed outputs must carry no absolute path of the machine they were made on: the output
# blocks of the README and of the docs/ pages, the results' gnuplot scripts and result JSON. An
# absolute path shows up there as "(/dir/...", "'/dir/..." or "\"/dir/..." (a program printing or
# quoting a path it was given).
# Usage: cmake -DROOT=<source tree> -P no_absolute_paths.cmake
file(GLOB_RECURSE _files "${ROOT}/results/*.gp" "${ROOT}/results/*.json")
file(GLOB _docs "${ROOT}/docs/*.md")
list(APPEND _files "${ROOT}/README.md" ${_docs})
set(_bad "")
foreach(_f IN LISTS _files)
  file(STRINGS "${_f}" _hits REGEX "[('\"]/[A-Za-z0-9_.-]+/")
  foreach(_h IN LISTS _hits)
    file(RELATIVE_PATH _rel "${ROOT}" "${_f}")
    list(APPEND _bad "${_rel}: ${_h}")
  endforeach()
endforeach()
if(_bad)
  list(JOIN _bad "\n  " _text)
  message(FATAL_ERROR "absolute paths in committed outputs:\n  ${_text}")
endif()
list(LENGTH _files _n)
message(STATUS "no absolute path in ${_n} committed output files")
