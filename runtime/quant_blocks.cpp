// Quantisers of the formats of runtime/quant_blocks.h. The legacy formats
// round as ggml's quantize_row_*_ref do; the K-quants use a plain min-max
// rule: each sub-block's scale (and min) from its range, the super-block's
// scales quantised to their bit width with rounding up, so that a
// sub-block's values never clip, then each value rounded to nearest.
#include "runtime/quant_blocks.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace pinfer {

namespace {

int nearest(float x) { return int(std::lrintf(x)); }

// The f16 rounding of a scale, as the block will hold it.
float asHalf(float x, uint16_t &bits) {
  bits = f32ToFp16(x);
  return fp16ToF32(bits);
}

// Range [lo, hi] of x[0..n), lo clamped to <= 0 (K-quant mins are offsets
// below zero, stored as non-negative numbers).
void rangeOf(const float *x, int n, float &lo, float &hi) {
  lo = 0.f;
  hi = -FLT_MAX;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  hi = std::max(hi, lo);
}

float absMax(const float *x, int n) {
  float a = 0.f;
  for (int i = 0; i < n; ++i)
    a = std::max(a, std::fabs(x[i]));
  return a;
}

// A sub-block scale as an integer multiple of the super-block's `d`,
// rounded up so that the sub-block's range fits.
int scaleUp(float s, float d, int maxQ) {
  if (!(d > 0.f))
    return 0;
  return std::min(maxQ, int(std::ceil(s / d)));
}

int minNearest(float m, float d, int maxQ) {
  if (!(d > 0.f))
    return 0;
  return std::min(maxQ, nearest(m / d));
}

// Values of an affine sub-block: q = round((x + m) / d) in [0, maxQ].
void quantAffine(const float *x, int n, float d, float m, int maxQ,
                 uint8_t *L) {
  for (int i = 0; i < n; ++i)
    L[i] = d > 0.f ? uint8_t(std::clamp(nearest((x[i] + m) / d), 0, maxQ)) : 0;
}

// Q4_K/Q5_K: 8 sub-blocks of 32 values in [0, maxQ]; fills d, dmin, the
// packed 6-bit scales and mins, and L[256].
void quantK4K5(const float *x, int maxQ, uint16_t &dBits, uint16_t &dminBits,
               uint8_t *scales, uint8_t *L) {
  float sc[8], mn[8];
  float maxSc = 0.f, maxMn = 0.f;
  for (int j = 0; j < 8; ++j) {
    float lo, hi;
    rangeOf(x + 32 * j, 32, lo, hi);
    sc[j] = (hi - lo) / maxQ;
    mn[j] = -lo;
    maxSc = std::max(maxSc, sc[j]);
    maxMn = std::max(maxMn, mn[j]);
  }
  const float d = asHalf(maxSc / 63.f, dBits);
  const float dmin = asHalf(maxMn / 63.f, dminBits);
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = uint8_t(scaleUp(sc[j], d, 63));
    lm[j] = uint8_t(minNearest(mn[j], dmin, 63));
  }
  std::memset(scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = ls[j];
      scales[j + 4] = lm[j];
    } else {
      scales[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      scales[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      scales[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
  for (int j = 0; j < 8; ++j)
    quantAffine(x + 32 * j, 32, d * ls[j], dmin * lm[j], maxQ, L + 32 * j);
}

// Q2_K/Q3_K: the low 2 bits of 256 values, four to a byte: byte 32c + l of
// chunk c (128 values) holds values 128c + l + 32i in bits 2i, 2i+1.
void pack2Bits(const uint8_t *L, uint8_t *qs) {
  for (int j = 0; j < QK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) |
                              (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

} // namespace

namespace rowk {

void quantizeQ4_1(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK4_1; ++b, src += QK4_1) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK4_1; ++j) {
      lo = std::min(lo, src[j]);
      hi = std::max(hi, src[j]);
    }
    const float d = (hi - lo) / 15.f;
    const float id = d ? 1.f / d : 0.f;
    BlockQ4_1 blk;
    blk.d = f32ToFp16(d);
    blk.m = f32ToFp16(lo);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const uint8_t x0 = std::min<int8_t>(15, int8_t((src[j] - lo) * id + 0.5f));
      const uint8_t x1 =
          std::min<int8_t>(15, int8_t((src[j + 16] - lo) * id + 0.5f));
      blk.qs[j] = uint8_t(x0 | (x1 << 4));
    }
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

// Q5_0 and Q5_1 share the packing of the fifth bits.
template <class Block>
void packQ5(Block &blk, const int *xi0, const int *xi1) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    blk.qs[j] = uint8_t((xi0[j] & 0x0F) | ((xi1[j] & 0x0F) << 4));
    qh |= ((uint32_t(xi0[j]) & 0x10u) >> 4) << (j + 0);
    qh |= ((uint32_t(xi1[j]) & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(blk.qh, &qh, 4);
}

void quantizeQ5_0(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK5_0; ++b, src += QK5_0) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < QK5_0; ++j)
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    const float d = max / -16.f;
    const float id = d ? 1.f / d : 0.f;
    BlockQ5_0 blk;
    blk.d = f32ToFp16(d);
    int xi0[16], xi1[16];
    for (int j = 0; j < 16; ++j) {
      xi0[j] = std::min<int8_t>(31, int8_t(src[j] * id + 16.5f));
      xi1[j] = std::min<int8_t>(31, int8_t(src[j + 16] * id + 16.5f));
    }
    packQ5(blk, xi0, xi1);
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

void quantizeQ5_1(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK5_1; ++b, src += QK5_1) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK5_1; ++j) {
      lo = std::min(lo, src[j]);
      hi = std::max(hi, src[j]);
    }
    const float d = (hi - lo) / 31.f;
    const float id = d ? 1.f / d : 0.f;
    BlockQ5_1 blk;
    blk.d = f32ToFp16(d);
    blk.m = f32ToFp16(lo);
    int xi0[16], xi1[16];
    for (int j = 0; j < 16; ++j) {
      xi0[j] = uint8_t((src[j] - lo) * id + 0.5f);
      xi1[j] = uint8_t((src[j + 16] - lo) * id + 0.5f);
    }
    packQ5(blk, xi0, xi1);
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

void quantizeQ2_K(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, src += QK_K) {
    BlockQ2_K blk;
    float sc[16], mn[16], maxSc = 0.f, maxMn = 0.f;
    for (int j = 0; j < 16; ++j) {
      float lo, hi;
      rangeOf(src + 16 * j, 16, lo, hi);
      sc[j] = (hi - lo) / 3.f;
      mn[j] = -lo;
      maxSc = std::max(maxSc, sc[j]);
      maxMn = std::max(maxMn, mn[j]);
    }
    const float d = asHalf(maxSc / 15.f, blk.d);
    const float dmin = asHalf(maxMn / 15.f, blk.dmin);
    uint8_t L[QK_K];
    for (int j = 0; j < 16; ++j) {
      const int ls = scaleUp(sc[j], d, 15), lm = minNearest(mn[j], dmin, 15);
      blk.scales[j] = uint8_t(ls | (lm << 4));
      quantAffine(src + 16 * j, 16, d * ls, dmin * lm, 3, L + 16 * j);
    }
    pack2Bits(L, blk.qs);
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

void quantizeQ3_K(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, src += QK_K) {
    BlockQ3_K blk;
    // Symmetric sub-blocks: |x| / scale <= 3.5, so both extremes round
    // into [-4, 3] with at most half a step of error.
    float s[16], maxS = 0.f;
    for (int j = 0; j < 16; ++j) {
      s[j] = absMax(src + 16 * j, 16) / 3.5f;
      maxS = std::max(maxS, s[j]);
    }
    const float d = asHalf(maxS / 31.f, blk.d);
    std::memset(blk.scales, 0, 12);
    uint8_t L[QK_K];
    for (int j = 0; j < 16; ++j) {
      const int ls = scaleUp(s[j], d, 31);
      const float d1 = d * ls;
      for (int i = 0; i < 16; ++i) {
        const float x = src[16 * j + i];
        L[16 * j + i] =
            d1 > 0.f ? uint8_t(std::clamp(nearest(x / d1), -4, 3) + 4) : 4;
      }
      int l = ls + 32; // stored offset by 32: 6-bit signed scales
      if (j < 8)
        blk.scales[j] = uint8_t(l & 0xF);
      else
        blk.scales[j - 8] |= uint8_t((l & 0xF) << 4);
      l >>= 4;
      blk.scales[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
    }
    std::memset(blk.hmask, 0, sizeof(blk.hmask));
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < QK_K; ++j) {
      if (L[j] > 3) {
        blk.hmask[m] |= hm;
        L[j] -= 4;
      }
      if (++m == QK_K / 8) {
        m = 0;
        hm <<= 1;
      }
    }
    pack2Bits(L, blk.qs);
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

void quantizeQ4_K(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, src += QK_K) {
    BlockQ4_K blk;
    uint8_t L[QK_K];
    quantK4K5(src, 15, blk.d, blk.dmin, blk.scales, L);
    uint8_t *q = blk.qs;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l)
        q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

void quantizeQ5_K(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, src += QK_K) {
    BlockQ5_K blk;
    uint8_t L[QK_K];
    quantK4K5(src, 31, blk.d, blk.dmin, blk.scales, L);
    std::memset(blk.qh, 0, sizeof(blk.qh));
    uint8_t *ql = blk.qs;
    uint8_t m1 = 1, m2 = 2;
    for (int j = 0; j < QK_K; j += 64, ql += 32) {
      for (int l = 0; l < 32; ++l) {
        int l1 = L[j + l], l2 = L[j + l + 32];
        if (l1 > 15) {
          l1 -= 16;
          blk.qh[l] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          blk.qh[l] |= m2;
        }
        ql[l] = uint8_t(l1 | (l2 << 4));
      }
      m1 <<= 2;
      m2 <<= 2;
    }
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

void quantizeQ6_K(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, src += QK_K) {
    BlockQ6_K blk;
    float s[16], maxS = 0.f;
    for (int j = 0; j < 16; ++j) {
      s[j] = absMax(src + 16 * j, 16) / 31.f;
      maxS = std::max(maxS, s[j]);
    }
    const float d = asHalf(maxS / 127.f, blk.d);
    uint8_t L[QK_K];
    for (int j = 0; j < 16; ++j) {
      const int ls = scaleUp(s[j], d, 127);
      blk.scales[j] = int8_t(ls);
      const float d1 = d * ls;
      for (int i = 0; i < 16; ++i) {
        const float x = src[16 * j + i];
        L[16 * j + i] =
            d1 > 0.f ? uint8_t(std::clamp(nearest(x / d1), -32, 31) + 32) : 32;
      }
    }
    uint8_t *ql = blk.ql, *qh = blk.qh;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = uint8_t(q1 | (q3 << 4));
        ql[l + 32] = uint8_t(q2 | (q4 << 4));
        qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                        ((L[j + l + 64] >> 4) << 4) |
                        ((L[j + l + 96] >> 4) << 6));
      }
    std::memcpy(out + b * sizeof(blk), &blk, sizeof(blk));
  }
}

} // namespace rowk

} // namespace pinfer
