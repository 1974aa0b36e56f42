// The block formats of ggml's other quantised types: the legacy Q4_1, Q5_0
// and Q5_1 (32 elements a block) and the K-quants Q2_K..Q6_K (256 elements
// a super-block of 16 or 8 sub-blocks with their own quantised scales), as
// ggml-common.h lays them out, and one inline decoder per format that turns
// a block into floats with the reference formulas of ggml's dequantize_row_*
// (same operations in the same order, so the results are bitwise ggml's).
//
// The dot products of these types (runtime/dot_kernels.h) decode a block
// into a small buffer and multiply it with the f32 activation; rows are used
// straight from the mapped file. Blocks are read byte-wise (their f16 fields
// through memcpy): a file only aligns a tensor's start.
#pragma once

#include "runtime/ggml_types.h"

#include <cstdint>
#include <cstring>

namespace pinfer {

constexpr int QK_K = 256;   // elements per K-quant super-block
constexpr int QK4_1 = 32, QK5_0 = 32, QK5_1 = 32;

// block_q4_1: x[j] = d * (qs[j] & 0xF) + m, x[j+16] = d * (qs[j] >> 4) + m.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "block_q4_1 layout");

// block_q5_0: 5-bit values, the fifth bits in qh (bit j: element j, bit
// j+16: element j+16), x = d * (q - 16).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "block_q5_0 layout");

// block_q5_1: as Q5_0 without the offset, x = d * q + m.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "block_q5_1 layout");

// block_q2_K: 16 sub-blocks of 16; scales[j] = scale (low 4 bits) | min
// (high 4 bits); x = d * scale * q - dmin * min, q in 0..3.
struct BlockQ2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84, "block_q2_K layout");

// block_q3_K: 16 sub-blocks of 16 with 6-bit signed scales packed in 12
// bytes; q = low 2 bits from qs, minus 4 unless the hmask bit is set.
struct BlockQ3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110, "block_q3_K layout");

// block_q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12
// bytes; x = d * scale * q - dmin * min, q in 0..15.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "block_q4_K layout");

// block_q5_K: as Q4_K with a fifth bit per element in qh.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "block_q5_K layout");

// block_q6_K: 16 sub-blocks of 16 with 8-bit signed scales; 6-bit values
// (low 4 bits in ql, high 2 in qh), x = d * scale * (q - 32).
struct BlockQ6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "block_q6_K layout");

namespace qblk {

inline float half(const void *p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16ToF32(h);
}

// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block.
inline void scaleMinK4(int j, const uint8_t *q, uint8_t &d, uint8_t &m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

// All eight 6-bit scales and mins of a Q4_K/Q5_K block at once, as
// scaleMinK4 reads them one by one: sc[j], m[j] in byte j. The 12 bytes
// are three words A, B, C: sub-blocks 0-3 keep the low 6 bits of A (scales)
// and B (mins); sub-blocks 4-7 take C's low (scales) and high (mins)
// nibbles with the top two bits of A's and B's bytes above them.
struct ScalesMinsK4 {
  uint8_t sc[8], m[8];
};
inline ScalesMinsK4 scalesMinsK4(const uint8_t *q) {
  uint32_t a, b, c;
  std::memcpy(&a, q, 4);
  std::memcpy(&b, q + 4, 4);
  std::memcpy(&c, q + 8, 4);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
  const uint32_t words[4] = {a & low6, (c & low4) | (((a >> 6) & top2) << 4),
                             b & low6,
                             ((c >> 4) & low4) | (((b >> 6) & top2) << 4)};
  ScalesMinsK4 out;
  std::memcpy(out.sc, words, 8); // little-endian: byte j of the words is j
  std::memcpy(out.m, words + 2, 8);
  return out;
}

// Each decoder writes the block's elements to y[0 .. block size).

inline void decodeQ4_1(const uint8_t *p, float *y) {
  const float d = half(p), m = half(p + 2);
  const uint8_t *qs = p + 4;
  for (int j = 0; j < QK4_1 / 2; ++j) {
    y[j] = (qs[j] & 0x0F) * d + m;
    y[j + QK4_1 / 2] = (qs[j] >> 4) * d + m;
  }
}

inline void decodeQ5_0(const uint8_t *p, float *y) {
  const float d = half(p);
  uint32_t qh;
  std::memcpy(&qh, p + 2, 4);
  const uint8_t *qs = p + 6;
  for (int j = 0; j < QK5_0 / 2; ++j) {
    const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
    const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
    const int32_t x0 = ((qs[j] & 0x0F) | xh0) - 16;
    const int32_t x1 = ((qs[j] >> 4) | xh1) - 16;
    y[j] = x0 * d;
    y[j + QK5_0 / 2] = x1 * d;
  }
}

inline void decodeQ5_1(const uint8_t *p, float *y) {
  const float d = half(p), m = half(p + 2);
  uint32_t qh;
  std::memcpy(&qh, p + 4, 4);
  const uint8_t *qs = p + 8;
  for (int j = 0; j < QK5_1 / 2; ++j) {
    const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
    const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
    const int x0 = (qs[j] & 0x0F) | xh0;
    const int x1 = (qs[j] >> 4) | xh1;
    y[j] = x0 * d + m;
    y[j + QK5_1 / 2] = x1 * d + m;
  }
}

inline void decodeQ2_K(const uint8_t *p, float *y) {
  const uint8_t *scales = p;
  const uint8_t *q = p + QK_K / 16;
  const float d = half(p + 80), min = half(p + 82);
  int is = 0;
  for (int n = 0; n < QK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc = scales[is++];
      float dl = d * (sc & 0xF), ml = min * (sc >> 4);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * int8_t((q[l] >> shift) & 3) - ml;
      sc = scales[is++];
      dl = d * (sc & 0xF), ml = min * (sc >> 4);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * int8_t((q[l + 16] >> shift) & 3) - ml;
      shift += 2;
    }
    q += 32;
  }
}

// The 16 signed 6-bit scales of a Q3_K block, unpacked.
inline void scalesQ3_K(const uint8_t *packed, int8_t *out) {
  constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  uint32_t aux[4];
  std::memcpy(aux, packed, 12);
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  std::memcpy(out, aux, 16);
}

inline void decodeQ3_K(const uint8_t *p, float *y) {
  const uint8_t *hm = p;
  const uint8_t *q = p + QK_K / 8;
  const float dAll = half(p + 108);
  int8_t scales[16];
  scalesQ3_K(p + 96, scales);
  uint8_t m = 1;
  int is = 0;
  for (int n = 0; n < QK_K; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      float dl = dAll * (scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * (int8_t((q[l + 0] >> shift) & 3) -
                     ((hm[l + 0] & m) ? 0 : 4));
      dl = dAll * (scales[is++] - 32);
      for (int l = 0; l < 16; ++l)
        *y++ = dl * (int8_t((q[l + 16] >> shift) & 3) -
                     ((hm[l + 16] & m) ? 0 : 4));
      shift += 2;
      m <<= 1;
    }
    q += 32;
  }
}

inline void decodeQ4_K(const uint8_t *p, float *y) {
  const float d = half(p), min = half(p + 2);
  const uint8_t *scales = p + 4;
  const uint8_t *q = p + 16;
  int is = 0;
  for (int j = 0; j < QK_K; j += 64) {
    uint8_t sc, m;
    scaleMinK4(is + 0, scales, sc, m);
    const float d1 = d * sc, m1 = min * m;
    scaleMinK4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * (q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * (q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

inline void decodeQ5_K(const uint8_t *p, float *y) {
  const float d = half(p), min = half(p + 2);
  const uint8_t *scales = p + 4;
  const uint8_t *qh = p + 16;
  const uint8_t *ql = p + 48;
  int is = 0;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < QK_K; j += 64) {
    uint8_t sc, m;
    scaleMinK4(is + 0, scales, sc, m);
    const float d1 = d * sc, m1 = min * m;
    scaleMinK4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 <<= 2;
    u2 <<= 2;
  }
}

inline void decodeQ6_K(const uint8_t *p, float *y) {
  const uint8_t *ql = p;
  const uint8_t *qh = p + QK_K / 2;
  const int8_t *sc = reinterpret_cast<const int8_t *>(p + 192);
  const float d = half(p + 208);
  for (int n = 0; n < QK_K; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int8_t q1 = int8_t((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int8_t q2 = int8_t((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int8_t q3 = int8_t((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int8_t q4 = int8_t((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// Each block in DownLayout::SplitK's form (runtime/ggml_types.h): the
// numbers its decoder above multiplies, so that (d * sc) * q + dm * m is
// the decoded value (dm * m the negated product where the decoder
// subtracts one: the same magnitude, exactly).

inline void splitKQ4_1(const uint8_t *p, SplitKBlock &o) {
  o.d = half(p);
  o.dm = half(p + 2);
  o.sc[0] = o.m[0] = 1;
  for (int j = 0; j < QK4_1 / 2; ++j) {
    o.q[j] = int8_t(p[4 + j] & 0x0F);
    o.q[j + QK4_1 / 2] = int8_t(p[4 + j] >> 4);
  }
}

// Q5_0/Q5_1's 5-bit values, unsigned.
inline void fiveBits(const uint8_t *qh4, const uint8_t *qs, int8_t *q) {
  uint32_t qh;
  std::memcpy(&qh, qh4, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = int8_t((qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
    q[j + 16] = int8_t((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
  }
}

inline void splitKQ5_0(const uint8_t *p, SplitKBlock &o) {
  o.d = half(p);
  o.sc[0] = 1;
  fiveBits(p + 2, p + 6, o.q);
  for (int j = 0; j < QK5_0; ++j)
    o.q[j] = int8_t(o.q[j] - 16);
}

inline void splitKQ5_1(const uint8_t *p, SplitKBlock &o) {
  o.d = half(p);
  o.dm = half(p + 2);
  o.sc[0] = o.m[0] = 1;
  fiveBits(p + 4, p + 8, o.q);
}

inline void splitKQ2_K(const uint8_t *p, SplitKBlock &o) {
  const uint8_t *q = p + QK_K / 16;
  o.d = half(p + 80);
  o.dm = -half(p + 82);
  for (int g = 0; g < 16; ++g) {
    o.sc[g] = int8_t(p[g] & 0xF);
    o.m[g] = int8_t(p[g] >> 4);
  }
  // Element 128h + 32j + l (l < 32) is bits 2j of byte 32h + l.
  for (int i = 0; i < QK_K; ++i) {
    const int h = i / 128, j = (i % 128) / 32, l = i % 32;
    o.q[i] = int8_t((q[32 * h + l] >> (2 * j)) & 3);
  }
}

inline void splitKQ3_K(const uint8_t *p, SplitKBlock &o) {
  const uint8_t *hm = p, *q = p + QK_K / 8;
  o.d = half(p + 108);
  int8_t scales[16];
  scalesQ3_K(p + 96, scales);
  for (int g = 0; g < 16; ++g)
    o.sc[g] = int8_t(scales[g] - 32);
  for (int i = 0; i < QK_K; ++i) {
    const int h = i / 128, j = (i % 128) / 32, l = i % 32;
    const int low = (q[32 * h + l] >> (2 * j)) & 3;
    o.q[i] = int8_t(low - ((hm[l] >> (4 * h + j)) & 1 ? 0 : 4));
  }
}

// Q4_K/Q5_K: sub-block j of 32 has its scale and min.
inline void scalesMinsK(const uint8_t *p, SplitKBlock &o) {
  o.d = half(p);
  o.dm = -half(p + 2);
  for (int g = 0; g < 8; ++g) {
    uint8_t sc, m;
    scaleMinK4(g, p + 4, sc, m);
    o.sc[g] = int8_t(sc);
    o.m[g] = int8_t(m);
  }
}

inline void splitKQ4_K(const uint8_t *p, SplitKBlock &o) {
  scalesMinsK(p, o);
  const uint8_t *q = p + 16;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      o.q[64 * c + l] = int8_t(q[32 * c + l] & 0xF);
      o.q[64 * c + 32 + l] = int8_t(q[32 * c + l] >> 4);
    }
}

inline void splitKQ5_K(const uint8_t *p, SplitKBlock &o) {
  scalesMinsK(p, o);
  const uint8_t *qh = p + 16, *ql = p + 48;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      o.q[64 * c + l] =
          int8_t((ql[32 * c + l] & 0xF) + ((qh[l] >> (2 * c)) & 1 ? 16 : 0));
      o.q[64 * c + 32 + l] =
          int8_t((ql[32 * c + l] >> 4) + ((qh[l] >> (2 * c + 1)) & 1 ? 16 : 0));
    }
}

inline void splitKQ6_K(const uint8_t *p, SplitKBlock &o) {
  const uint8_t *ql = p, *qh = p + QK_K / 2;
  o.d = half(p + 208);
  std::memcpy(o.sc, p + 192, 16);
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t *L = ql + 64 * h;
      const uint8_t H = qh[32 * h + l];
      int8_t *q = o.q + 128 * h;
      q[l] = int8_t(((L[l] & 0xF) | (((H >> 0) & 3) << 4)) - 32);
      q[l + 32] = int8_t(((L[l + 32] & 0xF) | (((H >> 2) & 3) << 4)) - 32);
      q[l + 64] = int8_t(((L[l] >> 4) | (((H >> 4) & 3) << 4)) - 32);
      q[l + 96] = int8_t(((L[l + 32] >> 4) | (((H >> 6) & 3) << 4)) - 32);
    }
}

} // namespace qblk

// A decoder and its block shape, for the kernels templated on a format.
using DecodeBlockFn = void (*)(const uint8_t *block, float *y);

// The quantisers (runtime/quant_blocks.cpp): ggml's reference rounding for
// the legacy formats; for the K-quants a plain min-max quantiser (scales
// rounded so that no value clips), not ggml's search for the error-optimal
// scales, so files made by pinfer-genmodel are valid but not as close as
// llama-quantize's. `n` is a multiple of the block size.
namespace rowk {
void quantizeQ4_1(const float *src, void *dst, int64_t n);
void quantizeQ5_0(const float *src, void *dst, int64_t n);
void quantizeQ5_1(const float *src, void *dst, int64_t n);
void quantizeQ2_K(const float *src, void *dst, int64_t n);
void quantizeQ3_K(const float *src, void *dst, int64_t n);
void quantizeQ4_K(const float *src, void *dst, int64_t n);
void quantizeQ5_K(const float *src, void *dst, int64_t n);
void quantizeQ6_K(const float *src, void *dst, int64_t n);

// Rows of any decoded format: dst = decode, y[c0..c1) += a * row.
template <DecodeBlockFn Decode, int QK, int Bytes>
void dequantizeBlocks(const void *src, float *dst, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(src);
  for (int64_t b = 0; b < n / QK; ++b)
    Decode(p + b * Bytes, dst + b * QK);
}
template <DecodeBlockFn Decode, int QK, int Bytes>
void axpyBlocks(const void *row, float a, float *y, int64_t c0, int64_t c1) {
  const uint8_t *p = static_cast<const uint8_t *>(row);
  float buf[QK];
  for (int64_t b = c0 / QK; b < c1 / QK; ++b) {
    Decode(p + b * Bytes, buf);
    float *yb = y + b * QK;
    for (int j = 0; j < QK; ++j)
      yb[j] += a * buf[j];
  }
}
} // namespace rowk

} // namespace pinfer
