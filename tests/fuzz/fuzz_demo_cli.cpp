// libFuzzer target for the demos' command line (examples/common/demo_driver.hpp: add_demo_flags,
// then check_demo_flags, as 04_cifar10 and the ImageNet demos run them). Each input is split into
// argv words at NUL and newline bytes (argv[0] is the program) and parsed by CLI11. The contract,
// checked here:
//   - parsing succeeds, or throws CLI11's CLI::ParseError (help included) or earlyexit::error:
//     any other exception escapes and libFuzzer reports it, and ASan/UBSan report any memory
//     error or undefined behaviour;
//   - options that pass both are valid: --max-loss and --calibration-margin in [0, 100] with the
//     margin at most the loss, the confidence 0 or in [0.5, 1), a finite positive deadline,
//     positive batch, thread and grid values, known policies, backend and precision.
// No demo runs. tests/fuzz/CMakeLists.txt builds it with clang++-14 -fsanitize=fuzzer,address,undefined.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <earlyexit/error.hpp>

#include "common/demo_driver.hpp"

namespace {

namespace demo = earlyexit::demo;

[[noreturn]] void violated(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_demo_cli: contract violated: %s: %s\n", what, detail.c_str());
    std::abort();
}

bool in_range(double v, double lo, double hi) { return v >= lo && v <= hi; }  // false for NaN

void check_valid(const demo::demo_options& o) {
    if (!in_range(o.points, 0.0, 100.0)) violated("--max-loss", std::to_string(o.points));
    if (!in_range(o.margin, 0.0, o.points)) violated("--calibration-margin", std::to_string(o.margin));
    if (!(o.confidence == 0.0 || (o.confidence >= 0.5 && o.confidence < 1.0)))
        violated("--calibration-confidence", std::to_string(o.confidence));
    if (o.deadline_ms && !(std::isfinite(*o.deadline_ms) && *o.deadline_ms > 0))
        violated("--deadline-ms", std::to_string(*o.deadline_ms));
    if ((o.batch && *o.batch == 0) || (o.threads && *o.threads == 0)) violated("--batch/--threads", "0");
    const auto positive = [](const std::vector<std::size_t>& v) {
        return std::all_of(v.begin(), v.end(), [](std::size_t x) { return x > 0; });
    };
    if (!positive(o.throughput_batches) || !positive(o.throughput_threads)) violated("the throughput grid", "a 0");
    if (o.throughput_samples > 0 && (o.throughput_batches.empty() || o.throughput_threads.empty()))
        violated("the throughput grid", "empty");
    for (const auto& p : o.policies)
        if (std::find(demo::demo_policy_names.begin(), demo::demo_policy_names.end(), p) == demo::demo_policy_names.end())
            violated("--policy", p);
    if (o.backend != demo::backend_eigen && !(demo::have_dnnl && o.backend == demo::backend_onednn))
        violated("--backend", o.backend);
    if (o.precision != demo::precision_fp32 && !(o.precision == demo::precision_bf16 && o.backend == demo::backend_onednn))
        violated("--precision", o.precision);
    if (o.dvfs_backend != "model" && o.dvfs_backend != "cpufreq") violated("--dvfs", o.dvfs_backend);
    if (o.record_only && o.record_trace.empty()) violated("--record-only", "without --record-trace");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> words{"earlyexit-demo"};
    for (std::size_t begin = 0; begin <= text.size();) {
        const auto end = std::min(text.find_first_of(std::string_view("\0\n", 2), begin), text.size());
        if (end > begin) words.emplace_back(text.substr(begin, end - begin));
        begin = end + 1;
    }
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);

    demo::demo_options o;
    CLI::App app{"fuzz_demo_cli"};
    demo::add_demo_flags(app, o);
    try {
        app.parse(static_cast<int>(words.size()), argv.data());
        demo::check_demo_flags(o);
    } catch (const CLI::ParseError&) {
        return 0;
    } catch (const earlyexit::error& e) {
        if (std::string_view(e.what()).empty()) violated("earlyexit::error", "empty message");
        return 0;
    }
    check_valid(o);
    return 0;
}
