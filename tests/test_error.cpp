#include <catch2/catch.hpp>
#include <earlyexit/error.hpp>

TEST_CASE("earlyexit::error is a std::runtime_error carrying the formatted message", "[error]") {
    STATIC_REQUIRE(std::is_base_of_v<std::runtime_error, earlyexit::error>);
    try {
        earlyexit::fail("value {} out of range [{}, {}]", 1.5, 0, 1);
        FAIL("fail() returned");
    } catch (const earlyexit::error& e) {
        CHECK(std::string(e.what()) == "value 1.5 out of range [0, 1]");
    }
    CHECK_THROWS_AS(earlyexit::fail("x"), std::runtime_error);
}
