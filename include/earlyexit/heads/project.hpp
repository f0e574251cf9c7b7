#pragma once
// projected_head and project: feed a head one part of a larger state.

#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>

#include "concept.hpp"

namespace earlyexit {

/// Runs `head` on `projection(state)`: attaches a head that reads, say, an Eigen vector to a
/// network whose state is a larger struct. The projection must return a reference or a cheap
/// view (it runs on the hot path) and must not throw.
template <class Head, class Projection>
class projected_head {
public:
    projected_head(Head head, Projection projection) : head_(std::move(head)), proj_(std::move(projection)) {}

    [[nodiscard]] std::size_t num_classes() const noexcept { return static_cast<std::size_t>(head_.num_classes()); }
    [[nodiscard]] double macs() const noexcept { return head_macs(head_); }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return head_workspace_size(head_); }
    [[nodiscard]] std::size_t input_size() const noexcept
        requires detail::head_with_input_size<Head>
    {
        return head_.input_size();
    }
    [[nodiscard]] const Head& inner() const noexcept { return head_; }

    template <class Input, class Scalar>
        requires std::invocable<const Projection&, const Input&>
    void operator()(const Input& x, std::span<Scalar> logits, std::span<Scalar> ws) const noexcept {
        decltype(auto) part = proj_(x);
        detail::invoke_head(head_, part, logits, ws);
    }

private:
    Head head_;
    Projection proj_;
};

/// project(head, projection): see projected_head.
template <class Head, class Projection>
[[nodiscard]] projected_head<std::decay_t<Head>, std::decay_t<Projection>> project(Head&& head,
                                                                                     Projection&& projection) {
    return {std::forward<Head>(head), std::forward<Projection>(projection)};
}

}  // namespace earlyexit
