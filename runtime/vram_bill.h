// What a compiled program keeps in VRAM for a layer's hot FFN neurons, and
// for a layer's KV cache, from weight types and shapes alone. The
// placement's cost model (compiler/placement/CostModel.cpp) and
// pinfer-plan-memory (passes/PlanMemory.cpp) both bill these, so that the
// plan the solver chose and the IR it becomes count the same bytes. The
// counts follow what Executor::openGpu uploads (runtime/executor.cpp).
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/gpu_attention.h"

#include <algorithm>
#include <cstdint>

namespace pinfer {

struct HotFfnVram {
  // One hot neuron: its gate and up rows, its row of the packed transposed
  // down projection and, for split down layouts, its original id (the
  // source block of its scales).
  uint64_t perNeuron = 0;
  // Split down layouts: the layer's down block scales, needed whole as soon
  // as one of its neurons is hot.
  uint64_t perLayer = 0;

  uint64_t bytes(uint64_t nHot) const {
    return nHot ? nHot * perNeuron + perLayer : 0;
  }
};

// An FFN of `nFF` neurons over `nEmbd` inputs with gate, up and down
// stored in the given types (down as the source file stores it, {n_ff,
// n_embd}; the packed file's transposed layout follows from its type).
inline HotFfnVram hotFfnVram(GGMLType gate, GGMLType up, GGMLType down,
                             int64_t nEmbd, int64_t nFF) {
  HotFfnVram v;
  v.perNeuron = rowBytes(gate, nEmbd) + rowBytes(up, nEmbd) +
                transposedDownRowBytes(down, nEmbd);
  if (isSplitDown(downLayoutFor(down))) {
    v.perNeuron += sizeof(uint32_t);
    // The scales (and mins) of every source block or group of each output.
    v.perLayer = splitDownTableBytes(down, nEmbd, nFF);
  }
  return v;
}

// Whether a dense FFN layer wholly on the GPU keeps the file's ffn_down (of
// type `down`) as the file has it (DownLayout::Source,
// compiler/LowerToProgram.cpp): every block type. Where the packed
// transposed rows are SplitK's (K-quants, Q4_1, Q5_0, Q5_1: a byte a
// weight and the tables, read one neuron's column at a time), a matvec
// over the source's rows reads every weight once at the source's size;
// Q8_0/Q4_0's split rows hold the source's bytes, but multiply f32
// activations where the reference multiplies their 8-bit values, and
// a prompt's products over them cannot take tensor-core tiles. Only
// where the file has ffn_down, not only its transpose.
inline bool denseGpuKeepsSourceDown(GGMLType down) {
  return downLayoutFor(down) != DownLayout::Rows;
}

// What such a layer keeps in VRAM: gate and up rows of every neuron, and
// the source's down matrix, n_embd rows of n_ff.
inline uint64_t denseSourceFfnVram(GGMLType gate, GGMLType up, GGMLType down,
                                   int64_t nEmbd, int64_t nFF) {
  return uint64_t(nFF) * (rowBytes(gate, nEmbd) + rowBytes(up, nEmbd)) +
         uint64_t(nEmbd) * rowBytes(down, nFF);
}

// A hot half's own predictor (predicted mode, a predict@gpu step): fc1
// {n_embd, R} and its bias [R] whole per layer, and per hot neuron its fc2
// row of R and bias, in the types the packed weights store them
// (packedPredictorType). Biases are billed (and uploaded, as zeros) where
// the model has none, so that every program bills the same shape.
inline HotFfnVram predictorVram(GGMLType fc1, GGMLType fc2, int64_t nEmbd,
                                int64_t rank) {
  HotFfnVram v;
  v.perLayer =
      rowBytes(packedPredictorType(fc1, nEmbd), nEmbd) * uint64_t(rank) +
      sizeof(float) * uint64_t(rank);
  v.perNeuron = rowBytes(packedPredictorType(fc2, rank), rank) + sizeof(float);
  return v;
}

// One layer's KV cache for `nCtx` positions: K and V rows of `kvDim`
// (n_kv_head * head_dim) values, f16 as the CPU's cache (and llama.cpp's),
// so that the two devices attend alike.
inline uint64_t kvCacheVram(int64_t nCtx, int64_t kvDim) {
  return 2 * uint64_t(nCtx) * uint64_t(kvDim) * sizeof(uint16_t);
}

// The shapes behind what an executable allocates on the GPU beside the
// weights and KV caches (gpuWorkspaceVram).
struct GpuWorkspace {
  int64_t nEmbd = 0, nFF = 0, nVocab = 0;
  int64_t nHead = 0, qDim = 0, kvDim = 0, headDim = 0, nRot = 0;
  int64_t nLayer = 0, nCtx = 0;
  int64_t maxRank = 0;         // the largest GPU predictor's rank, or 0
  int64_t attentionLayers = 0; // layers whose attention is on the GPU
  bool head = false;           // the output head on the GPU
  bool resident = false;       // every step there (the residual stream too)
};

// The workspace's shapes by name: in pinfer-plan-memory's
// pinfer.memory.vram_workspace_shape (snake case) and in the generated
// program's p.vramBill.workspace (C++), so that the pass, the lowering and
// the host emitter carry the same fields (nCtx is the run's).
struct WorkspaceField {
  const char *ir, *cpp;
  int64_t GpuWorkspace::*member;
};
inline constexpr WorkspaceField kWorkspaceFields[] = {
    {"n_embd", "nEmbd", &GpuWorkspace::nEmbd},
    {"n_ff", "nFF", &GpuWorkspace::nFF},
    {"n_vocab", "nVocab", &GpuWorkspace::nVocab},
    {"n_head", "nHead", &GpuWorkspace::nHead},
    {"q_dim", "qDim", &GpuWorkspace::qDim},
    {"kv_dim", "kvDim", &GpuWorkspace::kvDim},
    {"head_dim", "headDim", &GpuWorkspace::headDim},
    {"n_rot", "nRot", &GpuWorkspace::nRot},
    {"n_layer", "nLayer", &GpuWorkspace::nLayer},
    {"max_rank", "maxRank", &GpuWorkspace::maxRank},
    {"attention_layers", "attentionLayers", &GpuWorkspace::attentionLayers}};
struct WorkspaceFlag {
  const char *ir, *cpp;
  bool GpuWorkspace::*member;
};
inline constexpr WorkspaceFlag kWorkspaceFlags[] = {
    {"head", "head", &GpuWorkspace::head},
    {"resident", "resident", &GpuWorkspace::resident}};

// What an executable allocates on the GPU beside the weights, the KV caches
// and the head's selection record: the hot halves' input, output and the
// down kernels' partial sums, for one token and a prompt chunk's
// (gpuattn::kGpuChunk); the predictors' scratch; the head's input and
// logits; the attention's staging, scores and partial results; a whole-GPU
// program's norms, token uploads and chunk buffers. An upper bound from the
// shapes of what Executor::openGpu and its helpers allocate (the hot
// neurons of a layer at most n_ff, so its down grid at most that of n_ff
// hot neurons), so that the bill the executable checks against free VRAM
// at its start is what it takes. CompileGpuTest checks every executable's peak
// device memory against its bill.
inline uint64_t gpuWorkspaceVram(const GpuWorkspace &w) {
  using namespace gpuattn;
  const uint64_t f = sizeof(float), u = sizeof(uint32_t), T = kGpuChunk;
  const uint64_t E = uint64_t(w.nEmbd), F = uint64_t(w.nFF);
  const unsigned tiles = downTiles(w.nEmbd);
  const uint64_t grid = uint64_t(tiles) * downSplits(unsigned(w.nFF), tiles);
  const uint64_t part = grid * kDownBlock * kDownCols;
  // x; y, two counts and h (Executor::kOutCounts); the partial sums: a
  // token's, then a chunk's.
  uint64_t bytes = (1 + T) * f * (E + (E + 2 + F) + part) + u * grid;
  if (w.maxRank)
    bytes += T * f * (E + uint64_t(w.maxRank)) + pickBytes(w.nFF, T);
  if (w.head)
    bytes += f * (2 * E + uint64_t(w.nVocab));
  // A token's attention scratch: input and RoPE tables, output, q, k, v,
  // the output projection's input and its 8-bit copy, scores, partial
  // results and their counters.
  const uint64_t attend =
      f * (3 * E + uint64_t(w.nRot) + 3 * uint64_t(w.qDim) +
           2 * uint64_t(w.kvDim) + uint64_t(w.nHead) * uint64_t(w.nCtx) +
           attendPartFloats(int(w.nHead), int(w.nCtx), int(w.headDim))) +
      u * uint64_t(w.nHead) + sizeof(int32_t);
  if (w.attentionLayers)
    // Per layer: q, k and v biases and q/k norms (a head's or all heads')
    // where the model has them.
    bytes += attend + uint64_t(w.attentionLayers) * f *
                          (2 * uint64_t(w.qDim) + 3 * uint64_t(w.kvDim));
  if (w.resident)
    // Four norms a layer and the output norm; a token's and a chunk's
    // uploads (inputs, RoPE tables, positions, ids, per-layer counters);
    // the chunk's attention scratch.
    bytes += f * E * (4 * uint64_t(w.nLayer) + 1) +
             (1 + T) * (f * (E + 2 * uint64_t(w.nRot)) + 2 * sizeof(int32_t) +
                        2 * u * uint64_t(w.nLayer)) +
             T * attend;
  return bytes;
}

// Beside an output head on the GPU: the record its selection kernels
// choose the best logits in (gpuattn::HeadSel, about 150 KiB).
inline uint64_t headSelectVram() { return sizeof(gpuattn::HeadSel); }

// An executable holds its device memory as one allocation of its bill
// (CudaDriver::reserve), carved into buffers there. One allocation because
// the driver rounds each up to its page size, undocumented for cuMemAlloc
// and 2 MiB in practice: the hundreds of buffers a 7B program uploads
// (weights, caches, scratch) would each lose part of a page, where one
// arena loses less than one page. Each buffer starts kDeviceAlign-aligned
// and is followed by a kDeviceGuard gap, so that a kernel that runs past
// its buffer's end lands in no other buffer.
constexpr uint64_t kDeviceAlign = 256;
constexpr uint64_t kDeviceGuard = 256;
// What a guard holds under --gpu-sync-debug, which checks after each
// launch that the guards of the buffers the kernel was given still do.
constexpr uint8_t kDeviceGuardByte = 0xA5;
constexpr uint64_t kDevicePage = uint64_t(2) << 20;

// The most buffers a program carves: per layer its hot FFN rows (gate, up,
// down, the split layout's scales and ids: 5), its predictor (fc1, fc2 and
// their biases: 4), its attention (4 matrices, up to 5 biases and norms,
// K and V caches: 11) and a whole-GPU program's 4 norms (24, bounded by
// 32); beside the layers, under 48 (activations, chunk buffers, the head,
// attention and predictor scratch, a whole-GPU program's uploads), bounded
// by 64. Executor::openGpu and its helpers are what this counts;
// CompileGpuTest checks an executable's count against it.
constexpr uint64_t kBuffersPerLayer = 32, kBuffersBeside = 64;
inline uint64_t maxDeviceBuffers(int64_t nLayer) {
  return kBuffersPerLayer * uint64_t(std::max<int64_t>(nLayer, 0)) +
         kBuffersBeside;
}
// The room a program of `nLayer` layers keeps for its buffers' alignment
// and guards.
inline uint64_t deviceBuffersVram(int64_t nLayer) {
  return (kDeviceAlign + kDeviceGuard) * maxDeviceBuffers(nLayer);
}

// A program's VRAM bill as a function of the context it runs at (-c):
// its KV caches and attention scratch grow with it, the rest not.
// pinfer-plan-memory fills it from the IR, the executable evaluates it at
// its -c, so that a context longer than the compile's is billed (and
// checked against free VRAM) at its size.
struct VramBill {
  // Weights, the IR's arena, the head's selection record: the bytes that
  // do not depend on the context.
  uint64_t fixed = 0;
  // The GPU layers' KV caches, per position.
  uint64_t kvPerPosition = 0;
  // The workspace's shapes (nCtx is set by at()); meaningful where gpu.
  GpuWorkspace workspace;
  bool gpu = false; // some op runs on the GPU

  // The bill at `nCtx` positions: the device allocation the executable
  // makes, whole pages, with every buffer's alignment and guard.
  uint64_t at(int64_t nCtx) const {
    if (!gpu)
      return 0;
    GpuWorkspace ws = workspace;
    ws.nCtx = nCtx;
    const uint64_t bytes = fixed + kvPerPosition * uint64_t(nCtx) +
                           gpuWorkspaceVram(ws) + deviceBuffersVram(ws.nLayer);
    return (bytes + kDevicePage - 1) / kDevicePage * kDevicePage;
  }
};

} // namespace pinfer
