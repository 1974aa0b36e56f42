// Tensor element types as ggml numbers them and the type-traits row of each:
// everything pinfer knows about a type (name, block layout, conversions to
// and from f32, the dot-product kernels and the activation format they
// multiply, the packed layout of a transposed down projection, the names
// the code generators spell) is in one row, and every other file reads the
// row instead of switching over types. The rows themselves are in
// runtime/type_table.h (docs/types.md: adding a weight type).
//
// F32, F16, BF16, the legacy Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants
// Q2_K..Q6_K are computed on; every other ggml type is recognised (name,
// block size, bytes) so that files holding them can be inspected and
// refused with a clear message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

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

constexpr int QK8_0 = 32;
constexpr int QK4_0 = 32;

// One block of a quantised activation vector: x[j] ~= d * qs[j]; s = d *
// sum(qs), which lets Q4_0 kernels multiply the unsigned nibbles and remove
// their offset of 8 once per block (sum (q - 8) x = sum q x - 8 sum x).
// Made by quantizeActQ8 (runtime/kernels.h).
struct BlockQ8Act {
  float d;
  float s;
  int8_t qs[QK8_0];
};

// Which form of the activation vector a type's products multiply. For block
// quantised weights, converting weight bytes to floats costs more than
// reading them, so their products quantise the activation once to 8 bits
// and multiply bytes by bytes, as llama.cpp does (runtime/kernels.h).
enum class ActFormat : uint8_t {
  F32, // the f32 vector as it is
  Q8,  // BlockQ8Act blocks of QK8_0 elements (quantizeActQ8)
};

// How the packed weights store a layer's transposed down projection: one
// row of n_embd values per neuron, in packed order, keeping the source's
// numbers exactly (exact mode must match the dense reference token for
// token, so nothing is re-quantised across the other axis).
enum class DownLayout : uint8_t {
  // F32/F16/BF16 sources: blk.N.ffn_down_t.weight {n_embd, n_ff} in the
  // source type.
  Rows,
  // Q8_0 and Q4_0 sources: the quants and the block scales apart. A source
  // block covers 32 neurons of one output row, so its scale is shared by
  // those neurons, not by a neuron's row. blk.N.ffn_down_t.weight holds each
  // neuron's quants (I8 {n_embd, n_ff}; Q4_0: two unsigned 4-bit values
  // per byte, I8 {n_embd/2, n_ff}, byte 16c+j holding elements 32c+j (low
  // nibble) and 32c+j+16 (high)), and blk.N.ffn_down_s.weight the scales
  // (F16 {n_embd, n_ff/32}: row b holds source block b's scale for every
  // output, i.e. of neurons 32b..32b+31).
  SplitQ8,
  SplitQ4,
  // The other block types (Q4_1, Q5_0, Q5_1, the K-quants), whose value is
  // w = (d * sc) * q + dm * m: a quant q per weight, a scale sc and a min
  // m per group of G neurons (16 or 32), d and dm per source block of S
  // neurons (TypeTraits::splitK; for the legacy types S = G = 32, sc = m =
  // 1, dm their min). Kept apart, each is stored once per output and
  // group, and the decoded value is the type's decoder's, bit for bit:
  // blk.N.ffn_down_t.weight the quants (I8 {n_embd, n_ff}, signed),
  // blk.N.ffn_down_s.weight sc (I8 {n_embd, n_ff/G}), blk.N.ffn_down_m.weight
  // m (I8 {n_embd, n_ff/G}), blk.N.ffn_down_d.weight d (F32 {n_embd,
  // n_ff/S}), blk.N.ffn_down_dm.weight dm (F32 {n_embd, n_ff/S}); types
  // without mins (Q5_0, Q3_K, Q6_K) have no _m and _dm. About 1.1 to 1.3
  // bytes a weight, against f32 rows' 4.
  SplitK,
  // A dense layer wholly on the CPU whose transposed rows would be decoded
  // f32 (the block formats of runtime/quant_blocks.h, 4 bytes a weight
  // against the source's 0.3 to 0.8): blk.N.ffn_down.weight {n_ff, n_embd}
  // is kept as the source has it, the layer's neurons stay in source order,
  // and the down projection is the dense reference's product (one dot
  // product per output over every neuron). Chosen per layer by the
  // lowering (compiler/LowerToProgram.cpp), never a type's own layout.
  Source,
};

// The layouts that keep quants and block scales apart.
inline bool isSplitDown(DownLayout l) {
  return l == DownLayout::SplitQ8 || l == DownLayout::SplitQ4 ||
         l == DownLayout::SplitK;
}

// One source block's numbers in DownLayout::SplitK's form, written by a
// type's SplitKBlockFn: its quants q[0 .. S), and per group of G, sc[] and
// m[]; d and dm the block's (see DownLayout::SplitK).
struct SplitKBlock {
  int8_t q[256];
  int8_t sc[16], m[16];
  float d = 0.f, dm = 0.f;
};
using SplitKBlockFn = void (*)(const uint8_t *block, SplitKBlock &out);

// A type's SplitK form: group size G, whether it has mins, and its block's
// numbers. G == 0: the type has no such form.
struct SplitKTraits {
  uint32_t group = 0;
  bool mins = false;
  SplitKBlockFn block = nullptr;
};

// The kernel signatures a row holds. `n` is a multiple of the block size.
// sum_i row[i] * x[i] with an f32 activation:
using DotFn = float (*)(const void *row, const float *x, int64_t n);
// ... with a quantised activation (ActFormat::Q8):
using DotQ8ActFn = float (*)(const void *row, const BlockQ8Act *x, int64_t n);
// dst[0..n) = the row's values as f32 (dequantise):
using RowToF32Fn = void (*)(const void *src, float *dst, int64_t n);
// The row of n values nearest to src (quantise; ggml's reference quantiser):
using RowFromF32Fn = void (*)(const float *src, void *dst, int64_t n);
// y[c] += a * row[c] for c in [c0, c1), multiples of the block size:
using AxpyFn = void (*)(const void *row, float a, float *y, int64_t c0,
                        int64_t c1);
// y[c] = fma(a[i], rows[i][c], y[c]) for i = 0..n-1 in order, n <= 4, over
// rows of a Rows-layout transposed down projection:
using AxpyRowsFn = void (*)(const void *const *rows, const float *a, int n,
                            float *y, int64_t c0, int64_t c1);

// Tokens a multi-token kernel takes at once.
constexpr int kTokensAtOnce = 4;

// The same for kTokensAtOnce tokens at once, x_t = x + t * xStride
// (floats, or BlockQ8Act blocks): out[t] bitwise the one-token kernel's.
using Dot4Fn = void (*)(const void *row, const float *x, int64_t xStride,
                        int64_t n, float *out);
using DotQ8Act4Fn = void (*)(const void *row, const BlockQ8Act *x,
                             int64_t xStride, int64_t n, float *out);

// Rows a multi-row kernel takes at once.
constexpr int kRowsAtOnce = 4;

// kRowsAtOnce rows (row r at row + r * rowBytes) times kTokensAtOnce tokens:
// out[t * kRowsAtOnce + r] bitwise the one-row, one-token kernel's. The
// prompt's dense products, where reusing each loaded activation block for
// several rows pays.
using DotRowsFn = void (*)(const void *row, int64_t rowBytes, const float *x,
                           int64_t xStride, int64_t n, float *out);
using DotQ8ActRowsFn = void (*)(const void *row, int64_t rowBytes,
                                const BlockQ8Act *x, int64_t xStride, int64_t n,
                                float *out);

// The quantised activation laid out for the AVX-512 K-quant products
// (runtime/kernels.cpp, pairActivations): the bytes of BlockQ8Act blocks 2i
// and 2i+1 as one aligned 64-byte load, and beside the pairs, per eight
// blocks (a K-quant super-block), their scales (BlockQ8Act::d) and then
// their sums (BlockQ8Act::s), so that each eight are one load. The same
// numbers as the blocks.
struct alignas(64) ActPairQ8 {
  int8_t qs[2 * QK8_0];
};

// kRowsAtOnce rows (as DotRowsFn) x kTokensAtOnce tokens x_t = x + t *
// xStride (pairs), their blocks' scales and sums at f + t * 4 * xStride:
// out[t * kRowsAtOnce + r] bitwise the one-row, one-token kernel's over
// the blocks.
using DotQ8PairsRowsFn = void (*)(const void *row, int64_t rowBytes,
                                  const ActPairQ8 *x, const float *f,
                                  int64_t xStride, int64_t n, float *out);

// One row times one token's activation in ActPairQ8 pairs, its blocks'
// scales and sums at `f`: bitwise the one-row kernel over the blocks.
using DotQ8PairsFn = float (*)(const void *row, const ActPairQ8 *x,
                               const float *f, int64_t n);

// A block of a row unpacked once for many tokens' products (prompts): its
// 32 values as unsigned bytes and the two numbers that turn their integer
// sum with an activation block into the product (runtime/dot_kernels.h,
// UnsignedBlock). PrepareRowFn writes n / 32 of them.
struct PreparedBlock {
  uint8_t q[32];
  float d, c;
};
using PrepareRowFn = void (*)(const void *row, int64_t n, PreparedBlock *out);

// The kernels of one instruction set. Null where the set has none.
struct TypeKernels {
  DotFn dot = nullptr;           // every computable type
  DotQ8ActFn dotQ8 = nullptr;    // types whose products use ActFormat::Q8
  AxpyRowsFn axpyRows = nullptr; // the sparse down projection's fast path
  // Several tokens' products of one row (prompts, runtime/kernels.h):
  // where unpacking a block costs more than multiplying it.
  Dot4Fn dot4 = nullptr;
  DotQ8Act4Fn dotQ84 = nullptr;
  DotRowsFn dotRows = nullptr;
  DotQ8ActRowsFn dotQ8Rows = nullptr;
  DotQ8PairsRowsFn dotQ8PairsRows = nullptr;
  DotQ8PairsFn dotQ8Pairs = nullptr;
  // dotQ8Pairs is set: a constant the generated code can branch on (a
  // function pointer's null test is not one in a sanitised build).
  bool readsPairs = false;
  // A row unpacked once (prepareRow), then its products with one token
  // and with kTokensAtOnce tokens from those blocks (the row argument):
  // bitwise dotQ8 and dotQ84 of the row, without unpacking each block
  // again for every four tokens.
  PrepareRowFn prepareRow = nullptr;
  DotQ8ActFn dotQ8Prepared = nullptr;
  DotQ8Act4Fn dotQ84Prepared = nullptr;
};

// One row of the table. Recognised types set the first three fields only.
struct TypeTraits {
  const char *name = nullptr; // "q4_0": GGUF, dialect and command-line name
  uint32_t blockSize = 0;     // elements per block
  uint32_t typeSize = 0;      // bytes per block
  bool computable = false;    // pinfer has kernels for it; the rest is set
  // The spelling of the GGMLType enumerator in generated host code
  // (codegen/HostEmitter: gateUpRows<..., pinfer::GGMLType::Q4_0, ...>).
  const char *enumerator = nullptr;
  // The suffix of the CUDA device functions of the type in the emitted
  // source: pf_dot_<suffix><N>(row, x, lane) and pf_at_<suffix>(row, i)
  // (codegen/CudaEmitter.cpp writes their bodies).
  const char *cudaSuffix = nullptr;
  uint32_t fileType = 0; // llama_ftype of a model whose matrices are all this
  RowToF32Fn toF32 = nullptr;
  RowFromF32Fn fromF32 = nullptr;
  // |toF32(fromF32(x)) - x| <= roundTripError * max |x| over x's block, for
  // x of normal magnitude (the unit tests hold every row to it).
  float roundTripError = 0.f;
  AxpyFn axpy = nullptr;
  ActFormat act = ActFormat::F32;           // what the dot products multiply
  DownLayout downLayout = DownLayout::Rows; // of a transposed down projection
  // The type of a Rows-layout transposed down projection (the float
  // types): the source type.
  GGMLType downRowsType = GGMLType::F32;
  // DownLayout::SplitK's numbers of a block of this type.
  SplitKTraits splitK;
  // A transposed down projection a file already stores in this type (a
  // PowerInfer file's blk.N.ffn_down_t, rows along n_embd) is packed and
  // multiplied in it, row by row (its axpyRows): the float types and
  // Q8_0/Q4_0. Other types' such rows are decoded to f32 when packed.
  bool keepsTransposedRows = false;
  TypeKernels portable; // plain C++ loops
  TypeKernels avx2;     // AVX2 + FMA + F16C; null off x86
  // AVX-512 F/BW/VNNI, for the types where wider integer products pay; the
  // AVX2 set serves the others at that level.
  TypeKernels avx512;
  bool hasAvx512 = false;
  // The set of a kernel level (runtime/kernels.h, KernelLevel): 2 AVX-512
  // VNNI, 1 AVX2, 0 portable.
  constexpr const TypeKernels &kernelsAt(int level) const {
    return level >= 2 && hasAvx512 ? avx512 : level >= 1 ? avx2 : portable;
  }
};

// Null for a number ggml does not define.
const TypeTraits *typeTraits(uint32_t type);
inline const TypeTraits *typeTraits(GGMLType type) {
  return typeTraits(static_cast<uint32_t>(type));
}
// True when products with `type` weights use quantised activations.
inline bool usesQ8Act(GGMLType type) {
  const TypeTraits *t = typeTraits(type);
  return t && t->computable && t->act == ActFormat::Q8;
}
// Whether pinfer computes with `type` (false for unknown numbers).
inline bool isComputable(GGMLType type) {
  const TypeTraits *t = typeTraits(type);
  return t && t->computable;
}
const char *typeName(GGMLType type);
// Parses "f32", "F16", "q8_0", ... ; false if unknown.
bool parseTypeName(const char *name, GGMLType &out);
// The computable types' names for messages, in table order, the last two
// joined by `lastJoin`: "f32, f16, q4_0, q8_0 or bf16".
std::string computableTypeNames(const char *lastJoin = "or");

// Bytes of a row of `n` elements; `n` must be a multiple of the block size.
size_t rowBytes(GGMLType type, int64_t n);

// The transposed down layout of a source type (Rows for a type that is not
// computable).
inline DownLayout downLayoutFor(GGMLType source) {
  const TypeTraits *t = typeTraits(source);
  return t ? t->downLayout : DownLayout::Rows;
}

// The tensor type of blk.N.ffn_down_t.weight.
inline GGMLType transposedDownType(GGMLType source) {
  const TypeTraits *t = typeTraits(source);
  if (!t || !t->computable)
    return source;
  return t->downLayout == DownLayout::Rows ? t->downRowsType : GGMLType::I8;
}

// The type of the packed transposed down projection of a layer whose file
// holds it only transposed, as blk.N.ffn_down_t of type `downT`: that type
// where its rows are kept (TypeTraits::keepsTransposedRows), else f32.
inline GGMLType packedTypeOfTransposed(GGMLType downT) {
  const TypeTraits *t = typeTraits(downT);
  return t && t->computable && t->keepsTransposedRows ? downT : GGMLType::F32;
}

// The type Model::load gives a down projection that a file holds only
// transposed, as PowerInfer's converter writes it (blk.N.ffn_down_t.weight
// {n_embd, n_ff}, of type `downT`): that type where elements stand alone
// (f32, f16, bf16), else f32, which holds every decoded value exactly (a
// block type's blocks run along n_embd there; re-cutting them along n_ff
// would requantise).
inline GGMLType downTypeFromTransposed(GGMLType downT) {
  const TypeTraits *t = typeTraits(downT);
  return t && t->blockSize == 1 ? downT : GGMLType::F32;
}

// The type the packed weights store a predictor matrix in (fc1 {n_embd, R}
// or fc2 {R, n_ff}, rows of `cols` values, of type `source`): Q8_0 for an
// unquantised computable type whose rows are whole blocks of 32 (a
// predicted token reads every row of both, and the scores only rank
// neurons against a threshold), else the source type.
inline GGMLType packedPredictorType(GGMLType source, int64_t cols) {
  const TypeTraits *t = typeTraits(source);
  return t && t->computable && t->blockSize == 1 && cols % 32 == 0
             ? GGMLType::Q8_0
             : source;
}

// Bytes of one neuron's row of ffn_down_t (n_embd outputs).
inline size_t transposedDownRowBytes(GGMLType source, int64_t nEmbd) {
  switch (downLayoutFor(source)) {
  case DownLayout::SplitQ8:
    return size_t(nEmbd);
  case DownLayout::SplitQ4:
    return size_t(nEmbd / 2);
  case DownLayout::SplitK:
    return size_t(nEmbd);
  case DownLayout::Rows:
  case DownLayout::Source: // a layer's choice, never a type's layout
    break;
  }
  return rowBytes(transposedDownType(source), nEmbd);
}

// DownLayout::SplitK's tables of a layer as one buffer holds them (the
// GPU's; SplitDown::tables lists them in this order): group scales, group
// mins, block scales, block mins (the mins only for types with them), each
// [groups or blocks][n_embd]. Byte offsets, and the whole size.
struct SplitKLayout {
  int64_t group = 0, block = 0; // G and S
  bool mins = false;
  int64_t m = 0, d = 0, dm = 0, bytes = 0;
};
inline SplitKLayout splitKLayout(GGMLType source, int64_t nEmbd, int64_t nFF) {
  const TypeTraits &t = *typeTraits(source);
  SplitKLayout k;
  k.group = t.splitK.group;
  k.block = t.blockSize;
  k.mins = t.splitK.mins;
  const int64_t groups = nFF / k.group, blocks = nFF / k.block;
  const int64_t f = int64_t(sizeof(float));
  k.m = groups * nEmbd;
  k.d = k.m * (k.mins ? 2 : 1);
  k.dm = k.d + blocks * nEmbd * f;
  k.bytes = k.dm + (k.mins ? blocks * nEmbd * f : 0);
  return k;
}

// Bytes of a split layout's per-layer tables beside the rows (the block
// scales of SplitQ8/SplitQ4, the groups' and blocks' numbers of SplitK),
// needed whole by any of the layer's neurons; 0 for the other layouts.
inline uint64_t splitDownTableBytes(GGMLType source, int64_t nEmbd,
                                    int64_t nFF) {
  switch (downLayoutFor(source)) {
  case DownLayout::SplitQ8:
  case DownLayout::SplitQ4:
    return uint64_t(nFF / typeTraits(source)->blockSize) * uint64_t(nEmbd) * 2;
  case DownLayout::SplitK:
    return uint64_t(splitKLayout(source, nEmbd, nFF).bytes);
  default:
    return 0;
  }
}

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

// A Q4_0 row of nb blocks with its scales first: the nb f16 scales, then
// the nb x 16 quant bytes, the same 18 * nb bytes as the blocks. The packed
// weights store the rows that only the CPU multiplies this way (attention
// of CPU layers, a head on the CPU, the cold rows of gate and up): the AVX-512
// product then loads two blocks' quants at once and sixteen scales with one
// conversion (runtime/dot_kernels.h, dotQ4SfQ8Avx512), with the blocks'
// products unchanged.
inline void q4_0ToScalesFirst(const uint8_t *blocks, uint8_t *row, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ4_0 &blk = reinterpret_cast<const BlockQ4_0 *>(blocks)[b];
    std::memcpy(row + 2 * b, &blk.d, 2);
    std::memcpy(row + 2 * nb + 16 * b, blk.qs, 16);
  }
}
inline void scalesFirstToQ4_0(const uint8_t *row, uint8_t *blocks, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    BlockQ4_0 &blk = reinterpret_cast<BlockQ4_0 *>(blocks)[b];
    std::memcpy(&blk.d, row + 2 * b, 2);
    std::memcpy(blk.qs, row + 2 * nb + 16 * b, 16);
  }
}

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
