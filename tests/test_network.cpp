#include <array>
#include <span>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/network.hpp>
#include <fmt/format.h>

#include "support.hpp"

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {

using vec = Eigen::VectorXf;

linear_head<float> identity_head(int classes, int inputs) {
    return {Eigen::MatrixXf::Identity(classes, inputs), Eigen::VectorXf::Zero(classes)};
}

auto doubling() {
    return [](vec& x) { x *= 2.f; };
}

}  // namespace

TEST_CASE("a compile-time network records positions and declared costs", "[network]") {
    const auto net = make_network<vec>()
                         .stage(doubling(), {.macs = 100})
                         .stage(doubling(), {.macs = 200})
                         .exit(identity_head(3, 4))
                         .stage(doubling(), {.macs = 300, .output_size = 4})
                         .exit(identity_head(3, 4), {.macs = 7})
                         .build();
    CHECK(net.num_stages() == 3);
    CHECK(net.num_heads() == 2);
    CHECK(net.num_classes() == 3);
    CHECK(net.head_position(0) == 1);
    CHECK(net.head_position(1) == 2);
    CHECK(net.head_macs_at(0) == 15.0);  // the head's own macs(): 12 + 3
    CHECK(net.head_macs_at(1) == 7.0);   // overridden by head_info
    CHECK(net.full_macs() == 100 + 200 + 300 + 7);
    const network_info info = net.info();
    CHECK(info.stages == 3);
    CHECK(info.heads == 2);
    CHECK(info.classes == 3);
    CHECK(std::vector<std::size_t>(info.head_positions.begin(), info.head_positions.end()) ==
          std::vector<std::size_t>{1, 2});
    CHECK(info.full_macs == 607.0);
    CHECK(info.macs_through(1) == 300.0);
    STATIC_REQUIRE(std::is_same_v<decltype(net)::state_type, vec>);
}

TEST_CASE("run_stage and run_head dispatch to the right element of a heterogeneous list", "[network]") {
    struct add_one {
        void operator()(vec& x) const { x.array() += 1.f; }
    };
    auto net = make_network<vec>()
                   .stage(doubling(), {.macs = 1})
                   .exit(identity_head(2, 2))
                   .stage(add_one{}, {.macs = 1})
                   .exit(make_head([](const vec& x, std::span<float> out) { out[0] = -x[0]; out[1] = -x[1]; }, 2))
                   .build();
    vec x = vec::Ones(2);
    net.run_stage(0, x);
    CHECK(x(0) == 2.f);
    net.run_stage(1, x);
    CHECK(x(0) == 3.f);
    std::array<float, 2> out{};
    std::vector<float> ws;
    net.run_head(0, x, out, ws);
    CHECK(out == std::array<float, 2>{3.f, 3.f});
    net.run_head(1, x, out, ws);
    CHECK(out == std::array<float, 2>{-3.f, -3.f});
}

TEST_CASE("the last position must carry a head", "[network][error]") {
    CHECK_THROWS_WITH(make_network<vec>().stage(doubling()).exit(identity_head(2, 2)).stage(doubling()).build(),
                      Contains("no head at the last position (stage 1)"));
    CHECK_THROWS_WITH(make_network<vec>().build(), Contains("at least one stage"));
    dynamic_network_builder<vec> b;
    b.stage(doubling());
    CHECK_THROWS_WITH(b.build(), Contains("no head at the last position (stage 0)"));
}

TEST_CASE("heads attach after a stage, one per position", "[network][error]") {
    CHECK_THROWS_WITH(make_network<vec>().exit(identity_head(2, 2)), Contains("exit 0 added before any stage"));
    CHECK_THROWS_WITH(make_network<vec>().stage(doubling()).exit(identity_head(2, 2)).exit(identity_head(2, 2)),
                      Contains("stage 0 already has head 0"));
}

TEST_CASE("head/stage shape and class-count mismatches are configuration errors", "[network][error]") {
    CHECK_THROWS_WITH(make_network<vec>()
                          .stage(doubling(), {.output_size = 8})
                          .exit(identity_head(2, 4))
                          .build(),
                      Contains("head 0 expects 4 inputs but stage 0 outputs 8"));
    CHECK_THROWS_WITH(make_network<vec>()
                          .stage(doubling())
                          .exit(identity_head(2, 2))
                          .stage(doubling())
                          .exit(identity_head(3, 3))
                          .build(),
                      Contains("head 1 has 3 classes but head 0 has 2"));
}

TEST_CASE("declared costs must be finite and non-negative", "[network][error]") {
    CHECK_THROWS_WITH(make_network<vec>().stage(doubling(), {.macs = -5}).exit(identity_head(2, 2)).build(),
                      Contains("stage 0: declared macs -5"));
    CHECK_THROWS_WITH(make_network<vec>()
                          .stage(doubling())
                          .exit(identity_head(2, 2), {.macs = std::numeric_limits<double>::quiet_NaN()})
                          .build(),
                      Contains("head 0: declared macs nan"));
}

TEST_CASE("a network whose declared costs are all 0 is refused, saying how to declare them", "[network][error]") {
    const auto free_head = [] { return make_head([](const vec&, std::span<float> out) { out[0] = out[1] = 0.f; }, 2); };
    const auto message = [](std::size_t stages, std::size_t heads) {
        return fmt::format("multi_exit_network: every declared cost is 0 ({} stages, {} heads), so compute savings "
                           "would all read 0; declare them with stage(f, {{.macs = ...}}) and a head's macs() or "
                           "exit(h, head_info{{.macs = ...}}) ({{.macs = 1}} per stage counts stages)",
                           stages, heads);
    };
    CHECK_THROWS_WITH(make_network<vec>().stage(doubling()).exit(free_head()).stage(doubling()).exit(free_head()).build(),
                      message(2, 2));
    CHECK_THROWS_WITH(make_network<vec>().stage(doubling(), {.macs = 0}).exit(free_head(), {.macs = 0.0}).build(),
                      message(1, 1));
    dynamic_network_builder<vec> b;
    b.stages(3, [](std::size_t, vec&) {}, [](std::size_t) { return stage_info{}; });
    b.exit(free_head());
    CHECK_THROWS_WITH(b.build(), message(3, 1));
    // One declared cost anywhere is enough: a stage, a head's macs(), or a head_info.
    CHECK(make_network<vec>().stage(doubling(), {.macs = 1}).exit(free_head()).build().full_macs() == 1.0);
    CHECK(make_network<vec>().stage(doubling()).exit(identity_head(2, 2)).build().full_macs() == 6.0);
    CHECK(make_network<vec>().stage(doubling()).exit(free_head(), {.macs = 2}).build().full_macs() == 2.0);
    // Only an early head declared: the plain network (the savings' denominator) would cost 0.
    CHECK_THROWS_WITH(make_network<vec>()
                          .stage(doubling())
                          .exit(free_head(), {.macs = 3})
                          .stage(doubling())
                          .exit(free_head())
                          .build(),
                      Contains("the plain network (every stage and the final head 1) declares cost 0") &&
                          Contains("savings would divide by 0"));
}

TEST_CASE("a named compile-time builder is used through std::move", "[network]") {
    auto started = make_network<vec>();
    auto with_stage = std::move(started).stage(doubling(), {.macs = 5});
    auto with_exit = std::move(with_stage).exit(identity_head(2, 2));
    const auto net = std::move(with_exit).build();
    CHECK(net.num_stages() == 1);
    CHECK(net.full_macs() == 5.0 + 6.0);
    // Plain calls on it are a compile error that says so (tests/compile_fail/named_builder_*.cpp).
    STATIC_REQUIRE(std::is_same_v<decltype(std::move(started).stage(doubling())),
                                  decltype(make_network<vec>().stage(doubling()))>);
}

TEST_CASE("dynamic networks are assembled at run time from an indexed forward pass", "[network]") {
    std::vector<int> calls(4, 0);
    dynamic_network_builder<vec> b;
    b.stages(
        4, [&calls](std::size_t i, vec& x) { ++calls[i]; x.array() += static_cast<float>(i); },
        [](std::size_t i) { return stage_info{.macs = 10.0 * static_cast<double>(i + 1), .output_size = 2}; });
    b.exit(identity_head(2, 2));
    CHECK(b.num_stages() == 4);
    const auto net = b.build();
    CHECK(net.num_heads() == 1);
    CHECK(net.head_position(0) == 3);
    CHECK(net.full_macs() == 10 + 20 + 30 + 40 + 6);
    vec x = vec::Zero(2);
    for (std::size_t p = 0; p < 4; ++p) net.run_stage(p, x);
    CHECK(x(0) == 6.f);
    CHECK(calls == std::vector<int>{1, 1, 1, 1});
    // Shape checks reach through the type-erased head.
    dynamic_network_builder<vec> bad;
    bad.stage([](vec&) {}, {.output_size = 3});
    bad.exit(identity_head(2, 2));
    CHECK_THROWS_WITH(bad.build(), Contains("head 0 expects 2 inputs but stage 0 outputs 3"));
}

TEST_CASE("the scripted test network has the layout it was asked for", "[network]") {
    earlyexit_test::counters count;
    const auto table = earlyexit_test::random_table(2, 3, 4, 1);
    const auto net = earlyexit_test::scripted_network(6, {1, 3, 5}, table, count);
    CHECK(net.num_stages() == 6);
    CHECK(net.num_heads() == 3);
    CHECK(net.num_classes() == 4);
    CHECK(net.full_macs() == 61.0);
}
