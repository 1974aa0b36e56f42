// The attention kernels of the emitted CUDA source (runtime/
// gpu_attention.h lists them): part of emitCuda, apart for length.
#pragma once

#include "codegen/ProgramDesc.h"

#include <ostream>
#include <string>
#include <vector>

namespace pinfer {

// The device helpers the attention kernels share; once per source.
void emitAttentionHelpers(std::ostream &os);
// The residual stream's kernels (runtime/gpu_attention.h, resid_*), for a
// program whose norm and add steps run on the GPU.
void emitResidualKernels(std::ostream &os, const ModelParams &p);
// gpuattn::kHotCount, for programs whose residual stream stays on the CPU.
void emitHotCount(std::ostream &os);
// One matvec kernel: y[r] = row r of w (rows x cols of `type`) . x
// (+ bias[r]), through ReLU where `relu`; one warp per row. With
// `downParams` it takes a down kernel's parameters (w, x, y, part, done,
// nTok; CudaEmitter.h), bias-free: a layer's down projection over the
// source's rows (DownLayout::Source).
// With `tiles` (a target of sm_80 or newer) and a type of
// gpuattn::hasTiles, also NAME + gpuattn::kTilesSuffix, the same product
// on tensor cores for two tokens or more, of the same parameters
// (runtime/gpu_attention.h).
void emitMatvec(std::ostream &os, const std::string &name, GGMLType type,
                int64_t rows, int64_t cols, bool bias, bool relu = false,
                bool downParams = false, bool tiles = false);
// A tile kernel's body (gpuattn::kTilesSuffix), after its signature, which
// names `x` (the tokens' 8-bit values, packActQ8's layout, kCols floats a
// token; f16 operands: their f32 values) and `nTok`: each warp takes 16
// of `rows` rows and the tokens 8 * `groups` at a time; per 32-value
// block of `cols` it loads each operand's rows (param `matrix`, a type of
// gpuattn::hasTiles, or every operand f16) once and multiplies them by
// each group of 8 tokens on tensor cores (one mma.m16n8k32: the block's
// exact integer dots; f16: per 16 values, two mma.m16n8k16 over two f16
// parts of the activations), and each (row, token) meets the floats once
// per block: acc += d_row * (d_token * I). Then
// `store` runs for each row r < kRows and token t < nTok with operand i's
// sum in v<i>. With `list` (an expression: a pick record, runtime/
// gpu_attention.h) the rows are the record's list of chosen neurons, r
// the list's entry.
struct TileOperand {
  std::string matrix;
  GGMLType type;
};
void emitTileBody(std::ostream &os, int64_t rows, int64_t cols,
                  const std::vector<TileOperand> &ops, int groups,
                  const std::string &store, const std::string &list = "");
// Whether a type's tiles take each 32-value block as two 16-value halves
// of their own scales (Q2_K, Q3_K, Q6_K): two products a block.
bool tileHalves(GGMLType type);
// Whether `smArch` ("sm_89") has the integer mma.m16n8k32 (sm_80 on).
bool smHasIntMma(const std::string &smArch);
// x[0, n) of each of nTok tokens quantised to 8 bits per 32 values exactly
// as the CPU's quantizeActQ8 does, into xq in the layout packActQ8 gives
// (runtime/kernels.h), each token's at the start of its n floats; xq may
// be x. One block of gpuattn::kQuantBlock threads per token, n a multiple
// of 32.
void emitQuant(std::ostream &os, const std::string &name, int64_t n);
// The head's selection kernels (runtime/gpu_attention.h, head_hist,
// head_cut, head_pick) over n_vocab logits; beside the head's matvec.
void emitHeadSelect(std::ostream &os, int64_t nVocab);
// Layer `layer`'s kernels, every shape a constant; `tiles` as emitMatvec.
void emitAttentionKernels(std::ostream &os, const ModelParams &p, int layer,
                          const AttentionDesc &a, bool tiles);

} // namespace pinfer
