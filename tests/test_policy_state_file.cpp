// policy/state_file.hpp: the learned state of dee (every reward model), ucb_exit and
// epsilon_greedy survives a save/load exactly (cells, base, edges, every option, a 64-bit seed),
// a loaded learner goes on learning exactly like the original, and every malformed file is
// refused with an earlyexit::error naming the file and the field.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/io.hpp>
#include <nlohmann/json.hpp>

#include "error_text.hpp"
#include "support.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit_test;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

// 2^63 + 12345: above 2^53, so a seed read back through a double would come back changed.
constexpr std::uint64_t big_seed = (std::uint64_t{1} << 63) + 12345;

/// A labelled random trace of n samples (4 heads, 5 classes).
trace random_trace(std::size_t n, unsigned seed) {
    const auto table = random_table(n, 4, 5, seed);
    counters count;
    const auto net = scripted_network(6, {1, 2, 4, 5}, table, count, {10, 20, 30, 10, 40, 5}, 2.0);
    scripted_state s;
    return record_trace(net, s, n, [&](std::size_t i, scripted_state& st) {
        st = {i, 0};
        return std::optional<std::size_t>(top1(table[i][3]));
    });
}

const trace& the_trace() {
    static const trace t = random_trace(600, 21);
    return t;
}

/// Every dee option away from its default (4 heads: 3 exits, 3 bins each: 2 interior edges per exit).
dee_options dee_opts() {
    return dee_options{.lambda = 0.3,
                       .alpha = 0.7,
                       .measure = context_measure::margin,
                       .confidence_bins = 3,
                       .cost_bins = 2,
                       .max_cost_fraction = 1.5,
                       .target = value_target::monte_carlo,
                       .probe_rate = 0.3,
                       .seed = big_seed,
                       .feedback_capacity = 77,
                       .confidence_edges = {{0.2, 0.6}, {0.1, 0.5}, {0.3, 0.9}}};
}

bandit_options bandit_opts() {
    return bandit_options{.lambda = 0.35,
                          .alpha = 0.45,
                          .epsilon = 0.15,
                          .probe_rate = 0.2,
                          .seed = big_seed + 1,
                          .feedback_capacity = 33};
}

template <class P>
constexpr bool is_dee_v = detail::is_dee<P>::value;

template <class P>
auto options_for() {
    if constexpr (is_dee_v<P>) return dee_opts();
    else return bandit_opts();
}

/// A learner after real learning, whose base is not empty: learned on samples 0-199, rebased
/// there, then learned on samples 200-399.
template <class P>
P trained() {
    P p(options_for<P>());
    (void)replay(the_trace().slice(0, 200), p);
    p.rebase();  // a base that is neither empty nor the final state
    (void)replay(the_trace().slice(200, 200), p);
    return p;
}

template <class P>
void check_same_state(const P& a, const P& b) {
    CHECK(a == b);
    CHECK(a.heads() == b.heads());
    CHECK(a.options() == b.options());
    CHECK(std::ranges::equal(a.table().cells(), b.table().cells()));
    CHECK(std::ranges::equal(a.table().base(), b.table().base()));
    if constexpr (is_dee_v<P>) CHECK(std::ranges::equal(a.edges(), b.edges()));
}

/// Saves p, loads it back, checks the loaded learner is p and learns on exactly like it.
template <class P>
void check_round_trip(P& p, const temp_dir& dir, const std::string& name) {
    INFO(name);
    const auto path = dir / (name + ".json");
    save_policy_state(path, p);
    P q = load_policy_state<P>(path);
    check_same_state(p, q);
    CHECK(policy_state_json(q) == policy_state_json(p));
    // The document read straight from memory (signed integers where parsed text has unsigned ones).
    check_same_state(p, policy_from_state_json<P>(policy_state_json(p), "memory"));
    // The 64-bit seed is stored as an unsigned integer, digit for digit.
    const json j = policy_state_json(p);
    CHECK(j.at("options").at("seed").is_number_unsigned());
    CHECK(j.at("options").at("seed").get<std::uint64_t>() == p.options().seed);
    CHECK(q.options().seed == p.options().seed);

    // Both go on learning from the same samples and decide and end alike.
    const auto more = the_trace().slice(400, 200);
    const auto out_p = replay(more, p);
    const auto out_q = replay(more, q);
    CHECK(same_decisions(out_p, out_q));
    check_same_state(p, q);
}

/// The message of the error refusing document j as a P.
template <class P>
std::string refusal(const json& j) {
    return what_of([&] { (void)policy_from_state_json<P>(j, "state.json"); });
}

struct bad_case {
    std::string what;
    std::function<void(json&)> edit;
    std::string expected;  // a part of the message
};

template <class P>
void check_refusals(const json& good, const std::vector<bad_case>& cases) {
    REQUIRE(refusal<P>(good) == "(no earlyexit::error thrown)");
    for (const auto& c : cases) {
        INFO(c.what);
        json j = good;
        c.edit(j);
        const std::string m = refusal<P>(j);
        CHECK_THAT(m, Contains("state.json: "));
        CHECK_THAT(m, Contains(c.expected));
    }
}

std::function<void(json&)> erase(std::string key) {
    return [key](json& j) { j.erase(key); };
}
std::function<void(json&)> erase_option(std::string key) {
    return [key](json& j) { j["options"].erase(key); };
}
std::function<void(json&)> set(std::string key, json v) {
    return [key, v](json& j) { j[key] = v; };
}
std::function<void(json&)> set_option(std::string key, json v) {
    return [key, v](json& j) { j["options"][key] = v; };
}

/// The first index of cells with a nonzero count.
std::size_t some_learned_cell(const json& j) {
    for (std::size_t i = 0; i < j["cells"].size(); ++i)
        if (j["cells"][i][0].get<std::int64_t>() > 0) return i;
    FAIL("no learned cell");
    return 0;
}

}  // namespace

TEST_CASE("policy state round trip is exact for every learner after real learning", "[policy][state_file]") {
    const temp_dir dir("earlyexit_policy_state");
    {
        auto p = trained<policy::dee<>>();
        // The state is worth saving: learned cells, a base that is neither empty nor the state.
        REQUIRE(p.visit_stats(0).count == 400);
        REQUIRE(p.table().base()[p.table().size() - 3].count == 200);  // visits of exit 0 at the rebase
        REQUIRE_FALSE(std::ranges::equal(p.table().base(), p.table().cells()));
        REQUIRE(std::vector<double>(p.edges().begin(), p.edges().end()) ==
                std::vector<double>{0.2, 0.6, 0.1, 0.5, 0.3, 0.9});
        check_round_trip(p, dir, "dee_max_prob");
    }
    {
        auto p = trained<policy::dee<reward::agreement_reward>>();
        check_round_trip(p, dir, "dee_agreement");
    }
    {
        auto p = trained<policy::dee<reward::correctness_reward>>();
        check_round_trip(p, dir, "dee_correctness");
    }
    {
        auto o = dee_opts();  // uniform bins, the other measure and target, every reward learned
        o.confidence_edges.clear();
        o.measure = context_measure::entropy;
        o.target = value_target::backward_induction;
        policy::dee<> p(o);
        (void)replay(the_trace().slice(0, 300), p);
        REQUIRE(std::vector<double>(p.edges().begin(), p.edges().end()) ==
                std::vector<double>{1.0 / 3, 2.0 / 3, 1.0 / 3, 2.0 / 3, 1.0 / 3, 2.0 / 3});
        check_round_trip(p, dir, "dee_uniform");
    }
    {
        auto p = trained<policy::ucb_exit<>>();
        REQUIRE(p.arm_stats(0).count > 0);
        REQUIRE_FALSE(std::ranges::equal(p.table().base(), p.table().cells()));
        check_round_trip(p, dir, "ucb_exit");
    }
    {
        auto p = trained<policy::epsilon_greedy<>>();
        check_round_trip(p, dir, "epsilon_greedy");
    }
    {
        auto p = trained<policy::ucb_exit<reward::agreement_reward>>();
        check_round_trip(p, dir, "ucb_exit_agreement");
    }
    {
        auto p = trained<policy::epsilon_greedy<reward::correctness_reward>>();
        check_round_trip(p, dir, "epsilon_greedy_correctness");
    }

    // The file holds the seed's 19 digits as they are.
    std::ifstream in(dir / "ucb_exit.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK_THAT(text, Contains("9223372036854788154"));  // 2^63 + 12345 + 1
    CHECK_THAT(text, Contains("\"format\""));
    CHECK_THAT(text, Contains("earlyexit.policy_state"));
}

TEST_CASE("policy state of a never-prepared learner round-trips", "[policy][state_file]") {
    const temp_dir dir("earlyexit_policy_state");
    policy::dee<> d(dee_opts());
    REQUIRE(d.heads() == 0);
    const json j = policy_state_json(d);
    CHECK(j.at("heads") == 0);
    CHECK(j.at("cells") == json::array());
    CHECK(j.at("base") == json::array());
    CHECK(j.at("edges") == json::array());
    check_round_trip(d, dir, "dee_fresh");
    policy::dee<reward::correctness_reward> c(dee_opts());
    check_round_trip(c, dir, "dee_correctness_fresh");
    policy::ucb_exit<> u(bandit_opts());
    check_round_trip(u, dir, "ucb_exit_fresh");
    policy::epsilon_greedy<> e(bandit_opts());
    check_round_trip(e, dir, "epsilon_greedy_fresh");
}

TEST_CASE("policy state: the fleet workflow counts the shared start once", "[policy][state_file]") {
    // Train, save; two machines load and serve; centrally, load the original and merge theirs.
    const temp_dir dir("earlyexit_policy_state");
    auto o = dee_opts();
    o.probe_rate = 1.0;  // episodes independent of the state: the merge is exact
    policy::dee<> whole(o), start(o);
    (void)replay(the_trace(), whole);
    (void)replay(the_trace().slice(0, 200), start);
    save_policy_state(dir / "start.json", start);
    for (std::size_t m = 0; m < 2; ++m) {
        auto machine = load_policy_state<policy::dee<>>(dir / "start.json");
        machine.rebase();
        (void)replay(the_trace().slice(200 + 200 * m, 200), machine);
        save_policy_state(dir / ("machine" + std::to_string(m) + ".json"), machine);
    }
    auto central = load_policy_state<policy::dee<>>(dir / "start.json");
    central.merge(load_policy_state<policy::dee<>>(dir / "machine0.json"));
    central.merge(load_policy_state<policy::dee<>>(dir / "machine1.json"));
    CHECK(central == whole);
    CHECK(central.visit_stats(0).count == 600);
}

TEST_CASE("policy state: missing and unreadable files name the path", "[policy][state_file]") {
    const temp_dir dir("earlyexit_policy_state");
    const auto missing = dir / "no_such_state.json";
    CHECK(what_of([&] { (void)load_policy_state<policy::dee<>>(missing); }) ==
          "load_policy_state: cannot open " + missing.string());
    const auto broken = dir / "broken.json";
    {
        std::ofstream out(broken);
        out << "{\"format\": \"earlyexit.policy_state\", ";
    }
    const std::string m = what_of([&] { (void)load_policy_state<policy::ucb_exit<>>(broken); });
    CHECK_THAT(m, Contains(broken.string() + ": not valid JSON"));
    const auto empty = dir / "empty.json";
    { std::ofstream out(empty); }
    CHECK_THAT(what_of([&] { (void)load_policy_state<policy::ucb_exit<>>(empty); }),
               Contains(empty.string() + ": not valid JSON"));
    // A valid JSON file that is no state names the file and the field.
    const auto other = dir / "other.json";
    {
        std::ofstream out(other);
        out << "{\"hello\": 1}";
    }
    CHECK(what_of([&] { (void)load_policy_state<policy::dee<>>(other); }) ==
          other.string() + ": field 'format' is missing");
}

TEST_CASE("policy state: every malformed dee file is refused, naming the field", "[policy][state_file]") {
    const json good = policy_state_json(trained<policy::dee<>>());
    REQUIRE(good.at("heads") == 4);
    REQUIRE(good.at("cells").size() == 39);  // 3 exits x (2 x 3 x 2 cells + 1 visit counter)
    REQUIRE(good.at("edges").size() == 6);
    const std::size_t learned = some_learned_cell(good);
    const auto learned_count = good["cells"][learned][0].get<std::int64_t>();
    const std::string at = std::to_string(learned);

    std::vector<bad_case> cases{
        {"not an object", [](json& j) { j = json::array({1, 2, 3}); }, "'(top level)' is not a JSON object"},
        {"a string", [](json& j) { j = "dee"; }, "'(top level)' is not a JSON object"},
        {"wrong format", set("format", "earlyexit.trace"),
         "field 'format' is 'earlyexit.trace', not 'earlyexit.policy_state'"},
        {"format not a string", set("format", 1), "field 'format' must be a string, got 1"},
        {"wrong version", set("version", 3), "field 'version' is 3; this build reads versions 1 to 2"},
        {"version as text", set("version", "1"), "field 'version' must be a whole number >= 0"},
        {"negative version", set("version", -1), "field 'version' must be a whole number >= 0"},
        {"another policy", set("policy", "ucb_exit"), "field 'policy' is 'ucb_exit', expected 'dee'"},
        {"another reward", set("reward", "agreement"), "field 'reward' is 'agreement', expected 'max_prob'"},
        {"reward not a string", set("reward", json::array()), "field 'reward' must be a string"},
        {"options not an object", set("options", 5), "'options' is not a JSON object"},
        {"heads 0 with cells", set("heads", 0),
         "field 'heads' is 0 (a learner never bound to a network) but 'cells' has 39 and 'base' 39 entries"},
        {"negative heads", set("heads", -4), "field 'heads' must be a whole number >= 0, got -4"},
        {"fractional heads", set("heads", 4.5), "field 'heads' must be a whole number >= 0, got 4.5"},
        {"too many heads", set("heads", 1 << 21), "field 'heads' 2097152 is out of range [0, 2^20]"},
        {"heads 0 with edges", [](json& j) { j["heads"] = 0, j["cells"] = j["base"] = json::array(); },
         "field 'heads' is 0 (a learner never bound to a network) but 'edges' has 6 values"},
        {"heads that do not fit the options", set("heads", 3),
         "field 'options.confidence_edges' has 3 exits; 'heads' 3 has 2 non-final heads"},
        {"cells too short", [](json& j) { j["cells"].erase(j["cells"].size() - 1); },
         "dee state: cells has 38 entries, expected 39"},
        {"cells too long", [](json& j) { j["cells"].push_back({0, 0}); }, "dee state: cells has 40 entries, expected 39"},
        {"base too short", [](json& j) { j["base"].erase(j["base"].size() - 1); }, "dee state: base has 38 entries, expected 39"},
        {"cells not an array", set("cells", json::object()), "field 'cells' must be an array of [count, sum] pairs"},
        {"base not an array", set("base", 3), "field 'base' must be an array of [count, sum] pairs"},
        {"a cell of one number", [](json& j) { j["cells"][1] = {1}; }, "field 'cells[1]' must be [count, sum], two whole numbers, got [1]"},
        {"a cell of three numbers", [](json& j) { j["cells"][1] = {1, 2, 3}; }, "field 'cells[1]' must be [count, sum]"},
        {"a cell that is a number", [](json& j) { j["cells"][1] = 7; }, "field 'cells[1]' must be [count, sum]"},
        {"a cell with a fractional count", [](json& j) { j["cells"][1] = {1.5, 2}; }, "field 'cells[1]' must be [count, sum]"},
        {"a cell with a fractional sum", [](json& j) { j["cells"][1] = {1, 0.5}; }, "field 'cells[1]' must be [count, sum]"},
        {"a cell with a text count", [](json& j) { j["base"][2] = {"1", 0}; }, "field 'base[2]' must be [count, sum]"},
        {"negative count", [](json& j) { j["cells"][0] = {-1, 0}; }, "field 'cells[0]' has a negative count -1"},
        {"negative base count", [](json& j) { j["base"][2] = {-4, 0}; }, "field 'base[2]' has a negative count -4"},
        {"count 0 with a sum", [](json& j) { j["cells"][0] = {0, 5}; }, "field 'cells[0]' has a sum 5 with no samples"},
        {"count 0 with a negative sum", [](json& j) { j["base"][0] = {0, -3}; }, "field 'base[0]' has a sum -3 with no samples"},
        {"count too large", [](json& j) { j["cells"][0] = {std::uint64_t{1} << 63, 0}; },
         "field 'cells[0]' count 9223372036854775808 is too large"},
        {"sum too large", [](json& j) { j["cells"][0] = {1, std::uint64_t{1} << 63}; }, "field 'cells[0]' sum is too large"},
        {"base larger than cells", [&](json& j) { j["base"][learned] = {learned_count + 1, 0}; },
         "field 'base[" + at + "]' has " + std::to_string(learned_count + 1) + " samples, more than 'cells[" + at +
             "]' (" + std::to_string(learned_count) + ")"},
        {"edges not an array", set("edges", "none"), "field 'edges' must be an array of numbers"},
        {"an edge not a number", [](json& j) { j["edges"][3] = nullptr; }, "field 'edges[3]' must be a number, got null"},
        {"edges not increasing", [](json& j) { j["edges"][3] = j["edges"][2]; },
         "dee state: edges of exit 1 are not increasing at 1"},
        {"edges decreasing", [](json& j) { j["edges"][1] = 0.0; }, "dee state: edges of exit 0 are not increasing at 1"},
        {"edges too few", [](json& j) { j["edges"].erase(5); }, "dee state: edges has 5 values; 3 exits x 3 bins need 6"},
        {"edges too many", [](json& j) { j["edges"].push_back(1.0); }, "dee state: edges has 7 values"},
        // Options out of range: the constructor's message, naming the option.
        {"lambda -1", set_option("lambda", -1), "dee: lambda -1 is out of range [0, 100]"},
        {"alpha 1000", set_option("alpha", 1000), "dee: alpha 1000 is out of range [0, 100]"},
        {"confidence_bins 0", set_option("confidence_bins", 0), "dee: confidence_bins 0 is out of range [1, 1024]"},
        {"cost_bins 2000", set_option("cost_bins", 2000), "dee: cost_bins 2000 is out of range [1, 1024]"},
        {"max_cost_fraction 0", set_option("max_cost_fraction", 0), "dee: max_cost_fraction 0 must be finite and > 0"},
        {"probe_rate 1.5", set_option("probe_rate", 1.5), "dee: probe_rate 1.5 is out of range [0, 1]"},
        {"confidence_edges of the wrong length", set_option("confidence_edges", json{{0.5}, {0.5}, {0.5}}),
         "dee: confidence_edges[0] has 1 edges; 3 bins need 2"},
        {"confidence_edges not increasing", set_option("confidence_edges", json{{0.2, 0.6}, {0.5, 0.1}, {0.3, 0.9}}),
         "dee: confidence_edges[1] is not increasing at 1"},
        {"confidence_edges for another number of exits", set_option("confidence_edges", json{{0.2, 0.6}, {0.1, 0.5}}),
         "field 'options.confidence_edges' has 2 exits; 'heads' 4 has 3 non-final heads"},
        {"unknown measure", set_option("measure", "variance"),
         "field 'options.measure' is 'variance'; expected max_prob, margin or entropy"},
        {"unknown target", set_option("target", "td"),
         "field 'options.target' is 'td'; expected backward_induction or monte_carlo"},
        // Options mistyped.
        {"lambda as text", set_option("lambda", "0.3"), "field 'options.lambda' must be a number, got \"0.3\""},
        {"alpha a bool", set_option("alpha", true), "field 'options.alpha' must be a number, got true"},
        {"measure a number", set_option("measure", 1), "field 'options.measure' must be a string, got 1"},
        {"confidence_bins negative", set_option("confidence_bins", -3), "field 'options.confidence_bins' must be a whole number >= 0"},
        {"confidence_bins fractional", set_option("confidence_bins", 2.5), "field 'options.confidence_bins' must be a whole number >= 0"},
        {"cost_bins as text", set_option("cost_bins", "2"), "field 'options.cost_bins' must be a whole number >= 0"},
        {"max_cost_fraction null", set_option("max_cost_fraction", nullptr), "field 'options.max_cost_fraction' must be a number"},
        {"target a number", set_option("target", 0), "field 'options.target' must be a string"},
        {"probe_rate as text", set_option("probe_rate", "0.3"), "field 'options.probe_rate' must be a number"},
        {"seed negative", set_option("seed", -1), "field 'options.seed' must be a whole number >= 0, got -1"},
        {"seed fractional", set_option("seed", 1.5), "field 'options.seed' must be a whole number >= 0"},
        {"feedback_capacity negative", set_option("feedback_capacity", -2), "field 'options.feedback_capacity' must be a whole number >= 0"},
        {"confidence_edges a number", set_option("confidence_edges", 3), "field 'options.confidence_edges' must be an array"},
        {"confidence_edges of numbers", set_option("confidence_edges", json{0.2, 0.6}),
         "field 'options.confidence_edges[0]' must be an array of numbers"},
        {"confidence_edges with text", set_option("confidence_edges", json{{0.2, "x"}, {0.1, 0.5}, {0.3, 0.9}}),
         "field 'options.confidence_edges[0][1]' must be a number, got \"x\""},
    };
    for (const char* key : {"format", "version", "policy", "reward", "options", "heads", "cells", "base", "edges"})
        cases.push_back({std::string("no ") + key, erase(key), std::string("field '") + key + "' is missing"});
    for (const char* key : {"lambda", "alpha", "measure", "confidence_bins", "cost_bins", "max_cost_fraction", "target",
                            "probe_rate", "seed", "feedback_capacity", "confidence_edges"})
        cases.push_back({std::string("no options.") + key, erase_option(key),
                         std::string("field 'options.") + key + "' is missing"});
    check_refusals<policy::dee<>>(good, cases);

    // The whole message for one of them: the source, the field, the value.
    json j = good;
    j["options"]["lambda"] = -1;
    CHECK(refusal<policy::dee<>>(j) == "state.json: dee: lambda -1 is out of range [0, 100]");

    // Files of other learners and reward models.
    CHECK(refusal<policy::dee<reward::correctness_reward>>(good) ==
          "state.json: field 'reward' is 'max_prob', expected 'correctness'");
    CHECK(refusal<policy::dee<>>(policy_state_json(trained<policy::dee<reward::agreement_reward>>())) ==
          "state.json: field 'reward' is 'agreement', expected 'max_prob'");
    CHECK(refusal<policy::ucb_exit<>>(good) == "state.json: field 'policy' is 'dee', expected 'ucb_exit'");
}

TEST_CASE("policy state: every malformed bandit file is refused, naming the field", "[policy][state_file]") {
    const json good = policy_state_json(trained<policy::ucb_exit<>>());
    REQUIRE(good.at("heads") == 4);
    REQUIRE(good.at("cells").size() == 4);
    REQUIRE_FALSE(good.contains("edges"));
    std::vector<bad_case> cases{
        {"not an object", [](json& j) { j = nullptr; }, "'(top level)' is not a JSON object"},
        {"wrong format", set("format", "policy_state"), "field 'format' is 'policy_state', not 'earlyexit.policy_state'"},
        {"wrong version", set("version", 0), "field 'version' is 0; this build reads versions 1 to 2"},
        {"another policy", set("policy", "epsilon_greedy"), "field 'policy' is 'epsilon_greedy', expected 'ucb_exit'"},
        {"another reward", set("reward", "correctness"), "field 'reward' is 'correctness', expected 'max_prob'"},
        {"options not an object", set("options", json::array()), "'options' is not a JSON object"},
        {"heads 0 with cells", set("heads", 0),
         "field 'heads' is 0 (a learner never bound to a network) but 'cells' has 4 and 'base' 4 entries"},
        {"heads that do not fit the cells", set("heads", 3), "ucb_exit state: cells has 4 entries, expected 3"},
        {"cells too short", [](json& j) { j["cells"].erase(3); }, "ucb_exit state: cells has 3 entries, expected 4"},
        {"base too long", [](json& j) { j["base"].push_back({0, 0}); }, "ucb_exit state: base has 5 entries, expected 4"},
        {"a cell not a pair", [](json& j) { j["cells"][2] = {3}; }, "field 'cells[2]' must be [count, sum]"},
        {"negative count", [](json& j) { j["cells"][2] = {-3, -3}; }, "field 'cells[2]' has a negative count -3"},
        {"count 0 with a sum", [](json& j) { j["cells"][2] = {0, 1}; }, "field 'cells[2]' has a sum 1 with no samples"},
        {"base larger than cells", [](json& j) { j["base"][1] = {j["cells"][1][0].get<std::int64_t>() + 1, 0}; },
         "field 'base[1]' has"},
        {"lambda -1", set_option("lambda", -1), "ucb_exit: lambda -1 is out of range [0, 100]"},
        {"alpha 101", set_option("alpha", 101), "ucb_exit: alpha 101 is out of range [0, 100]"},
        {"epsilon 2", set_option("epsilon", 2), "ucb_exit: epsilon 2 is out of range [0, 1]"},
        {"probe_rate -0.5", set_option("probe_rate", -0.5), "ucb_exit: probe_rate -0.5 is out of range [0, 1]"},
        {"lambda as text", set_option("lambda", "x"), "field 'options.lambda' must be a number"},
        {"alpha null", set_option("alpha", nullptr), "field 'options.alpha' must be a number"},
        {"epsilon as text", set_option("epsilon", "0.1"), "field 'options.epsilon' must be a number"},
        {"probe_rate an object", set_option("probe_rate", json::object()), "field 'options.probe_rate' must be a number"},
        {"seed negative", set_option("seed", -7), "field 'options.seed' must be a whole number >= 0"},
        {"feedback_capacity fractional", set_option("feedback_capacity", 0.5), "field 'options.feedback_capacity' must be a whole number >= 0"},
    };
    for (const char* key : {"format", "version", "policy", "reward", "options", "heads", "cells", "base"})
        cases.push_back({std::string("no ") + key, erase(key), std::string("field '") + key + "' is missing"});
    for (const char* key : {"lambda", "alpha", "epsilon", "probe_rate", "seed", "feedback_capacity"})
        cases.push_back({std::string("no options.") + key, erase_option(key),
                         std::string("field 'options.") + key + "' is missing"});
    check_refusals<policy::ucb_exit<>>(good, cases);

    CHECK(refusal<policy::epsilon_greedy<>>(good) == "state.json: field 'policy' is 'ucb_exit', expected 'epsilon_greedy'");
    CHECK(refusal<policy::dee<>>(good) == "state.json: field 'policy' is 'ucb_exit', expected 'dee'");
    CHECK(refusal<policy::ucb_exit<>>(policy_state_json(trained<policy::ucb_exit<reward::agreement_reward>>())) ==
          "state.json: field 'reward' is 'agreement', expected 'max_prob'");
    // An agreement bandit without probes would never learn: a file saying so is refused too.
    json silent = policy_state_json(trained<policy::ucb_exit<reward::agreement_reward>>());
    silent["options"]["probe_rate"] = 0.0;
    CHECK_THAT(refusal<policy::ucb_exit<reward::agreement_reward>>(silent),
               Contains("state.json: ucb_exit: probe_rate 0 with the agreement reward never learns"));
    // A bandit file needs no edges, and the dee-only options are not read.
    json extra = good;
    extra["edges"] = json::array({1, 2});
    CHECK(refusal<policy::ucb_exit<>>(extra) == "(no earlyexit::error thrown)");
}

TEST_CASE("policy state: bytes after the JSON document and a huge feedback capacity are refused",
          "[policy][state_file]") {
    earlyexit_test::temp_dir d;
    const auto path = d / "dee.json";
    save_policy_state(path, policy::dee<>(dee_options{}));
    std::string text;
    {
        std::ifstream in(path, std::ios::binary);
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::ofstream(path, std::ios::binary | std::ios::app) << "garbage";
    CHECK_THROWS_WITH(load_policy_state<policy::dee<>>(path),
                      Catch::Matchers::StartsWith(path.string() + ": not valid JSON") &&
                          Catch::Matchers::Contains("end of input"));
    // A capacity the options refuse (binding would reserve capacity x heads records).
    const std::string key = "\"feedback_capacity\": 1024";
    const auto at = text.find(key);
    REQUIRE(at != std::string::npos);
    text.replace(at, key.size(), "\"feedback_capacity\": 1000000000000");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    CHECK_THROWS_WITH(load_policy_state<policy::dee<>>(path),
                      Catch::Matchers::Contains("feedback_capacity 1000000000000 is out of range [0, 2^24]"));
}
