//===- PInferOps.h - pinfer types, attributes and ops -----------*- C++ -*-===//
//
// The pinfer types, attributes and ops, plus the few helpers that both the
// verifiers and the passes need (neuron tables, where a value lives, stored
// sizes of weights).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/PInfer/IR/PInferDialect.h"
#include "runtime/ggml_types.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <optional>

#include "dialects/PInfer/IR/PInferEnums.h.inc"

namespace pinfer {
/// A weight's dtype in the assembly: the name of a computable GGMLType
/// (runtime/type_table.h), e.g. `q4_0`.
mlir::FailureOr<GGMLType> parseWeightDType(mlir::AsmParser &parser);
void printWeightDType(mlir::AsmPrinter &printer, GGMLType dtype);
} // namespace pinfer

#define GET_ATTRDEF_CLASSES
#include "dialects/PInfer/IR/PInferAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/PInfer/IR/PInferTypes.h.inc"

namespace pinfer {

/// True for the two spellings of a neuron table: `array<i32: ...>` and a
/// 1-D i32 `dense_resource`.
bool isNeuronTable(mlir::Attribute attr);

/// The indices of a neuron table, or nullopt when it is a resource whose
/// data is not loaded (e.g. the resource section was cut from the file).
std::optional<llvm::ArrayRef<int32_t>> getNeuronTable(mlir::Attribute attr);

/// Builds a neuron table: an inline array for up to `kInlineTableLimit`
/// entries (readable in tests), otherwise a resource blob named after
/// `blobName` so that large models print and parse quickly.
constexpr size_t kInlineTableLimit = 256;
mlir::Attribute makeNeuronTable(mlir::MLIRContext *ctx,
                                llvm::StringRef blobName,
                                llvm::ArrayRef<int32_t> indices);

/// Checks that `table` holds `count` distinct indices in [0, limit). Returns
/// an empty string when it does, otherwise what is wrong.
std::string checkNeuronIndices(llvm::ArrayRef<int32_t> table, int64_t limit);

/// Bytes of one stored row of `n` elements of `dtype` (whole blocks for the
/// quantised types).
int64_t storedRowBytes(GGMLType dtype, int64_t n);
/// Bytes of a whole stored weight.
int64_t storedBytes(WeightType type);

/// Where a value lives: the `to` of a transfer, the `device` of the op
/// that made it, the CPU otherwise (block arguments, host-side ops).
Device getValueDevice(mlir::Value value);

} // namespace pinfer

#define GET_OP_CLASSES
#include "dialects/PInfer/IR/PInferOps.h.inc"
