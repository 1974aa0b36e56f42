//===- PInferOps.cpp - pinfer op verifiers --------------------------------===//
//
// Each verifier states the shape invariant that the code generators rely on,
// so a malformed module is rejected here rather than miscompiled later.
//
//===----------------------------------------------------------------------===//

#include "dialects/PInfer/IR/PInferOps.h"

using namespace mlir;
using namespace pinfer;

static int64_t vectorLength(Value v) {
  return cast<RankedTensorType>(v.getType()).getDimSize(0);
}

LogicalResult WeightOp::verify() {
  if (getName().empty())
    return emitOpError("requires a non-empty tensor name");
  return success();
}

LogicalResult RmsNormOp::verify() {
  auto w = cast<WeightType>(getWeight().getType());
  if (w.getShape().size() != 1 || w.getShape()[0] != vectorLength(getInput()))
    return emitOpError("weight must be a vector of length ")
           << vectorLength(getInput()) << " to match the input";
  if (w.getDtype() != DType::f32)
    return emitOpError("norm weight must be stored as f32");
  if (!(getEpsilon().convertToFloat() > 0.0f))
    return emitOpError("epsilon must be positive");
  return success();
}

int64_t FFNOp::getNumNeurons() {
  return cast<WeightType>(getGate().getType()).getNumRows();
}

LogicalResult FFNOp::verify() {
  int64_t nEmbd = vectorLength(getInput());
  auto gate = cast<WeightType>(getGate().getType());
  auto up = cast<WeightType>(getUp().getType());
  auto down = cast<WeightType>(getDown().getType());
  if (gate.getShape().size() != 2 || gate.getRowLength() != nEmbd)
    return emitOpError("gate must be [n_embd, n_ff] with n_embd = ") << nEmbd;
  int64_t nFF = gate.getNumRows();
  if (up.getShape() != gate.getShape())
    return emitOpError("up must have the shape of gate [")
           << nEmbd << ", " << nFF << "]";
  if (down.getShape().size() != 2 || down.getRowLength() != nFF ||
      down.getNumRows() != nEmbd)
    return emitOpError("down must be [n_ff, n_embd] = [")
           << nFF << ", " << nEmbd << "]";
  return success();
}

#define GET_OP_CLASSES
#include "dialects/PInfer/IR/PInferOps.cpp.inc"
