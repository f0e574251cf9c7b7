// The demo networks (examples/common/cifar_net.hpp, mobilenet_v2.hpp) run a sample through every
// stage and every head without a heap allocation once their state exists: neither through
// operator new (counted by counting_new.hpp) nor inside Eigen. Eigen allocates with malloc, which
// operator new never sees, so this translation unit builds Eigen with EIGEN_RUNTIME_NO_MALLOC:
// Eigen then checks every heap allocation it makes with eigen_assert, and the assert that
// eigen_malloc_counter.hpp defines counts the failed checks instead of aborting, while
// allocation is forbidden.
#include "eigen_malloc_counter.hpp"  // first: before any Eigen header

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>

#include "common/cifar_net.hpp"
#include "common/image.hpp"
#include "common/mobilenet_v2.hpp"
#include "counting_new.hpp"

using namespace earlyexit;
using namespace earlyexit::demo;
namespace fs = std::filesystem;

namespace {

const fs::path root = EARLYEXIT_SOURCE_DIR;

struct heap_use {
    long operator_new = 0;   ///< allocations through operator new
    long eigen_malloc = 0;   ///< Eigen's own (malloc) allocations
};

/// Heap use of `samples` calls of run(i), after one untimed warm-up call.
template <class Run>
heap_use heap_use_of(int samples, Run run) {
    run(0);
    const long new_before = earlyexit_test::allocations.load();
    const long eigen_before = earlyexit_test::eigen_failed_checks.load();
    Eigen::internal::set_is_malloc_allowed(false);
    for (int i = 1; i <= samples; ++i) run(i);
    Eigen::internal::set_is_malloc_allowed(true);
    return {earlyexit_test::allocations.load() - new_before, earlyexit_test::eigen_failed_checks.load() - eigen_before};
}

/// A deterministic, non-constant 8-bit RGB image.
image_u8 pattern(int width, int height, int seed) {
    image_u8 im(width, height);
    for (std::size_t i = 0; i < im.pixels.size(); ++i)
        im.pixels[i] = static_cast<std::uint8_t>((i * 37 + static_cast<std::size_t>(seed) * 101 + i / 97) % 256);
    return im;
}

/// Heap use of running inputs[1..] through every stage and head of model's network (inputs[0]
/// warms up); set(state, input) writes an input into the state.
template <class Model, class Set>
heap_use forward_heap_use(const Model& model, const std::vector<image_u8>& inputs, Set set) {
    const auto net = model.network();
    auto state = model.make_state();
    auto runner = make_runner(net, policy::patience{1000});  // never reached: every head, every stage
    std::size_t heads = 0;
    const heap_use use = heap_use_of(static_cast<int>(inputs.size()) - 1, [&](int i) {
        set(state, inputs[static_cast<std::size_t>(i)]);
        heads += runner.run(state).heads_evaluated;
    });
    CHECK(heads == inputs.size() * net.num_heads());
    return use;
}

}  // namespace

TEST_CASE("the counter sees an Eigen heap allocation (the check below can fail)", "[alloc]") {
    const heap_use use = heap_use_of(1, [](int) {
        Eigen::MatrixXf m(64, 64);  // a dynamic matrix: Eigen mallocs its storage
        m.setZero();
    });
    CHECK(use.eigen_malloc >= 1);
}

TEST_CASE("cifar_net: every stage and head of a sample allocates nothing", "[alloc]") {
    const cifar_net model(root / "models" / "cifar10_multiexit.safetensors");
    std::vector<image_u8> images;
    for (int i = 0; i < 4; ++i) images.push_back(pattern(32, 32, i));
    const heap_use use =
        forward_heap_use(model, images, [&](feature_state& s, const image_u8& im) { model.set_input(s, im.pixels); });
    CHECK(use.operator_new == 0);
    CHECK(use.eigen_malloc == 0);
}

TEST_CASE("mobilenet_v2: every stage and head of a sample allocates nothing (from a cropped square)", "[alloc]") {
    const mobilenet_v2 model(root / "models" / "mobilenet_v2_imagenet.safetensors");
    std::vector<image_u8> squares;
    for (int i = 0; i < 3; ++i) squares.push_back(pattern(224, 224, i));
    const heap_use use = forward_heap_use(
        model, squares, [&](feature_state& s, const image_u8& square) { model.set_cropped_input(s, square); });
    CHECK(use.operator_new == 0);
    CHECK(use.eigen_malloc == 0);
}
