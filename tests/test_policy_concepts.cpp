#include <optional>

#include <catch2/catch.hpp>
#include <earlyexit/policy/concepts.hpp>

using namespace earlyexit;

namespace {

struct bare {
    decision decide(const exit_context<float>&) const noexcept { return decision::stop; }
};

struct throwing_decide {
    decision decide(const exit_context<float>&) const { return decision::stop; }  // not noexcept
};

struct wrong_return {
    bool decide(const exit_context<float>&) const noexcept { return true; }
};

struct everything {
    int begun = 0, updated = 0, resets = 0, merged = 0;
    bool prepared = false;
    decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    void begin(const sample_info&) noexcept { ++begun; }
    std::size_t first_check(const sample_info&) const noexcept { return 2; }
    std::size_t next_check(const exit_context<float>& c) const noexcept { return c.head + 3; }
    std::optional<std::size_t> frequency(const frequency_context<float>&) const noexcept { return 4; }
    void update(const episode<float>&) noexcept { ++updated; }
    void prepare(const network_info&) { prepared = true; }
    bool needs_label() const noexcept { return true; }
    void reset() { ++resets; }
    void merge(const everything& o) { merged += 1 + o.merged; }
};

// Mis-typed hooks: each names a hook the detection does not accept.
struct update_non_const : bare {
    void update(episode<float>&) noexcept {}
};
struct update_double : bare {
    void update(const episode<double>&) noexcept {}
};
struct next_check_void : bare {
    void next_check(const exit_context<float>&) const noexcept {}
};
struct first_check_context : bare {
    std::size_t first_check(const exit_context<float>&) const noexcept { return 0; }
};
struct merge_int : bare {
    void merge(const int&) {}
};
struct needs_label_mutable : bare {
    bool needs_label() noexcept { return true; }
};
struct reset_data_member : bare {
    int reset = 0;  // a data member named like a hook is flagged too
};

/// Templated and overloaded hooks: named, and accepted for every Scalar they take.
struct templated {
    template <std::floating_point S>
    decision decide(const exit_context<S>&) const noexcept { return decision::stop; }
    template <std::floating_point S>
    void update(const episode<S>&) noexcept {}
    std::size_t next_check(const exit_context<float>& c) const noexcept { return c.head + 1; }
    std::size_t next_check(const exit_context<double>& c) const noexcept { return c.head + 2; }
};

/// A final class cannot be probed by derivation; its non-overloaded hooks are still named.
struct sealed final {
    decision decide(const exit_context<float>&) const noexcept { return decision::stop; }
    void update(episode<float>&) noexcept {}
};

}  // namespace

TEST_CASE("the policy concept requires a noexcept decide returning a decision", "[policy][concepts]") {
    STATIC_REQUIRE(exit_policy<bare, float>);
    STATIC_REQUIRE_FALSE(exit_policy<throwing_decide, float>);
    STATIC_REQUIRE_FALSE(exit_policy<wrong_return, float>);
    STATIC_REQUIRE_FALSE(exit_policy<bare, double>);  // its decide takes float contexts only
    STATIC_REQUIRE_FALSE(exit_policy<int, float>);
}

TEST_CASE("optional hooks are detected at compile time", "[policy][concepts]") {
    STATIC_REQUIRE_FALSE(hooks::has_begin<bare>);
    STATIC_REQUIRE_FALSE(hooks::has_next_check<bare, float>);
    STATIC_REQUIRE_FALSE(hooks::has_update<bare, float>);
    STATIC_REQUIRE(hooks::has_begin<everything>);
    STATIC_REQUIRE(hooks::has_first_check<everything>);
    STATIC_REQUIRE(hooks::has_next_check<everything, float>);
    STATIC_REQUIRE(hooks::has_frequency<everything, float>);
    STATIC_REQUIRE(hooks::has_update<everything, float>);
    STATIC_REQUIRE(hooks::has_prepare<everything>);
    STATIC_REQUIRE(hooks::has_needs_label<everything>);
    STATIC_REQUIRE(hooks::has_reset<everything>);
    STATIC_REQUIRE(hooks::has_merge<everything>);
}

TEST_CASE("hook callers apply the defaults for missing hooks and call present ones", "[policy][concepts]") {
    exit_context<float> c;
    c.head = 1;
    const sample_info s{};
    bare b;
    hooks::begin(b, s);
    CHECK(hooks::first_check(b, s) == 0);
    CHECK(hooks::next_check(b, c) == 2);
    CHECK(hooks::frequency(b, frequency_context<float>{}) == std::nullopt);
    CHECK_FALSE(hooks::needs_label(b));
    hooks::reset(b);
    hooks::merge(b, b);

    everything e;
    hooks::begin(e, s);
    CHECK(e.begun == 1);
    CHECK(hooks::first_check(e, s) == 2);
    CHECK(hooks::next_check(e, c) == 4);
    CHECK(hooks::frequency(e, frequency_context<float>{}) == std::optional<std::size_t>(4));
    hooks::update(e, episode<float>{});
    CHECK(e.updated == 1);
    hooks::prepare(e, network_info{});
    CHECK(e.prepared);
    CHECK(hooks::needs_label(e));
    hooks::reset(e);
    CHECK(e.resets == 1);
    everything other;
    other.merged = 2;
    hooks::merge(e, other);
    CHECK(e.merged == 3);
}

TEST_CASE("a member named like a hook is detected whatever its signature", "[policy][concepts]") {
    STATIC_REQUIRE_FALSE(hooks::names_begin<bare>);
    STATIC_REQUIRE_FALSE(hooks::names_update<bare>);
    STATIC_REQUIRE_FALSE(hooks::names_merge<bare>);
    STATIC_REQUIRE_FALSE(hooks::names_update<int>);
    STATIC_REQUIRE(hooks::names_begin<everything>);
    STATIC_REQUIRE(hooks::names_first_check<everything>);
    STATIC_REQUIRE(hooks::names_next_check<everything>);
    STATIC_REQUIRE(hooks::names_frequency<everything>);
    STATIC_REQUIRE(hooks::names_update<everything>);
    STATIC_REQUIRE(hooks::names_prepare<everything>);
    STATIC_REQUIRE(hooks::names_needs_label<everything>);
    STATIC_REQUIRE(hooks::names_reset<everything>);
    STATIC_REQUIRE(hooks::names_merge<everything>);
    STATIC_REQUIRE_FALSE(hooks::names_reset<update_non_const>);  // it names update only

    // Named, and not callable as the hook: hooks::check<P, Scalar>() rejects these (the
    // compile errors themselves are tested in tests/compile_fail/).
    STATIC_REQUIRE(hooks::names_update<update_non_const>);
    STATIC_REQUIRE_FALSE(hooks::has_update<update_non_const, float>);
    STATIC_REQUIRE(hooks::names_update<update_double>);
    STATIC_REQUIRE_FALSE(hooks::has_update<update_double, float>);
    STATIC_REQUIRE(hooks::has_update<update_double, double>);
    STATIC_REQUIRE(hooks::names_next_check<next_check_void>);
    STATIC_REQUIRE_FALSE(hooks::has_next_check<next_check_void, float>);
    STATIC_REQUIRE(hooks::names_first_check<first_check_context>);
    STATIC_REQUIRE_FALSE(hooks::has_first_check<first_check_context>);
    STATIC_REQUIRE(hooks::names_merge<merge_int>);
    STATIC_REQUIRE_FALSE(hooks::has_merge<merge_int>);
    STATIC_REQUIRE(hooks::names_needs_label<needs_label_mutable>);
    STATIC_REQUIRE_FALSE(hooks::has_needs_label<needs_label_mutable>);
    STATIC_REQUIRE(hooks::names_reset<reset_data_member>);
    STATIC_REQUIRE_FALSE(hooks::has_reset<reset_data_member>);
    STATIC_REQUIRE(hooks::names_update<sealed>);
    STATIC_REQUIRE_FALSE(hooks::has_update<sealed, float>);
}

TEST_CASE("templated and overloaded hooks are named and accepted", "[policy][concepts]") {
    STATIC_REQUIRE(hooks::names_update<templated>);
    STATIC_REQUIRE(hooks::has_update<templated, float>);
    STATIC_REQUIRE(hooks::has_update<templated, double>);
    STATIC_REQUIRE(hooks::names_next_check<templated>);
    STATIC_REQUIRE(hooks::has_next_check<templated, float>);
    STATIC_REQUIRE(hooks::has_next_check<templated, double>);
    STATIC_REQUIRE(hooks::check<templated, float>());
    STATIC_REQUIRE(hooks::check<templated, double>());
    STATIC_REQUIRE(hooks::check<everything, float>());
    STATIC_REQUIRE(hooks::check<bare, float>());
    exit_context<double> c;
    c.head = 1;
    templated t;
    CHECK(hooks::next_check(t, c) == 3);  // the double overload
}
