// From a model, a trace and a target to a PlacementProblem: the neuron order
// per layer, granules and their sizes, the VRAM bill of whole tensors, and the
// per-layer "zero or at least N granules" rule derived from launch and
// synchronisation costs against the bytes a GPU slice saves the CPU.
#pragma once

#include "compiler/Targets.h"
#include "compiler/placement/PlacementProblem.h"
#include "runtime/ggml_types.h"
#include "runtime/vram_bill.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;
struct Trace;

// What placement needs to know about a model: sizes, not weights.
struct ModelShape {
  uint32_t nLayer = 0;
  uint32_t nFF = 0;
  uint32_t nEmbd = 0;
  uint32_t nKVDim = 0; // n_kv_head * head_dim
  uint32_t nVocab = 0;
  uint32_t nHead = 0, qDim = 0;       // query heads, n_head * head_dim
  uint32_t maxRank = 0;               // the largest stored predictor's rank
  GGMLType ffnType = GGMLType::F16;   // stored type of the FFN weights
  uint64_t neuronBytes = 0;           // gate+up+down rows of one neuron
  uint64_t gateBytes = 0;             // of which the gate row
  // VRAM of one hot neuron and of a layer with any (runtime/vram_bill.h,
  // the bill pinfer-plan-memory makes too): its rows as packed, plus for
  // Q8_0/Q4_0 down projections its id and the layer's block scales, kept
  // apart from the neurons' rows (runtime/ggml_types.h, DownLayout).
  uint64_t hotNeuronBytes = 0;
  uint64_t downScaleBytes = 0;
  // Per layer, its split down layout's tables where read from a file
  // (layers' down types may differ: Q4_K_M's Q4_K and Q6_K); empty: every
  // layer's are downScaleBytes.
  std::vector<uint64_t> downTableBytes;
  // Per layer, the VRAM of a GPU half's own predictor in predicted mode
  // (runtime/vram_bill.h, predictorVram: fc1 per layer, an fc2 row per hot
  // neuron); empty for a model without predictors.
  std::vector<HotFfnVram> predictorVram;
  // Per layer, what its FFN's bill shrinks by when a dense program holds
  // all its neurons on the GPU: the source's down matrix instead of the
  // neurons' split down rows and their tables (runtime/vram_bill.h,
  // denseGpuKeepsSourceDown), and so what a token reads; 0 for Q8_0/Q4_0
  // (the same bytes), empty for f32/f16/bf16. The bill also drops the
  // neuron ids.
  std::vector<uint64_t> sourceDownSaving;
  std::vector<uint64_t> attentionBytes; // [n_layer] q,k,v,o + both norms
  uint64_t outputBytes = 0;    // output head (the embedding when tied)
  uint64_t embeddingBytes = 0; // token embedding: always on the CPU
};

// Reads the shape from a LLaMA-family GGUF's tensor table (token_embd,
// blk.N.attn_*, blk.N.ffn_{gate,up,down}, blk.N.fc1/fc2, output). With
// `predictors` (a predictor file, compiler/predictor/PredictorFile.h), its
// fc1/fc2 stand for the model's own: the shape of the model with them
// attached, without writing that copy.
bool modelShapeFromGGUF(const GGUFFile &file, ModelShape &out,
                        std::string &error,
                        const GGUFFile *predictors = nullptr);

// A LLaMA-like shape for synthetic instances and tests: q and o are
// n_embd x n_embd, k and v n_embd x nKVDim, all in `type`.
ModelShape syntheticShape(uint32_t nLayer, uint32_t nFF, uint32_t nEmbd,
                          uint32_t nKVDim, uint32_t nVocab, GGMLType type);

enum class AttentionPolicy {
  Optional, // each layer's attention (+ its KV cache) competes for VRAM
  GPU,      // all attention and the whole KV cache are mandatory on the GPU
  CPU,      // attention stays on the CPU
};

// Which of a neuron's rows a token reads, by sparsity mode: what moving the
// neuron to the GPU takes off the CPU's bytes per token.
enum class NeuronReads {
  WhenFiring, // predicted: all three rows, only when (predicted) firing
  GateAlways, // exact, threshold: the gate row always, up and down on firing
  Always,     // dense: all three rows every token
};

struct PlacementOptions {
  uint64_t vramBudget = 0;    // 0: the target's VRAM
  uint32_t nCtx = 4096;       // KV cache length (-c)
  uint32_t granuleSize = 0;   // 0: a multiple of 32 giving <= 256 per layer
  NeuronReads reads = NeuronReads::WhenFiring;
  int minGranules = -1;       // -1: from the cost model
  AttentionPolicy attention = AttentionPolicy::Optional;
  bool outputMayUseGPU = true; // the output head competes for VRAM
  uint32_t maxGpuLayers = 0;  // 0: no limit (a constraint only Z3 handles)
  bool useZ3 = true;
  // Run Z3 even when the DP has proven its answer optimal and no constraint
  // beyond the separable core exists (it can then only confirm it).
  bool z3Always = false;
  // Assert "objective >= the DP's value" in Z3. Makes Z3 a prover (better
  // or nothing), but measured to stop it finding anything on big instances,
  // so by default the DP's answer is only the fallback.
  bool z3SeedBound = false;
  double z3Seconds = 10;      // hard wall-clock limit of the Z3 child
};

// Per-token costs of the target in seconds and bytes per second.
struct CostModel {
  double cpuBytesPerSecond = 0;
  double gpuBytesPerSecond = 0;
  double layerOverheadSeconds = 0; // launches + sync + activation transfers
  // Seconds one byte read per token costs more on the CPU than on the GPU.
  double savedPerByte() const {
    return gpuBytesPerSecond > 0 ? 1.0 / cpuBytesPerSecond -
                                       1.0 / gpuBytesPerSecond
                                 : 0.0;
  }
};

CostModel costModelFor(const Target &target, const ModelShape &shape);

// The problem plus what is needed to turn its answer into a Plan.
struct PlacementInput {
  PlacementProblem problem;
  uint32_t granuleSize = 0;
  CostModel cost;
  std::vector<std::vector<uint32_t>> order;  // [n_layer] neurons, hottest first
  std::vector<std::vector<double>> freq;     // [n_layer] sorted frequencies
  std::string outputName;                    // "output head" when a global
  // Weight bytes read per token by parts that are no decision of the
  // solver: attention under AttentionPolicy::GPU or CPU, the output head
  // when it may not use the GPU.
  double fixedGpuBytesPerToken = 0;
  double fixedCpuBytesPerToken = 0;
};

// The granule size used when options.granuleSize is 0.
uint32_t autoGranuleSize(uint32_t nFF);

// Builds the problem. Fails with one line when the trace does not match the
// shape or the mandatory parts alone exceed the budget ("VRAM bill of
// mandatory parts is 7.20 GiB (KV cache 4.00 GiB at -c 8192, ...); budget is
// 6.00 GiB").
bool buildPlacementInput(const Trace &trace, const ModelShape &shape,
                         const Target &target, const PlacementOptions &opts,
                         PlacementInput &out, std::string &error);

} // namespace pinfer
