// policy::frozen: every hook but update() reaches the wrapped policy; a frozen learner's table
// never changes, and its decisions are the wrapped rule's.
#include <cmath>
#include <cstddef>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>

#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

namespace {
const float ln9 = std::log(9.0f);
}  // namespace

TEST_CASE("frozen forwards decide, first_check and next_check, and never learns", "[policy][frozen]") {
    // Head 0 says class 0 at max-prob 0.9; heads 1 and 2 likewise.
    const logit_table table{{{ln9, 0}, {ln9, 0}, {ln9, 0}}};
    counters count;
    const auto net = scripted_network(3, {0, 1, 2}, table, count, {1, 1, 1}, 1.0);
    // A DEE learner trained on a few samples: its table is what the frozen copy must keep.
    auto trainer = make_runner(net, policy::dee<>(dee_options{.lambda = 0.1, .alpha = 0.0, .confidence_bins = 2}));
    for (int i = 0; i < 3; ++i) {
        scripted_state s{0, 0};
        (void)trainer.run(s, sample_info{0});
    }
    const policy::dee<> learned = trainer.policy();
    auto frozen_runner = make_runner(net, policy::frozen(learned));
    auto learning_runner = make_runner(net, learned);
    for (int i = 0; i < 5; ++i) {
        scripted_state a{0, 0}, b{0, 0};
        const auto fr = frozen_runner.run(a, sample_info{0});
        const auto lr = learning_runner.run(b, sample_info{0});
        CHECK(fr.head == lr.head);  // the same rule (learning does not change it on this sample)
    }
    CHECK(frozen_runner.policy().inner().table() == learned.table());  // nothing learned
    CHECK_FALSE(learning_runner.policy().table() == learned.table());  // the unfrozen copy learned
    CHECK(frozen_runner.policy().name() == "dee_frozen");

    // Hooks: predictive's start head and forecast pass through.
    const policy::predictive p({.beta = 0.95, .start_head = 1, .test = exit_test::log_softmax}, {1.0, 1.0, 1.0});
    auto fp = policy::frozen(p);
    CHECK(fp.first_check(sample_info{}) == 1);
    CHECK(fp.name() == "predictive_frozen");
    STATIC_REQUIRE(hooks::check<policy::frozen<policy::predictive>, float>());
    STATIC_REQUIRE(exit_policy<policy::frozen<policy::dee<>>, float>);
}
