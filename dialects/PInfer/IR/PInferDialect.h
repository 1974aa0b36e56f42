//===- PInferDialect.h - pinfer dialect declaration -------------*- C++ -*-===//
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Dialect.h"

#include "dialects/PInfer/IR/PInferDialect.h.inc"
