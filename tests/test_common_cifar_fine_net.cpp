// The fine-grained CIFAR-10 network (models/cifar10_fine_exits.safetensors, read by
// examples/common/cifar_net.hpp): an exit after every convolution, each residual block cut into
// two stages that pass the block input through the state. Checked against PyTorch's logits
// (tests/data/cifar10/fine_reference_logits.json, written by examples/train/fit_fine_heads.py from
// the same file), against the 6-exit network whose backbone and heads it shares, for its
// declared MACs, for running batched and compacted, for allocating nothing per sample, and for
// refusing files whose halves do not fit together.
//
// This translation unit builds Eigen with EIGEN_RUNTIME_NO_MALLOC, as
// test_common_forward_alloc.cpp does, so the allocation checks see Eigen's own mallocs too.
#include "eigen_malloc_counter.hpp"  // first: before any Eigen header

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/earlyexit.hpp>
#include <nlohmann/json.hpp>

#include "common/batched_model.hpp"
#include "common/cifar_net.hpp"
#include "counting_new.hpp"
#include "demo_fixtures.hpp"
#include "error_text.hpp"
#include "safetensors_writer.hpp"
#include "temp_dir.hpp"

using namespace earlyexit;
using namespace earlyexit::demo;
using earlyexit_test::what_of;
using earlyexit_test::demo_fixtures::relative_error;
namespace fs = std::filesystem;

namespace {

const fs::path root = EARLYEXIT_SOURCE_DIR;
const fs::path fine_weights = root / "models" / "cifar10_fine_exits.safetensors";

const cifar_net& fine() {
    static const cifar_net m(fine_weights);
    return m;
}
const cifar_net& coarse() {
    static const cifar_net m(root / "models" / "cifar10_multiexit.safetensors");
    return m;
}

nlohmann::json reference() {
    std::ifstream in(root / "tests" / "data" / "cifar10" / "fine_reference_logits.json");
    REQUIRE(in);
    return nlohmann::json::parse(in);
}

std::vector<std::vector<std::uint8_t>> reference_images() {
    const auto ref = reference();  // kept: a range-for over reference().at(...) would outlive the temporary
    std::vector<std::vector<std::uint8_t>> out;
    for (const auto& img : ref.at("images")) out.push_back(img.at("pixels_hwc").get<std::vector<std::uint8_t>>());
    return out;
}

/// logits[k] of every head of model's per-sample network on one image.
std::vector<std::vector<float>> all_heads(const cifar_net& model, std::span<const std::uint8_t> pixels) {
    return earlyexit_test::demo_fixtures::every_head(model, [&](feature_state& s) { model.set_input(s, pixels); });
}

template <class Edit>
fs::path with_architecture(const fs::path& dir, Edit edit) {
    return earlyexit_test::with_architecture(fine_weights, dir / "edited.safetensors", edit);
}

}  // namespace

TEST_CASE("fine CIFAR-10 network: logits at every head equal PyTorch's on the reference images") {
    const auto net = fine().network();
    const auto ref = reference();
    auto state = fine().make_state();
    REQUIRE(ref.at("images").size() == 10);  // the first validation image of each class
    double worst = 0;
    for (const auto& img : ref.at("images")) {
        const auto pixels = img.at("pixels_hwc").get<std::vector<std::uint8_t>>();
        const auto want = img.at("logits").get<std::vector<std::vector<float>>>();
        REQUIRE(want.size() == 13);
        // policy::fixed{k} exits at head k: its logits, after running only the stages up to it.
        for (std::size_t k = 0; k < net.num_heads(); ++k) {
            auto runner = make_runner(net, policy::fixed{k});
            fine().set_input(state, pixels);
            const auto r = runner.run(state);
            REQUIRE(r.head == k);
            CHECK(r.positions_run == k + 1);
            CHECK(r.heads_evaluated == 1);
            REQUIRE(r.logits.size() == want[k].size());
            for (std::size_t c = 0; c < r.logits.size(); ++c)
                worst = std::max(worst, double(std::abs(r.logits[c] - want[k][c])));
        }
    }
    INFO("max |logit difference| = " << worst);
    CHECK(worst <= 1e-3);  // as the 6-exit network's parity test (float32 sums in another order)
}

TEST_CASE("fine CIFAR-10 network: the heads at block outputs give the 6-exit network's logits exactly") {
    // The same tensors, and the halves run the same operations in the same order as a whole
    // block: the trained heads (fine heads 2, 4, ..., 12) see bit-identical maps.
    for (const auto& pixels : reference_images()) {
        const auto f = all_heads(fine(), pixels), c = all_heads(coarse(), pixels);
        REQUIRE(f.size() == 13);
        REQUIRE(c.size() == 6);
        for (std::size_t k = 0; k < 6; ++k) CHECK(f[2 * k + 2] == c[k]);
    }
}

TEST_CASE("fine CIFAR-10 network: 13 stages with a head after each and MACs as computed by hand") {
    const auto net = fine().network();
    CHECK(fine().num_classes() == 10);
    CHECK(fine().class_names().front() == "airplane");
    REQUIRE(fine().num_stages() == 13);
    REQUIRE(fine().num_heads() == 13);
    REQUIRE(net.num_stages() == 13);
    REQUIRE(net.num_heads() == 13);
    CHECK(fine().holds_maps());
    CHECK_FALSE(coarse().holds_maps());
    for (std::size_t k = 0; k < 13; ++k) {
        CHECK(fine().head_after(k) == k);
        CHECK(net.head_position(k) == k);
    }
    // A conv costs H_out * W_out * C_out * C_in * k * k. The first half of a block is its conv1,
    // the second conv2 plus the 1x1 shortcut (blocks 2 and 4).
    const double c32 = 32 * 32 * 32 * 32 * 9.0, c64 = 16 * 16 * 64 * 64 * 9.0, c192 = 8 * 8 * 192 * 192 * 9.0;
    const std::vector<double> stage_macs = {
        32 * 32 * 32 * 3 * 9.0,                             // stem: 884 736
        c32, c32,                                           // blocks.0: 9 437 184 + 9 437 184
        c32, c32,                                           // blocks.1
        16 * 16 * 64 * 32 * 9.0, c64 + 16 * 16 * 64 * 32,  // blocks.2: 4 718 592 + 9 961 472
        c64, c64,                                           // blocks.3
        8 * 8 * 192 * 64 * 9.0, c192 + 8 * 8 * 192 * 64,    // blocks.4: 7 077 888 + 22 020 096
        c192, c192};                                        // blocks.5: 21 233 664 + 21 233 664
    CHECK(stage_macs == std::vector<double>{884736, 9437184, 9437184, 9437184, 9437184, 4718592, 9961472, 9437184, 9437184,
                                            7077888, 22020096, 21233664, 21233664});
    for (std::size_t s = 0; s < 13; ++s) {
        INFO("stage " << s << " (" << fine().stage(s).name << ")");
        CHECK(net.stage_macs(s) == stage_macs[s]);
    }
    // Each block's halves add up to the 6-exit network's block.
    const auto whole = coarse().network();
    CHECK(net.stage_macs(0) == whole.stage_macs(0));
    for (std::size_t b = 0; b < 6; ++b) CHECK(net.stage_macs(2 * b + 1) + net.stage_macs(2 * b + 2) == whole.stage_macs(b + 1));
    // Heads as grid_pooled_head counts them: one operation per input value for average pooling
    // (two for mixed: the max too) plus 10 x features weights and 10 biases. New heads (after the
    // stem and every conv1) average-pool to 4x4; the trained early heads mix, the final head pools
    // globally.
    const double new32 = 32768 + 5130, new64 = 16384 + 10250, new192 = 12288 + 30730;
    const std::vector<double> head_macs = {new32,  new32,  2 * 32768 + 5130,  new32,  2 * 32768 + 5130,
                                           new64,  2 * 16384 + 10250,        new64,  2 * 16384 + 10250,
                                           new192, 2 * 12288 + 30730,        new192, 12288 + 1930};
    for (std::size_t k = 0; k < 13; ++k) {
        INFO("head " << k);
        CHECK(net.head_macs_at(k) == head_macs[k]);
        CHECK(fine().head_grid(k) == (k == 12 ? 1u : 4u));
    }
    CHECK(std::accumulate(head_macs.begin(), head_macs.end(), 0.0) == 549890);  // all 13: 0.38% of the network
    // The plain network is the 6-exit one: the same stages and final head (143.77 M).
    CHECK(net.full_macs() == 143753216.0 + 14218.0);
    CHECK(net.full_macs() == whole.full_macs());
}

TEST_CASE("fine CIFAR-10 network: a batch equals the per-sample network at every head and across compaction") {
    // Rows are dropped after a first half (head 3: the block input is held then, and must move
    // with its row) and after a second half (head 6); batched_model.hpp's tolerance.
    const auto images = reference_images();
    std::vector<std::vector<std::vector<float>>> want;
    for (const auto& im : images) want.push_back(all_heads(fine(), im));
    const std::size_t capacity = 8;
    const batched_model net(fine(), capacity);
    auto state = net.make_state();
    net.check(state);
    const network_info info = net.info();
    std::size_t rows = 6;
    std::vector<std::size_t> sample(rows), list(capacity);
    for (std::size_t r = 0; r < rows; ++r) {
        fine().set_input_row(state, r, images[r]);
        sample[r] = r;
    }
    state.begin(fine().input_shape(), rows);
    std::vector<float> logits(capacity * info.classes), ws(net.batch_workspace_size());
    std::size_t checked = 0;
    for (std::size_t p = 0; p < info.stages; ++p) {
        net.run_batch_stage(p, state, rows);
        REQUIRE(info.head_positions[p] == p);
        for (std::size_t r = 0; r < rows; ++r) list[r] = r;
        net.run_batch_head(p, state, std::span<const std::size_t>(list.data(), rows),
                           std::span<float>(logits.data(), rows * info.classes), ws);
        for (std::size_t r = 0; r < rows; ++r) {
            INFO("head " << p << ", sample " << sample[r]);
            CHECK(relative_error(std::span<const float>(logits.data() + r * info.classes, info.classes),
                                 want[sample[r]][p]) <= 1e-5);
            ++checked;
        }
        std::vector<std::size_t> keep;
        if (p == 3) keep = {1, 2, 4, 5};  // drops samples 0 and 3 while blocks.1's input is held
        if (p == 6) keep = {0, 3};        // then samples 2 and 4: samples 1 and 5 run on
        if (!keep.empty()) {
            CHECK(state.holding() == (p == 3));
            net.compact(state, keep);
            for (std::size_t j = 0; j < keep.size(); ++j) sample[j] = sample[keep[j]];
            rows = keep.size();
        }
    }
    CHECK(checked == 4 * 6 + 3 * 4 + 6 * 2);
    CHECK(sample[0] == 1);
    CHECK(sample[1] == 5);
}

TEST_CASE("fine CIFAR-10 network: a sample through every stage and head allocates nothing", "[alloc]") {
    const auto images = reference_images();
    const auto net = fine().network();
    auto state = fine().make_state();
    auto runner = make_runner(net, policy::patience{1000});  // never reached: every head, every stage
    std::size_t heads = 0;
    const auto run = [&](std::size_t i) {
        fine().set_input(state, images[i % images.size()]);
        heads += runner.run(state).heads_evaluated;
    };
    run(0);  // warm-up
    const long new_before = earlyexit_test::allocations.load();
    const long eigen_before = earlyexit_test::eigen_failed_checks.load();
    Eigen::internal::set_is_malloc_allowed(false);
    for (std::size_t i = 1; i <= 4; ++i) run(i);
    Eigen::internal::set_is_malloc_allowed(true);
    CHECK(earlyexit_test::allocations.load() - new_before == 0);
    CHECK(earlyexit_test::eigen_failed_checks.load() - eigen_before == 0);
    CHECK(heads == 5 * 13);
}

TEST_CASE("fine CIFAR-10 network: batched stages and heads and compaction of a held map allocate nothing", "[alloc]") {
    const auto images = reference_images();
    const std::size_t capacity = 8;
    const batched_model net(fine(), capacity);
    auto state = net.make_state();
    const network_info info = net.info();
    for (std::size_t r = 0; r < capacity; ++r) fine().set_input_row(state, r, images[r]);
    std::vector<float> logits(capacity * info.classes), ws(net.batch_workspace_size());
    std::vector<std::size_t> list(capacity), keep(capacity);
    const auto pass = [&] {
        state.begin(fine().input_shape(), capacity);
        std::size_t rows = capacity;
        for (std::size_t p = 0; p < info.stages; ++p) {
            net.run_batch_stage(p, state, rows);
            for (std::size_t r = 0; r < rows; ++r) list[r] = r;
            net.run_batch_head(p, state, std::span<const std::size_t>(list.data(), rows),
                               std::span<float>(logits.data(), rows * info.classes), ws);
            if (p % 2 == 1 && rows > 1) {  // after every first half: drop row 0 (the held map moves too)
                for (std::size_t r = 1; r < rows; ++r) keep[r - 1] = r;
                net.compact(state, std::span<const std::size_t>(keep.data(), rows - 1));
                --rows;
            }
        }
    };
    pass();
    const long new_before = earlyexit_test::allocations.load();
    const long eigen_before = earlyexit_test::eigen_failed_checks.load();
    Eigen::internal::set_is_malloc_allowed(false);
    pass();
    pass();
    Eigen::internal::set_is_malloc_allowed(true);
    CHECK(earlyexit_test::allocations.load() - new_before == 0);
    CHECK(earlyexit_test::eigen_failed_checks.load() - eigen_before == 0);
}

TEST_CASE("fine CIFAR-10 network refuses halves that do not fit together and names the stage and the value") {
    const earlyexit_test::temp_dir dir("earlyexit_cifar_fine_net");
    // Stages: 0 stem, 1 blocks.0.conv1, 2 blocks.0.conv2, 3 blocks.1.conv1, ...
    const auto p = with_architecture(dir.path, [](nlohmann::json& a) { a["stages"][2]["block"] = "blocks.1"; });
    CHECK(what_of([&] { cifar_net m(p); }) ==
          p.string() + ": stage 'blocks.0.conv2' ends block 'blocks.1', but block 'blocks.0' is open; a 'basic_block_conv2' "
                       "stage must follow the 'basic_block_conv1' stage of its block");
    const auto q = with_architecture(dir.path, [](nlohmann::json& a) { std::swap(a["stages"][1], a["stages"][2]); });
    CHECK(what_of([&] { cifar_net m(q); }) ==
          q.string() + ": stage 'blocks.0.conv2' ends block 'blocks.0', but no block is open; a 'basic_block_conv2' stage "
                       "must follow the 'basic_block_conv1' stage of its block");
    // Two first halves in a row: the second would hold its input while the first's is held.
    const auto r = with_architecture(dir.path, [](nlohmann::json& a) { a["stages"][2]["type"] = "basic_block_conv1"; });
    CHECK(what_of([&] { cifar_net m(r); }) ==
          r.string() + ": stage 'blocks.0.conv2' holds its input while the input of stage 'blocks.0.conv1' is still held: "
                       "one at a time");
    // The network ends between the halves of the last block: the held input is never read.
    const auto s = with_architecture(dir.path, [](nlohmann::json& a) {
        a["stages"].erase(12);
        a["heads"].erase(12);
    });
    CHECK(what_of([&] { cifar_net m(s); }) ==
          s.string() + ": stage 'blocks.5.conv1' holds its input for a later stage, but no stage after it reads it");
    const auto t = with_architecture(dir.path, [](nlohmann::json& a) { a["stages"][6]["macs"] = 9437184; });
    CHECK(what_of([&] { cifar_net m(t); }) ==
          t.string() + ": stage 'blocks.2.conv2' declares 9437184 MACs, its layers have 9961472");
    const auto u = with_architecture(dir.path, [](nlohmann::json& a) { a["stages"][4]["type"] = "half_block"; });
    CHECK(what_of([&] { cifar_net m(u); }) == u.string() + ": stage 'blocks.1.conv2' has unknown type 'half_block'");
}

TEST_CASE("fine CIFAR-10 network: a batch state without the buffer for the held map is refused by size") {
    const batched_model net(fine(), 2);
    const std::size_t need = fine().max_map_size();
    batch_feature_state no_hold(2, need, net.state_workspace_size(2));  // can_hold = false
    CHECK_FALSE(no_hold.can_hold());
    CHECK(what_of([&] { net.check(no_hold); }) ==
          fmt::format("batched_model: the state has 0 floats to hold a map across stages, this model's half-block stages "
                      "need {}",
                      2 * need));
    auto ok = net.make_state();
    CHECK(ok.can_hold());
    net.check(ok);
    // The 6-exit network's states need no such buffer.
    CHECK_FALSE(batched_model(coarse(), 2).make_state().can_hold());
    CHECK_FALSE(coarse().make_state().can_hold());
    CHECK(fine().make_state().can_hold());
}
