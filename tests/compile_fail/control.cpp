// Must compile: every construct the other cases get wrong, written right. If this fails, the
// harness (or the library) is broken, not the checks.
#include <optional>
#include <utility>

#include <earlyexit/batch_runner.hpp>
#include <earlyexit/network.hpp>
#include <earlyexit/parallel_runner.hpp>
#include <earlyexit/policy/static.hpp>

#include "case.hpp"

using namespace earlyexit;

namespace {

struct every_hook {
    int learned = 0;
    decision decide(const exit_context<float>&) const noexcept { return decision::proceed; }
    void begin(const sample_info&) noexcept {}
    std::size_t first_check(const sample_info&) const noexcept { return 0; }
    std::size_t next_check(const exit_context<float>& c) const noexcept { return c.head + 1; }
    std::optional<std::size_t> frequency(const frequency_context<float>&) const noexcept { return std::nullopt; }
    void update(const episode<float>&) noexcept { ++learned; }
    void prepare(const network_info&) {}
    bool needs_label() const noexcept { return false; }
    void reset() { learned = 0; }
    void merge(const every_hook& o) { learned += o.learned; }
};

/// Templated hooks work for every Scalar.
struct templated_hooks {
    template <std::floating_point S>
    decision decide(const exit_context<S>&) const noexcept { return decision::stop; }
    template <std::floating_point S>
    void update(const episode<S>&) noexcept {}
    template <std::floating_point S>
    std::size_t next_check(const exit_context<S>& c) const noexcept { return c.head + 2; }
};

}  // namespace

void instantiate() {
    compile_fail::run_with(every_hook{});
    (void)compile_fail::erase(every_hook{});
    compile_fail::run_with<templated_hooks, float>(templated_hooks{});
    compile_fail::run_with<templated_hooks, double>(templated_hooks{});
    (void)compile_fail::erase<templated_hooks, double>(templated_hooks{});
    compile_fail::run_with(policy::fixed{0});
    compile_fail::run_with(policy::oracle{});
    compile_fail::run_with<any_policy<double>, double>(any_policy<double>(policy::full{}));

    // A named builder is used through std::move.
    using vec = Eigen::VectorXf;
    auto b = make_network<vec>();
    auto s = std::move(b).stage([](vec&) {}, {.macs = 1});
    auto e = std::move(s).exit(make_head([](const vec&, std::span<float>) {}, 2));
    (void)std::move(e).build();

    // Runners on named networks; a deliver callback that is noexcept.
    const compile_fail::tiny_network<float> net;
    (void)make_runner(net, policy::full{});
    const rowwise_network batched(net);
    auto br = make_batch_runner(batched, policy::full{}, 2);
    rowwise_state<int> state(2, [] { return 0; });
    const sample_info one[1]{};
    (void)br.run(state, one, [](std::size_t, const exit_result<float>&) noexcept {});
    (void)make_parallel_runner(batched, policy::full{}, parallel_options{},
                               [] { return rowwise_state<int>(1, [] { return 0; }); });
}
