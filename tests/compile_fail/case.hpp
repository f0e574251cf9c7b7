#pragma once
// What the compile-fail cases share: a minimal runnable network, and the two ways a policy is
// used (a basic_runner on it, an any_policy wrapping it). Nothing here runs: the cases only
// have to compile (control.cpp) or fail to (the others).

#include <cstddef>
#include <span>

#include <earlyexit/policy/any_policy.hpp>
#include <earlyexit/runner.hpp>

namespace compile_fail {

template <class Scalar = float>
struct tiny_network {
    using state_type = int;
    using scalar_type = Scalar;
    earlyexit::network_info info() const noexcept { return {}; }
    std::size_t workspace_size() const noexcept { return 0; }
    void run_stage(std::size_t, int&) const noexcept {}
    void run_head(std::size_t, const int&, std::span<Scalar>, std::span<Scalar>) const noexcept {}
};

/// Builds a runner for P (which instantiates basic_runner<..., P>) and runs a sample.
template <class P, class Scalar = float>
void run_with(P p) {
    const tiny_network<Scalar> net;
    earlyexit::basic_runner<tiny_network<Scalar>, P, earlyexit::simulated_clock> runner(net, std::move(p));
    int state = 0;
    (void)runner.run(state);
}

/// Wraps P in an any_policy (which instantiates its model for P).
template <class P, class Scalar = float>
earlyexit::any_policy<Scalar> erase(P p) {
    return earlyexit::any_policy<Scalar>(std::move(p));
}

}  // namespace compile_fail
