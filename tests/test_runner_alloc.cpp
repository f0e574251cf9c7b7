// The per-sample hot path makes no heap allocation: global operator new is replaced by a
// counting one, and a run of many samples must leave the count unchanged.

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>

#include "counting_new.hpp"

using earlyexit_test::allocations;

using namespace earlyexit;

namespace {

/// Activations with preallocated buffers: stages work in place.
struct state {
    Eigen::VectorXf x;
    Eigen::VectorXf tmp;
    Eigen::MatrixXf fmap;  // 8 channels x 4 positions, for the pooled head
};

struct dense_relu {
    Eigen::MatrixXf w;
    void operator()(state& s) const noexcept {
        s.tmp.noalias() = w * s.x;
        s.x = s.tmp.cwiseMax(0.f);
        s.fmap = Eigen::Map<const Eigen::MatrixXf>(s.x.data(), 8, 4);
    }
};

linear_head<float> random_linear(int out, int in) {
    return {Eigen::MatrixXf::Random(out, in), Eigen::VectorXf::Random(out)};
}

template <class Runner>
long allocations_during(Runner& runner, state& s, int samples, std::size_t& exits_before_final) {
    const long before = allocations.load();
    for (int i = 0; i < samples; ++i) {
        s.x.setRandom();
        const auto r = runner.run(s, {.index = static_cast<std::size_t>(i), .label = static_cast<std::size_t>(i % 10)});
        if (r.head + 1 < runner.info().heads) ++exits_before_final;
    }
    return allocations.load() - before;
}

}  // namespace

TEST_CASE("the runner's hot path allocates nothing (compile-time network, every head kind)", "[runner][alloc]") {
    const auto features = [](const state& s) -> const Eigen::VectorXf& { return s.x; };
    const auto fmap = [](const state& s) -> const Eigen::MatrixXf& { return s.fmap; };
    const auto net = make_network<state>()
                         .stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024})
                         .exit(project(random_linear(10, 32), features))
                         .stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024})
                         .exit(project(mlp_head<float>({random_linear(16, 32), random_linear(10, 16)}), features))
                         .stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024})
                         .exit(project(pooled_head<float>(random_linear(10, 8), 4), fmap))
                         .stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024})
                         .exit(project(grid_pooled_head<float>(random_linear(10, 32), 2, 2, 2, 0.5f), fmap))
                         .stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024})
                         .exit(project(random_linear(10, 32), features))
                         .build();
    state s{Eigen::VectorXf::Zero(32), Eigen::VectorXf::Zero(32), Eigen::MatrixXf::Zero(8, 4)};

    std::size_t early = 0;
    auto max_prob = make_runner(net, policy::max_prob{0.3}, simulated_clock{});
    CHECK(allocations_during(max_prob, s, 500, early) == 0);
    auto patience = make_runner(net, policy::patience{2});
    CHECK(allocations_during(patience, s, 500, early) == 0);
    auto oracle = make_runner(net, policy::oracle{});
    CHECK(allocations_during(oracle, s, 500, early) == 0);
    auto erased = make_runner(net, any_policy<float>(policy::entropy{0.9}));
    CHECK(allocations_during(erased, s, 500, early) == 0);
    CHECK(early > 0);  // the runs did exit early, so the exit path was exercised

    // The learning policies: decide, begin, first_check and update (the table, the scratch
    // records and the feedback ring are sized in prepare()), probes and late labels included.
    std::size_t dee_early = 0;
    auto dee = make_runner(net, policy::dee<>(dee_options{.lambda = 0.5, .probe_rate = 0.1}));
    CHECK(allocations_during(dee, s, 500, dee_early) == 0);
    auto agreement = make_runner(net, policy::dee<reward::agreement_reward>(dee_options{.lambda = 0.5, .probe_rate = 0.1}));
    CHECK(allocations_during(agreement, s, 500, dee_early) == 0);
    auto correctness = make_runner(net, policy::dee<reward::correctness_reward>(dee_options{.lambda = 0.5}));
    CHECK(allocations_during(correctness, s, 500, dee_early) == 0);
    CHECK(dee_early > 0);
    auto late = make_runner(net, policy::dee<reward::correctness_reward>(dee_options{.lambda = 0.5}));
    const long before = allocations.load();
    for (std::size_t i = 0; i < 300; ++i) {
        s.x.setRandom();
        (void)late.run(s, {.index = i});
        (void)late.policy().feedback(i, i % 10);
    }
    CHECK(allocations.load() - before == 0);
    CHECK(late.policy().visit_stats(0).count == 300);
    std::size_t bandit_early = 0;
    auto ucb = make_runner(net, policy::ucb_exit<>(bandit_options{.lambda = 0.5, .probe_rate = 0.1}));
    CHECK(allocations_during(ucb, s, 500, bandit_early) == 0);
    auto greedy = make_runner(net, policy::epsilon_greedy<>(bandit_options{.lambda = 0.5}));
    CHECK(allocations_during(greedy, s, 500, bandit_early) == 0);
    CHECK(bandit_early > 0);
}

TEST_CASE("the runner's hot path allocates nothing (run-time network, type-erased stages and heads)",
          "[runner][alloc]") {
    dynamic_network_builder<state> b;
    for (int i = 0; i < 4; ++i) {
        b.stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024});
        b.exit(project(random_linear(10, 32), [](const state& s) -> const Eigen::VectorXf& { return s.x; }));
    }
    const auto net = b.build();
    state s{Eigen::VectorXf::Zero(32), Eigen::VectorXf::Zero(32), Eigen::MatrixXf::Zero(8, 4)};
    std::size_t early = 0;
    auto runner = make_runner(net, any_policy<float>(policy::margin{0.2}), simulated_clock{});
    CHECK(allocations_during(runner, s, 1000, early) == 0);
    CHECK(early > 0);
}

TEST_CASE("the counting allocator does count", "[runner][alloc]") {
    const long before = allocations.load();
    auto* v = new std::vector<int>(100);
    delete v;
    CHECK(allocations.load() - before >= 2);
}
