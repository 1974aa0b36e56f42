// Tests the split down layouts end to end on the CPU: a Q8_0 or Q4_0 down
// projection packed by packSplitDownRows/Scales in a shuffled neuron order,
// then multiplied by splitDownAxpy over neurons grouped by source block, is
// the dense down projection of the same activations (double precision over
// the dequantised source), on both kernel ISAs, for any column range.
#include "codegen/PackedWeights.h"

#include "runtime/ggml_types.h"
#include "runtime/kernels.h"
#include "runtime/program.h"
#include "runtime/sparse_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace pinfer {
namespace {

constexpr int64_t kEmbd = 96, kFF = 128;

class SplitDownLayout : public ::testing::TestWithParam<GGMLType> {};

TEST_P(SplitDownLayout, MatchesDenseDownProjection) {
  const GGMLType type = GetParam();
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
  const size_t qb = transposedDownRowBytes(type, kEmbd);
  std::vector<uint8_t> rows(qb * kFF);
  std::vector<uint16_t> scales(size_t(kFF / 32) * kEmbd);
  packSplitDownRows(down, order, rows.data());
  packSplitDownScales(down, scales.data());

  // Sparse activations by original neuron; a third are exactly zero.
  std::vector<float> act(kFF);
  for (int64_t n = 0; n < kFF; ++n)
    act[n] = n % 3 == 0 ? 0.f : dist(rng);
  // Fired neurons grouped by source block, as the executor does.
  std::vector<uint32_t> gRows, gStart, gBlock;
  std::vector<float> gCoef;
  for (uint32_t blk = 0; blk < kFF / 32; ++blk) {
    uint32_t before = uint32_t(gRows.size());
    for (uint32_t k = 0; k < kFF; ++k)
      if (order[k] / 32 == blk && act[order[k]] != 0.f) {
        gRows.push_back(k);
        gCoef.push_back(act[order[k]]);
      }
    if (gRows.size() > before) {
      gStart.push_back(before);
      gBlock.push_back(blk);
    }
  }
  gStart.push_back(uint32_t(gRows.size()));
  DownGroups groups{gRows.data(), gCoef.data(), gStart.data(), gBlock.data(),
                    int64_t(gBlock.size())};
  SplitDown sd;
  sd.q4 = type == GGMLType::Q4_0;
  sd.rows = rows.data();
  sd.rowBytes = qb;
  sd.scales = scales.data();
  sd.nEmbd = kEmbd;

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

INSTANTIATE_TEST_SUITE_P(Types, SplitDownLayout,
                         ::testing::Values(GGMLType::Q8_0, GGMLType::Q4_0),
                         [](const ::testing::TestParamInfo<GGMLType> &info) {
                           return std::string(typeName(info.param));
                         });

} // namespace
} // namespace pinfer
