// CPU kernels of the dense reference; see kernels.h.
//
// Quantised rows are dequantised one 32-element block at a time inside the
// dot product: the block's partial sum is accumulated in f32 and scaled by
// the block's f16 scale once, which is both faster and closer to the exact
// value than scaling each element.
#include "runtime/kernels.h"

#include "runtime/model.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PINFER_X86 1
#endif

namespace pinfer {

namespace {

// ---- portable kernels ------------------------------------------------------

float dotF32(const void *row, const float *x, int64_t n) {
  const float *w = static_cast<const float *>(row);
  // Eight partial sums so that the loop vectorises without -ffast-math.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += w[i + j] * x[i + j];
  float sum = 0;
  for (; i < n; ++i)
    sum += w[i] * x[i];
  for (int j = 0; j < 8; ++j)
    sum += acc[j];
  return sum;
}

float dotF16(const void *row, const float *x, int64_t n) {
  const uint16_t *w = static_cast<const uint16_t *>(row);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += fp16ToF32(w[i]) * x[i];
  return sum;
}

float dotBF16(const void *row, const float *x, int64_t n) {
  const uint16_t *w = static_cast<const uint16_t *>(row);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += bf16ToF32(w[i + j]) * x[i + j];
  float sum = 0;
  for (; i < n; ++i)
    sum += bf16ToF32(w[i]) * x[i];
  for (int j = 0; j < 8; ++j)
    sum += acc[j];
  return sum;
}

float dotQ8_0(const void *row, const float *x, int64_t n) {
  const BlockQ8_0 *b = static_cast<const BlockQ8_0 *>(row);
  float sum = 0;
  for (int64_t blk = 0; blk < n / QK8_0; ++blk, x += QK8_0) {
    float s = 0;
    for (int j = 0; j < QK8_0; ++j)
      s += float(b[blk].qs[j]) * x[j];
    sum += fp16ToF32(b[blk].d) * s;
  }
  return sum;
}

float dotQ4_0(const void *row, const float *x, int64_t n) {
  const BlockQ4_0 *b = static_cast<const BlockQ4_0 *>(row);
  float sum = 0;
  for (int64_t blk = 0; blk < n / QK4_0; ++blk, x += QK4_0) {
    float s = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      s += float(int(b[blk].qs[j] & 0x0F) - 8) * x[j];
      s += float(int(b[blk].qs[j] >> 4) - 8) * x[j + QK4_0 / 2];
    }
    sum += fp16ToF32(b[blk].d) * s;
  }
  return sum;
}

// ---- AVX2 + FMA + F16C kernels ---------------------------------------------

#ifdef PINFER_X86
#define PINFER_AVX2 __attribute__((target("avx2,fma,f16c")))

PINFER_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

PINFER_AVX2 inline float halfToFloat(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

// 8 signed bytes at p -> 8 floats.
PINFER_AVX2 inline __m256 bytesToPs(__m128i bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
}

PINFER_AVX2 float dotF32Avx2(const void *row, const float *x, int64_t n) {
  const float *w = static_cast<const float *>(row);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8),
                         _mm256_loadu_ps(x + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float sum = hsum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i)
    sum += w[i] * x[i];
  return sum;
}

PINFER_AVX2 float dotF16Avx2(const void *row, const float *x, int64_t n) {
  const uint16_t *w = static_cast<const uint16_t *>(row);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
    __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
  }
  float sum = hsum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i)
    sum += halfToFloat(w[i]) * x[i];
  return sum;
}

PINFER_AVX2 float dotBF16Avx2(const void *row, const float *x, int64_t n) {
  const uint16_t *w = static_cast<const uint16_t *>(row);
  __m256 a0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i wi = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i)));
    __m256 wf = _mm256_castsi256_ps(_mm256_slli_epi32(wi, 16));
    a0 = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), a0);
  }
  float sum = hsum(a0);
  for (; i < n; ++i)
    sum += bf16ToF32(w[i]) * x[i];
  return sum;
}

PINFER_AVX2 float dotQ8_0Avx2(const void *row, const float *x, int64_t n) {
  const BlockQ8_0 *b = static_cast<const BlockQ8_0 *>(row);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / QK8_0; ++blk, x += QK8_0) {
    __m128i q0 = _mm_loadu_si128((const __m128i *)b[blk].qs);
    __m128i q1 = _mm_loadu_si128((const __m128i *)(b[blk].qs + 16));
    __m256 s = _mm256_mul_ps(bytesToPs(q0), _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(bytesToPs(_mm_srli_si128(q0, 8)),
                        _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(bytesToPs(q1), _mm256_loadu_ps(x + 16), s);
    s = _mm256_fmadd_ps(bytesToPs(_mm_srli_si128(q1, 8)),
                        _mm256_loadu_ps(x + 24), s);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(halfToFloat(b[blk].d)), s, acc);
  }
  return hsum(acc);
}

PINFER_AVX2 float dotQ4_0Avx2(const void *row, const float *x, int64_t n) {
  const BlockQ4_0 *b = static_cast<const BlockQ4_0 *>(row);
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i eight = _mm_set1_epi8(8);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / QK4_0; ++blk, x += QK4_0) {
    __m128i qs = _mm_loadu_si128((const __m128i *)b[blk].qs);
    // Low nibbles are elements 0..15, high nibbles 16..31.
    __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, mask), eight);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), eight);
    __m256 s = _mm256_mul_ps(bytesToPs(lo), _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(bytesToPs(_mm_srli_si128(lo, 8)),
                        _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(bytesToPs(hi), _mm256_loadu_ps(x + 16), s);
    s = _mm256_fmadd_ps(bytesToPs(_mm_srli_si128(hi, 8)),
                        _mm256_loadu_ps(x + 24), s);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(halfToFloat(b[blk].d)), s, acc);
  }
  return hsum(acc);
}

bool cpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
#else
bool cpuHasAvx2() { return false; }
#endif

std::atomic<bool> gUseAvx2{cpuHasAvx2()};

DotFn selectDot(GGMLType type) {
#ifdef PINFER_X86
  if (gUseAvx2.load(std::memory_order_relaxed)) {
    switch (type) {
    case GGMLType::F32:
      return dotF32Avx2;
    case GGMLType::F16:
      return dotF16Avx2;
    case GGMLType::BF16:
      return dotBF16Avx2;
    case GGMLType::Q8_0:
      return dotQ8_0Avx2;
    case GGMLType::Q4_0:
      return dotQ4_0Avx2;
    default:
      return nullptr;
    }
  }
#endif
  switch (type) {
  case GGMLType::F32:
    return dotF32;
  case GGMLType::F16:
    return dotF16;
  case GGMLType::BF16:
    return dotBF16;
  case GGMLType::Q8_0:
    return dotQ8_0;
  case GGMLType::Q4_0:
    return dotQ4_0;
  default:
    return nullptr;
  }
}

} // namespace

void setKernelIsa(KernelIsa isa) {
  gUseAvx2.store(isa == KernelIsa::Auto && cpuHasAvx2());
}

const char *kernelIsaName() { return gUseAvx2.load() ? "avx2" : "scalar"; }

DotFn dotKernel(GGMLType type) { return selectDot(type); }

float dotRow(GGMLType type, const void *row, const float *x, int64_t n) {
  DotFn fn = selectDot(type);
  return fn ? fn(row, x, n) : NAN;
}

void rowToF32(GGMLType type, const void *row, float *out, int64_t n) {
  switch (type) {
  case GGMLType::F32:
    std::copy_n(static_cast<const float *>(row), n, out);
    return;
  case GGMLType::F16:
  case GGMLType::BF16: {
    const uint16_t *w = static_cast<const uint16_t *>(row);
    for (int64_t i = 0; i < n; ++i)
      out[i] = type == GGMLType::F16 ? fp16ToF32(w[i]) : bf16ToF32(w[i]);
    return;
  }
  case GGMLType::Q8_0: {
    const BlockQ8_0 *b = static_cast<const BlockQ8_0 *>(row);
    for (int64_t blk = 0; blk < n / QK8_0; ++blk) {
      float d = fp16ToF32(b[blk].d);
      for (int j = 0; j < QK8_0; ++j)
        out[blk * QK8_0 + j] = d * float(b[blk].qs[j]);
    }
    return;
  }
  case GGMLType::Q4_0: {
    const BlockQ4_0 *b = static_cast<const BlockQ4_0 *>(row);
    for (int64_t blk = 0; blk < n / QK4_0; ++blk) {
      float d = fp16ToF32(b[blk].d);
      float *o = out + blk * QK4_0;
      for (int j = 0; j < QK4_0 / 2; ++j) {
        o[j] = d * float(int(b[blk].qs[j] & 0x0F) - 8);
        o[j + QK4_0 / 2] = d * float(int(b[blk].qs[j] >> 4) - 8);
      }
    }
    return;
  }
  default:
    std::fill_n(out, n, NAN);
  }
}

void matvecRows(const Weight &w, const float *x, int64_t xStride, float *y,
                int64_t yStride, int nTok, int64_t r0, int64_t r1) {
  DotFn fn = selectDot(w.type);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t *row = w.row(r);
    for (int t = 0; t < nTok; ++t)
      y[t * yStride + r] = fn(row, x + t * xStride, w.cols);
  }
}

void matvecs(const MatvecJob *jobs, int nJobs, ThreadPool &pool, int nTok) {
  int64_t total = 0;
  for (int j = 0; j < nJobs; ++j)
    total += jobs[j].w->rows;
  // Rows of all jobs are numbered one after the other; each thread takes a
  // contiguous slice of that numbering, which may span jobs.
  pool.parallelFor(total, [&](int64_t begin, int64_t end) {
    int64_t base = 0;
    for (int j = 0; j < nJobs && begin < end; ++j) {
      const MatvecJob &job = jobs[j];
      int64_t lo = std::max(begin, base), hi = std::min(end, base + job.w->rows);
      if (lo < hi)
        matvecRows(*job.w, job.x, job.xStride ? job.xStride : job.w->cols,
                   job.y, job.yStride ? job.yStride : job.w->rows, nTok,
                   lo - base, hi - base);
      base += job.w->rows;
    }
  });
}

void rmsNorm(float *out, const float *x, const float *w, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i)
    ss += double(x[i]) * x[i];
  float scale = float(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i)
    out[i] = x[i] * scale * w[i];
}

void softmax(float *x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; ++i)
    mx = std::max(mx, x[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = float(1.0 / sum);
  for (int i = 0; i < n; ++i)
    x[i] *= inv;
}

void ropeInvFreq(float *invFreq, int nRot, float base) {
  for (int i = 0; i < nRot / 2; ++i)
    invFreq[i] = float(std::pow(double(base), -2.0 * i / nRot));
}

void rope(float *vec, int nHeads, int headDim, int nRot, int pos,
          const float *invFreq) {
  for (int i = 0; i < nRot / 2; ++i) {
    double theta = double(pos) * invFreq[i];
    float c = float(std::cos(theta)), s = float(std::sin(theta));
    for (int h = 0; h < nHeads; ++h) {
      float *v = vec + int64_t(h) * headDim + 2 * i;
      float x0 = v[0], x1 = v[1];
      v[0] = x0 * c - x1 * s;
      v[1] = x0 * s + x1 * c;
    }
  }
}

void attendHead(const float *q, const float *keys, const float *values,
                int64_t stride, int nPos, int headDim, float *scores,
                float *out) {
  const float scale = 1.f / std::sqrt(float(headDim));
  DotFn dot = selectDot(GGMLType::F32);
  for (int t = 0; t < nPos; ++t)
    scores[t] = dot(keys + t * stride, q, headDim) * scale;
  softmax(scores, nPos);
  std::fill_n(out, headDim, 0.f);
  for (int t = 0; t < nPos; ++t) {
    const float *v = values + t * stride;
    const float a = scores[t];
    for (int d = 0; d < headDim; ++d)
      out[d] += a * v[d];
  }
}

} // namespace pinfer
