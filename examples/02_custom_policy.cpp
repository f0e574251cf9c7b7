// 02_custom_policy: write your own exit policy.
//
// A policy is a value with one required member, decide(); optional hooks are found at compile
// time. This one skips heads (it first checks head 2, then every second head) and exits only
// after half the network's cost when the top class is at least 80% likely. The network is a
// toy: each stage sharpens a 3-class score vector a little.
#include <cstdio>

#include <earlyexit/earlyexit.hpp>
#include <fmt/core.h>

struct confident_after_half {
    // Required: exit or not at an evaluated head. Must be noexcept.
    earlyexit::decision decide(const earlyexit::exit_context<float>& c) const noexcept {
        return c.cost_fraction() >= 0.5 && c.measures.max_prob >= 0.8f ? earlyexit::decision::stop
                                                                         : earlyexit::decision::proceed;
    }
    // Optional: skip heads. Evaluate the first head at index 2, then every second head.
    std::size_t first_check(const earlyexit::sample_info&) const noexcept { return 2; }
    std::size_t next_check(const earlyexit::exit_context<float>& c) const noexcept { return c.head + 2; }
};
static_assert(earlyexit::exit_policy<confident_after_half, float>);

int main() {
    using vec = Eigen::Vector3f;
    const auto sharpen = [](vec& x) { x = 1.5f * x; };  // each stage: the scores grow more decisive
    const auto head = [] { return earlyexit::linear_head<float, 3, 3>(Eigen::Matrix3f::Identity(), vec::Zero()); };
    const earlyexit::stage_info cost{.macs = 100};
    const auto net = earlyexit::make_network<vec>()
                         .stage(sharpen, cost).exit(head())
                         .stage(sharpen, cost).exit(head())
                         .stage(sharpen, cost).exit(head())
                         .stage(sharpen, cost).exit(head())
                         .stage(sharpen, cost).exit(head())
                         .stage(sharpen, cost).exit(head())
                         .stage(sharpen, cost).exit(head())
                         .build();

    auto runner = earlyexit::make_runner(net, confident_after_half{}, earlyexit::simulated_clock{});
    fmt::print("{:<22} {:>5} {:>7} {:>12} {:>8}\n", "input scores", "exit", "stages", "heads run", "MACs");
    for (const vec& input : {vec(2.0f, 0.0f, 0.0f), vec(0.6f, 0.0f, 0.2f), vec(0.1f, 0.12f, 0.0f)}) {
        vec x = input;
        const auto r = runner.run(x);
        fmt::print("({:4.2f}, {:4.2f}, {:4.2f})     {:>5} {:>7} {:>12} {:>8.0f}\n", input[0], input[1], input[2], r.head,
                   r.positions_run, r.heads_evaluated, r.macs);
    }
    fmt::print("the plain network: {} stages, {:.0f} MACs\n", net.num_stages(), net.full_macs());
}
