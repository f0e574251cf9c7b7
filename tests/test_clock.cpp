#include <catch2/catch.hpp>
#include <earlyexit/clock.hpp>

using namespace earlyexit;
using Catch::Matchers::Contains;

TEST_CASE("simulated_clock advances by macs / rate plus the per-item overhead", "[clock]") {
    simulated_clock c(1e6, 1e-6);
    CHECK(c.now() == 0.0);
    c.on_work(2e6);
    CHECK(c.now() == Approx(2.0 + 1e-6));
    c.advance(0.5);
    CHECK(c.now() == Approx(2.5 + 1e-6));
    CHECK(c.rate() == 1e6);
    STATIC_REQUIRE(runner_clock<simulated_clock>);
    STATIC_REQUIRE(runner_clock<wall_clock>);
    STATIC_REQUIRE_FALSE(runner_clock<int>);
}

TEST_CASE("simulated_clock rejects a non-positive rate and a negative overhead", "[clock][error]") {
    CHECK_THROWS_WITH(simulated_clock(0.0), Contains("rate 0 MACs/s must be finite and > 0"));
    CHECK_THROWS_WITH(simulated_clock(-3.0), Contains("rate -3"));
    CHECK_THROWS_WITH(simulated_clock(1.0, -1.0), Contains("overhead -1 s"));
}

TEST_CASE("wall_clock is monotonic", "[clock]") {
    const wall_clock c;
    const double a = c.now();
    double b = a;
    for (int i = 0; i < 1000; ++i) b = c.now();
    CHECK(b >= a);
}
