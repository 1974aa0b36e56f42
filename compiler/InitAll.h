//===- InitAll.h - the one registration point ------------------*- C++ -*-===//
//
// Both pinferc and pinfer-opt register dialects and passes through these
// functions, so the opt tool runs exactly the compiler's pipelines.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/PInfer/IR/PInferDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace pinfer {

inline void registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<PInferDialect, mlir::func::FuncDialect>();
}

inline void registerAllPasses() {
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
}

} // namespace pinfer
