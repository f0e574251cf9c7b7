#pragma once
// Static exit policies: fixed rules with one parameter, no learning.
//
//   max_prob(tau)   exit at the first head with max-prob >= tau            tau in [0, 1]
//   entropy(t)      exit when normalized entropy <= t (BranchyNet)          t in [0, 1]
//   margin(m)       exit when top-1 minus top-2 probability >= m            m in [0, 1]
//   patience(n)     exit when n evaluated heads in a row agree on top-1     n >= 1 (PABEE)
//   fixed(k)        evaluate head k only and exit there                     k < heads
//   full            evaluate the final head only: the plain network
//   probe           evaluate every head, never exit early (records traces; see trace/)
//   oracle          (evaluation only, needs labels) exit at the first head whose top-1 is
//                   correct, else at the final head: the lower bound on cost at the final
//                   head's accuracy or better.
// Invalid logits (NaN, +inf; see confidence.hpp) never trigger an exit. Every policy evaluates
// heads in order except fixed and full, which ask for exactly one head (first_check).
// Out-of-range parameters throw earlyexit::error naming the value.

#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <string_view>

#include "../context.hpp"
#include "../error.hpp"

namespace earlyexit {
namespace detail {

inline double unit_interval(double v, std::string_view policy, std::string_view what) {
    if (!(v >= 0.0 && v <= 1.0)) fail("{}: {} {} is out of range [0, 1]", policy, what, v);
    return v;
}

}  // namespace detail

namespace policy {

/// Exit at the first head whose largest class probability reaches the threshold.
class max_prob {
public:
    explicit max_prob(double threshold) : tau_(detail::unit_interval(threshold, "max_prob", "threshold")) {}
    [[nodiscard]] double threshold() const noexcept { return tau_; }
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "max_prob"; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        return c.measures.valid && static_cast<double>(c.measures.max_prob) >= tau_ ? decision::stop
                                                                                     : decision::proceed;
    }

private:
    double tau_;
};

/// Exit when the normalized entropy (entropy / ln C) falls to the threshold or below.
class entropy {
public:
    explicit entropy(double threshold) : t_(detail::unit_interval(threshold, "entropy", "threshold")) {}
    [[nodiscard]] double threshold() const noexcept { return t_; }
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "entropy"; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        return c.measures.valid && static_cast<double>(c.measures.entropy) <= t_ ? decision::stop
                                                                                  : decision::proceed;
    }

private:
    double t_;
};

/// Exit when the top-1 probability exceeds the top-2 one by at least the threshold.
class margin {
public:
    explicit margin(double threshold) : m_(detail::unit_interval(threshold, "margin", "threshold")) {}
    [[nodiscard]] double threshold() const noexcept { return m_; }
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "margin"; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        return c.measures.valid && static_cast<double>(c.measures.margin) >= m_ ? decision::stop
                                                                                 : decision::proceed;
    }

private:
    double m_;
};

/// Exit when `count` evaluated heads in a row (this one included) give the same top-1 class.
class patience {
public:
    explicit patience(std::size_t count) : n_(count) {
        if (n_ == 0) earlyexit::fail("patience: count {} must be >= 1", n_);
    }
    [[nodiscard]] std::size_t count() const noexcept { return n_; }
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "patience"; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        return c.patience >= n_ ? decision::stop : decision::proceed;
    }

private:
    std::size_t n_;
};

/// Evaluate head k only and exit there (k must name a head of the network it runs on).
class fixed {
public:
    explicit fixed(std::size_t head) : k_(head) {}
    [[nodiscard]] std::size_t head() const noexcept { return k_; }
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "fixed"; }

    void prepare(const network_info& net) const {
        if (k_ >= net.heads)
            earlyexit::fail("fixed: head {} does not exist; the network has {} heads (0..{})", k_,
                                    net.heads, net.heads - 1);
    }
    [[nodiscard]] std::size_t first_check(const sample_info&) const noexcept { return k_; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>&) const noexcept {
        return decision::stop;
    }

private:
    std::size_t k_;
};

/// Never exit early: the final head only, i.e. the plain network plus its classifier.
class full {
public:
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "full"; }
    [[nodiscard]] std::size_t first_check(const sample_info&) const noexcept {
        return std::numeric_limits<std::size_t>::max();  // past the last head: the final head
    }
    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>&) const noexcept {
        return decision::proceed;
    }
};

/// Probe mode: every head is evaluated and no sample exits early. A trace recorded this way
/// holds every head's output, which is what replay needs.
class probe {
public:
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "probe"; }
    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>&) const noexcept {
        return decision::proceed;
    }
};

/// Evaluation only: exits at the first head whose top-1 equals the label (the context's
/// sample's), else at the final head. Running it without a label is an error (the runner checks).
class oracle {
public:
    [[nodiscard]] static constexpr std::string_view name() noexcept { return "oracle"; }
    [[nodiscard]] bool needs_label() const noexcept { return true; }

    template <std::floating_point Scalar>
    [[nodiscard]] decision decide(const exit_context<Scalar>& c) const noexcept {
        const bool right = c.sample != nullptr && c.sample->label && c.measures.valid && c.measures.top1 == *c.sample->label;
        return right ? decision::stop : decision::proceed;
    }
};

}  // namespace policy
}  // namespace earlyexit
