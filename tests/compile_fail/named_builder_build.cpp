// build() on a named builder.
#include <span>

#include <earlyexit/network.hpp>

void instantiate() {
    using vec = Eigen::VectorXf;
    const auto b = earlyexit::make_network<vec>()
                       .stage([](vec&) {}, {.macs = 1})
                       .exit(earlyexit::make_head([](const vec&, std::span<float>) {}, 2));
    (void)b.build();
}
