//===- PInferOps.h - pinfer types, attributes and ops -----------*- C++ -*-===//
#pragma once

#include "dialects/PInfer/IR/PInferDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/PInfer/IR/PInferEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/PInfer/IR/PInferAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/PInfer/IR/PInferTypes.h.inc"

#define GET_OP_CLASSES
#include "dialects/PInfer/IR/PInferOps.h.inc"
