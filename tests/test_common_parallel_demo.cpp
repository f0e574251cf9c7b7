// The demo's batched CIFAR-10 network on parallel_runner workers (examples/common/batched_model.hpp
// with include/earlyexit/parallel_runner.hpp): the workers' stages keep Eigen temporaries of up
// to EIGEN_STACK_ALLOCATION_LIMIT (2 MiB in the demos) on their stacks, which a platform's
// default thread stack may not hold; each worker gets parallel_options::stack_bytes. Every
// worker count gives the exits of one batch_runner over the same batches.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/parallel_runner.hpp>
#include <earlyexit/policy/static.hpp>

#include "common/batched_model.hpp"
#include "common/cifar_net.hpp"
#include "common/image.hpp"

using namespace earlyexit;
using namespace earlyexit::demo;

namespace {

/// A deterministic, non-constant 32x32 RGB image.
std::vector<std::uint8_t> pattern(std::size_t seed) {
    std::vector<std::uint8_t> px(32 * 32 * 3);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>((i * 37 + seed * 101 + i / 97) % 256);
    return px;
}

}  // namespace

TEST_CASE("the batched demo network runs on 1 to 3 workers with the exits of one batch_runner", "[parallel][demo]") {
    const cifar_net model(std::filesystem::path(EARLYEXIT_SOURCE_DIR) / "models" / "cifar10_multiexit.safetensors");
    const std::size_t batch = 4, n = 24;
    const batched_model net(model, batch);
    std::vector<std::vector<std::uint8_t>> images;
    std::vector<sample_info> samples;
    for (std::size_t i = 0; i < n; ++i) {
        images.push_back(pattern(i));
        samples.push_back({.index = i});
    }
    const auto fill = [&](batch_feature_state& s, std::size_t first, std::size_t count) {
        for (std::size_t r = 0; r < count; ++r) model.set_input_row(s, r, images[first + r]);
        s.begin(model.input_shape(), count);
    };
    const policy::max_prob policy(0.6F);

    // One batch_runner, batch after batch.
    auto one = make_batch_runner(net, policy, batch, simulated_clock{});
    auto state = net.make_state();
    std::vector<sample_outcome> expect;
    for (std::size_t first = 0; first < n; first += batch) {
        fill(state, first, batch);
        for (const auto& r : one.run(state, std::span<const sample_info>(samples).subspan(first, batch)))
            expect.push_back(outcome_of(r));
    }
    for (const std::size_t threads : {1, 2, 3}) {
        INFO(threads << " workers");
        using net_t = std::remove_const_t<decltype(net)>;
        parallel_runner<net_t, policy::max_prob, simulated_clock> pool(
            net, policy, {.threads = threads, .batch = batch}, [&] { return net.make_state(); });
        std::vector<sample_outcome> out(n);
        pool.run(samples, fill, out);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(out[i].head == expect[i].head);
            CHECK(out[i].predicted == expect[i].predicted);
            CHECK(out[i].macs == expect[i].macs);
        }
    }
}
