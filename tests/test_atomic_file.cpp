// atomic_file.hpp: writes that cannot be half done. Through a fault-injecting file layer (each
// system call failing in turn, a write cut short after n bytes, a process that dies mid-write)
// the old file stays whole and no temporary file is left on an error; and through real processes
// killed (SIGKILL) at random moments while they rewrite a JSON file, an NPY array and a trace
// folder, a later reader sees the old version or the new, never a mix or a truncated file.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/atomic_file.hpp>
#include <earlyexit/io.hpp>

#include "error_text.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using earlyexit_test::temp_dir;
using earlyexit_test::what_of;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json read_json_file(const fs::path& p) { return nlohmann::json::parse(read_bytes(p)); }

/// The names in a folder, sorted.
std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

/// The real layer, with faults: `fail_at` names a call that fails with `error` ("create",
/// "sync", "close", "rename"); the write call number `fail_write` (0 = the first) fails with
/// `error`; each write accepts at most `max_chunk` bytes (short writes, to be resumed); after
/// `die_after` > 0 bytes in all the process exits (no unwinding, no cleanup: as if killed).
struct faulty_files {
    std::string fail_at;
    int error = EIO;
    int fail_write = -1;
    std::size_t max_chunk = std::size_t(-1);
    std::size_t die_after = 0;
    mutable std::size_t written_total = 0;
    mutable int writes = 0;
    atomic_file_ops real;

    [[nodiscard]] int create(const fs::path& p, int& fd) const {
        return fail_at == "create" ? error : real.create(p, fd);
    }
    [[nodiscard]] int write(int fd, const char* data, std::size_t size, std::size_t& written) const {
        written = 0;
        if (writes++ == fail_write) return error;
        const int e = real.write(fd, data, std::min(size, max_chunk), written);
        written_total += written;
        if (die_after != 0 && written_total >= die_after) ::_exit(3);
        return e;
    }
    [[nodiscard]] int sync(int fd) const { return fail_at == "sync" ? error : real.sync(fd); }
    [[nodiscard]] int close(int fd) const {
        const int e = real.close(fd);  // the handle is released even when the call "fails"
        return fail_at == "close" ? error : e;
    }
    [[nodiscard]] int rename(const fs::path& from, const fs::path& to) const {
        return fail_at == "rename" ? error : real.rename(from, to);
    }
    [[nodiscard]] int remove(const fs::path& p) const { return real.remove(p); }
    [[nodiscard]] int sync_folder(const fs::path& p) const { return real.sync_folder(p); }
};
static_assert(atomic_file_layer<faulty_files>);

/// Runs f in a child process; returns its exit status (or 128 + the signal).
template <class F>
int in_child(F&& f) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        try {
            f();
        } catch (...) {
            ::_exit(2);
        }
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Starts f in a child that runs it over and over; kills the child (SIGKILL) after `delay`.
template <class F>
void kill_while_running(F&& f, std::chrono::microseconds delay) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        try {
            for (unsigned i = 0;; ++i) f(i);
        } catch (...) {
            ::_exit(2);
        }
    }
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));  // it was still writing: killed, not failed
}

}  // namespace

TEST_CASE("write_file_atomically creates and replaces a file, leaving nothing else", "[atomic_file]") {
    temp_dir d;
    const auto p = d / "out.txt";
    write_file_atomically(p, "first");
    CHECK(read_bytes(p) == "first");
    write_file_atomically(p, "second, longer");
    CHECK(read_bytes(p) == "second, longer");
    write_file_atomically(p, "");
    CHECK(read_bytes(p).empty());
    const std::string_view parts[] = {"a", "", "bc", "def"};
    write_file_atomically(p, std::span<const std::string_view>(parts));
    CHECK(read_bytes(p) == "abcdef");
    CHECK(names_in(d.path) == std::vector<std::string>{"out.txt"});
    // The umask applies as it does to any new file: no execute bits, group/other as the umask says.
    const auto perms = fs::status(p).permissions();
    CHECK((perms & fs::perms::owner_read) != fs::perms::none);
    CHECK((perms & fs::perms::owner_exec) == fs::perms::none);
}

TEST_CASE("a failing system call leaves the old file whole and no temporary file", "[atomic_file]") {
    temp_dir d;
    const auto p = d / "state.json";
    write_file_atomically(p, "old contents");
    for (const std::string step : {"create", "write", "sync", "close", "rename"}) {
        INFO(step);
        faulty_files files;
        files.fail_at = step;
        files.error = step == "write" ? ENOSPC : EIO;
        files.fail_write = step == "write" ? 0 : -1;
        const std::string msg = what_of([&] { write_file_atomically(p, "new contents", "save", files); });
        if (step == "create")
            CHECK(msg == "save: cannot create a temporary file in the folder of " + p.string() + ": Input/output error");
        else
            CHECK(msg == "save: cannot write " + p.string() + ": " + (step == "sync" ? "fsync" : step) +
                             " failed: " + (step == "write" ? "No space left on device" : "Input/output error"));
        CHECK(read_bytes(p) == "old contents");
        CHECK(names_in(d.path) == std::vector<std::string>{"state.json"});
    }
    // A write cut short after 5 bytes, then a full disk.
    faulty_files cut;
    cut.error = ENOSPC;
    cut.fail_write = 1;
    cut.max_chunk = 5;
    CHECK(what_of([&] { write_file_atomically(p, "new contents", "save", cut); }) ==
          "save: cannot write " + p.string() + ": write failed: No space left on device");
    CHECK(read_bytes(p) == "old contents");
    CHECK(names_in(d.path) == std::vector<std::string>{"state.json"});
    // Short writes that do not fail are resumed until every byte is written.
    faulty_files slow;
    slow.max_chunk = 3;
    const std::string_view parts[] = {"new ", "", "contents"};
    write_file_atomically(p, std::span<const std::string_view>(parts), "save", slow);
    CHECK(read_bytes(p) == "new contents");
    CHECK(slow.writes == 5);  // "new ": 3 + 1, "contents": 3 + 3 + 2
    CHECK(names_in(d.path) == std::vector<std::string>{"state.json"});
}

TEST_CASE("a process that dies mid-write leaves the old file, and its temporary file is never read", "[atomic_file]") {
    temp_dir d;
    const auto p = d / "result.json";
    write_file_atomically(p, "{\"old\": true}\n");
    const std::string big(100000, 'x');
    for (const std::size_t after : {std::size_t{1}, std::size_t{7}, std::size_t{50000}, big.size() - 1}) {
        INFO(after);
        faulty_files dying;
        dying.max_chunk = 7;
        dying.die_after = after;
        CHECK(in_child([&] { write_file_atomically(p, big, "save", dying); }) == 3);
        CHECK(read_bytes(p) == "{\"old\": true}\n");
        CHECK(read_json_file(p) == nlohmann::json{{"old", true}});
    }
    // What the dead writers left: the old file and hidden temporary files beside it.
    const auto names = names_in(d.path);
    CHECK(names.back() == "result.json");
    for (std::size_t i = 0; i + 1 < names.size(); ++i) CHECK(names[i].rfind(".result.json.tmp-", 0) == 0);
}

TEST_CASE("bad paths are errors naming them", "[atomic_file]") {
    temp_dir d;
    CHECK(what_of([&] { write_file_atomically(d / "no_such_folder" / "x.json", "x", "write_json"); }) ==
          "write_json: cannot create a temporary file in the folder of " + (d / "no_such_folder" / "x.json").string() +
              ": No such file or directory");
    fs::create_directories(d / "a_folder.json");
    CHECK(what_of([&] { write_file_atomically(d / "a_folder.json", "x", "write_json"); }) ==
          "write_json: cannot write " + (d / "a_folder.json").string() + ": rename failed: Is a directory");
    CHECK(names_in(d.path) == std::vector<std::string>{"a_folder.json"});
    CHECK(what_of([&] { write_file_atomically(d.path / "", "x", "write_json"); }) ==
          "write_json: '" + (d.path / "").string() + "' is not a file name");
}

TEST_CASE("writers killed at random moments never leave a file a reader takes for valid and wrong",
          "[atomic_file][kill]") {
    temp_dir d;
    std::mt19937 rng(20261207);
    std::uniform_int_distribution<int> delay_us(200, 20000);

    SECTION("result JSON (write_json)") {
        const auto p = d / "result.json";
        const auto doc = [](unsigned v) {
            return nlohmann::json{{"version", v}, {"rows", std::vector<unsigned>(20000, v)}};
        };
        write_json(p, doc(0));
        for (int round = 0; round < 12; ++round) {
            kill_while_running([&](unsigned i) { write_json(p, doc(i + 1)); }, std::chrono::microseconds(delay_us(rng)));
            const auto j = read_json_file(p);  // whole: it parses, and its rows agree with its version
            const auto v = j.at("version").get<unsigned>();
            CHECK(j.at("rows") == nlohmann::json(std::vector<unsigned>(20000, v)));
        }
    }
    SECTION("NPY arrays (npy::write)") {
        const auto p = d / "a.npy";
        const auto values = [](unsigned v) { return std::vector<double>(50000, static_cast<double>(v)); };
        npy::write<double>(p, values(0), std::vector<std::size_t>{50000});
        for (int round = 0; round < 12; ++round) {
            kill_while_running([&](unsigned i) { npy::write<double>(p, values(i + 1), std::vector<std::size_t>{50000}); },
                               std::chrono::microseconds(delay_us(rng)));
            const auto a = npy::read<double>(p);
            REQUIRE(a.data.size() == 50000);
            CHECK(std::count(a.data.begin(), a.data.end(), a.data[0]) == 50000);
        }
    }
    SECTION("trace folders (write_trace)") {
        const auto dir = d / "trace";
        // Trace i: every logit is i, provenance names i: a mix of two writes shows.
        const auto make = [](unsigned v) {
            trace t(trace_layout{4, {0, 1, 2}, {1, 2, 3}, {1, 1, 1}});
            for (int s = 0; s < 3000; ++s)
                t.add(std::vector<float>(12, static_cast<float>(v)), std::vector<double>{1, 2, 3},
                      std::vector<double>{0.1, 0.1, 0.1}, std::size_t{1});
            t.provenance = {{"write", std::to_string(v)}};
            return t;
        };
        write_trace(dir, make(0));
        const trace one = make(1), two = make(2);  // made before: the child only writes
        int refused = 0;
        for (int round = 0; round < 12; ++round) {
            kill_while_running([&](unsigned i) { write_trace(dir, i % 2 == 0 ? one : two); },
                               std::chrono::microseconds(delay_us(rng)));
            try {
                const auto t = read_trace(dir);
                const float v = t.all_logits()[0];
                CHECK(std::count(t.all_logits().begin(), t.all_logits().end(), v) ==
                      static_cast<std::ptrdiff_t>(t.all_logits().size()));
                CHECK(t.provenance.at("write") == std::to_string(static_cast<unsigned>(v)));
            } catch (const earlyexit::error& e) {  // killed between its first and last file: refused
                CHECK_THAT(e.what(), Catch::Matchers::Contains("trace.json"));
                ++refused;
            }
        }
        INFO(refused << " of 12 interrupted folders refused, the others whole");
        SUCCEED();
    }
}
