#pragma once
// The toy network of the examples (the same idea as 01_quickstart): a noisy signal read one
// chunk per stage, a 64x64 feature transform per chunk, a linear exit head after every stage.
// Samples mix easy and hard ones (the noise level varies), so early exit has something to win.

#include <cstddef>
#include <random>
#include <vector>

#include <Eigen/QR>
#include <earlyexit/earlyexit.hpp>

namespace toy {

constexpr int dims = 64, classes = 4, n_chunks = 8;
using features = Eigen::Matrix<float, dims, 1>;
using transform = Eigen::Matrix<float, dims, dims>;

struct signal {
    Eigen::Matrix<float, dims, n_chunks> chunks = Eigen::Matrix<float, dims, n_chunks>::Zero();  // one observation per column
    features sum = features::Zero();              // what the stages have read, in feature space
    int read = 0;
};

struct model {
    Eigen::Matrix<float, classes, dims> prototypes;
    transform rotation;

    explicit model(unsigned seed) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> noise(0.f, 1.f);
        for (int c = 0; c < classes; ++c)
            for (int d = 0; d < dims; ++d) prototypes(c, d) = 0.15f * noise(rng);
        rotation = Eigen::HouseholderQR<transform>(transform::Random()).householderQ();
    }

    /// 8 stages (declared cost 64*64 MACs each), a head after each.
    [[nodiscard]] earlyexit::dynamic_network<signal> network() const {
        const auto head = earlyexit::project(
            earlyexit::linear_head<float, dims, classes>(prototypes * rotation.transpose(), Eigen::Vector4f::Zero()),
            [](const signal& s) -> const auto& { return s.sum; });
        const transform r = rotation;
        const auto read_chunk = [r](signal& s) { s.sum.noalias() += r * s.chunks.col(s.read++); };
        earlyexit::dynamic_network_builder<signal> b;
        for (int t = 0; t < n_chunks; ++t) b.stage(read_chunk, {.macs = dims * dims}).exit(head);
        return b.build();
    }

    /// n samples: a random class, its prototype plus noise whose level varies per sample.
    void make_samples(std::size_t n, unsigned seed, std::vector<signal>& samples, std::vector<std::size_t>& labels) const {
        std::mt19937 rng(seed);
        std::normal_distribution<float> noise(0.f, 1.f);
        std::uniform_real_distribution<float> level(0.5f, 1.6f);
        samples.assign(n, signal{});
        labels.assign(n, 0);
        for (std::size_t i = 0; i < n; ++i) {
            labels[i] = static_cast<std::size_t>(rng() % classes);
            const float sigma = level(rng);
            for (int t = 0; t < n_chunks; ++t)
                for (int d = 0; d < dims; ++d)
                    samples[i].chunks(d, t) = prototypes(static_cast<int>(labels[i]), d) + sigma * noise(rng);
        }
    }
};

/// Resets a signal's read position so it can run again.
inline void rewind(signal& s) {
    s.sum.setZero();
    s.read = 0;
}

}  // namespace toy
