// libFuzzer target for the learned-state reader (earlyexit/policy/state_file.hpp). Each input is
// taken as the bytes of a state file and loaded as each policy type the reader supports: dee,
// ucb_exit and epsilon_greedy, each with the max_prob, agreement and correctness rewards, from
// memory (parsed as load_policy_state parses it, then policy_from_state_json); the type the file
// names (its "policy" and "reward"; dee<> when it names none) is also loaded from the file
// (load_policy_state). The reader's contract, checked here:
//   - it returns a policy or throws earlyexit::error naming the file: any other exception
//     escapes and libFuzzer reports it, ASan/UBSan report any memory error or undefined
//     behaviour, and -malloc_limit_mb any allocation sized from a field before it was checked;
//   - at most one type loads a file (the policy and reward names are checked);
//   - memory and file agree: the same policy and state, or the same message;
//   - a policy loaded, saved by save_policy_state and loaded again, is the same policy with the
//     same state (cells, base, edges, options), and so is one read from its state document.
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined; the
// ctest fuzz_policy_state (label "fuzz") runs it over tests/fuzz/policy_state_corpus (written by
// make_reader_corpora) for a bounded time.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <earlyexit/json_read.hpp>
#include <earlyexit/policy/state_file.hpp>

#include "fuzz_io.hpp"

namespace {

namespace fs = std::filesystem;
namespace policy = earlyexit::policy;
namespace reward = earlyexit::reward;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_policy_state: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

// The input and the round trip's file, per fuzzing process, removed at exit.
struct scratch_files {
    fs::path root = earlyexit_fuzz::scratch_root() / ("earlyexit_fuzz_policy_state_" + std::to_string(::getpid()));
    fs::path in = root / "in.json";
    fs::path out = root / "out.json";
    scratch_files() {
        std::error_code ec;
        fs::create_directories(root, ec);
        if (ec) violated("setup", "cannot create " + root.string() + ": " + ec.message());
    }
    ~scratch_files() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};

// The input as load_policy_state parses it (strict, on a stream), or its message.
struct document {
    std::optional<nlohmann::json> json;
    std::string error;
    std::string policy, reward;  // the names it gives, when it gives them as strings
};

template <class P>
bool names(const document& d) {
    return d.policy == P::name() && d.reward == P::reward_type::name;
}

template <class P>
void check_round_trip(const P& p, const scratch_files& scratch) {
    const nlohmann::json state = earlyexit::policy_state_json(p);
    try {
        earlyexit::save_policy_state(scratch.out, p);
        const P q = earlyexit::load_policy_state<P>(scratch.out);
        if (!(q == p) || earlyexit::policy_state_json(q) != state)
            violated("round trip", fmt::format("{} saved and loaded is another policy", P::name()));
        const P r = earlyexit::policy_from_state_json<P>(state, "memory");
        if (!(r == p) || earlyexit::policy_state_json(r) != state)
            violated("round trip", fmt::format("{} read from its state document is another policy", P::name()));
    } catch (const earlyexit::error& e) {
        violated("round trip", e.what());
    }
}

// Loads the input as a P; returns whether it loaded.
template <class P>
bool check(const document& doc, bool from_file, const scratch_files& scratch) {
    const std::string what = scratch.in.string();
    std::optional<P> p;
    std::string error = doc.error;
    if (doc.json) {
        try {
            p.emplace(earlyexit::policy_from_state_json<P>(*doc.json, what));
        } catch (const earlyexit::error& e) {
            error = e.what();
        }
    }
    if (!p && error.rfind(what + ": ", 0) != 0) violated("the error does not name the file", error);
    if (from_file) {
        std::optional<P> q;
        std::string file_error;
        try {
            q.emplace(earlyexit::load_policy_state<P>(scratch.in));
        } catch (const earlyexit::error& e) {
            file_error = e.what();
        }
        if (p.has_value() != q.has_value() || error != file_error)
            violated("memory and file disagree", "memory: '" + error + "', file: '" + file_error + "'");
        if (p && (!(*p == *q) || earlyexit::policy_state_json(*p) != earlyexit::policy_state_json(*q)))
            violated("memory and file disagree", "on the state");
    }
    if (p) check_round_trip(*p, scratch);
    return p.has_value();
}

template <class... P>
void check_all(const document& doc, const scratch_files& scratch) {
    const bool named = (names<P>(doc) || ...);
    bool first = true;
    // The file is read once: as the type the document names, or as the first type.
    const auto from_file = [&]<class Q>() {
        const bool f = named ? names<Q>(doc) : first;
        first = false;
        return f;
    };
    std::size_t loaded = 0;
    ((loaded += check<P>(doc, from_file.template operator()<P>(), scratch) ? 1 : 0), ...);
    if (loaded > 1) violated("one file, one type", fmt::format("{} policy types loaded the file", loaded));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const scratch_files scratch;
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    {
        std::ofstream out(scratch.in, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!out.flush()) violated("setup", "cannot write " + scratch.in.string());
    }
    document doc;
    try {  // load_policy_state's JSON parse
        std::istringstream in(bytes);
        doc.json = earlyexit::detail::parse_json(in, scratch.in.string());
    } catch (const earlyexit::error& e) {
        doc.error = e.what();
    }
    if (doc.json && doc.json->is_object()) {
        if (const auto it = doc.json->find("policy"); it != doc.json->end() && it->is_string()) doc.policy = it->get<std::string>();
        if (const auto it = doc.json->find("reward"); it != doc.json->end() && it->is_string()) doc.reward = it->get<std::string>();
    }
    check_all<policy::dee<reward::max_prob_reward>, policy::dee<reward::agreement_reward>,
              policy::dee<reward::correctness_reward>, policy::ucb_exit<reward::max_prob_reward>,
              policy::ucb_exit<reward::agreement_reward>, policy::ucb_exit<reward::correctness_reward>,
              policy::epsilon_greedy<reward::max_prob_reward>, policy::epsilon_greedy<reward::agreement_reward>,
              policy::epsilon_greedy<reward::correctness_reward>>(doc, scratch);
    return 0;
}
