// Emits the CUDA C++ source of a program's GPU part: for every layer with
// hot neurons, a gate/up kernel (one warp per hot neuron row: dot products
// of the packed gate and up rows with the layer's FFN input, block types
// with its 8-bit values and dp4a, then the activation) and a down kernel (the
// transposed down rows of the hot neurons weighted by their activations, spread
// over column tiles x chunks of neurons, with a deterministic reduction of the
// chunks). Every shape, count, row size and weight type is a compile-time
// constant of the emitted code. `pinferc --emit=cuda` prints it.
#pragma once

#include "codegen/KernelDedupe.h"
#include "codegen/ProgramDesc.h"

#include <string>
#include <vector>

namespace pinfer {

struct CudaKernel {
  int layer = 0;
  std::string gateUp, down; // extern "C" kernel names
  unsigned gateUpBlock = 0, gateUpGrid = 0;
  unsigned downBlock = 0, downGrid = 0;
};

struct CudaModule {
  std::string source;
  std::vector<CudaKernel> kernels; // layers with hot neurons, in order
  // Kernels (of any kind) whose code another kernel of `source` already
  // has, and that kernel (dedupeKernels): the runtime looks them up as it.
  std::vector<KernelAlias> aliases;
};

// The kernels' parameters, as the executor passes them:
//   gateUp(const uint8 *gate, const uint8 *up, const float *x, float *h,
//          int nTok)
//   down(const uint8 *downT, [const u16 *scales, const unsigned *ids,]
//        const float *h, float *y, float *part, unsigned *done, int nTok)
// with gate/up/downT the layer's first nHot packed rows, x [n_embd], h
// [nHot] activations and y [n_embd] the hot half's down projection (split
// layouts also take the block scales and the hot neurons' ids). The down
// kernel's grid is column tiles x chunks of hot neurons: `part` holds
// nTok * downGrid * downBlock * gpuattn::kDownCols floats of partial sums
// at most (nTok tokens: x [nTok][n_embd], h [nTok][nHot], y
// [nTok][n_embd], each token's as alone), `done`
// downGrid counters that must be zero before the first launch (each
// launch leaves them so).

CudaModule emitCuda(const ProgramDesc &program);

// The name of the kernel whose body holds line `line` (1-based) of
// `source`, or "" (used to name the kernel in compiler errors).
std::string kernelAtLine(const std::string &source, int line);

} // namespace pinfer
