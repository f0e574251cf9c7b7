// progress_line with a fake clock and a temporary file as the terminal or the log, so every
// byte printed is known. operator new is counted: tick() and finish() must not allocate.

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <utility>

#include <catch2/catch.hpp>
#include <earlyexit/report/progress.hpp>

#include "counting_new.hpp"

using earlyexit_test::allocations;

using namespace earlyexit;

namespace {

/// Time stands still until the test sets it.
struct fake_clock {
    double t = 0;
    [[nodiscard]] double now() const noexcept { return t; }
};

/// A temporary file standing in for the terminal or the log.
struct capture {
    std::FILE* f = std::tmpfile();
    capture() { REQUIRE(f != nullptr); }
    ~capture() { std::fclose(f); }
    capture(const capture&) = delete;
    capture& operator=(const capture&) = delete;
    [[nodiscard]] std::string text() const {
        std::fflush(f);
        std::rewind(f);
        std::string s;
        char buf[512];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
        return s;
    }
};

using fake_progress = basic_progress_line<fake_clock>;

progress_options lines_style() {
    progress_options o;
    o.style = progress_style::lines;
    return o;
}

progress_options terminal_style() {
    progress_options o;
    o.style = progress_style::terminal;
    return o;
}

}  // namespace

TEST_CASE("progress_line: a file is not a terminal, so automatic means plain lines", "[report][progress]") {
    capture c;
    const fake_progress p("x", 10, c.f);
    CHECK_FALSE(p.terminal());
    CHECK(fake_progress("x", 10, c.f, terminal_style()).terminal());
}

TEST_CASE("progress_line: nothing at all for a run shorter than a second", "[report][progress]") {
    capture c;
    {
        fake_progress p("replay", 100, c.f);
        for (std::size_t i = 1; i <= 100; ++i) {
            p.clock().t = 0.0099 * static_cast<double>(i);
            p.tick(i);
        }
        p.finish();
        CHECK_FALSE(p.printed());
    }  // the destructor prints nothing either
    CHECK(c.text().empty());
    capture t;
    {
        fake_progress p("replay", 100, t.f, terminal_style());
        p.clock().t = 0.999;
        p.tick(99);
    }
    CHECK(t.text().empty());
}

TEST_CASE("progress_line: plain lines, one per 10% step after the first second", "[report][progress]") {
    capture c;
    fake_progress p("replay", 100, c.f, lines_style());
    p.clock().t = 0.5;
    p.tick(5);
    p.clock().t = 0.9;
    p.tick(20);  // 20% but still under a second
    CHECK(c.text().empty());
    p.clock().t = 1.0;
    p.tick(25);
    CHECK(c.text() == "replay: 25/100 (25.0%) 25.0/s, ETA 3 s\n");
    p.clock().t = 1.1;
    p.tick(29);  // same step
    p.clock().t = 1.2;
    p.tick(30);
    p.clock().t = 1.3;
    p.tick(31);
    p.clock().t = 4.0;
    p.tick(100);  // the last step is left to finish()
    const std::string before_finish = "replay: 25/100 (25.0%) 25.0/s, ETA 3 s\n"
                                      "replay: 30/100 (30.0%) 25.0/s, ETA 3 s\n";
    CHECK(c.text() == before_finish);
    p.finish();
    CHECK(c.text() == before_finish + "replay: 100/100 (100.0%) 25.0/s, done in 4.0 s\n");
    p.finish();  // once only
    p.tick(100);
    CHECK(c.text() == before_finish + "replay: 100/100 (100.0%) 25.0/s, done in 4.0 s\n");
}

TEST_CASE("progress_line: a terminal line redrawn in place at most every 0.2 s", "[report][progress]") {
    capture c;
    fake_progress p("job", 100, c.f, terminal_style());
    p.clock().t = 0.5;
    p.tick(5);
    CHECK(c.text().empty());
    p.clock().t = 1.0;
    p.tick(10);
    CHECK(c.text() == "\rjob: 10/100 (10.0%) 10.0/s, ETA 9 s");
    p.clock().t = 1.1;
    p.tick(11);  // too soon
    CHECK(c.text() == "\rjob: 10/100 (10.0%) 10.0/s, ETA 9 s");
    p.clock().t = 1.25;
    p.tick(25);
    std::string expected = "\rjob: 10/100 (10.0%) 10.0/s, ETA 9 s"
                           "\rjob: 25/100 (25.0%) 20.0/s, ETA 4 s";
    CHECK(c.text() == expected);
    p.clock().t = 100.0;
    p.tick(99);  // a shorter line blanks out the rest of the longer one
    expected += "\rjob: 99/100 (99.0%) 1.0/s, ETA 1 s" + std::string(1, ' ');  // one shorter than the last line
    CHECK(c.text() == expected);
    p.clock().t = 250.0;
    p.tick(100);
    expected += "\rjob: 100/100 (100.0%) 0.4/s, ETA 0 s";
    p.finish();
    expected += "\rjob: 100/100 (100.0%) 0.4/s, done in 4 min 10 s\n";
    CHECK(c.text() == expected);
}

TEST_CASE("progress_line: ETA and durations in minutes and hours, and no ETA without a total", "[report][progress]") {
    capture c;
    fake_progress p("sweep", 10000, c.f, terminal_style());
    p.clock().t = 2.0;
    p.tick(1);  // 0.5/s, 9999 left: 19998 s
    CHECK(c.text() == "\rsweep: 1/10000 (0.0%) 0.5/s, ETA 5 h 33 min");
    capture z;
    fake_progress q("record", 0, z.f, terminal_style());
    q.clock().t = 2.0;
    q.tick(0);
    q.clock().t = 4.0;
    q.tick(1234);
    q.finish();
    CHECK(z.text() == "\rrecord: 0 done, 0.0/s\rrecord: 1234 done, 308.5/s\rrecord: 1234 done, 308.5/s, done in 4.0 s\n");
    capture l;
    {
        fake_progress r("record", 0, l.f, lines_style());
        r.clock().t = 5.0;
        r.tick(10);
    }
    CHECK(l.text().empty());  // plain lines need a total to have steps
}

TEST_CASE("progress_line: zero progress after a second shows an unknown ETA", "[report][progress]") {
    capture c;
    fake_progress p("load", 10, c.f, terminal_style());
    p.clock().t = 1.5;
    p.tick(0);
    CHECK(c.text() == "\rload: 0/10 (0.0%) 0.0/s, ETA ?");
}

TEST_CASE("progress_line: a long label is cut, never overflows", "[report][progress]") {
    capture c;
    fake_progress p(std::string(1000, 'L'), 10, c.f, terminal_style());
    p.clock().t = 1.0;
    p.tick(5);
    p.finish();
    const std::string s = c.text();
    CHECK(s.starts_with("\r" + std::string(200, 'L') + ": 5/10 (50.0%)"));
    CHECK(s.ends_with("done in 1.0 s\n"));
}

TEST_CASE("progress_line: invalid options are errors", "[report][progress]") {
    capture c;
    progress_options o;
    o.lines = 0;
    CHECK_THROWS_WITH(fake_progress("x", 1, c.f, o), "progress_line: lines must be >= 1");
    o = {};
    o.quiet_seconds = -1;
    CHECK_THROWS_AS(fake_progress("x", 1, c.f, o), earlyexit::error);
    CHECK_THROWS_WITH(fake_progress("x", 1, nullptr), "progress_line 'x': the output stream is null");
}

TEST_CASE("progress_line: tick and finish allocate nothing", "[report][progress]") {
    STATIC_REQUIRE(noexcept(std::declval<progress_line&>().tick(1)));
    STATIC_REQUIRE(noexcept(std::declval<progress_line&>().finish()));
    for (const progress_options& o : {terminal_style(), lines_style()}) {
        capture c;
        fake_progress p(std::string(300, 'x'), 100000, c.f, o);
        const long before = allocations.load();
        for (std::size_t i = 0; i <= 100000; ++i) {
            p.clock().t = 1e-4 * static_cast<double>(i);
            p.tick(i);
        }
        p.finish();
        CHECK(allocations.load() == before);
        CHECK(p.printed());
    }
}

TEST_CASE("progress_line: the wall-clock default compiles and stays quiet for a quick run", "[report][progress]") {
    capture c;
    {
        progress_line p("quick", 3, c.f);
        p.tick(1);
        p.tick(3);
    }
    CHECK(c.text().empty());
}
