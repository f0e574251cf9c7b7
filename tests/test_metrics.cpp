#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/network.hpp>
#include <earlyexit/trace/metrics.hpp>

using namespace earlyexit;
using Catch::Matchers::Contains;

namespace {

// 2 stages of 100 MACs, a head of 10 MACs after each; 4 samples, 2 classes.
//   sample  head 0 logits  head 1 logits  label
//   0       (5, 0)         (5, 0)         0      confident and right at head 0
//   1       (0, 0.5)       (3, 0)         0      unsure at head 0, right at head 1
//   2       (0, 4)         (0, 4)         0      confidently wrong everywhere
//   3       (0.2, 0)       (0, 2)         1      unsure and wrong at head 0, right at head 1
trace hand_made() {
    trace t(trace_layout{2, {0, 1}, {100, 100}, {10, 10}});
    const std::vector<std::vector<float>> z{{5, 0, 5, 0}, {0, 0.5f, 3, 0}, {0, 4, 0, 4}, {0.2f, 0, 0, 2}};
    const std::vector<std::size_t> y{0, 0, 0, 1};
    for (std::size_t i = 0; i < 4; ++i)
        t.add(z[i], std::vector<double>{0.001, 0.001}, std::vector<double>{0.0001, 0.0001}, y[i]);
    return t;
}

}  // namespace

TEST_CASE("metrics of max_prob(0.9) on a hand-made trace equal the hand-computed values", "[metrics]") {
    const auto t = hand_made();
    const auto m = evaluate(t, "max_prob 0.9", policy::max_prob{0.9}, 0.0015);
    // Exits: sample 0 at head 0 (0.993), 1 at head 1, 2 at head 0 (0.982, wrong), 3 at head 1.
    CHECK(m.name == "max_prob 0.9");
    CHECK(m.samples == 4);
    CHECK(m.accuracy == std::optional<double>(0.75));
    CHECK(m.mean_stages == 1.5);
    CHECK(m.mean_heads == 1.5);
    CHECK(m.mean_macs == 165.0);  // (110 + 220 + 110 + 220) / 4
    CHECK(m.compute_saving == Approx(1.0 - 165.0 / 210.0));
    CHECK(m.mean_seconds == Approx((0.0011 + 0.0022 + 0.0011 + 0.0022) / 4));
    CHECK(m.p50_stages == 1.0);
    CHECK(m.p90_stages == 2.0);
    CHECK(m.p99_stages == 2.0);
    CHECK(m.exit_histogram == std::vector<std::size_t>{2, 2});
    CHECK(m.deadline_miss_rate == std::optional<double>(0.5));
    CHECK_FALSE(m.energy_joules.has_value());
    CHECK_FALSE(m.replay_matches_live.has_value());
}

TEST_CASE("compare puts full and oracle first, with their hand-computed values", "[metrics]") {
    const auto t = hand_made();
    const auto rows = compare(t, {{"margin_0.5", policy::margin{0.5}}});
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].name == "full");
    CHECK(rows[0].accuracy == std::optional<double>(0.75));
    CHECK(rows[0].compute_saving == 0.0);
    CHECK(rows[0].mean_heads == 1.0);
    CHECK(rows[0].mean_stages == 2.0);
    CHECK(rows[1].name == "oracle");
    CHECK(rows[1].accuracy == std::optional<double>(0.75));
    CHECK(rows[1].mean_heads == 1.75);
    CHECK(rows[1].mean_macs == 192.5);
    CHECK(rows[1].exit_histogram == std::vector<std::size_t>{1, 3});
    // margin 0.5: head-0 margins are 0.987, 0.245, 0.964, 0.100 -> samples 0 and 2 exit at head 0.
    CHECK(rows[2].name == "margin_0.5");
    CHECK(rows[2].exit_histogram == std::vector<std::size_t>{2, 2});
    CHECK(rows[2].accuracy == std::optional<double>(0.75));
}

TEST_CASE("summarize works on live outcomes with partial labels", "[metrics]") {
    const std::vector<std::size_t> positions{0, 1};
    const std::vector<double> stage{1, 1}, head{0, 0};
    const network_info net{2, 2, 3, positions, stage, head, 2};
    const std::vector<sample_outcome> o{{2, 0, 1, 1, 0.5, 1, {}}, {1, 1, 2, 2, 1.0, 2, {}}, {0, 1, 2, 1, 1.5, 2, {}}};
    const std::vector<std::optional<std::size_t>> y{2, std::nullopt, 1};
    const auto m = summarize("live", o, [&](std::size_t i) { return y[i]; }, net);
    CHECK(m.accuracy == std::optional<double>(0.5));  // 1 of the 2 labelled samples
    CHECK(m.mean_seconds == 1.0);
    CHECK(m.compute_saving == Approx(1.0 - (5.0 / 3.0) / 2.0));
    const auto none = summarize("unlabelled", o, [](std::size_t) { return std::optional<std::size_t>(); }, net);
    CHECK_FALSE(none.accuracy.has_value());
    const std::vector<sample_outcome> bad{{0, 5, 1, 1, 0, 0, {}}};
    CHECK_THROWS_WITH(summarize("bad", bad, [](std::size_t) { return std::optional<std::size_t>(); }, net),
                      Contains("sample 0 exited at head 5"));
}

TEST_CASE("compare needs labels for the oracle row", "[metrics][error]") {
    trace t(trace_layout{2, {0}, {1}, {1}});
    t.add(std::vector<float>{1, 0}, std::vector<double>{0}, std::vector<double>{0}, std::nullopt);
    CHECK_THROWS_WITH(compare(t, {}), Contains("oracle row needs labels"));
}

namespace {
struct counts_updates {
    std::size_t seen = 0;
    [[nodiscard]] decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    void update(const episode<float>&) noexcept { ++seen; }
};
}  // namespace

TEST_CASE("evaluate does not train a learning policy passed by name", "[metrics]") {
    const auto t = hand_made();
    counts_updates p;
    CHECK(evaluate(t, "p", p).samples == t.size());
    CHECK(p.seen == 0);
    // replay() by reference is the way to keep what it learned.
    (void)replay(t, p);
    CHECK(p.seen == t.size());
}

TEST_CASE("evaluate_live summarizes a live run as evaluate() summarizes the replay of the same network",
          "[metrics]") {
    // The hand-made trace as a live network: the state is the sample's index, the heads write
    // its logits, and a simulated clock at 1e5 MACs/s gives the trace's recorded times.
    const std::vector<std::vector<float>> z{{5, 0, 5, 0}, {0, 0.5f, 3, 0}, {0, 4, 0, 4}, {0.2f, 0, 0, 2}};
    const auto head = [&z](std::size_t k) {
        return make_head([&z, k](const std::size_t& i, std::span<float> out) {
            out[0] = z[i][2 * k];
            out[1] = z[i][2 * k + 1];
        }, {.classes = 2, .macs = 10});
    };
    const auto net = make_network<std::size_t>()
                         .stage([](std::size_t&) {}, {.macs = 100})
                         .exit(head(0))
                         .stage([](std::size_t&) {}, {.macs = 100})
                         .exit(head(1))
                         .build();
    const std::vector<std::size_t> inputs{0, 1, 2, 3}, labels{0, 0, 0, 1};
    const auto live = evaluate_live(net, "max_prob 0.9", policy::max_prob{0.9}, std::span<const std::size_t>(inputs),
                                    labels, simulated_clock(1e5), 0.0015);
    const auto replayed = evaluate(hand_made(), "max_prob 0.9", policy::max_prob{0.9}, 0.0015);
    CHECK(live.name == replayed.name);
    CHECK(live.samples == 4);
    CHECK(live.accuracy == replayed.accuracy);
    CHECK(live.mean_stages == replayed.mean_stages);
    CHECK(live.mean_heads == replayed.mean_heads);
    CHECK(live.mean_macs == replayed.mean_macs);
    CHECK(live.compute_saving == Approx(replayed.compute_saving));
    CHECK(live.mean_seconds == Approx(replayed.mean_seconds));
    REQUIRE(live.deadline_miss_rate.has_value());
    CHECK(*live.deadline_miss_rate == Approx(*replayed.deadline_miss_rate));
    CHECK(live.exit_histogram == replayed.exit_histogram);
    // Unlabelled: no accuracy. Bad sizes and deadlines name the value.
    CHECK_FALSE(evaluate_live(net, "u", policy::full{}, std::span<const std::size_t>(inputs)).accuracy.has_value());
    CHECK_THROWS_WITH(evaluate_live(net, "x", policy::full{}, std::span<const std::size_t>(inputs),
                                    std::vector<std::size_t>{0, 1}),
                      Contains("2 labels for 4 samples"));
    CHECK_THROWS_WITH(evaluate_live(net, "x", policy::full{}, std::span<const std::size_t>(inputs), labels,
                                    simulated_clock{}, -1.0),
                      Contains("deadline -1 s"));
    CHECK_THROWS_WITH(evaluate_live(net, "x", policy::full{}, std::span<const std::size_t>(inputs),
                                    std::vector<std::size_t>{0, 0, 9, 0}),
                      Contains("label 9 is out of range"));
}
