# cmake -DREADME=... -DEXAMPLE=... -P readme_check.cmake
# Fails unless the ```cpp block between <!-- quickstart-begin --> and <!-- quickstart-end --> in
# the README equals the example file byte for byte.
file(READ "${README}" readme)
file(READ "${EXAMPLE}" example)
string(FIND "${readme}" "<!-- quickstart-begin -->\n```cpp\n" begin)
string(FIND "${readme}" "```\n<!-- quickstart-end -->" end)
if(begin EQUAL -1 OR end EQUAL -1)
  message(FATAL_ERROR "README.md: quickstart markers not found")
endif()
string(LENGTH "<!-- quickstart-begin -->\n```cpp\n" marker)
math(EXPR start "${begin} + ${marker}")
math(EXPR length "${end} - ${start}")
string(SUBSTRING "${readme}" ${start} ${length} shown)
if(NOT shown STREQUAL example)
  message(FATAL_ERROR "README.md quick start differs from ${EXAMPLE}; paste the file into the README again")
endif()
message(STATUS "README quick start matches ${EXAMPLE}")
