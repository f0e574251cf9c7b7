#pragma once
// What the ```cpp blocks of docs/api.md assume. tests/api_snippets.cmake writes a program that
// includes this file, then pastes every block of the page, in order, into one function body
// (so a block uses the names the blocks before it defined) and runs it: test api_snippets.
//
// Fixtures (named in the page's introduction):
//   W, b       a 4 x 8 weight (the class prototypes, one per row) and a zero bias of 4
//   inputs     200 samples: Eigen::VectorXf of 8, a class prototype plus unit noise
//   labels     their classes (0..3)
//   tmp        a fresh folder under std::filesystem::temp_directory_path(), removed at exit
//   data_dir   the repository's data/ folder (the shipped frequency tables)

#include <array>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <fmt/core.h>

#include <earlyexit/dvfs/hardware.hpp>
#include <earlyexit/earlyexit.hpp>
#include <earlyexit/io.hpp>
#include <earlyexit/stream_runner.hpp>

using namespace earlyexit;  // what the page's introduction asks of a reader, too

namespace api_snippets_fixtures {

inline std::mt19937& rng() {
    static std::mt19937 g(2024);
    return g;
}

inline Eigen::MatrixXf prototypes() {
    std::normal_distribution<float> n(0.F, 1.F);
    Eigen::MatrixXf w(4, 8);
    for (Eigen::Index c = 0; c < w.rows(); ++c)
        for (Eigen::Index d = 0; d < w.cols(); ++d) w(c, d) = 0.6F * n(rng());
    return w;
}

inline std::filesystem::path fresh_folder() {
    std::random_device seed;
    const auto dir = std::filesystem::temp_directory_path() /
                     fmt::format("earlyexit-api-snippets-{:08x}", static_cast<unsigned>(seed()));
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace api_snippets_fixtures

inline const Eigen::MatrixXf W = api_snippets_fixtures::prototypes();
inline const Eigen::VectorXf b = Eigen::VectorXf::Zero(4);
inline const std::vector<std::size_t> labels = [] {
    std::vector<std::size_t> y(200);
    for (auto& l : y) l = api_snippets_fixtures::rng()() % 4;
    return y;
}();
inline const std::vector<Eigen::VectorXf> inputs = [] {
    std::normal_distribution<float> n(0.F, 1.F);
    std::vector<Eigen::VectorXf> x;
    for (const std::size_t y : labels) {
        Eigen::VectorXf v = W.row(static_cast<Eigen::Index>(y)).transpose();
        for (Eigen::Index d = 0; d < v.size(); ++d) v(d) += n(api_snippets_fixtures::rng());
        x.push_back(v);
    }
    return x;
}();
inline const std::filesystem::path tmp = api_snippets_fixtures::fresh_folder();
inline const std::filesystem::path data_dir = std::filesystem::path(EARLYEXIT_TEST_SOURCE_DIR) / ".." / "data";

/// Runs the page's blocks; removes tmp whatever happens. Prints no path (tmp is absolute).
inline int api_snippets_main(void (*blocks)(), std::size_t count) {
    int status = 0;
    try {
        blocks();
        fmt::print("api_snippets: the {} C++ blocks of docs/api.md compiled and ran\n", count);
    } catch (const std::exception& e) {
        std::string what = e.what();  // without the temporary folder's absolute path
        for (auto at = what.find(tmp.string()); at != std::string::npos; at = what.find(tmp.string()))
            what.replace(at, tmp.string().size(), "<tmp>");
        std::fprintf(stderr, "api_snippets: a block of docs/api.md threw: %s\n", what.c_str());
        status = 1;
    }
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    return status;
}
