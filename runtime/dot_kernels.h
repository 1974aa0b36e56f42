// The dot-product kernels of every weight type, portable and AVX2, as
// inline functions, and the AVX2 accumulation of transposed down rows. The
// type table (runtime/type_table.h) points at them: the runtime library
// picks among them at start-up through the rows (kernels.cpp,
// dotKernel/dotQ8ActKernel), and generated executables read the rows at
// compile time and instantiate the kernels with their constant shapes in
// code compiled for the target CPU (runtime/ffn_cpu.h). One definition
// serves both, so a specialised product is bitwise the runtime's.
//
// Quantised rows are dequantised one 32-element block at a time inside the
// dot product: the block's partial sum is accumulated in f32 and scaled by
// the block's f16 scale once, which is both faster and closer to the exact
// value than scaling each element.
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/quant_blocks.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#ifndef PINFER_X86
#define PINFER_X86 1
#endif
#endif

namespace pinfer {
namespace dotk {

// Bytes ahead of a row's reads that a generated token's products ask for
// (prefetchAhead below).
constexpr int kPrefetchAhead = 1024;
// The first min(bytes, kPrefetchAhead) bytes of a row that a product will
// read next (the next chosen neuron of a sparse FFN: scattered rows, whose
// starts no hardware prefetcher foresees).
inline void prefetchRowStart(const void *row, size_t bytes) {
  const char *p = static_cast<const char *>(row);
  const size_t n = bytes < size_t(kPrefetchAhead) ? bytes : kPrefetchAhead;
  for (size_t o = 0; o < n; o += 64)
    __builtin_prefetch(p + o, 0, 3);
}

// ---- portable kernels ------------------------------------------------------

inline float dotF32(const void *row, const float *x, int64_t n) {
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

inline float dotF16(const void *row, const float *x, int64_t n) {
  const uint16_t *w = static_cast<const uint16_t *>(row);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += fp16ToF32(w[i]) * x[i];
  return sum;
}

inline float dotBF16(const void *row, const float *x, int64_t n) {
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

inline float dotQ8_0(const void *row, const float *x, int64_t n) {
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

inline float dotQ4_0(const void *row, const float *x, int64_t n) {
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

// The formats of runtime/quant_blocks.h: each block decoded by the
// reference formulas into a buffer, then multiplied in f32 (no activation
// quantisation, so these products are at least as close as llama.cpp's
// Q8_K/Q8_1 ones).
template <DecodeBlockFn Decode, int QK, int Bytes>
inline float dotBlocks(const void *row, const float *x, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  float buf[QK];
  float sum = 0;
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    Decode(p + b * Bytes, buf);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < QK; j += 8)
      for (int k = 0; k < 8; ++k)
        acc[k] += buf[j + k] * x[j + k];
    sum += ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
           ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  }
  return sum;
}

// Scalar quantised-activation kernels: exact integer sums per block, scaled
// once by the product of the two block scales.
inline float dotQ8_0Q8(const void *row, const BlockQ8Act *x, int64_t n) {
  const BlockQ8_0 *b = static_cast<const BlockQ8_0 *>(row);
  float sum = 0;
  for (int64_t blk = 0; blk < n / QK8_0; ++blk) {
    int32_t s = 0;
    for (int j = 0; j < QK8_0; ++j)
      s += int32_t(b[blk].qs[j]) * int32_t(x[blk].qs[j]);
    sum += fp16ToF32(b[blk].d) * x[blk].d * float(s);
  }
  return sum;
}

inline float dotQ4_0Q8(const void *row, const BlockQ8Act *x, int64_t n) {
  const BlockQ4_0 *b = static_cast<const BlockQ4_0 *>(row);
  float sum = 0;
  for (int64_t blk = 0; blk < n / QK4_0; ++blk) {
    int32_t s = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      s += (int32_t(b[blk].qs[j] & 0x0F) - 8) * int32_t(x[blk].qs[j]);
      s += (int32_t(b[blk].qs[j] >> 4) - 8) * int32_t(x[blk].qs[j + QK4_0 / 2]);
    }
    sum += fp16ToF32(b[blk].d) * x[blk].d * float(s);
  }
  return sum;
}

// Q5_0 times an 8-bit activation: values 0..31 with an offset of 16, the
// fifth bits from qh (element j: bit j).
inline float dotQ5_0Q8(const void *row, const BlockQ8Act *x, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  float sum = 0;
  for (int64_t blk = 0; blk < n / QK5_0; ++blk, p += sizeof(BlockQ5_0)) {
    uint32_t qh;
    std::memcpy(&qh, p + 2, 4);
    const uint8_t *qs = p + 6;
    int32_t s = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int32_t lo = int32_t((qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16;
      const int32_t hi =
          int32_t((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      s += lo * int32_t(x[blk].qs[j]) + hi * int32_t(x[blk].qs[j + 16]);
    }
    sum += qblk::half(p) * x[blk].d * float(s);
  }
  return sum;
}

// ---- AVX2 + FMA + F16C kernels ---------------------------------------------

#ifdef PINFER_X86
#ifndef PINFER_AVX2
#define PINFER_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

// A generated token's products read rows that are not in any cache, a few
// streams at a time; the hardware prefetchers alone kept them at 55-70 %
// of the bandwidth probe's rate (pinfer-bench-bandwidth --kernels), and
// asking for the lines kPrefetchAhead bytes ahead brought F16 to 84 %,
// Q8_0 to 68 %.
// Lines [p + kPrefetchAhead, + Lines * 64) towards L1. A hint: lines past
// the end of a mapping are dropped, not faulted. Past a row's end they are
// the next row's, which a dense product reads next (bounding them by the
// row cost dense Q4_0 rows, shorter than the distance, a quarter of their
// rate); a sparse FFN's loop asks for each chosen row's start itself
// (prefetchRowStart).
template <int Lines> inline void prefetchAhead(const void *p) {
  for (int l = 0; l < Lines; ++l)
    _mm_prefetch(static_cast<const char *>(p) + kPrefetchAhead + 64 * l,
                 _MM_HINT_T0);
}

PINFER_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

PINFER_AVX2 inline float halfToFloat(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

// The f16 at p, which a file aligns only to 2 bytes at best (qblk::half's
// value: the conversion is exact either way).
PINFER_AVX2 inline float halfAt(const uint8_t *p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return halfToFloat(h);
}

// 8 signed bytes at p -> 8 floats.
PINFER_AVX2 inline __m256 bytesToPs(__m128i bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
}

PINFER_AVX2 inline float dotF32Avx2(const void *row, const float *x,
                                    int64_t n) {
  const float *w = static_cast<const float *>(row);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8),
                         a1);
  }
  for (; i + 8 <= n; i += 8)
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float sum = hsum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i)
    sum += w[i] * x[i];
  return sum;
}

PINFER_AVX2 inline float dotF16Avx2(const void *row, const float *x,
                                    int64_t n) {
  const uint16_t *w = static_cast<const uint16_t *>(row);
  // Four accumulators: one FMA chain's latency (4-5 cycles) would otherwise
  // bound the loop below the rate at which memory delivers the row.
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    prefetchAhead<1>(w + i);
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
    __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
    __m256 w2 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 16)));
    __m256 w3 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 24)));
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
    a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
  }
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i)
    sum += halfToFloat(w[i]) * x[i];
  return sum;
}

PINFER_AVX2 inline float dotBF16Avx2(const void *row, const float *x,
                                     int64_t n) {
  const uint16_t *w = static_cast<const uint16_t *>(row);
  __m256 a0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i wi =
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i)));
    __m256 wf = _mm256_castsi256_ps(_mm256_slli_epi32(wi, 16));
    a0 = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), a0);
  }
  float sum = hsum(a0);
  for (; i < n; ++i)
    sum += bf16ToF32(w[i]) * x[i];
  return sum;
}

// 8 signed bytes at p -> 8 floats; the sign extension reads memory
// directly (no shuffle to reach the upper bytes of a register).
PINFER_AVX2 inline __m256 load8BytesPs(const int8_t *p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

PINFER_AVX2 inline __m256 q8BlockF32(const BlockQ8_0 &b, const float *x,
                                     __m256 acc) {
  __m256 s = _mm256_mul_ps(load8BytesPs(b.qs), _mm256_loadu_ps(x));
  s = _mm256_fmadd_ps(load8BytesPs(b.qs + 8), _mm256_loadu_ps(x + 8), s);
  s = _mm256_fmadd_ps(load8BytesPs(b.qs + 16), _mm256_loadu_ps(x + 16), s);
  s = _mm256_fmadd_ps(load8BytesPs(b.qs + 24), _mm256_loadu_ps(x + 24), s);
  return _mm256_fmadd_ps(_mm256_set1_ps(halfToFloat(b.d)), s, acc);
}

// Quantised-activation kernels. sign(w) is moved onto x so that maddubs
// (unsigned x signed bytes) can multiply two signed operands: |w| * (x *
// sign w) = w * x. Pairs of products fit in int16 (2 * 128 * 127 < 2^15).
PINFER_AVX2 inline __m256 mulSumI8(__m256i w, __m256i x) {
  __m256i p16 =
      _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

// The products of one row with NT tokens' activations at once (x + t *
// xStride blocks for token t), the row's blocks unpacked once for all of
// them: each token's result is bitwise its one-token product (the same
// operations in the same order), so a batch multiplies as tokens one by
// one do. NT = 1 is the one-token kernel; kTokensAtOnce (ggml_types.h)
// the multi-token one.

// The one-token kernel of a multi-token one: its NT = 1 instantiation.
template <class X,
          void (*Kernel)(const void *, const X *, int64_t, int64_t, float *)>
PINFER_AVX2 inline float oneToken(const void *row, const X *x, int64_t n) {
  float out;
  Kernel(row, x, 0, n, &out);
  return out;
}

// A Q8_0 or Q4_0 block's 32 values as floats (not yet scaled): e[i] holds
// elements 8i..8i+7.
template <class B> PINFER_AVX2 inline void widenBlock(const B &b, __m256 *e) {
  if constexpr (std::is_same_v<B, BlockQ8_0>) {
    for (int i = 0; i < 4; ++i)
      e[i] = load8BytesPs(b.qs + 8 * i);
  } else {
    // Bytes j..j+7 widened to 32-bit lanes straight from memory: their
    // low nibbles are elements j..j+7, their high nibbles j+16..j+23.
    const __m256i mask = _mm256_set1_epi32(0x0F), eight = _mm256_set1_epi32(8);
    const __m256i v0 =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)b.qs));
    const __m256i v1 =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b.qs + 8)));
    e[0] =
        _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v0, mask), eight));
    e[1] =
        _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v1, mask), eight));
    e[2] =
        _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v0, 4), eight));
    e[3] =
        _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v1, 4), eight));
  }
}

// The widened block's unscaled product with 32 activations xv[0..4), in
// the order every f32 Q8_0/Q4_0 kernel keeps.
PINFER_AVX2 inline __m256 widenedDot(const __m256 *e, const __m256 *xv) {
  __m256 s = _mm256_mul_ps(e[0], xv[0]);
  s = _mm256_fmadd_ps(e[1], xv[1], s);
  s = _mm256_fmadd_ps(e[2], xv[2], s);
  return _mm256_fmadd_ps(e[3], xv[3], s);
}

// Q8_0 and Q4_0 rows times NT f32 activations (x_t = x + t * xStride): the
// down projection of a dense layer, whose input stays f32, in prompts. A
// block's 32 values are widened to floats once for all tokens; each
// token's float operations are those of the one-token kernel (NT = 1), so
// its result is bitwise that product. Consecutive blocks alternate between
// two accumulators.
template <class B, int NT>
PINFER_AVX2 inline void dotBlocksF32NAvx2(const void *row, const float *x,
                                          int64_t xStride, int64_t n,
                                          float *out) {
  const B *b = static_cast<const B *>(row);
  __m256 acc[NT][2];
  for (int t = 0; t < NT; ++t)
    acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / QK8_0; ++blk) {
    __m256 e[4]; // elements 8i..8i+7
    widenBlock(b[blk], e);
    const __m256 d = _mm256_set1_ps(halfToFloat(b[blk].d));
    for (int t = 0; t < NT; ++t) {
      const float *xt = x + t * xStride + blk * QK8_0;
      const __m256 xv[4] = {_mm256_loadu_ps(xt), _mm256_loadu_ps(xt + 8),
                            _mm256_loadu_ps(xt + 16), _mm256_loadu_ps(xt + 24)};
      acc[t][blk & 1] = _mm256_fmadd_ps(d, widenedDot(e, xv), acc[t][blk & 1]);
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
}

PINFER_AVX2 inline float dotQ8_0Avx2(const void *row, const float *x,
                                     int64_t n) {
  return oneToken<float, dotBlocksF32NAvx2<BlockQ8_0, 1>>(row, x, n);
}
PINFER_AVX2 inline float dotQ4_0Avx2(const void *row, const float *x,
                                     int64_t n) {
  return oneToken<float, dotBlocksF32NAvx2<BlockQ4_0, 1>>(row, x, n);
}
template <class B>
PINFER_AVX2 inline void dotBlocksF32x4Avx2(const void *row, const float *x,
                                           int64_t xStride, int64_t n,
                                           float *out) {
  dotBlocksF32NAvx2<B, kTokensAtOnce>(row, x, xStride, n, out);
}

// Block `blk` of a Q8_0 row into each token's accumulator `Slot`. The
// slot is a template argument: indexed at run time (blk & 1), the
// accumulators lived on the stack, each product a load and a store.
template <int NT, int Slot>
PINFER_AVX2 inline void q8_0Q8Step(const BlockQ8_0 *b, const BlockQ8Act *x,
                                   int64_t xStride, int64_t blk,
                                   __m256 (&a)[NT][2]) {
  const __m256i w = _mm256_loadu_si256((const __m256i *)b[blk].qs);
  const float dw = halfToFloat(b[blk].d);
  for (int t = 0; t < NT; ++t) {
    const BlockQ8Act &xb = x[t * xStride + blk];
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)xb.qs);
    a[t][Slot] =
        _mm256_fmadd_ps(_mm256_set1_ps(dw * xb.d), mulSumI8(w, x0), a[t][Slot]);
  }
}

template <int NT>
PINFER_AVX2 inline void dotQ8_0Q8NAvx2(const void *row, const BlockQ8Act *x,
                                       int64_t xStride, int64_t n, float *out) {
  const BlockQ8_0 *b = static_cast<const BlockQ8_0 *>(row);
  __m256 a[NT][2];
  for (int t = 0; t < NT; ++t)
    a[t][0] = a[t][1] = _mm256_setzero_ps();
  // Consecutive blocks alternate between two accumulators.
  const int64_t nb = n / QK8_0;
  int64_t blk = 0;
  for (; blk + 2 <= nb; blk += 2) {
    if (NT == 1) // a generated token: memory-bound
      prefetchAhead<2>(b + blk);
    q8_0Q8Step<NT, 0>(b, x, xStride, blk, a);
    q8_0Q8Step<NT, 1>(b, x, xStride, blk + 1, a);
  }
  if (blk < nb)
    q8_0Q8Step<NT, 0>(b, x, xStride, blk, a);
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(_mm256_add_ps(a[t][0], a[t][1]));
}

PINFER_AVX2 inline float dotQ8_0Q8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return oneToken<BlockQ8Act, dotQ8_0Q8NAvx2<1>>(row, x, n);
}
PINFER_AVX2 inline void dotQ8_0Q8x4Avx2(const void *row, const BlockQ8Act *x,
                                        int64_t xStride, int64_t n,
                                        float *out) {
  dotQ8_0Q8NAvx2<kTokensAtOnce>(row, x, xStride, n, out);
}

// 16 bytes of packed nibbles -> 32 unsigned bytes 0..15 in element order
// (low nibbles are elements 0..15, high nibbles 16..31).
PINFER_AVX2 inline __m256i unpackQ4(const uint8_t *qs) {
  __m128i q = _mm_loadu_si128((const __m128i *)qs);
  const __m128i mask = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), mask),
                          _mm_and_si128(q, mask));
}

// A block's 32 values as unsigned bytes for maddubs, and what turns their
// integer sum with an activation block into the product: value = d * q -
// c * Offset, so a block adds d * da * isum - Offset * c * sa, the offset
// taken off once at the end through the activation's sum s.
struct UnsignedBlock {
  __m256i q;
  float d, c;
};

// Q4_0: the nibbles, offset 8.
PINFER_AVX2 inline UnsignedBlock q4Block(const BlockQ4_0 &b) {
  const float dw = halfToFloat(b.d);
  return {unpackQ4(b.qs), dw, dw};
}

// Unpacked block `u` (block `blk` of a row) into each token's accumulators
// `Slot`. The slot is a template argument, as in q8_0Q8Step.
template <int NT, int Slot>
PINFER_AVX2 inline void
offsetBlockMul(const UnsignedBlock &u, const BlockQ8Act *x, int64_t xStride,
               int64_t blk, __m256 (&a)[NT][2], float (&c)[NT][2]) {
  for (int t = 0; t < NT; ++t) {
    const BlockQ8Act &xb = x[t * xStride + blk];
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)xb.qs);
    const __m256 p = _mm256_cvtepi32_ps(
        _mm256_madd_epi16(_mm256_maddubs_epi16(u.q, x0), _mm256_set1_epi16(1)));
    c[t][Slot] += u.c * xb.s;
    a[t][Slot] = _mm256_fmadd_ps(_mm256_set1_ps(u.d * xb.d), p, a[t][Slot]);
  }
}

// A block as prepareOffsetRow left it.
PINFER_AVX2 inline UnsignedBlock preparedBlock(const PreparedBlock &b) {
  return {_mm256_loadu_si256((const __m256i *)b.q), b.d, b.c};
}

// A row of unsigned-offset blocks (Q4_0: 8, Q5_0: 16; Q4_1/Q5_1: -1, their
// mins added; or such a row's PreparedBlock, Unpack preparedBlock) times NT
// tokens' 8-bit activations: two accumulators over the blocks (consecutive
// blocks alternate), per token.
template <class B, UnsignedBlock (*Unpack)(const B &), int Offset, int NT>
PINFER_AVX2 inline void
dotOffsetBlocksNAvx2(const void *row, const BlockQ8Act *x, int64_t xStride,
                     int64_t n, float *out) {
  const B *b = static_cast<const B *>(row);
  __m256 a[NT][2];
  float c[NT][2];
  for (int t = 0; t < NT; ++t) {
    a[t][0] = a[t][1] = _mm256_setzero_ps();
    c[t][0] = c[t][1] = 0.f;
  }
  const int64_t nb = n / QK8_0;
  int64_t blk = 0;
  for (; blk + 2 <= nb; blk += 2) {
    if (NT == 1 && blk % 4 == 0) // a generated token: memory-bound
      prefetchAhead<2>(b + blk);
    offsetBlockMul<NT, 0>(Unpack(b[blk]), x, xStride, blk, a, c);
    offsetBlockMul<NT, 1>(Unpack(b[blk + 1]), x, xStride, blk + 1, a, c);
  }
  if (blk < nb)
    offsetBlockMul<NT, 0>(Unpack(b[blk]), x, xStride, blk, a, c);
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(_mm256_add_ps(a[t][0], a[t][1])) -
             float(Offset) * (c[t][0] + c[t][1]);
}

// The one-token and kTokensAtOnce-token kernels of such a format.
template <class B, UnsignedBlock (*Unpack)(const B &), int Offset>
PINFER_AVX2 inline float dotOffsetBlocksAvx2(const void *row,
                                             const BlockQ8Act *x, int64_t n) {
  return oneToken<BlockQ8Act, dotOffsetBlocksNAvx2<B, Unpack, Offset, 1>>(row,
                                                                          x, n);
}
template <class B, UnsignedBlock (*Unpack)(const B &), int Offset>
PINFER_AVX2 inline void
dotOffsetBlocksX4Avx2(const void *row, const BlockQ8Act *x, int64_t xStride,
                      int64_t n, float *out) {
  dotOffsetBlocksNAvx2<B, Unpack, Offset, kTokensAtOnce>(row, x, xStride, n,
                                                         out);
}

// A prompt's rows: each row unpacked once (prepareOffsetRow), then
// multiplied with every four tokens from the PreparedBlocks, which skips
// a block's unpacking (for Q5_0 about a third of a four-token product's
// instructions) for all but the first four. The same numbers in the same
// operations: bitwise the kernels above.
template <class B, UnsignedBlock (*Unpack)(const B &)>
PINFER_AVX2 inline void prepareOffsetRow(const void *row, int64_t n,
                                         PreparedBlock *out) {
  const B *b = static_cast<const B *>(row);
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const UnsignedBlock u = Unpack(b[i]);
    _mm256_storeu_si256((__m256i *)out[i].q, u.q);
    out[i].d = u.d;
    out[i].c = u.c;
  }
}
template <int Offset>
PINFER_AVX2 inline float dotOffsetPreparedAvx2(const void *row,
                                               const BlockQ8Act *x, int64_t n) {
  return dotOffsetBlocksAvx2<PreparedBlock, preparedBlock, Offset>(row, x, n);
}
template <int Offset>
PINFER_AVX2 inline void
dotOffsetPreparedX4Avx2(const void *row, const BlockQ8Act *x, int64_t xStride,
                        int64_t n, float *out) {
  dotOffsetBlocksX4Avx2<PreparedBlock, preparedBlock, Offset>(row, x, xStride,
                                                              n, out);
}

// 32 bits -> 32 bytes, byte j 0x10 where bit j is set: each byte picks the
// byte of `bits` that holds its bit, keeps that bit alone and compares.
PINFER_AVX2 inline __m256i fifthBits(uint32_t bits) {
  const __m256i pick =
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
                       2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_setr_epi8(
      1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128, //
      1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)), pick);
  b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
  return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}

// Q5_0: as Q4_0 with the fifth bits or-ed in, offset 16.
PINFER_AVX2 inline UnsignedBlock q5Block(const BlockQ5_0 &b) {
  const float dw = halfToFloat(b.d);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  return {_mm256_or_si256(unpackQ4(b.qs), fifthBits(qh)), dw, dw};
}

PINFER_AVX2 inline float dotQ4_0Q8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return dotOffsetBlocksAvx2<BlockQ4_0, q4Block, 8>(row, x, n);
}
PINFER_AVX2 inline float dotQ5_0Q8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return dotOffsetBlocksAvx2<BlockQ5_0, q5Block, 16>(row, x, n);
}

// ---- AVX-512 VNNI kernels --------------------------------------------------
//
// Two 32-byte blocks per 512-bit register and one vpdpbusd (unsigned x
// signed bytes, summed in fours into int32) per pair: the integer sum of
// each block is exact, as in the other kernels; only the order of the f32
// accumulation differs. Signed weights are offset by 128 to be unsigned;
// the offset comes off in the integer sums.

#ifndef PINFER_AVX512
#define PINFER_AVX512                                                          \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,"       \
                        "f16c")))
#endif

PINFER_AVX512 inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

// oneToken for kernels under the AVX-512 target, which an AVX2 caller
// could not inline.
template <class X,
          void (*Kernel)(const void *, const X *, int64_t, int64_t, float *)>
PINFER_AVX512 inline float oneTokenAvx512(const void *row, const X *x,
                                          int64_t n) {
  float out;
  Kernel(row, x, 0, n, &out);
  return out;
}

// Q5_0's 5-bit values: the nibbles with bit j of qh as byte j's 0x10, one
// masked move where AVX2 spreads the bits with a shuffle and a compare.
PINFER_AVX512 inline __m256i q5Values(const BlockQ5_0 &b) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  return _mm256_or_si256(
      unpackQ4(b.qs),
      _mm256_maskz_mov_epi8(_cvtu32_mask32(qh), _mm256_set1_epi8(0x10)));
}

// A block's 32 weights as unsigned bytes: Q8_0's plus 128, Q4_0's nibbles,
// Q5_0's 5-bit values.
template <class B, int Offset>
PINFER_AVX512 inline __m256i offsetBytes(const B &blk) {
  if constexpr (Offset == 128)
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)blk.qs),
                            _mm256_set1_epi8(char(0x80)));
  else if constexpr (Offset == 16)
    return q5Values(blk);
  else
    return unpackQ4(blk.qs);
}

// A pair of blocks' signed values (Q8_0's bytes, Q4_0's and Q5_0's values
// less their offset) and the integers that take the activations' offset
// back off: -128 * (the sum of each lane's four weights). Signed weights
// times activations offset by 128 (unsigned) give the exact int32 lanes of
// the values times the activations (runtime/dot_q8_blocks.h,
// dotBlocksIntAvx512).
struct SignedPair {
  __m512i w, corr;
};
template <class B, int Offset>
PINFER_AVX512 inline __m256i signedBytes(const B &b) {
  if constexpr (Offset == 128)
    return _mm256_loadu_si256((const __m256i *)b.qs);
  else
    return _mm256_sub_epi8(offsetBytes<B, Offset>(b),
                           _mm256_set1_epi8(char(Offset)));
}
template <class B, int Offset>
PINFER_AVX512 inline SignedPair signedPair(const B *b, int64_t blk, bool pair) {
  const __m256i w0 = signedBytes<B, Offset>(b[blk]);
  const __m256i w1 =
      pair ? signedBytes<B, Offset>(b[blk + 1]) : _mm256_setzero_si256();
  SignedPair s;
  s.w = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
  s.corr =
      _mm512_sub_epi32(_mm512_setzero_si512(),
                       _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                           _mm512_set1_epi8(char(0x80)), s.w));
  return s;
}

// Q8_0 and Q4_0 rows times f32 activations as dotBlocksF32NAvx2 multiplies
// them, R rows at once (row r at row + r * rowBytes; out[t * R + r]): the
// activation loads serve R rows, and the AVX-512 target lends the 32
// registers that R x NT x 2 accumulators need. Each row's operations are
// that kernel's, in its order, so each result is bitwise its product.
template <class B, int R, int NT>
PINFER_AVX512 inline void
dotBlocksF32RowsAvx512(const void *row, int64_t rowBytes, const float *x,
                       int64_t xStride, int64_t n, float *out) {
  __m256 acc[R][NT][2];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < n / QK8_0; ++blk) {
    __m256 e[R][4], d[R];
    for (int r = 0; r < R; ++r) {
      const B &b = reinterpret_cast<const B *>(
          static_cast<const uint8_t *>(row) + r * rowBytes)[blk];
      widenBlock(b, e[r]);
      d[r] = _mm256_set1_ps(halfToFloat(b.d));
    }
    for (int t = 0; t < NT; ++t) {
      const float *xt = x + t * xStride + blk * QK8_0;
      const __m256 xv[4] = {_mm256_loadu_ps(xt), _mm256_loadu_ps(xt + 8),
                            _mm256_loadu_ps(xt + 16), _mm256_loadu_ps(xt + 24)};
      for (int r = 0; r < R; ++r)
        acc[r][t][blk & 1] =
            _mm256_fmadd_ps(d[r], widenedDot(e[r], xv), acc[r][t][blk & 1]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      out[t * R + r] = hsum(_mm256_add_ps(acc[r][t][0], acc[r][t][1]));
}
// kRowsAtOnce rows (as DotRowsFn) x kTokensAtOnce tokens from a kernel of
// R rows, called as kernel(row r, rowBytes, args..., its out[t * R + j])
// for r = 0, R, ...: where four rows at once would need more registers
// than there are.
template <int R, class Kernel, class... Args>
PINFER_AVX512 inline void rowsBy(Kernel kernel, const void *row,
                                 int64_t rowBytes, float *out, Args... args) {
  static_assert(kRowsAtOnce % R == 0, "whole groups of R rows");
  float some[R * kTokensAtOnce];
  for (int r = 0; r < kRowsAtOnce; r += R) {
    kernel(static_cast<const uint8_t *>(row) + r * rowBytes, rowBytes, args...,
           some);
    for (int t = 0; t < kTokensAtOnce; ++t)
      for (int j = 0; j < R; ++j)
        out[t * kRowsAtOnce + r + j] = some[t * R + j];
  }
}
template <class B>
PINFER_AVX512 inline void
dotBlocksF32RowsX4Avx512(const void *row, int64_t rowBytes, const float *x,
                         int64_t xStride, int64_t n, float *out) {
  rowsBy<2>(dotBlocksF32RowsAvx512<B, 2, kTokensAtOnce>, row, rowBytes, out, x,
            xStride, n);
}

// F16 rows times f32 activations, R rows x NT tokens (row r at row + r *
// rowBytes, x_t = x + t * xStride; out[t * R + r]), each product bitwise
// dotF16Avx2's: its accumulators a0|a1 and a2|a3 are the halves of two
// 512-bit registers (the same FMAs lane by lane), its eight-value steps
// past the last 32 go into a0, and the sum and the scalar tail are its own.
// Each weight conversion serves NT tokens and each activation load R rows.
PINFER_AVX512 inline __m256 upperHalf(__m512 v) {
  return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}
template <int R, int NT>
PINFER_AVX512 inline void dotF16RowsAvx512(const void *row, int64_t rowBytes,
                                           const float *x, int64_t xStride,
                                           int64_t n, float *out) {
  auto rowAt = [&](int r) {
    return reinterpret_cast<const uint16_t *>(
        static_cast<const uint8_t *>(row) + r * rowBytes);
  };
  __m512 a01[R][NT], a23[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      a01[r][t] = a23[r][t] = _mm512_setzero_ps();
  const int64_t n32 = n / 32 * 32;
  for (int64_t i = 0; i < n32; i += 32) {
    __m512 w01[R], w23[R];
    for (int r = 0; r < R; ++r) {
      const uint16_t *w = rowAt(r) + i;
      if (NT == 1) // one token: memory-bound
        prefetchAhead<1>(w);
      w01[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w));
      w23[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + 16)));
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 x01 = _mm512_loadu_ps(x + t * xStride + i),
                   x23 = _mm512_loadu_ps(x + t * xStride + i + 16);
      for (int r = 0; r < R; ++r) {
        a01[r][t] = _mm512_fmadd_ps(w01[r], x01, a01[r][t]);
        a23[r][t] = _mm512_fmadd_ps(w23[r], x23, a23[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) {
      const uint16_t *w = rowAt(r);
      const float *xt = x + t * xStride;
      __m256 a0 = _mm512_castps512_ps256(a01[r][t]);
      const __m256 a1 = upperHalf(a01[r][t]),
                   a2 = _mm512_castps512_ps256(a23[r][t]),
                   a3 = upperHalf(a23[r][t]);
      int64_t i = n32;
      for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(
            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))),
            _mm256_loadu_ps(xt + i), a0);
      float sum =
          hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      for (; i < n; ++i)
        sum += halfToFloat(w[i]) * xt[i];
      out[t * R + r] = sum;
    }
}
// Its kTokensAtOnce-token and rows x tokens forms.
PINFER_AVX512 inline void dotF16x4Avx512(const void *row, const float *x,
                                         int64_t xStride, int64_t n,
                                         float *out) {
  dotF16RowsAvx512<1, kTokensAtOnce>(row, 0, x, xStride, n, out);
}
// Four rows share each activation load (the activations of a prompt's
// chunk come from L2, the rows from L1), two tokens at a time.
PINFER_AVX512 inline void dotF16RowsX4Avx512(const void *row, int64_t rowBytes,
                                             const float *x, int64_t xStride,
                                             int64_t n, float *out) {
  static_assert(kRowsAtOnce == 4 && kTokensAtOnce % 2 == 0);
  for (int t = 0; t < kTokensAtOnce; t += 2)
    dotF16RowsAvx512<4, 2>(row, rowBytes, x + t * xStride, xStride, n,
                           out + t * kRowsAtOnce);
}

// ---- Q4_0 rows with their scales first (ggml_types.h) ----------------------
//
// The activation's share of a product with rows stored scales first,
// prepared once per token (Q4SfAct): 64 bytes per pair of blocks, and per
// eight blocks their scales and offset corrections. For Q4_0 the pairs 2q
// and 2q + 1 hold blocks 4q .. 4q + 3's elements 0-15 and then their
// elements 16-31 (the low and the high nibbles of the four blocks' 64
// bytes, in order); for Q8_0 a pair holds its two blocks as they are. The
// products are dotQ4PrepIntAvx512 and dotQ8_0PrepRowsAvx512
// (runtime/dot_q8_blocks.h).
struct alignas(64) Q4SfActPair {
  __m512i xs;
  // In a group's first pair (blocks 8g and 8g + 1): the group's eight
  // activation scales (f32), then CorrScale times each block's sum of
  // quants (int32), zero past the row's last block. Unused in the others.
  __m512i group;
};
// out[0 .. q4SfActCount(n)) (runtime/kernels.h: whole fours of blocks) from the
// quantised activation x (zeros past its last block), and CorrScale times each
// block's sum of quants: 8 for Q4_0's nibbles (their offset), 128 for Q8_0's
// bytes taken as unsigned (w + 128). Bytes 16h .. 16h + 15 of block blk of x
// (zeros from block nb on).
PINFER_AVX512 inline __m128i actHalf(const BlockQ8Act *x, int64_t nb,
                                     int64_t blk, int h) {
  return blk < nb ? _mm_loadu_si128((const __m128i *)(x[blk].qs + 16 * h))
                  : _mm_setzero_si128();
}
template <bool Q4, int CorrScale>
PINFER_AVX512 inline void prepActPairs(const BlockQ8Act *x, int64_t n,
                                       Q4SfActPair *out) {
  const int64_t nb = n / QK8_0;
  for (int64_t blk = 0; blk < 4 * ((nb + 3) / 4); blk += 4)
    for (int k = 0; k < 2; ++k) {
      // Q4_0: k = 0 the four blocks' first halves, k = 1 their second;
      // Q8_0: k = 0 blocks blk and blk + 1, k = 1 the next two.
      const __m128i p0 = Q4 ? actHalf(x, nb, blk, k)
                            : actHalf(x, nb, blk + 2 * k, 0),
                    p1 = Q4 ? actHalf(x, nb, blk + 1, k)
                            : actHalf(x, nb, blk + 2 * k, 1),
                    p2 = Q4 ? actHalf(x, nb, blk + 2, k)
                            : actHalf(x, nb, blk + 2 * k + 1, 0),
                    p3 = Q4 ? actHalf(x, nb, blk + 3, k)
                            : actHalf(x, nb, blk + 2 * k + 1, 1);
      out[blk / 2 + k].xs =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(p1, p0)),
                             _mm256_set_m128i(p3, p2), 1);
    }
  for (int64_t g = 0; g < nb; g += 8) {
    alignas(32) float scales[8] = {};
    alignas(32) int32_t corr[8] = {};
    for (int64_t j = 0; j < 8 && g + j < nb; ++j) {
      scales[j] = x[g + j].d;
      int32_t sum = 0;
      for (int i = 0; i < QK8_0; ++i)
        sum += x[g + j].qs[i];
      corr[j] = CorrScale * sum;
    }
    out[g / 2].group = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_castps_si256(_mm256_load_ps(scales))),
        _mm256_load_si256((const __m256i *)corr), 1);
  }
}
PINFER_AVX512 inline void prepQ4SfAct(const BlockQ8Act *x, int64_t n,
                                      Q4SfActPair *out) {
  prepActPairs<true, 8>(x, n, out);
}
PINFER_AVX512 inline void prepQ8_0Act(const BlockQ8Act *x, int64_t n,
                                      Q4SfActPair *out) {
  prepActPairs<false, 128>(x, n, out);
}
// ---- transposed down rows -------------------------------------------------

// 8 elements of a row from column c (a multiple of 8), as floats: a float
// type's, or a Q8_0/Q4_0 row's values as their dequantisation computes
// them (d * q, d * (q - 8): the same float product), which lets a
// transposed down projection that a file stores in those types stay in
// them (TypeTraits::keepsTransposedRows).
template <GGMLType T>
PINFER_AVX2 inline __m256 load8(const void *row, int64_t c) {
  static_assert(T == GGMLType::F32 || T == GGMLType::F16 ||
                    T == GGMLType::BF16 || T == GGMLType::Q8_0 ||
                    T == GGMLType::Q4_0,
                "a type whose rows load8 reads");
  const uint8_t *p = static_cast<const uint8_t *>(row);
  if constexpr (T == GGMLType::F32)
    return _mm256_loadu_ps(static_cast<const float *>(row) + c);
  else if constexpr (T == GGMLType::F16)
    return _mm256_cvtph_ps(_mm_loadu_si128(
        (const __m128i *)(static_cast<const uint16_t *>(row) + c)));
  else if constexpr (T == GGMLType::BF16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(
            (const __m128i *)(static_cast<const uint16_t *>(row) + c))),
        16));
  else if constexpr (T == GGMLType::Q8_0) {
    const uint8_t *b = p + (c / QK8_0) * sizeof(BlockQ8_0);
    const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
        _mm_loadl_epi64((const __m128i *)(b + 2 + c % QK8_0))));
    return _mm256_mul_ps(_mm256_set1_ps(halfAt(b)), q);
  } else {
    // Elements j < 16 of a block are the low nibbles of bytes j, the
    // others the high nibbles of bytes j - 16.
    const uint8_t *b = p + (c / QK4_0) * sizeof(BlockQ4_0);
    const int64_t j = c % QK4_0;
    __m256i v = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64((const __m128i *)(b + 2 + (j & 15))));
    v = j < 16 ? _mm256_and_si256(v, _mm256_set1_epi32(0x0F))
               : _mm256_srli_epi32(v, 4);
    const __m256 q =
        _mm256_cvtepi32_ps(_mm256_sub_epi32(v, _mm256_set1_epi32(8)));
    return _mm256_mul_ps(_mm256_set1_ps(halfAt(b)), q);
  }
}

template <GGMLType T> inline float at(const void *row, int64_t c) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  if constexpr (T == GGMLType::F32)
    return static_cast<const float *>(row)[c];
  else if constexpr (T == GGMLType::F16)
    return fp16ToF32(static_cast<const uint16_t *>(row)[c]);
  else if constexpr (T == GGMLType::BF16)
    return bf16ToF32(static_cast<const uint16_t *>(row)[c]);
  else if constexpr (T == GGMLType::Q8_0) {
    const uint8_t *b = p + (c / QK8_0) * sizeof(BlockQ8_0);
    return qblk::half(b) * float(int8_t(b[2 + c % QK8_0]));
  } else {
    const uint8_t *b = p + (c / QK4_0) * sizeof(BlockQ4_0);
    const int64_t j = c % QK4_0;
    const uint8_t q = b[2 + (j & 15)];
    return qblk::half(b) * float(int(j < 16 ? q & 0x0F : q >> 4) - 8);
  }
}

// The 32 values of the Q8_0/Q4_0 block at column c (a multiple of 32) as
// load8 gives them, 8 per vector.
template <GGMLType T>
PINFER_AVX2 inline void load32(const void *row, int64_t c, __m256 *w) {
  static_assert(T == GGMLType::Q8_0 || T == GGMLType::Q4_0, "a block type");
  const uint8_t *p = static_cast<const uint8_t *>(row);
  if constexpr (T == GGMLType::Q8_0) {
    const uint8_t *b = p + (c / QK8_0) * sizeof(BlockQ8_0);
    const __m256 d = _mm256_set1_ps(halfAt(b));
    for (int k = 0; k < 4; ++k)
      w[k] = _mm256_mul_ps(
          d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                 _mm_loadl_epi64((const __m128i *)(b + 2 + 8 * k)))));
  } else {
    const uint8_t *b = p + (c / QK4_0) * sizeof(BlockQ4_0);
    const __m256 d = _mm256_set1_ps(halfAt(b));
    const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(q, mask),
                  hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi,
                              _mm_srli_si128(hi, 8)};
    const __m256i eight = _mm256_set1_epi32(8);
    for (int k = 0; k < 4; ++k)
      w[k] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(
                                  _mm256_cvtepu8_epi32(parts[k]), eight)));
  }
}

// y[c] = fma(a[i], row_i[c], y[c]) for i = 0..N-1 in order: the rows'
// pointers and coefficients are copied into locals first, so that the
// compiler keeps them in registers instead of reloading them after every
// store to y (which it must assume may alias r and a).
template <GGMLType T, int N>
PINFER_AVX2 inline void axpyRowsNAvx2(const void *const *r, const float *a,
                                      float *y, int64_t c0, int64_t c1) {
  const void *rows[N];
  float coef[N];
  __m256 coef8[N];
  for (int i = 0; i < N; ++i) {
    rows[i] = r[i];
    coef[i] = a[i];
    coef8[i] = _mm256_set1_ps(a[i]);
  }
  int64_t c = c0;
  if constexpr (T == GGMLType::Q8_0 || T == GGMLType::Q4_0) {
    // A block's 32 values at a time (c0, c1 are multiples of 32): its
    // scale converted and its quants unpacked once per row, not per 8
    // values; each element still gets the same FMAs in the same order.
    for (; c + 32 <= c1; c += 32) {
      __m256 v[4];
      for (int k = 0; k < 4; ++k)
        v[k] = _mm256_loadu_ps(y + c + 8 * k);
      for (int i = 0; i < N; ++i) {
        __m256 w[4];
        load32<T>(rows[i], c, w);
        for (int k = 0; k < 4; ++k)
          v[k] = _mm256_fmadd_ps(coef8[i], w[k], v[k]);
      }
      for (int k = 0; k < 4; ++k)
        _mm256_storeu_ps(y + c + 8 * k, v[k]);
    }
  }
  for (; c + 8 <= c1; c += 8) {
    __m256 v = _mm256_loadu_ps(y + c);
    for (int i = 0; i < N; ++i)
      v = _mm256_fmadd_ps(coef8[i], load8<T>(rows[i], c), v);
    _mm256_storeu_ps(y + c, v);
  }
  for (; c < c1; ++c) {
    float v = y[c];
    for (int i = 0; i < N; ++i)
      v = std::fma(coef[i], at<T>(rows[i], c), v);
    y[c] = v;
  }
}

// Up to four rows per pass over y, each element updated by the same
// sequence of fused multiply-adds as one row at a time, so that the
// grouping does not change a bit of the result (AxpyRowsFn).
template <GGMLType T>
PINFER_AVX2 inline void axpyRowsAvx2(const void *const *r, const float *a,
                                     int n, float *y, int64_t c0, int64_t c1) {
  switch (n) {
  case 4:
    return axpyRowsNAvx2<T, 4>(r, a, y, c0, c1);
  case 3:
    return axpyRowsNAvx2<T, 3>(r, a, y, c0, c1);
  case 2:
    return axpyRowsNAvx2<T, 2>(r, a, y, c0, c1);
  case 1:
    return axpyRowsNAvx2<T, 1>(r, a, y, c0, c1);
  default:
    return;
  }
}

// The decoded formats: the decoder inlined into the AVX2 function, then
// two FMA chains per block.
template <DecodeBlockFn Decode, int QK, int Bytes>
PINFER_AVX2 inline float dotBlocksAvx2(const void *row, const float *x,
                                       int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  alignas(32) float buf[QK];
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    Decode(p + b * Bytes, buf);
    for (int j = 0; j < QK; j += 16) {
      a0 = _mm256_fmadd_ps(_mm256_load_ps(buf + j), _mm256_loadu_ps(x + j), a0);
      a1 = _mm256_fmadd_ps(_mm256_load_ps(buf + j + 8),
                           _mm256_loadu_ps(x + j + 8), a1);
    }
  }
  return hsum(_mm256_add_ps(a0, a1));
}

#endif // PINFER_X86

} // namespace dotk
} // namespace pinfer
