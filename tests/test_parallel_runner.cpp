// parallel_runner: workers over one shared network, results in input order, learning merged.
// The tsan preset runs this file (scripts/test.sh): any data race fails it.
#include <mutex>
#include <random>
#include <stdexcept>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/parallel_runner.hpp>

#if defined(__linux__)
#include <pthread.h>
#endif

#include "policies.hpp"
#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;

namespace {

using scripted_rows = rowwise_network<dynamic_network<scripted_state>>;

struct fixture {
    fixture(const fixture&) = delete;
    explicit fixture(unsigned seed, std::size_t samples = 300) {
        // The heads' lambdas capture this: a fixture stays where it was made.
        std::mt19937 rng(seed);
        const std::size_t stages = 2 + rng() % 6;
        positions = random_head_positions(rng, stages);
        table = random_table(samples, positions.size(), 5, seed * 31);
        // Like support.hpp's scripted_network, without its call counters, which the workers'
        // threads would all write.
        dynamic_network_builder<scripted_state> b;
        for (std::size_t p = 0, k = 0; p < stages; ++p) {
            b.stage([](scripted_state& st) { ++st.stages_run; }, {.macs = 10.0});
            if (k < positions.size() && positions[k] == p) {
                b.exit(make_head(
                    [this, k](const scripted_state& st, std::span<float> out) {
                        std::copy(table[st.sample][k].begin(), table[st.sample][k].end(), out.begin());
                    },
                    5, 2.0));
                ++k;
            }
        }
        net.emplace(b.build());
        rows.emplace(*net);
        for (std::size_t i = 0; i < samples; ++i) info.push_back({.index = i, .label = top1(table[i].back())});
    }
    std::vector<std::size_t> positions;
    logit_table table;
    std::optional<dynamic_network<scripted_state>> net;
    std::optional<scripted_rows> rows;
    std::vector<sample_info> info;

    /// Rows 0..n-1 get samples first..first+n-1 (reads nothing shared but the state).
    static void fill(rowwise_state<scripted_state>& s, std::size_t first, std::size_t n) {
        for (std::size_t r = 0; r < n; ++r) s.row(r) = {first + r, 0};
    }
    [[nodiscard]] auto make_state(std::size_t capacity) const {
        return [capacity] { return rowwise_state<scripted_state>(capacity, [] { return scripted_state{}; }); };
    }
};

/// The outcomes of one batch_runner over the samples in batches of `batch`, in order.
template <class Policy>
std::vector<sample_outcome> sequential(const fixture& f, const Policy& p, std::size_t batch, Policy* learned = nullptr) {
    auto runner = make_batch_runner(*f.rows, p, batch);
    rowwise_state<scripted_state> s(batch, [] { return scripted_state{}; });
    std::vector<sample_outcome> out;
    for (std::size_t first = 0; first < f.info.size(); first += batch) {
        const std::size_t n = std::min(batch, f.info.size() - first);
        fixture::fill(s, first, n);
        for (const auto& r : runner.run(s, std::span<const sample_info>(f.info).subspan(first, n))) out.push_back(outcome_of(r));
    }
    if (learned) *learned = runner.policy();
    return out;
}

/// The policies whose decisions depend on what earlier batches taught them.
bool learns(const any_policy<float>& p) {
    return p.target<skipping_learner>() != nullptr || p.name().find("dee") != std::string_view::npos ||
           p.name() == "ucb_exit" || p.name() == "epsilon_greedy";
}

/// What decisions depend on (time does not: the workers' clocks are real).
void check_same_exits(const std::vector<sample_outcome>& a, const std::vector<sample_outcome>& b) {
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        INFO("sample " << i);
        CHECK(a[i].head == b[i].head);
        CHECK(a[i].predicted == b[i].predicted);
        CHECK(a[i].heads_evaluated == b[i].heads_evaluated);
        CHECK(a[i].macs == b[i].macs);
    }
}

}  // namespace

TEST_CASE("every worker count, batch size and schedule gives the one-runner exits, in input order",
          "[parallel]") {
    for (unsigned seed = 1; seed <= 4; ++seed) {
        const fixture f(seed);
        for (const std::size_t batch : {1, 7, 64}) {
            for (const auto& policy : every_policy(f.positions.size())) {
                if (learns(policy)) continue;  // the learners are the next test's
                const auto expected = sequential(f, policy, batch);
                for (const std::size_t threads : {1, 2, 4}) {
                    for (const schedule order : {schedule::round_robin, schedule::dynamic}) {
                        INFO("seed " << seed << ", batch " << batch << ", threads " << threads << ", " << name_of(order)
                                     << ", " << policy.name());
                        parallel_runner<scripted_rows, any_policy<float>> pool(
                            *f.rows, policy, {.threads = threads, .batch = batch, .order = order}, f.make_state(batch));
                        std::vector<sample_outcome> out(f.info.size());
                        pool.run(f.info, fixture::fill, out);
                        check_same_exits(out, expected);
                        CHECK(pool.stats().samples == f.info.size());
                        CHECK(pool.stats().batches == (f.info.size() + batch - 1) / batch);
                    }
                }
            }
        }
    }
}

TEST_CASE("learning with workers: round robin is reproducible and the merge counts the start once", "[parallel]") {
    const fixture f(7, 400);
    const auto dee = policy::dee<>(dee_options{.lambda = 0.3, .alpha = 0.2, .confidence_bins = 4});
    const std::size_t batch = 10;
    // Two workers, round robin: worker 0 takes batches 0, 2, 4, ..., worker 1 the odd ones.
    // The same split by hand: two batch_runners from the same start, then a merge.
    std::vector<sample_info> even, odd;
    for (std::size_t b = 0; b * batch < f.info.size(); ++b)
        for (std::size_t j = 0; j < batch; ++j) (b % 2 == 0 ? even : odd).push_back(f.info[b * batch + j]);
    const auto by_hand = [&](const std::vector<sample_info>& part) {
        auto runner = make_batch_runner(*f.rows, dee, batch);
        rowwise_state<scripted_state> s(batch, [] { return scripted_state{}; });
        std::vector<sample_outcome> out;
        for (std::size_t first = 0; first < part.size(); first += batch) {
            for (std::size_t r = 0; r < batch; ++r) s.row(r) = {part[first + r].index, 0};
            for (const auto& r : runner.run(s, std::span<const sample_info>(part).subspan(first, batch)))
                out.push_back(outcome_of(r));
        }
        return std::pair(out, std::move(runner));  // moved, not copied: a copy would start a new branch
    };
    const auto [out0, runner0] = by_hand(even);
    const auto [out1, runner1] = by_hand(odd);
    const auto& learned0 = runner0.policy();
    const auto& learned1 = runner1.policy();
    auto merged = make_batch_runner(*f.rows, dee, 1).policy();  // the start, bound to the network
    merged.merge(learned0);
    merged.merge(learned1);

    for (int repeat = 0; repeat < 2; ++repeat) {
        parallel_runner<scripted_rows, policy::dee<>> pool(*f.rows, dee, {.threads = 2, .batch = batch},
                                                           f.make_state(batch));
        std::vector<sample_outcome> out(f.info.size());
        pool.run(f.info, fixture::fill, out);
        for (std::size_t b = 0; b * batch < f.info.size(); ++b)
            for (std::size_t j = 0; j < batch; ++j) {
                const auto& expect = (b % 2 == 0 ? out0 : out1)[(b / 2) * batch + j];
                CHECK(out[b * batch + j].head == expect.head);
            }
        CHECK(pool.worker(0).policy() == learned0);
        CHECK(pool.worker(1).policy() == learned1);
        const auto m = pool.merged_policy();
        CHECK(m == merged);
        // Every update is in the merge once: visits at head 0 add up.
        CHECK(m.visit_stats(0).count == learned0.visit_stats(0).count + learned1.visit_stats(0).count);
        pool.sync();
        CHECK(pool.worker(0).policy() == m);
        CHECK(pool.worker(1).policy() == m);
        CHECK(pool.merged_policy() == m);  // nothing learned since the sync
    }
}

TEST_CASE("a fill that throws stops the run and is rethrown, the runner works again after", "[parallel][error]") {
    const fixture f(3);
    parallel_runner<scripted_rows, policy::max_prob> pool(*f.rows, policy::max_prob{0.8}, {.threads = 3, .batch = 8},
                                                          f.make_state(8));
    std::vector<sample_outcome> out(f.info.size());
    const auto bad = [](rowwise_state<scripted_state>& s, std::size_t first, std::size_t n) {
        if (first >= 100) throw std::runtime_error("sample " + std::to_string(first) + " cannot be read");
        fixture::fill(s, first, n);
    };
    CHECK_THROWS_WITH(pool.run(f.info, bad, out), Catch::Matchers::Contains("cannot be read"));
    pool.run(f.info, fixture::fill, out);
    check_same_exits(out, sequential(f, policy::max_prob{0.8}, 8));
    pool.run({}, fixture::fill, std::span<sample_outcome>());  // nothing to do
}

TEST_CASE("bad options and arguments are errors naming the value", "[parallel][error]") {
    const fixture f(2, 20);
    using pool_t = parallel_runner<scripted_rows, policy::max_prob>;
    CHECK_THROWS_WITH(pool_t(*f.rows, policy::max_prob{0.8}, {.threads = 0}, f.make_state(1)),
                      Catch::Matchers::Contains("threads 0"));
    CHECK_THROWS_WITH(pool_t(*f.rows, policy::max_prob{0.8}, {.batch = 0}, f.make_state(1)),
                      Catch::Matchers::Contains("batch 0"));
    CHECK_THROWS_WITH(pool_t(*f.rows, policy::max_prob{0.8}, {.batch = 8}, f.make_state(4)),
                      Catch::Matchers::Contains("holds 4 rows, fewer than the batch of 8"));
    pool_t pool(*f.rows, policy::max_prob{0.8}, {.threads = 2, .batch = 4}, f.make_state(4));
    std::vector<sample_outcome> out(3);
    CHECK_THROWS_WITH(pool.run(f.info, fixture::fill, out), Catch::Matchers::Contains("3 outcome slots for 20 samples"));
    std::vector<sample_info> bad{{.index = 9, .label = 5}};
    out.resize(1);
    CHECK_THROWS_WITH(pool.run(bad, fixture::fill, out), Catch::Matchers::Contains("sample 9: label 5 is out of range"));
}

TEST_CASE("sync_every k: the workers merge after every k rounds, as a sequential reference does", "[parallel]") {
    const fixture f(11, 400);
    const auto dee = policy::dee<>(dee_options{.lambda = 0.3, .alpha = 0.2, .confidence_bins = 4});
    const std::size_t batch = 10, threads = 2, k = 3;
    // The reference, by hand: two batch_runners from the same start; round r runs batches
    // 2r and 2r+1 on runners 0 and 1; after rounds 3, 6, ... (not after the last) both go on
    // from start + what each learned, and that becomes the start.
    const std::size_t batches = f.info.size() / batch, rounds = batches / threads;
    auto r0 = make_batch_runner(*f.rows, dee, batch);
    auto r1 = make_batch_runner(*f.rows, dee, batch);
    auto start = r0.policy();
    rowwise_state<scripted_state> s(batch, [] { return scripted_state{}; });
    std::vector<sample_outcome> expect(f.info.size());
    std::size_t syncs = 0;
    for (std::size_t r = 0; r < rounds; ++r) {
        for (std::size_t w = 0; w < threads; ++w) {
            const std::size_t first = (r * threads + w) * batch;
            fixture::fill(s, first, batch);
            auto& runner = w == 0 ? r0 : r1;
            const auto out = runner.run(s, std::span<const sample_info>(f.info).subspan(first, batch));
            for (std::size_t j = 0; j < batch; ++j) expect[first + j] = outcome_of(out[j]);
        }
        if ((r + 1) % k == 0 && r + 1 < rounds) {
            auto merged = start;
            merged.merge(r0.policy());
            merged.merge(r1.policy());
            r0.policy() = merged;
            r1.policy() = merged;
            start = merged;
            ++syncs;
        }
    }
    REQUIRE(syncs == 6);  // 20 rounds: after rounds 3, 6, ..., 18
    for (int repeat = 0; repeat < 2; ++repeat) {
        parallel_runner<scripted_rows, policy::dee<>> pool(
            *f.rows, dee, {.threads = threads, .batch = batch, .sync_every = k}, f.make_state(batch));
        std::vector<sample_outcome> out(f.info.size());
        pool.run(f.info, fixture::fill, out);
        check_same_exits(out, expect);
        CHECK(pool.syncs() == syncs);
        CHECK(pool.worker(0).policy() == r0.policy());
        CHECK(pool.worker(1).policy() == r1.policy());
    }
    // Without syncs the workers learn apart, and decide differently somewhere.
    parallel_runner<scripted_rows, policy::dee<>> apart(*f.rows, dee, {.threads = threads, .batch = batch},
                                                        f.make_state(batch));
    std::vector<sample_outcome> out(f.info.size());
    apart.run(f.info, fixture::fill, out);
    CHECK(apart.syncs() == 0);
    CHECK_FALSE(apart.worker(0).policy() == r0.policy());
}

TEST_CASE("a fill that throws while others wait at a sync stops the run without a hang", "[parallel][error]") {
    const fixture f(5, 200);
    const auto dee = policy::dee<>(dee_options{.lambda = 0.3, .alpha = 0.2, .confidence_bins = 4});
    parallel_runner<scripted_rows, policy::dee<>> pool(*f.rows, dee, {.threads = 3, .batch = 5, .sync_every = 1},
                                                       f.make_state(5));
    std::vector<sample_outcome> out(f.info.size());
    const auto bad = [](rowwise_state<scripted_state>& s, std::size_t first, std::size_t n) {
        if (first == 40) throw std::runtime_error("sample 40 cannot be read");
        fixture::fill(s, first, n);
    };
    CHECK_THROWS_WITH(pool.run(f.info, bad, out), Catch::Matchers::Contains("sample 40 cannot be read"));
    pool.run(f.info, fixture::fill, out);  // and runs again
}

#if defined(__linux__)
TEST_CASE("each started worker has the stack it was given", "[parallel]") {
    const fixture f(4, 64);
    for (const std::size_t want : {std::size_t{256} << 10, std::size_t{32} << 20}) {
        parallel_runner<scripted_rows, policy::max_prob> pool(
            *f.rows, policy::max_prob{0.8}, {.threads = 3, .batch = 4, .stack_bytes = want}, f.make_state(4));
        std::mutex m;
        std::vector<std::size_t> seen;
        const auto main_id = pthread_self();
        const auto fill = [&](rowwise_state<scripted_state>& s, std::size_t first, std::size_t n) {
            if (!pthread_equal(pthread_self(), main_id)) {
                pthread_attr_t attr;
                std::size_t size = 0;
                if (pthread_getattr_np(pthread_self(), &attr) == 0) {
                    pthread_attr_getstacksize(&attr, &size);
                    pthread_attr_destroy(&attr);
                }
                std::lock_guard lock(m);
                seen.push_back(size);
            }
            fixture::fill(s, first, n);
        };
        std::vector<sample_outcome> out(f.info.size());
        pool.run(f.info, fill, out);
        REQUIRE(!seen.empty());
        for (const std::size_t size : seen) CHECK(size >= want);
    }
}
#endif

TEST_CASE("sync_every with a dynamic schedule and too small a stack are refused, naming the value",
          "[parallel][error]") {
    const fixture f(2, 20);
    using pool_t = parallel_runner<scripted_rows, policy::max_prob>;
    CHECK_THROWS_WITH(pool_t(*f.rows, policy::max_prob{0.8}, {.order = schedule::dynamic, .sync_every = 2},
                             f.make_state(1)),
                      Catch::Matchers::Contains("sync_every 2 needs schedule round_robin"));
    CHECK_THROWS_WITH(pool_t(*f.rows, policy::max_prob{0.8}, {.threads = 2, .stack_bytes = 1000}, f.make_state(1)),
                      Catch::Matchers::Contains("stack_bytes 1000 is below 64 KiB"));
}
