// Tests the reference CPU kernels against double-precision computations:
// dot products for every weight type (both the AVX2 and the portable
// versions), matrix-vector products under the thread pool, RMS norm,
// softmax, rotary embedding, single-head attention and the activations.
#include "runtime/kernels.h"

#include "runtime/ggml_types.h"
#include "runtime/model.h"
#include "runtime/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

std::vector<float> randomVector(size_t n, uint32_t seed, float lo = -1.f,
                                float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

// Rows of `type` holding `values` (quantised with the ggml_types quantiser).
std::vector<uint8_t> encodeRows(GGMLType type, const std::vector<float> &values,
                                int64_t cols) {
  int64_t rows = int64_t(values.size()) / cols;
  size_t rb = rowBytes(type, cols);
  std::vector<uint8_t> out(rb * rows);
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_TRUE(quantizeRow(type, values.data() + r * cols, out.data() + r * rb,
                            cols));
  return out;
}

const GGMLType kTypes[] = {GGMLType::F32, GGMLType::F16, GGMLType::BF16,
                           GGMLType::Q8_0, GGMLType::Q4_0};

// Restores the automatic kernel choice however a test ends.
struct IsaGuard {
  explicit IsaGuard(KernelIsa isa) { setKernelIsa(isa); }
  ~IsaGuard() { setKernelIsa(KernelIsa::Auto); }
};

} // namespace

// Tests that dotRow matches a double-precision dot product of the
// dequantised row for every type, size and kernel ISA. Bound: the error,
// normalised by sum |w_i x_i|, stays below 1e-5 (f32 accumulation over up to
// 4096 terms).
TEST(Kernels, DotMatchesDoubleOnDequantisedWeights) {
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Scalar}) {
    IsaGuard guard(isa);
    if (isa == KernelIsa::Scalar) {
      EXPECT_STREQ(kernelIsaName(), "scalar");
    }
    for (GGMLType type : kTypes) {
      for (int64_t n : {32, 64, 96, 4096, 37, 8, 1}) {
        if (n % typeTraits(type)->blockSize != 0)
          continue;
        std::vector<float> w = randomVector(n, 7 + uint32_t(n));
        std::vector<float> x = randomVector(n, 99 + uint32_t(n), -2.f, 2.f);
        std::vector<uint8_t> row = encodeRows(type, w, n);
        std::vector<float> deq(n);
        ASSERT_TRUE(dequantizeRow(type, row.data(), deq.data(), n));
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          ref += double(deq[i]) * x[i];
          mag += std::fabs(double(deq[i]) * x[i]);
        }
        float got = dotRow(type, row.data(), x.data(), n);
        EXPECT_EQ(got, dotKernel(type)(row.data(), x.data(), n));
        EXPECT_LE(std::fabs(got - ref) / std::max(mag, 1e-30), 1e-5)
            << typeName(type) << " n=" << n << " isa=" << kernelIsaName();
      }
    }
  }
}

// Tests that rowToF32 gives exactly the values of the shared dequantiser.
TEST(Kernels, RowToF32MatchesDequantizeRow) {
  const int64_t n = 128;
  std::vector<float> w = randomVector(n, 3);
  for (GGMLType type : kTypes) {
    std::vector<uint8_t> row = encodeRows(type, w, n);
    std::vector<float> a(n), b(n);
    rowToF32(type, row.data(), a.data(), n);
    ASSERT_TRUE(dequantizeRow(type, row.data(), b.data(), n));
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(a[i], b[i]) << typeName(type) << " i=" << i;
  }
}

// Tests that the quantised dot products see the quantisation: Q4_0 of a row
// differs from the f32 row by a bounded, nonzero amount.
TEST(Kernels, QuantisedDotIsCloseToF32Dot) {
  const int64_t n = 1024;
  std::vector<float> w = randomVector(n, 11), x = randomVector(n, 12);
  std::vector<uint8_t> f32 = encodeRows(GGMLType::F32, w, n);
  float exact = dotRow(GGMLType::F32, f32.data(), x.data(), n);
  double mag = 0;
  for (int64_t i = 0; i < n; ++i)
    mag += std::fabs(double(w[i]) * x[i]);
  // Relative to sum |w x|: Q8_0 keeps ~1/127 per weight, Q4_0 ~1/8.
  struct Case {
    GGMLType type;
    double bound;
  } cases[] = {{GGMLType::F16, 1e-3}, {GGMLType::BF16, 1e-2},
               {GGMLType::Q8_0, 1e-2}, {GGMLType::Q4_0, 1e-1}};
  for (const Case &c : cases) {
    std::vector<uint8_t> row = encodeRows(c.type, w, n);
    float got = dotRow(c.type, row.data(), x.data(), n);
    EXPECT_LE(std::fabs(got - exact) / mag, c.bound) << typeName(c.type);
    EXPECT_NE(got, exact) << typeName(c.type);
  }
}

// Tests that matvecs over a pool computes every row of every job exactly as
// the serial product does, for several thread counts and row counts that do
// not divide evenly.
TEST(Kernels, MatvecsUnderThreadPoolMatchSerialRows) {
  const int64_t cols = 64;
  const int64_t rowsA = 37, rowsB = 5, rowsC = 130;
  std::vector<float> a = randomVector(rowsA * cols, 1),
                     b = randomVector(rowsB * cols, 2),
                     c = randomVector(rowsC * cols, 3);
  std::vector<uint8_t> da = encodeRows(GGMLType::Q8_0, a, cols),
                       db = encodeRows(GGMLType::F16, b, cols),
                       dc = encodeRows(GGMLType::Q4_0, c, cols);
  Weight wa{"a", GGMLType::Q8_0, cols, rowsA, rowBytes(GGMLType::Q8_0, cols), da.data()};
  Weight wb{"b", GGMLType::F16, cols, rowsB, rowBytes(GGMLType::F16, cols), db.data()};
  Weight wc{"c", GGMLType::Q4_0, cols, rowsC, rowBytes(GGMLType::Q4_0, cols), dc.data()};
  std::vector<float> x = randomVector(cols, 4);
  std::vector<float> ra(rowsA), rb(rowsB), rc(rowsC);
  matvecRows(wa, x.data(), ra.data(), 0, rowsA);
  matvecRows(wb, x.data(), rb.data(), 0, rowsB);
  matvecRows(wc, x.data(), rc.data(), 0, rowsC);
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    std::vector<float> ya(rowsA, NAN), yb(rowsB, NAN), yc(rowsC, NAN);
    MatvecJob jobs[3] = {{&wa, x.data(), ya.data()},
                         {&wb, x.data(), yb.data()},
                         {&wc, x.data(), yc.data()}};
    matvecs(jobs, 3, pool);
    EXPECT_EQ(ya, ra) << threads;
    EXPECT_EQ(yb, rb) << threads;
    EXPECT_EQ(yc, rc) << threads;
  }
}

// Tests that parallelFor visits every index exactly once, repeatedly.
TEST(ThreadPool, ParallelForCoversEachIndexOnce) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.size(), 4);
  for (int64_t n : {0, 1, 3, 4, 5, 1000}) {
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallelFor(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          hits[i]++;
      });
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

// Tests rmsNorm against double; bound 1e-6 relative per element.
TEST(Kernels, RmsNormMatchesDouble) {
  const int n = 96;
  std::vector<float> x = randomVector(n, 5, -3.f, 3.f), w = randomVector(n, 6);
  std::vector<float> out(n);
  rmsNorm(out.data(), x.data(), w.data(), n, 1e-5f);
  double ss = 0;
  for (float v : x)
    ss += double(v) * v;
  double scale = 1.0 / std::sqrt(ss / n + 1e-5);
  for (int i = 0; i < n; ++i) {
    double ref = x[i] * scale * w[i];
    EXPECT_NEAR(out[i], ref, 1e-6 * (1 + std::fabs(ref))) << i;
  }
  // In place gives the same result.
  std::vector<float> inPlace = x;
  rmsNorm(inPlace.data(), inPlace.data(), w.data(), n, 1e-5f);
  EXPECT_EQ(inPlace, out);
}

// Tests softmax against double, including large logits that would overflow
// without max subtraction. Bound 1e-6 absolute on probabilities.
TEST(Kernels, SoftmaxMatchesDouble) {
  std::vector<float> x = randomVector(50, 8, -5.f, 5.f);
  x[3] = 500.f;
  x[7] = 499.f;
  std::vector<float> p = x;
  softmax(p.data(), int(p.size()));
  double mx = 500, sum = 0;
  for (float v : x)
    sum += std::exp(double(v) - mx);
  double total = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(p[i], std::exp(double(x[i]) - mx) / sum, 1e-6) << i;
    total += p[i];
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
}

// Tests rope against the definition: pairs (2i, 2i+1) of each head rotated
// by pos * base^(-2i/nRot); dimensions beyond nRot untouched. Bound 1e-5.
TEST(Kernels, RopeRotatesAdjacentPairs) {
  const int nHeads = 3, headDim = 16, nRot = 12, pos = 37;
  const float base = 10000.f;
  std::vector<float> inv(nRot / 2);
  ropeInvFreq(inv.data(), nRot, base);
  std::vector<float> v = randomVector(nHeads * headDim, 9);
  std::vector<float> r = v;
  rope(r.data(), nHeads, headDim, nRot, pos, inv.data());
  for (int h = 0; h < nHeads; ++h) {
    for (int i = 0; i < headDim / 2; ++i) {
      int k = h * headDim + 2 * i;
      double x0 = v[k], x1 = v[k + 1];
      double e0 = x0, e1 = x1;
      if (2 * i < nRot) {
        double th = pos * std::pow(double(base), -2.0 * i / nRot);
        e0 = x0 * std::cos(th) - x1 * std::sin(th);
        e1 = x0 * std::sin(th) + x1 * std::cos(th);
      }
      EXPECT_NEAR(r[k], e0, 1e-5) << "head " << h << " pair " << i;
      EXPECT_NEAR(r[k + 1], e1, 1e-5) << "head " << h << " pair " << i;
    }
  }
  // Position 0 is the identity.
  std::vector<float> z = v;
  rope(z.data(), nHeads, headDim, nRot, 0, inv.data());
  EXPECT_EQ(z, v);
}

// One head's attention over f16 keys and values, in double.
static std::vector<double> attendDouble(const float *q, const uint16_t *k,
                                 const uint16_t *v, int stride, int nPos,
                                 int headDim) {
  std::vector<double> s(nPos), out(headDim, 0.0);
  double mx = -1e300, sum = 0;
  for (int t = 0; t < nPos; ++t) {
    double d = 0;
    for (int i = 0; i < headDim; ++i)
      d += double(q[i]) * fp16ToF32(k[t * stride + i]);
    s[t] = d / std::sqrt(double(headDim));
    mx = std::max(mx, s[t]);
  }
  for (double &x : s)
    sum += (x = std::exp(x - mx));
  for (int i = 0; i < headDim; ++i)
    for (int t = 0; t < nPos; ++t)
      out[i] += s[t] / sum * fp16ToF32(v[t * stride + i]);
  return out;
}

// Tests attendHead against a double softmax-weighted sum over interleaved
// (strided) f16 keys and values (the values the halves hold). Bound 1e-5
// absolute. And storeF16 rounds to nearest even.
TEST(Kernels, AttendHeadMatchesDouble) {
  const int headDim = 32, nPos = 9, stride = 3 * headDim;
  std::vector<float> q = randomVector(headDim, 20);
  std::vector<float> k = randomVector(nPos * stride, 21, -2.f, 2.f);
  std::vector<float> v = randomVector(nPos * stride, 22);
  std::vector<uint16_t> kh(k.size()), vh(v.size());
  storeF16(k.data(), kh.data(), int64_t(k.size()));
  storeF16(v.data(), vh.data(), int64_t(v.size()));
  std::vector<float> scores(nPos), out(headDim), outScalar(headDim);
  const int off = headDim; // second of three heads per position
  // The portable loops, then the kernels this CPU runs.
  {
    IsaGuard scalar(KernelIsa::Scalar);
    attendHead(q.data(), kh.data() + off, vh.data() + off, stride, nPos,
               headDim, scores.data(), outScalar.data());
  }
  attendHead(q.data(), kh.data() + off, vh.data() + off, stride, nPos, headDim,
             scores.data(), out.data());
  const std::vector<double> ref = attendDouble(
      q.data(), kh.data() + off, vh.data() + off, stride, nPos, headDim);
  for (int i = 0; i < headDim; ++i) {
    EXPECT_NEAR(out[i], ref[i], 1e-5) << i;
    EXPECT_NEAR(outScalar[i], ref[i], 1e-5) << i;
  }
  // 1 + 2^-11 is halfway between two halves: to the even one, 1; 1 + 3 *
  // 2^-11 to 1 + 2^-9.
  const float ties[2] = {1.f + 0x1p-11f, 1.f + 3 * 0x1p-11f};
  uint16_t h[2];
  storeF16(ties, h, 2);
  EXPECT_EQ(h[0], 0x3c00);
  EXPECT_EQ(h[1], 0x3c02);
  // Eight at a time (F16C where the CPU has it) as one by one.
  std::vector<float> wide = randomVector(203, 23, -70000.f, 70000.f);
  std::vector<uint16_t> fast(wide.size());
  storeF16(wide.data(), fast.data(), int64_t(wide.size()));
  for (size_t i = 0; i < wide.size(); ++i)
    EXPECT_EQ(fast[i], f32ToFp16(wide[i])) << wide[i];
}

// Tests that attendChunk, for one token and a KV head's group of query
// heads, gives each head bitwise what attendHead gives it alone, on the
// portable loops and the kernels this CPU runs, over 203 positions (full
// vectors and a tail) and a head of 72 (likewise), and that the result is
// the double sum's.
TEST(Kernels, AttendHeadsGroupIsEachHeadAlone) {
  const int headDim = 72, nPos = 203, nHeads = 4, stride = 2 * headDim;
  std::vector<float> q = randomVector(nHeads * headDim, 30);
  std::vector<float> kf = randomVector(nPos * stride, 31, -3.f, 3.f);
  std::vector<float> vf = randomVector(nPos * stride, 32);
  std::vector<uint16_t> k(kf.size()), v(vf.size());
  storeF16(kf.data(), k.data(), int64_t(k.size()));
  storeF16(vf.data(), v.data(), int64_t(v.size()));
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Scalar}) {
    IsaGuard guard(isa);
    std::vector<float> scores(size_t(nHeads) * 256), out(nHeads * headDim);
    AttendChunk c;
    c.q = q.data();
    c.nHeads = nHeads;
    c.keys = k.data();
    c.values = v.data();
    c.stride = stride;
    c.headDim = headDim;
    c.pos0 = nPos - 1; // one token that sees every row
    c.t0 = 0;
    c.t1 = 1;
    c.scores = scores.data();
    c.scoreHeadStride = 256;
    c.out = out.data();
    attendChunk(c);
    for (int g = 0; g < nHeads; ++g) {
      std::vector<float> one(headDim), sc(nPos);
      attendHead(q.data() + g * headDim, k.data(), v.data(), stride, nPos,
                 headDim, sc.data(), one.data());
      EXPECT_EQ(one, std::vector<float>(out.begin() + g * headDim,
                                        out.begin() + (g + 1) * headDim))
          << kernelIsaName() << " head " << g;
      const std::vector<double> ref =
          attendDouble(q.data() + g * headDim, k.data(), v.data(), stride,
                       nPos, headDim);
      for (int i = 0; i < headDim; ++i)
        EXPECT_NEAR(one[i], ref[i], 1e-5) << kernelIsaName() << " " << i;
    }
  }
}

// Tests that attendChunk gives each token of a chunk range and each head
// bitwise what attendHead gives it alone over its causal window (with and
// without a sliding window), on the portable loops and this CPU's.
TEST(Kernels, AttendChunkIsEachTokenAlone) {
  const int headDim = 64, nHeads = 3, pos0 = 150, nTok = 37, nCtx = 256,
            kvStride = 2 * headDim;
  std::vector<float> q = randomVector(nTok * nHeads * headDim, 40);
  std::vector<float> kf = randomVector(nCtx * kvStride, 41, -3.f, 3.f);
  std::vector<float> vf = randomVector(nCtx * kvStride, 42);
  std::vector<uint16_t> k(kf.size()), v(vf.size());
  storeF16(kf.data(), k.data(), int64_t(k.size()));
  storeF16(vf.data(), v.data(), int64_t(v.size()));
  const int off = headDim; // the second KV head of each row
  for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Scalar})
    for (int window : {0, 60}) {
      IsaGuard guard(isa);
      std::vector<float> scores(size_t(nTok) * nHeads * nCtx),
          out(size_t(nTok) * nHeads * headDim, -1.f);
      AttendChunk c;
      c.q = q.data();
      c.qStride = nHeads * headDim;
      c.nHeads = nHeads;
      c.keys = k.data() + off;
      c.values = v.data() + off;
      c.stride = kvStride;
      c.headDim = headDim;
      c.pos0 = pos0;
      c.t0 = 5; // tokens 5 .. 36 of the chunk
      c.t1 = nTok;
      c.window = window;
      c.scores = scores.data();
      c.scoreTokStride = int64_t(nHeads) * nCtx;
      c.scoreHeadStride = nCtx;
      c.out = out.data();
      c.outStride = nHeads * headDim;
      attendChunk(c);
      for (int t = 0; t < nTok; ++t)
        for (int g = 0; g < nHeads; ++g) {
          const float *got = out.data() + (t * nHeads + g) * headDim;
          if (t < c.t0) { // outside the range: untouched
            EXPECT_EQ(got[0], -1.f);
            continue;
          }
          const int end = pos0 + t + 1,
                    first = window > 0 ? std::max(0, end - window) : 0;
          std::vector<float> one(headDim), sc(nCtx);
          attendHead(q.data() + (t * nHeads + g) * headDim,
                     k.data() + off + first * kvStride,
                     v.data() + off + first * kvStride, kvStride, end - first,
                     headDim, sc.data(), one.data());
          EXPECT_EQ(one, std::vector<float>(got, got + headDim))
              << kernelIsaName() << " window " << window << " token " << t
              << " head " << g;
        }
    }
}

// Tests the activations against their definitions.
TEST(Kernels, Activations) {
  for (float x : {-20.f, -3.f, -0.5f, 0.f, 0.25f, 2.f, 15.f}) {
    double ref = x / (1.0 + std::exp(-double(x)));
    EXPECT_NEAR(silu(x), ref, 1e-6 * (1 + std::fabs(ref))) << x;
    EXPECT_EQ(relu(x), x > 0 ? x : 0.f) << x;
  }
  EXPECT_EQ(relu(-0.0f), 0.f);
  // GELU against its tanh definition in double, over the range activations
  // take (and past where exp(-2y) overflows: the result goes to -0).
  double worst = 0;
  for (int i = -4000; i <= 4000; ++i) {
    const float x = i / 200.f;
    const double y = 0.7978845608028654 * (x + 0.044715 * double(x) * x * x);
    const double ref = 0.5 * x * (1 + std::tanh(y));
    // Relative where the definition's 1 + tanh does not cancel in double.
    worst = std::max(worst, std::fabs(gelu(x) - ref) / (1e-9 + std::fabs(ref)));
    EXPECT_TRUE(std::isfinite(gelu(x))) << x;
  }
  EXPECT_LT(worst, 5e-6);
  EXPECT_EQ(gelu(0.f), 0.f);
  EXPECT_EQ(gelu(-100.f), 0.f);
  EXPECT_EQ(gelu(100.f), 100.f);
}
