#pragma once
// policy::frozen: a learning policy with its learning switched off. Every hook is forwarded
// to the wrapped policy except update() (and reset()/merge(), which only concern learning), so
// the rule it has learned is applied as it stands: what a learner "converges to", evaluated
// without the exploring and the learning that an online run adds. calibrate_lambda() scores
// lambdas on the frozen rule; a server that wants a fixed rule (audited, reproducible) serves
// one. Zero cost: no indirection beyond the inlined forwarding.

#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "../context.hpp"
#include "concepts.hpp"

namespace earlyexit::policy {

/// The wrapped policy without update() (see the file comment). name() is the wrapped one's
/// plus "_frozen" when it has one.
template <class Policy>
class frozen {
public:
    explicit frozen(Policy inner) : inner_(std::move(inner)) {}

    [[nodiscard]] std::string name() const {
        if constexpr (requires { std::string_view(inner_.name()); })
            return std::string(std::string_view(inner_.name())) + "_frozen";
        else
            return "frozen";
    }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) noexcept {
        static_assert(exit_policy<Policy, Scalar>, "frozen: the wrapped policy is no exit policy for this scalar");
        return inner_.decide(c);
    }
    void begin(const sample_info& s) noexcept { hooks::begin(inner_, s); }
    [[nodiscard]] std::size_t first_check(const sample_info& s) noexcept { return hooks::first_check(inner_, s); }
    template <std::floating_point Scalar>
    [[nodiscard]] std::size_t next_check(const exit_context<Scalar>& c) noexcept {
        return hooks::next_check(inner_, c);
    }
    template <std::floating_point Scalar>
    [[nodiscard]] std::optional<std::size_t> frequency(const frequency_context<Scalar>& f) noexcept {
        return hooks::frequency(inner_, f);
    }
    void prepare(const network_info& n) { hooks::prepare(inner_, n); }
    [[nodiscard]] bool needs_label() const noexcept { return hooks::needs_label(inner_); }

    [[nodiscard]] Policy& inner() noexcept { return inner_; }
    [[nodiscard]] const Policy& inner() const noexcept { return inner_; }

private:
    Policy inner_;
};

}  // namespace earlyexit::policy
