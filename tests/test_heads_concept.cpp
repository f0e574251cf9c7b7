#include <array>
#include <cstddef>
#include <optional>
#include <span>

#include <catch2/catch.hpp>
#include <earlyexit/heads/concept.hpp>

using namespace earlyexit;

namespace {

// The smallest heads: one of each call form, declaring nothing optional.
struct simple {
    std::size_t num_classes() const { return 2; }
    void operator()(const int& x, std::span<float> logits) const {
        logits[0] = static_cast<float>(x);
        logits[1] = -1.f;
    }
};
struct with_scratch {
    std::size_t num_classes() const { return 2; }
    void operator()(const int& x, std::span<float> logits, std::span<float> ws) const {
        ws[0] = static_cast<float>(2 * x);
        logits[0] = ws[0];
        logits[1] = static_cast<float>(ws.size());
    }
};
// Declares every optional part.
struct declared : simple {
    double macs() const { return 12.5; }
    std::size_t input_size() const { return 7; }
    std::size_t workspace_size() const { return 3; }
};
struct hinted : simple {
    std::optional<std::size_t> input_size_hint() const { return 5; }
};
struct no_classes {
    void operator()(const int&, std::span<float>) const {}
};

}  // namespace

TEST_CASE("exit_head accepts both call forms and needs num_classes()", "[heads]") {
    STATIC_REQUIRE(exit_head<simple, int, float>);
    STATIC_REQUIRE(exit_head<with_scratch, int, float>);
    STATIC_REQUIRE(exit_head<declared, int, float>);
    STATIC_REQUIRE_FALSE(exit_head<no_classes, int, float>);
    STATIC_REQUIRE_FALSE(exit_head<simple, int, double>);            // writes float logits only
    STATIC_REQUIRE_FALSE(exit_head<simple, std::array<int, 2>, float>);  // wrong input type
}

TEST_CASE("head_macs and head_workspace_size read the declared values, else 0", "[heads]") {
    CHECK(head_macs(simple{}) == 0.0);
    CHECK(head_workspace_size(simple{}) == 0);
    CHECK(head_macs(declared{}) == 12.5);
    CHECK(head_workspace_size(declared{}) == 3);
    CHECK(detail::declared_input_size(simple{}) == std::nullopt);
    CHECK(detail::declared_input_size(declared{}) == std::optional<std::size_t>(7));
    CHECK(detail::declared_input_size(hinted{}) == std::optional<std::size_t>(5));
}

TEST_CASE("invoke_head passes the workspace only to heads that take one", "[heads]") {
    std::array<float, 2> logits{};
    std::array<float, 4> ws{};
    detail::invoke_head(simple{}, 3, std::span<float>(logits), std::span<float>(ws));
    CHECK(logits == std::array<float, 2>{3.f, -1.f});
    CHECK(ws == std::array<float, 4>{});
    detail::invoke_head(with_scratch{}, 3, std::span<float>(logits), std::span<float>(ws));
    CHECK(logits == std::array<float, 2>{6.f, 4.f});
    CHECK(ws[0] == 6.f);
}
