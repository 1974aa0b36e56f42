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

// One 32-value sub-block of R rows (bytes v[r], scales and mins) into each
// row's chains: token t's activation loaded once for the R rows.
template <bool Signed, bool Min, int R, int NT>
PINFER_AVX512 inline void
fmaSub32(const __m256i *v, const float *s0, const float *s1, const float *m,
         const float *x, int64_t xStride, __m512 (*a)[NT][2]) {
  __m512 w0[R], w1[R];
  for (int r = 0; r < R; ++r) {
    w0[r] = values16<Signed, Min>(_mm256_castsi256_si128(v[r]), s0[r], m[r]);
    w1[r] =
        values16<Signed, Min>(_mm256_extracti128_si256(v[r], 1), s1[r], m[r]);
  }
  for (int t = 0; t < NT; ++t) {
    const __m512 x0 = _mm512_loadu_ps(x + t * xStride);
    const __m512 x1 = _mm512_loadu_ps(x + t * xStride + 16);
    for (int r = 0; r < R; ++r) {
      a[r][t][0] = _mm512_fmadd_ps(w0[r], x0, a[r][t][0]);
      a[r][t][1] = _mm512_fmadd_ps(w1[r], x1, a[r][t][1]);
    }
  }
}

template <int R, int NT>
PINFER_AVX512 inline void zeroChains(__m512 (*a)[NT][2]) {
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      a[r][t][0] = a[r][t][1] = _mm512_setzero_ps();
}
template <int R, int NT>
PINFER_AVX512 inline void sumChains(__m512 (*a)[NT][2], float *out) {
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      out[t * R + r] = hsum512(_mm512_add_ps(a[r][t][0], a[r][t][1]));
}

// Q4_K/Q5_K: sub-blocks 2g and 2g+1 are the low and high nibbles of one
// 32-byte load (runtime/decode_blocks_avx2.h, unpackK4K5). R rows at
// row + r * rowBytes, NT tokens; out[t * R + r]. Each row's and token's
// chains take the same values in the same order whatever R and NT are.
template <bool Five, int R, int NT>
PINFER_AVX512 inline void
dotK4K5F32RowsAvx512(const void *row, int64_t rowBytes, const float *x,
                     int64_t xStride, int64_t n, float *out) {
  const size_t bytes = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  __m512 a[R][NT][2];
  zeroChains<R, NT>(a);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const uint8_t *p[R];
    float d[R], min[R];
    qblk::ScalesMinsK4 sm[R];
    for (int r = 0; r < R; ++r) {
      p[r] = static_cast<const uint8_t *>(row) + r * rowBytes + b * bytes;
      d[r] = halfAt(p[r]);
      min[r] = halfAt(p[r] + 2);
      sm[r] = qblk::scalesMinsK4(p[r] + 4);
    }
    for (int g = 0; g < 4; ++g, x += 64) {
      __m256i lo[R], hi[R];
      float d1[R], m1[R], d2[R], m2[R];
      for (int r = 0; r < R; ++r) {
        qblk::unpackK4K5<Five>(p[r], g, lo[r], hi[r]);
        d1[r] = d[r] * sm[r].sc[2 * g];
        m1[r] = min[r] * sm[r].m[2 * g];
        d2[r] = d[r] * sm[r].sc[2 * g + 1];
        m2[r] = min[r] * sm[r].m[2 * g + 1];
      }
      fmaSub32<false, true, R, NT>(lo, d1, d1, m1, x, xStride, a);
      fmaSub32<false, true, R, NT>(hi, d2, d2, m2, x + 32, xStride, a);
    }
  }
  sumChains<R, NT>(a, out);
}
template <bool Five, int NT>
PINFER_AVX512 inline void dotK4K5F32NAvx512(const void *row, const float *x,
                                            int64_t xStride, int64_t n,
                                            float *out) {
  dotK4K5F32RowsAvx512<Five, 1, NT>(row, 0, x, xStride, n, out);
}

// Q6_K: 32 values (signed, q - 32) of two 16-value sub-blocks at a time.
template <int R, int NT>
PINFER_AVX512 inline void
dotQ6_KF32RowsAvx512(const void *row, int64_t rowBytes, const float *x,
                     int64_t xStride, int64_t n, float *out) {
  const __m256i c32 = _mm256_set1_epi8(32);
  const float zero[R] = {};
  __m512 a[R][NT][2];
  zeroChains<R, NT>(a);
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const uint8_t *p[R];
    float d[R];
    for (int r = 0; r < R; ++r) {
      p[r] = static_cast<const uint8_t *>(row) + r * rowBytes +
             b * sizeof(BlockQ6_K);
      d[r] = halfAt(p[r] + 208);
    }
    for (int h = 0; h < 2; ++h) {
      __m256i v[R][4];
      for (int r = 0; r < R; ++r)
        qblk::unpackQ6K(p[r], h, v[r]);
      for (int k = 0; k < 4; ++k, x += 32) {
        __m256i vk[R];
        float s0[R], s1[R];
        for (int r = 0; r < R; ++r) {
          const int8_t *sc =
              reinterpret_cast<const int8_t *>(p[r] + 192) + 8 * h;
          vk[r] = _mm256_sub_epi8(v[r][k], c32);
          s0[r] = d[r] * sc[2 * k];
          s1[r] = d[r] * sc[2 * k + 1];
        }
        fmaSub32<true, false, R, NT>(vk, s0, s1, zero, x, xStride, a);
      }
    }
  }
  sumChains<R, NT>(a, out);
}
template <int NT>
PINFER_AVX512 inline void dotQ6_KF32NAvx512(const void *row, const float *x,
                                            int64_t xStride, int64_t n,
                                            float *out) {
  dotQ6_KF32RowsAvx512<1, NT>(row, 0, x, xStride, n, out);
}

// kRowsAtOnce rows x kTokensAtOnce tokens (prompts' dense down projection):
// each activation load serves four rows, which is what bounds the one-row
// products once four tokens share a row's decoding.
template <bool Five>
PINFER_AVX512 inline void
dotK4K5F32RowsX4Avx512(const void *row, int64_t rowBytes, const float *x,
                       int64_t xStride, int64_t n, float *out) {
  dotK4K5F32RowsAvx512<Five, kRowsAtOnce, kTokensAtOnce>(row, rowBytes, x,
                                                         xStride, n, out);
}
PINFER_AVX512 inline void
dotQ6_KF32RowsX4Avx512(const void *row, int64_t rowBytes, const float *x,
                       int64_t xStride, int64_t n, float *out) {
  dotQ6_KF32RowsAvx512<kRowsAtOnce, kTokensAtOnce>(row, rowBytes, x, xStride, n,
                                                   out);
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
