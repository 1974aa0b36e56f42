//===- PermuteNeurons.cpp - make hot and cold neurons contiguous ----------===//
//
// Gathering scattered rows on every token costs bandwidth and index loads.
// The packed-weights emitter can instead store each layer's rows in the
// order GPU neurons, CPU neurons, so each half reads one contiguous range.
// This pass records that order on the weights and rewrites the halves'
// index tables to ranges of it.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "runtime/arch.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "pinfer-permute-neurons"

namespace pinfer {
#define GEN_PASS_DEF_PERMUTENEURONSPASS
#include "passes/Passes.h.inc"
} // namespace pinfer

using namespace mlir;
using namespace pinfer;

namespace {

struct PermuteNeuronsPass
    : public pinfer::impl::PermuteNeuronsPassBase<PermuteNeuronsPass> {
  void runOnOperation() override;
};

// Sets `order` on the weight op behind `v`; fails if it already holds a
// different order (the weight would be shared by two layers).
LogicalResult setOrder(Operation *user, Value v, Attribute order) {
  auto weight = v.getDefiningOp<WeightOp>();
  if (!weight)
    return user->emitOpError("weights must come from pinfer.weight to be "
                             "permuted");
  Attribute old = weight.getNeuronOrderAttr();
  if (old && old != order)
    return weight.emitOpError("is used by two FFNs with different neuron "
                              "orders");
  weight.setNeuronOrderAttr(order);
  return success();
}

} // namespace

void PermuteNeuronsPass::runOnOperation() {
  // Halves grouped by their gate weight, i.e. by layer, in program order.
  llvm::MapVector<Value, SmallVector<FFNPartOp, 2>> groups;
  getOperation().walk([&](FFNPartOp op) {
    if (op.getNeuronsAttr())
      groups[op.getGate()].push_back(op);
  });
  MLIRContext *ctx = &getContext();
  for (auto &[gate, parts] : groups) {
    // GPU half first so that it starts at row 0.
    llvm::stable_sort(parts, [](FFNPartOp a, FFNPartOp b) {
      return a.getDevice() == Device::gpu && b.getDevice() != Device::gpu;
    });
    int64_t nFF = parts.front().getNumNeurons();
    SmallVector<int32_t> order;
    std::vector<bool> placed(nFF, false);
    SmallVector<int64_t, 2> offsets;
    for (FFNPartOp part : parts) {
      offsets.push_back(int64_t(order.size()));
      for (int32_t n : part.getOwnedNeurons()) {
        if (placed[n]) {
          part.emitOpError("neuron ") << n << " is owned by two halves";
          return signalPassFailure();
        }
        placed[n] = true;
        order.push_back(n);
      }
    }
    // Neurons no half owns (predicted sparsity may drop them) go last.
    for (int64_t n = 0; n < nFF; ++n)
      if (!placed[n])
        order.push_back(int32_t(n));

    bool identity = true;
    for (int64_t i = 0; i < nFF; ++i)
      identity &= order[i] == i;
    if (!identity) {
      int64_t layer = parts.front().getLayer();
      Attribute table =
          makeNeuronTable(ctx, layerName(int(layer)) + ".neuron_order", order);
      FFNPartOp first = parts.front();
      if (failed(setOrder(first, first.getGate(), table)) ||
          failed(setOrder(first, first.getUp(), table)) ||
          failed(setOrder(first, first.getDown(), table)))
        return signalPassFailure();
      // Learned predictors score neurons through the rows of fc2.
      for (FFNPartOp part : parts)
        if (Value mask = part.getMask())
          if (auto predict = mask.getDefiningOp<PredictOp>())
            if (predict.getWeights().size() == 2 &&
                failed(setOrder(predict, predict.getWeights()[1], table)))
              return signalPassFailure();
    }
    for (auto [part, offset] : llvm::zip(parts, offsets)) {
      part.setOffsetAttr(IntegerAttr::get(IntegerType::get(ctx, 64), offset));
      part.removeNeuronsAttr();
    }
    LLVM_DEBUG(llvm::dbgs()
               << "layer " << parts.front().getLayer()
               << (identity ? ": identity order\n" : ": permuted\n"));
  }
}
