// The attention kernels of the emitted CUDA source (runtime/
// gpu_attention.h lists them): part of emitCuda, apart for length.
#pragma once

#include "codegen/ProgramDesc.h"

#include <ostream>

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
void emitMatvec(std::ostream &os, const std::string &name, GGMLType type,
                int64_t rows, int64_t cols, bool bias, bool relu = false,
                bool downParams = false);
// x[0, n) of each of nTok tokens quantised to 8 bits per 32 values exactly
// as the CPU's quantizeActQ8 does, into xq in the layout packActQ8 gives
// (runtime/kernels.h), each token's at the start of its n floats; xq may
// be x. One block of gpuattn::kQuantBlock threads per token, n a multiple
// of 32.
void emitQuant(std::ostream &os, const std::string &name, int64_t n);
// The head's selection kernels (runtime/gpu_attention.h, head_hist,
// head_cut, head_pick) over n_vocab logits; beside the head's matvec.
void emitHeadSelect(std::ostream &os, int64_t nVocab);
// Layer `layer`'s kernels, every shape a constant.
void emitAttentionKernels(std::ostream &os, const ModelParams &p, int layer,
                          const AttentionDesc &a);

} // namespace pinfer
