// The dot products as generated executables get them: instantiated from
// runtime/ffn_cpu.h in code compiled for this CPU (-march=native, as
// pinferc compiles host code by default), inlined into a loop over rows.
// They must be bitwise the runtime's, reached through the type table at
// the level the runtime picked for this CPU: an executable's specialised
// gate/up loop is used only on that promise (Executor, cpuGateUpLevel),
// and a compiler contracting a kernel's float expressions differently
// where it is inlined breaks it.
#include "runtime/ffn_cpu.h"
#include "runtime/kernels.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

template <GGMLType T, int64_t N> void expectBitwise(int rows) {
  std::mt19937 rng(N + int(T));
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> w(size_t(rows) * N), x(N);
  for (float &v : w)
    v = dist(rng);
  for (float &v : x)
    v = 3.f * dist(rng);
  const size_t rb = rowBytes(T, N);
  std::vector<uint8_t> packed(rb * rows);
  for (int r = 0; r < rows; ++r)
    ASSERT_TRUE(quantizeRow(T, w.data() + size_t(r) * N,
                            packed.data() + r * rb, N));
  std::vector<BlockQ8Act> xq(N / QK8_0);
  quantizeActQ8(x.data(), xq.data(), N);
  // And in pairs of blocks, which the K-quants read at the AVX-512 level.
  std::vector<ActPairQ8> pairs;
  std::vector<float> scales;
  if ((N / QK8_0) % 8 == 0)
    pairActivations(xq.data(), N / QK8_0, 1, pairs, scales);
  GateUpArgs blocks, paired;
  blocks.x = paired.x = x.data();
  blocks.xq = paired.xq = xq.data();
  paired.xp = pairs.empty() ? nullptr : pairs.data();
  paired.xpScales = scales.empty() ? nullptr : scales.data();
  std::vector<float> inlined(rows), runtime(rows), inlinedPairs(rows);
  for (int r = 0; r < rows; ++r) {
    inlined[r] = ffnDot<T, N>(packed.data() + r * rb, blocks);
    inlinedPairs[r] = ffnDot<T, N>(packed.data() + r * rb, paired);
  }
  for (int r = 0; r < rows; ++r)
    runtime[r] =
        usesQ8Act(T)
            ? dotQ8ActKernel(T)(packed.data() + r * rb, xq.data(), N)
            : dotKernel(T)(packed.data() + r * rb, x.data(), N);
  for (int r = 0; r < rows; ++r)
    EXPECT_EQ(std::memcmp(&inlined[r], &runtime[r], sizeof(float)), 0)
        << typeName(T) << " n=" << N << " row " << r << ": " << inlined[r]
        << " inlined, " << runtime[r] << " through the table";
  for (int r = 0; r < rows; ++r)
    EXPECT_EQ(std::memcmp(&inlinedPairs[r], &runtime[r], sizeof(float)), 0)
        << typeName(T) << " n=" << N << " row " << r << ": " << inlinedPairs[r]
        << " inlined from pairs, " << runtime[r] << " through the table";
}

TEST(KernelsInlined, BitwiseTheRuntimesAtItsLevel) {
  setKernelIsa(KernelIsa::Auto);
  if (kernelLevel() != PINFER_FFN_LEVEL)
    GTEST_SKIP() << "compiled for kernel level " << PINFER_FFN_LEVEL
                 << ", the runtime picked " << kernelIsaName();
  std::cerr << "kernels: " << kernelIsaName() << "\n";
  // Even and odd block counts, Gemma 3 270M's and LLaMA-1B's widths.
  expectBitwise<GGMLType::Q8_0, 640>(64);
  expectBitwise<GGMLType::Q8_0, 96>(64);
  expectBitwise<GGMLType::Q8_0, 2048>(32);
  expectBitwise<GGMLType::Q4_0, 640>(64);
  expectBitwise<GGMLType::Q4_0, 96>(64);
  expectBitwise<GGMLType::Q4_0, 2048>(32);
  expectBitwise<GGMLType::Q5_0, 640>(64);
  expectBitwise<GGMLType::F16, 640>(64);
  expectBitwise<GGMLType::Q4_K, 2048>(32);
  expectBitwise<GGMLType::Q5_K, 1024>(32);
  expectBitwise<GGMLType::Q6_K, 1024>(32);
  expectBitwise<GGMLType::Q2_K, 512>(32);
  expectBitwise<GGMLType::Q3_K, 512>(32);
  expectBitwise<GGMLType::Q4_1, 640>(32);
  expectBitwise<GGMLType::Q5_1, 640>(32);
}

} // namespace
