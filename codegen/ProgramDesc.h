// The program to emit, as a plain description: the model's shape and, per
// layer, the FFN weight types, which neurons run on the GPU (hot) and which
// on the CPU (cold) in packed order, the sparsity mode, the predictor shape,
// the attention device and the steps the executable runs, in order. The
// emitters (CUDA, host C++, packed weights) read only this. The compiler
// builds it from the scheduled IR (compiler/LowerToProgram.h).
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/model.h"
#include "runtime/program.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

// A layer's attention as the GPU kernels compute it (runtime/
// gpu_attention.h): the projections' types and the extras the layer has.
struct AttentionDesc {
  GGMLType wq = GGMLType::F32, wk = GGMLType::F32, wv = GGMLType::F32,
           wo = GGMLType::F32;
  bool bias = false;   // Q, K and V biases (Qwen2)
  bool qkNorm = false; // per-head query and key norms (Gemma 3)
  int window = 0;      // positions a token sees on a sliding layer; 0: all
};

struct LayerDesc {
  GGMLType gateType = GGMLType::F32;
  GGMLType upType = GGMLType::F32;
  GGMLType downType = GGMLType::F32;  // of the source {n_ff, n_embd} matrix
  GGMLType downTType = GGMLType::F32; // of the packed transposed down
  // The packed file keeps the source's ffn_down instead of a transposed
  // down (runtime/ggml_types.h, DownLayout::Source); `cold` is then in
  // source order and `hot` empty.
  bool sourceDown = false;
  std::vector<uint32_t> hot;  // neuron ids on the GPU, in id order
  std::vector<uint32_t> cold; // neuron ids on the CPU, hottest first
  uint32_t predictorRank = 0; // 0: no predictor
  // The predictor's fc1 and fc2 as the packed weights store them
  // (packedPredictorType); a hot half with a predict@gpu step runs them on
  // the GPU.
  GGMLType fc1Type = GGMLType::F32, fc2Type = GGMLType::F32;
  bool attentionOnGPU = false;
  AttentionDesc attention; // set where attentionOnGPU
  // Threshold mode: skip neurons with |act(gate x)| <= this (calibrated).
  float actThreshold = 0.f;
  // What the executable runs for the layer, in order: the scheduled IR's
  // ops (runtime/program.h, ProgramStep).
  std::vector<ProgramStep> steps;
};

struct ProgramDesc {
  ModelParams params;
  std::string modelName;
  std::string target; // target name
  std::string smArch; // "sm_89"; empty: no GPU part
  SparsityMode mode = SparsityMode::Exact;
  float predictorThreshold = 0.f; // powerinfer.sparse_threshold
  uint64_t vramBillBytes = 0;     // at the compile's context
  VramBill vramBill;              // at any context (the executable's -c)
  // The output head on the GPU (runtime/gpu_attention.h, kHeadKernel):
  // its matrix's type (token_embd's where the output is tied).
  bool headOnGPU = false;
  GGMLType headType = GGMLType::F32;
  // A token's embedding row gathered on the GPU from the head's matrix
  // (kEmbedGather): the output is tied to token_embd, the head is on the
  // GPU and so is the residual stream.
  bool embedOnGPU = false;
  std::vector<LayerDesc> layers; // [n_layer]

  bool hasGpuPart() const;
  // The packed row order of a layer: hot ids then cold ids.
  std::vector<uint32_t> packedOrder(int layer) const;
};

} // namespace pinfer
