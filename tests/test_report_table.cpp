#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/report/table.hpp>
#include <earlyexit/trace/metrics.hpp>

using namespace earlyexit;

namespace {

/// Three hand-made rows covering every kind of cell: measured, unmeasured, yes/NO/-.
std::vector<policy_metrics> sample_rows() {
    policy_metrics full;
    full.name = "full";
    full.samples = 1000;
    full.accuracy = 0.913;
    full.mean_stages = 12;
    full.p50_stages = full.p90_stages = full.p99_stages = 12;
    full.mean_heads = 1;
    full.mean_macs = 1e9;
    full.compute_saving = 0;
    full.mean_seconds = 0.004567;
    full.p99_seconds = 0.0061;
    full.throughput_samples_per_s = 218.96;
    full.energy_joules = 0.0123;
    full.deadline_miss_rate = 0.05;
    full.exit_histogram = {0, 0, 1000};
    full.replay_matches_live = true;

    policy_metrics oracle;
    oracle.name = "oracle";
    oracle.samples = 1000;
    oracle.accuracy = 0.9627;
    oracle.mean_stages = 4.5;
    oracle.p90_stages = 9;
    oracle.mean_heads = 2.25;
    oracle.compute_saving = 0.6134;
    oracle.mean_seconds = 0.000234;
    oracle.p99_seconds = 0.0005;
    oracle.throughput_samples_per_s = 4273.5;
    oracle.exit_histogram = {600, 300, 100};

    policy_metrics mp;
    mp.name = "max_prob 0.9";
    mp.samples = 1000;
    mp.mean_stages = 6.3333;
    mp.p90_stages = 10.5;
    mp.mean_heads = 3;
    mp.compute_saving = 0.40;
    mp.mean_seconds = 0.0000123;
    mp.energy_joules = 0.5;
    mp.deadline_miss_rate = 0.0;
    mp.replay_matches_live = false;
    return {full, oracle, mp};
}

}  // namespace

TEST_CASE("format_table: exact text with the delta column", "[report][table]") {
    const auto rows = sample_rows();
    const std::string expected =
        "policy        accuracy %  Δ acc (pt)  mean stages  p90 stages  mean heads  saving %  ms/sample  p99 ms  samples/s  mJ/sample  deadline miss %  replay=live\n"
        "------------  ----------  ----------  -----------  ----------  ----------  --------  ---------  ------  ---------  ---------  ---------------  -----------\n"
        "full               91.30       +0.00        12.00          12        1.00       0.0       4.57    6.10        219       12.3             5.00          yes\n"
        "oracle             96.27       +4.97         4.50           9        2.25      61.3      0.234   0.500       4274          -                -            -\n"
        "max_prob 0.9           -           -         6.33       10.50        3.00      40.0     0.0123   0.000      0.000        500             0.00           NO\n";
    CHECK(format_table(rows, 0.913) == expected);
}

TEST_CASE("format_table: without a final accuracy there is no delta column", "[report][table]") {
    const auto all = sample_rows();
    const std::vector<policy_metrics> rows{all[0], all[1]};
    const std::string expected =
        "policy  accuracy %  mean stages  p90 stages  mean heads  saving %  ms/sample  p99 ms  samples/s  mJ/sample  deadline miss %  replay=live\n"
        "------  ----------  -----------  ----------  ----------  --------  ---------  ------  ---------  ---------  ---------------  -----------\n"
        "full         91.30        12.00          12        1.00       0.0       4.57    6.10        219       12.3             5.00          yes\n"
        "oracle       96.27         4.50           9        2.25      61.3      0.234   0.500       4274          -                -            -\n";
    CHECK(format_table(rows) == expected);
}

TEST_CASE("format_table: a reward column after the saving when a row has a mean reward", "[report][table]") {
    auto all = sample_rows();
    all[0].mean_reward = 0.5126;
    const std::vector<policy_metrics> rows{all[0], all[1]};
    const std::string expected =
        "policy  accuracy %  mean stages  p90 stages  mean heads  saving %  reward  ms/sample  p99 ms  samples/s  mJ/sample  deadline miss %  replay=live\n"
        "------  ----------  -----------  ----------  ----------  --------  ------  ---------  ------  ---------  ---------  ---------------  -----------\n"
        "full         91.30        12.00          12        1.00       0.0   0.513       4.57    6.10        219       12.3             5.00          yes\n"
        "oracle       96.27         4.50           9        2.25      61.3       -      0.234   0.500       4274          -                -            -\n";
    CHECK(format_table(rows) == expected);
}

TEST_CASE("format_table: the name column fits the longest name, counted in code points", "[report][table]") {
    policy_metrics m;
    m.name = "ΔΔΔΔΔΔΔΔ";  // 8 code points, 16 bytes
    const std::vector<policy_metrics> rows{m};
    const std::string text = format_table(rows);
    const auto first_line = text.substr(0, text.find('\n'));
    CHECK(first_line.rfind("policy    accuracy %", 0) == 0);  // "policy" padded to 8
    CHECK(text.find("\n--------  ----------") != std::string::npos);
    CHECK(text.find("\nΔΔΔΔΔΔΔΔ           -") != std::string::npos);
}

TEST_CASE("format_table: no rows gives the header and the rule only", "[report][table]") {
    const std::string text = format_table({});
    CHECK(text.rfind("policy  accuracy %  mean stages", 0) == 0);
    CHECK(std::count(text.begin(), text.end(), '\n') == 2);
}

TEST_CASE("format_table: a difference that rounds to zero is +0.00, a loss is negative", "[report][table]") {
    policy_metrics a;
    a.name = "a";
    a.accuracy = 0.8999999;
    policy_metrics b;
    b.name = "b";
    b.accuracy = 0.8875;
    const std::vector<policy_metrics> rows{a, b};
    const std::string text = format_table(rows, 0.9);
    CHECK(text.find("\na" + std::string(12, ' ') + "90.00       +0.00") != std::string::npos);
    CHECK(text.find("\nb" + std::string(12, ' ') + "88.75       -1.25") != std::string::npos);
}

TEST_CASE("format_significant keeps about three significant digits", "[report][table]") {
    CHECK(detail::format_significant(0) == "0.000");
    CHECK(detail::format_significant(1234.4) == "1234");
    CHECK(detail::format_significant(123.4) == "123");
    CHECK(detail::format_significant(12.34) == "12.3");
    CHECK(detail::format_significant(1.234) == "1.23");
    CHECK(detail::format_significant(0.1234) == "0.123");
    CHECK(detail::format_significant(0.001234) == "0.00123");
}

TEST_CASE("print_table writes exactly format_table's text", "[report][table]") {
    const auto rows = sample_rows();
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    print_table(f, rows, 0.913);
    std::rewind(f);
    std::string got;
    char buf[256];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) got.append(buf, n);
    std::fclose(f);
    CHECK(got == format_table(rows, 0.913));
}
