// Catch2's main(), compiled once (earlyexit_catch_main) and linked into every
// test executable, so each test file only pays for its own TEST_CASEs.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
