// AVX2 decoding of the K-quants (Q2_K..Q6_K; runtime/quant_blocks.h): the
// unpacking of a block's values, 32 bytes at a time, which their integer
// products share (runtime/dot_q8_blocks.h), and their f32-activation products
// (the dense down projection, whose input stays in f32), which decode every
// block they read: each value is the reference decoder's float, bit for bit
// (the same product, and difference, of the same operands: (d * sc) * q, or (d
// * sc) * q - dmin * m), multiplied in the order dotk::dotBlocksAvx2 multiplies
// a decoded block, without the round trip through a buffer.
#pragma once

#include "runtime/dot_kernels.h"
#include "runtime/quant_blocks.h"

#ifdef PINFER_X86

namespace pinfer {
namespace qblk {

// w[k] = scale * float(v) - minus for bytes 8k..8k+7 of v, unsigned
// (Signed: signed), 16 bytes with each of two scales (s0 for the first).
template <bool Signed, bool Min>
PINFER_AVX2 inline void values32(__m256i v, float s0, float s1, float m0,
                                 float m1, __m256 *w) {
  const __m128i halves[2] = {_mm256_castsi256_si128(v),
                             _mm256_extracti128_si256(v, 1)};
  for (int h = 0; h < 2; ++h) {
    const __m256 s = _mm256_set1_ps(h ? s1 : s0);
    const __m256 m = _mm256_set1_ps(h ? m1 : m0);
    for (int e = 0; e < 2; ++e) {
      const __m128i b =
          e ? _mm_unpackhi_epi64(halves[h], halves[h]) : halves[h];
      const __m256i i32 =
          Signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
      __m256 f = _mm256_mul_ps(s, _mm256_cvtepi32_ps(i32));
      if constexpr (Min)
        f = _mm256_sub_ps(f, m);
      w[2 * h + e] = f;
    }
  }
}

// 32 decoded values times x[0..32) into the two chains of dotBlocksAvx2:
// values 0-7 and 16-23 into a0, 8-15 and 24-31 into a1.
PINFER_AVX2 inline void fma32(const __m256 *w, const float *x, __m256 &a0,
                              __m256 &a1) {
  a0 = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(x), a0);
  a1 = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), a1);
  a0 = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x + 16), a0);
  a1 = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), a1);
}

// The unsigned values of sub-blocks 2g (lo) and 2g+1 (hi) of a Q4_K/Q5_K
// block at p, 32 bytes each: nibbles, and for Q5_K the fifth bits (bit j of
// each qh byte for sub-block j) moved to bit 4; srli_epi16 carries the
// upper byte's bits into the lower's top, masked off by `one`.
template <bool Five>
PINFER_AVX2 inline void unpackK4K5(const uint8_t *p, int g, __m256i &lo,
                                   __m256i &hi) {
  const __m256i low = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  const __m256i q =
      _mm256_loadu_si256((const __m256i *)(p + (Five ? 48 : 16) + 32 * g));
  lo = _mm256_and_si256(q, low);
  hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
  if constexpr (Five) {
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 16));
    lo = _mm256_or_si256(
        lo, _mm256_slli_epi16(
                _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one), 4));
    hi = _mm256_or_si256(
        hi, _mm256_slli_epi16(
                _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one), 4));
  }
}

// The unsigned 6-bit values (0..63) of half h (128 values) of a Q6_K block
// at p: v[k] holds values 32k..32k+31 of the half.
PINFER_AVX2 inline void unpackQ6K(const uint8_t *p, int h, __m256i *v) {
  const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
  const __m256i l0 = _mm256_loadu_si256((const __m256i *)(p + 64 * h));
  const __m256i l1 = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
  const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
  const __m256i q[4] = {_mm256_and_si256(l0, low), _mm256_and_si256(l1, low),
                        _mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                        _mm256_and_si256(_mm256_srli_epi16(l1, 4), low)};
  for (int k = 0; k < 4; ++k)
    v[k] = _mm256_or_si256(
        q[k], _mm256_slli_epi16(
                  _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), three), 4));
}

} // namespace qblk

namespace dotk {

// The f32-activation products: bitwise dotk::dotBlocksAvx2 over the
// reference decoders (runtime/quant_blocks.h); for NT tokens at once (x +
// t * xStride), each block decoded once for all of them (see
// dotQ8_0Q8NAvx2).
template <bool Five, int NT>
PINFER_AVX2 inline void dotK4K5F32NAvx2(const void *row, const float *x,
                                        int64_t xStride, int64_t n,
                                        float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const size_t bytes = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  __m256 a[NT][2];
  for (int t = 0; t < NT; ++t)
    a[t][0] = a[t][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b, p += bytes) {
    const float d = halfAt(p), min = halfAt(p + 2);
    const qblk::ScalesMinsK4 sm = qblk::scalesMinsK4(p + 4);
    const uint8_t *sc = sm.sc, *m = sm.m;
    for (int g = 0; g < 4; ++g, x += 64) {
      const float d1 = d * sc[2 * g], m1 = min * m[2 * g];
      const float d2 = d * sc[2 * g + 1], m2 = min * m[2 * g + 1];
      __m256i lo, hi;
      qblk::unpackK4K5<Five>(p, g, lo, hi);
      __m256 wl[4], wh[4];
      qblk::values32<false, true>(lo, d1, d1, m1, m1, wl);
      qblk::values32<false, true>(hi, d2, d2, m2, m2, wh);
      for (int t = 0; t < NT; ++t) {
        qblk::fma32(wl, x + t * xStride, a[t][0], a[t][1]);
        qblk::fma32(wh, x + t * xStride + 32, a[t][0], a[t][1]);
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(_mm256_add_ps(a[t][0], a[t][1]));
}

template <int NT>
PINFER_AVX2 inline void dotQ6_KF32NAvx2(const void *row, const float *x,
                                        int64_t xStride, int64_t n,
                                        float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const __m256i c32 = _mm256_set1_epi8(32);
  __m256 a[NT][2];
  for (int t = 0; t < NT; ++t)
    a[t][0] = a[t][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b, p += sizeof(BlockQ6_K)) {
    const int8_t *sc = reinterpret_cast<const int8_t *>(p + 192);
    const float d = halfAt(p + 208);
    for (int h = 0; h < 2; ++h, sc += 8) {
      __m256i v[4];
      qblk::unpackQ6K(p, h, v);
      for (int k = 0; k < 4; ++k, x += 32) {
        __m256 w[4];
        qblk::values32<true, false>(_mm256_sub_epi8(v[k], c32), d * sc[2 * k],
                                    d * sc[2 * k + 1], 0.f, 0.f, w);
        for (int t = 0; t < NT; ++t)
          qblk::fma32(w, x + t * xStride, a[t][0], a[t][1]);
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(_mm256_add_ps(a[t][0], a[t][1]));
}

// Q2_K and Q3_K: a half's 32 bytes of 2-bit values hold four 32-value
// chunks (bit pair k), each two 16-value sub-blocks with their own scale;
// Q3_K's values are q - 4 where the hmask bit is clear.
template <bool Three, int NT>
PINFER_AVX2 inline void dotK2K3F32NAvx2(const void *row, const float *x,
                                        int64_t xStride, int64_t n,
                                        float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const size_t bytes = Three ? sizeof(BlockQ3_K) : sizeof(BlockQ2_K);
  const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
  __m256 a[NT][2];
  for (int t = 0; t < NT; ++t)
    a[t][0] = a[t][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b, p += bytes) {
    int8_t scales[16];
    if constexpr (Three)
      qblk::scalesQ3_K(p + 96, scales);
    const float d = halfAt(p + (Three ? 108 : 80));
    const float min = Three ? 0.f : halfAt(p + 82);
    const __m256i hmask =
        Three ? _mm256_loadu_si256((const __m256i *)p) : _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q =
          _mm256_loadu_si256((const __m256i *)(p + (Three ? 32 : 16) + 32 * h));
      for (int k = 0; k < 4; ++k, x += 32) {
        __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), three);
        __m256 w[4];
        if constexpr (Three) {
          const __m256i bit = _mm256_set1_epi8(char(1u << (4 * h + k)));
          const __m256i set =
              _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit);
          v = _mm256_sub_epi8(v, _mm256_andnot_si256(set, four));
          qblk::values32<true, false>(v, d * (scales[8 * h + 2 * k] - 32),
                                      d * (scales[8 * h + 2 * k + 1] - 32), 0.f,
                                      0.f, w);
        } else {
          const uint8_t s0 = p[8 * h + 2 * k], s1 = p[8 * h + 2 * k + 1];
          qblk::values32<false, true>(v, d * (s0 & 0xF), d * (s1 & 0xF),
                                      min * (s0 >> 4), min * (s1 >> 4), w);
        }
        for (int t = 0; t < NT; ++t)
          qblk::fma32(w, x + t * xStride, a[t][0], a[t][1]);
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum(_mm256_add_ps(a[t][0], a[t][1]));
}

template <bool Three>
PINFER_AVX2 inline float dotK2K3F32Avx2(const void *row, const float *x,
                                        int64_t n) {
  return oneToken<float, dotK2K3F32NAvx2<Three, 1>>(row, x, n);
}
template <bool Three>
PINFER_AVX2 inline void dotK2K3F32x4Avx2(const void *row, const float *x,
                                         int64_t xStride, int64_t n,
                                         float *out) {
  dotK2K3F32NAvx2<Three, kTokensAtOnce>(row, x, xStride, n, out);
}

PINFER_AVX2 inline float dotQ4_KF32Avx2(const void *row, const float *x,
                                        int64_t n) {
  return oneToken<float, dotK4K5F32NAvx2<false, 1>>(row, x, n);
}
PINFER_AVX2 inline float dotQ5_KF32Avx2(const void *row, const float *x,
                                        int64_t n) {
  return oneToken<float, dotK4K5F32NAvx2<true, 1>>(row, x, n);
}
PINFER_AVX2 inline float dotQ6_KF32Avx2(const void *row, const float *x,
                                        int64_t n) {
  return oneToken<float, dotQ6_KF32NAvx2<1>>(row, x, n);
}
PINFER_AVX2 inline void dotQ4_KF32x4Avx2(const void *row, const float *x,
                                         int64_t xStride, int64_t n,
                                         float *out) {
  dotK4K5F32NAvx2<false, kTokensAtOnce>(row, x, xStride, n, out);
}
PINFER_AVX2 inline void dotQ5_KF32x4Avx2(const void *row, const float *x,
                                         int64_t xStride, int64_t n,
                                         float *out) {
  dotK4K5F32NAvx2<true, kTokensAtOnce>(row, x, xStride, n, out);
}
PINFER_AVX2 inline void dotQ6_KF32x4Avx2(const void *row, const float *x,
                                         int64_t xStride, int64_t n,
                                         float *out) {
  dotQ6_KF32NAvx2<kTokensAtOnce>(row, x, xStride, n, out);
}

} // namespace dotk
} // namespace pinfer

#endif // PINFER_X86
