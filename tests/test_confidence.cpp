#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>
#include <earlyexit/confidence.hpp>

using namespace earlyexit;

namespace {
constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();
}  // namespace

TEST_CASE("softmax and measures of (1, 2, 3) match hand-computed values", "[confidence]") {
    const std::vector<float> z{1.f, 2.f, 3.f};
    std::vector<float> p(3);
    softmax(z, p);
    CHECK(p[0] == Approx(0.0900306f).epsilon(1e-5));
    CHECK(p[1] == Approx(0.2447285f).epsilon(1e-5));
    CHECK(p[2] == Approx(0.6652410f).epsilon(1e-5));
    CHECK(max_prob(z) == Approx(0.6652410f).epsilon(1e-5));
    CHECK(margin(z) == Approx(0.4205125f).epsilon(1e-5));
    CHECK(normalized_entropy(z) == Approx(0.7576791f).epsilon(1e-5));
    CHECK(entropy(z) == Approx(0.7576791f * std::log(3.0f)).epsilon(1e-5));
    CHECK(logit_extremum(z) == 3.f);
    CHECK(top1(z) == 2);
}

TEST_CASE("measures of a 4-class case and its logit extremum from a negative logit", "[confidence]") {
    const std::array<double, 4> z{0.5, -1.0, 2.0, 0.0};
    std::array<double, 4> p{};
    const auto c = measure(z, p);
    CHECK(c.valid);
    CHECK(c.top1 == 2);
    CHECK(c.max_prob == Approx(0.7100999228861743).epsilon(1e-12));
    CHECK(c.margin == Approx(0.5516552133711946).epsilon(1e-12));
    CHECK(c.entropy == Approx(0.6335459480331656).epsilon(1e-12));
    CHECK(c.logit_extremum == 2.0);
    CHECK(p[1] == Approx(0.03535379340874887).epsilon(1e-12));
    const std::array<double, 3> neg{-5.0, 1.0, 3.0};
    CHECK(logit_extremum(neg) == 5.0);
}

TEST_CASE("measures are stable for huge logits", "[confidence]") {
    const std::vector<float> z{1000.f, 999.f};
    CHECK(max_prob(z) == Approx(0.7310586f).epsilon(1e-5));
    const std::vector<float> w{-1000.f, -1001.f};
    CHECK(max_prob(w) == Approx(0.7310586f).epsilon(1e-5));
    std::vector<float> p(2);
    const auto c = measure(z, p);
    CHECK(std::isfinite(c.entropy));
    CHECK(p[0] + p[1] == Approx(1.f));
}

TEST_CASE("uniform logits have no confidence, a single class has full confidence", "[confidence]") {
    const std::vector<float> z(10, 0.25f);
    CHECK(max_prob(z) == Approx(0.1f));
    CHECK(margin(z) == Approx(0.f).margin(1e-7));
    CHECK(normalized_entropy(z) == Approx(1.f));
    CHECK(top1(z) == 0);  // first on ties
    const std::vector<float> one{3.f};
    CHECK(max_prob(one) == 1.f);
    CHECK(margin(one) == 1.f);
    CHECK(normalized_entropy(one) == 0.f);
}

TEST_CASE("logits of -inf are masked classes", "[confidence]") {
    const std::vector<float> z{1.f, -inf, 2.f, 3.f};
    std::vector<float> p(4);
    const auto c = measure(z, p);
    CHECK(c.valid);
    CHECK(p[1] == 0.f);
    CHECK(p[3] == Approx(0.6652410f).epsilon(1e-5));
    CHECK(c.max_prob == Approx(0.6652410f).epsilon(1e-5));
    // Same distribution as (1, 2, 3); normalized by ln 4 since the vector has 4 classes.
    CHECK(c.entropy == Approx(0.7576791f * std::log(3.f) / std::log(4.f)).epsilon(1e-5));
    CHECK(c.logit_extremum == 3.f);  // -inf ignored
    const std::vector<float> two{-inf, 5.f};
    CHECK(margin(two) == 1.f);
}

TEST_CASE("NaN, +inf, all -inf and empty logits are invalid: uniform, no confidence", "[confidence]") {
    const std::vector<std::vector<float>> cases{{1.f, qnan, 2.f, 0.f}, {1.f, inf, 2.f, 0.f}, {-inf, -inf, -inf, -inf}};
    for (const auto& z : cases) {
        std::vector<float> p(4, -1.f);
        const auto c = measure(z, p);
        CHECK_FALSE(c.valid);
        CHECK(c.max_prob == 0.25f);
        CHECK(c.margin == 0.f);
        CHECK(c.entropy == 1.f);
        CHECK(c.logit_extremum == 0.f);
        CHECK(c.top1 == 0);
        for (float v : p) CHECK(v == 0.25f);
        CHECK(max_prob(z) == 0.25f);
        CHECK(margin(z) == 0.f);
        CHECK(normalized_entropy(z) == 1.f);
        CHECK(logit_extremum(z) == 0.f);
    }
    const std::vector<float> empty;
    std::vector<float> none;
    const auto c = measure(empty, none);
    CHECK_FALSE(c.valid);
    CHECK(c.max_prob == 0.f);
}

TEST_CASE("measure() agrees with the single measures on random logits", "[confidence][property]") {
    std::mt19937 rng(7);
    std::normal_distribution<double> d(0.0, 4.0);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<double> z(2 + static_cast<std::size_t>(trial % 30));
        for (auto& v : z) v = d(rng);
        std::vector<double> p(z.size());
        const auto c = measure(z, p);
        CHECK(c.max_prob == Approx(max_prob(z)).epsilon(1e-12));
        CHECK(c.margin == Approx(margin(z)).epsilon(1e-9));
        CHECK(c.entropy == Approx(normalized_entropy(z)).epsilon(1e-9));
        CHECK(c.top1 == top1(z));
        double sum = 0, h = 0;
        for (double q : p) {
            sum += q;
            if (q > 0) h -= q * std::log(q);
        }
        CHECK(sum == Approx(1.0));
        CHECK(c.entropy == Approx(h / std::log(static_cast<double>(z.size()))).epsilon(1e-9));
        CHECK(c.max_prob >= 1.0 / static_cast<double>(z.size()) - 1e-12);
        CHECK(c.max_prob <= 1.0);
        CHECK(c.margin >= 0.0);
        CHECK(c.entropy >= 0.0);
        CHECK(c.entropy <= 1.0);
    }
}

TEST_CASE("measures take spans, vectors, arrays and Eigen vectors via as_span, all noexcept", "[confidence]") {
    Eigen::VectorXf v(3);
    v << 1.f, 2.f, 3.f;
    CHECK(max_prob(as_span(v)) == Approx(0.6652410f).epsilon(1e-5));
    const float raw[3] = {1.f, 2.f, 3.f};
    CHECK(max_prob(raw) == Approx(0.6652410f).epsilon(1e-5));
    CHECK(max_prob(std::span<const float>(raw)) == Approx(0.6652410f).epsilon(1e-5));
    std::vector<float> z{1.f, 2.f}, p(2);
    STATIC_REQUIRE(noexcept(max_prob(z)));
    STATIC_REQUIRE(noexcept(margin(z)));
    STATIC_REQUIRE(noexcept(normalized_entropy(z)));
    STATIC_REQUIRE(noexcept(logit_extremum(z)));
    STATIC_REQUIRE(noexcept(measure(z, p)));
    STATIC_REQUIRE(noexcept(softmax(z, p)));
    STATIC_REQUIRE(logit_range<std::vector<double>>);
    STATIC_REQUIRE_FALSE(logit_range<std::vector<int>>);
    STATIC_REQUIRE_FALSE(writable_logit_range<const std::vector<float>>);
}
