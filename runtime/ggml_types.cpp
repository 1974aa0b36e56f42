// Lookups in the type table (runtime/type_table.h) and the scalar row
// functions its rows point at: IEEE half and bfloat16 to and from f32, the
// Q8_0 / Q4_0 block formats, and each type's scaled-row accumulation.
// Quantisation reproduces ggml's reference quantiser bit for bit so that
// files written here load in ggml tools with identical weights.
#include "runtime/ggml_types.h"

#include "runtime/type_table.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

namespace pinfer {

namespace {

inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

} // namespace

const TypeTraits *typeTraits(uint32_t type) {
  if (type >= kNumTypes || kTypeTable[type].name == nullptr)
    return nullptr;
  return &kTypeTable[type];
}

const char *typeName(GGMLType type) {
  const TypeTraits *info = typeTraits(type);
  return info ? info->name : "unknown";
}

bool parseTypeName(const char *name, GGMLType &out) {
  if (name == nullptr)
    return false;
  for (uint32_t t = 0; t < kNumTypes; ++t) {
    const char *n = kTypeTable[t].name;
    if (n == nullptr)
      continue;
    size_t i = 0;
    while (n[i] != 0 && name[i] != 0 &&
           std::tolower(static_cast<unsigned char>(n[i])) ==
               std::tolower(static_cast<unsigned char>(name[i])))
      ++i;
    if (n[i] == 0 && name[i] == 0) {
      out = static_cast<GGMLType>(t);
      return true;
    }
  }
  return false;
}

std::string computableTypeNames(const char *lastJoin) {
  std::vector<const char *> names;
  for (const TypeTraits &t : kTypeTable)
    if (t.computable)
      names.push_back(t.name);
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0)
      out += i + 1 == names.size() ? std::string(" ") + lastJoin + " " : ", ";
    out += names[i];
  }
  return out;
}

size_t rowBytes(GGMLType type, int64_t n) {
  const TypeTraits *info = typeTraits(type);
  if (info == nullptr || n < 0 || n % info->blockSize != 0)
    return 0;
  return static_cast<size_t>(n / info->blockSize) * info->typeSize;
}

float fp16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0) {
    if (mant == 0)
      return bitsFloat(sign);
    // Subnormal half: shift the mantissa up until its leading one becomes
    // the implicit bit of a normal f32, lowering the exponent each step.
    uint32_t e = 127 - 15 + 1;
    while ((mant & 0x400) == 0) {
      mant <<= 1;
      --e;
    }
    mant &= 0x3ff;
    return bitsFloat(sign | (e << 23) | (mant << 13));
  }
  if (exp == 31) // inf keeps mantissa 0; NaN keeps its payload
    return bitsFloat(sign | 0x7f800000u | (mant << 13));
  return bitsFloat(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t f32ToFp16(float f) {
  uint32_t x = floatBits(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) {
    if (x == 0x7f800000u)
      return sign | 0x7c00;
    // NaN: keep the top payload bits and force the quiet bit so that a
    // payload living only in the low bits does not turn into infinity.
    return sign | 0x7e00 | static_cast<uint16_t>((x >> 13) & 0x3ff);
  }
  uint32_t e = x >> 23; // biased f32 exponent
  if (e >= 143) // >= 2^16: beyond the largest finite half after rounding
    return sign | 0x7c00;
  if (e >= 113) { // normal half range (2^-14 and up)
    uint32_t h = ((e - 112) << 10) | ((x >> 13) & 0x3ff);
    uint32_t rem = x & 0x1fff;
    // Round to nearest even; a carry out of the mantissa correctly bumps the
    // exponent, up to infinity for values >= 65520.
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
      ++h;
    return sign | static_cast<uint16_t>(h);
  }
  if (e < 102) // below 2^-25: rounds to zero even at the tie point
    return sign;
  // Subnormal half: value = m24 * 2^(e-150), in units of 2^-24 that is
  // m24 >> (126 - e), rounded to nearest even.
  uint32_t m = (x & 0x7fffff) | 0x800000;
  uint32_t shift = 126 - e; // 14..24
  uint32_t q = m >> shift;
  uint32_t rem = m & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1)))
    ++q; // may become 0x400, the smallest normal, which is right
  return sign | static_cast<uint16_t>(q);
}

uint16_t f32ToBf16(float f) {
  uint32_t x = floatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40); // quiet NaN, sign kept
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

// ---- the rows' functions ----------------------------------------------------

namespace rowk {

void dequantizeF32(const void *src, float *dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
}

void dequantizeF16(const void *src, float *dst, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = fp16ToF32(h);
  }
}

void dequantizeBF16(const void *src, float *dst, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = bf16ToF32(h);
  }
}

void dequantizeQ8_0(const void *src, float *dst, int64_t n) {
  // Blocks are read through memcpy: tensor data in a file is only
  // guaranteed to be aligned to the file's alignment, not to 2 bytes
  // within a row of 34-byte blocks.
  const uint8_t *p = static_cast<const uint8_t *>(src);
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    BlockQ8_0 blk;
    std::memcpy(&blk, p + b * sizeof(BlockQ8_0), sizeof(BlockQ8_0));
    float d = fp16ToF32(blk.d);
    for (int j = 0; j < QK8_0; ++j)
      dst[b * QK8_0 + j] = d * blk.qs[j];
  }
}

void dequantizeQ4_0(const void *src, float *dst, int64_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(src);
  for (int64_t b = 0; b < n / QK4_0; ++b) {
    BlockQ4_0 blk;
    std::memcpy(&blk, p + b * sizeof(BlockQ4_0), sizeof(BlockQ4_0));
    float d = fp16ToF32(blk.d);
    float *y = dst + b * QK4_0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = d * (static_cast<int>(blk.qs[j] & 0xf) - 8);
      y[j + QK4_0 / 2] = d * (static_cast<int>(blk.qs[j] >> 4) - 8);
    }
  }
}

} // namespace rowk

namespace {

// NaN inputs quantise to the value they would be cast from in C, which is
// undefined: clamp to the representable range first so the result is
// defined (ggml leaves this case undefined).
inline int clampToInt(float v, int lo, int hi) {
  if (!(v >= static_cast<float>(lo)))
    return lo;
  if (v > static_cast<float>(hi))
    return hi;
  return static_cast<int>(v);
}

} // namespace

namespace rowk {

void quantizeF32(const float *src, void *dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
}

void quantizeF16(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h = f32ToFp16(src[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

void quantizeBF16(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h = f32ToBf16(src[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

void quantizeQ8_0(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    const float *x = src + b * QK8_0;
    float amax = 0;
    for (int j = 0; j < QK8_0; ++j)
      amax = std::max(amax, std::fabs(x[j]));
    // ggml's reference: d = amax/127 and the quants are x * (1/d), rounded
    // half away from zero. Multiplying by the reciprocal (not dividing)
    // matters for bit-exact agreement at rounding ties.
    float d = amax / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ8_0 blk;
    blk.d = f32ToFp16(d);
    for (int j = 0; j < QK8_0; ++j)
      blk.qs[j] =
          static_cast<int8_t>(clampToInt(std::round(x[j] * id), -128, 127));
    std::memcpy(out + b * sizeof(BlockQ8_0), &blk, sizeof(BlockQ8_0));
  }
}

void quantizeQ4_0(const float *src, void *dst, int64_t n) {
  uint8_t *out = static_cast<uint8_t *>(dst);
  for (int64_t b = 0; b < n / QK4_0; ++b) {
    const float *x = src + b * QK4_0;
    // The signed value of largest magnitude maps to quant 0 (-8 * d), so
    // the scale's sign follows it and the other extreme gets 7.
    float amax = 0, max = 0;
    for (int j = 0; j < QK4_0; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    float d = max / -8.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    BlockQ4_0 blk;
    blk.d = f32ToFp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      int q0 = std::min(15, clampToInt(x[j] * id + 8.5f, 0, 127));
      int q1 = std::min(15, clampToInt(x[j + QK4_0 / 2] * id + 8.5f, 0, 127));
      blk.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    std::memcpy(out + b * sizeof(BlockQ4_0), &blk, sizeof(BlockQ4_0));
  }
}

// The sparse down projection's scalar path (runtime/sparse_kernels.cpp):
// rows of the mapped file, read in place.
void axpyF32(const void *rowv, float a, float *y, int64_t c0, int64_t c1) {
  const float *row = static_cast<const float *>(rowv);
  for (int64_t i = c0; i < c1; ++i)
    y[i] += a * row[i];
}

void axpyF16(const void *rowv, float a, float *y, int64_t c0, int64_t c1) {
  const uint16_t *row = static_cast<const uint16_t *>(rowv);
  for (int64_t i = c0; i < c1; ++i)
    y[i] += a * fp16ToF32(row[i]);
}

void axpyBF16(const void *rowv, float a, float *y, int64_t c0, int64_t c1) {
  const uint16_t *row = static_cast<const uint16_t *>(rowv);
  for (int64_t i = c0; i < c1; ++i)
    y[i] += a * bf16ToF32(row[i]);
}

void axpyQ8_0(const void *rowv, float a, float *y, int64_t c0, int64_t c1) {
  const BlockQ8_0 *b = static_cast<const BlockQ8_0 *>(rowv);
  for (int64_t blk = c0 / QK8_0; blk < c1 / QK8_0; ++blk) {
    // Scale once per block: a * d * q.
    float s = a * fp16ToF32(b[blk].d);
    float *yb = y + blk * QK8_0;
    for (int j = 0; j < QK8_0; ++j)
      yb[j] += s * float(b[blk].qs[j]);
  }
}

void axpyQ4_0(const void *rowv, float a, float *y, int64_t c0, int64_t c1) {
  const BlockQ4_0 *b = static_cast<const BlockQ4_0 *>(rowv);
  for (int64_t blk = c0 / QK4_0; blk < c1 / QK4_0; ++blk) {
    float s = a * fp16ToF32(b[blk].d);
    float *yb = y + blk * QK4_0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      yb[j] += s * float((b[blk].qs[j] & 0xF) - 8);
      yb[j + QK4_0 / 2] += s * float((b[blk].qs[j] >> 4) - 8);
    }
  }
}

} // namespace rowk

bool dequantizeRow(GGMLType type, const void *src, float *dst, int64_t n) {
  const TypeTraits *info = typeTraits(type);
  if (info == nullptr || !info->computable || n < 0 || n % info->blockSize != 0)
    return false;
  info->toF32(src, dst, n);
  return true;
}

bool quantizeRow(GGMLType type, const float *src, void *dst, int64_t n) {
  const TypeTraits *info = typeTraits(type);
  if (info == nullptr || !info->computable || n < 0 || n % info->blockSize != 0)
    return false;
  info->fromF32(src, dst, n);
  return true;
}

} // namespace pinfer
