// The program both consumer projects (find_package/, add_subdirectory/) build: proof that an
// outside project can include earlyexit, build a network and run a sample through it, and
// include the DVFS hardware backends (dvfs/hardware.hpp, not in the umbrella header).
#include <array>
#include <cstdio>

#include <earlyexit/dvfs/hardware.hpp>
#include <earlyexit/earlyexit.hpp>

int main() {
    using vec = Eigen::VectorXf;
    const auto head = [] { return earlyexit::linear_head<float>(Eigen::MatrixXf::Identity(2, 2), vec::Zero(2)); };
    const auto net = earlyexit::make_network<vec>()
                         .stage([](vec& x) { x *= 4.f; }, {.macs = 4})
                         .exit(head())
                         .stage([](vec& x) { x *= 4.f; }, {.macs = 4})
                         .exit(head())
                         .build();
    auto runner = earlyexit::make_runner(net, earlyexit::policy::max_prob{0.9}, earlyexit::simulated_clock{});
    vec x(2);
    x << 1.f, 0.f;  // after stage 0 the logits are (4, 0): max-prob 0.982, exit at head 0
    const auto r = runner.run(x);
    std::printf("consumer: exit at head %zu, class %zu\n", r.head, r.predicted);
    const std::array<double, 2> hz{1e9, 2e9};
    const bool hardware = earlyexit::dvfs::nearest_frequency_hz(hz, 1.6e9) == 2e9;
    return (r.head == 0 && r.predicted == 0 && hardware && earlyexit::version_major == EARLYEXIT_VERSION_MAJOR) ? 0 : 1;
}
