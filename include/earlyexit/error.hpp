#pragma once
// earlyexit::error: the one exception type the library throws.
//
// Thrown for configuration and input errors at construction or load time (shape mismatch,
// missing final head, threshold out of range, unreadable file). The message always names the
// offending value. The per-sample hot path never throws.

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace earlyexit {

class error : public std::runtime_error {
public:
    explicit error(const std::string& what) : std::runtime_error(what) {}
    explicit error(const char* what) : std::runtime_error(what) {}
};

/// Formats the message with fmt and throws earlyexit::error: the library's one way to report a
/// bad value, public so that code built on it (stages, loaders, demos) reports errors the same
/// way. Checked at compile time like fmt::format. [[noreturn]] and cold: it stays out of line of
/// the callers' fast paths.
///   earlyexit::fail("threshold {} is out of range [0, 1]", t);
template <class... Args>
[[noreturn]] [[gnu::cold]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace earlyexit
