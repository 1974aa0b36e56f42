// The block decoders of runtime/quant_blocks.h against a second, independent
// reading of each format: element i of a row computed on its own from the
// block layout of ggml-common.h (which byte, which bits, which sub-block
// scale), as the CUDA prelude's pf_at_* functions read it. Random blocks of
// random bytes (f16 fields set to finite values) must decode bitwise alike,
// through the table's row conversion and through the row axpy.
#include "runtime/decode_blocks_avx2.h"
#include "runtime/kernels.h"
#include "runtime/quant_blocks.h"
#include "runtime/type_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

float h(const uint8_t *p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return fp16ToF32(v);
}

uint32_t le32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
         uint32_t(p[3]) << 24;
}

// Element i of a row of each format.
float atQ4_1(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 32) * 20;
  const int j = i % 32;
  const uint8_t q = b[4 + j % 16];
  return float(j < 16 ? q & 15 : q >> 4) * h(b) + h(b + 2);
}
float atQ5_0(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 32) * 22;
  const int j = i % 32;
  const uint8_t q = b[6 + j % 16];
  const int v = (j < 16 ? q & 15 : q >> 4) | ((le32(b + 2) >> j) & 1) << 4;
  return float(v - 16) * h(b);
}
float atQ5_1(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 32) * 24;
  const int j = i % 32;
  const uint8_t q = b[8 + j % 16];
  const int v = (j < 16 ? q & 15 : q >> 4) | ((le32(b + 4) >> j) & 1) << 4;
  return float(v) * h(b) + h(b + 2);
}
float atQ2_K(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 256) * 84;
  const int e = i % 256, n = e / 128, j = e % 128 / 32, l = e % 32;
  const uint8_t sc = b[e / 16];
  const int q = (b[16 + 32 * n + l] >> (2 * j)) & 3;
  return h(b + 80) * float(sc & 15) * float(q) - h(b + 82) * float(sc >> 4);
}
float atQ3_K(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 256) * 110;
  const int e = i % 256, n = e / 128, j = e % 128 / 32, l = e % 32;
  const int s = e / 16;
  const int lo = s < 8 ? b[96 + s] & 15 : b[96 + s - 8] >> 4;
  const int hi = (b[104 + s % 4] >> (2 * (s / 4))) & 3;
  const int q = ((b[32 + 32 * n + l] >> (2 * j)) & 3) -
                ((b[l] >> (4 * n + j)) & 1 ? 0 : 4);
  return h(b + 108) * float((lo | hi << 4) - 32) * float(q);
}
void scaleMin(int j, const uint8_t *q, int &d, int &m) {
  d = j < 4 ? q[j] & 63 : (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
  m = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | (q[j] >> 6) << 4;
}
float atQ4_K(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 256) * 144;
  const int e = i % 256, g = e / 64, hi = e % 64 / 32, l = e % 32;
  const uint8_t q = b[16 + 32 * g + l];
  int d, m;
  scaleMin(2 * g + hi, b + 4, d, m);
  return h(b) * float(d) * float(hi ? q >> 4 : q & 15) - h(b + 2) * float(m);
}
float atQ5_K(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 256) * 176;
  const int e = i % 256, g = e / 64, hi = e % 64 / 32, l = e % 32;
  const uint8_t q = b[48 + 32 * g + l];
  const int v = (hi ? q >> 4 : q & 15) + ((b[16 + l] >> (2 * g + hi)) & 1) * 16;
  int d, m;
  scaleMin(2 * g + hi, b + 4, d, m);
  return h(b) * float(d) * float(v) - h(b + 2) * float(m);
}
float atQ6_K(const uint8_t *row, int i) {
  const uint8_t *b = row + (i / 256) * 210;
  const int e = i % 256, n = e / 128, k = e % 128 / 32, l = e % 32;
  const uint8_t ql = b[64 * n + l + 32 * (k & 1)];
  const int lo = k >= 2 ? ql >> 4 : ql & 15;
  const int hi = (b[128 + 32 * n + l] >> (2 * k)) & 3;
  const int sc = int8_t(b[192 + 8 * n + l / 16 + 2 * k]);
  return h(b + 208) * float(sc) * float((lo | hi << 4) - 32);
}

struct Format {
  GGMLType type;
  float (*at)(const uint8_t *, int);
  std::vector<int> halfOffsets; // f16 fields within a block
};

const Format kFormats[] = {
    {GGMLType::Q4_1, atQ4_1, {0, 2}}, {GGMLType::Q5_0, atQ5_0, {0}},
    {GGMLType::Q5_1, atQ5_1, {0, 2}}, {GGMLType::Q2_K, atQ2_K, {80, 82}},
    {GGMLType::Q3_K, atQ3_K, {108}},  {GGMLType::Q4_K, atQ4_K, {0, 2}},
    {GGMLType::Q5_K, atQ5_K, {0, 2}}, {GGMLType::Q6_K, atQ6_K, {208}},
};

// Random bytes with every f16 field a finite value of either sign.
std::vector<uint8_t> randomBlocks(const Format &f, int nBlocks, uint32_t seed) {
  const TypeTraits &t = *typeTraits(f.type);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(1e-4f, 2.f);
  std::vector<uint8_t> bytes(size_t(nBlocks) * t.typeSize);
  for (uint8_t &b : bytes)
    b = uint8_t(byte(rng));
  for (int k = 0; k < nBlocks; ++k)
    for (int off : f.halfOffsets) {
      const float v = (byte(rng) & 1 ? -1.f : 1.f) * mag(rng);
      const uint16_t bits = f32ToFp16(v);
      std::memcpy(&bytes[size_t(k) * t.typeSize + off], &bits, 2);
    }
  return bytes;
}

TEST(QuantBlocks, DecodersAgreeWithElementwiseReading) {
  for (const Format &f : kFormats) {
    const TypeTraits &t = *typeTraits(f.type);
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(t.computable);
    const int nBlocks = 64;
    const int64_t n = int64_t(nBlocks) * t.blockSize;
    const std::vector<uint8_t> row = randomBlocks(f, nBlocks, 42 + t.blockSize);
    std::vector<float> dec(n);
    ASSERT_TRUE(dequantizeRow(f.type, row.data(), dec.data(), n));
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(dec[i], f.at(row.data(), int(i))) << "element " << i;
    // The row axpy reads the same values (a = 1 onto zeros is exact).
    std::vector<float> y(n, 0.f);
    t.axpy(row.data(), 1.f, y.data(), t.blockSize, n);
    for (int64_t i = 0; i < t.blockSize; ++i)
      ASSERT_EQ(y[i], 0.f);
    for (int64_t i = t.blockSize; i < n; ++i)
      ASSERT_EQ(y[i], dec[i]) << "element " << i;
  }
}

// The eight scales and mins of a Q4_K/Q5_K block read at once are those
// read one by one, over random scale bytes (every bit pattern of a byte
// appears in each position).
TEST(QuantBlocks, ScalesAndMinsAtOnceAreOneByOne) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20000; ++trial) {
    uint8_t q[12];
    for (uint8_t &b : q)
      b = uint8_t(rng());
    const qblk::ScalesMinsK4 all = qblk::scalesMinsK4(q);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      qblk::scaleMinK4(j, q, sc, m);
      ASSERT_EQ(all.sc[j], sc) << "scale " << j;
      ASSERT_EQ(all.m[j], m) << "min " << j;
    }
  }
}

// Every element of a quantised row decodes to a value its quantiser chose
// from the block's own range: a constant row comes back (nearly) constant,
// and a zero row exactly zero, in every format.
TEST(QuantBlocks, QuantisersKeepDegenerateRows) {
  for (const Format &f : kFormats) {
    const TypeTraits &t = *typeTraits(f.type);
    SCOPED_TRACE(t.name);
    const int64_t n = 2 * t.blockSize;
    std::vector<uint8_t> bytes(rowBytes(f.type, n));
    std::vector<float> x(n, 0.f), back(n, 1.f);
    ASSERT_TRUE(quantizeRow(f.type, x.data(), bytes.data(), n));
    ASSERT_TRUE(dequantizeRow(f.type, bytes.data(), back.data(), n));
    for (float v : back)
      ASSERT_EQ(v, 0.f);
    std::fill(x.begin(), x.end(), -0.75f);
    ASSERT_TRUE(quantizeRow(f.type, x.data(), bytes.data(), n));
    ASSERT_TRUE(dequantizeRow(f.type, bytes.data(), back.data(), n));
    for (float v : back)
      ASSERT_NEAR(v, -0.75f, t.roundTripError * 0.75f);
  }
}

#ifdef PINFER_X86
// The AVX2 f32 products (runtime/decode_blocks_avx2.h) are bitwise the
// decode-then-multiply product over the reference decoders, on random bytes
// (every scale, min and sign the formats can hold) and a random activation.
TEST(QuantBlocks, Avx2F32ProductsAreBitwiseTheDecodedOnes) {
  setKernelIsa(KernelIsa::Avx2);
  const bool avx2 = kernelLevel() == 1;
  setKernelIsa(KernelIsa::Auto);
  if (!avx2)
    GTEST_SKIP() << "no AVX2 on this CPU";
  struct Pair {
    GGMLType type;
    DotFn decoded, fused;
  };
  const Pair pairs[] = {
      {GGMLType::Q2_K,
       dotk::dotBlocksAvx2<qblk::decodeQ2_K, QK_K, sizeof(BlockQ2_K)>,
       dotk::dotK2K3F32Avx2<false>},
      {GGMLType::Q3_K,
       dotk::dotBlocksAvx2<qblk::decodeQ3_K, QK_K, sizeof(BlockQ3_K)>,
       dotk::dotK2K3F32Avx2<true>},
      {GGMLType::Q4_K,
       dotk::dotBlocksAvx2<qblk::decodeQ4_K, QK_K, sizeof(BlockQ4_K)>,
       dotk::dotQ4_KF32Avx2},
      {GGMLType::Q5_K,
       dotk::dotBlocksAvx2<qblk::decodeQ5_K, QK_K, sizeof(BlockQ5_K)>,
       dotk::dotQ5_KF32Avx2},
      {GGMLType::Q6_K,
       dotk::dotBlocksAvx2<qblk::decodeQ6_K, QK_K, sizeof(BlockQ6_K)>,
       dotk::dotQ6_KF32Avx2}};
  for (const Pair &p : pairs) {
    const Format &f =
        *std::find_if(std::begin(kFormats), std::end(kFormats),
                      [&](const Format &g) { return g.type == p.type; });
    const TypeTraits &t = *typeTraits(p.type);
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.avx2.dot, p.fused);
    std::mt19937 rng(3);
    std::normal_distribution<float> dist(0.f, 1.f);
    for (int nBlocks : {1, 3, 8}) {
      const std::vector<uint8_t> row = randomBlocks(f, nBlocks, 7 + nBlocks);
      std::vector<float> x(size_t(nBlocks) * QK_K);
      for (float &v : x)
        v = dist(rng);
      const float want = p.decoded(row.data(), x.data(), int64_t(x.size()));
      const float got = p.fused(row.data(), x.data(), int64_t(x.size()));
      EXPECT_EQ(std::memcmp(&want, &got, sizeof(float)), 0)
          << nBlocks << " blocks: " << got << ", decoded " << want;
    }
  }
}

// The same for the AVX-512 f32 products (runtime/decode_blocks_avx512.h)
// against dotBlocksAvx512's order, one token and four at once.
TEST(QuantBlocks, Avx512F32ProductsAreBitwiseTheDecodedOnes) {
  if (kernelLevel() < 2)
    GTEST_SKIP() << "no AVX-512 VNNI on this CPU (kernels: " << kernelIsaName()
                 << ")";
  struct Pair {
    GGMLType type;
    DotFn decoded, fused;
    Dot4Fn fused4;
  };
  const Pair pairs[] = {
      {GGMLType::Q4_K,
       dotk::dotBlocksAvx512<qblk::decodeQ4_K, QK_K, sizeof(BlockQ4_K)>,
       dotk::dotK4K5F32Avx512<false>, dotk::dotK4K5F32x4Avx512<false>},
      {GGMLType::Q5_K,
       dotk::dotBlocksAvx512<qblk::decodeQ5_K, QK_K, sizeof(BlockQ5_K)>,
       dotk::dotK4K5F32Avx512<true>, dotk::dotK4K5F32x4Avx512<true>},
      {GGMLType::Q6_K,
       dotk::dotBlocksAvx512<qblk::decodeQ6_K, QK_K, sizeof(BlockQ6_K)>,
       dotk::dotQ6_KF32Avx512, dotk::dotQ6_KF32x4Avx512}};
  for (const Pair &p : pairs) {
    const Format &f =
        *std::find_if(std::begin(kFormats), std::end(kFormats),
                      [&](const Format &g) { return g.type == p.type; });
    const TypeTraits &t = *typeTraits(p.type);
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.avx512.dot, p.fused);
    EXPECT_EQ(t.avx512.dot4, p.fused4);
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.f, 1.f);
    for (int nBlocks : {1, 3, 8}) {
      const std::vector<uint8_t> row = randomBlocks(f, nBlocks, 9 + nBlocks);
      const int64_t n = int64_t(nBlocks) * QK_K;
      std::vector<float> x(size_t(n) * kTokensAtOnce);
      for (float &v : x)
        v = dist(rng);
      float four[kTokensAtOnce];
      p.fused4(row.data(), x.data(), n, n, four);
      for (int tok = 0; tok < kTokensAtOnce; ++tok) {
        const float *xt = x.data() + tok * n;
        const float want = p.decoded(row.data(), xt, n);
        const float got = p.fused(row.data(), xt, n);
        EXPECT_EQ(std::memcmp(&want, &got, sizeof(float)), 0)
            << nBlocks << " blocks: " << got << ", decoded " << want;
        EXPECT_EQ(std::memcmp(&want, &four[tok], sizeof(float)), 0)
            << nBlocks << " blocks, token " << tok << " of four";
      }
    }
  }
}
#endif

// The 8-bit-activation products of every format, at every kernel level
// this CPU runs, against the element-wise reading times the quantised
// activation, summed in double: the integer sums are exact, so only the f32
// accumulation of the block sums may differ.
TEST(QuantBlocks, Q8ActProductsAgreeWithElementwiseReading) {
  for (KernelIsa isa : {KernelIsa::Scalar, KernelIsa::Avx2, KernelIsa::Auto}) {
    setKernelIsa(isa);
    for (const Format &f : kFormats) {
      const TypeTraits &t = *typeTraits(f.type);
      SCOPED_TRACE(std::string(t.name) + " at " + kernelIsaName());
      ASSERT_TRUE(usesQ8Act(f.type));
      const int nBlocks = 8;
      const int64_t n = int64_t(nBlocks) * t.blockSize;
      const std::vector<uint8_t> row = randomBlocks(f, nBlocks, 99);
      std::mt19937 rng(5);
      std::normal_distribution<float> dist(0.f, 2.f);
      std::vector<float> x(n);
      for (float &v : x)
        v = dist(rng);
      // An activation block at +-127 throughout: the largest integer sums.
      for (int j = 0; j < QK8_0; ++j)
        x[j] = j % 3 ? 4.f : -4.f;
      std::vector<BlockQ8Act> xq(n / QK8_0);
      quantizeActQ8(x.data(), xq.data(), n);
      double want = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double a = double(xq[i / QK8_0].d) * xq[i / QK8_0].qs[i % QK8_0];
        want += double(f.at(row.data(), int(i))) * a;
        mag += std::fabs(double(f.at(row.data(), int(i))) * a);
      }
      const float got = dotQ8ActKernel(f.type)(row.data(), xq.data(), n);
      EXPECT_NEAR(got, want, 1e-5 * mag);
    }
  }
  setKernelIsa(KernelIsa::Auto);
}

} // namespace
