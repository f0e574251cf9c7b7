#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/policy/predictive.hpp>
#include <earlyexit/runner.hpp>
#include <earlyexit/calibrate/predictive.hpp>
#include <earlyexit/trace/replay.hpp>

#include "counting_new.hpp"
#include "support.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;

namespace {

/// A network_info with one head per stage (head k at position k), stage k costing 10 MACs and
/// every head 1. Not copyable: info views the vectors.
struct shape {
    std::vector<std::size_t> positions;
    std::vector<double> stage_macs, head_macs;
    network_info info;
    shape(std::size_t heads, std::size_t classes)
        : positions(heads), stage_macs(heads, 10.0), head_macs(heads, 1.0) {
        for (std::size_t k = 0; k < heads; ++k) positions[k] = k;
        info = network_info{heads,      heads,     classes, positions, stage_macs, head_macs,
                            full_network_macs(stage_macs, head_macs)};
    }
    shape(const shape&) = delete;
    shape& operator=(const shape&) = delete;
};

policy::predictive prepared(predictive_options o, std::vector<double> t, const shape& s) {
    policy::predictive p(o, std::move(t));
    p.prepare(s.info);
    return p;
}

/// A context at head k over the given logits (measures computed as the runner does).
struct ctx_of {
    std::vector<float> logits, probs;
    exit_context<float> c;
    ctx_of(std::size_t k, std::vector<float> z, const shape& s) : logits(std::move(z)), probs(logits.size()) {
        c.head = k;
        c.position = k;
        c.logits = logits;
        c.probs = probs;
        c.measures = measure(logits, probs);
        c.network = &s.info;
    }
    ctx_of(const ctx_of&) = delete;
};

// ---- the reference, written from algorithms.md section 3 with plain loops ---------------------

struct ref_options {
    double beta = 1;
    std::size_t rounds = 8, horizon = 8, start = 0;
    bool predict = true;
    std::optional<double> deep{};
    std::size_t deep_from = 0;
    bool soft = false;  ///< the log_softmax test: max-prob >= beta, rounds on max log-softmax
};

/// max log-softmax of v, in double, from the definition.
double max_log_softmax(const std::vector<double>& v) {
    double hi = v[0];
    for (double x : v) hi = std::max(hi, x);
    double sum = 0;
    for (double x : v) sum += std::exp(x - hi);
    return -std::log(sum);
}

/// The heads a sample visits, in order, given its logits z[k][c] (all finite).
std::vector<std::size_t> reference_heads(const std::vector<std::vector<float>>& z, const std::vector<double>& T,
                                         const ref_options& o) {
    const std::size_t last = z.size() - 1, C = z[0].size();
    std::vector<std::size_t> seen;
    std::size_t k = std::min(o.start, last);
    for (;;) {
        seen.push_back(k);
        if (k == last) break;
        float hi = z[k][0], lo = z[k][0];
        for (float v : z[k]) hi = std::max(hi, v), lo = std::min(lo, v);
        const double ext = std::max(std::abs(hi), std::abs(lo));
        bool stop = o.soft ? max_log_softmax(std::vector<double>(z[k].begin(), z[k].end())) >= std::log(o.beta) - 1e-6
                           : ext > o.beta * T[k];
        if (stop && o.deep && k >= o.deep_from) {
            double sum = 0;
            for (float v : z[k]) sum += std::exp(double(v) - double(hi));
            stop = 1.0 / sum >= *o.deep - 1e-7;  // float max-prob against double: a hair of slack
        }
        if (stop) break;
        if (!o.predict) {
            ++k;
            continue;
        }
        std::vector<double> v(z[k].begin(), z[k].end()), w(C);
        std::size_t jump = o.horizon;
        for (std::size_t r = 1; r <= o.rounds; ++r) {
            double m = 0;
            for (std::size_t c = 0; c < C; ++c) {
                w[c] = (c > 0 ? v[c - 1] : 0.0) + v[c] + (c + 1 < C ? v[c + 1] : 0.0);
                m = std::max(m, std::abs(w[c]));
            }
            v = w;
            if (o.soft ? max_log_softmax(w) >= std::log(o.beta) : m > o.beta * T[std::min(k + r, last)]) {
                jump = r;
                break;
            }
        }
        k = std::min(k + jump, last);
    }
    return seen;
}

trace trace_of(const logit_table& table) {
    const std::size_t heads = table[0].size(), classes = table[0][0].size();
    trace_layout layout{classes, {}, std::vector<double>(heads, 10.0), std::vector<double>(heads, 1.0)};
    for (std::size_t k = 0; k < heads; ++k) layout.head_positions.push_back(k);
    trace t(layout);
    for (const auto& sample : table) {
        std::vector<float> z;
        for (const auto& h : sample) z.insert(z.end(), h.begin(), h.end());
        t.add(z, std::vector<double>(heads, 0.0), std::vector<double>(heads, 0.0), top1(sample.back()));
    }
    return t;
}

/// Records the heads each run evaluates.
struct head_log {
    std::vector<std::size_t>* heads = nullptr;
    void on_head(const exit_context<float>& c) noexcept { heads->push_back(c.head); }
};

predictive_options to_options(const ref_options& r) {
    predictive_options o;
    o.beta = r.beta;
    o.rounds = r.rounds;
    o.horizon = r.horizon;
    o.start_head = r.start;
    o.predict = r.predict;
    o.deep_max_prob = r.deep;
    o.deep_from = r.deep_from;
    o.test = r.soft ? exit_test::log_softmax : exit_test::logit_extremum;
    return o;
}

}  // namespace

TEST_CASE("the predictor by hand: a peak spreading over five classes", "[policy][predictive]") {
    // C = 5, v = [0, 0, 3, 0, 0]; each round convolves with [1, 1, 1], zero padded:
    //   r = 1: [0, 3, 3, 3, 0]            max 3
    //   r = 2: [3, 6, 9, 6, 3]            max 9
    //   r = 3: [9, 18, 21, 18, 9]         max 21   (0+3+6, 3+6+9, 6+9+6, ...)
    //   r = 4: [27, 48, 57, 48, 27]       max 57   (0+9+18, 9+18+21, 18+21+18, ...)
    //   r = 5: [75, 132, 153, 132, 75]    max 153  (0+27+48, 27+48+57, 48+57+48, ...)
    //   r = 6: [207, 360, 417, 360, 207]  max 417  (0+75+132, 75+132+153, 132+153+132, ...)
    // T = [100, 5, 10, 25, 60, 200, ...]: round r is compared with T[i + r], the threshold of the
    // head it would jump to. From head 0: 3 <= 5, 9 <= 10, 21 <= 25, 57 <= 60, 153 <= 200,
    // 417 > 200: round 6 fires, the next head is 6. (Compared with T[i + r - 1] instead, round
    // 2 would fire: 9 > T[1] = 5.)
    const shape s(10, 5);
    const std::vector<double> T{100, 5, 10, 25, 60, 200, 200, 200, 200, 200};
    const std::vector<float> v{0, 0, 3, 0, 0};
    auto p = prepared({}, T, s);
    CHECK(p.forecast(0, std::span<const float>(v)) == 6);
    ctx_of c(0, v, s);
    CHECK(p.next_check(c.c) == 6);
    CHECK(p.predicted_exit() == 6);
    // beta scales every threshold: at 0.5, round 1 fires (3 > 0.5 * 5): head 1.
    auto half = prepared({.beta = 0.5}, T, s);
    CHECK(half.forecast(0, std::span<const float>(v)) == 1);
    // At 2: 3 <= 10, 9 <= 20, 21 <= 50, 57 <= 120, 153 <= 400, 417 > 400: still head 6.
    CHECK(prepared({.beta = 2.0}, T, s).forecast(0, std::span<const float>(v)) == 6);
    // From head 1 the same logits meet T[2..]: 3 <= 10, 9 <= 25, 21 <= 60, 57 <= 200, 153 <= 200,
    // 417 > 200 at round 6: head 7.
    CHECK(p.forecast(1, std::span<const float>(v)) == 7);
}

TEST_CASE("the predictor by hand: signs, masked classes and the absolute value", "[policy][predictive]") {
    // C = 3, v = [-4, 1, 0]:
    //   r = 1: [0-4+1, -4+1+0, 1+0+0] = [-3, -3, 1]       max |.| 3
    //   r = 2: [0-3-3, -3-3+1, -3+1+0] = [-6, -5, -2]     max |.| 6
    // With T[1] = 3.5 and T[2] = 5.5: round 1 does not fire, round 2 does (|-6| > 5.5).
    const shape s(5, 3);
    auto p = prepared({}, {1, 3.5, 5.5, 1000, 1000}, s);
    const std::vector<float> neg{-4, 1, 0};
    CHECK(p.forecast(0, std::span<const float>(neg)) == 2);
    // A masked class (-inf) counts as 0: [-inf, 3, 0] -> [0, 3, 0] -> [3, 3, 3] -> [6, 9, 6].
    // T[1] = 3.5 does not fire on 3, T[2] = 5.5 fires on 9.
    const std::vector<float> masked{-std::numeric_limits<float>::infinity(), 3, 0};
    CHECK(p.forecast(0, std::span<const float>(masked)) == 2);
    ctx_of m(0, masked, s);
    REQUIRE(m.c.measures.valid);
    CHECK(p.next_check(m.c) == 2);
    // Logits without confidence (NaN) predict no skip: the next head.
    ctx_of bad(0, {std::numeric_limits<float>::quiet_NaN(), 3, 0}, s);
    REQUIRE_FALSE(bad.c.measures.valid);
    CHECK(p.next_check(bad.c) == 1);
    // C = 1: the convolution leaves [x] as it is, so round r fires iff |x| > T[i + r].
    const shape one(6, 1);
    auto q = prepared({}, {1, 9, 8, 7, 2, 1}, one);
    const std::vector<float> x{-5};
    CHECK(q.forecast(0, std::span<const float>(x)) == 4);  // 5 <= 9, 8, 7; 5 > 2 at round 4
}

TEST_CASE("no round fires: the horizon, and clamping at the final head", "[policy][predictive]") {
    const shape s(12, 5);
    const std::vector<double> huge(12, 1e9);
    const std::vector<float> v{0, 0, 3, 0, 0};
    // Eight rounds (max 417 after six, far below 1e9): the jump is the horizon, R by default.
    CHECK(prepared({}, huge, s).forecast(0, std::span<const float>(v)) == 8);
    CHECK(prepared({.rounds = 3}, huge, s).forecast(0, std::span<const float>(v)) == 3);
    CHECK(prepared({.horizon = 2}, huge, s).forecast(0, std::span<const float>(v)) == 2);
    CHECK(prepared({.rounds = 2, .horizon = 5}, huge, s).forecast(1, std::span<const float>(v)) == 6);
    // Past the final head (11): clamped to it.
    CHECK(prepared({}, huge, s).forecast(5, std::span<const float>(v)) == 11);
    CHECK(prepared({}, huge, s).forecast(10, std::span<const float>(v)) == 11);
    CHECK(prepared({}, huge, s).forecast(11, std::span<const float>(v)) == 11);
    // A round that fires beyond the final head is compared with the final head's threshold:
    // from head 9 (last 11), T[10] = 1e9 never fires, T[11] = 8 fires at round 2 (9 > 8).
    // With horizon 1 the no-fire answer would be head 10, so round 2 must really run.
    std::vector<double> t = huge;
    t[11] = 8;
    CHECK(prepared({.horizon = 1}, t, s).forecast(9, std::span<const float>(v)) == 11);
    t[11] = 1e9;
    CHECK(prepared({.horizon = 1}, t, s).forecast(9, std::span<const float>(v)) == 10);
    // predict = false: always the next head.
    auto every = prepared({.predict = false}, huge, s);
    ctx_of c(3, v, s);
    CHECK(every.next_check(c.c) == 4);
    CHECK(every.name() == "check_every_head");
}

TEST_CASE("the exit test: logit extremum above beta * T, and the deep max-prob test", "[policy][predictive]") {
    const shape s(4, 3);
    const std::vector<double> T{2, 4, 6, 8};
    // [3, 0, -1]: extremum 3; max-prob e^3 / (e^3 + 1 + e^-1) = 0.9362.
    const std::vector<float> z{3, 0, -1};
    ctx_of at0(0, z, s), at1(1, z, s);
    const policy::predictive p({}, T);
    CHECK(p.decide(at0.c) == decision::stop);     // 3 > 2
    CHECK(p.decide(at1.c) == decision::proceed);  // 3 <= 4
    // Strictly above: at beta 1.5, head 0's bar is 1.5 * 2 = 3, equal to the extremum: proceed.
    CHECK(policy::predictive({.beta = 1.5}, T).decide(at0.c) == decision::proceed);
    CHECK(policy::predictive({.beta = 1.49}, T).decide(at0.c) == decision::stop);
    CHECK(policy::predictive({.beta = 0.5}, T).decide(at1.c) == decision::stop);  // 3 > 2
    // Deep test from head 1 at 0.95: head 0 is not deep (stops on the extremum alone), head 1
    // needs max-prob 0.9362 >= 0.95 as well.
    const policy::predictive deep({.beta = 0.5, .deep_max_prob = 0.95, .deep_from = 1}, T);
    CHECK(deep.decide(at0.c) == decision::stop);
    CHECK(deep.decide(at1.c) == decision::proceed);
    CHECK(policy::predictive({.beta = 0.5, .deep_max_prob = 0.93, .deep_from = 1}, T).decide(at1.c) ==
          decision::stop);
    // Invalid logits never exit.
    ctx_of bad(0, {std::numeric_limits<float>::quiet_NaN(), 9, 0}, s);
    CHECK(policy::predictive({.beta = 1e-9}, T).decide(bad.c) == decision::proceed);
}

TEST_CASE("the log_softmax exit test and predictor on hand-made log-softmax vectors", "[policy][predictive]") {
    const shape s(4, 3);
    // Logits (ln 8, 0, 0): max-prob 8 / 10 = 0.8, max log-softmax ln 0.8. A shift by +100 (a
    // head with a constant offset) changes nothing in this form, everything in the logit form.
    const float l8 = std::log(8.0f);
    for (const float shift : {0.0f, 100.0f}) {
        ctx_of c(0, {l8 + shift, shift, shift}, s);
        auto at = [&](double beta) {
            return prepared({.beta = beta, .test = exit_test::log_softmax}, {1, 1, 1, 1}, s).decide(c.c);
        };
        CHECK(at(0.79) == decision::stop);
        CHECK(at(0.8) == decision::stop);  // >= : max-prob 0.8 (float) meets beta 0.8 within rounding
        CHECK(at(0.81) == decision::proceed);
    }
    CHECK(prepared({.beta = 2.5}, {1, 1, 1, 1}, s).decide(ctx_of(0, {l8 + 100, 100, 100}, s).c) == decision::stop);
    CHECK(prepared({.beta = 2.5}, {1, 1, 1, 1}, s).decide(ctx_of(0, {l8, 0, 0}, s).c) == decision::proceed);
    // The predictor's rounds on (a, 0, 0) with a = ln 8: round 1 gives (a, a, 0): max-prob
    // 8 / 17 = 0.47; round 2 (2a, 2a, a): 1 / (2 + 1/8) = 0.47; round 3 (4a, 5a, 3a): 1 / (1 +
    // 8^-1 + 8^-2) = 0.877. At beta 0.85 the jump is 3; at 0.45 it is 1; at 0.95 no round of
    // 3 fires (0.877; round 4 would compare the final head's) and the horizon 2 sends it on 2.
    const auto jump = [&](double beta, std::size_t rounds, std::size_t horizon) {
        auto p = prepared({.beta = beta, .rounds = rounds, .horizon = horizon, .test = exit_test::log_softmax},
                          {1, 1, 1, 1, 1, 1, 1, 1}, shape(8, 3));
        const std::vector<float> z{l8, 0, 0};
        return p.forecast(0, std::span<const float>(z));
    };
    CHECK(jump(0.85, 8, 8) == 3);
    CHECK(jump(0.45, 8, 8) == 1);
    CHECK(jump(0.95, 3, 2) == 2);
    // beta must be in (0, 1] for this test.
    CHECK_THROWS_WITH(policy::predictive({.beta = 1.5, .test = exit_test::log_softmax}, {1.0}),
                      Contains("beta 1.5 must be in (0, 1] for the log_softmax exit test"));
}

TEST_CASE("options and thresholds out of range are errors naming the value", "[policy][predictive][error]") {
    const std::vector<double> T{1, 2, 3};
    CHECK_THROWS_WITH(policy::predictive({.beta = 0.0}, T), Contains("predictive: beta 0 must be finite and > 0"));
    CHECK_THROWS_WITH(policy::predictive({.beta = -2.5}, T), Contains("beta -2.5"));
    CHECK_THROWS_WITH(policy::predictive({.beta = std::numeric_limits<double>::infinity()}, T), Contains("beta inf"));
    CHECK_THROWS_WITH(policy::predictive({.rounds = 0}, T), Contains("predictive: rounds 0 must be >= 1"));
    CHECK_THROWS_WITH(policy::predictive({.horizon = 0}, T), Contains("predictive: horizon 0 must be >= 1"));
    CHECK_THROWS_WITH(policy::predictive({.deep_max_prob = 1.5}, T),
                      Contains("predictive: deep_max_prob 1.5 is out of range [0, 1]"));
    CHECK_THROWS_WITH(policy::predictive({.beta = 0.0, .predict = false}, T), Contains("check_every_head: beta 0"));
    CHECK_THROWS_WITH(policy::predictive({}, {}), Contains("predictive: no thresholds"));
    CHECK_THROWS_WITH(policy::predictive({}, {1, 0, 3}), Contains("threshold 0 of head 1 must be finite and > 0"));
    CHECK_THROWS_WITH(policy::predictive({}, {1, 2, std::numeric_limits<double>::quiet_NaN()}),
                      Contains("threshold nan of head 2"));
    CHECK_NOTHROW(policy::predictive({.deep_max_prob = 0.0}, T));
    CHECK_NOTHROW(policy::predictive({.deep_max_prob = 1.0}, T));

    // prepare() checks the network: head count, start head, deep_from.
    const shape s(4, 3);
    CHECK_THROWS_WITH(prepared({}, T, s), Contains("predictive: 3 thresholds for a network of 4 heads"));
    CHECK_THROWS_WITH(prepared({.start_head = 4}, {1, 1, 1, 1}, s),
                      Contains("predictive: start_head 4 does not exist; the network has 4 heads (0..3)"));
    CHECK_THROWS_WITH(prepared({.deep_max_prob = 0.9, .deep_from = 7}, {1, 1, 1, 1}, s),
                      Contains("deep_from 7 does not exist; the network has 4 heads (0..3)"));
    CHECK_NOTHROW(prepared({.start_head = 3, .deep_from = 7}, {1, 1, 1, 1}, s));  // no deep test: unused
    // The runner calls prepare(): a mismatch is an error at construction.
    counters count;
    const auto table = random_table(2, 4, 3, 1);
    const auto net = scripted_network(4, {0, 1, 2, 3}, table, count);
    CHECK_THROWS_WITH(make_runner(net, policy::predictive({}, T), simulated_clock{}),
                      Contains("3 thresholds for a network of 4 heads"));
}

TEST_CASE("head_at_or_after maps a stage position to the first head there or later", "[policy][predictive]") {
    const std::vector<std::size_t> positions{1, 3, 7};
    const std::vector<double> stages(8, 1.0), heads(3, 1.0);
    const network_info n{8, 3, 2, positions, stages, heads, 9.0};
    CHECK(head_at_or_after(n, 0) == 0);
    CHECK(head_at_or_after(n, 1) == 0);
    CHECK(head_at_or_after(n, 2) == 1);
    CHECK(head_at_or_after(n, 3) == 1);
    CHECK(head_at_or_after(n, 4) == 2);
    CHECK(head_at_or_after(n, 7) == 2);
    CHECK(head_at_or_after(n, 8) == npos);
    // The inverse: the head's position is at or after the one asked for.
    for (std::size_t p = 0; p < 8; ++p) CHECK(n.head_positions[head_at_or_after(n, p)] >= p);
}

TEST_CASE("predictive models the policy concept with its hooks", "[policy][predictive]") {
    STATIC_REQUIRE(exit_policy<policy::predictive, float>);
    STATIC_REQUIRE(exit_policy<policy::predictive, double>);
    STATIC_REQUIRE(hooks::check<policy::predictive, float>());
    STATIC_REQUIRE(hooks::has_next_check<policy::predictive, float>);
    STATIC_REQUIRE(hooks::has_first_check<policy::predictive>);
    STATIC_REQUIRE(hooks::has_prepare<policy::predictive>);
    STATIC_REQUIRE_FALSE(hooks::has_update<policy::predictive, float>);
    const policy::predictive p({.beta = 1.25, .rounds = 4, .start_head = 2}, {1, 2, 3});
    CHECK(p.name() == "predictive");
    CHECK(p.beta() == 1.25);
    CHECK(p.options().rounds == 4);
    CHECK(p.options().effective_horizon() == 4);
    CHECK(p.first_check({}) == 2);
    CHECK(p.predicted_exit() == npos);
    CHECK(std::vector<double>(p.thresholds().begin(), p.thresholds().end()) == std::vector<double>{1, 2, 3});
    CHECK(any_policy<float>(p).name() == "predictive");
}

TEST_CASE("a plain-loop reimplementation agrees with replay, head sequence by head sequence",
          "[policy][predictive][property]") {
    const std::size_t heads = 9, classes = 10, samples = 300;
    const auto table = random_table(samples, heads, classes, 17);
    const trace t = trace_of(table);
    // T_k by hand: the mean of max(|max z|, |min z|) over the samples.
    // Summed in sample order, then divided: the same rounding as the library, so the two agree
    // exactly and the comparisons below see the same bars.
    std::vector<double> T(heads, 0.0);
    for (const auto& sample : table)
        for (std::size_t k = 0; k < heads; ++k) {
            double e = 0;
            for (float v : sample[k]) e = std::max(e, double(std::abs(v)));
            T[k] += e;
        }
    for (auto& x : T) x /= double(samples);
    const auto mean = mean_logit_extremum(t);
    REQUIRE(mean == T);

    const std::vector<ref_options> configs{
        {.beta = 1.0},
        {.beta = 1.6},
        {.beta = 2.5},
        {.beta = 4.0},
        {.beta = 2.5, .rounds = 3, .horizon = 2},
        {.beta = 1.6, .rounds = 8, .horizon = 1},
        {.beta = 3.0, .start = 2},
        {.beta = 1.3, .predict = false},
        {.beta = 1.3, .start = 3, .predict = false},
        {.beta = 1.2, .deep = 0.9, .deep_from = 4},
        {.beta = 2.0, .rounds = 5, .deep = 0.8, .deep_from = 2},
        {.beta = 0.6, .soft = true},
        {.beta = 0.9, .soft = true},
        {.beta = 0.99, .rounds = 4, .horizon = 3, .soft = true},
        {.beta = 0.8, .start = 2, .soft = true},
        {.beta = 0.8, .predict = false, .soft = true},
    };
    std::size_t skipped_total = 0;
    for (const auto& r : configs) {
        INFO("beta " << r.beta << " rounds " << r.rounds << " horizon " << r.horizon << " start " << r.start
                     << " predict " << r.predict << " soft " << r.soft);
        const policy::predictive p(to_options(r), mean);
        const auto out = replay(t, policy::predictive(p));
        // The same policy on the replay network with a tap on every evaluated head.
        std::vector<std::size_t> seen;
        const replay_network<float> net(t);
        double time = 0;
        auto runner = make_runner(net, p, replay_clock{&time}, head_log{&seen});
        for (std::size_t i = 0; i < samples; ++i) {
            const auto want = reference_heads(table[i], T, r);
            seen.clear();
            replay_state st{i, &time};
            const auto res = runner.run(st);
            REQUIRE(seen == want);
            const std::size_t exit = want.back();
            double macs = 10.0 * double(exit + 1) + double(want.size());
            CHECK(out[i].head == exit);
            CHECK(out[i].heads_evaluated == want.size());
            CHECK(out[i].positions_run == exit + 1);
            CHECK(out[i].macs == macs);
            CHECK(out[i].predicted == top1(table[i][exit]));
            CHECK(res.head == exit);
            skipped_total += exit + 1 - std::min(r.start, exit) - want.size();
        }
    }
    // The predictor really skips heads on this trace (the test would be empty otherwise).
    CHECK(skipped_total > 500);
}

TEST_CASE("skipped heads are never run", "[policy][predictive]") {
    const std::size_t heads = 8, classes = 10, samples = 200;
    const auto table = random_table(samples, heads, classes, 5);
    counters count;
    const auto net = scripted_network(heads, {0, 1, 2, 3, 4, 5, 6, 7}, table, count);
    const auto T = mean_logit_extremum(trace_of(table));
    for (const ref_options& r : {ref_options{.beta = 2.5}, ref_options{.beta = 4.0, .start = 1},
                                ref_options{.beta = 1.5, .predict = false}}) {
        auto runner = make_runner(net, policy::predictive(to_options(r), T), simulated_clock{});
        std::size_t heads_run = 0, heads_passed = 0;
        for (std::size_t i = 0; i < samples; ++i) {
            count.clear();
            scripted_state st{i, 0};
            const auto res = runner.run(st);
            const auto want = reference_heads(table[i], T, r);
            for (std::size_t k = 0; k < heads; ++k) {
                const bool predicted = std::find(want.begin(), want.end(), k) != want.end();
                CHECK(count.head_calls[k] == (predicted ? 1 : 0));
                CHECK(count.stage_calls[k] == (k <= res.position ? 1 : 0));
            }
            CHECK(res.heads_evaluated == want.size());
            if (want.size() > 1) CHECK(runner.policy().predicted_exit() == want.back());
            heads_run += want.size();
            heads_passed += res.head + 1 - std::min(r.start, res.head);
        }
        if (r.predict) CHECK(heads_run < heads_passed);  // some heads were skipped
        else CHECK(heads_run == heads_passed);
    }
}

TEST_CASE("replay makes the live decisions", "[policy][predictive][replay]") {
    const std::size_t heads = 7, classes = 12, samples = 250;
    const auto table = random_table(samples, heads, classes, 33);
    const trace t = trace_of(table);
    counters count;
    const auto net = scripted_network(heads, {0, 1, 2, 3, 4, 5, 6}, table, count);
    const auto T = mean_logit_extremum(t);
    for (const predictive_options& o :
         {predictive_options{.beta = 1.0}, predictive_options{.beta = 2.2, .rounds = 4, .start_head = 1},
          predictive_options{.beta = 1.4, .predict = false},
          predictive_options{.beta = 1.8, .deep_max_prob = 0.9, .deep_from = 3}}) {
        auto runner = make_runner(net, policy::predictive(o, T), simulated_clock{});
        std::vector<sample_outcome> live;
        for (std::size_t i = 0; i < samples; ++i) {
            scripted_state st{i, 0};
            live.push_back(outcome_of(runner.run(st, {.index = i, .label = t.label(i)})));
        }
        const auto replayed = replay(t, policy::predictive(o, T));
        CHECK(same_decisions(live, replayed));
    }
}

TEST_CASE("next_check and a whole run allocate nothing", "[policy][predictive][alloc]") {
    const std::size_t heads = 8, classes = 1000, samples = 20;
    const auto table = random_table(samples, heads, classes, 3);
    counters count;
    const auto net = scripted_network(heads, {0, 1, 2, 3, 4, 5, 6, 7}, table, count);
    const auto T = mean_logit_extremum(trace_of(table));
    auto runner = make_runner(net, policy::predictive({.beta = 3.0}, T), simulated_clock{});
    const shape s(heads, classes);
    auto p = prepared({.beta = 3.0}, T, s);
    ctx_of c(0, table[0][0], s);
    const long before = allocations.load();
    std::size_t sum = 0;
    for (std::size_t i = 0; i < samples; ++i) {
        scripted_state st{i, 0};
        sum += runner.run_unchecked(st, {}).head;
        sum += p.next_check(c.c);
    }
    CHECK(allocations.load() - before == 0);
    CHECK(sum > 0);
}

TEST_CASE("a larger beta never predicts a shorter jump from the same head (horizon >= rounds)",
          "[policy][predictive][property]") {
    // Round r fires iff max|v_r| > beta * T[i + r]: raising beta removes rounds, never adds one,
    // so the first firing round (or the horizon, >= R) can only move later.
    const std::size_t heads = 10, classes = 10;
    const auto table = random_table(100, heads, classes, 8);
    const shape s(heads, classes);
    const auto T = mean_logit_extremum(trace_of(table));
    const std::vector<double> betas{0.5, 0.8, 1.0, 1.3, 1.7, 2.2, 3.0, 4.0, 6.0};
    std::vector<policy::predictive> ps;
    for (double b : betas) ps.push_back(prepared({.beta = b}, T, s));
    std::size_t increases = 0;
    for (const auto& sample : table)
        for (std::size_t k = 0; k + 1 < heads; ++k) {
            std::size_t prev = 0;
            for (auto& p : ps) {
                const std::size_t next = p.forecast(k, std::span<const float>(sample[k]));
                CHECK(next >= prev);
                increases += next > prev && prev != 0;
                prev = next;
            }
        }
    CHECK(increases > 100);
}
