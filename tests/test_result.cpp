#include <catch2/catch.hpp>
#include <earlyexit/result.hpp>

using namespace earlyexit;

TEST_CASE("exit_result tells an early exit from a final one", "[result]") {
    network_info n;
    n.heads = 3;
    exit_result<float> r;
    r.head = 1;
    CHECK(r.exited_early(n));
    r.head = 2;
    CHECK_FALSE(r.exited_early(n));
    const episode_step<float> step;
    CHECK(step.taken == decision::proceed);
    const episode<double> e;
    CHECK(e.steps.empty());
}
