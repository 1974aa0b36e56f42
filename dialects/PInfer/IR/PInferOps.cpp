//===- PInferOps.cpp - pinfer op verifiers and helpers --------------------===//
//
// Each verifier states the invariant that the code generators rely on, so a
// malformed module is rejected here rather than miscompiled later.
//
//===----------------------------------------------------------------------===//

#include "dialects/PInfer/IR/PInferOps.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <cmath>

using namespace mlir;
using namespace pinfer;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

bool pinfer::isNeuronTable(Attribute attr) {
  if (isa<DenseI32ArrayAttr>(attr))
    return true;
  auto res = dyn_cast<DenseI32ResourceElementsAttr>(attr);
  return res && res.getType().getRank() == 1;
}

std::optional<ArrayRef<int32_t>> pinfer::getNeuronTable(Attribute attr) {
  if (auto arr = dyn_cast<DenseI32ArrayAttr>(attr))
    return arr.asArrayRef();
  if (auto res = dyn_cast<DenseI32ResourceElementsAttr>(attr))
    return res.tryGetAsArrayRef();
  return std::nullopt;
}

Attribute pinfer::makeNeuronTable(MLIRContext *ctx, StringRef blobName,
                                  ArrayRef<int32_t> indices) {
  if (indices.size() <= kInlineTableLimit)
    return DenseI32ArrayAttr::get(ctx, indices);
  auto type = RankedTensorType::get({int64_t(indices.size())},
                                    IntegerType::get(ctx, 32));
  return DenseI32ResourceElementsAttr::get(
      type, blobName, HeapAsmResourceBlob::allocateAndCopyInferAlign(indices));
}

std::string pinfer::checkNeuronIndices(ArrayRef<int32_t> table, int64_t limit) {
  std::vector<bool> seen(limit, false);
  for (size_t i = 0; i < table.size(); ++i) {
    int32_t n = table[i];
    if (n < 0 || n >= limit)
      return "index " + std::to_string(n) + " at position " +
             std::to_string(i) + " is outside [0, " + std::to_string(limit) +
             ")";
    if (seen[n])
      return "index " + std::to_string(n) + " appears twice";
    seen[n] = true;
  }
  return "";
}

int64_t pinfer::storedRowBytes(GGMLType dtype, int64_t n) {
  // WeightType::verify admits computable types only, which have a row.
  const TypeTraits &t = *typeTraits(dtype);
  return (n + t.blockSize - 1) / t.blockSize * t.typeSize;
}

int64_t pinfer::storedBytes(WeightType type) {
  return storedRowBytes(type.getDtype(), type.getRowLength()) *
         type.getNumRows();
}

Device pinfer::getValueDevice(Value value) {
  Operation *def = value ? value.getDefiningOp() : nullptr;
  if (!def)
    return Device::cpu;
  if (auto transfer = dyn_cast<TransferOp>(def))
    return transfer.getTo();
  if (auto device = def->getAttrOfType<DeviceAttr>("device"))
    return device.getValue();
  return Device::cpu;
}

static int64_t vectorLength(Value v) {
  return cast<RankedTensorType>(v.getType()).getDimSize(0);
}

// Checks `w` is a 2-D weight [rowLength, rows]; used by several verifiers.
static LogicalResult expectMatrix(Operation *op, StringRef what, Value w,
                                  int64_t rowLength, int64_t rows) {
  auto type = cast<WeightType>(w.getType());
  if (type.getShape().size() != 2 || type.getRowLength() != rowLength ||
      type.getNumRows() != rows)
    return op->emitOpError()
           << what << " must be [" << rowLength << ", " << rows << "]";
  return success();
}

// The shape rules shared by ffn and ffn_part: gate and up [n_embd, n_ff],
// down [n_ff, n_embd].
static LogicalResult verifyFFNWeights(Operation *op, Value input, Value gateV,
                                      Value upV, Value downV) {
  int64_t nEmbd = vectorLength(input);
  auto gate = cast<WeightType>(gateV.getType());
  auto up = cast<WeightType>(upV.getType());
  auto down = cast<WeightType>(downV.getType());
  if (gate.getShape().size() != 2 || gate.getRowLength() != nEmbd)
    return op->emitOpError("gate must be [n_embd, n_ff] with n_embd = ")
           << nEmbd;
  int64_t nFF = gate.getNumRows();
  if (up.getShape() != gate.getShape())
    return op->emitOpError("up must have the shape of gate [")
           << nEmbd << ", " << nFF << "]";
  if (down.getShape().size() != 2 || down.getRowLength() != nFF ||
      down.getNumRows() != nEmbd)
    return op->emitOpError("down must be [n_ff, n_embd] = [")
           << nFF << ", " << nEmbd << "]";
  return success();
}

//===----------------------------------------------------------------------===//
// Ops
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  if (getName().empty())
    return emitOpError("requires a non-empty tensor name");
  if (auto order = getNeuronOrderAttr()) {
    auto type = cast<WeightType>(getResult().getType());
    auto table = getNeuronTable(order);
    if (!table)
      return emitOpError("neuron_order resource has no data");
    int64_t n = int64_t(table->size());
    if (type.getShape().size() != 2 ||
        (n != type.getNumRows() && n != type.getRowLength()))
      return emitOpError("neuron_order of ")
             << n << " entries matches no neuron axis of the weight";
    std::string why = checkNeuronIndices(*table, n);
    if (!why.empty())
      return emitOpError("neuron_order is not a permutation: ") << why;
  }
  return success();
}

LogicalResult RmsNormOp::verify() {
  auto w = cast<WeightType>(getWeight().getType());
  if (w.getShape().size() != 1 || w.getShape()[0] != vectorLength(getInput()))
    return emitOpError("weight must be a vector of length ")
           << vectorLength(getInput()) << " to match the input";
  if (w.getDtype() != GGMLType::F32)
    return emitOpError("norm weight must be stored as f32");
  if (!(getEpsilon().convertToFloat() > 0.0f))
    return emitOpError("epsilon must be positive");
  return success();
}

int64_t FFNOp::getNumNeurons() {
  return cast<WeightType>(getGate().getType()).getNumRows();
}

LogicalResult FFNOp::verify() {
  if (failed(
          verifyFFNWeights(*this, getInput(), getGate(), getUp(), getDown())))
    return failure();
  if (getLayerAttr().getInt() < 0)
    return emitOpError("layer must be non-negative");
  int64_t nFF = getNumNeurons();
  if (auto hotAttr = getHotCountAttr()) {
    int64_t hot = hotAttr.getInt();
    if (hot < 0 || hot > nFF)
      return emitOpError("hot_count ")
             << hot << " must be in [0, " << nFF << "]";
  }
  if (auto order = getNeuronOrderAttr()) {
    if (!getHotCount())
      return emitOpError("neuron_order needs hot_count");
    auto table = getNeuronTable(order);
    if (!table)
      return emitOpError("neuron_order resource has no data");
    if (int64_t(table->size()) != nFF)
      return emitOpError("neuron_order must list all ")
             << nFF << " neurons, has " << table->size();
    std::string why = checkNeuronIndices(*table, nFF);
    if (!why.empty())
      return emitOpError("neuron_order is not a permutation: ") << why;
  }
  return success();
}

LogicalResult EmbeddingOp::verify() {
  auto table = cast<WeightType>(getTable().getType());
  if (table.getShape().size() != 2)
    return emitOpError("table must be [n_embd, n_vocab]");
  if (table.getRowLength() != vectorLength(getResult()))
    return emitOpError("result length ")
           << vectorLength(getResult()) << " must equal the row length "
           << table.getRowLength() << " of the table";
  return success();
}

LogicalResult AttentionOp::verify() {
  int64_t nEmbd = vectorLength(getInput());
  int64_t nHead = getNHeadAttr().getInt(), nKV = getNKvHeadAttr().getInt(),
          headDim = getHeadDimAttr().getInt(),
          ropeDim = getRopeDimAttr().getInt();
  if (getLayerAttr().getInt() < 0)
    return emitOpError("layer must be non-negative");
  if (nHead <= 0 || nKV <= 0 || headDim <= 0)
    return emitOpError("n_head, n_kv_head and head_dim must be positive");
  if (nHead % nKV != 0)
    return emitOpError("n_head ")
           << nHead << " must be a multiple of n_kv_head " << nKV;
  if (ropeDim <= 0 || ropeDim > headDim || ropeDim % 2 != 0)
    return emitOpError("rope_dim ")
           << ropeDim << " must be even and in (0, head_dim = " << headDim
           << "]";
  if (!(getRopeBase().convertToFloat() > 0.0f))
    return emitOpError("rope_base must be positive");
  if (failed(expectMatrix(*this, "wq", getWq(), nEmbd, nHead * headDim)) ||
      failed(expectMatrix(*this, "wk", getWk(), nEmbd, nKV * headDim)) ||
      failed(expectMatrix(*this, "wv", getWv(), nEmbd, nKV * headDim)) ||
      failed(expectMatrix(*this, "wo", getWo(), nHead * headDim, nEmbd)))
    return failure();
  return success();
}

LogicalResult LMHeadOp::verify() {
  int64_t nEmbd = vectorLength(getInput());
  auto norm = cast<WeightType>(getNorm().getType());
  if (norm.getShape().size() != 1 || norm.getShape()[0] != nEmbd ||
      norm.getDtype() != GGMLType::F32)
    return emitOpError("norm must be an f32 vector of length ") << nEmbd;
  if (!(getEpsilon().convertToFloat() > 0.0f))
    return emitOpError("epsilon must be positive");
  return expectMatrix(*this, "output", getOutput(), nEmbd,
                      vectorLength(getResult()));
}

LogicalResult PredictOp::verify() {
  int64_t nEmbd = vectorLength(getInput());
  int64_t nFF = vectorLength(getMask());
  auto weights = getWeights();
  if (weights.size() == 1)
    return expectMatrix(*this, "gate", weights[0], nEmbd, nFF);
  if (weights.size() != 2)
    return emitOpError("takes the gate or fc1 and fc2, got ")
           << weights.size() << " weights";
  auto fc1 = cast<WeightType>(weights[0].getType());
  if (fc1.getShape().size() != 2 || fc1.getRowLength() != nEmbd)
    return emitOpError("fc1 must be [n_embd, rank] with n_embd = ") << nEmbd;
  return expectMatrix(*this, "fc2", weights[1], fc1.getNumRows(), nFF);
}

int64_t FFNPartOp::getNumNeurons() {
  return cast<WeightType>(getGate().getType()).getNumRows();
}

SmallVector<int32_t> FFNPartOp::getOwnedNeurons() {
  SmallVector<int32_t> out;
  if (auto neurons = getNeuronsAttr()) {
    if (auto table = getNeuronTable(neurons))
      out.assign(table->begin(), table->end());
    return out;
  }
  int64_t first = getOffsetAttr() ? getOffsetAttr().getInt() : 0;
  int64_t count = getCountAttr().getInt();
  for (int64_t i = 0; i < count; ++i)
    out.push_back(int32_t(first + i));
  return out;
}

LogicalResult FFNPartOp::verify() {
  if (failed(
          verifyFFNWeights(*this, getInput(), getGate(), getUp(), getDown())))
    return failure();
  int64_t nFF = getNumNeurons();
  if (getLayerAttr().getInt() < 0)
    return emitOpError("layer must be non-negative");
  int64_t count = getCountAttr().getInt();
  if (count <= 0 || count > nFF)
    return emitOpError("count ") << count << " must be in [1, " << nFF << "]";
  if (bool(getOffsetAttr()) == bool(getNeuronsAttr()))
    return emitOpError("needs exactly one of offset and neurons");
  if (auto offsetAttr = getOffsetAttr()) {
    int64_t offset = offsetAttr.getInt();
    if (offset < 0 || offset + count > nFF)
      return emitOpError("range [")
             << offset << ", " << offset + count << ") exceeds n_ff = " << nFF;
  } else {
    auto table = getNeuronTable(getNeuronsAttr());
    if (!table)
      return emitOpError("neurons resource has no data");
    if (int64_t(table->size()) != count)
      return emitOpError("neurons has ")
             << table->size() << " entries, count is " << count;
    std::string why = checkNeuronIndices(*table, nFF);
    if (!why.empty())
      return emitOpError("neurons: ") << why;
  }
  bool predicted = getSparsity() == Sparsity::predicted;
  if (predicted != bool(getMask()))
    return emitOpError("a mask is required exactly when sparsity is predicted");
  if (getMask() && vectorLength(getMask()) != nFF)
    return emitOpError("mask must have n_ff = ") << nFF << " bits";
  // The generated code compares |activation| against the threshold, so a
  // negative or NaN one would silently skip nothing or everything.
  bool thresholded = getSparsity() == Sparsity::threshold;
  if (thresholded != bool(getThresholdAttr()))
    return emitOpError(
        "a threshold is required exactly when sparsity is threshold");
  if (auto t = getThresholdAttr()) {
    float v = t.getValue().convertToFloat();
    if (!(v >= 0.f) || !std::isfinite(v))
      return emitOpError("threshold ") << v << " must be finite and >= 0";
  }
  return success();
}

// Follows transfers back to the ffn_part that produced a merge operand.
static FFNPartOp producingPart(Value v) {
  while (auto transfer = v.getDefiningOp<TransferOp>())
    v = transfer.getInput();
  return v.getDefiningOp<FFNPartOp>();
}

LogicalResult MergeOp::verify() {
  FFNPartOp a = producingPart(getLhs()), b = producingPart(getRhs());
  if (!a || !b)
    return emitOpError("operands must be results of pinfer.ffn_part");
  if (a.getLayer() != b.getLayer() || a.getGate() != b.getGate() ||
      a.getUp() != b.getUp() || a.getDown() != b.getDown())
    return emitOpError("halves must be of the same layer and weights");
  if (a.getDevice() == b.getDevice())
    return emitOpError("halves must be on different devices");
  // Tables index the file's neuron order, ranges the permuted one.
  if (bool(a.getNeuronsAttr()) != bool(b.getNeuronsAttr()))
    return emitOpError("halves must both use neuron tables or both ranges");
  int64_t nFF = a.getNumNeurons();
  std::vector<bool> owned(nFF, false);
  int64_t covered = 0;
  for (FFNPartOp part : {a, b}) {
    for (int32_t n : part.getOwnedNeurons()) {
      if (owned[n])
        return emitOpError("neuron ") << n << " is owned by both halves";
      owned[n] = true;
      ++covered;
    }
  }
  bool predicted = a.getSparsity() == Sparsity::predicted ||
                   b.getSparsity() == Sparsity::predicted;
  if (!predicted && covered != nFF)
    return emitOpError("halves cover ")
           << covered << " of " << nFF << " neurons; all must be covered";
  return success();
}

LogicalResult TransferOp::verify() {
  if (getValueDevice(getInput()) == getTo())
    return emitOpError("input already lives on the ")
           << stringifyDevice(getTo());
  return success();
}

#define GET_OP_CLASSES
#include "dialects/PInfer/IR/PInferOps.cpp.inc"
