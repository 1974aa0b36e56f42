// AVX-512 f32-activation products of Q4_K, Q5_K and Q6_K (the dense down
// projection, whose input stays f32): as in runtime/decode_blocks_avx2.h,
// each value is the reference decoder's float, bit for bit ((d * sc) * q,
// or (d * sc) * q - dmin * m, the same products of the same operands), but
// 16 values per register, which halves the widenings, conversions and
// multiplies per value where the AVX2 products spend most of their time.
// The order of the FMAs is dotBlocksAvx512's over the decoded block:
// 16-value groups alternate between two chains.
#pragma once

#include "runtime/decode_blocks_avx2.h"
#include "runtime/dot_kernels.h"
#include "runtime/quant_blocks.h"

#ifdef PINFER_X86

namespace pinfer {
namespace dotk {

// The reference order: decode a block, then its 16-value groups k into
// chain k & 1.
template <DecodeBlockFn Decode, int QK, int Bytes>
PINFER_AVX512 inline float dotBlocksAvx512(const void *row, const float *x,
                                           int64_t n) {
  static_assert(QK % 32 == 0, "pairs of 16-value groups");
  const uint8_t *p = static_cast<const uint8_t *>(row);
  alignas(64) float buf[QK];
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    Decode(p + b * Bytes, buf);
    for (int j = 0; j < QK; j += 32) {
      a0 = _mm512_fmadd_ps(_mm512_load_ps(buf + j), _mm512_loadu_ps(x + j), a0);
      a1 = _mm512_fmadd_ps(_mm512_load_ps(buf + j + 16),
                           _mm512_loadu_ps(x + j + 16), a1);
    }
  }
  return hsum512(_mm512_add_ps(a0, a1));
}

// 16 bytes of values times a scale, less a min: the decoder's floats.
template <bool Signed, bool Min>
PINFER_AVX512 inline __m512 values16(__m128i v, float s, float m) {
  const __m512i i32 =
      Signed ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v);
  __m512 f = _mm512_mul_ps(_mm512_set1_ps(s), _mm512_cvtepi32_ps(i32));
  if constexpr (Min)
    f = _mm512_sub_ps(f, _mm512_set1_ps(m));
  return f;
}

// One 32-value sub-block (bytes of v, one scale and min) into the chains.
template <bool Signed, bool Min, int NT>
PINFER_AVX512 inline void fmaSub32(__m256i v, float s0, float s1, float m,
                                   const float *x, int64_t xStride,
                                   __m512 (*a)[2]) {
  const __m512 w0 = values16<Signed, Min>(_mm256_castsi256_si128(v), s0, m);
  const __m512 w1 =
      values16<Signed, Min>(_mm256_extracti128_si256(v, 1), s1, m);
  for (int t = 0; t < NT; ++t) {
    a[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * xStride), a[t][0]);
    a[t][1] =
        _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + t * xStride + 16), a[t][1]);
  }
}

// Q4_K/Q5_K: sub-blocks 2g and 2g+1 are the low and high nibbles of one
// 32-byte load (runtime/decode_blocks_avx2.h, unpackK4K5).
template <bool Five, int NT>
PINFER_AVX512 inline void dotK4K5F32NAvx512(const void *row, const float *x,
                                            int64_t xStride, int64_t n,
                                            float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const size_t bytes = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  __m512 a[NT][2];
  for (int t = 0; t < NT; ++t)
    a[t][0] = a[t][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b, p += bytes) {
    const float d = halfAt(p), min = halfAt(p + 2);
    const qblk::ScalesMinsK4 sm = qblk::scalesMinsK4(p + 4);
    const uint8_t *sc = sm.sc, *m = sm.m;
    for (int g = 0; g < 4; ++g, x += 64) {
      __m256i lo, hi;
      qblk::unpackK4K5<Five>(p, g, lo, hi);
      const float d1 = d * sc[2 * g], m1 = min * m[2 * g];
      const float d2 = d * sc[2 * g + 1], m2 = min * m[2 * g + 1];
      fmaSub32<false, true, NT>(lo, d1, d1, m1, x, xStride, a);
      fmaSub32<false, true, NT>(hi, d2, d2, m2, x + 32, xStride, a);
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum512(_mm512_add_ps(a[t][0], a[t][1]));
}

// Q6_K: 32 values (signed, q - 32) of two 16-value sub-blocks at a time.
template <int NT>
PINFER_AVX512 inline void dotQ6_KF32NAvx512(const void *row, const float *x,
                                            int64_t xStride, int64_t n,
                                            float *out) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  const __m256i c32 = _mm256_set1_epi8(32);
  __m512 a[NT][2];
  for (int t = 0; t < NT; ++t)
    a[t][0] = a[t][1] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b, p += sizeof(BlockQ6_K)) {
    const int8_t *sc = reinterpret_cast<const int8_t *>(p + 192);
    const float d = halfAt(p + 208);
    for (int h = 0; h < 2; ++h, sc += 8) {
      __m256i v[4];
      qblk::unpackQ6K(p, h, v);
      for (int k = 0; k < 4; ++k, x += 32)
        fmaSub32<true, false, NT>(_mm256_sub_epi8(v[k], c32), d * sc[2 * k],
                                  d * sc[2 * k + 1], 0.f, x, xStride, a);
    }
  }
  for (int t = 0; t < NT; ++t)
    out[t] = hsum512(_mm512_add_ps(a[t][0], a[t][1]));
}

template <bool Five>
PINFER_AVX512 inline float dotK4K5F32Avx512(const void *row, const float *x,
                                            int64_t n) {
  return oneTokenAvx512<float, dotK4K5F32NAvx512<Five, 1>>(row, x, n);
}
template <bool Five>
PINFER_AVX512 inline void dotK4K5F32x4Avx512(const void *row, const float *x,
                                             int64_t xStride, int64_t n,
                                             float *out) {
  dotK4K5F32NAvx512<Five, kTokensAtOnce>(row, x, xStride, n, out);
}
PINFER_AVX512 inline float dotQ6_KF32Avx512(const void *row, const float *x,
                                            int64_t n) {
  return oneTokenAvx512<float, dotQ6_KF32NAvx512<1>>(row, x, n);
}
PINFER_AVX512 inline void dotQ6_KF32x4Avx512(const void *row, const float *x,
                                             int64_t xStride, int64_t n,
                                             float *out) {
  dotQ6_KF32NAvx512<kTokensAtOnce>(row, x, xStride, n, out);
}

} // namespace dotk
} // namespace pinfer

#endif // PINFER_X86
