// The type-traits table: one row per ggml type number (runtime/ggml_types.h,
// TypeTraits), after ggml's type_traits[]. This is the one place that says
// what a weight type is to pinfer; adding a computable type is adding its
// row here (docs/types.md lists what else it needs: its kernel bodies).
//
// The table is constexpr and lives in a header so that code templated on a
// type (runtime/ffn_cpu.h, instantiated by generated executables) reads its
// row at compile time and calls the kernels directly, as inlinable calls;
// the runtime reads the same rows through typeTraits(). It pulls in the dot
// kernels (runtime/dot_kernels.h), so code that only needs names and sizes
// includes runtime/ggml_types.h instead.
#pragma once

#include "runtime/dot_kernels.h"
#include "runtime/ggml_types.h"

#include <cstdint>

namespace pinfer {

// The scalar row conversions and accumulations of each computable type
// (runtime/ggml_types.cpp); the rows below point at them.
namespace rowk {
void dequantizeF32(const void *src, float *dst, int64_t n);
void dequantizeF16(const void *src, float *dst, int64_t n);
void dequantizeBF16(const void *src, float *dst, int64_t n);
void dequantizeQ8_0(const void *src, float *dst, int64_t n);
void dequantizeQ4_0(const void *src, float *dst, int64_t n);
void quantizeF32(const float *src, void *dst, int64_t n);
void quantizeF16(const float *src, void *dst, int64_t n);
void quantizeBF16(const float *src, void *dst, int64_t n);
void quantizeQ8_0(const float *src, void *dst, int64_t n);
void quantizeQ4_0(const float *src, void *dst, int64_t n);
void axpyF32(const void *row, float a, float *y, int64_t c0, int64_t c1);
void axpyF16(const void *row, float a, float *y, int64_t c0, int64_t c1);
void axpyBF16(const void *row, float a, float *y, int64_t c0, int64_t c1);
void axpyQ8_0(const void *row, float a, float *y, int64_t c0, int64_t c1);
void axpyQ4_0(const void *row, float a, float *y, int64_t c0, int64_t c1);
} // namespace rowk

namespace table {

// A number ggml retired: no row.
constexpr TypeTraits retired() { return TypeTraits{}; }

// A type pinfer recognises and refuses.
constexpr TypeTraits known(const char *name, uint32_t blockSize,
                           uint32_t typeSize) {
  TypeTraits t;
  t.name = name;
  t.blockSize = blockSize;
  t.typeSize = typeSize;
  return t;
}

// The AVX2 kernels exist on x86 only; elsewhere the row has none and the
// runtime never asks for them (kernelIsaIsAvx2() is false).
#ifdef PINFER_X86
#define PINFER_IF_X86(x) x
#else
#define PINFER_IF_X86(x) nullptr
#endif

constexpr TypeTraits f32() {
  TypeTraits t = known("f32", 1, 4);
  t.computable = true;
  t.enumerator = "F32";
  t.cudaSuffix = "f32";
  t.fileType = 0; // LLAMA_FTYPE_ALL_F32
  t.toF32 = rowk::dequantizeF32;
  t.fromF32 = rowk::quantizeF32;
  t.roundTripError = 0.f;
  t.axpy = rowk::axpyF32;
  t.act = ActFormat::F32;
  t.downLayout = DownLayout::Rows;
  t.portable = {dotk::dotF32, nullptr, nullptr};
  t.avx2 = {PINFER_IF_X86(dotk::dotF32Avx2), nullptr,
            PINFER_IF_X86(dotk::axpyRowsAvx2<GGMLType::F32>)};
  return t;
}

constexpr TypeTraits f16() {
  TypeTraits t = known("f16", 1, 2);
  t.computable = true;
  t.enumerator = "F16";
  t.cudaSuffix = "f16";
  t.fileType = 1; // LLAMA_FTYPE_MOSTLY_F16
  t.toF32 = rowk::dequantizeF16;
  t.fromF32 = rowk::quantizeF16;
  t.roundTripError = 1.f / 2048; // half an ulp of an 11-bit significand
  t.axpy = rowk::axpyF16;
  t.act = ActFormat::F32;
  t.downLayout = DownLayout::Rows;
  t.portable = {dotk::dotF16, nullptr, nullptr};
  t.avx2 = {PINFER_IF_X86(dotk::dotF16Avx2), nullptr,
            PINFER_IF_X86(dotk::axpyRowsAvx2<GGMLType::F16>)};
  return t;
}

constexpr TypeTraits bf16() {
  TypeTraits t = known("bf16", 1, 2);
  t.computable = true;
  t.enumerator = "BF16";
  t.cudaSuffix = "bf16";
  t.fileType = 32; // LLAMA_FTYPE_MOSTLY_BF16
  t.toF32 = rowk::dequantizeBF16;
  t.fromF32 = rowk::quantizeBF16;
  t.roundTripError = 1.f / 256; // half an ulp of an 8-bit significand
  t.axpy = rowk::axpyBF16;
  t.act = ActFormat::F32;
  t.downLayout = DownLayout::Rows;
  t.portable = {dotk::dotBF16, nullptr, nullptr};
  t.avx2 = {PINFER_IF_X86(dotk::dotBF16Avx2), nullptr,
            PINFER_IF_X86(dotk::axpyRowsAvx2<GGMLType::BF16>)};
  return t;
}

constexpr TypeTraits q8_0() {
  TypeTraits t = known("q8_0", QK8_0, sizeof(BlockQ8_0));
  t.computable = true;
  t.enumerator = "Q8_0";
  t.cudaSuffix = "q8_0";
  t.fileType = 7; // LLAMA_FTYPE_MOSTLY_Q8_0
  t.toF32 = rowk::dequantizeQ8_0;
  t.fromF32 = rowk::quantizeQ8_0;
  // Half a step of max/127, plus the f16 rounding of the scale.
  t.roundTripError = 0.5f / 127 + 1.f / 1024;
  t.axpy = rowk::axpyQ8_0;
  t.act = ActFormat::Q8;
  t.downLayout = DownLayout::SplitQ8;
  t.portable = {dotk::dotQ8_0, dotk::dotQ8_0Q8, nullptr};
  t.avx2 = {PINFER_IF_X86(dotk::dotQ8_0Avx2),
            PINFER_IF_X86(dotk::dotQ8_0Q8Avx2), nullptr};
  return t;
}

constexpr TypeTraits q4_0() {
  TypeTraits t = known("q4_0", QK4_0, sizeof(BlockQ4_0));
  t.computable = true;
  t.enumerator = "Q4_0";
  t.cudaSuffix = "q4_0";
  t.fileType = 2; // LLAMA_FTYPE_MOSTLY_Q4_0
  t.toF32 = rowk::dequantizeQ4_0;
  t.fromF32 = rowk::quantizeQ4_0;
  // The scale maps the signed extreme to -8, so the other sign's extreme
  // can only reach 7/8 of it: an eighth of the block's maximum, plus the
  // f16 rounding of the scale.
  t.roundTripError = 1.f / 8 + 1.f / 1024;
  t.axpy = rowk::axpyQ4_0;
  t.act = ActFormat::Q8;
  t.downLayout = DownLayout::SplitQ4;
  t.portable = {dotk::dotQ4_0, dotk::dotQ4_0Q8, nullptr};
  t.avx2 = {PINFER_IF_X86(dotk::dotQ4_0Avx2),
            PINFER_IF_X86(dotk::dotQ4_0Q8Avx2), nullptr};
  return t;
}

#undef PINFER_IF_X86

constexpr uint32_t QK_K = 256;

} // namespace table

// Indexed by the ggml type number. Numbers ggml retired (4, 5, 31-33, 36-38)
// have no row: files using them cannot be read by current ggml either.
// Block byte counts follow the block structs of ggml-common.h.
inline constexpr TypeTraits kTypeTable[] = {
    /* 0 */ table::f32(),
    /* 1 */ table::f16(),
    /* 2 */ table::q4_0(),
    /* 3 */ table::known("q4_1", 32, 20),
    /* 4 */ table::retired(),
    /* 5 */ table::retired(),
    /* 6 */ table::known("q5_0", 32, 22),
    /* 7 */ table::known("q5_1", 32, 24),
    /* 8 */ table::q8_0(),
    /* 9 */ table::known("q8_1", 32, 36),
    /* 10 */ table::known("q2_K", table::QK_K, 84),
    /* 11 */ table::known("q3_K", table::QK_K, 110),
    /* 12 */ table::known("q4_K", table::QK_K, 144),
    /* 13 */ table::known("q5_K", table::QK_K, 176),
    /* 14 */ table::known("q6_K", table::QK_K, 210),
    /* 15 */ table::known("q8_K", table::QK_K, 292),
    /* 16 */ table::known("iq2_xxs", table::QK_K, 66),
    /* 17 */ table::known("iq2_xs", table::QK_K, 74),
    /* 18 */ table::known("iq3_xxs", table::QK_K, 98),
    /* 19 */ table::known("iq1_s", table::QK_K, 50),
    /* 20 */ table::known("iq4_nl", 32, 18),
    /* 21 */ table::known("iq3_s", table::QK_K, 110),
    /* 22 */ table::known("iq2_s", table::QK_K, 82),
    /* 23 */ table::known("iq4_xs", table::QK_K, 136),
    /* 24 */ table::known("i8", 1, 1),
    /* 25 */ table::known("i16", 1, 2),
    /* 26 */ table::known("i32", 1, 4),
    /* 27 */ table::known("i64", 1, 8),
    /* 28 */ table::known("f64", 1, 8),
    /* 29 */ table::known("iq1_m", table::QK_K, 56),
    /* 30 */ table::bf16(),
    /* 31 */ table::retired(),
    /* 32 */ table::retired(),
    /* 33 */ table::retired(),
    /* 34 */ table::known("tq1_0", table::QK_K, 54),
    /* 35 */ table::known("tq2_0", table::QK_K, 66),
    /* 36 */ table::retired(),
    /* 37 */ table::retired(),
    /* 38 */ table::retired(),
    /* 39 */ table::known("mxfp4", 32, 17),
    /* 40 */ table::known("nvfp4", 64, 36),
    /* 41 */ table::known("q1_0", 128, 18),
};
inline constexpr uint32_t kNumTypes =
    sizeof(kTypeTable) / sizeof(kTypeTable[0]);

// The row of `type` at compile time, for code templated on a type; a
// number without a row does not compile.
template <GGMLType T> constexpr const TypeTraits &traitsOf() {
  static_assert(static_cast<uint32_t>(T) < kNumTypes &&
                    kTypeTable[static_cast<uint32_t>(T)].name != nullptr,
                "not a ggml type");
  return kTypeTable[static_cast<uint32_t>(T)];
}

} // namespace pinfer
