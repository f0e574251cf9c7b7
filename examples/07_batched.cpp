// 07_batched: many samples at once, each still exiting on its own, on several threads.
//
// A network whose stages gain from batching holds its activations for a whole batch: here a
// stage is one 64x64 matrix times a 64 x rows block (one GEMM for every row), and the batch
// state keeps the rows as columns. batch_runner runs the rows together, asks the policy about
// each of them at every head, lets the sure ones leave and has the network compact the rest
// into a narrower block, so the later, sparser stages run on fewer columns. parallel_runner
// gives each of N workers its own batch_runner and state over the one shared network.
// The results come back in input order, and equal a one-by-one run's exits.
#include <algorithm>
#include <random>
#include <span>
#include <vector>

#include <Eigen/Core>
#include <earlyexit/earlyexit.hpp>
#include <fmt/core.h>

constexpr int dims = 64, classes = 4, depth = 8;
using matrix = Eigen::MatrixXf;

/// The batch: one column per row (sample), `rows` in use.
struct block_state {
    matrix x, tmp;
    explicit block_state(std::size_t capacity) : x(dims, static_cast<Eigen::Index>(capacity)), tmp(x) {}
    [[nodiscard]] std::size_t capacity() const noexcept { return static_cast<std::size_t>(x.cols()); }
};

/// A batched network: `depth` stages x -> relu(W x) over every row at once, a linear head after each.
class block_network {
public:
    using scalar_type = float;
    using batch_state_type = block_state;

    explicit block_network(std::mt19937& rng) {
        std::normal_distribution<float> n(0.f, 1.f);
        for (int i = 0; i < depth; ++i) {
            matrix w(dims, dims), h(classes, dims);
            for (Eigen::Index j = 0; j < w.size(); ++j) w.data()[j] = 1.3f * n(rng) / 8.f;
            for (Eigen::Index j = 0; j < h.size(); ++j) h.data()[j] = 0.3f * n(rng);
            w_.push_back(w);
            h_.push_back(h);
            positions_.push_back(static_cast<std::size_t>(i));
        }
        stage_macs_.assign(depth, double(dims) * dims);
        head_macs_.assign(depth, double(classes) * dims);
    }

    [[nodiscard]] earlyexit::network_info info() const noexcept {
        return {depth, depth, classes, positions_, stage_macs_, head_macs_,
                earlyexit::full_network_macs(stage_macs_, head_macs_)};
    }
    [[nodiscard]] std::size_t batch_workspace_size() const noexcept { return 0; }

    void run_batch_stage(std::size_t p, block_state& s, std::size_t rows) const noexcept {
        const auto n = static_cast<Eigen::Index>(rows);
        s.tmp.leftCols(n).noalias() = w_[p] * s.x.leftCols(n);  // one GEMM for the whole batch
        s.x.leftCols(n) = s.tmp.leftCols(n).cwiseMax(0.f);
    }
    void run_batch_head(std::size_t k, const block_state& s, std::span<const std::size_t> list,
                        std::span<float> logits, std::span<float>) const noexcept {
        for (std::size_t j = 0; j < list.size(); ++j)
            Eigen::Map<Eigen::VectorXf>(logits.data() + j * classes, classes).noalias() =
                h_[k] * s.x.col(static_cast<Eigen::Index>(list[j]));
    }
    void compact(block_state& s, std::span<const std::size_t> keep) const noexcept {
        for (std::size_t j = 0; j < keep.size(); ++j)  // keep is increasing: keep[j] >= j
            if (keep[j] != j) s.x.col(static_cast<Eigen::Index>(j)) = s.x.col(static_cast<Eigen::Index>(keep[j]));
    }

private:
    std::vector<matrix> w_, h_;
    std::vector<std::size_t> positions_;
    std::vector<double> stage_macs_, head_macs_;
};
static_assert(earlyexit::batched_network<block_network>);

int main() {
    std::mt19937 rng(7);
    const block_network net(rng);
    std::vector<Eigen::VectorXf> inputs(4096);
    std::normal_distribution<float> n(0.f, 1.f);
    for (auto& v : inputs) {
        v.resize(dims);
        for (auto& x : v) x = n(rng);
    }
    std::vector<earlyexit::sample_info> samples(inputs.size());
    for (std::size_t i = 0; i < samples.size(); ++i) samples[i].index = i;
    const auto fill = [&](block_state& s, std::size_t first, std::size_t count) {
        for (std::size_t r = 0; r < count; ++r) s.x.col(static_cast<Eigen::Index>(r)) = inputs[first + r];
    };

    // One batch by hand: results in input order, each row's own exit.
    auto runner = earlyexit::make_batch_runner(net, earlyexit::policy::max_prob{0.75}, 8);
    block_state state(8);
    fill(state, 0, 8);
    const auto results = runner.run(state, std::span(samples).first(8));
    fmt::print("one batch of 8: exit heads");
    for (const auto& r : results) fmt::print(" {}", r.head);
    fmt::print("; rows per stage:");
    for (std::size_t p = 0; p < depth; ++p) fmt::print(" {}", runner.stats().stage_rows[p]);
    fmt::print("\n");

    // Every sample, batch sizes and threads: throughput from the wall time.
    // A wider GEMM may sum in another order than a narrow one: the last bit of a logit can move a
    // sample across the threshold, so the exits are compared with batch 1's and counted.
    fmt::print("{:>7} {:>7} {:>12} {:>11} {:>22}\n", "batch", "threads", "samples/s", "mean heads",
               "exits unlike batch 1");
    std::vector<earlyexit::sample_outcome> out(samples.size()), reference;
    for (const std::size_t threads : {1, 2})
        for (const std::size_t batch : {1, 8, 64}) {
            earlyexit::parallel_runner<block_network, earlyexit::policy::max_prob> pool(
                net, earlyexit::policy::max_prob{0.75}, {.threads = threads, .batch = batch},
                [&] { return block_state(batch); });
            const double t0 = earlyexit::wall_clock{}.now();
            pool.run(samples, fill, out);
            const double seconds = earlyexit::wall_clock{}.now() - t0;
            double heads = 0;
            for (const auto& o : out) heads += static_cast<double>(o.heads_evaluated);
            if (reference.empty()) reference = out;
            std::size_t differ = 0;
            for (std::size_t i = 0; i < out.size(); ++i) differ += out[i].head != reference[i].head;
            fmt::print("{:>7} {:>7} {:>12.0f} {:>11.2f} {:>22}\n", batch, threads, static_cast<double>(out.size()) / seconds,
                       heads / static_cast<double>(out.size()), differ);
        }
}
