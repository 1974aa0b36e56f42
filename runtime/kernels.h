// CPU kernels of the dense reference: dot products of one weight row of any
// computable type with an f32 vector (dequantising block by block inside the
// loop, so quantised weights are used straight from the mapped file), the
// matrix-vector products built on them, and the small per-token operations
// (RMS norm, rotary embedding, softmax, attention of one head, activations).
// Plain C++ loops the compiler vectorises, plus AVX2/FMA/F16C versions of the
// dot products chosen at run time when the CPU has them.
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/model.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace pinfer {

class ThreadPool;

// Which dot-product implementation runs. Auto picks the widest the CPU
// has: AVX-512 VNNI (with F, BW, VL) for the 8-bit products of Q8_0/Q4_0,
// else AVX2 with FMA and F16C, else the portable loops; Avx2 caps it at
// AVX2 and Scalar forces the portable loops (tests compare them).
enum class KernelIsa { Auto, Avx2, Scalar };
void setKernelIsa(KernelIsa isa);
// "avx512vnni", "avx2" or "scalar": what dot products use now.
const char *kernelIsaName();
// Whether that is AVX2 or wider (the AVX2 routines of the other kernels).
bool kernelIsaIsAvx2();
// The level in use: 2 AVX-512 VNNI, 1 AVX2, 0 portable
// (TypeTraits::kernelsAt; generated code records the level it was compiled
// for, runtime/ffn_cpu.h).
int kernelLevel();

// sum_i row[i] * x[i] over `n` elements of a row of `type`; `n` must be a
// multiple of the type's block size and `type` computable (Model::load
// guarantees both).
float dotRow(GGMLType type, const void *row, const float *x, int64_t n);

// The f32-activation dot product of `type`'s row (runtime/type_table.h)
// under the current ISA setting (null for a type without kernels), for
// loops that pick it once.
DotFn dotKernel(GGMLType type);

// Converts one row to f32 (embedding lookup): the row's dequantisation.
// Same contract as dotRow.
void rowToF32(GGMLType type, const void *row, float *out, int64_t n);

// ---- quantised activations -------------------------------------------------
//
// Products with weights whose row says ActFormat::Q8 (Q8_0, Q4_0) quantise
// the activation vector once to 8 bits per element with one f32 scale per
// 32-element block (QK8_0, BlockQ8Act in runtime/ggml_types.h) and multiply
// bytes by bytes with integer instructions, as llama.cpp does. This adds an
// error of at most half a step of the activation's block scale per element.
// The dense reference and the compiled executors do this alike, so they
// stay comparable token for token; dotRow (f32 activations) remains for the
// sparse down projection, whose input is the sparse activation vector split
// across devices.

// Quantises x[0..n) (n a multiple of QK8_0) into n/QK8_0 blocks, scale =
// max|x| / 127 per block, values rounded to nearest.
void quantizeActQ8(const float *x, BlockQ8Act *out, int64_t n);
// The same n values in the GPU's 8-bit layout, which its block-type
// matvecs multiply (with dp4a) as the CPU's multiply the blocks: the n
// quants as bytes from out on, then each block's scale d as a float (n +
// n / 8 bytes in all, within out's n floats).
void packActQ8(const BlockQ8Act *xq, float *out, int64_t n);
inline size_t packedActQ8Bytes(int64_t n) { return size_t(n + n / 8); }

// The first nTok tokens' quantised blocks (nb per token, a multiple of 8
// as in K-quant rows) as ActPairQ8 pairs, and per eight blocks their
// scales then their sums (2 * nb floats per token, token t's at f + t * 2
// * nb): the layout TypeKernels::dotQ8PairsRows / dotQ8Pairs read.
void pairActivations(const BlockQ8Act *xq, int64_t nb, int nTok,
                     std::vector<ActPairQ8> &pairs, std::vector<float> &f);

// The quantised-activation dot product of `type`'s row under the current
// ISA setting; null for a type whose products use f32 activations.
DotQ8ActFn dotQ8ActKernel(GGMLType type);

// Whether a hot FFN half's input goes to the GPU as 8-bit values (packActQ8's
// layout): both its gate and up rows multiply those, as on the CPU.
inline bool hotInputQ8(GGMLType gate, GGMLType up) {
  return usesQ8Act(gate) && usesQ8Act(up);
}

// One row of `type` times an input, as the products above multiply it: the
// 8-bit copy for ActFormat::Q8 rows, the f32 vector otherwise. For loops
// that pick the kernels once and call them per row.
struct RowDot {
  DotQ8ActFn q8 = nullptr; // set for ActFormat::Q8 types
  DotFn f32 = nullptr;
  // kTokensAtOnce tokens at once, bitwise q8 / f32 per token; null where
  // the type has no such kernel at this level.
  DotQ8Act4Fn q84 = nullptr;
  Dot4Fn f324 = nullptr;
  // kRowsAtOnce rows x kTokensAtOnce tokens, bitwise as above; null where
  // the type has no such kernel at this level.
  DotQ8ActRowsFn q8Rows = nullptr;
  DotRowsFn f32Rows = nullptr;
  // kRowsAtOnce rows x kTokensAtOnce tokens from a prompt's ActPairQ8
  // layout, bitwise q8 per row and token; null where the type has none at
  // this level.
  DotQ8PairsRowsFn q8PairsRows = nullptr;
  // One row and token from that layout, bitwise q8; null likewise.
  DotQ8PairsFn q8Pairs = nullptr;
  // A row unpacked once for many tokens (TypeKernels::prepareRow), then
  // one or kTokensAtOnce tokens' products from it, bitwise q8 / q84; null
  // where the type has none at this level.
  PrepareRowFn prepare = nullptr;
  DotQ8ActFn q8Prepared = nullptr;
  DotQ8Act4Fn q84Prepared = nullptr;
  float operator()(const uint8_t *row, const float *x, const BlockQ8Act *xq,
                   int64_t n) const {
    return q8 ? q8(row, xq, n) : f32(row, x, n);
  }
  // The same row's products with the f32 activation whatever the type.
  RowDot withF32Act() const {
    RowDot d = *this;
    d.q8 = nullptr;
    d.q84 = nullptr;
    d.q8Rows = nullptr;
    d.q8PairsRows = nullptr;
    d.q8Pairs = nullptr;
    d.prepare = nullptr;
    d.q8Prepared = nullptr;
    d.q84Prepared = nullptr;
    return d;
  }
  // The same products from `row` as prepare() left it: q8 and q84 are the
  // prepared kernels (quantised activations only).
  RowDot prepared() const {
    RowDot d = *this;
    d.q8 = q8Prepared;
    d.q84 = q84Prepared;
    d.q8Rows = nullptr;
    d.q8PairsRows = nullptr;
    d.q8Pairs = nullptr;
    d.prepare = nullptr;
    return d;
  }
  // Whether preparing a row pays for `tokens` tokens: it costs about one
  // four-token product's unpacking, which the products after the first
  // four then skip.
  bool preparesFor(int tokens) const {
    return q8 && prepare && tokens >= 2 * kTokensAtOnce;
  }
  // Whether kTokensAtOnce tokens can go at once.
  bool hasX4() const { return q8 ? q84 != nullptr : f324 != nullptr; }
  // Whether kRowsAtOnce rows x kTokensAtOnce tokens can go at once.
  bool hasRows() const { return q8 ? q8Rows != nullptr : f32Rows != nullptr; }
  // Rows row + r * rowBytes, tokens as in x4; out[t * kRowsAtOnce + r].
  void rows(const uint8_t *row, int64_t rowBytes, const float *x,
            int64_t xStride, const BlockQ8Act *xq, int64_t xqStride, int64_t n,
            float *out) const {
    if (q8)
      q8Rows(row, rowBytes, xq, xqStride, n, out);
    else
      f32Rows(row, rowBytes, x, xStride, n, out);
  }
  // kTokensAtOnce tokens: x_t = x + t * xStride, xq_t = xq + t * xqStride.
  void x4(const uint8_t *row, const float *x, int64_t xStride,
          const BlockQ8Act *xq, int64_t xqStride, int64_t n, float *out) const {
    if (q8)
      q84(row, xq, xqStride, n, out);
    else
      f324(row, x, xStride, n, out);
  }
};
RowDot rowDot(GGMLType type);

// ---- Q4_0 rows stored scales first (Weight::scalesFirst) -------------------
//
// An activation prepared for scales-first rows: one per pair of blocks
// (whole fours of them), as the AVX-512 product reads it
// (runtime/dot_kernels.h, Q4SfActPair).
struct alignas(64) Q4SfAct {
  unsigned char bytes[128];
};
inline int64_t q4SfActCount(int64_t n) { return 2 * ((n / QK8_0 + 3) / 4); }
// Prepares the quantised activation xq[0 .. n/QK8_0) into
// out[0 .. q4SfActCount(n)); false (nothing written) where the level in use
// has no scales-first product, and the rows are then multiplied as blocks.
bool prepQ4SfAct(const BlockQ8Act *xq, int64_t n, Q4SfAct *out);
// The same for nTok tokens (xq's blocks back to back), token t's at
// out + t * q4SfActCount(n); out is resized. Null where nothing is prepared.
const Q4SfAct *prepQ4SfActs(const BlockQ8Act *xq, int64_t n, int nTok,
                            std::vector<Q4SfAct> &out);
// A scales-first Q4_0 row times xq, with `prep` from prepQ4SfAct (or null
// when it returned false): bitwise the blocks' product at the level in use.
float dotQ4Sf(const uint8_t *row, const BlockQ8Act *xq, const Q4SfAct *prep,
              int64_t n);

// y[t*yStride + r] = w.row(r) . x_t for r in [r0, r1) and each of `nTok`
// tokens t, x_t = x + t*xStride; with quantised activations for
// ActFormat::Q8 weights unless `f32Act`. Rows are the outer loop so that a row
// is read from memory once per batch; the per-token result is bitwise the same
// whatever the batch or the row range. x: [nTok][xStride >= w.cols],
// y: [nTok][yStride >= w.rows].
void matvecRows(const Weight &w, const float *x, int64_t xStride, float *y,
                int64_t yStride, int nTok, int64_t r0, int64_t r1,
                bool f32Act = false);
inline void matvecRows(const Weight &w, const float *x, float *y, int64_t r0,
                       int64_t r1) {
  matvecRows(w, x, w.cols, y, w.rows, 1, r0, r1);
}

// Several independent products run as one parallel step, rows split evenly
// over the pool's threads (e.g. Q, K and V of one layer), each over the same
// `nTok` tokens. Each distinct input is quantised once, before the step.
// Results are bitwise those of matvecRows.
struct MatvecJob {
  const Weight *w;
  const float *x; // [nTok][xStride]
  float *y;       // [nTok][yStride]
  int64_t xStride = 0; // 0: w->cols
  int64_t yStride = 0; // 0: w->rows
  bool f32Act = false; // keep x in f32 for ActFormat::Q8 weights too
};
void matvecs(const MatvecJob *jobs, int nJobs, ThreadPool &pool, int nTok = 1);
inline void matvec(const Weight &w, const float *x, float *y,
                   ThreadPool &pool) {
  MatvecJob job{&w, x, y};
  matvecs(&job, 1, pool);
}

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may alias x.
void rmsNorm(float *out, const float *x, const float *w, int n, float eps);
// The same for `rows` rows of n values each, back to back.
inline void rmsNormRows(float *out, const float *x, const float *w, int rows,
                        int n, float eps) {
  for (int r = 0; r < rows; ++r)
    rmsNorm(out + size_t(r) * n, x + size_t(r) * n, w, n, eps);
}

// In-place softmax over x[0..n), max-subtracted.
void softmax(float *x, int n);

// Rotary position embedding, "normal" mode as used for LLaMA GGUF files:
// within each head of `headDim` values, pairs (2i, 2i+1) for 2i < nRot are
// rotated by pos * invFreq[i], where invFreq[i] = base^(-2i/nRot) (see
// ropeInvFreq). `vec` holds `nHeads` heads back to back.
void ropeInvFreq(float *invFreq, int nRot, float base); // invFreq: [nRot/2]
// NeoX style (Gemma, Qwen) pairs (i, i + nRot/2) instead.
void rope(float *vec, int nHeads, int headDim, int nRot, int pos,
          const float *invFreq, RopeStyle style = RopeStyle::Normal);

// Causal attention of one query head over positions [0, nPos):
// out = sum_t softmax_t(q . k_t / sqrt(headDim)) v_t, where k_t is at
// keys + t*stride and v_t at values + t*stride, both f16 (the KV cache).
// scores: [nPos] scratch.
void attendHead(const float *q, const uint16_t *keys, const uint16_t *values,
                int64_t stride, int nPos, int headDim, float *scores,
                float *out);
// Tokens [t0, t1) of a prompt's chunk for nHeads query heads of one KV
// head: token t is at position pos0 + t and sees positions [first, pos0 +
// t] (first = pos0 + t + 1 - window where window > 0 and that is > 0, else
// 0) of keys/values (rows `stride` apart, from position 0). Token t's
// queries at q + t * qStride (nHeads rows of headDim), its scores for head
// g at scores + t * scoreTokStride + g * scoreHeadStride (from `first`
// on), its outputs at out + t * outStride + g * headDim. Each token and
// head gets bitwise what attendHead gives it alone; each row is converted
// once for all of them.
struct AttendChunk {
  const float *q = nullptr;
  int64_t qStride = 0;
  int nHeads = 1;
  const uint16_t *keys = nullptr, *values = nullptr;
  int64_t stride = 0;
  int headDim = 0;
  int pos0 = 0, t0 = 0, t1 = 0, window = 0;
  float *scores = nullptr;
  int64_t scoreTokStride = 0, scoreHeadStride = 0;
  float *out = nullptr;
  int64_t outStride = 0;
};
void attendChunk(const AttendChunk &c);
// x[0, n) as f16 (round to nearest even) into out.
void storeF16(const float *x, uint16_t *out, int64_t n);

inline float silu(float x) { return x / (1.f + std::exp(-x)); }
inline float relu(float x) { return x > 0.f ? x : 0.f; }
// GELU, tanh approximation: 0.5 x (1 + tanh(y)), y = sqrt(2/pi) (x +
// 0.044715 x^3), computed as x / (1 + exp(-2y)) (0.5 (1 + tanh y) is the
// logistic function of 2y): one exp where tanh costs an expm1 and more,
// about 9 % of a Gemma 3 prompt's time, and no cancellation for either
// sign of y.
inline float gelu(float x) {
  constexpr float kTwoSqrt2OverPi = 2 * 0.7978845608028654f;
  return x / (1.f + std::exp(-kTwoSqrt2OverPi * x * (1.f + 0.044715f * x * x)));
}

// The FFN's activation product of one neuron from its gate and up
// projections, act(g) * u (DReLU: relu(g) * relu(u)), as its two factors:
// ffnGate is what exact and threshold modes test before computing up. The
// one formula the reference, the CPU executors and the generated host code
// share; the CUDA emitter writes its twin.
template <FfnActivation A> inline float ffnGate(float g) {
  if constexpr (A == FfnActivation::SiLU)
    return silu(g);
  else if constexpr (A == FfnActivation::GeluTanh)
    return gelu(g);
  else
    return relu(g);
}
template <FfnActivation A> inline float ffnUp(float u) {
  if constexpr (A == FfnActivation::DReLU)
    return relu(u);
  else
    return u;
}
template <FfnActivation A> inline float ffnProduct(float g, float u) {
  return ffnGate<A>(g) * ffnUp<A>(u);
}
inline float ffnActivate(FfnActivation a, float g) {
  switch (a) {
  case FfnActivation::SiLU:
    return ffnGate<FfnActivation::SiLU>(g);
  case FfnActivation::GeluTanh:
    return ffnGate<FfnActivation::GeluTanh>(g);
  case FfnActivation::ReLU:
  case FfnActivation::DReLU:
    break;
  }
  return ffnGate<FfnActivation::ReLU>(g);
}
inline float ffnUpFactor(FfnActivation a, float u) {
  return a == FfnActivation::DReLU ? ffnUp<FfnActivation::DReLU>(u) : u;
}

} // namespace pinfer
