// The 8-bit-activation products of the formats of runtime/quant_blocks.h:
// the affine legacy formats (Q4_1, Q5_1) and the K-quants (Q2_K..Q6_K).
// Their rows multiply the same quantised activation as Q8_0/Q4_0/Q5_0
// (BlockQ8Act, one f32 scale per 32 elements), so a layer quantises its
// input once whatever mix of types its matrices have (a Q4_K_M file mixes
// Q4_K, Q6_K, Q5_0 and Q8_0 on one input).
//
// llama.cpp quantises the input of K-quant products with one scale per 256
// elements (Q8_K). A scale per 32 elements is finer (its rounding error is
// at most that of Q8_K's, block by block) and costs one f32 multiply-add per
// 32 elements, against Q8_K's one per 256: the products stay integer sums
// of bytes, exact, within each 32- or 16-element sub-block, weighted by the
// sub-block's integer scale; a min or offset comes off through the
// activation block's sum (BlockQ8Act::s) or, for 16-element sub-blocks,
// an integer sum of its half.
//
// Portable loops, plus AVX2 versions of every type and AVX-512 VNNI ones of
// Q4_K, Q5_K and Q6_K. Each kernel computes the same integer sums as its
// portable twin; only the order of the f32 accumulation differs.
#pragma once

#include "runtime/decode_blocks_avx2.h"
#include "runtime/dot_kernels.h"
#include "runtime/quant_blocks.h"

#include <algorithm>
#include <cstddef>

namespace pinfer {
namespace dotk {

// ---- portable kernels ------------------------------------------------------

inline int32_t isumI8(const int8_t *w, const int8_t *x, int n) {
  int32_t s = 0;
  for (int i = 0; i < n; ++i)
    s += int32_t(w[i]) * int32_t(x[i]);
  return s;
}

inline int32_t sumI8(const int8_t *x, int n) {
  int32_t s = 0;
  for (int i = 0; i < n; ++i)
    s += x[i];
  return s;
}

// Q4_1/Q5_1: x = d q + m, so sum x a = d da isum(q, qa) + m sum a, and
// sum a = BlockQ8Act::s. Bits: the block's values 0..15 (or 0..31).
template <bool Five>
inline float dotAffineQ8(const void *row, const BlockQ8Act *x, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const size_t bytes = Five ? sizeof(BlockQ5_1) : sizeof(BlockQ4_1);
  float sum = 0;
  for (int64_t blk = 0; blk < n / QK8_0; ++blk, p += bytes) {
    uint32_t qh = 0;
    if (Five)
      std::memcpy(&qh, p + 4, 4);
    const uint8_t *qs = p + (Five ? 8 : 4);
    int8_t q[QK8_0];
    for (int j = 0; j < 16; ++j) {
      q[j] = int8_t((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
      q[j + 16] = int8_t((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    }
    const float d = qblk::half(p), m = qblk::half(p + 2);
    sum += d * x[blk].d * float(isumI8(q, x[blk].qs, QK8_0)) + m * x[blk].s;
  }
  return sum;
}

inline float dotQ4_1Q8(const void *row, const BlockQ8Act *x, int64_t n) {
  return dotAffineQ8<false>(row, x, n);
}
inline float dotQ5_1Q8(const void *row, const BlockQ8Act *x, int64_t n) {
  return dotAffineQ8<true>(row, x, n);
}

// Q4_K/Q5_K: 8 sub-blocks of 32, one per activation block; x = d sc q -
// dmin m, so a sub-block adds d sc da isum(q, qa) - dmin m sa.
template <bool Five>
inline float dotK4K5Q8(const void *row, const BlockQ8Act *x, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const size_t bytes = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  float sum = 0;
  for (int64_t i = 0; i < n / QK_K; ++i, p += bytes, x += 8) {
    const uint8_t *qh = p + 16;
    const uint8_t *qs = p + (Five ? 48 : 16);
    float sd = 0, sm = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      qblk::scaleMinK4(j, p + 4, sc, m);
      const uint8_t *q = qs + 32 * (j / 2);
      const int shift = 4 * (j & 1);
      int8_t v[32];
      for (int l = 0; l < 32; ++l)
        v[l] = int8_t(((q[l] >> shift) & 0x0F) |
                      (Five ? ((qh[l] >> j) & 1) << 4 : 0));
      sd += x[j].d * float(int32_t(sc) * isumI8(v, x[j].qs, 32));
      sm += float(m) * x[j].s;
    }
    sum += qblk::half(p) * sd - qblk::half(p + 2) * sm;
  }
  return sum;
}

inline float dotQ4_KQ8(const void *row, const BlockQ8Act *x, int64_t n) {
  return dotK4K5Q8<false>(row, x, n);
}
inline float dotQ5_KQ8(const void *row, const BlockQ8Act *x, int64_t n) {
  return dotK4K5Q8<true>(row, x, n);
}

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales, x = d sc (q - 32);
// activation block k of a 128-value half holds sub-blocks 2k and 2k+1.
inline float dotQ6_KQ8(const void *row, const BlockQ8Act *x, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  float sum = 0;
  for (int64_t i = 0; i < n / QK_K; ++i, p += sizeof(BlockQ6_K)) {
    const int8_t *scales = reinterpret_cast<const int8_t *>(p + 192);
    float sd = 0;
    for (int h = 0; h < 2; ++h, x += 4) {
      const uint8_t *ql = p + 64 * h, *qh = p + 128 + 32 * h;
      const int8_t *sc = scales + 8 * h;
      for (int k = 0; k < 4; ++k) {
        int8_t v[32];
        for (int l = 0; l < 32; ++l) {
          const uint8_t lo =
              k < 2 ? ql[l + 32 * k] & 0x0F : ql[l + 32 * (k - 2)] >> 4;
          v[l] = int8_t((lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32);
        }
        const int32_t s =
            int32_t(sc[2 * k]) * isumI8(v, x[k].qs, 16) +
            int32_t(sc[2 * k + 1]) * isumI8(v + 16, x[k].qs + 16, 16);
        sd += x[k].d * float(s);
      }
    }
    sum += qblk::half(p + 208) * sd;
  }
  return sum;
}

// Q2_K: 16 sub-blocks of 16, 4-bit scale and min each, x = d sc q - dmin
// m with q in 0..3; activation block k of a 128-value half holds the
// values at bit pair k of its 32 bytes (sub-blocks 2k, 2k+1 of the half).
inline float dotQ2_KQ8(const void *row, const BlockQ8Act *x, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  float sum = 0;
  for (int64_t i = 0; i < n / QK_K; ++i, p += sizeof(BlockQ2_K)) {
    float sd = 0, sm = 0;
    for (int h = 0; h < 2; ++h, x += 4) {
      const uint8_t *q = p + 16 + 32 * h, *sc = p + 8 * h;
      for (int k = 0; k < 4; ++k) {
        int8_t v[32];
        for (int l = 0; l < 32; ++l)
          v[l] = int8_t((q[l] >> (2 * k)) & 3);
        const uint8_t a = sc[2 * k], b = sc[2 * k + 1];
        const int32_t s = int32_t(a & 0x0F) * isumI8(v, x[k].qs, 16) +
                          int32_t(b & 0x0F) * isumI8(v + 16, x[k].qs + 16, 16);
        const int32_t m = int32_t(a >> 4) * sumI8(x[k].qs, 16) +
                          int32_t(b >> 4) * sumI8(x[k].qs + 16, 16);
        sd += x[k].d * float(s);
        sm += x[k].d * float(m);
      }
    }
    sum += qblk::half(p + 80) * sd - qblk::half(p + 82) * sm;
  }
  return sum;
}

// Q3_K: as Q2_K's layout with signed 6-bit scales (minus 32) and q - 4
// unless the value's hmask bit is set; no min.
inline float dotQ3_KQ8(const void *row, const BlockQ8Act *x, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  float sum = 0;
  for (int64_t i = 0; i < n / QK_K; ++i, p += sizeof(BlockQ3_K)) {
    int8_t scales[16];
    qblk::scalesQ3_K(p + 96, scales);
    float sd = 0;
    for (int h = 0; h < 2; ++h, x += 4) {
      const uint8_t *q = p + 32 + 32 * h;
      for (int k = 0; k < 4; ++k) {
        const uint8_t bit = uint8_t(1u << (4 * h + k));
        int8_t v[32];
        for (int l = 0; l < 32; ++l)
          v[l] = int8_t(((q[l] >> (2 * k)) & 3) - ((p[l] & bit) ? 0 : 4));
        const int8_t *sc = scales + 8 * h + 2 * k;
        const int32_t s =
            int32_t(sc[0] - 32) * isumI8(v, x[k].qs, 16) +
            int32_t(sc[1] - 32) * isumI8(v + 16, x[k].qs + 16, 16);
        sd += x[k].d * float(s);
      }
    }
    sum += qblk::half(p + 108) * sd;
  }
  return sum;
}

// ---- AVX2 kernels
// ------------------------------------------------------------

#ifdef PINFER_X86

// 16 int16 pair sums of maddubs weighted by two sub-block scales (lanes
// 0-7 the first 16 elements, 8-15 the last) and summed in pairs: 8 int32.
PINFER_AVX2 inline __m256i scalePairs(__m256i p16, int16_t s0, int16_t s1) {
  return _mm256_madd_epi16(
      p16, _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0)));
}

// Q4_1/Q5_1 blocks (x = d q + m): the nibbles (and fifth bits), their min
// as the offset term, added (Offset -1 in dotOffsetBlocksNAvx2).
template <class B, bool Five>
PINFER_AVX2 inline UnsignedBlock affineBlock(const B &b) {
  __m256i q = unpackQ4(b.qs);
  if constexpr (Five) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    q = _mm256_or_si256(q, fifthBits(qh));
  }
  return {q, halfToFloat(b.d), halfToFloat(b.m)};
}

PINFER_AVX2 inline float dotQ4_1Q8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return dotOffsetBlocksAvx2<BlockQ4_1, affineBlock<BlockQ4_1, false>, -1>(
      row, x, n);
}
PINFER_AVX2 inline float dotQ5_1Q8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return dotOffsetBlocksAvx2<BlockQ5_1, affineBlock<BlockQ5_1, true>, -1>(row,
                                                                          x, n);
}

// Q2_K and Q3_K: a half's 32 bytes of 2-bit values are loaded once and
// give its four activation blocks (bit pair k), each block's two 16-value
// sub-blocks weighted by their scales in the int16 pair sums
// (scalePairs), unpacked once for NT tokens (see dotQ8_0Q8NAvx2). Q2_K's
// mins come off through the activation's 16-value sums (maddubs of ones,
// weighted by the mins the same way); Q3_K's values are q + 4 (0..7,
// unsigned for maddubs) where the hmask bit is set, and 4 comes off as
// Q6_K's 32 does. Within int16: |7 * 127 * 2| + |4 * 127 * 2|.
template <bool Three, int NT>
PINFER_AVX2 inline void dotK2K3Q8NAvx2(const void *row, const BlockQ8Act *x,
                                       int64_t xStride, int64_t n, float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const size_t bytes = Three ? sizeof(BlockQ3_K) : sizeof(BlockQ2_K);
  const __m256i three = _mm256_set1_epi8(3), ones = _mm256_set1_epi8(1),
                four = _mm256_set1_epi8(4);
  __m256 acc[NT], accMin[NT];
  for (int t = 0; t < NT; ++t)
    acc[t] = accMin[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; ++i, p += bytes, x += 8) {
    int8_t scales[16]; // Q3_K: minus 32 applied below
    if constexpr (Three)
      qblk::scalesQ3_K(p + 96, scales);
    __m256 s[NT], m[NT];
    for (int t = 0; t < NT; ++t)
      s[t] = m[t] = _mm256_setzero_ps();
    const __m256i hmask =
        Three ? _mm256_loadu_si256((const __m256i *)p) : _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q =
          _mm256_loadu_si256((const __m256i *)(p + (Three ? 32 : 16) + 32 * h));
      for (int k = 0; k < 4; ++k) {
        __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), three);
        int16_t sc0, sc1, mn0 = 0, mn1 = 0;
        if constexpr (Three) {
          const __m256i bit = _mm256_set1_epi8(char(1u << (4 * h + k)));
          const __m256i set =
              _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit);
          v = _mm256_or_si256(v, _mm256_and_si256(set, four));
          sc0 = int16_t(scales[8 * h + 2 * k] - 32);
          sc1 = int16_t(scales[8 * h + 2 * k + 1] - 32);
        } else {
          const uint8_t a = p[8 * h + 2 * k], b = p[8 * h + 2 * k + 1];
          sc0 = int16_t(a & 0x0F);
          sc1 = int16_t(b & 0x0F);
          mn0 = int16_t(a >> 4);
          mn1 = int16_t(b >> 4);
        }
        for (int t = 0; t < NT; ++t) {
          const BlockQ8Act &xb = x[t * xStride + 4 * h + k];
          const __m256i a = _mm256_loadu_si256((const __m256i *)xb.qs);
          __m256i p16 = _mm256_maddubs_epi16(v, a);
          if constexpr (Three)
            p16 = _mm256_sub_epi16(p16, _mm256_maddubs_epi16(four, a));
          const __m256 dx = _mm256_set1_ps(xb.d);
          s[t] = _mm256_fmadd_ps(
              dx, _mm256_cvtepi32_ps(scalePairs(p16, sc0, sc1)), s[t]);
          if constexpr (!Three)
            m[t] =
                _mm256_fmadd_ps(dx,
                                _mm256_cvtepi32_ps(scalePairs(
                                    _mm256_maddubs_epi16(ones, a), mn0, mn1)),
                                m[t]);
        }
      }
    }
    const __m256 d = _mm256_set1_ps(halfAt(p + (Three ? 108 : 80)));
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm256_fmadd_ps(d, s[t], acc[t]);
      if constexpr (!Three)
        accMin[t] =
            _mm256_fmadd_ps(_mm256_set1_ps(halfAt(p + 82)), m[t], accMin[t]);
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(_mm256_sub_ps(acc[t], accMin[t]));
}

template <bool Three>
PINFER_AVX2 inline float dotK2K3Q8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return oneToken<BlockQ8Act, dotK2K3Q8NAvx2<Three, 1>>(row, x, n);
}
template <bool Three>
PINFER_AVX2 inline void dotK2K3Q8x4Avx2(const void *row, const BlockQ8Act *x,
                                        int64_t xStride, int64_t n,
                                        float *out) {
  dotK2K3Q8NAvx2<Three, kTokensAtOnce>(row, x, xStride, n, out);
}

// Q4_K/Q5_K: a 32-byte load of nibbles serves two sub-blocks (low and high
// nibbles), unpacked once for NT tokens (see dotQ8_0Q8NAvx2).
template <bool Five, int NT>
PINFER_AVX2 inline void dotK4K5Q8NAvx2(const void *row, const BlockQ8Act *x,
                                       int64_t xStride, int64_t n, float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const size_t bytes = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  __m256 acc[NT];
  float corr[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm256_setzero_ps();
    corr[t] = 0.f;
  }
  for (int64_t i = 0; i < n / QK_K; ++i, p += bytes, x += 8) {
    if (NT == 1) // a generated token: memory-bound
      prefetchAhead<3>(p);
    const qblk::ScalesMinsK4 sm4 = qblk::scalesMinsK4(p + 4);
    const uint8_t *sc = sm4.sc, *m = sm4.m;
    __m256 s0[NT], s1[NT];
    float sm[NT];
    for (int t = 0; t < NT; ++t) {
      s0[t] = s1[t] = _mm256_setzero_ps();
      sm[t] = 0.f;
    }
    for (int g = 0; g < 4; ++g) {
      __m256i lo, hi;
      qblk::unpackK4K5<Five>(p, g, lo, hi);
      for (int t = 0; t < NT; ++t) {
        const BlockQ8Act &a = x[t * xStride + 2 * g],
                         &b = x[t * xStride + 2 * g + 1];
        const __m256i pa = _mm256_madd_epi16(
            _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a.qs)),
            _mm256_set1_epi16(int16_t(sc[2 * g])));
        const __m256i pb = _mm256_madd_epi16(
            _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)b.qs)),
            _mm256_set1_epi16(int16_t(sc[2 * g + 1])));
        s0[t] =
            _mm256_fmadd_ps(_mm256_set1_ps(a.d), _mm256_cvtepi32_ps(pa), s0[t]);
        s1[t] =
            _mm256_fmadd_ps(_mm256_set1_ps(b.d), _mm256_cvtepi32_ps(pb), s1[t]);
        sm[t] += float(m[2 * g]) * a.s + float(m[2 * g + 1]) * b.s;
      }
    }
    const float d = halfAt(p), dmin = halfAt(p + 2);
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_add_ps(s0[t], s1[t]),
                               acc[t]);
      corr[t] += dmin * sm[t];
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(acc[t]) - corr[t];
}

template <bool Five>
PINFER_AVX2 inline float dotK4K5Q8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return oneToken<BlockQ8Act, dotK4K5Q8NAvx2<Five, 1>>(row, x, n);
}
template <bool Five>
PINFER_AVX2 inline void dotK4K5Q8x4Avx2(const void *row, const BlockQ8Act *x,
                                        int64_t xStride, int64_t n,
                                        float *out) {
  dotK4K5Q8NAvx2<Five, kTokensAtOnce>(row, x, xStride, n, out);
}

PINFER_AVX2 inline float dotQ4_KQ8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return dotK4K5Q8Avx2<false>(row, x, n);
}
PINFER_AVX2 inline float dotQ5_KQ8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return dotK4K5Q8Avx2<true>(row, x, n);
}

// Q6_K: the unsigned 6-bit values go into maddubs and the offset of 32
// comes off in the int16 pair sums (maddubs of 32 with the activation),
// both within int16: |63 * 127 * 2| + |32 * 127 * 2| < 2^15. Unpacked once
// for NT tokens (see dotQ8_0Q8NAvx2).
template <int NT>
PINFER_AVX2 inline void dotQ6_KQ8NAvx2(const void *row, const BlockQ8Act *x,
                                       int64_t xStride, int64_t n, float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const __m256i c32 = _mm256_set1_epi8(32);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t)
    acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; ++i, p += sizeof(BlockQ6_K), x += 8) {
    if (NT == 1) // a generated token: memory-bound
      prefetchAhead<4>(p);
    const int8_t *scales = reinterpret_cast<const int8_t *>(p + 192);
    __m256 s[NT][2];
    for (int t = 0; t < NT; ++t)
      s[t][0] = s[t][1] = _mm256_setzero_ps();
    for (int h = 0; h < 2; ++h) {
      __m256i v[4];
      qblk::unpackQ6K(p, h, v);
      const int8_t *sc = scales + 8 * h;
      for (int k = 0; k < 4; ++k)
        for (int t = 0; t < NT; ++t) {
          const BlockQ8Act &xb = x[t * xStride + 4 * h + k];
          const __m256i a = _mm256_loadu_si256((const __m256i *)xb.qs);
          const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(v[k], a),
                                               _mm256_maddubs_epi16(c32, a));
          const __m256 sum =
              _mm256_cvtepi32_ps(scalePairs(p16, sc[2 * k], sc[2 * k + 1]));
          s[t][k & 1] = _mm256_fmadd_ps(_mm256_set1_ps(xb.d), sum, s[t][k & 1]);
        }
    }
    const __m256 d = _mm256_set1_ps(halfAt(p + 208));
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(d, _mm256_add_ps(s[t][0], s[t][1]), acc[t]);
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(acc[t]);
}

PINFER_AVX2 inline float dotQ6_KQ8Avx2(const void *row, const BlockQ8Act *x,
                                       int64_t n) {
  return oneToken<BlockQ8Act, dotQ6_KQ8NAvx2<1>>(row, x, n);
}
PINFER_AVX2 inline void dotQ6_KQ8x4Avx2(const void *row, const BlockQ8Act *x,
                                        int64_t xStride, int64_t n,
                                        float *out) {
  dotQ6_KQ8NAvx2<kTokensAtOnce>(row, x, xStride, n, out);
}

// ---- AVX-512 VNNI kernels --------------------------------------------------
//
// Each 32-value activation block's product with the row is an exact
// integer -- vpdpbusd (unsigned x signed bytes, summed in fours into int32
// lanes), the lanes of a block added, sub-block scales applied as integers
// -- and meets the floats once: for block j of a super-block,
//   acc_j = fma(d sc_j * xd_j, I_j, acc_j), then acc_j -= dmin m_j * xs_j
// (Q4_K/Q5_K; Q6_K has no mins and its d is per super-block), in eight f32
// lanes, one per block position j, summed at the end in hsum's order. The
// AMX tiles (runtime/amx_tiles.h) compute the same integers sixteen rows by
// sixteen tokens at a time and apply the same float operations lane by
// lane, so every form -- one token, NT tokens, R rows, tiles -- gives each
// row and token bitwise the same number. Only explicit vector operations
// touch floats, so the products are the same wherever they are inlined.

static_assert(sizeof(BlockQ8Act) == 10 * sizeof(float),
              "the gathers below step 10 floats from block to block");

// A float field of 8 activation blocks in a row (&x[0].d or &x[0].s).
PINFER_AVX512 inline __m256 actBlocks8(const float *first) {
  return _mm256_i32gather_ps(
      first, _mm256_setr_epi32(0, 10, 20, 30, 40, 50, 60, 70), 4);
}

// Activation blocks x[0] and x[1]'s bytes, in lanes 0-31 and 32-63.
PINFER_AVX512 inline __m512i actPairBytes(const BlockQ8Act *x) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[0].qs)),
      _mm256_loadu_si256((const __m256i *)x[1].qs), 1);
}

// Lanes 4q .. 4q + 3 of a and b (a's for q < 4, b's for q >= 4 as 0-3).
PINFER_AVX512 inline __m512i addHalves(__m512i a, __m512i b, __m512i lo,
                                       __m512i hi) {
  return _mm512_add_epi32(_mm512_permutex2var_epi32(a, lo, b),
                          _mm512_permutex2var_epi32(a, hi, b));
}

// The 8 block sums, as 8 int32 lanes in block order, of four lanes per
// block (a: blocks 0-3, b: blocks 4-7, four lanes each in order).
PINFER_AVX512 inline __m256i blockSumsOfFours(__m512i a, __m512i b) {
  const __m512i lo2 = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20,
                                        21, 24, 25, 28, 29);
  const __m512i hi2 = _mm512_setr_epi32(2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22,
                                        23, 26, 27, 30, 31);
  const __m512i two = addHalves(a, b, lo2, hi2); // two lanes per block
  // Each even lane plus its odd neighbour, then the even lanes.
  return _mm512_cvtepi64_epi32(
      _mm512_add_epi32(two, _mm512_shuffle_epi32(two, _MM_PERM_CDAB)));
}

// The 8 block sums of four registers of vpdpbusd lanes (register g: lanes
// 0-7 block 2g, 8-15 block 2g+1), as 8 int32 lanes in block order.
PINFER_AVX512 inline __m256i blockSums8(__m512i d0, __m512i d1, __m512i d2,
                                        __m512i d3) {
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19,
                                       24, 25, 26, 27);
  const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22,
                                       23, 28, 29, 30, 31);
  return blockSumsOfFours(addHalves(d0, d1, lo, hi), addHalves(d2, d3, lo, hi));
}

// blockSums8 of registers whose 128-bit lanes hold block 2g's first half,
// block 2g+1's, block 2g's second half, block 2g+1's (integer sums: the
// order of the additions does not change them).
PINFER_AVX512 inline __m256i blockSums8Interleaved(__m512i d0, __m512i d1,
                                                   __m512i d2, __m512i d3) {
  const __m512i lo =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26,
                                       27, 28, 29, 30, 31);
  return blockSumsOfFours(addHalves(d0, d1, lo, hi), addHalves(d2, d3, lo, hi));
}

// The 16 sub-block sums of four registers of vpdpbusd lanes (register k:
// lanes 4q .. 4q + 3 sub-block 4k + q), in order.
PINFER_AVX512 inline __m512i subBlockSums16(__m512i d0, __m512i d1, __m512i d2,
                                            __m512i d3) {
  const __m512i lo = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21,
                                       24, 25, 28, 29);
  const __m512i hi = _mm512_setr_epi32(2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22,
                                       23, 26, 27, 30, 31);
  const __m512i a = addHalves(d0, d1, lo, hi), b = addHalves(d2, d3, lo, hi);
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                       22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21,
                                       23, 25, 27, 29, 31);
  return addHalves(a, b, ev, od);
}

// Pairs of sub-block sums added: 8 block sums.
PINFER_AVX512 inline __m256i pairSums8(__m512i s16) {
  return _mm512_cvtepi64_epi32(
      _mm512_add_epi32(s16, _mm512_shuffle_epi32(s16, _MM_PERM_CDAB)));
}

// Sub-blocks 2g (low nibbles, bytes 0-31) and 2g+1 (high, bytes 32-63) of
// a Q4_K/Q5_K block as unsigned bytes: for Q4_K the 32 bytes broadcast to
// both halves and the upper half shifted, one mask for all (two operations
// where unpacking the halves apart and joining them takes four).
template <bool Five>
PINFER_AVX512 inline __m512i unpackK4K5Pair(const uint8_t *p, int g) {
  if constexpr (Five) {
    __m256i lo, hi;
    qblk::unpackK4K5<true>(p, g, lo, hi);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  } else {
    const __m512i q = _mm512_broadcast_i64x4(
        _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * g)));
    return _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xFFFF0000u, q, 4),
                            _mm512_set1_epi8(0x0F));
  }
}

// Q6_K values 128h .. 128h + 127 (sub-blocks 8h .. 8h + 7) minus 32, as
// signed bytes: w[2h] and w[2h + 1], 64 values each.
PINFER_AVX512 inline void unpackQ6KHalf(const uint8_t *p, int h, __m512i *w) {
  __m256i v[4];
  qblk::unpackQ6K(p, h, v);
  for (int q = 0; q < 2; ++q)
    w[2 * h + q] = _mm512_sub_epi8(
        _mm512_inserti64x4(_mm512_castsi256_si512(v[2 * q]), v[2 * q + 1], 1),
        _mm512_set1_epi8(32));
}

// Where a kernel reads a token's activation: from BlockQ8Act blocks (one
// token, or a few) or from the ActPairQ8 layout (the same numbers, loaded
// as they are). Token t, pair k of the current super-block.
struct BlockAct {
  const BlockQ8Act *x;
  int64_t stride; // blocks per token
  PINFER_AVX512 __m512i bytes(int t, int k) const {
    return actPairBytes(x + t * stride + 2 * k);
  }
  PINFER_AVX512 __m256 scales8(int t) const {
    return actBlocks8(&x[t * stride].d);
  }
  PINFER_AVX512 __m256 sums8(int t) const {
    return actBlocks8(&x[t * stride].s);
  }
  void next() { x += QK_K / QK8_0; }
};
struct PairAct {
  const ActPairQ8 *x;
  const float *f; // per 8 blocks: their scales, then their sums
  int64_t stride; // pairs per token
  PINFER_AVX512 __m512i bytes(int t, int k) const {
    return _mm512_load_si512(x[t * stride + k].qs);
  }
  PINFER_AVX512 __m256 scales8(int t) const {
    return _mm256_loadu_ps(f + t * 4 * stride);
  }
  PINFER_AVX512 __m256 sums8(int t) const {
    return _mm256_loadu_ps(f + t * 4 * stride + 8);
  }
  void next() {
    x += QK_K / (2 * QK8_0);
    f += 2 * QK_K / QK8_0;
  }
};

// Q4_K/Q5_K: pair g of activation blocks spans sub-blocks 2g and 2g+1 (the
// low and high nibbles of 32 bytes); a sub-block's 6-bit scale joins the
// f32 factor d sc_j (exact: an integer below 2^6 times an f16). R rows (row
// r at row + r * rowBytes) share each token's activation loads; out[t * R
// + r].
template <bool Five, int R, int NT, class Act>
PINFER_AVX512 inline void dotK4K5Q8ActAvx512(const void *row, int64_t rowBytes,
                                             Act x, int64_t n, float *out) {
  const size_t bytes = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  __m256 acc[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      acc[r][t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; ++i, x.next()) {
    __m512i w[R][4];
    __m256 dsc[R], dm[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t *p =
          static_cast<const uint8_t *>(row) + r * rowBytes + i * bytes;
      if (NT == 1) // a generated token: memory-bound
        prefetchAhead<3>(p);
      const qblk::ScalesMinsK4 sm = qblk::scalesMinsK4(p + 4);
      dsc[r] = _mm256_mul_ps(_mm256_set1_ps(halfAt(p)),
                             _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                 _mm_loadl_epi64((const __m128i *)sm.sc))));
      dm[r] = _mm256_mul_ps(_mm256_set1_ps(halfAt(p + 2)),
                            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                _mm_loadl_epi64((const __m128i *)sm.m))));
      for (int g = 0; g < 4; ++g)
        w[r][g] = unpackK4K5Pair<Five>(p, g);
    }
    for (int t = 0; t < NT; ++t) {
      const __m256 xd = x.scales8(t), xs = x.sums8(t);
      for (int r = 0; r < R; ++r) {
        const __m512i z = _mm512_setzero_si512();
        const __m256i s =
            blockSums8(_mm512_dpbusd_epi32(z, w[r][0], x.bytes(t, 0)),
                       _mm512_dpbusd_epi32(z, w[r][1], x.bytes(t, 1)),
                       _mm512_dpbusd_epi32(z, w[r][2], x.bytes(t, 2)),
                       _mm512_dpbusd_epi32(z, w[r][3], x.bytes(t, 3)));
        acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dsc[r], xd),
                                    _mm256_cvtepi32_ps(s), acc[r][t]);
        acc[r][t] = _mm256_fnmadd_ps(dm[r], xs, acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      out[t * R + r] = hsum(acc[r][t]);
}
template <bool Five, int NT>
PINFER_AVX512 inline void dotK4K5Q8NAvx512(const void *row, const BlockQ8Act *x,
                                           int64_t xStride, int64_t n,
                                           float *out) {
  dotK4K5Q8ActAvx512<Five, 1, NT>(row, 0, BlockAct{x, xStride}, n, out);
}

template <bool Five>
PINFER_AVX512 inline float dotK4K5Q8Avx512(const void *row, const BlockQ8Act *x,
                                           int64_t n) {
  return oneTokenAvx512<BlockQ8Act, dotK4K5Q8NAvx512<Five, 1>>(row, x, n);
}
template <bool Five>
PINFER_AVX512 inline void
dotK4K5Q8x4Avx512(const void *row, const BlockQ8Act *x, int64_t xStride,
                  int64_t n, float *out) {
  dotK4K5Q8NAvx512<Five, kTokensAtOnce>(row, x, xStride, n, out);
}

// Q6_K: the 6-bit values minus 32 as signed bytes against the activation
// offset by 128 (unsigned); the offset's products, -128 times each lane's
// four weights, seed the integer sum, computed once for all NT tokens. The
// 16-value sub-blocks' sums meet their signed 8-bit scales as integers;
// a block's two scaled sums stay below 2^24 in magnitude (2 * 128 * 16 *
// 32 * 127), so their f32 conversion is exact. R rows as above.
template <int R, int NT, class Act>
PINFER_AVX512 inline void dotQ6_KQ8ActAvx512(const void *row, int64_t rowBytes,
                                             Act x, int64_t n, float *out) {
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m256 acc[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      acc[r][t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; ++i, x.next()) {
    __m512i w[R][4], corr[R][4], sc[R];
    __m256 d[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t *p = static_cast<const uint8_t *>(row) + r * rowBytes +
                         i * sizeof(BlockQ6_K);
      if (NT == 1) // a generated token: memory-bound
        prefetchAhead<4>(p);
      d[r] = _mm256_set1_ps(halfAt(p + 208));
      sc[r] = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192)));
      unpackQ6KHalf(p, 0, w[r]);
      unpackQ6KHalf(p, 1, w[r]);
      for (int k = 0; k < 4; ++k) {
        corr[r][k] = _mm512_sub_epi32(
            _mm512_setzero_si512(),
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, w[r][k]));
      }
    }
    for (int t = 0; t < NT; ++t) {
      __m512i xs[4];
      for (int k = 0; k < 4; ++k)
        xs[k] = _mm512_xor_si512(x.bytes(t, k), flip);
      const __m256 xd = x.scales8(t);
      for (int r = 0; r < R; ++r) {
        const __m512i s16 = _mm512_mullo_epi32(
            subBlockSums16(_mm512_dpbusd_epi32(corr[r][0], xs[0], w[r][0]),
                           _mm512_dpbusd_epi32(corr[r][1], xs[1], w[r][1]),
                           _mm512_dpbusd_epi32(corr[r][2], xs[2], w[r][2]),
                           _mm512_dpbusd_epi32(corr[r][3], xs[3], w[r][3])),
            sc[r]);
        acc[r][t] =
            _mm256_fmadd_ps(_mm256_mul_ps(d[r], xd),
                            _mm256_cvtepi32_ps(pairSums8(s16)), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      out[t * R + r] = hsum(acc[r][t]);
}
template <int NT>
PINFER_AVX512 inline void dotQ6_KQ8NAvx512(const void *row, const BlockQ8Act *x,
                                           int64_t xStride, int64_t n,
                                           float *out) {
  dotQ6_KQ8ActAvx512<1, NT>(row, 0, BlockAct{x, xStride}, n, out);
}

PINFER_AVX512 inline float dotQ6_KQ8Avx512(const void *row, const BlockQ8Act *x,
                                           int64_t n) {
  return oneTokenAvx512<BlockQ8Act, dotQ6_KQ8NAvx512<1>>(row, x, n);
}
PINFER_AVX512 inline void dotQ6_KQ8x4Avx512(const void *row,
                                            const BlockQ8Act *x,
                                            int64_t xStride, int64_t n,
                                            float *out) {
  dotQ6_KQ8NAvx512<kTokensAtOnce>(row, x, xStride, n, out);
}

// kRowsAtOnce rows x kTokensAtOnce tokens of the ActPairQ8 layout, R rows
// at a time (rowsBy). Q4_K/Q5_K take two; Q6_K, whose rows need more
// registers each, one.
template <bool Five>
PINFER_AVX512 inline void
dotK4K5Q8PairsRowsAvx512(const void *row, int64_t rowBytes, const ActPairQ8 *x,
                         const float *f, int64_t xStride, int64_t n,
                         float *out) {
  rowsBy<2>(dotK4K5Q8ActAvx512<Five, 2, kTokensAtOnce, PairAct>, row, rowBytes,
            out, PairAct{x, f, xStride}, n);
}
// One row, one token's activation in that layout (a generated token's
// products, the layout made once per token for all rows).
template <bool Five>
PINFER_AVX512 inline float dotK4K5Q8PairsAvx512(const void *row,
                                                const ActPairQ8 *x,
                                                const float *f, int64_t n) {
  float out;
  dotK4K5Q8ActAvx512<Five, 1, 1>(row, 0, PairAct{x, f, 0}, n, &out);
  return out;
}
PINFER_AVX512 inline float dotQ6_KQ8PairsAvx512(const void *row,
                                                const ActPairQ8 *x,
                                                const float *f, int64_t n) {
  float out;
  dotQ6_KQ8ActAvx512<1, 1>(row, 0, PairAct{x, f, 0}, n, &out);
  return out;
}
PINFER_AVX512 inline void
dotQ6_KQ8PairsRowsAvx512(const void *row, int64_t rowBytes, const ActPairQ8 *x,
                         const float *f, int64_t xStride, int64_t n,
                         float *out) {
  rowsBy<1>(dotQ6_KQ8ActAvx512<1, kTokensAtOnce, PairAct>, row, rowBytes, out,
            PairAct{x, f, xStride}, n);
}

// Q5_0 and Q8_0 (32-value blocks with an f16 scale each) the same way:
// each block's product an exact integer (its values less their offset as
// signed bytes against the activation offset by 128, the offset's share
// seeding the sum, dot_kernels.h's signedPair), then acc_j = fma(d_b * xd_b,
// I_b, acc_j) in lane j = b mod 8, the row's blocks taken eight at a time; a
// last group of fewer leaves the other lanes as they are. The AMX tiles
// (runtime/amx_tiles.h) do the same. R rows x NT tokens (x_t = x + t *
// xStride); out[t * R + r].
template <class B, int Offset, int R, int NT>
PINFER_AVX512 inline void
dotBlocksIntAvx512(const void *row, int64_t rowBytes, const BlockQ8Act *x,
                   int64_t xStride, int64_t n, float *out) {
  const int64_t nb = n / QK8_0;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const __m256i spread = _mm256_setr_epi32(0, 10, 20, 30, 40, 50, 60, 70);
  __m256 acc[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      acc[r][t] = _mm256_setzero_ps();
  static_assert(offsetof(B, d) == 0, "the scale gather reads from each "
                                     "block's start");
  const __m256i blockStarts = _mm256_mullo_epi32(
      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(sizeof(B)));
  for (int64_t g = 0; g < nb; g += 8) {
    const int cnt = int(std::min<int64_t>(8, nb - g));
    const __mmask8 live = __mmask8((1u << cnt) - 1);
    __m512i w[R][4], corr[R][4];
    __m256 dw[R];
    for (int r = 0; r < R; ++r) {
      const B *b = reinterpret_cast<const B *>(
          static_cast<const uint8_t *>(row) + r * rowBytes);
      if (NT == 1) // a generated token: memory-bound
        prefetchAhead<(8 * sizeof(B) + 63) / 64>(b + g);
      // The group's f16 scales: a 32-bit gather from each block's start,
      // its low halves converted.
      dw[r] =
          _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_mmask_i32gather_epi32(
              _mm256_setzero_si256(), live, blockStarts, &b[g], 1)));
      for (int k = 0; k < 4; ++k) {
        if (2 * k < cnt) {
          const SignedPair sp =
              signedPair<B, Offset>(b, g + 2 * k, 2 * k + 1 < cnt);
          w[r][k] = sp.w;
          corr[r][k] = sp.corr;
        } else {
          w[r][k] = corr[r][k] = _mm512_setzero_si512();
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const BlockQ8Act *xt = x + t * xStride + g;
      __m512i xs[4];
      for (int k = 0; k < 4; ++k) {
        const __m256i x0 =
            2 * k < cnt ? _mm256_loadu_si256((const __m256i *)xt[2 * k].qs)
                        : _mm256_setzero_si256();
        const __m256i x1 =
            2 * k + 1 < cnt
                ? _mm256_loadu_si256((const __m256i *)xt[2 * k + 1].qs)
                : _mm256_setzero_si256();
        xs[k] = _mm512_xor_si512(
            _mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1), flip);
      }
      const __m256 xd = _mm256_mmask_i32gather_ps(_mm256_setzero_ps(), live,
                                                  spread, &xt[0].d, 4);
      for (int r = 0; r < R; ++r) {
        const __m256i s =
            blockSums8(_mm512_dpbusd_epi32(corr[r][0], xs[0], w[r][0]),
                       _mm512_dpbusd_epi32(corr[r][1], xs[1], w[r][1]),
                       _mm512_dpbusd_epi32(corr[r][2], xs[2], w[r][2]),
                       _mm512_dpbusd_epi32(corr[r][3], xs[3], w[r][3]));
        acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw[r], xd),
                                    _mm256_cvtepi32_ps(s), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      out[t * R + r] = hsum(acc[r][t]);
}
// Its one-token, kTokensAtOnce-token and rows x tokens forms.
template <class B, int Offset>
PINFER_AVX512 inline float
dotBlocksIntQ8Avx512(const void *row, const BlockQ8Act *x, int64_t n) {
  float out;
  dotBlocksIntAvx512<B, Offset, 1, 1>(row, 0, x, 0, n, &out);
  return out;
}
template <class B, int Offset>
PINFER_AVX512 inline void
dotBlocksIntQ8x4Avx512(const void *row, const BlockQ8Act *x, int64_t xStride,
                       int64_t n, float *out) {
  dotBlocksIntAvx512<B, Offset, 1, kTokensAtOnce>(row, 0, x, xStride, n, out);
}
template <class B, int Offset>
PINFER_AVX512 inline void
dotBlocksIntRowsAvx512(const void *row, int64_t rowBytes, const BlockQ8Act *x,
                       int64_t xStride, int64_t n, float *out) {
  rowsBy<2>(dotBlocksIntAvx512<B, Offset, 2, kTokensAtOnce>, row, rowBytes, out,
            x, xStride, n);
}

// Q4_0 rows, stored scales first (Weight::scalesFirst) or in blocks: the
// product of dotBlocksIntAvx512<BlockQ4_0, 8>, bitwise, from the prepared
// activation (Q4SfActPair, runtime/dot_kernels.h): four blocks' nibbles
// (64 bytes: one load scales first, four from the blocks otherwise) split
// into their low and high halves multiply the activation as unsigned bytes
// as they are, both into one register whose lanes 4j .. 4j + 3 hold block
// j's sums, and eight times each block's activation sum (prepared) comes
// off the block's integer.
// The nibbles of Q4_0 blocks blk .. blk + 3 (those before block nb, zeros
// after): 64 bytes from qs scales first, four blocks' 16 from b otherwise.
template <bool ScalesFirst>
PINFER_AVX512 inline __m512i q4Quad(const uint8_t *qs, const BlockQ4_0 *b,
                                    int64_t nb, int64_t blk) {
  const int64_t have = std::min<int64_t>(4, nb - blk);
  if (ScalesFirst)
    return have == 4 ? _mm512_loadu_si512(qs + blk * 16)
                     : _mm512_maskz_loadu_epi8(
                           (__mmask64(1) << (16 * have)) - 1, qs + blk * 16);
  __m128i p[4];
  for (int j = 0; j < 4; ++j)
    p[j] = j < have ? _mm_loadu_si128((const __m128i *)b[blk + j].qs)
                    : _mm_setzero_si128();
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_set_m128i(p[1], p[0])),
      _mm256_set_m128i(p[3], p[2]), 1);
}
template <bool ScalesFirst>
PINFER_AVX512 inline float
dotQ4PrepIntAvx512(const uint8_t *row, const BlockQ8Act *x,
                   const Q4SfActPair *xp, int64_t n) {
  const int64_t nb = n / QK8_0;
  const uint16_t *sc = reinterpret_cast<const uint16_t *>(row);
  const uint8_t *qs = row + 2 * nb;
  const BlockQ4_0 *b = reinterpret_cast<const BlockQ4_0 *>(row);
  const __m256i blockStarts =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                         _mm256_set1_epi32(sizeof(BlockQ4_0)));
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < nb; g += 8) {
    const int cnt = int(std::min<int64_t>(8, nb - g));
    const __mmask8 live = __mmask8((1u << cnt) - 1);
    // The group's 128 (scales first) or 144 bytes, that far ahead.
    if (ScalesFirst)
      prefetchAhead<2>(qs + g * 16);
    else
      prefetchAhead<3>(b + g);
    __m512i d[2];
    for (int k = 0; k < 2; ++k) {
      d[k] = _mm512_setzero_si512();
      if (4 * k >= cnt)
        continue;
      const int64_t blk = g + 4 * k;
      const __m512i q = q4Quad<ScalesFirst>(qs, b, nb, blk);
      d[k] = _mm512_dpbusd_epi32(d[k], _mm512_and_si512(q, m4), xp[blk / 2].xs);
      d[k] = _mm512_dpbusd_epi32(d[k],
                                 _mm512_and_si512(_mm512_srli_epi16(q, 4), m4),
                                 xp[blk / 2 + 1].xs);
    }
    // Eight f16 scales: one load scales first, else a 32-bit gather from
    // each block's start.
    const __m256 dw =
        ScalesFirst
            ? _mm256_cvtph_ps(_mm_maskz_loadu_epi16(live, sc + g))
            : _mm256_cvtph_ps(
                  _mm256_cvtepi32_epi16(_mm256_mmask_i32gather_epi32(
                      _mm256_setzero_si256(), live, blockStarts, &b[g], 1)));
    // The group's activation scales and offset corrections (prepared).
    const __m512i group = xp[g / 2].group;
    const __m256 xd = _mm256_castsi256_ps(_mm512_castsi512_si256(group));
    const __m256i corr = _mm512_extracti64x4_epi64(group, 1);
    acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, xd),
                          _mm256_cvtepi32_ps(_mm256_sub_epi32(
                              blockSumsOfFours(d[0], d[1]), corr)),
                          acc);
  }
  return hsum(acc);
}
PINFER_AVX512 inline float dotQ4SfIntAvx512(const uint8_t *row,
                                            const BlockQ8Act *x,
                                            const Q4SfActPair *xp, int64_t n) {
  return dotQ4PrepIntAvx512<true>(row, x, xp, n);
}
// A Q4_0 row in blocks from the same prepared activation: bitwise
// dotBlocksIntAvx512<BlockQ4_0, 8> (a generated token's rows, the
// activation prepared once for them all).
PINFER_AVX512 inline float dotQ4_0PrepIntAvx512(const uint8_t *row,
                                                const BlockQ8Act *x,
                                                const Q4SfActPair *xp,
                                                int64_t n) {
  return dotQ4PrepIntAvx512<false>(row, x, xp, n);
}

// R Q8_0 rows (row r at row + r * rowBytes; out[r]) times one token's
// prepared activation (prepQ8_0Act): the row's bytes flipped to unsigned
// (w + 128) multiply the activation's signed bytes, and 128 times each
// block's activation sum (prepared, shared by every row) comes off. Each
// block's integer is dotBlocksIntAvx512<BlockQ8_0, 128>'s, in the same
// lanes and order, so each result is bitwise its product; per row it
// spares that kernel's offset correction (a second VPDPBUSD per pair).
template <int R>
PINFER_AVX512 inline void
dotQ8_0PrepRowsAvx512(const uint8_t *row, int64_t rowBytes,
                      const Q4SfActPair *xp, int64_t n, float *out) {
  const int64_t nb = n / QK8_0;
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  const __m256i blockStarts =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                         _mm256_set1_epi32(sizeof(BlockQ8_0)));
  __m256 acc[R];
  for (int r = 0; r < R; ++r)
    acc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < nb; g += 8) {
    const int cnt = int(std::min<int64_t>(8, nb - g));
    const __mmask8 live = __mmask8((1u << cnt) - 1);
    const __m512i group = xp[g / 2].group;
    const __m256 xd = _mm256_castsi256_ps(_mm512_castsi512_si256(group));
    const __m256i corr = _mm512_extracti64x4_epi64(group, 1);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_0 *b =
          reinterpret_cast<const BlockQ8_0 *>(row + r * rowBytes);
      prefetchAhead<5>(b + g); // the group's 272 bytes, that far ahead
      __m512i d[4];
      for (int k = 0; k < 4; ++k) {
        if (2 * k >= cnt) {
          d[k] = _mm512_setzero_si512();
          continue;
        }
        const int64_t blk = g + 2 * k;
        const __m256i w0 = _mm256_xor_si256(
            _mm256_loadu_si256((const __m256i *)b[blk].qs), flip);
        // A lone last block: its partner's lanes multiply zero activations.
        const __m256i w1 =
            2 * k + 1 < cnt
                ? _mm256_xor_si256(
                      _mm256_loadu_si256((const __m256i *)b[blk + 1].qs), flip)
                : _mm256_setzero_si256();
        d[k] = _mm512_dpbusd_epi32(
            _mm512_setzero_si512(),
            _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1),
            xp[blk / 2].xs);
      }
      const __m256 dw =
          _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_mmask_i32gather_epi32(
              _mm256_setzero_si256(), live, blockStarts, &b[g], 1)));
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, xd),
                               _mm256_cvtepi32_ps(_mm256_sub_epi32(
                                   blockSums8(d[0], d[1], d[2], d[3]), corr)),
                               acc[r]);
    }
  }
  for (int r = 0; r < R; ++r)
    out[r] = hsum(acc[r]);
}

#endif // PINFER_X86

} // namespace dotk
} // namespace pinfer
