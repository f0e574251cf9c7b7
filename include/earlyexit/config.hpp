#pragma once
// Build-wide switches and the internal assertion macro.

#include <cstdio>
#include <cstdlib>

/// EARLYEXIT_ASSERT(cond): checks an internal invariant in debug builds (NDEBUG unset) or when
/// EARLYEXIT_ENABLE_ASSERTS is defined. It guards programming errors inside the library, never
/// user input: user input is validated with earlyexit::error at construction or load time.
#if !defined(NDEBUG) || defined(EARLYEXIT_ENABLE_ASSERTS)
#define EARLYEXIT_ASSERT(cond)                                                             \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            std::fprintf(stderr, "earlyexit: assertion failed: %s (%s:%d)\n", #cond, __FILE__, \
                         __LINE__);                                                        \
            std::abort();                                                                  \
        }                                                                                  \
    } while (false)
#else
#define EARLYEXIT_ASSERT(cond) ((void)0)
#endif
