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
    std::optional<std::size_t> frequency(const exit_context<float>&) const noexcept { return 4; }
    void update(const episode<float>&) noexcept { ++updated; }
    void prepare(const network_info&) { prepared = true; }
    bool needs_label() const noexcept { return true; }
    void reset() { ++resets; }
    void merge(const everything& o) { merged += 1 + o.merged; }
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
    CHECK(hooks::frequency(b, c) == std::nullopt);
    CHECK_FALSE(hooks::needs_label(b));
    hooks::reset(b);
    hooks::merge(b, b);

    everything e;
    hooks::begin(e, s);
    CHECK(e.begun == 1);
    CHECK(hooks::first_check(e, s) == 2);
    CHECK(hooks::next_check(e, c) == 4);
    CHECK(hooks::frequency(e, c) == std::optional<std::size_t>(4));
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
