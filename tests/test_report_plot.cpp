#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/report/plot.hpp>
#include <earlyexit/trace/metrics.hpp>

#include "error_text.hpp"
#include "temp_dir.hpp"
#include <earlyexit/calibrate/sweep.hpp>

using namespace earlyexit;
namespace fs = std::filesystem;

using earlyexit_test::what_of;

namespace {

/// A fresh directory per test and process (ctest runs test cases in parallel).
struct scratch {
    fs::path dir;
    explicit scratch(const char* name)
        : dir(fs::temp_directory_path() / ("earlyexit_test_plot_" + std::string(name) + "_" + std::to_string(::getpid()))) {
        fs::remove_all(dir);
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

/// Sets PATH for the scope of the object.
struct path_override {
    std::optional<std::string> old;
    explicit path_override(const std::string& value) {
        if (const char* p = std::getenv("PATH")) old = p;
        ::setenv("PATH", value.c_str(), 1);
    }
    ~path_override() {
        if (old) ::setenv("PATH", old->c_str(), 1);
        else ::unsetenv("PATH");
    }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool is_png(const fs::path& p) {
    const std::string s = slurp(p);
    return s.size() > 100 && s.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

policy_metrics row(std::string name, std::optional<double> accuracy, double saving,
                   std::vector<std::size_t> exits = {}) {
    policy_metrics m;
    m.name = std::move(name);
    m.accuracy = accuracy;
    m.compute_saving = saving;
    m.exit_histogram = std::move(exits);
    return m;
}

}  // namespace

TEST_CASE("plot_tradeoff writes the data, the script and a PNG", "[report][plot]") {
    const scratch s("tradeoff");
    const std::vector<curve> curves{{"max_prob", {{0, 91.5}, {25, 90.25}, {50, 85}}}, {"empty", {}}};
    const std::vector<policy_metrics> marked{row("full", 0.75, 0.0), row("unlabelled", std::nullopt, 0.3),
                                             row("oracle", 0.96875, 0.5)};
    plot_tradeoff(s.dir / "plots", "cifar10 / resnet", curves, marked);  // also creates the directory

    CHECK(slurp(s.dir / "plots" / "tradeoff.dat") ==
          "# earlyexit trade-off: column 1 = compute saving (%), column 2 = accuracy (%)\n"
          "# curve: max_prob\n"
          "0 91.5\n"
          "25 90.25\n"
          "50 85\n"
          "\n\n"
          "# marked: full\n"
          "0 75\n"
          "# marked: oracle\n"
          "50 96.875\n"
          "\n\n");
    const std::string gp = slurp(s.dir / "plots" / "tradeoff.gp");
    CHECK(gp.find("set title 'cifar10 / resnet'\n") != std::string::npos);
    CHECK(gp.find("title 'max_prob'") != std::string::npos);
    CHECK(gp.find("'empty'") == std::string::npos);  // a curve without points is left out
    // each marked point is its own series (block 1, point k), with its own marker, named in the key
    CHECK(gp.find("'' index 1 every ::0::0 using 1:2 with points pointtype 7 pointsize 1.5 linecolor rgb 'black' "
                  "title 'full'") != std::string::npos);
    CHECK(gp.find("'' index 1 every ::1::1 using 1:2 with points pointtype 5 pointsize 1.5 linecolor rgb 'black' "
                  "title 'oracle'") != std::string::npos);
    CHECK(gp.find("set label") == std::string::npos);
    CHECK(gp.find("unlabelled") == std::string::npos);  // cannot be placed without an accuracy
    CHECK(is_png(s.dir / "plots" / "tradeoff.png"));
}

TEST_CASE("plot_tradeoff with an accuracy range zooms on the band and spans the savings inside it", "[report][plot]") {
    const scratch s("tradeoff_zoom");
    const std::vector<curve> curves{{"max_prob", {{0, 91.5}, {25, 90.25}, {50, 85}}}};
    const std::vector<policy_metrics> marked{row("full", 0.915, 0.0), row("dee", 0.9, 0.3), row("far", 0.7, 0.9)};
    plot_options zoom;
    zoom.accuracy_range = std::pair{89.5, 92.0};
    plot_tradeoff(s.dir, "zoomed", curves, marked, zoom);
    const std::string gp = slurp(s.dir / "tradeoff.gp");
    CHECK(gp.find("set yrange [89.5:92]\n") != std::string::npos);
    // Inside the band: savings 0 and 25 (the curve), 0 and 30 (marked): x from -3 to 33.
    CHECK(gp.find("set xrange [-3:33]\n") != std::string::npos);
    CHECK(is_png(s.dir / "tradeoff.png"));
    zoom.accuracy_range = std::pair{92.0, 89.5};
    CHECK_THROWS_WITH(plot_tradeoff(s.dir, "bad", curves, marked, zoom),
                      Catch::Matchers::Contains("accuracy range [92, 89.5] must be finite and increasing"));
}

TEST_CASE("plot: names and titles are quoted, never interpreted", "[report][plot]") {
    const scratch s("quoting");
    const fs::path dir = s.dir / "it's a \"dir\" $(x)";
    const std::string nasty = "it's \"x\" `touch pwned` $(touch pwned) @macro \\n";
    const std::vector<curve> curves{{nasty, {{0, 90}, {40, 80}}}};
    const std::vector<policy_metrics> marked{row(nasty, 0.5, 0.5, {1, 1})};
    plot_tradeoff(dir, nasty, curves, marked);
    plot_exit_histogram(dir, marked);
    CHECK(is_png(dir / "tradeoff.png"));
    CHECK(is_png(dir / "exits.png"));
    CHECK(slurp(dir / "tradeoff.gp").find("title 'it''s \"x\" `touch pwned` $(touch pwned) @macro \\n'") !=
          std::string::npos);
    CHECK(!fs::exists("pwned"));
    CHECK(!fs::exists(dir / "pwned"));
}

using earlyexit_test::cwd_override;

TEST_CASE("plot: the scripts name their files relative to themselves, so a moved plot folder re-renders",
          "[report][plot]") {
    const scratch s("relocatable");
    const std::vector<curve> curves{{"max_prob", {{0, 91.5}, {50, 85}}}};
    const std::vector<policy_metrics> marked{row("full", 0.75, 0.0, {0, 2}), row("oracle", 0.96875, 0.5, {1, 1})};
    plot_tradeoff(s.dir / "made", "t", curves, marked);
    plot_exit_histogram(s.dir / "made", marked);
    for (const char* name : {"tradeoff.gp", "exits.gp"}) {
        INFO(name);
        const std::string gp = slurp(s.dir / "made" / name);
        CHECK(gp.find(s.dir.string()) == std::string::npos);
        CHECK(gp.find("'/") == std::string::npos);  // no quoted absolute path of any kind
    }
    const std::string tradeoff = slurp(s.dir / "made" / "tradeoff.gp");
    CHECK(tradeoff.find("set output 'tradeoff.png'\n") != std::string::npos);
    CHECK(tradeoff.find("plot 'tradeoff.dat' index 0 ") != std::string::npos);
    const std::string exits = slurp(s.dir / "made" / "exits.gp");
    CHECK(exits.find("set output 'exits.png'\n") != std::string::npos);
    CHECK(exits.find("plot 'exits.dat' using 2:xtic(1) ") != std::string::npos);

    // Elsewhere (the folder moved, as a committed results/ folder is on another machine), without
    // the images: `gnuplot <name>.gp` run inside it draws them again.
    fs::rename(s.dir / "made", s.dir / "moved");
    fs::remove(s.dir / "moved" / "tradeoff.png");
    fs::remove(s.dir / "moved" / "exits.png");
    {
        const cwd_override cwd(s.dir / "moved");
        for (const char* name : {"tradeoff.gp", "exits.gp"}) {
            const auto r = detail::run_program({"gnuplot", name});
            REQUIRE(r);
            INFO(name << ": " << r->output);
            CHECK(r->wait_status == 0);
        }
    }
    CHECK(is_png(s.dir / "moved" / "tradeoff.png"));
    CHECK(is_png(s.dir / "moved" / "exits.png"));
    CHECK(!fs::exists(s.dir / "made"));
}

TEST_CASE("plot_exit_histogram writes fractions per head and policy, and a PNG", "[report][plot]") {
    const scratch s("exits");
    const std::vector<policy_metrics> rows{row("full", 0.75, 0, {0, 0, 4}), row("oracle", 1.0, 0.5, {3, 0, 1}),
                                           row("x", {}, 0.25, {1, 2, 1})};
    plot_exit_histogram(s.dir, rows);
    CHECK(slurp(s.dir / "exits.dat") ==
          "# earlyexit exits: fraction of samples exiting at each head, one column per policy\n"
          "# head | full | oracle | x\n"
          "0 0 0.75 0.25\n"
          "1 0 0 0.5\n"
          "2 1 0.25 0.25\n");
    const std::string gp = slurp(s.dir / "exits.gp");
    CHECK(gp.find("using 2:xtic(1) title 'full'") != std::string::npos);
    CHECK(gp.find("'' using 4 title 'x'") != std::string::npos);
    CHECK(is_png(s.dir / "exits.png"));
}

TEST_CASE("plot_exit_histogram: readable with 8 policies and 8 heads, short histograms padded", "[report][plot]") {
    const scratch s("exits8");
    std::vector<policy_metrics> rows;
    for (std::size_t j = 0; j < 8; ++j) {
        std::vector<std::size_t> h(8);
        for (std::size_t k = 0; k < 8; ++k) h[k] = (j + 1) * (k + 1);
        rows.push_back(row("policy " + std::to_string(j), 0.9, 0.1, h));
    }
    rows.push_back(row("short", 0.9, 0.1, {1}));
    plot_exit_histogram(s.dir, rows);
    const std::string dat = slurp(s.dir / "exits.dat");
    CHECK(std::count(dat.begin(), dat.end(), '\n') == 2 + 8);
    CHECK(dat.find("\n7 ") != std::string::npos);
    CHECK(dat.ends_with(" 0\n"));  // "short" has no exit at head 7
    CHECK(is_png(s.dir / "exits.png"));
}

TEST_CASE("pareto_curve and tradeoff_curves turn sweeps into percent curves", "[report][plot]") {
    std::vector<sweep_point> sw;
    const auto add = [&](double p, std::optional<double> acc, double saving) {
        sw.push_back({p, row("p", acc, saving)});
    };
    add(0.1, 0.5, 0.75);    // front
    add(0.5, 0.75, 0.5);    // front
    add(0.6, 0.625, 0.25);  // dominated by 0.5
    add(0.9, 1.0, 0.0);     // front
    add(0.95, std::nullopt, 0.9);  // unlabelled: left out
    const curve c = pareto_curve("max_prob", sw);
    CHECK(c.name == "max_prob");
    const std::vector<std::pair<double, double>> expected{{0, 100}, {50, 75}, {75, 50}};
    CHECK(c.points == expected);

    const std::vector<std::vector<sweep_point>> sweeps{sw, {}};
    const std::vector<threshold_family> families{threshold_family::max_prob, threshold_family::entropy};
    const auto by_family = tradeoff_curves(families, sweeps);
    REQUIRE(by_family.size() == 2);
    CHECK(by_family[0].name == "max_prob");
    CHECK(by_family[0].points == expected);
    CHECK(by_family[1].name == "entropy");
    CHECK(by_family[1].points.empty());

    const std::vector<std::string> names{"a", "b"};
    const auto named = tradeoff_curves(sweeps, names);
    CHECK(named[1].name == "b");
    const std::vector<std::string> one{"a"};
    CHECK(what_of([&] { (void)tradeoff_curves(sweeps, one); }) == "tradeoff_curves: 2 sweeps but 1 names");
}

TEST_CASE("plot: nothing to plot is an error", "[report][plot]") {
    const scratch s("nothing");
    const std::vector<curve> curves{{"empty", {}}};
    const std::vector<policy_metrics> marked{row("unlabelled", std::nullopt, 0.3)};
    CHECK(what_of([&] { plot_tradeoff(s.dir, "t", curves, marked); })
              .starts_with("plot_tradeoff: nothing to plot in "));
    CHECK(what_of([&] { plot_exit_histogram(s.dir, marked); }) ==
          "plot_exit_histogram: no row has an exit histogram");
}

TEST_CASE("plot: gnuplot missing from PATH is a clear error", "[report][plot]") {
    const scratch s("missing");
    fs::create_directories(s.dir / "empty-bin");
    const path_override path((s.dir / "empty-bin").string());
    const std::vector<curve> curves{{"c", {{0, 90}}}};
    const std::string expected =
        "gnuplot not found on PATH; install it (Debian: apt-get install gnuplot-nox) or omit --plots";
    CHECK(what_of([&] { plot_tradeoff(s.dir / "out", "t", curves, {}); }) == expected);
    const std::vector<policy_metrics> rows{row("full", 1.0, 0, {1})};
    CHECK(what_of([&] { plot_exit_histogram(s.dir / "out", rows); }) == expected);
}

TEST_CASE("plot: a failing gnuplot run reports its exit status, the script and its output", "[report][plot]") {
    const scratch s("failing");
    const fs::path bin = s.dir / "bin";
    fs::create_directories(bin);
    {
        // A stand-in gnuplot: lists a png terminal, then fails on any script (given as
        // `-e "cd '<dir>'" <name>.gp`).
        std::ofstream fake(bin / "gnuplot");
        fake << "#!/bin/sh\n"
                "if [ \"$2\" = 'set terminal' ]; then echo '              png  PNG images' >&2; exit 0; fi\n"
                "echo \"line 1: boom in $3 after $2\" >&2\n"
                "exit 3\n";
    }
    fs::permissions(bin / "gnuplot", fs::perms::owner_all);
    const path_override path(bin.string());
    const std::vector<curve> curves{{"c", {{0, 90}}}};
    const fs::path script = fs::absolute(s.dir / "out" / "tradeoff.gp");
    CHECK(what_of([&] { plot_tradeoff(s.dir / "out", "t", curves, {}); }) ==
          "gnuplot failed (exit status 3) running " + script.string() + ":\nline 1: boom in tradeoff.gp after cd '" +
              script.parent_path().string() + "'");
    // "png" from the stand-in, or "pngcairo" when an earlier test in this process asked the real one.
    CHECK(slurp(script).starts_with("set encoding utf8\nset terminal png"));
}

TEST_CASE("lists_terminal matches whole terminal names in gnuplot's listing", "[report][plot]") {
    const std::string listing =
        "\nAvailable terminal types:\n"
        "         epscairo  eps terminal based on cairo\n"
        "              png  PNG images using libgd and TrueType fonts\n"
        "         pngcairo  png terminal based on cairo\n";
    CHECK(detail::lists_terminal(listing, "png"));
    CHECK(detail::lists_terminal(listing, "pngcairo"));
    CHECK(!detail::lists_terminal(listing, "cairo"));
    CHECK(!detail::lists_terminal(listing, "eps"));
    CHECK(!detail::lists_terminal("         pngcairo  png terminal based on cairo\n", "png"));
}
