// 01_quickstart: stop reading as soon as the answer is clear.
//
// The "network" reads a noisy signal one chunk per stage: each stage maps its chunk to feature
// space (a 64x64 transform, the expensive part) and adds it to a running sum; after every stage
// a linear exit head scores the 4 classes. With unit Gaussian noise their softmax is the exact
// Bayes posterior, so confidence means something: easy samples can stop after a chunk or two,
// hard ones read on. Every policy runs on the same 2000 samples.
#include <random>
#include <vector>

#include <Eigen/QR>
#include <earlyexit/earlyexit.hpp>
#include <fmt/core.h>

constexpr int dims = 64, classes = 4, n_chunks = 8;

using features = Eigen::Matrix<float, dims, 1>;
using transform = Eigen::Matrix<float, dims, dims>;

struct signal {
    Eigen::Matrix<float, dims, n_chunks> chunks;  // the input: one noisy observation per column
    features sum;                                 // what the stages have read, in feature space
    int read = 0;
};

int main() {
    std::mt19937 rng(42);
    std::normal_distribution<float> noise(0.f, 1.f);
    Eigen::Matrix<float, classes, dims> prototypes;
    for (int c = 0; c < classes; ++c)
        for (int d = 0; d < dims; ++d) prototypes(c, d) = 0.15f * noise(rng);
    // A random rotation: the stages' feature transform (orthogonal, so the posterior is exact).
    const transform rotation = Eigen::HouseholderQR<transform>(transform::Random()).householderQ();

    // Stage t reads chunk t; an exit head after every stage (8 stages, 8 heads). After n = t + 1
    // chunks of class c (prototype mu_c) the sum is n R mu_c plus N(0, n I) noise, so log p(sum | c)
    // is sum . R mu_c - n/2 |mu_c|^2 (R keeps norms) plus a term alike for every class.
    const Eigen::Vector4f squared_norms = prototypes.rowwise().squaredNorm();
    const auto head = [&](int t) {
        return earlyexit::project(
            earlyexit::linear_head<float, dims, classes>(prototypes * rotation.transpose(),
                                                         -0.5f * static_cast<float>(t + 1) * squared_norms),
            [](const signal& s) -> const auto& { return s.sum; });
    };
    const auto read_chunk = [&rotation](signal& s) { s.sum.noalias() += rotation * s.chunks.col(s.read++); };
    earlyexit::dynamic_network_builder<signal> builder;
    for (int t = 0; t < n_chunks; ++t) builder.stage(read_chunk, {.macs = dims * dims}).exit(head(t));
    const auto net = builder.build();

    // 2000 samples: a random class, its prototype plus unit noise in every chunk.
    std::vector<signal> samples(2000);
    std::vector<std::size_t> labels(samples.size());
    for (std::size_t i = 0; i < samples.size(); ++i) {
        labels[i] = static_cast<std::size_t>(rng() % classes);
        for (int t = 0; t < n_chunks; ++t)
            for (int d = 0; d < dims; ++d) samples[i].chunks(d, t) = prototypes(static_cast<int>(labels[i]), d) + noise(rng);
    }

    const auto evaluate = [&](const char* name, earlyexit::any_policy<float> policy) {
        auto runner = earlyexit::make_runner(net, std::move(policy));
        double correct = 0, stages = 0, heads = 0, macs = 0, seconds = 0;
        for (std::size_t i = 0; i < samples.size(); ++i) {
            signal s = samples[i];
            s.sum.setZero();
            s.read = 0;
            const auto r = runner.run(s, {.index = i, .label = labels[i]});
            correct += r.predicted == labels[i];
            stages += static_cast<double>(r.positions_run);
            heads += static_cast<double>(r.heads_evaluated);
            macs += r.macs;
            seconds += r.seconds;
        }
        const double n = static_cast<double>(samples.size());
        fmt::print("{:<16} {:>8.1f}% {:>12.2f} {:>11.2f} {:>14.1f}% {:>10.2f}\n", name, 100 * correct / n, stages / n,
                   heads / n, 100 * (1 - macs / n / net.full_macs()), 1e6 * seconds / n);
    };

    fmt::print("{:<16} {:>9} {:>12} {:>11} {:>15} {:>10}\n", "policy", "accuracy", "mean stages", "mean heads",
               "compute saving", "us/sample");
    evaluate("full", earlyexit::policy::full{});
    evaluate("max_prob 0.9", earlyexit::policy::max_prob{0.9});
    evaluate("max_prob 0.99", earlyexit::policy::max_prob{0.99});
    evaluate("entropy 0.2", earlyexit::policy::entropy{0.2});
    evaluate("margin 0.8", earlyexit::policy::margin{0.8});
    evaluate("patience 3", earlyexit::policy::patience{3});
    evaluate("fixed head 3", earlyexit::policy::fixed{3});
    evaluate("oracle", earlyexit::policy::oracle{});
}
