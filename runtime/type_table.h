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

#include "runtime/decode_blocks_avx2.h"
#include "runtime/decode_blocks_avx512.h"
#include "runtime/dot_kernels.h"
#include "runtime/dot_q8_blocks.h"
#include "runtime/ggml_types.h"
#include "runtime/quant_blocks.h"

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
  t.downRowsType = GGMLType::F32;
  t.keepsTransposedRows = true;
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
  t.downRowsType = GGMLType::F16;
  t.keepsTransposedRows = true;
  t.portable = {dotk::dotF16, nullptr, nullptr};
  t.avx2 = {PINFER_IF_X86(dotk::dotF16Avx2), nullptr,
            PINFER_IF_X86(dotk::axpyRowsAvx2<GGMLType::F16>)};
  // Prompts: rows x tokens, bitwise the one-token product.
  t.avx512 = t.avx2;
  t.avx512.dot4 = PINFER_IF_X86(dotk::dotF16x4Avx512);
  t.avx512.dotRows = PINFER_IF_X86(dotk::dotF16RowsX4Avx512);
  t.hasAvx512 = true;
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
  t.downRowsType = GGMLType::BF16;
  t.keepsTransposedRows = true;
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
  t.avx512 = t.avx2;
  // Exact integers per block (runtime/dot_q8_blocks.h), which AMX tiles
  // can match.
  t.avx512.dotQ8 = PINFER_IF_X86((dotk::dotBlocksIntQ8Avx512<BlockQ8_0, 128>));
  t.avx2.dotQ84 = PINFER_IF_X86(dotk::dotQ8_0Q8x4Avx2);
  t.avx2.dot4 = PINFER_IF_X86(dotk::dotBlocksF32x4Avx2<BlockQ8_0>);
  t.avx512.dot4 = t.avx2.dot4;
  t.avx512.dotQ84 =
      PINFER_IF_X86((dotk::dotBlocksIntQ8x4Avx512<BlockQ8_0, 128>));
  t.avx512.dotQ8Rows =
      PINFER_IF_X86((dotk::dotBlocksIntRowsAvx512<BlockQ8_0, 128>));
  t.avx512.dotRows = PINFER_IF_X86(dotk::dotBlocksF32RowsX4Avx512<BlockQ8_0>);
  // A file's own transposed rows (PowerInfer's ffn_down_t) stay q8_0.
  t.keepsTransposedRows = true;
  t.avx2.axpyRows = PINFER_IF_X86(dotk::axpyRowsAvx2<GGMLType::Q8_0>);
  t.avx512.axpyRows = t.avx2.axpyRows;
  t.hasAvx512 = true;
  return t;
}

// Rows unpacked once for a prompt's tokens (TypeKernels::prepareRow), at
// the level whose dotQ8 / dotQ84 they are bitwise.
constexpr TypeKernels withPreparedRows(TypeKernels k, PrepareRowFn prepare,
                                       DotQ8ActFn one, DotQ8Act4Fn four) {
  k.prepareRow = prepare;
  k.dotQ8Prepared = one;
  k.dotQ84Prepared = four;
  return k;
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
  t.avx512 = t.avx2;
  // Exact integers per block (runtime/dot_q8_blocks.h), which AMX tiles
  // can match.
  t.avx512.dotQ8 = PINFER_IF_X86((dotk::dotBlocksIntQ8Avx512<BlockQ4_0, 8>));
  t.avx2.dotQ84 =
      PINFER_IF_X86((dotk::dotOffsetBlocksX4Avx2<BlockQ4_0, dotk::q4Block, 8>));
  t.avx2 = withPreparedRows(
      t.avx2, PINFER_IF_X86((dotk::prepareOffsetRow<BlockQ4_0, dotk::q4Block>)),
      PINFER_IF_X86(dotk::dotOffsetPreparedAvx2<8>),
      PINFER_IF_X86(dotk::dotOffsetPreparedX4Avx2<8>));
  t.avx2.dot4 = PINFER_IF_X86(dotk::dotBlocksF32x4Avx2<BlockQ4_0>);
  t.avx512.dot4 = t.avx2.dot4;
  t.avx512.dotQ84 = PINFER_IF_X86((dotk::dotBlocksIntQ8x4Avx512<BlockQ4_0, 8>));
  t.avx512.dotQ8Rows =
      PINFER_IF_X86((dotk::dotBlocksIntRowsAvx512<BlockQ4_0, 8>));
  t.avx512.dotRows = PINFER_IF_X86(dotk::dotBlocksF32RowsX4Avx512<BlockQ4_0>);
  // A file's own transposed rows (PowerInfer's ffn_down_t) stay q4_0.
  t.keepsTransposedRows = true;
  t.avx2.axpyRows = PINFER_IF_X86(dotk::axpyRowsAvx2<GGMLType::Q4_0>);
  t.avx512.axpyRows = t.avx2.axpyRows;
  t.hasAvx512 = true;
  return t;
}

// The formats of runtime/quant_blocks.h: f32-activation kernels generated
// from the block decoder (the dense down projection multiplies the f32
// activation); the transposed down projection is stored split
// (DownLayout::SplitK: groups of Group neurons, with or without mins).
template <DecodeBlockFn Decode, int QK, int Bytes, SplitKBlockFn Split,
          int Group, bool Mins>
constexpr TypeTraits decoded(const char *name, const char *enumerator,
                             const char *cudaSuffix, uint32_t fileType,
                             RowFromF32Fn quantize, float roundTripError) {
  TypeTraits t = known(name, QK, Bytes);
  t.computable = true;
  t.enumerator = enumerator;
  t.cudaSuffix = cudaSuffix;
  t.fileType = fileType;
  t.toF32 = rowk::dequantizeBlocks<Decode, QK, Bytes>;
  t.fromF32 = quantize;
  t.roundTripError = roundTripError;
  t.axpy = rowk::axpyBlocks<Decode, QK, Bytes>;
  t.act = ActFormat::F32;
  t.downLayout = DownLayout::SplitK;
  t.splitK = {Group, Mins, Split};
  t.portable = {dotk::dotBlocks<Decode, QK, Bytes>, nullptr, nullptr};
  t.avx2 = {PINFER_IF_X86((dotk::dotBlocksAvx2<Decode, QK, Bytes>)), nullptr,
            nullptr};
  return t;
}

// Products quantise the activation to 8 bits and multiply integers
// (runtime/dot_q8_blocks.h), as for Q8_0/Q4_0 and as llama.cpp does for
// these types.
constexpr TypeTraits withQ8Act(TypeTraits t, DotQ8ActFn portable,
                               DotQ8ActFn avx2, DotQ8Act4Fn avx2x4 = nullptr) {
  t.act = ActFormat::Q8;
  t.portable.dotQ8 = portable;
  t.avx2.dotQ8 = avx2;
  t.avx2.dotQ84 = avx2x4;
  return t;
}

// The round-trip bounds follow from each quantiser (runtime/
// quant_blocks.cpp): half a step of the widest sub-block scale, the scale's
// own rounding up to its bit width, half a step of the min's, and the f16
// rounding of the super-block scales.
constexpr TypeTraits q4_1() {
  // (max - min) / 15 steps, max - min <= 2 max|x|.
  TypeTraits t = withQ8Act(
      decoded<qblk::decodeQ4_1, QK4_1, sizeof(BlockQ4_1), qblk::splitKQ4_1, 32,
              true>("q4_1", "Q4_1", "q4_1", 3, rowk::quantizeQ4_1,
                    1.f / 15 + 1.f / 512),
      dotk::dotQ4_1Q8, PINFER_IF_X86(dotk::dotQ4_1Q8Avx2),
      PINFER_IF_X86((dotk::dotOffsetBlocksX4Avx2<
                     BlockQ4_1, dotk::affineBlock<BlockQ4_1, false>, -1>)));
  t.avx2 = withPreparedRows(
      t.avx2,
      PINFER_IF_X86(
          (dotk::prepareOffsetRow<BlockQ4_1,
                                  dotk::affineBlock<BlockQ4_1, false>>)),
      PINFER_IF_X86(dotk::dotOffsetPreparedAvx2<-1>),
      PINFER_IF_X86(dotk::dotOffsetPreparedX4Avx2<-1>));
  return t;
}
constexpr TypeTraits q5_0() {
  // ggml maps the signed extreme to -16: the other extreme may clip to 15,
  // a whole step of max/16.
  TypeTraits t = withQ8Act(
      decoded<qblk::decodeQ5_0, QK5_0, sizeof(BlockQ5_0), qblk::splitKQ5_0, 32,
              false>("q5_0", "Q5_0", "q5_0", 8, rowk::quantizeQ5_0,
                     1.f / 16 + 1.f / 1024),
      dotk::dotQ5_0Q8, PINFER_IF_X86(dotk::dotQ5_0Q8Avx2),
      PINFER_IF_X86(
          (dotk::dotOffsetBlocksX4Avx2<BlockQ5_0, dotk::q5Block, 16>)));
  t.avx2 = withPreparedRows(
      t.avx2, PINFER_IF_X86((dotk::prepareOffsetRow<BlockQ5_0, dotk::q5Block>)),
      PINFER_IF_X86(dotk::dotOffsetPreparedAvx2<16>),
      PINFER_IF_X86(dotk::dotOffsetPreparedX4Avx2<16>));
  // AVX-512 VNNI products with an exact integer per block, as the
  // K-quants' (runtime/dot_q8_blocks.h), which AMX tiles can match (not
  // the AVX2 level's prepared rows).
  t.avx512 = withPreparedRows(t.avx2, nullptr, nullptr, nullptr);
  t.avx512.dotQ8 = PINFER_IF_X86((dotk::dotBlocksIntQ8Avx512<BlockQ5_0, 16>));
  t.avx512.dotQ84 =
      PINFER_IF_X86((dotk::dotBlocksIntQ8x4Avx512<BlockQ5_0, 16>));
  t.avx512.dotQ8Rows =
      PINFER_IF_X86((dotk::dotBlocksIntRowsAvx512<BlockQ5_0, 16>));
  t.hasAvx512 = true;
  return t;
}
constexpr TypeTraits q5_1() {
  TypeTraits t = withQ8Act(
      decoded<qblk::decodeQ5_1, QK5_1, sizeof(BlockQ5_1), qblk::splitKQ5_1, 32,
              true>("q5_1", "Q5_1", "q5_1", 9, rowk::quantizeQ5_1,
                    1.f / 31 + 1.f / 512),
      dotk::dotQ5_1Q8, PINFER_IF_X86(dotk::dotQ5_1Q8Avx2),
      PINFER_IF_X86((dotk::dotOffsetBlocksX4Avx2<
                     BlockQ5_1, dotk::affineBlock<BlockQ5_1, true>, -1>)));
  t.avx2 = withPreparedRows(
      t.avx2,
      PINFER_IF_X86(
          (dotk::prepareOffsetRow<BlockQ5_1,
                                  dotk::affineBlock<BlockQ5_1, true>>)),
      PINFER_IF_X86(dotk::dotOffsetPreparedAvx2<-1>),
      PINFER_IF_X86(dotk::dotOffsetPreparedX4Avx2<-1>));
  return t;
}
// AVX-512 VNNI products of the 8-bit activation (runtime/dot_q8_blocks.h);
// the row's other kernels stay its AVX2 ones at that level.
constexpr TypeTraits withAvx512Q8(TypeTraits t, DotQ8ActFn dotQ8,
                                  DotQ8Act4Fn dotQ84,
                                  DotQ8PairsRowsFn dotQ8PairsRows,
                                  DotQ8PairsFn dotQ8Pairs) {
  t.avx512 = t.avx2;
  t.avx512.dotQ8 = dotQ8;
  t.avx512.dotQ84 = dotQ84;
  t.avx512.dotQ8PairsRows = dotQ8PairsRows;
  t.avx512.dotQ8Pairs = dotQ8Pairs;
  // The AVX-512 level exists only on x86, where every caller passes one.
  t.avx512.readsPairs = true;
  t.hasAvx512 = true;
  return t;
}

// And their f32-activation products (runtime/decode_blocks_avx512.h).
constexpr TypeTraits withAvx512F32(TypeTraits t, DotFn dot, Dot4Fn dot4,
                                   DotRowsFn dotRows) {
  t.avx512.dot = dot;
  t.avx512.dot4 = dot4;
  t.avx512.dotRows = dotRows;
  return t;
}

// The K-quants' f32 products (the dense down projection, whose input stays
// f32) decode with AVX2 (runtime/decode_blocks_avx2.h).
constexpr TypeTraits withAvx2F32(TypeTraits t, DotFn dot, Dot4Fn dot4) {
  t.avx2.dot = dot;
  t.avx2.dot4 = dot4;
  return t;
}

constexpr TypeTraits q2_K() {
  return withAvx2F32(
      withQ8Act(decoded<qblk::decodeQ2_K, QK_K, sizeof(BlockQ2_K),
                        qblk::splitKQ2_K, 16, true>("q2_K", "Q2_K", "q2_K", 10,
                                                    rowk::quantizeQ2_K, 0.42f),
                dotk::dotQ2_KQ8, PINFER_IF_X86(dotk::dotK2K3Q8Avx2<false>),
                PINFER_IF_X86(dotk::dotK2K3Q8x4Avx2<false>)),
      PINFER_IF_X86(dotk::dotK2K3F32Avx2<false>),
      PINFER_IF_X86(dotk::dotK2K3F32x4Avx2<false>));
}
constexpr TypeTraits q3_K() {
  return withAvx2F32(
      withQ8Act(decoded<qblk::decodeQ3_K, QK_K, sizeof(BlockQ3_K),
                        qblk::splitKQ3_K, 16, false>("q3_K", "Q3_K", "q3_K", 12,
                                                     rowk::quantizeQ3_K, 0.16f),
                dotk::dotQ3_KQ8, PINFER_IF_X86(dotk::dotK2K3Q8Avx2<true>),
                PINFER_IF_X86(dotk::dotK2K3Q8x4Avx2<true>)),
      PINFER_IF_X86(dotk::dotK2K3F32Avx2<true>),
      PINFER_IF_X86(dotk::dotK2K3F32x4Avx2<true>));
}
constexpr TypeTraits q4_K() {
  return withAvx512F32(
      withAvx512Q8(
          withAvx2F32(
              withQ8Act(
                  decoded<qblk::decodeQ4_K, QK_K, sizeof(BlockQ4_K),
                          qblk::splitKQ4_K, 32, true>(
                      "q4_K", "Q4_K", "q4_K", 15, rowk::quantizeQ4_K, 0.085f),
                  dotk::dotQ4_KQ8, PINFER_IF_X86(dotk::dotQ4_KQ8Avx2),
                  PINFER_IF_X86(dotk::dotK4K5Q8x4Avx2<false>)),
              PINFER_IF_X86(dotk::dotQ4_KF32Avx2),
              PINFER_IF_X86(dotk::dotQ4_KF32x4Avx2)),
          PINFER_IF_X86(dotk::dotK4K5Q8Avx512<false>),
          PINFER_IF_X86(dotk::dotK4K5Q8x4Avx512<false>),
          PINFER_IF_X86(dotk::dotK4K5Q8PairsRowsAvx512<false>),
          PINFER_IF_X86(dotk::dotK4K5Q8PairsAvx512<false>)),
      PINFER_IF_X86(dotk::dotK4K5F32Avx512<false>),
      PINFER_IF_X86(dotk::dotK4K5F32x4Avx512<false>),
      PINFER_IF_X86(dotk::dotK4K5F32RowsX4Avx512<false>));
}
constexpr TypeTraits q5_K() {
  return withAvx512F32(
      withAvx512Q8(
          withAvx2F32(
              withQ8Act(
                  decoded<qblk::decodeQ5_K, QK_K, sizeof(BlockQ5_K),
                          qblk::splitKQ5_K, 32, true>(
                      "q5_K", "Q5_K", "q5_K", 17, rowk::quantizeQ5_K, 0.045f),
                  dotk::dotQ5_KQ8, PINFER_IF_X86(dotk::dotQ5_KQ8Avx2),
                  PINFER_IF_X86(dotk::dotK4K5Q8x4Avx2<true>)),
              PINFER_IF_X86(dotk::dotQ5_KF32Avx2),
              PINFER_IF_X86(dotk::dotQ5_KF32x4Avx2)),
          PINFER_IF_X86(dotk::dotK4K5Q8Avx512<true>),
          PINFER_IF_X86(dotk::dotK4K5Q8x4Avx512<true>),
          PINFER_IF_X86(dotk::dotK4K5Q8PairsRowsAvx512<true>),
          PINFER_IF_X86(dotk::dotK4K5Q8PairsAvx512<true>)),
      PINFER_IF_X86(dotk::dotK4K5F32Avx512<true>),
      PINFER_IF_X86(dotk::dotK4K5F32x4Avx512<true>),
      PINFER_IF_X86(dotk::dotK4K5F32RowsX4Avx512<true>));
}
constexpr TypeTraits q6_K() {
  return withAvx512F32(
      withAvx512Q8(
          withAvx2F32(
              withQ8Act(
                  decoded<qblk::decodeQ6_K, QK_K, sizeof(BlockQ6_K),
                          qblk::splitKQ6_K, 16, false>(
                      "q6_K", "Q6_K", "q6_K", 18, rowk::quantizeQ6_K, 0.018f),
                  dotk::dotQ6_KQ8, PINFER_IF_X86(dotk::dotQ6_KQ8Avx2),
                  PINFER_IF_X86(dotk::dotQ6_KQ8x4Avx2)),
              PINFER_IF_X86(dotk::dotQ6_KF32Avx2),
              PINFER_IF_X86(dotk::dotQ6_KF32x4Avx2)),
          PINFER_IF_X86(dotk::dotQ6_KQ8Avx512),
          PINFER_IF_X86(dotk::dotQ6_KQ8x4Avx512),
          PINFER_IF_X86(dotk::dotQ6_KQ8PairsRowsAvx512),
          PINFER_IF_X86(dotk::dotQ6_KQ8PairsAvx512)),
      PINFER_IF_X86(dotk::dotQ6_KF32Avx512),
      PINFER_IF_X86(dotk::dotQ6_KF32x4Avx512),
      PINFER_IF_X86(dotk::dotQ6_KF32RowsX4Avx512));
}

#undef PINFER_IF_X86

} // namespace table

// Indexed by the ggml type number. Numbers ggml retired (4, 5, 31-33, 36-38)
// have no row: files using them cannot be read by current ggml either.
// Block byte counts follow the block structs of ggml-common.h.
inline constexpr TypeTraits kTypeTable[] = {
    /* 0 */ table::f32(),
    /* 1 */ table::f16(),
    /* 2 */ table::q4_0(),
    /* 3 */ table::q4_1(),
    /* 4 */ table::retired(),
    /* 5 */ table::retired(),
    /* 6 */ table::q5_0(),
    /* 7 */ table::q5_1(),
    /* 8 */ table::q8_0(),
    /* 9 */ table::known("q8_1", 32, 36),
    /* 10 */ table::q2_K(),
    /* 11 */ table::q3_K(),
    /* 12 */ table::q4_K(),
    /* 13 */ table::q5_K(),
    /* 14 */ table::q6_K(),
    /* 15 */ table::known("q8_K", QK_K, 292),
    /* 16 */ table::known("iq2_xxs", QK_K, 66),
    /* 17 */ table::known("iq2_xs", QK_K, 74),
    /* 18 */ table::known("iq3_xxs", QK_K, 98),
    /* 19 */ table::known("iq1_s", QK_K, 50),
    /* 20 */ table::known("iq4_nl", 32, 18),
    /* 21 */ table::known("iq3_s", QK_K, 110),
    /* 22 */ table::known("iq2_s", QK_K, 82),
    /* 23 */ table::known("iq4_xs", QK_K, 136),
    /* 24 */ table::known("i8", 1, 1),
    /* 25 */ table::known("i16", 1, 2),
    /* 26 */ table::known("i32", 1, 4),
    /* 27 */ table::known("i64", 1, 8),
    /* 28 */ table::known("f64", 1, 8),
    /* 29 */ table::known("iq1_m", QK_K, 56),
    /* 30 */ table::bf16(),
    /* 31 */ table::retired(),
    /* 32 */ table::retired(),
    /* 33 */ table::retired(),
    /* 34 */ table::known("tq1_0", QK_K, 54),
    /* 35 */ table::known("tq2_0", QK_K, 66),
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
