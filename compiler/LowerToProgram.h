//===- LowerToProgram.h - scheduled pinfer IR to a ProgramDesc --*- C++ -*-===//
//
// The last step of the middle end: the scheduled, memory-planned module is
// read back into the plain program description the emitters consume
// (codegen/ProgramDesc.h), so that what is generated is what the passes
// decided. Per layer it reads the ffn_part halves (device, owned neurons as
// tables or as ranges of the weights' neuron_order), the predictors (rank,
// threshold), where attention runs, the sparsity mode and the VRAM bill of
// pinfer-plan-memory, and checks that every neuron of every layer is owned
// exactly once. Errors are one line naming the op and layer; nothing throws.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "codegen/ProgramDesc.h"
#include "compiler/ModelSpec.h"
#include "compiler/Pipeline.h"

#include "mlir/IR/BuiltinOps.h"

#include <iosfwd>
#include <string>

namespace pinfer {

class Model;
struct Plan;

/// Reads `scheduled` (the output of pinfer-place and pinfer-lower) into
/// `out`. The hyperparameters come from `spec`; the FFN weight types are
/// read from the IR and checked against the spec's tensors. `smArch` empty
/// means the target has no GPU, and then a GPU half or GPU attention in the
/// IR is an error. Predicted sparsity needs learned (fc1/fc2) predictors:
/// the description cannot express the gate-magnitude rule.
bool programFromModule(mlir::ModuleOp scheduled, const ModelSpec &spec,
                       const std::string &modelName, const std::string &target,
                       const std::string &smArch, ProgramDesc &out,
                       std::string &error);

/// The same for a loaded model: params and general.name from the model.
bool programFromModule(mlir::ModuleOp scheduled, const Model &model,
                       const std::string &target, const std::string &smArch,
                       ProgramDesc &out, std::string &error);

/// The spec of a loaded model (its hyperparameters as loaded) and its
/// general.name (empty when absent).
bool modelSpecOf(const Model &model, ModelSpec &spec, std::string &name,
                 std::string &error);

/// Import → attachPlan → pinfer-place and pinfer-lower → programFromModule
/// in one call; with `printScheduled`, the scheduled module is printed there
/// first (what --emit=mlir-scheduled shows is the module lowered here). `mode` overrides options.sparsity; the predictor threshold,
/// VRAM budget and context length come from `options`. Without a GPU
/// (`smArch` empty) the plan is taken as all cold with CPU attention and
/// head, as programFromPlan does. A pass failure (e.g. the VRAM bill over
/// options.vramBudget) is returned as its diagnostic line.
bool compileToProgram(const ModelSpec &spec, const std::string &modelName,
                      const Plan &plan, SparsityMode mode,
                      const std::string &target, const std::string &smArch,
                      const PipelineOptions &options, ProgramDesc &out,
                      std::string &error,
                      std::ostream *printScheduled = nullptr);

bool compileToProgram(const Model &model, const Plan &plan, SparsityMode mode,
                      const std::string &target, const std::string &smArch,
                      const PipelineOptions &options, ProgramDesc &out,
                      std::string &error,
                      std::ostream *printScheduled = nullptr);

} // namespace pinfer
