// Tests the quantised-activation CPU kernels (quantizeActQ8, the integer
// dot products of every type that multiplies 8-bit activations, matvecs)
// against double precision, with the error bound that follows from quantising
// the activation: each element moves by at most half a step of its block's
// scale.
#include "runtime/kernels.h"

#include "runtime/ggml_types.h"
#include "runtime/model.h"
#include "runtime/thread_pool.h"
#include "runtime/type_table.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

std::vector<float> randomVector(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

std::vector<uint8_t> encodeRows(GGMLType type, const std::vector<float> &values,
                                int64_t cols) {
  int64_t rows = int64_t(values.size()) / cols;
  size_t rb = rowBytes(type, cols);
  std::vector<uint8_t> out(rb * rows);
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_TRUE(
        quantizeRow(type, values.data() + r * cols, out.data() + r * rb, cols));
  return out;
}

// The types whose products multiply an 8-bit activation (the row's
// ActFormat), in table order.
std::vector<GGMLType> q8ActTypes() {
  std::vector<GGMLType> out;
  for (uint32_t i = 0; i < kNumTypes; ++i)
    if (usesQ8Act(GGMLType(i)))
      out.push_back(GGMLType(i));
  return out;
}

// A weight over `data`: nRows rows of `cols` elements of `type`.
Weight weightOver(GGMLType type, int64_t cols, int64_t nRows,
                  const std::vector<uint8_t> &data) {
  Weight w;
  w.type = type;
  w.rows = nRows;
  w.cols = cols;
  w.rowBytes = rowBytes(type, cols);
  w.data = data.data();
  return w;
}

// kTokensAtOnce random tokens of n activations, back to back, and their
// quantised copies (n / QK8_0 blocks each).
struct Tokens {
  std::vector<float> x;
  std::vector<BlockQ8Act> xq;
};
Tokens randomTokens(int64_t n, uint32_t seed) {
  Tokens t{randomVector(size_t(n) * kTokensAtOnce, seed),
           std::vector<BlockQ8Act>(size_t(n / QK8_0) * kTokensAtOnce)};
  for (int k = 0; k < kTokensAtOnce; ++k)
    quantizeActQ8(t.x.data() + k * n, t.xq.data() + k * (n / QK8_0), n);
  return t;
}

struct IsaGuard {
  explicit IsaGuard(KernelIsa isa) { setKernelIsa(isa); }
  ~IsaGuard() { setKernelIsa(KernelIsa::Auto); }
};

} // namespace

// Tests that every quantised element is within half a step of the input,
// codes stay in [-127, 127], each block's largest magnitude maps to +-127,
// and an all-zero block gives scale 0 and zero codes.
TEST(KernelsFast, QuantizeActQ8IsWithinHalfAStep) {
  std::vector<float> x = randomVector(4096, 7, 3.f);
  for (int j = 64; j < 96; ++j)
    x[j] = 0.f;    // block 2: all zeros
  x[200] = 1000.f; // an outlier, as real activations have
  std::vector<BlockQ8Act> q(x.size() / QK8_0);
  quantizeActQ8(x.data(), q.data(), int64_t(x.size()));
  for (size_t b = 0; b < q.size(); ++b) {
    float amax = 0;
    int qmax = 0;
    for (int j = 0; j < QK8_0; ++j) {
      float v = x[b * QK8_0 + j];
      amax = std::max(amax, std::fabs(v));
      qmax = std::max(qmax, std::abs(int(q[b].qs[j])));
      ASSERT_LE(std::abs(int(q[b].qs[j])), 127);
      EXPECT_LE(std::fabs(double(q[b].d) * q[b].qs[j] - v),
                0.5 * q[b].d * (1 + 1e-5))
          << "block " << b << " element " << j;
    }
    EXPECT_NEAR(q[b].d, amax / 127.f, 1e-6 * amax) << b;
    EXPECT_EQ(qmax, amax > 0 ? 127 : 0) << b;
  }
  EXPECT_EQ(q[2].d, 0.f);
}

// Tests that the vector quantisers give the portable loop's blocks bit for
// bit: codes, scales and sums, on random blocks, an all-zero block, an
// outlier, negative maxima, and values at exact half steps (127 / 2 k
// scaled by the block's maximum: ties, which both round to even).
TEST(KernelsFast, QuantizeActQ8IsBitwiseOnEveryIsa) {
  std::vector<float> x = randomVector(64 * QK8_0, 12, 2.f);
  for (int j = 64; j < 96; ++j)
    x[j] = 0.f;
  x[300] = -1000.f;
  // Block 5: maximum 127 (scale 1), so k + 0.5 is a tie for each k.
  for (int j = 0; j < QK8_0; ++j)
    x[5 * QK8_0 + j] = j == 0 ? 127.f : float(j % 2 ? -1 : 1) * (j + 0.5f);
  std::vector<BlockQ8Act> want(x.size() / QK8_0), got(want.size());
  {
    IsaGuard guard(KernelIsa::Scalar);
    quantizeActQ8(x.data(), want.data(), int64_t(x.size()));
  }
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Avx2}) {
    IsaGuard guard(isa);
    std::fill(got.begin(), got.end(), BlockQ8Act{});
    quantizeActQ8(x.data(), got.data(), int64_t(x.size()));
    for (size_t b = 0; b < want.size(); ++b)
      EXPECT_EQ(std::memcmp(&want[b], &got[b], sizeof(BlockQ8Act)), 0)
          << kernelIsaName() << " block " << b << ": scale " << got[b].d
          << " vs " << want[b].d << ", sum " << got[b].s << " vs " << want[b].s;
  }
  EXPECT_EQ(want[5].qs[1], -2); // -1.5 rounds to the even -2
  EXPECT_EQ(want[5].qs[2], 2);  // 2.5 to 2
}

// Tests the Q8_0 and Q4_0 quantised-activation dot products, on both ISAs,
// against the double-precision product of the dequantised row and the f32
// activation. Bound: sum over blocks of d_x/2 * sum |w| (activation
// quantisation) plus 1e-5 * sum |w x| (f32 rounding). For Gaussian inputs
// half a step is ~1 % of a typical |x| (up to ~2 % in a single block), so the
// bound must stay below 3 % of sum |w x| (it is not vacuous). The per-element
// errors have random signs, so on rows of >= 2048 elements the actual error
// must also be below a fifth of the worst case (its expected share is ~1/50).
TEST(KernelsFast, DotWithinActivationQuantisationBound) {
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Avx2, KernelIsa::Scalar}) {
    IsaGuard guard(isa);
    for (GGMLType type : q8ActTypes()) {
      DotQ8ActFn dot = dotQ8ActKernel(type);
      ASSERT_NE(dot, nullptr);
      for (int64_t n : {32, 64, 96, 256, 768, 2048, 5632}) {
        if (n % typeTraits(type)->blockSize)
          continue;
        for (uint32_t seed = 1; seed <= 5; ++seed) {
          std::vector<float> w = randomVector(n, seed),
                             x = randomVector(n, 100 + seed, 2.f);
          std::vector<uint8_t> row = encodeRows(type, w, n);
          std::vector<float> wd(n);
          rowToF32(type, row.data(), wd.data(), n);
          std::vector<BlockQ8Act> q(n / QK8_0);
          quantizeActQ8(x.data(), q.data(), n);
          double exact = 0, mag = 0, bound = 0;
          for (int64_t i = 0; i < n; ++i) {
            exact += double(wd[i]) * x[i];
            mag += std::fabs(double(wd[i]) * x[i]);
            bound += 0.5 * q[i / QK8_0].d * std::fabs(wd[i]);
          }
          EXPECT_LT(bound, 3e-2 * mag);
          double got = dot(row.data(), q.data(), n);
          EXPECT_LE(std::fabs(got - exact), bound + 1e-5 * mag)
              << typeName(type) << " n=" << n << " seed=" << seed << " isa "
              << kernelIsaName();
          if (n >= 2048) {
            EXPECT_LT(std::fabs(got - exact), 0.2 * bound)
                << typeName(type) << " n=" << n << " seed=" << seed;
          }
        }
      }
    }
    EXPECT_EQ(dotQ8ActKernel(GGMLType::F16), nullptr);
  }
}

// sum |w_i * x_i| over the dequantised row and the 8-bit activation: the
// scale of a quantised-activation product's rounding.
static double blockProductMagnitude(GGMLType type,
                                    const std::vector<uint8_t> &row,
                                    const std::vector<BlockQ8Act> &q,
                                    int64_t n) {
  std::vector<float> wd(n);
  rowToF32(type, row.data(), wd.data(), n);
  double mag = 0;
  for (int64_t i = 0; i < n; ++i)
    mag +=
        std::fabs(double(wd[i]) * q[i / QK8_0].d * q[i / QK8_0].qs[i % QK8_0]);
  return mag;
}

// Tests that the AVX2 and the portable quantised-activation kernels agree:
// the per-block integer sums are exact in both, so only the order of the f32
// accumulation differs (bound 1e-6 of sum |scaled block sums|).
TEST(KernelsFast, Avx2MatchesScalar) {
  setKernelIsa(KernelIsa::Avx2);
  if (kernelLevel() != 1) {
    setKernelIsa(KernelIsa::Auto);
    GTEST_SKIP() << "no AVX2 on this CPU";
  }
  const int64_t n = 4096;
  for (GGMLType type : q8ActTypes()) {
    std::vector<float> w = randomVector(n, 11), x = randomVector(n, 12);
    // The first super-block at the integer extremes: weights at +-max
    // (the largest quants of every format) against activations of +-127
    // of the same sign, where the int16 pair sums are largest.
    for (int j = 0; j < 256; ++j) {
      w[j] = j % 5 ? 1.f : -1.f;
      x[j] = w[j];
    }
    std::vector<uint8_t> row = encodeRows(type, w, n);
    std::vector<BlockQ8Act> q(n / QK8_0);
    quantizeActQ8(x.data(), q.data(), n);
    setKernelIsa(KernelIsa::Avx2);
    float fast = dotQ8ActKernel(type)(row.data(), q.data(), n);
    float ref;
    {
      IsaGuard guard(KernelIsa::Scalar);
      ref = dotQ8ActKernel(type)(row.data(), q.data(), n);
    }
    const double mag = blockProductMagnitude(type, row, q, n);
    EXPECT_NEAR(fast, ref, 1e-6 * mag) << typeName(type);
  }
  setKernelIsa(KernelIsa::Auto);
}

// Tests that the AVX-512 VNNI kernels agree with the portable ones as the
// AVX2 ones do (exact per-block integer sums, only the f32 accumulation
// order differs), over odd and even block counts (the pair loop's tail),
// with blocks at the integer extremes; and with the AVX2 ones. Every type
// with kernels of its own at that level: Q8_0, Q4_0, Q5_0 and the K-quants.
TEST(KernelsFast, Avx512VnniMatchesScalar) {
  setKernelIsa(KernelIsa::Auto);
  if (kernelLevel() < 2)
    GTEST_SKIP() << "no AVX-512 VNNI on this CPU (kernels: " << kernelIsaName()
                 << ")";
  int checked = 0;
  for (int64_t n : {32, 96, 256, 768, 4096, 5632}) {
    for (GGMLType type : q8ActTypes()) {
      if (!typeTraits(type)->hasAvx512 || n % typeTraits(type)->blockSize)
        continue;
      ++checked;
      std::vector<float> w = randomVector(n, 21), x = randomVector(n, 22);
      // Extremes: a block of +/-max weights against +/-max activations.
      for (int j = 0; j < 32; ++j) {
        w[j] = j % 2 ? 1.f : -1.f;
        x[j] = j % 3 ? -1.f : 1.f;
      }
      // Then blocks of one outlier and near-zero weights (quants of 0 and
      // +/-1), where the kernels' offset (+128 for Q8_0) dwarfs the sum.
      for (int64_t j = 32; j < n; ++j)
        w[j] = j % 32 == 5 ? 50.f : 0.2f * w[j];
      std::vector<uint8_t> row = encodeRows(type, w, n);
      std::vector<BlockQ8Act> q(n / QK8_0);
      quantizeActQ8(x.data(), q.data(), n);
      setKernelIsa(KernelIsa::Auto);
      const float wide = dotQ8ActKernel(type)(row.data(), q.data(), n);
      setKernelIsa(KernelIsa::Avx2);
      const float avx2 = dotQ8ActKernel(type)(row.data(), q.data(), n);
      setKernelIsa(KernelIsa::Scalar);
      const float ref = dotQ8ActKernel(type)(row.data(), q.data(), n);
      setKernelIsa(KernelIsa::Auto);
      const double mag = blockProductMagnitude(type, row, q, n);
      EXPECT_NEAR(wide, ref, 1e-6 * mag) << typeName(type) << " n=" << n;
      EXPECT_NEAR(wide, avx2, 1e-6 * mag) << typeName(type) << " n=" << n;
    }
  }
  // Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K at each length they divide.
  EXPECT_EQ(checked, 3 * 6 + 3 * 4);
}

// Tests that every kernel taking kTokensAtOnce tokens at once gives each
// token bitwise its one-token product, at every level this CPU runs, with
// quantised and with f32 activations, over even and odd block counts.
TEST(KernelsFast, SeveralTokensAtOnceAreBitwiseOneByOne) {
  int checked = 0;
  for (KernelIsa isa : {KernelIsa::Scalar, KernelIsa::Avx2, KernelIsa::Auto}) {
    IsaGuard guard(isa);
    for (uint32_t i = 0; i < kNumTypes; ++i) {
      const GGMLType type = GGMLType(i);
      if (!isComputable(type))
        continue;
      const int64_t n = typeTraits(type)->blockSize == 1 ? 96 : 768;
      for (bool quantised : {true, false}) {
        const RowDot dot = quantised ? rowDot(type) : rowDot(type).withF32Act();
        if (quantised && !dot.q8)
          continue;
        if (!dot.hasX4())
          continue;
        std::vector<uint8_t> row = encodeRows(type, randomVector(n, 31), n);
        const auto [x, xq] = randomTokens(n, 32);
        float got[kTokensAtOnce];
        dot.x4(row.data(), x.data(), n, xq.data(), n / QK8_0, n, got);
        for (int t = 0; t < kTokensAtOnce; ++t) {
          const float one =
              dot(row.data(), x.data() + t * n, xq.data() + t * (n / QK8_0), n);
          EXPECT_EQ(std::memcmp(&one, &got[t], sizeof(float)), 0)
              << typeName(type) << (quantised ? " q8" : " f32") << " at "
              << kernelIsaName() << " token " << t << ": " << got[t] << " vs "
              << one;
        }
        ++checked;
      }
    }
  }
  // The AVX-512 level (where this CPU has it) for Q8_0, Q4_0 and the
  // K-quants, whose one-token kernels are their own there.
  setKernelIsa(KernelIsa::Auto);
  if (kernelLevel() == 2) {
    EXPECT_TRUE(rowDot(GGMLType::Q8_0).hasX4());
    EXPECT_TRUE(rowDot(GGMLType::Q4_0).hasX4());
    EXPECT_TRUE(rowDot(GGMLType::Q4_K).hasX4());
    EXPECT_TRUE(rowDot(GGMLType::Q6_K).hasX4());
    EXPECT_TRUE(rowDot(GGMLType::F16).hasX4());
  }
  // The AVX2 level has them for the types of common downloads.
  setKernelIsa(KernelIsa::Avx2);
  if (kernelLevel() == 1) {
    EXPECT_TRUE(rowDot(GGMLType::Q8_0).hasX4());
    EXPECT_TRUE(rowDot(GGMLType::Q5_0).hasX4());
    EXPECT_TRUE(rowDot(GGMLType::Q4_K).hasX4());
    EXPECT_TRUE(rowDot(GGMLType::Q6_K).hasX4());
    EXPECT_GT(checked, 0);
  }
  setKernelIsa(KernelIsa::Auto);
}

// Tests that a row unpacked once (RowDot::prepare) gives each token bitwise
// the product of the row as stored, one token and four at once, over odd
// and even block counts, at every level this CPU runs; and that the AVX2
// level prepares the offset formats (Q4_0, Q5_0, Q4_1, Q5_1).
TEST(KernelsFast, PreparedRowsAreBitwiseTheStoredOnes) {
  int checked = 0;
  for (KernelIsa isa : {KernelIsa::Avx2, KernelIsa::Auto}) {
    IsaGuard guard(isa);
    for (uint32_t i = 0; i < kNumTypes; ++i) {
      const GGMLType type = GGMLType(i);
      if (!isComputable(type))
        continue;
      const RowDot dot = rowDot(type);
      if (!dot.preparesFor(2 * kTokensAtOnce))
        continue;
      for (int64_t n : {int64_t(96), int64_t(768)}) {
        std::vector<uint8_t> row = encodeRows(type, randomVector(n, 41), n);
        const auto [x, xq] = randomTokens(n, 42);
        std::vector<PreparedBlock> prepared(size_t(n / QK8_0));
        dot.prepare(row.data(), n, prepared.data());
        const RowDot pd = dot.prepared();
        const uint8_t *prow =
            reinterpret_cast<const uint8_t *>(prepared.data());
        float want[kTokensAtOnce], got[kTokensAtOnce];
        dot.x4(row.data(), x.data(), n, xq.data(), n / QK8_0, n, want);
        pd.x4(prow, x.data(), n, xq.data(), n / QK8_0, n, got);
        EXPECT_EQ(std::memcmp(want, got, sizeof want), 0)
            << typeName(type) << " at " << kernelIsaName() << " n=" << n;
        for (int t = 0; t < kTokensAtOnce; ++t) {
          const float one = dot(row.data(), nullptr,
                                xq.data() + t * (n / QK8_0), n),
                      prep = pd(prow, nullptr, xq.data() + t * (n / QK8_0), n);
          EXPECT_EQ(std::memcmp(&one, &prep, sizeof one), 0)
              << typeName(type) << " at " << kernelIsaName() << " n=" << n
              << " token " << t;
        }
        ++checked;
      }
    }
  }
  setKernelIsa(KernelIsa::Avx2);
  if (kernelLevel() == 1) {
    for (GGMLType t :
         {GGMLType::Q4_0, GGMLType::Q5_0, GGMLType::Q4_1, GGMLType::Q5_1})
      EXPECT_TRUE(rowDot(t).preparesFor(2 * kTokensAtOnce)) << typeName(t);
    EXPECT_GE(checked, 8);
  }
  setKernelIsa(KernelIsa::Auto);
}

// Tests that the multi-row kernels give each row and token bitwise its
// one-row, one-token product, over rows with an odd number of blocks (the
// AVX-512 kernels go in pairs of blocks), and that matvecRows, which uses
// them for whole groups of rows, gives the same as token by token with a
// row range that leaves a remainder.
TEST(KernelsFast, SeveralRowsAtOnceAreBitwiseOneByOne) {
  int checked = 0;
  for (uint32_t i = 0; i < kNumTypes; ++i) {
    const GGMLType type = GGMLType(i);
    if (!isComputable(type))
      continue;
    // 9 blocks of 32 (an odd count) or 2 super-blocks of 256.
    const uint32_t qk = typeTraits(type)->blockSize;
    const int64_t n = qk == 1 ? 96 : qk == QK_K ? 2 * QK_K : 288;
    for (bool quantised : {true, false}) {
      const RowDot dot = quantised ? rowDot(type) : rowDot(type).withF32Act();
      if (quantised && !dot.q8)
        continue;
      if (!dot.hasRows())
        continue;
      const size_t rb = rowBytes(type, n);
      std::vector<uint8_t> rows =
          encodeRows(type, randomVector(size_t(n) * kRowsAtOnce, 41), n);
      const auto [x, xq] = randomTokens(n, 42);
      float got[kRowsAtOnce * kTokensAtOnce];
      dot.rows(rows.data(), int64_t(rb), x.data(), n, xq.data(), n / QK8_0, n,
               got);
      for (int r = 0; r < kRowsAtOnce; ++r)
        for (int t = 0; t < kTokensAtOnce; ++t) {
          const float one = dot(rows.data() + r * rb, x.data() + t * n,
                                xq.data() + t * (n / QK8_0), n);
          const float &g = got[t * kRowsAtOnce + r];
          EXPECT_EQ(std::memcmp(&one, &g, sizeof(float)), 0)
              << typeName(type) << (quantised ? " q8" : " f32") << " row " << r
              << " token " << t << ": " << g << " vs " << one;
        }
      ++checked;
    }
  }
  if (kernelLevel() == 2)
    EXPECT_EQ(checked, 9) << "Q8_0 and Q4_0, quantised and f32; Q5_0 "
                             "quantised; Q4_K, Q5_K, Q6_K and F16 f32";
  else
    std::printf("[ SKIPPED  ] no multi-row kernels at level %s\n",
                kernelIsaName());

  // Through matvecRows: 11 tokens (two fours and a remainder), rows 1..14
  // (three groups of four and a remainder after an unaligned start). The
  // K-quants' quantised products go through the paired activation layout
  // there (ActPairQ8) at the AVX-512 level: the prompt's rows x tokens, and
  // one token's rows one by one.
  if (kernelLevel() == 2)
    for (GGMLType type : {GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K}) {
      EXPECT_NE(rowDot(type).q8PairsRows, nullptr) << typeName(type);
      EXPECT_NE(rowDot(type).q8Pairs, nullptr) << typeName(type);
    }
  for (GGMLType type : {GGMLType::Q8_0, GGMLType::Q4_0, GGMLType::Q5_0,
                        GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K}) {
    const int64_t cols = typeTraits(type)->blockSize == QK_K ? 512 : 288;
    const int64_t nRows = 16;
    const int nTok = 11;
    std::vector<uint8_t> data =
        encodeRows(type, randomVector(size_t(cols) * nRows, 43), cols);
    Weight w = weightOver(type, cols, nRows, data);
    std::vector<float> x = randomVector(size_t(cols) * nTok, 44);
    for (bool f32Act : {false, true}) {
      std::vector<float> batch(size_t(nRows) * nTok, 0.f),
          single(batch.size(), 0.f);
      matvecRows(w, x.data(), cols, batch.data(), nRows, nTok, 1, 15, f32Act);
      for (int t = 0; t < nTok; ++t)
        matvecRows(w, x.data() + t * cols, cols, single.data() + t * nRows,
                   nRows, 1, 1, 15, f32Act);
      EXPECT_EQ(std::memcmp(batch.data(), single.data(),
                            batch.size() * sizeof(float)),
                0)
          << typeName(type) << (f32Act ? " f32" : " q8");
    }
  }
}

// Tests that Q4_0 rows stored scales first (the packed weights' CPU rows)
// multiply bitwise as their blocks at every level the machine has, through
// matvecRows and matvecs, with quantised and f32 activations, odd block
// counts (a pair with an empty block), more and fewer than sixteen blocks,
// and one, a few and a prompt's worth of tokens (rows back in blocks).
TEST(KernelsFast, ScalesFirstQ4_0RowsAreBitwiseTheBlocks) {
  int levels = 0;
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Avx2, KernelIsa::Scalar}) {
    IsaGuard guard(isa);
    ++levels;
    for (int64_t cols : {int64_t(96), int64_t(288), int64_t(1056)})
      for (int nTok : {1, 3, 6, 20}) {
        const int64_t nRows = 37, nb = cols / QK8_0;
        std::vector<uint8_t> data = encodeRows(
            GGMLType::Q4_0, randomVector(size_t(cols) * nRows, 51), cols);
        std::vector<uint8_t> sf(data.size());
        const size_t rb = rowBytes(GGMLType::Q4_0, cols);
        for (int64_t r = 0; r < nRows; ++r)
          q4_0ToScalesFirst(data.data() + r * rb, sf.data() + r * rb, nb);
        std::vector<uint8_t> back(data.size());
        for (int64_t r = 0; r < nRows; ++r)
          scalesFirstToQ4_0(sf.data() + r * rb, back.data() + r * rb, nb);
        EXPECT_EQ(back, data);
        Weight w = weightOver(GGMLType::Q4_0, cols, nRows, data);
        Weight wsf = w;
        wsf.data = sf.data();
        wsf.scalesFirst = true;
        std::vector<float> x = randomVector(size_t(cols) * nTok, 52);
        for (bool f32Act : {false, true}) {
          std::vector<float> want(size_t(nRows) * nTok), got(want.size(), 0.f);
          matvecRows(w, x.data(), cols, want.data(), nRows, nTok, 0, nRows,
                     f32Act);
          matvecRows(wsf, x.data(), cols, got.data(), nRows, nTok, 0, nRows,
                     f32Act);
          EXPECT_EQ(
              std::memcmp(want.data(), got.data(), want.size() * sizeof(float)),
              0)
              << kernelIsaName() << " cols " << cols
              << (f32Act ? " f32" : " q8");
          ThreadPool pool(2);
          std::fill(got.begin(), got.end(), 0.f);
          MatvecJob job{&wsf, x.data(), got.data()};
          job.f32Act = f32Act;
          matvecs(&job, 1, pool, nTok);
          EXPECT_EQ(
              std::memcmp(want.data(), got.data(), want.size() * sizeof(float)),
              0)
              << kernelIsaName() << " cols " << cols << " matvecs";
        }
      }
  }
  EXPECT_EQ(levels, 3);
  if (kernelLevel() != 2)
    std::printf("[ SKIPPED  ] the scales-first kernel needs AVX-512 VNNI; "
                "checked the blocks' fallback only\n");
}

// Tests that Q4_0 and Q8_0 rows in blocks for a token or a few (a
// generated token's rows: the activation prepared once for them at the
// AVX-512 level, Q8_0's rows four at a time) give bitwise each row's own
// product, at every level the machine has, with odd block counts, more and
// fewer than sixteen blocks, and rows not in whole fours.
TEST(KernelsFast, Q4_0AndQ8_0TokenRowsAreBitwiseTheRowProduct) {
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Avx2, KernelIsa::Scalar})
    for (GGMLType type : {GGMLType::Q4_0, GGMLType::Q8_0}) {
      IsaGuard guard(isa);
      for (int64_t cols : {int64_t(96), int64_t(288), int64_t(1056)})
        for (int nTok : {1, 3}) {
          const int64_t nRows = 19, nb = cols / QK8_0;
          std::vector<uint8_t> data =
              encodeRows(type, randomVector(size_t(cols) * nRows, 53), cols);
          Weight w = weightOver(type, cols, nRows, data);
          std::vector<float> x = randomVector(size_t(cols) * nTok, 54);
          std::vector<BlockQ8Act> xq(size_t(nb) * nTok);
          for (int t = 0; t < nTok; ++t)
            quantizeActQ8(x.data() + t * cols, xq.data() + t * nb, cols);
          std::vector<float> got(size_t(nRows) * nTok);
          matvecRows(w, x.data(), cols, got.data(), nRows, nTok, 0, nRows,
                     false);
          const RowDot dot = rowDot(type);
          for (int t = 0; t < nTok; ++t)
            for (int64_t r = 0; r < nRows; ++r) {
              const float want = dot.q8(w.row(r), xq.data() + t * nb, cols);
              EXPECT_EQ(
                  std::memcmp(&want, &got[size_t(t) * nRows + r], sizeof want),
                  0)
                  << kernelIsaName() << " " << typeName(type) << " cols "
                  << cols << " row " << r << " token " << t << ": " << want
                  << " vs " << got[size_t(t) * nRows + r];
            }
        }
    }
}

// Tests that F16 rows for a prompt (at the AVX-512 level in token tiles,
// runtime/f16_tiles.h) and for a generated token or a few (four rows at a
// time) give bitwise each row's one-token product: rows past one row block
// and not in whole groups of four, token counts below a tile, of whole
// tiles and with a partial last tile, rows of a K-block and a part, and
// rows whose length is no multiple of 32 (a predictor's rank), shorter
// than 32 and than 8.
TEST(KernelsFast, F16PromptRowsAreBitwiseTheRowProduct) {
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Avx2, KernelIsa::Scalar}) {
    IsaGuard guard(isa);
    for (int nTok : {1, 2, 5, 13, 32})
      for (int64_t cols :
           {int64_t(288), int64_t(257), int64_t(45), int64_t(7)}) {
        const int64_t nRows = 37;
        std::vector<uint8_t> data = encodeRows(
            GGMLType::F16, randomVector(size_t(cols) * nRows, 55), cols);
        Weight w = weightOver(GGMLType::F16, cols, nRows, data);
        std::vector<float> x = randomVector(size_t(cols) * nTok, 56);
        std::vector<float> got(size_t(nRows) * nTok);
        matvecRows(w, x.data(), cols, got.data(), nRows, nTok, 0, nRows, false);
        const RowDot dot = rowDot(GGMLType::F16);
        for (int t = 0; t < nTok; ++t)
          for (int64_t r = 0; r < nRows; ++r) {
            const float want = dot.f32(w.row(r), x.data() + t * cols, cols);
            EXPECT_EQ(
                std::memcmp(&want, &got[size_t(t) * nRows + r], sizeof want), 0)
                << kernelIsaName() << " cols " << cols << " row " << r
                << " token " << t << " of " << nTok;
          }
      }
  }
}

// Tests that matvecs over a pool gives, for every row of every job,
// exactly the serial result: the quantised kernel for Q8_0/Q4_0 (jobs that
// share an input and one with its own input) and the f32 kernel for F16,
// with row counts that do not divide into 16-row groups and thread counts
// from 1 to more than the rows of the smallest job.
TEST(KernelsFast, QuantisedMatvecsUnderThreadPoolMatchSerialRows) {
  const int64_t cols = 128;
  struct Spec {
    GGMLType type;
    int64_t rows;
    int input;
  } specs[] = {{GGMLType::Q8_0, 37, 0},
               {GGMLType::F16, 5, 0},
               {GGMLType::Q4_0, 130, 0},
               {GGMLType::Q4_0, 70, 1}};
  std::vector<float> inputs[2] = {randomVector(cols, 40),
                                  randomVector(cols, 41)};
  std::vector<std::vector<uint8_t>> data;
  std::vector<Weight> ws;
  std::vector<std::vector<float>> expect;
  for (const Spec &s : specs) {
    data.push_back(
        encodeRows(s.type, randomVector(s.rows * cols, 50 + ws.size()), cols));
    ws.push_back(Weight{"w", s.type, cols, s.rows, rowBytes(s.type, cols),
                        data.back().data()});
  }
  for (size_t k = 0; k < ws.size(); ++k) {
    const Weight &w = ws[k];
    const std::vector<float> &x = inputs[specs[k].input];
    std::vector<float> y(w.rows);
    if (DotQ8ActFn q8 = dotQ8ActKernel(w.type)) {
      std::vector<BlockQ8Act> q(cols / QK8_0);
      quantizeActQ8(x.data(), q.data(), cols);
      for (int64_t r = 0; r < w.rows; ++r)
        y[r] = q8(w.row(r), q.data(), cols);
    } else {
      matvecRows(w, x.data(), y.data(), 0, w.rows);
    }
    expect.push_back(y);
  }
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<std::vector<float>> ys;
      std::vector<MatvecJob> jobs;
      for (size_t k = 0; k < ws.size(); ++k)
        ys.emplace_back(ws[k].rows, NAN);
      for (size_t k = 0; k < ws.size(); ++k)
        jobs.push_back({&ws[k], inputs[specs[k].input].data(), ys[k].data()});
      matvecs(jobs.data(), int(jobs.size()), pool);
      for (size_t k = 0; k < ws.size(); ++k)
        EXPECT_EQ(ys[k], expect[k]) << "job " << k << " threads " << threads;
    }
  }
}

// Tests that a pool that polls before blocking (setSpinMicros) still runs
// every index exactly once over many back-to-back steps, for polls shorter
// and longer than a step, and that blocking again afterwards works.
TEST(KernelsFast, PollingThreadPoolCoversEachIndexOnce) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (int spin : {1, 200, 0}) {
      pool.setSpinMicros(spin);
      EXPECT_EQ(pool.spinMicros(), spin);
      for (int64_t n : {1, 5, 1000}) {
        std::vector<int> hits(n, 0);
        for (int rep = 0; rep < 200; ++rep)
          pool.parallelFor(n, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
              hits[i]++; // ranges are disjoint: no two threads share an i
          });
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[i], 200)
              << "n=" << n << " i=" << i << " spin=" << spin;
      }
    }
  }
}
