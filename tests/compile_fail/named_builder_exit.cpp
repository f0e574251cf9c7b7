// exit() on a named builder.
#include <span>

#include <earlyexit/network.hpp>

void instantiate() {
    using vec = Eigen::VectorXf;
    auto b = earlyexit::make_network<vec>().stage([](vec&) {}, {.macs = 1});
    (void)b.exit(earlyexit::make_head([](const vec&, std::span<float>) {}, 2));
}
