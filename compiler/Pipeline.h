//===- Pipeline.h - run the registered pinfer pipelines ---------*- C++ -*-===//
//
// The driver-side entry points to the pass pipelines registered in
// compiler/InitAll.h: run a textual pipeline on a module, run the stages up
// to a point, or go from a ModelSpec (and plan) to printed IR in one call.
// Errors come back as one line in a string; nothing is thrown.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ModelSpec.h"

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace mlir {
class DialectRegistry;
}

namespace pinfer {

struct Plan;

/// How far to lower: the dense import, after pinfer-place, after
/// pinfer-lower (pinferc's --emit=mlir|mlir-placed|mlir-scheduled).
enum class EmitStage { Dense, Placed, Scheduled };

struct PipelineOptions {
  std::string sparsity = "exact"; // dense | exact | predicted | threshold
  float threshold = 0.0f;         // predictor firing threshold
  // sparsity = threshold: |activation| threshold per layer, attached to the
  // module as pinfer.act_thresholds before the passes run.
  std::vector<float> actThresholds;
  int64_t vramBudget = 0;         // bytes; 0: no limit
  int64_t contextLength = 512;    // KV cache tokens
};

/// Runs a textual pass pipeline (anything pinfer-opt accepts, without the
/// builtin.module wrapper) on `module`. On failure `error` holds the first
/// diagnostic, with its location, on one line.
bool runPipeline(mlir::ModuleOp module, const std::string &pipeline,
                 std::string &error);

/// Runs pinfer-place (needs pinfer.plan on the module, see attachPlan) and,
/// for Scheduled, pinfer-lower, built with passes/Pipelines.cpp's builders
/// (the same pass sequences pinfer-opt registers), options passed as they
/// are.
bool runStages(mlir::ModuleOp module, EmitStage to,
               const PipelineOptions &options, std::string &error);

/// Imports `spec`, attaches `plan` (required past Dense), runs the stages
/// and prints the module to `os`. Dense output with a plan keeps it as the
/// `pinfer.plan` attribute, so `pinfer-opt -pinfer-place -pinfer-lower`
/// on it reproduces the Scheduled output.
bool emitMLIR(const ModelSpec &spec, const Plan *plan, EmitStage stage,
              std::ostream &os, std::string &error,
              const PipelineOptions &options = PipelineOptions());

} // namespace pinfer
