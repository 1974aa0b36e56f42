//===- Passes.h - pinfer passes and pipelines -------------------*- C++ -*-===//
//
// Pass constructors (generated from Passes.td) and the two pipelines that
// pinferc runs and pinfer-opt exposes: pinfer-place and pinfer-lower.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/PInfer/IR/PInferOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace pinfer {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// Options of pinfer-place: apply-placement, split-ffn, insert-predictors,
/// permute-neurons.
struct PlacePipelineOptions
    : public mlir::PassPipelineOptions<PlacePipelineOptions> {
  Option<std::string> sparsity{
      *this, "sparsity", llvm::cl::desc("dense, exact, predicted or threshold"),
      llvm::cl::init("exact")};
  Option<float> threshold{*this, "threshold",
                          llvm::cl::desc("predictor firing threshold"),
                          llvm::cl::init(0.0f)};
};

/// Options of pinfer-lower: schedule, plan-memory.
struct LowerPipelineOptions
    : public mlir::PassPipelineOptions<LowerPipelineOptions> {
  Option<int64_t> vramBudget{*this, "vram-budget",
                             llvm::cl::desc("VRAM budget in bytes (0: none)"),
                             llvm::cl::init(0)};
  Option<int64_t> contextLength{*this, "context-length",
                                llvm::cl::desc("KV cache tokens"),
                                llvm::cl::init(512)};
};

void buildPlacePipeline(mlir::OpPassManager &pm,
                        const PlacePipelineOptions &options);
void buildLowerPipeline(mlir::OpPassManager &pm,
                        const LowerPipelineOptions &options);

/// Registers pinfer-place and pinfer-lower with the global pipeline
/// registry (called once, from compiler/InitAll.h).
void registerPipelines();

} // namespace pinfer
