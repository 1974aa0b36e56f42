//===- Pipeline.cpp - run the registered pinfer pipelines -----------------===//

#include "compiler/Pipeline.h"

#include "compiler/Import.h"
#include "compiler/InitAll.h"
#include "passes/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_os_ostream.h"

#include <ostream>

using namespace mlir;

namespace pinfer {

namespace {

// Runs `pm` on `module`; on failure `error` holds the first error
// diagnostic, with its location, on one line (or `what` failed).
bool runPassManager(PassManager &pm, ModuleOp module, const std::string &what,
                    std::string &error) {
  MLIRContext *ctx = module.getContext();
  std::string diag;
  ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &d) {
    if (d.getSeverity() != DiagnosticSeverity::Error || !diag.empty())
      return success();
    llvm::raw_string_ostream os(diag);
    if (!isa<UnknownLoc>(d.getLocation()))
      os << d.getLocation() << ": ";
    os << d.str();
    return success();
  });
  if (failed(pm.run(module))) {
    error = diag.empty() ? what + " failed" : diag;
    return false;
  }
  return true;
}

} // namespace

bool runPipeline(ModuleOp module, const std::string &pipeline,
                 std::string &error) {
  registerAllPasses();
  PassManager pm(module.getContext(), ModuleOp::getOperationName());
  std::string parseError;
  llvm::raw_string_ostream parseOs(parseError);
  if (failed(parsePassPipeline(pipeline, pm, parseOs))) {
    error = "pipeline '" + pipeline + "': " + parseOs.str();
    while (!error.empty() && error.back() == '\n')
      error.pop_back();
    return false;
  }
  return runPassManager(pm, module, "pipeline '" + pipeline + "'", error);
}

bool runStages(ModuleOp module, EmitStage to, const PipelineOptions &options,
               std::string &error) {
  if (to == EmitStage::Dense)
    return true;
  if (!options.actThresholds.empty())
    module->setAttr(
        "pinfer.act_thresholds",
        DenseF32ArrayAttr::get(module.getContext(), options.actThresholds));
  // Built with the C++ builders, so that every option reaches the passes
  // as it is (a float printed into a textual pipeline lost digits).
  PassManager pm(module.getContext(), ModuleOp::getOperationName());
  PlacePipelineOptions place;
  place.sparsity = options.sparsity;
  place.threshold = options.threshold;
  buildPlacePipeline(pm, place);
  if (to == EmitStage::Scheduled) {
    LowerPipelineOptions lower;
    lower.vramBudget = options.vramBudget;
    lower.contextLength = options.contextLength;
    buildLowerPipeline(pm, lower);
  }
  return runPassManager(pm, module,
                        to == EmitStage::Scheduled ? "pinfer-place,pinfer-lower"
                                                   : "pinfer-place",
                        error);
}

bool emitMLIR(const ModelSpec &spec, const Plan *plan, EmitStage stage,
              std::ostream &os, std::string &error,
              const PipelineOptions &options) {
  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext ctx(registry);
  OwningOpRef<ModuleOp> module = importModel(ctx, spec, error);
  if (!module)
    return false;
  if (stage != EmitStage::Dense && !plan) {
    error = "a placement plan is needed to emit placed or scheduled IR";
    return false;
  }
  // Dense IR keeps the plan as an attribute so that pinfer-opt can replay
  // the later stages from it.
  if (plan && (!attachPlan(*module, *plan, error) ||
               !runStages(*module, stage, options, error)))
    return false;
  llvm::raw_os_ostream out(os);
  module->print(out);
  return true;
}

} // namespace pinfer
