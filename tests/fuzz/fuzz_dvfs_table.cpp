// libFuzzer target for the frequency table reader (earlyexit/dvfs/table_file.hpp). Each input is
// taken as the bytes of a table file and read from memory (parsed as read_frequency_domain parses
// it, then parse_frequency_domain) and from a file (read_frequency_domain). The reader's
// contract, checked here:
//   - it returns a domain or throws earlyexit::error naming the table: any other exception
//     escapes and libFuzzer reports it, and ASan/UBSan report any memory error or undefined
//     behaviour;
//   - memory and file agree: the same domain, or the same message;
//   - a domain read, written again (frequency_domain_json, the text write_frequency_domain
//     writes) and read back, is the same domain up to the unit conversions (MHz, nF, us, uJ: a
//     few ulps; exact for every other value and text).
// tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined; the
// ctest fuzz_dvfs_table (label "fuzz") runs it over tests/fuzz/dvfs_table_corpus for a bounded time.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <earlyexit/dvfs/table_file.hpp>
#include <earlyexit/json_read.hpp>

#include "fuzz_io.hpp"

namespace {

namespace dvfs = earlyexit::dvfs;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_dvfs_table: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

struct outcome {
    std::optional<dvfs::frequency_domain> value;
    std::string error;
};

// What read_frequency_domain does, from memory: its JSON parse (detail::parse_json on a stream),
// then its field checks.
outcome from_memory(std::string_view bytes, const std::string& what) {
    try {
        std::istringstream in{std::string(bytes)};
        return {dvfs::parse_frequency_domain(earlyexit::detail::parse_json(in, what), what), {}};
    } catch (const earlyexit::error& e) {
        return {std::nullopt, e.what()};
    }
}

// Equal up to a unit conversion there and back (x * 1e6 / 1e6: a few ulps; denormals lose more).
bool close(double a, double b) {
    return a == b || std::fabs(a - b) <= 4 * std::numeric_limits<double>::epsilon() * std::max(std::fabs(a), std::fabs(b)) ||
           std::fabs(a - b) <= 64 * std::numeric_limits<double>::denorm_min();
}

void check_same(const dvfs::frequency_domain& a, const dvfs::frequency_domain& b) {
    if (a.name() != b.name() || a.source() != b.source() || a.measures() != b.measures())
        violated("round trip", "the texts differ");
    if (a.size() != b.size()) violated("round trip", fmt::format("{} levels, then {}", a.size(), b.size()));
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!close(a[i].frequency_hz, b[i].frequency_hz) || a[i].voltage_v != b[i].voltage_v || a[i].power_w != b[i].power_w)
            violated("round trip", fmt::format("level {} differs: {} Hz {} V, then {} Hz {} V", i, a[i].frequency_hz,
                                               a[i].voltage_v, b[i].frequency_hz, b[i].voltage_v));
    const auto &m = a.model(), &n = b.model();
    if (m.static_w != n.static_w || !close(m.capacitance_f, n.capacitance_f) ||
        !close(m.switch_latency_s, n.switch_latency_s) || !close(m.switch_energy_j, n.switch_energy_j) ||
        m.memory_share != n.memory_share || m.idle_w != n.idle_w || m.macs_per_cycle != n.macs_per_cycle)
        violated("round trip", "the model differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const earlyexit_fuzz::scratch_file scratch("dvfs_table", ".json");
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    if (!scratch.write(data, size)) violated("setup", "cannot write " + scratch.path.string());
    const std::string what = "frequency table " + scratch.path.string();
    const outcome memory = from_memory(bytes, what);
    outcome disk;
    try {
        disk.value = dvfs::read_frequency_domain(scratch.path);
    } catch (const earlyexit::error& e) {
        disk.error = e.what();
    }
    if (memory.value.has_value() != disk.value.has_value() || memory.error != disk.error)
        violated("memory and file disagree", "memory: '" + memory.error + "', file: '" + disk.error + "'");
    if (!memory.value) {
        if (memory.error.rfind(what + ": ", 0) != 0) violated("the error does not name the table", memory.error);
        return 0;
    }
    if (!(*memory.value == *disk.value)) violated("memory and file disagree", "on the domain");

    // Written again (the text write_frequency_domain writes) and read back.
    const std::string text = dvfs::frequency_domain_json(*memory.value).dump(2) + '\n';
    const outcome back = from_memory(text, "written");
    if (!back.value) violated("round trip: the written table does not read back", back.error);
    check_same(*memory.value, *back.value);
    return 0;
}
