#pragma once
// what_of(f): the message of the earlyexit::error that f throws, for tests that compare whole
// messages (Catch's CHECK_THROWS_WITH only matches).

#include <functional>
#include <string>

#include <earlyexit/error.hpp>

namespace earlyexit_test {

inline std::string what_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const earlyexit::error& e) {
        return e.what();
    }
    return "(no earlyexit::error thrown)";
}

}  // namespace earlyexit_test
