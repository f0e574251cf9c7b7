#pragma once
// Test support for the heads/ tests: small hand-written linear layers whose outputs the tests
// compute by hand.

#include <initializer_list>

#include <Eigen/Core>
#include <earlyexit/heads/linear.hpp>

namespace earlyexit_test {

/// W = [[1, 2], [3, 4], [0, -1]], b = (0.5, 0, 1): 2 inputs, 3 classes.
inline earlyexit::linear_head<float> small_linear() {
    Eigen::MatrixXf w(3, 2);
    w << 1, 2, 3, 4, 0, -1;
    Eigen::VectorXf b(3);
    b << 0.5f, 0.f, 1.f;
    return {w, b};
}

/// A linear layer from its weight rows (Out rows of In values) and bias.
inline earlyexit::linear_head<float> layer(std::initializer_list<std::initializer_list<float>> rows,
                                           std::initializer_list<float> bias) {
    Eigen::MatrixXf w(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows.begin()->size()));
    Eigen::Index r = 0;
    for (const auto& row : rows) {
        Eigen::Index c = 0;
        for (float v : row) w(r, c++) = v;
        ++r;
    }
    Eigen::VectorXf b(static_cast<Eigen::Index>(bias.size()));
    Eigen::Index i = 0;
    for (float v : bias) b(i++) = v;
    return {w, b};
}

}  // namespace earlyexit_test
