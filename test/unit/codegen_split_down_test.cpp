// Tests the split down layouts end to end on the CPU: a block-type down
// projection (Q8_0/Q4_0: SplitQ8/SplitQ4; Q4_1, Q5_x and the K-quants:
// SplitK) packed by packSplitDownRows/Scales or packSplitKRows/Table in a
// shuffled neuron order, then multiplied by splitDownAxpy over neurons
// grouped by source block (SplitK: group), is the dense down projection of
// the same activations (double precision over the dequantised source), on
// every kernel ISA, for any column range; and that each type's SplitK
// numbers decode to its decoder's values.
#include "codegen/PackedWeights.h"

#include "runtime/ggml_types.h"
#include "runtime/kernels.h"
#include "runtime/program.h"
#include "runtime/sparse_kernels.h"
#include "test/unit/split_down_pack.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace pinfer {
namespace {

constexpr int64_t kFF = 512;

// A type and an n_embd (SplitK takes one that is no multiple of 32).
using Case = std::pair<GGMLType, int64_t>;
class SplitDownLayout : public ::testing::TestWithParam<Case> {};

TEST_P(SplitDownLayout, MatchesDenseDownProjection) {
  const auto [type, kEmbd] = GetParam();
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.f, 1.f);
  // The source {n_ff, n_embd}: kEmbd rows of kFF elements.
  std::vector<float> src(size_t(kEmbd) * kFF);
  for (float &v : src)
    v = dist(rng);
  const size_t rb = rowBytes(type, kFF);
  std::vector<uint8_t> bytes(rb * kEmbd);
  std::vector<float> deq(src.size());
  for (int64_t e = 0; e < kEmbd; ++e) {
    quantizeRow(type, src.data() + e * kFF, bytes.data() + e * rb, kFF);
    dequantizeRow(type, bytes.data() + e * rb, deq.data() + e * kFF, kFF);
  }
  Weight down{"down", type, kFF, kEmbd, rb, bytes.data()};

  std::vector<uint32_t> order(kFF);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), rng);
  const testutil::PackedSplitDown packed(down, order);

  // Sparse activations by original neuron; a third are exactly zero.
  std::vector<float> act(kFF), coef(kFF);
  for (int64_t n = 0; n < kFF; ++n)
    act[n] = n % 3 == 0 ? 0.f : dist(rng);
  for (int64_t k = 0; k < kFF; ++k)
    coef[k] = act[order[k]];
  // Fired neurons grouped by source block, as the executor does.
  const testutil::FiredGroups fired(order, coef.data(), packed.group);
  const DownGroups groups = fired.groups();
  const SplitDown &sd = packed.split;

  std::vector<double> want(kEmbd, 0.0);
  double mag = 0;
  for (int64_t e = 0; e < kEmbd; ++e)
    for (int64_t n = 0; n < kFF; ++n) {
      want[e] += double(deq[e * kFF + n]) * act[n];
      mag += std::fabs(double(deq[e * kFF + n]) * act[n]);
    }
  std::vector<float> avx2;
  for (KernelIsa isa : {KernelIsa::Avx2, KernelIsa::Auto, KernelIsa::Scalar}) {
    setKernelIsa(isa);
    // The whole range, then two pieces that must add up the same way.
    std::vector<float> y(kEmbd, 1.f), parts(kEmbd, 1.f);
    splitDownAxpy(sd, groups, y.data(), 0, kEmbd);
    splitDownAxpy(sd, groups, parts.data(), 0, 32);
    splitDownAxpy(sd, groups, parts.data(), 32, kEmbd);
    for (int64_t e = 0; e < kEmbd; ++e) {
      EXPECT_NEAR(y[e] - 1.0, want[e], 1e-5 * mag / kEmbd)
          << typeName(type) << " " << kernelIsaName() << " output " << e;
      EXPECT_EQ(parts[e], y[e]) << "output " << e;
    }
    // The AVX-512 level multiplies as the AVX2 level, bitwise.
    if (isa == KernelIsa::Avx2 && kernelIsaIsAvx2())
      avx2 = y;
    if (isa == KernelIsa::Auto && !avx2.empty())
      for (int64_t e = 0; e < kEmbd; ++e)
        EXPECT_EQ(y[e], avx2[e]) << kernelIsaName() << " output " << e;
  }
  setKernelIsa(KernelIsa::Auto);
}

// Tests that every SplitK type's numbers give its decoder's values:
// (d * sc) * q + dm * m for each element of random blocks, within the
// rounding of one product where the compiler fuses it.
TEST(SplitKBlocks, DecodeAsTheTypesDecoder) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.f, 1.f);
  int types = 0;
  for (uint32_t n = 0; n < 64; ++n) {
    const TypeTraits *t = typeTraits(n);
    if (!t || downLayoutFor(GGMLType(n)) != DownLayout::SplitK)
      continue;
    ++types;
    const GGMLType type = GGMLType(n);
    EXPECT_TRUE(t->splitK.group == 16 || t->splitK.group == 32) << t->name;
    EXPECT_EQ(t->blockSize % t->splitK.group, 0u) << t->name;
    std::vector<float> x(t->blockSize * 8), deq(x.size());
    for (float &v : x)
      v = dist(rng) * (1.f + float(rng() % 8));
    std::vector<uint8_t> q(rowBytes(type, int64_t(x.size())));
    quantizeRow(type, x.data(), q.data(), int64_t(x.size()));
    dequantizeRow(type, q.data(), deq.data(), int64_t(x.size()));
    for (size_t b = 0; b < x.size() / t->blockSize; ++b) {
      SplitKBlock k;
      t->splitK.block(q.data() + b * t->typeSize, k);
      if (!t->splitK.mins)
        EXPECT_EQ(k.dm, 0.f) << t->name;
      for (uint32_t i = 0; i < t->blockSize; ++i) {
        const uint32_t g = i / t->splitK.group;
        const float a = k.d * float(k.sc[g]);
        const float w =
            a * float(k.q[i]) + (t->splitK.mins ? k.dm * float(k.m[g]) : 0.f);
        const float want = deq[b * t->blockSize + i];
        EXPECT_NEAR(w, want, 1e-6f * (std::fabs(a) * 64 + std::fabs(want)))
            << t->name << " block " << b << " element " << i;
      }
    }
  }
  EXPECT_EQ(types, 8);
}

INSTANTIATE_TEST_SUITE_P(
    Types, SplitDownLayout,
    ::testing::Values(Case{GGMLType::Q8_0, 96}, Case{GGMLType::Q4_0, 96},
                      Case{GGMLType::Q4_1, 96}, Case{GGMLType::Q5_0, 96},
                      Case{GGMLType::Q5_1, 96}, Case{GGMLType::Q2_K, 96},
                      Case{GGMLType::Q3_K, 96}, Case{GGMLType::Q4_K, 96},
                      Case{GGMLType::Q5_K, 96}, Case{GGMLType::Q6_K, 96},
                      Case{GGMLType::Q4_K, 100}, Case{GGMLType::Q6_K, 70}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return std::string(typeName(info.param.first)) + "_" +
             std::to_string(info.param.second);
    });

} // namespace
} // namespace pinfer
