// The program to emit, as a plain description: the model's shape and, per
// layer, the FFN weight types, which neurons run on the GPU (hot) and which
// on the CPU (cold) in packed order, the sparsity mode, the predictor shape
// and the attention device. The emitters (CUDA, host C++, packed weights)
// read only this. Today programFromPlan builds it from a placement plan;
// later the scheduled IR will.
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/model.h"
#include "runtime/program.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

struct Plan;

struct LayerDesc {
  GGMLType gateType = GGMLType::F32;
  GGMLType upType = GGMLType::F32;
  GGMLType downType = GGMLType::F32;  // of the source {n_ff, n_embd} matrix
  GGMLType downTType = GGMLType::F32; // of the packed transposed down
  std::vector<uint32_t> hot;          // neuron ids on the GPU, hottest first
  std::vector<uint32_t> cold;         // neuron ids on the CPU, hottest first
  uint32_t predictorRank = 0;         // 0: no predictor
  bool attentionOnGPU = false;
  // Threshold mode: skip neurons with |act(gate x)| <= this (calibrated).
  float actThreshold = 0.f;
};

struct ProgramDesc {
  ModelParams params;
  std::string modelName;
  std::string target; // target name
  std::string smArch; // "sm_89"; empty: no GPU part
  SparsityMode mode = SparsityMode::Exact;
  float predictorThreshold = 0.f; // powerinfer.sparse_threshold
  uint64_t vramBillBytes = 0;
  std::vector<LayerDesc> layers; // [n_layer]

  bool hasGpuPart() const;
  // The packed row order of a layer: hot ids then cold ids.
  std::vector<uint32_t> packedOrder(int layer) const;
};

// Builds the description of `model` placed by `plan` (hot neurons: the
// first nHot of each layer's order; the rest cold in the same order). A plan
// whose layer count, n_ff or orders do not fit the model, or predicted mode
// for a model without predictors (blk.N.fc1/fc2), gives false and one line
// in `error`.
bool programFromPlan(const Model &model, const Plan &plan, SparsityMode mode,
                     const std::string &smArch, ProgramDesc &out,
                     std::string &error);

// The CPU-only description: every neuron cold, in id order. Same errors.
bool programAllCold(const Model &model, SparsityMode mode, ProgramDesc &out,
                    std::string &error);

} // namespace pinfer
