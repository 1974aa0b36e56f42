//===- InitAll.h - the one registration point ------------------*- C++ -*-===//
//
// Both pinferc and pinfer-opt register dialects and passes through these
// functions, so the opt tool runs exactly the compiler's pipelines.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/PInfer/IR/PInferDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace pinfer {

inline void registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<PInferDialect, mlir::func::FuncDialect>();
}

/// Registers with MLIR's global registries; safe to call more than once
/// (pipelines may only be registered once per process).
inline void registerAllPasses() {
  static bool done = [] {
    mlir::registerCanonicalizerPass();
    mlir::registerCSEPass();
    registerPInferPasses();
    registerPipelines();
    return true;
  }();
  (void)done;
}

} // namespace pinfer
