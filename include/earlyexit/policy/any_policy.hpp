#pragma once
// any_policy<Scalar>: a type-erased exit policy for choosing one at run time (a command line,
// a config file). It forwards every hook, applying the same defaults as the runner for hooks
// the wrapped policy lacks, so a runner behaves identically with P and with any_policy(P).
// Cost: one indirect call per hook; the templated path has none. A value type: copying clones
// the wrapped policy.
//
// A moved-from any_policy holds no policy: copy it, assign it or destroy it, nothing else.
// Its hooks that may throw (prepare, reset, merge, name) throw earlyexit::error "any_policy:
// used after being moved from", so a runner cannot be built on one (its constructor calls
// prepare). Its noexcept per-sample hooks stay as cheap as any policy's (no added branch):
// in debug builds they fail an EARLYEXIT_ASSERT (abort, naming the misuse); otherwise they
// are inert (decide stops, the other hooks apply the defaults, nothing is learned).

#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "../config.hpp"
#include "../error.hpp"
#include "concepts.hpp"

namespace earlyexit {

template <std::floating_point Scalar = float>
class any_policy {
public:
    /// Wraps any exit_policy for Scalar. The name (for reports) is P::name() when P has one,
    /// otherwise the given fallback.
    template <class P>
        requires(!std::same_as<std::remove_cvref_t<P>, any_policy>) && exit_policy<std::remove_cvref_t<P>, Scalar>
    any_policy(P&& p)  // NOLINT(google-explicit-constructor): policies convert implicitly
        : self_(new model<std::remove_cvref_t<P>>(std::forward<P>(p))) {}

    /// A copy of a moved-from any_policy is moved-from too.
    any_policy(const any_policy& o) : self_(o.empty() ? moved_from() : o.self_->clone()) {}
    any_policy(any_policy&& o) noexcept : self_(std::exchange(o.self_, moved_from())) {}
    any_policy& operator=(const any_policy& o) {
        if (this != &o) {
            concept_t* copy = o.empty() ? moved_from() : o.self_->clone();
            destroy();
            self_ = copy;
        }
        return *this;
    }
    any_policy& operator=(any_policy&& o) noexcept {
        if (this != &o) {
            destroy();
            self_ = std::exchange(o.self_, moved_from());
        }
        return *this;
    }
    ~any_policy() { destroy(); }

    [[nodiscard]] decision decide(const exit_context<Scalar>& c) noexcept { return self_->decide(c); }
    void begin(const sample_info& s) noexcept { self_->begin(s); }
    [[nodiscard]] std::size_t first_check(const sample_info& s) noexcept { return self_->first_check(s); }
    [[nodiscard]] std::size_t next_check(const exit_context<Scalar>& c) noexcept { return self_->next_check(c); }
    [[nodiscard]] std::optional<std::size_t> frequency(const frequency_context<Scalar>& c) noexcept {
        return self_->frequency(c);
    }
    void update(const episode<Scalar>& e) noexcept { self_->update(e); }
    void prepare(const network_info& n) { self_->prepare(n); }
    [[nodiscard]] bool needs_label() const noexcept { return self_->needs_label(); }
    void reset() { self_->reset(); }
    /// Merges another any_policy wrapping the same policy type; earlyexit::error otherwise.
    void merge(const any_policy& o) {
        if (o.empty()) moved_from_model::used("merge (its argument)");
        self_->merge(*o.self_);
    }

    /// The wrapped policy's name() when it has one, else its C++ type name.
    [[nodiscard]] std::string name() const { return self_->name(); }
    /// The wrapped policy, or nullptr when it is not a P.
    template <class P>
    [[nodiscard]] P* target() noexcept {
        auto* m = dynamic_cast<model<P>*>(self_);
        return m ? &m->p : nullptr;
    }
    template <class P>
    [[nodiscard]] const P* target() const noexcept {
        const auto* m = dynamic_cast<const model<P>*>(self_);
        return m ? &m->p : nullptr;
    }

private:
    struct concept_t {
        virtual ~concept_t() = default;
        virtual concept_t* clone() const = 0;  // owning
        virtual decision decide(const exit_context<Scalar>&) noexcept = 0;
        virtual void begin(const sample_info&) noexcept = 0;
        virtual std::size_t first_check(const sample_info&) noexcept = 0;
        virtual std::size_t next_check(const exit_context<Scalar>&) noexcept = 0;
        virtual std::optional<std::size_t> frequency(const frequency_context<Scalar>&) noexcept = 0;
        virtual void update(const episode<Scalar>&) noexcept = 0;
        virtual void prepare(const network_info&) = 0;
        virtual bool needs_label() const noexcept = 0;
        virtual void reset() = 0;
        virtual void merge(const concept_t&) = 0;
        virtual std::string name() const = 0;
    };

    template <class P>
    struct model final : concept_t {
        static_assert(hooks::check<P, Scalar>());  // every hook P names has the right signature

        template <class Q>
        explicit model(Q&& q) : p(std::forward<Q>(q)) {}
        concept_t* clone() const override { return new model(p); }
        decision decide(const exit_context<Scalar>& c) noexcept override { return p.decide(c); }
        void begin(const sample_info& s) noexcept override { hooks::begin(p, s); }
        std::size_t first_check(const sample_info& s) noexcept override { return hooks::first_check(p, s); }
        std::size_t next_check(const exit_context<Scalar>& c) noexcept override { return hooks::next_check(p, c); }
        std::optional<std::size_t> frequency(const frequency_context<Scalar>& c) noexcept override {
            return hooks::frequency(p, c);
        }
        void update(const episode<Scalar>& e) noexcept override { hooks::update(p, e); }
        void prepare(const network_info& n) override { hooks::prepare(p, n); }
        bool needs_label() const noexcept override { return hooks::needs_label(p); }
        void reset() override { hooks::reset(p); }
        void merge(const concept_t& o) override {
            const auto* other = dynamic_cast<const model*>(&o);
            if (other == nullptr)
                earlyexit::fail("any_policy::merge: cannot merge a {} into a {}", o.name(), name());
            hooks::merge(p, other->p);
        }
        std::string name() const override {
            if constexpr (requires { std::string_view(p.name()); }) return std::string(std::string_view(p.name()));
            else return typeid(P).name();
        }
        P p;
    };

    /// What a moved-from any_policy points to: one shared, stateless instance (see the header
    /// comment). Never deleted.
    struct moved_from_model final : concept_t {
        [[noreturn]] static void used(const char* hook) {
            earlyexit::fail("any_policy: used after being moved from (called {}); assign it a policy first", hook);
        }
        static void misused() noexcept { EARLYEXIT_ASSERT(false && "any_policy: used after being moved from"); }

        constexpr moved_from_model() noexcept = default;
        concept_t* clone() const override { used("clone"); }
        decision decide(const exit_context<Scalar>&) noexcept override {
            misused();
            return decision::stop;
        }
        void begin(const sample_info&) noexcept override { misused(); }
        std::size_t first_check(const sample_info&) noexcept override {
            misused();
            return 0;
        }
        std::size_t next_check(const exit_context<Scalar>& c) noexcept override {
            misused();
            return c.head + 1;
        }
        std::optional<std::size_t> frequency(const frequency_context<Scalar>&) noexcept override {
            misused();
            return std::nullopt;
        }
        void update(const episode<Scalar>&) noexcept override { misused(); }
        void prepare(const network_info&) override { used("prepare"); }
        bool needs_label() const noexcept override {
            misused();
            return false;
        }
        void reset() override { used("reset"); }
        void merge(const concept_t&) override { used("merge"); }
        std::string name() const override { used("name"); }
    };

    static constinit inline moved_from_model moved_from_{};
    [[nodiscard]] static concept_t* moved_from() noexcept { return &moved_from_; }
    [[nodiscard]] bool empty() const noexcept { return self_ == moved_from(); }
    void destroy() noexcept {
        if (!empty()) delete self_;
    }

    concept_t* self_;  // owning, except when it is moved_from()
};

}  // namespace earlyexit
