// The batched hot path makes no heap allocation after construction: batch_runner::run and
// parallel_runner::run, with every kind of policy, over an Eigen network batched row by row.

#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>
#include <earlyexit/parallel_runner.hpp>

#include "counting_new.hpp"

using earlyexit_test::allocations;

using namespace earlyexit;

namespace {

struct state {
    Eigen::VectorXf x = Eigen::VectorXf::Zero(32);
    Eigen::VectorXf tmp = Eigen::VectorXf::Zero(32);
};

struct dense_relu {
    Eigen::MatrixXf w;
    void operator()(state& s) const noexcept {
        s.tmp.noalias() = w * s.x;
        s.x = s.tmp.cwiseMax(0.f);
    }
};

auto eigen_network() {
    dynamic_network_builder<state> b;
    for (int i = 0; i < 5; ++i) {
        b.stage(dense_relu{Eigen::MatrixXf::Random(32, 32)}, {.macs = 1024});
        b.exit(project(linear_head<float>{Eigen::MatrixXf::Random(10, 32), Eigen::VectorXf::Random(10)},
                       [](const state& s) -> const Eigen::VectorXf& { return s.x; }));
    }
    return b.build();
}

using rows_t = rowwise_network<dynamic_network<state>>;

/// Allocations during `batches` batches of `size` random samples, after a first batch.
template <class Runner>
long allocations_during(Runner& runner, rowwise_state<state>& s, std::vector<sample_info>& info, int batches,
                        std::size_t& early) {
    const std::size_t size = info.size();
    for (int b = -1; b < batches; ++b) {
        if (b == 0) early = 0;
        for (std::size_t r = 0; r < size; ++r) {
            s.row(r).x.setRandom();
            info[r].index = static_cast<std::size_t>(b + 1) * size + r;
            info[r].label = r % 10;
        }
        const long before = allocations.load();
        const auto out = runner.run(s, info);
        const long made = allocations.load() - before;
        if (b >= 0 && made != 0) return made;
        for (const auto& r : out) early += r.head + 1 < runner.info().heads ? 1 : 0;
    }
    return 0;
}

}  // namespace

TEST_CASE("batch_runner::run allocates nothing after the first batch, every kind of policy", "[batch][alloc]") {
    const auto net = eigen_network();
    const rows_t rows(net);
    const dvfs::platform_model model(
        dvfs::frequency_domain("t", {{1e9, 0.9}, {2e9, 1.1}}, {.static_w = 0.5, .capacitance_f = 1e-9}), 1e9, 1e-7);
    for (const std::size_t size : {1, 8, 64}) {
        INFO("batch " << size);
        rowwise_state<state> s(size, [] { return state{}; });
        std::vector<sample_info> info(size);
        std::size_t early = 0;
        auto max_prob = make_batch_runner(rows, policy::max_prob{0.3}, size, simulated_clock{});
        CHECK(allocations_during(max_prob, s, info, 20, early) == 0);
        CHECK(early > 0);
        auto oracle = make_batch_runner(rows, policy::oracle{}, size);
        CHECK(allocations_during(oracle, s, info, 20, early) == 0);
        auto erased = make_batch_runner(rows, any_policy<float>(policy::patience{2}), size);
        CHECK(allocations_during(erased, s, info, 20, early) == 0);
        auto dee = make_batch_runner(rows, policy::dee<>(dee_options{.lambda = 0.5, .probe_rate = 0.1}), size);
        CHECK(allocations_during(dee, s, info, 20, early) == 0);
        auto ucb = make_batch_runner(rows, policy::ucb_exit<>(bandit_options{.lambda = 0.5}), size);
        CHECK(allocations_during(ucb, s, info, 20, early) == 0);
        auto predictive = make_batch_runner(rows, policy::predictive({.beta = 1.0}, std::vector<double>(5, 2.0)), size);
        CHECK(allocations_during(predictive, s, info, 20, early) == 0);
        for (auto& i : info) i.deadline_seconds = 1e-5;
        auto dvfs = make_batch_runner(rows, policy::with_dvfs(policy::max_prob{0.3}, model), size, dvfs::model_clock(model));
        CHECK(allocations_during(dvfs, s, info, 20, early) == 0);
    }
}

TEST_CASE("parallel_runner::run allocates nothing after the first run", "[parallel][alloc]") {
    const auto net = eigen_network();
    const rows_t rows(net);
    parallel_runner<rows_t, policy::max_prob> pool(rows, policy::max_prob{0.3}, {.threads = 2, .batch = 16},
                                                   [] { return rowwise_state<state>(16, [] { return state{}; }); });
    std::vector<sample_info> info(500);
    for (std::size_t i = 0; i < info.size(); ++i) info[i].index = i;
    std::vector<sample_outcome> out(info.size());
    const auto fill = [](rowwise_state<state>& s, std::size_t first, std::size_t n) noexcept {
        for (std::size_t r = 0; r < n; ++r) s.row(r).x.setConstant(static_cast<float>((first + r) % 7) - 3.f);
    };
    pool.run(info, fill, out);
    const long before = allocations.load();
    for (int i = 0; i < 5; ++i) pool.run(info, fill, out);
    CHECK(allocations.load() - before == 0);
    CHECK(pool.stats().samples == 6 * info.size());
}
