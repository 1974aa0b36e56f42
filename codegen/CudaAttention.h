// The attention kernels of the emitted CUDA source (runtime/
// gpu_attention.h lists them): part of emitCuda, apart for length.
#pragma once

#include "codegen/ProgramDesc.h"

#include <ostream>

namespace pinfer {

// The device helpers the attention kernels share; once per source.
void emitAttentionHelpers(std::ostream &os);
// Layer `layer`'s kernels, every shape a constant.
void emitAttentionKernels(std::ostream &os, const ModelParams &p, int layer,
                          const AttentionDesc &a);

} // namespace pinfer
