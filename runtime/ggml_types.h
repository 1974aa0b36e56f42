// Tensor element types as ggml numbers them, their block layouts, and
// conversions between them and f32. Only F32, F16, BF16, Q8_0 and Q4_0 are
// computed on; every other ggml type is recognised (name, block size, bytes)
// so that files holding them can be inspected and refused with a clear
// message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pinfer {

enum class GGMLType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

struct TypeInfo {
  const char *name;   // "q4_0"
  uint32_t blockSize; // elements per block
  uint32_t typeSize;  // bytes per block
  bool computable;    // pinfer has kernels for it
};

// Null for a number ggml does not define.
const TypeInfo *typeInfo(uint32_t type);
inline const TypeInfo *typeInfo(GGMLType type) {
  return typeInfo(static_cast<uint32_t>(type));
}
const char *typeName(GGMLType type);
// Parses "f32", "F16", "q8_0", ... ; false if unknown.
bool parseTypeName(const char *name, GGMLType &out);

// Bytes of a row of `n` elements; `n` must be a multiple of the block size.
size_t rowBytes(GGMLType type, int64_t n);

constexpr int QK8_0 = 32;
constexpr int QK4_0 = 32;

// ggml block_q8_0: x[i] = d * qs[i].
struct BlockQ8_0 {
  uint16_t d; // f16 scale
  int8_t qs[QK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 layout");

// ggml block_q4_0: x[j] = d * ((qs[j] & 0xF) - 8),
//                  x[j + 16] = d * ((qs[j] >> 4) - 8).
struct BlockQ4_0 {
  uint16_t d; // f16 scale
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "block_q4_0 layout");

// IEEE half <-> float, round to nearest even.
float fp16ToF32(uint16_t h);
uint16_t f32ToFp16(float f);
inline float bf16ToF32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32ToBf16(float f); // round to nearest even, NaN kept quiet

// Converts `n` elements (a multiple of the block size) of a computable type.
// Returns false for a type that is not computable.
bool dequantizeRow(GGMLType type, const void *src, float *dst, int64_t n);
bool quantizeRow(GGMLType type, const float *src, void *dst, int64_t n);

} // namespace pinfer
