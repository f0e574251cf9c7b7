#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/observer.hpp>

using namespace earlyexit;

namespace {
struct heads_only {
    int heads = 0, exits = 0;
    void on_head(const exit_context<float>&) noexcept { ++heads; }
    void on_exit(const exit_result<float>&, const episode<float>&) noexcept { ++exits; }
};
struct stages_only {
    void on_stage(std::size_t, double, double) noexcept {}
};
}  // namespace

TEST_CASE("observer taps are detected and called only when present", "[observer]") {
    STATIC_REQUIRE_FALSE(detail::observes_stages<no_observer>);
    STATIC_REQUIRE_FALSE(detail::observes_stages<heads_only>);
    STATIC_REQUIRE(detail::observes_stages<stages_only>);
    heads_only h;
    no_observer none;
    const exit_context<float> c;
    const exit_result<float> r;
    const episode<float> e;
    detail::observe_head(h, c);
    detail::observe_exit(h, r, e);
    detail::observe_head(none, c);
    detail::observe_exit(none, r, e);
    CHECK(h.heads == 1);
    CHECK(h.exits == 1);
}
