// A compile-time builder grown through a named variable.
#include <earlyexit/network.hpp>

void instantiate() {
    using vec = Eigen::VectorXf;
    auto b = earlyexit::make_network<vec>();
    (void)b.stage([](vec&) {}, {.macs = 1});
}
