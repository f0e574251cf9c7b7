#pragma once
// Include first, before any Eigen header: Eigen then checks every heap allocation it makes with
// eigen_assert while allocation is forbidden (Eigen::internal::set_is_malloc_allowed(false)),
// and the assert defined here counts the failed checks instead of aborting.
#include <atomic>

namespace earlyexit_test {
/// Failed Eigen assertions so far; with malloc forbidden, each Eigen heap allocation is one.
inline std::atomic<long> eigen_failed_checks{0};
}  // namespace earlyexit_test

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x) ((x) ? void(0) : void(++earlyexit_test::eigen_failed_checks))
