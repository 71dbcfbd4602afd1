// The specified RNG: reproducible, unbiased enough for shuffles, and Fisher-Yates is a permutation.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "mnist_gpu/rng.hpp"

using mnist_gpu::Rng;
using mnist_gpu::RngStream;

TEST(Rng, SameSeedSameSequenceOtherStreamOtherSequence) {
  Rng a(7), b(7), c(7, RngStream::shuffle), d(8);
  bool differs_c = false, differs_d = false;
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    differs_c |= x != c.next_u64();
    differs_d |= x != d.next_u64();
  }
  EXPECT_TRUE(differs_c);
  EXPECT_TRUE(differs_d);
}

TEST(Rng, ShuffleIsAPermutationAndMoves) {
  std::vector<int> v(1000);
  std::iota(v.begin(), v.end(), 0);
  Rng r(1, RngStream::shuffle);
  r.shuffle(v);
  int fixed = 0;
  for (int i = 0; i < 1000; ++i) fixed += v[i] == i;
  EXPECT_LT(fixed, 10);  // expected ~1 fixed point for a uniform permutation
  std::sort(v.begin(), v.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[i], i);
}

TEST(Rng, UniformAndNormalMoments) {
  Rng r(3);
  double su = 0, sn = 0, sn2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u;
    const double z = r.normal();
    sn += z;
    sn2 += z * z;
  }
  // Standard errors: uniform mean 0.29/sqrt(n) ~ 6.5e-4; normal mean 2.2e-3; variance 3.2e-3.
  EXPECT_NEAR(su / n, 0.5, 5e-3);
  EXPECT_NEAR(sn / n, 0.0, 1.5e-2);
  EXPECT_NEAR(sn2 / n, 1.0, 2e-2);
}

TEST(Rng, BelowCoversRangeUniformly) {
  Rng r(11);
  int counts[10] = {};
  for (int i = 0; i < 100000; ++i) counts[r.below(10)]++;
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);  // 5 standard deviations (sd ~ 95)
}
