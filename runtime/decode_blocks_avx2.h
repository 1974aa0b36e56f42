// AVX2 twins of the decoders of the K-quants of common downloads (Q4_K,
// Q5_K, Q6_K; runtime/quant_blocks.h): the same floats, bit for bit (each
// value is the same float product, and difference, of the same operands:
// (d * sc) * q, or (d * sc) * q - dmin * m), unpacked 32 bytes at a time
// instead of one value at a time. The f32-activation products of these
// types (the dense down projection, whose input stays in f32) decode every
// block they read, so the decoder is their cost.
#pragma once

#include "runtime/dot_kernels.h"
#include "runtime/quant_blocks.h"

#ifdef PINFER_X86

namespace pinfer {
namespace qblk {

// y[0..32) = scale * float(v) - minus for the 32 unsigned (Signed: signed)
// bytes of v, 16 with each of two scales (s0 for the first 16).
template <bool Signed, bool Min>
PINFER_AVX2 inline void store32(float *y, __m256i v, float s0, float s1,
                                float m0, float m1) {
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
      _mm256_storeu_ps(y + 16 * h + 8 * e, f);
    }
  }
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

template <bool Five>
PINFER_AVX2 inline void decodeK4K5Avx2(const uint8_t *p, float *y) {
  const float d = dotk::halfAt(p), min = dotk::halfAt(p + 2);
  for (int g = 0; g < 4; ++g, y += 64) {
    uint8_t sc, m;
    scaleMinK4(2 * g, p + 4, sc, m);
    const float d1 = d * sc, m1 = min * m;
    scaleMinK4(2 * g + 1, p + 4, sc, m);
    const float d2 = d * sc, m2 = min * m;
    __m256i lo, hi;
    unpackK4K5<Five>(p, g, lo, hi);
    store32<false, true>(y, lo, d1, d1, m1, m1);
    store32<false, true>(y + 32, hi, d2, d2, m2, m2);
  }
}

PINFER_AVX2 inline void decodeQ4_KAvx2(const uint8_t *p, float *y) {
  decodeK4K5Avx2<false>(p, y);
}
PINFER_AVX2 inline void decodeQ5_KAvx2(const uint8_t *p, float *y) {
  decodeK4K5Avx2<true>(p, y);
}

PINFER_AVX2 inline void decodeQ6_KAvx2(const uint8_t *p, float *y) {
  const int8_t *sc = reinterpret_cast<const int8_t *>(p + 192);
  const float d = dotk::halfAt(p + 208);
  const __m256i c32 = _mm256_set1_epi8(32);
  for (int h = 0; h < 2; ++h, y += 128, sc += 8) {
    __m256i v[4];
    unpackQ6K(p, h, v);
    for (int k = 0; k < 4; ++k)
      store32<true, false>(y + 32 * k, _mm256_sub_epi8(v[k], c32),
                           d * sc[2 * k], d * sc[2 * k + 1], 0.f, 0.f);
  }
}

} // namespace qblk
} // namespace pinfer

#endif // PINFER_X86
