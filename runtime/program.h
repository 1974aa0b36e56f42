// The compiled program as a generated executable holds it: constant tables
// emitted by the host code generator (codegen/HostEmitter) and read by the
// specialised decoder (runtime/executor.h). Plain data with static storage,
// so that the generated main() is nothing but tables and one call.
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/vram_bill.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace pinfer {

// The packed layout of a transposed down projection (DownLayout,
// downLayoutFor, transposedDownType, transposedDownRowBytes) is a property
// of the source type: runtime/ggml_types.h.

// How the FFN halves skip neurons.
enum class SparsityMode {
  Dense,     // every neuron's gate, up and down computed
  Exact,     // gate for all; up and down only where the activation is non-zero
  Predicted, // a per-layer predictor chooses the neurons whose gate, up
             // and down run (each half whose steps have a predict step:
             // the cold half's on the CPU, the hot half's on the GPU;
             // a hot half without one runs as Exact)
  Threshold, // gate for all; up and down only where |activation| exceeds
             // the layer's calibrated actThreshold (SiLU models' sparsity)
};
const char *sparsityModeName(SparsityMode mode);
bool parseSparsityMode(const char *name, SparsityMode &out);

// What the CPU half's gate/up loop works on for one token (runtime/
// ffn_cpu.h): neurons [first + k0, first + k1) of the packed rows.
struct GateUpArgs {
  const uint8_t *gate = nullptr, *up = nullptr; // packed row 0 of each
  size_t gateRowBytes = 0, upRowBytes = 0;
  const float *x = nullptr;       // the FFN input [n_embd]
  const BlockQ8Act *xq = nullptr; // its 8-bit copy (ActFormat::Q8 rows)
  // That copy in pairs of blocks (ActPairQ8) and their scales and sums, for
  // rows whose type reads them (TypeKernels::dotQ8Pairs); null: not made.
  const ActPairQ8 *xp = nullptr;
  const float *xpScales = nullptr;
  int64_t first = 0;              // the half's first packed row
  float skipAtOrBelow = 0.f;      // exact: 0; threshold: the layer's
  const float *logits = nullptr;  // predicted: scores in packed order
  float predictorThreshold = 0.f; // ... a neuron runs when above this
  float *h = nullptr;             // [count] activations out
  uint8_t *chosen = nullptr;      // predicted: [count] the choice out
};
using GateUpFn = void (*)(const GateUpArgs &args, int64_t k0, int64_t k1);

// The first neuron k in [from, end) the predictor chose (logits[first + k]
// above the threshold), or end: the loops over a predicted half step from
// one chosen neuron to the next, to ask for its rows ahead.
inline int64_t nextChosen(const float *logits, int64_t first, float threshold,
                          int64_t from, int64_t end) {
  while (from < end && !(logits[first + from] > threshold))
    ++from;
  return from;
}

// One step of a layer's program: one op of the scheduled IR, in the order
// the IR lists them (compiler/LowerToProgram.cpp reads them off; the
// executor runs them in that order and decides none of it). Every step
// works on the decoder's one residual stream and its fixed buffers, so a
// kind says which value it reads and writes.
enum class StepKind : uint8_t {
  AttnNorm,  // pinfer.rms_norm with the attention norm: residual -> input
  Attention, // pinfer.attention of that input (and the layer's KV cache);
             // on the GPU it also moves the input up and the output down
             // and waits for it (the IR's transfers, record and wait
             // around a GPU attention)
  AttnAdd,   // pinfer.add of the attention output into the residual
  FfnNorm,   // pinfer.rms_norm with the FFN norm: residual -> FFN input
  Transfer,  // pinfer.transfer; device: where to (gpu: the FFN input up,
             // cpu: the GPU half's output down, complete at the next wait)
  FfnHalf,   // pinfer.ffn_part on `device`: the hot (gpu) or cold (cpu) half
  Record,    // pinfer.record: an event after the GPU work issued so far
  Predict,   // pinfer.predict: the predictor's scores of the half on
             // `device` (cpu: the cold half's, gpu: the hot half's, made
             // and used on the GPU)
  Wait,      // pinfer.wait: the host blocks until the recorded event
  Merge,     // pinfer.merge: the sum of the two halves' outputs
  FfnAdd,    // pinfer.add of the FFN output (`from`) into the residual
  // Gemma 3's norms of a block's output before it is added:
  AttnPostNorm, // pinfer.rms_norm of the attention output
  FfnPostNorm,  // pinfer.rms_norm of the FFN output (`from`, as FfnAdd)
};
constexpr int kNumStepKinds = int(StepKind::FfnPostNorm) + 1;
// Where a step runs. None: an op the IR gives no device (the host's
// bookkeeping: norms, adds, merge, record, wait).
enum class StepDevice : uint8_t { None, Cpu, Gpu };

struct ProgramStep {
  StepKind kind = StepKind::AttnNorm;
  StepDevice device = StepDevice::None;
  // FfnAdd: the value added: None the merge's sum, Cpu or Gpu the one
  // half's output of a layer with a single half. None elsewhere.
  StepDevice from = StepDevice::None;
  // pinfer-plan-memory's arena offset of the step's result (its device's
  // arena); -1 for a step without a result. Carried for the record: the
  // executor's buffers are still fixed ones (docs/architecture.md).
  int64_t arenaOffset = -1;
};

// Whether these steps hold a step of `kind` on `device`.
inline bool hasStep(const ProgramStep *steps, uint32_t n, StepKind kind,
                    StepDevice device) {
  for (uint32_t i = 0; i < n; ++i)
    if (steps[i].kind == kind && steps[i].device == device)
      return true;
  return false;
}

// Whether these steps keep the residual stream on the GPU: their norms and
// adds run there (pinfer-schedule does so for a program whose every layer
// and head run on the GPU).
inline bool residualOnGpu(const ProgramStep *steps, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if ((steps[i].kind == StepKind::AttnNorm ||
         steps[i].kind == StepKind::FfnNorm) &&
        steps[i].device == StepDevice::Gpu)
      return true;
  return false;
}

// "attention", "ffn_half", ...: the step's name in the text form.
const char *stepKindName(StepKind kind);
// The text form of `n` steps: names separated by spaces, "@cpu"/"@gpu"
// after the steps that have a device, e.g. "attn_norm attention@cpu
// attn_add ffn_norm transfer@gpu ffn_half@gpu transfer@cpu record
// ffn_half@cpu wait merge ffn_add". The compiler prints the lowered IR's
// steps and the executable the steps it ran in this one form, so that the
// two compare as text.
std::string stepsText(const ProgramStep *steps, size_t n);
// "steps layer L: <stepsText>\n", one layer's line of the steps report
// (pinferc --emit=steps; the executable's --verbose, of the steps it ran).
std::string stepsLine(size_t layer, const ProgramStep *steps, size_t n);

// One layer. The packed weights store the layer's FFN neurons in the order
// of `neuronIds`: packed rows [0, nHot) are the hot half (GPU), rows
// [nHot, nHot + nCold) the cold half (CPU).
struct ProgramLayer {
  uint32_t nHot = 0;
  uint32_t nCold = 0;
  const uint32_t *neuronIds = nullptr; // [nHot + nCold] original neuron ids
  bool attentionOnGPU = false; // its attention step runs on the GPU
  uint32_t predictorRank = 0;  // R of blk.N.fc1 {n_embd, R}; 0: none
  const char *gateUpKernel = nullptr; // hot-half kernels in the GPU image;
  const char *downKernel = nullptr;   // null when nHot == 0
  uint32_t gateUpBlock = 0;           // threads per block of each kernel
  uint32_t downBlock = 0;
  uint32_t gateUpGrid = 0; // blocks of each kernel
  uint32_t downGrid = 0;
  // Threshold mode: neurons with |act(gate x)| <= this are skipped on both
  // devices (the GPU kernels have it as a constant too). Predicted mode on
  // a SiLU model: the |silu(gate x)| above which the profile counted a
  // neuron as firing, what its predictors were trained to find; only the
  // recall measurement (--check-sparsity) reads it. 0 elsewhere.
  float actThreshold = 0.f;
  // The layer's gate/up loop specialised by the generated code (shapes,
  // types, activation and mode as constants, compiled for the target CPU);
  // null: the runtime's generic loop.
  GateUpFn cpuGateUp = nullptr;
  // The kernel level cpuGateUp was compiled with (runtime/kernels.h,
  // kernelLevel): the executor uses it only when the runtime picked the
  // same kernels at start-up, so that every path (and the dense reference)
  // multiplies alike.
  int cpuGateUpLevel = 0;
  // What the executor runs for this layer, in order.
  const ProgramStep *steps = nullptr; // [nSteps]
  uint32_t nSteps = 0;
};

struct Program {
  uint32_t formatVersion = 1;
  const char *modelName = "";
  const char *arch = "";        // general.architecture, a row of runtime/arch.h
  const char *target = "";      // "rtx4090", "cpu"
  const char *weightsFile = ""; // default file name beside the executable
  uint64_t weightsHash = 0;     // content hash of the packed weights
  // The model's hyperparameters, constants of the program; the packed
  // weights' shapes are checked against them at start-up.
  uint32_t nLayer = 0, nEmbd = 0, nFF = 0, nVocab = 0;
  uint32_t nHead = 0, nKvHead = 0, headDim = 0, nRot = 0, nCtxTrain = 0;
  float normEps = 1e-5f, ropeBase = 10000.f;
  // Positions a sliding-window layer sees (the architecture row says which
  // layers slide); 0: none.
  uint32_t slidingWindow = 0;
  const char *activation = "silu"; // as parseActivation reads it
  // Predicted mode: a neuron runs when its predictor score is >= this.
  float predictorThreshold = 0.f;
  SparsityMode mode = SparsityMode::Exact;
  const ProgramLayer *layers = nullptr; // [nLayer]
  // The GPU part: PTX text (NUL-terminated) or a CUBIN; null for CPU-only.
  const uint8_t *gpuImage = nullptr;
  size_t gpuImageSize = 0;
  // The same GPU part as a CUBIN for smArch, beside a PTX gpuImage; null
  // when the toolkit made none. Loaded instead of the PTX where the device
  // can run it (cubinRunsOn), which saves the driver's JIT at start-up.
  const uint8_t *gpuCubin = nullptr;
  size_t gpuCubinSize = 0;
  const char *smArch = "";    // "sm_89"
  // Kernel names the module holds under another kernel's name (the same
  // code, compiled once): nKernelAliases pairs {name, the module's name}.
  const char *const *kernelAliases = nullptr;
  size_t nKernelAliases = 0;
  uint64_t vramBillBytes = 0;  // the plan's VRAM bill at the compile's -c
  VramBill vramBill;           // the same at any -c (VramBill::at)
  bool headOnGPU = false;      // the output head's matvec runs on the GPU
  // A token's embedding row is gathered on the GPU from the head's matrix
  // (the output tied to token_embd; the residual stream on the GPU).
  bool embedOnGPU = false;
};

} // namespace pinfer
