//===- Pipelines.cpp - the pinfer-place and pinfer-lower pipelines --------===//
//
// Defined once here and registered from compiler/InitAll.h, so pinfer-opt
// and pinferc run the same pass sequences.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

void pinfer::buildPlacePipeline(OpPassManager &pm,
                                const PlacePipelineOptions &options) {
  pm.addPass(createApplyPlacementPass());
  pm.addPass(createSplitFFNPass());
  InsertPredictorsPassOptions predictors;
  predictors.mode = options.sparsity;
  predictors.threshold = options.threshold;
  pm.addPass(createInsertPredictorsPass(predictors));
  pm.addPass(createPermuteNeuronsPass());
}

void pinfer::buildLowerPipeline(OpPassManager &pm,
                                const LowerPipelineOptions &options) {
  pm.addPass(createSchedulePass());
  PlanMemoryPassOptions memory;
  memory.vramBudget = options.vramBudget;
  memory.contextLength = options.contextLength;
  pm.addPass(createPlanMemoryPass(memory));
  pm.addPass(createVerifyLoweringPass());
}

void pinfer::registerPipelines() {
  PassPipelineRegistration<PlacePipelineOptions>(
      "pinfer-place",
      "Apply the placement plan: split FFNs, add predictors, permute neurons",
      buildPlacePipeline);
  PassPipelineRegistration<LowerPipelineOptions>(
      "pinfer-lower",
      "Schedule CPU/GPU overlap, plan memory against the VRAM budget and "
      "verify that the runtime runs every op",
      buildLowerPipeline);
}
