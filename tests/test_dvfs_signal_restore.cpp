// dvfs/signal_restore.hpp: a program ended by SIGINT/SIGTERM/SIGHUP/SIGQUIT while a cpufreq
// backend drives a (fake) sysfs tree puts the governor and the speed back, and still dies of the
// signal. Each case runs the program in a child process (fork): it takes two CPUs over, reports
// through a pipe that it is ready, and waits; the parent checks the tree, sends the signal, and
// checks the child's fate and the tree again.
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/dvfs/cpufreq.hpp>
#include <earlyexit/dvfs/signal_restore.hpp>

#include "error_text.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using earlyexit_test::temp_dir;
using earlyexit_test::what_of;
namespace fs = std::filesystem;

namespace {

void put(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::trunc) << text;
}

std::string get(const fs::path& p) {
    std::ifstream in(p);
    std::string s{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

/// cpu0 under schedutil, cpu1 under userspace at 1.5 GHz: the two kinds of restore.
void make_tree(const fs::path& root) {
    for (unsigned cpu : {0U, 1U}) {
        const auto dir = root / fmt::format("cpu{}", cpu) / "cpufreq";
        put(dir / "scaling_governor", cpu == 0 ? "schedutil" : "userspace");
        put(dir / "scaling_available_governors", "performance powersave userspace schedutil");
        put(dir / "scaling_available_frequencies", "2000000 1500000 1000000");
        put(dir / "scaling_cur_freq", cpu == 0 ? "2000000" : "1500000");
        put(dir / "scaling_setspeed", cpu == 0 ? "<unsupported>" : "1500000");
    }
}

extern "C" void note_and_exit(int) { ::_exit(42); }

/// How the child sets its signals up before it takes the CPUs over.
enum class before { nothing, own_handler, ignore_sighup };

/// The child: [its own setup], the backend at 1 GHz, the guard, "ready" on the pipe, then waits
/// for the signal (or, with `destroy_guard`, drops the guard first). Returns its pid.
pid_t start_child(const fs::path& root, int ready_fd, before setup, bool destroy_guard = false) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid != 0) return pid;
    try {
        // A fresh program's dispositions (not the test framework's handlers), and no core file.
        for (const int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) std::signal(s, SIG_DFL);
        const struct rlimit no_core {0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        if (setup == before::own_handler) std::signal(SIGTERM, note_and_exit);
        if (setup == before::ignore_sighup) std::signal(SIGHUP, SIG_IGN);
        dvfs::cpufreq_backend backend(root, {0, 1});
        backend.set_frequency_hz(1e9);
        std::optional<dvfs::restore_on_signal> guard(std::in_place, backend);
        if (destroy_guard) guard.reset();
        if (::write(ready_fd, "r", 1) != 1) ::_exit(5);
        for (;;) ::pause();
    } catch (...) {
        ::_exit(6);
    }
}

/// Runs a child, checks it took the CPUs over, signals it; returns its wait status.
int signal_child(const fs::path& root, int sig, before setup = before::nothing, bool destroy_guard = false) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = start_child(root, fds[1], setup, destroy_guard);
    ::close(fds[1]);
    char c = 0;
    REQUIRE(::read(fds[0], &c, 1) == 1);  // ready (or the child died: read returns 0)
    ::close(fds[0]);
    CHECK(get(root / "cpu0/cpufreq/scaling_governor") == "userspace");
    CHECK(get(root / "cpu0/cpufreq/scaling_setspeed") == "1000000");
    CHECK(get(root / "cpu1/cpufreq/scaling_setspeed") == "1000000");
    REQUIRE(::kill(pid, sig) == 0);
    int status = 0;
    if (sig == SIGHUP && setup == before::ignore_sighup) {  // ignored: still running; end it
        ::usleep(100000);
        REQUIRE(::waitpid(pid, &status, WNOHANG) == 0);
        REQUIRE(::kill(pid, SIGKILL) == 0);
    }
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}

}  // namespace

TEST_CASE("restore_on_signal: a program ended by a signal puts governor and speed back and dies of it",
          "[dvfs][signal]") {
    for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
        INFO("signal " << sig);
        const temp_dir tree("earlyexit_signal");
        make_tree(tree.path);
        const int status = signal_child(tree.path, sig);
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == sig);
        CHECK(get(tree.path / "cpu0/cpufreq/scaling_governor") == "schedutil");  // the governor back
        CHECK(get(tree.path / "cpu1/cpufreq/scaling_governor") == "userspace");
        CHECK(get(tree.path / "cpu1/cpufreq/scaling_setspeed") == "1500000");  // userspace before: the speed back
    }
}

TEST_CASE("restore_on_signal: the program's own handler still runs, after the restore", "[dvfs][signal]") {
    const temp_dir tree("earlyexit_signal");
    make_tree(tree.path);
    const int status = signal_child(tree.path, SIGTERM, before::own_handler);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 42);
    CHECK(get(tree.path / "cpu0/cpufreq/scaling_governor") == "schedutil");
    CHECK(get(tree.path / "cpu1/cpufreq/scaling_setspeed") == "1500000");
}

TEST_CASE("restore_on_signal: an ignored signal stays ignored", "[dvfs][signal]") {
    const temp_dir tree("earlyexit_signal");
    make_tree(tree.path);
    const int status = signal_child(tree.path, SIGHUP, before::ignore_sighup);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);  // SIGHUP did nothing; SIGKILL cannot be caught: nothing restored
    CHECK(get(tree.path / "cpu0/cpufreq/scaling_governor") == "userspace");
}

TEST_CASE("restore_on_signal: once the guard is gone, a signal does what it did before", "[dvfs][signal]") {
    const temp_dir tree("earlyexit_signal");
    make_tree(tree.path);
    const int status = signal_child(tree.path, SIGTERM, before::nothing, /*destroy_guard=*/true);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGTERM);
    CHECK(get(tree.path / "cpu0/cpufreq/scaling_governor") == "userspace");  // no handler: nothing restored
}

TEST_CASE("restore_on_signal: the writes it prepares, and one guard at a time", "[dvfs][signal]") {
    const temp_dir tree("earlyexit_signal");
    make_tree(tree.path);
    dvfs::cpufreq_backend backend(tree.path, {0, 1});
    const auto writes = backend.restore_writes();
    REQUIRE(writes.size() == 2);  // the last taken first, as restore() does
    CHECK(writes[0].first == tree.path / "cpu1/cpufreq/scaling_setspeed");
    CHECK(writes[0].second == "1500000");
    CHECK(writes[1].first == tree.path / "cpu0/cpufreq/scaling_governor");
    CHECK(writes[1].second == "schedutil");
    struct sigaction before_guard {};
    REQUIRE(::sigaction(SIGTERM, nullptr, &before_guard) == 0);
    {
        const dvfs::restore_on_signal guard(backend, {SIGTERM, SIGINT});
        CHECK(guard.files() == std::vector<fs::path>{writes[0].first, writes[1].first});
        CHECK(what_of([&] { dvfs::restore_on_signal second(backend); }) ==
              "restore_on_signal: another guard is active (signals 15, 2); one at a time");
        struct sigaction now {};
        REQUIRE(::sigaction(SIGTERM, nullptr, &now) == 0);
        CHECK(now.sa_handler != before_guard.sa_handler);
    }
    struct sigaction after {};
    REQUIRE(::sigaction(SIGTERM, nullptr, &after) == 0);
    CHECK(after.sa_handler == before_guard.sa_handler);  // put back
    const dvfs::restore_on_signal again(backend);  // and a new one may be made
    CHECK(again.files().size() == 2);
}
