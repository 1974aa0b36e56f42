// The ggml tensor type table (names, block sizes, bytes per block) and the
// scalar conversions pinfer computes with: IEEE half and bfloat16 to and from
// f32, and the Q8_0 / Q4_0 block formats. Quantisation reproduces ggml's
// reference quantiser bit for bit so that files written here load in ggml
// tools with identical weights.
#include "runtime/ggml_types.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace pinfer {

namespace {

constexpr uint32_t QK_K = 256;

// Indexed by the ggml type number. Numbers ggml retired (4, 5, 31-33, 36-38)
// have no name: files using them cannot be read by current ggml either.
// Block byte counts follow the block structs of ggml-common.h.
constexpr TypeInfo kTypes[] = {
    /* 0 */ {"f32", 1, 4, true},
    /* 1 */ {"f16", 1, 2, true},
    /* 2 */ {"q4_0", 32, 18, true},
    /* 3 */ {"q4_1", 32, 20, false},
    /* 4 */ {nullptr, 0, 0, false},
    /* 5 */ {nullptr, 0, 0, false},
    /* 6 */ {"q5_0", 32, 22, false},
    /* 7 */ {"q5_1", 32, 24, false},
    /* 8 */ {"q8_0", 32, 34, true},
    /* 9 */ {"q8_1", 32, 36, false},
    /* 10 */ {"q2_K", QK_K, 84, false},
    /* 11 */ {"q3_K", QK_K, 110, false},
    /* 12 */ {"q4_K", QK_K, 144, false},
    /* 13 */ {"q5_K", QK_K, 176, false},
    /* 14 */ {"q6_K", QK_K, 210, false},
    /* 15 */ {"q8_K", QK_K, 292, false},
    /* 16 */ {"iq2_xxs", QK_K, 66, false},
    /* 17 */ {"iq2_xs", QK_K, 74, false},
    /* 18 */ {"iq3_xxs", QK_K, 98, false},
    /* 19 */ {"iq1_s", QK_K, 50, false},
    /* 20 */ {"iq4_nl", 32, 18, false},
    /* 21 */ {"iq3_s", QK_K, 110, false},
    /* 22 */ {"iq2_s", QK_K, 82, false},
    /* 23 */ {"iq4_xs", QK_K, 136, false},
    /* 24 */ {"i8", 1, 1, false},
    /* 25 */ {"i16", 1, 2, false},
    /* 26 */ {"i32", 1, 4, false},
    /* 27 */ {"i64", 1, 8, false},
    /* 28 */ {"f64", 1, 8, false},
    /* 29 */ {"iq1_m", QK_K, 56, false},
    /* 30 */ {"bf16", 1, 2, true},
    /* 31 */ {nullptr, 0, 0, false},
    /* 32 */ {nullptr, 0, 0, false},
    /* 33 */ {nullptr, 0, 0, false},
    /* 34 */ {"tq1_0", QK_K, 54, false},
    /* 35 */ {"tq2_0", QK_K, 66, false},
    /* 36 */ {nullptr, 0, 0, false},
    /* 37 */ {nullptr, 0, 0, false},
    /* 38 */ {nullptr, 0, 0, false},
    /* 39 */ {"mxfp4", 32, 17, false},
    /* 40 */ {"nvfp4", 64, 36, false},
    /* 41 */ {"q1_0", 128, 18, false},
};
constexpr uint32_t kNumTypes = sizeof(kTypes) / sizeof(kTypes[0]);

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

const TypeInfo *typeInfo(uint32_t type) {
  if (type >= kNumTypes || kTypes[type].name == nullptr)
    return nullptr;
  return &kTypes[type];
}

const char *typeName(GGMLType type) {
  const TypeInfo *info = typeInfo(type);
  return info ? info->name : "unknown";
}

bool parseTypeName(const char *name, GGMLType &out) {
  if (name == nullptr)
    return false;
  for (uint32_t t = 0; t < kNumTypes; ++t) {
    const char *n = kTypes[t].name;
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

size_t rowBytes(GGMLType type, int64_t n) {
  const TypeInfo *info = typeInfo(type);
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

bool dequantizeRow(GGMLType type, const void *src, float *dst, int64_t n) {
  const TypeInfo *info = typeInfo(type);
  if (info == nullptr || !info->computable || n < 0 || n % info->blockSize != 0)
    return false;
  switch (type) {
  case GGMLType::F32:
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return true;
  case GGMLType::F16: {
    const uint8_t *p = static_cast<const uint8_t *>(src);
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      dst[i] = fp16ToF32(h);
    }
    return true;
  }
  case GGMLType::BF16: {
    const uint8_t *p = static_cast<const uint8_t *>(src);
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      dst[i] = bf16ToF32(h);
    }
    return true;
  }
  case GGMLType::Q8_0: {
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
    return true;
  }
  case GGMLType::Q4_0: {
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
    return true;
  }
  default:
    return false;
  }
}

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

bool quantizeRow(GGMLType type, const float *src, void *dst, int64_t n) {
  const TypeInfo *info = typeInfo(type);
  if (info == nullptr || !info->computable || n < 0 || n % info->blockSize != 0)
    return false;
  uint8_t *out = static_cast<uint8_t *>(dst);
  switch (type) {
  case GGMLType::F32:
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return true;
  case GGMLType::F16:
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h = f32ToFp16(src[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    return true;
  case GGMLType::BF16:
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h = f32ToBf16(src[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    return true;
  case GGMLType::Q8_0:
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
    return true;
  case GGMLType::Q4_0:
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
    return true;
  default:
    return false;
  }
}

} // namespace pinfer
