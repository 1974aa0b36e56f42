//===- Import.h - ModelSpec to the dense pinfer module ----------*- C++ -*-===//
//
// Builds the dense model IR (func.func @forward(%token: i32, %pos: i32) ->
// tensor<n_vocab x f32>) from a ModelSpec, and attaches a placement plan to
// it for pinfer-apply-placement. No exceptions cross these functions.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ModelSpec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>

namespace pinfer {

struct Plan;

/// Loads the dialects the import needs into `ctx` and builds the module.
/// Returns null with one line in `error` when the spec cannot be expressed
/// (a weight type the dialect lacks) or the result does not verify.
mlir::OwningOpRef<mlir::ModuleOp>
importModel(mlir::MLIRContext &ctx, const ModelSpec &spec, std::string &error);

/// Writes `plan` as the module attribute `pinfer.plan` (per layer the hot
/// neuron count, the order hottest first, where attention runs; where the
/// output head runs). Fails when the plan does not match the module's
/// layer count.
bool attachPlan(mlir::ModuleOp module, const Plan &plan, std::string &error);

} // namespace pinfer
