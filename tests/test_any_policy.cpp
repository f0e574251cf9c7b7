#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/policy/any_policy.hpp>
#include <earlyexit/policy/static.hpp>
#include <earlyexit/runner.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

namespace {

/// A learning policy: counts updates, merges by adding.
struct counting_policy {
    int updates = 0;
    static constexpr std::string_view name() noexcept { return "counting"; }
    decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    void update(const episode<float>&) noexcept { ++updates; }
    void reset() { updates = 0; }
    void merge(const counting_policy& o) { updates += o.updates; }
};

struct unnamed_policy {
    decision decide(const exit_context<float>&) const noexcept { return decision::stop; }
};

}  // namespace

TEST_CASE("any_policy makes the same decisions and asks for the same heads as the policy it wraps",
          "[policy][any]") {
    counters count;
    const std::size_t samples = 100;
    const auto table = random_table(samples, 5, 4, 11);
    const auto net = scripted_network(5, {0, 1, 2, 3, 4}, table, count);
    const std::vector<any_policy<float>> erased{policy::max_prob{0.6}, policy::entropy{0.5}, policy::margin{0.3},
                                                policy::patience{2},  policy::fixed{3},      policy::full{}};
    auto check_same = [&](auto typed, const any_policy<float>& e) {
        auto a = make_runner(net, typed, simulated_clock{});
        auto b = make_runner(net, e, simulated_clock{});
        for (std::size_t i = 0; i < samples; ++i) {
            scripted_state s1{i, 0}, s2{i, 0};
            const auto r1 = a.run(s1);
            const auto r2 = b.run(s2);
            CHECK(r1.head == r2.head);
            CHECK(r1.heads_evaluated == r2.heads_evaluated);
            CHECK(r1.macs == r2.macs);
            CHECK(r1.predicted == r2.predicted);
        }
    };
    check_same(policy::max_prob{0.6}, erased[0]);
    check_same(policy::entropy{0.5}, erased[1]);
    check_same(policy::margin{0.3}, erased[2]);
    check_same(policy::patience{2}, erased[3]);
    check_same(policy::fixed{3}, erased[4]);
    check_same(policy::full{}, erased[5]);
    CHECK(erased[0].name() == "max_prob");
    CHECK(erased[4].name() == "fixed");
}

TEST_CASE("any_policy forwards learning hooks, copies deeply and merges only like with like", "[policy][any]") {
    counters count;
    const auto table = random_table(10, 3, 4, 2);
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    auto runner = make_runner(net, any_policy<float>(counting_policy{}), simulated_clock{});
    for (std::size_t i = 0; i < 10; ++i) {
        scripted_state s{i, 0};
        (void)runner.run(s);
    }
    any_policy<float>& p = runner.policy();
    REQUIRE(p.target<counting_policy>() != nullptr);
    CHECK(p.target<counting_policy>()->updates == 10);
    CHECK(p.target<policy::max_prob>() == nullptr);

    any_policy<float> copy = p;
    copy.merge(p);
    CHECK(copy.target<counting_policy>()->updates == 20);
    CHECK(p.target<counting_policy>()->updates == 10);  // the copy is independent
    copy.reset();
    CHECK(copy.target<counting_policy>()->updates == 0);

    const any_policy<float> other = policy::max_prob{0.5};
    CHECK_THROWS_WITH(copy.merge(other), Contains("cannot merge a max_prob into a counting"));
    const any_policy<float> unnamed = unnamed_policy{};
    CHECK_FALSE(unnamed.name().empty());
}

TEST_CASE("any_policy reports the needs of the wrapped policy", "[policy][any]") {
    any_policy<float> o = policy::oracle{};
    CHECK(o.needs_label());
    any_policy<float> m = policy::max_prob{0.5};
    CHECK_FALSE(m.needs_label());
    CHECK(m.first_check({}) == 0);
    any_policy<float> f = policy::full{};
    CHECK(f.first_check({}) == npos);
    network_info info;
    info.heads = 2;
    any_policy<float> bad = policy::fixed{5};
    CHECK_THROWS_WITH(bad.prepare(info), Contains("head 5 does not exist"));
    STATIC_REQUIRE(exit_policy<any_policy<float>, float>);
    STATIC_REQUIRE(exit_policy<any_policy<double>, double>);
}

TEST_CASE("a moved-from any_policy throws from its throwing hooks and cannot build a runner", "[policy][any]") {
    any_policy<float> from = counting_policy{};
    any_policy<float> to = std::move(from);
    CHECK(to.name() == "counting");
    const std::string moved = "any_policy: used after being moved from";
    CHECK_THROWS_WITH(from.prepare(network_info{}), moved + " (called prepare); assign it a policy first");
    CHECK_THROWS_WITH(from.reset(), Contains(moved) && Contains("reset"));
    CHECK_THROWS_WITH((void)from.name(), Contains(moved) && Contains("name"));
    CHECK_THROWS_WITH(from.merge(to), Contains(moved) && Contains("merge"));
    CHECK_THROWS_WITH(to.merge(from), Contains(moved) && Contains("merge (its argument)"));
    CHECK(from.target<counting_policy>() == nullptr);
    CHECK(to.target<counting_policy>() != nullptr);

    counters count;
    const auto table = random_table(2, 3, 4, 2);
    const auto net = scripted_network(3, {0, 1, 2}, table, count);
    CHECK_THROWS_WITH(make_runner(net, from), Contains(moved));
    // Moving out of a runner's policy leaves the same state.
    auto runner = make_runner(net, any_policy<float>(policy::max_prob{0.5}));
    any_policy<float> taken = std::move(runner.policy());
    CHECK(taken.name() == "max_prob");
    CHECK_THROWS_WITH(runner.policy().reset(), Contains(moved));

    // Copies of a moved-from any_policy are moved-from; assigning a policy makes it usable again.
    any_policy<float> copy = from;
    CHECK_THROWS_WITH(copy.reset(), Contains(moved));
    copy = to;
    CHECK(copy.name() == "counting");
    from = policy::fixed{1};
    CHECK(from.name() == "fixed");
    auto revived = make_runner(net, from, simulated_clock{});
    scripted_state s{0, 0};
    CHECK(revived.run(s).head == 1);
    any_policy<float> self = policy::full{};
    any_policy<float>& alias = self;
    self = std::move(alias);  // a self-move keeps the policy
    CHECK(self.name() == "full");
}
