// compare.hpp, the judge of every GPU-vs-CPU test: what passes and what fails under a tolerance,
// NaN and the infinities included, and which element it reports.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "mnist_gpu/compare.hpp"

using namespace mnist_gpu;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

Comparison cmp(const std::vector<double>& got, const std::vector<double>& want, const Tolerance& tol) {
  return compare(got.data(), want.data(), got.size(), tol);
}

}  // namespace

TEST(Compare, ExactPassesOnlyIdenticalValues) {
  EXPECT_TRUE(cmp({1.0, -2.5, 0.0}, {1.0, -2.5, 0.0}, kTolExact).ok);
  const Comparison c = cmp({1.0, std::nextafter(-2.5, 0.0), 0.0}, {1.0, -2.5, 0.0}, kTolExact);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.worst, 1u);
}

TEST(Compare, ToleranceIsAbsolutePlusRelative) {
  // bound = atol + rtol |want| = 1e-5 + 1e-4 * 100 = 0.01001
  const Tolerance tol{"t", 1e-5, 1e-4};
  EXPECT_TRUE(cmp({100.01}, {100.0}, tol).ok);
  EXPECT_FALSE(cmp({100.011}, {100.0}, tol).ok);
  EXPECT_TRUE(cmp({5e-6}, {0.0}, tol).ok);
  EXPECT_FALSE(cmp({2e-5}, {0.0}, tol).ok);
  const Comparison c = cmp({1.0, 100.005, 3.0}, {1.0, 100.0, 3.0}, tol);
  EXPECT_EQ(c.worst, 1u);
  EXPECT_NEAR(c.ratio, 0.005 / 0.01001, 1e-6);
}

TEST(Compare, NanOnEitherSideFailsAnywhere) {
  for (std::size_t at : {0u, 2u}) {
    std::vector<double> got{1, 2, 3}, want{1, 2, 3};
    got[at] = kNaN;
    EXPECT_FALSE(cmp(got, want, kTolStep).ok) << "NaN got at " << at;
    EXPECT_EQ(cmp(got, want, kTolStep).worst, at);
    EXPECT_FALSE(cmp(want, got, kTolStep).ok) << "NaN want at " << at;
  }
}

TEST(Compare, AnInfinityPassesOnlyAgainstTheSameInfinity) {
  for (const Tolerance& tol : {kTolExact, kTolStep}) {
    SCOPED_TRACE(tol.name);
    // Not only at element 0: a NaN ratio at a later element must not slip past the maximum.
    EXPECT_TRUE(cmp({1.0, kInf, -kInf}, {1.0, kInf, -kInf}, tol).ok);
    EXPECT_FALSE(cmp({1.0, kInf}, {1.0, -kInf}, tol).ok);
    EXPECT_FALSE(cmp({1.0, 1e30}, {1.0, kInf}, tol).ok);
    EXPECT_FALSE(cmp({1.0, kInf}, {1.0, 1e30}, tol).ok);
  }
}
