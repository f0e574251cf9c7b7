#pragma once
// Replaces the global allocation functions with counting ones, for tests that assert a code
// path allocates nothing. Include it in exactly one translation unit of a test executable
// (it defines the replacements, which are not inline by the language's rules).

#include <atomic>
#include <cstdlib>
#include <new>

namespace earlyexit_test {
/// Allocations made so far through any form of operator new.
inline std::atomic<long> allocations{0};
}  // namespace earlyexit_test

void* operator new(std::size_t n) {
    ++earlyexit_test::allocations;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    ++earlyexit_test::allocations;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
// Catch2 allocates with the nothrow forms: replace them too, so every block is freed by the
// allocator that made it (ASan checks the pairing).
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    ++earlyexit_test::allocations;
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    ++earlyexit_test::allocations;
    return std::malloc(n == 0 ? 1 : n);
}
// GCC 12 at -O1 and above inlines these and warns that free() meets operator new, not seeing
// that operator new is replaced above with malloc: a false positive (ASan checks the pairing).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
