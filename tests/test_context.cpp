#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/context.hpp>

using namespace earlyexit;

TEST_CASE("network_info sums declared stage costs", "[context]") {
    const std::vector<double> stages{10, 20, 30};
    const std::vector<double> heads{1, 2};
    const std::vector<std::size_t> positions{1, 2};
    const network_info n{3, 2, 5, positions, stages, heads, 62};
    CHECK(n.macs_through(0) == 10);
    CHECK(n.macs_through(1) == 30);
    CHECK(n.macs_through(2) == 60);
    CHECK(n.macs_through(99) == 60);
}

TEST_CASE("exit_context knows whether it is final and its cost fraction", "[context]") {
    const std::vector<double> stages{10, 20, 30};
    const std::vector<double> heads{1, 2};
    const std::vector<std::size_t> positions{1, 2};
    const network_info n{3, 2, 5, positions, stages, heads, 62};
    exit_context<float> c;
    CHECK_FALSE(c.is_final());
    CHECK(c.cost_fraction() == 0.0);
    c.network = &n;
    c.head = 0;
    c.elapsed_macs = 31;
    CHECK_FALSE(c.is_final());
    CHECK(c.cost_fraction() == 0.5);
    c.head = 1;
    CHECK(c.is_final());
    sample_info s;
    CHECK_FALSE(s.label.has_value());
    CHECK(npos == std::numeric_limits<std::size_t>::max());
}
