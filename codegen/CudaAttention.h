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
// One matvec kernel: y[r] = row r of w (rows x cols of `type`) . x
// (+ bias[r]); one warp per row.
void emitMatvec(std::ostream &os, const std::string &name, GGMLType type,
                int64_t rows, int64_t cols, bool bias);
// Layer `layer`'s kernels, every shape a constant.
void emitAttentionKernels(std::ostream &os, const ModelParams &p, int layer,
                          const AttentionDesc &a);

} // namespace pinfer
