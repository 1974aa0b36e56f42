//===- InsertPredictors.cpp - choose the sparsity of each FFN half --------===//
//
// Sparsity is a per-program choice: dense halves reproduce the reference
// bit for bit, exact skipping gives the same result faster on ReLU models,
// predicted skipping is fastest but approximate. In predicted mode each
// half gets its own pinfer.predict on its device, as PowerInfer runs them:
// the GPU's predictor spares the gate rows of the hot neurons that will not
// fire (a third of a ReLU FFN's bytes that exact skipping still reads),
// for its fc1 and the hot neurons' fc2 rows in VRAM (pinfer-plan-memory
// bills them). The predictors are the model's learned fc1/fc2 ones: the
// runtime has no other kind. Threshold
// skipping is the SiLU models' approximate mode: each layer skips neurons
// whose |activation| falls at or below a threshold calibrated from a
// profile, which the module carries as `pinfer.act_thresholds`.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "runtime/arch.h"

#include "llvm/Support/Debug.h"

#include <map>

#define DEBUG_TYPE "pinfer-insert-predictors"

namespace pinfer {
#define GEN_PASS_DEF_INSERTPREDICTORSPASS
#include "passes/Passes.h.inc"
} // namespace pinfer

using namespace mlir;
using namespace pinfer;

namespace {

struct InsertPredictorsPass
    : public pinfer::impl::InsertPredictorsPassBase<InsertPredictorsPass> {
  using InsertPredictorsPassBase::InsertPredictorsPassBase;
  void runOnOperation() override;
};

} // namespace

void InsertPredictorsPass::runOnOperation() {
  ModuleOp module = getOperation();
  Sparsity sparsity;
  if (mode == "dense")
    sparsity = Sparsity::dense;
  else if (mode == "exact")
    sparsity = Sparsity::exact;
  else if (mode == "predicted")
    sparsity = Sparsity::predicted;
  else if (mode == "threshold")
    sparsity = Sparsity::threshold;
  else {
    module.emitError("pinfer-insert-predictors: mode must be dense, exact, "
                     "predicted or threshold, got '")
        << mode << "'";
    return signalPassFailure();
  }

  // Threshold mode: one calibrated threshold per layer, from the module.
  ArrayRef<float> actThresholds;
  if (sparsity == Sparsity::threshold) {
    auto attr =
        module->getAttrOfType<DenseF32ArrayAttr>("pinfer.act_thresholds");
    if (!attr) {
      module.emitError("pinfer-insert-predictors: mode=threshold needs the "
                       "module attribute pinfer.act_thresholds = "
                       "array<f32: ...> (one threshold per layer)");
      return signalPassFailure();
    }
    actThresholds = attr.asArrayRef();
  }

  // Learned predictors when the model file has them: one fc1 and one fc2
  // type per layer (each layer's predictor has its own rank).
  SmallVector<WeightType> fc1Types, fc2Types;
  bool havePredictors = false;
  if (auto pred = module->getAttrOfType<DictionaryAttr>("pinfer.predictor")) {
    auto fc1 = pred.getAs<ArrayAttr>("fc1");
    auto fc2 = pred.getAs<ArrayAttr>("fc2");
    bool ok = fc1 && fc2 && fc1.size() == fc2.size() && !fc1.empty();
    for (size_t l = 0; ok && l < fc1.size(); ++l) {
      auto t1 = dyn_cast<TypeAttr>(fc1[l]), t2 = dyn_cast<TypeAttr>(fc2[l]);
      WeightType w1 = t1 ? dyn_cast<WeightType>(t1.getValue()) : WeightType();
      WeightType w2 = t2 ? dyn_cast<WeightType>(t2.getValue()) : WeightType();
      ok = w1 && w2;
      fc1Types.push_back(w1);
      fc2Types.push_back(w2);
    }
    if (!ok) {
      module.emitError("pinfer.predictor must be {fc1 = [!pinfer.weight<...>, "
                       "...], fc2 = [...]}, one type per layer in each");
      return signalPassFailure();
    }
    havePredictors = true;
  }

  if (sparsity == Sparsity::predicted && !havePredictors) {
    module.emitError("pinfer-insert-predictors: mode=predicted needs the "
                     "model's learned fc1/fc2 predictors (module attribute "
                     "pinfer.predictor); the runtime has no other predictor");
    return signalPassFailure();
  }

  SmallVector<FFNPartOp> parts;
  module.walk([&](FFNPartOp op) { parts.push_back(op); });
  MLIRContext *ctx = &getContext();
  // One pair of predictor weight handles per layer, shared by its halves.
  std::map<int64_t, std::pair<Value, Value>> predictorWeights;
  for (FFNPartOp part : parts) {
    if (part.getMask())
      continue; // already predicted
    part.setSparsityAttr(SparsityAttr::get(ctx, sparsity));
    if (sparsity == Sparsity::threshold) {
      int64_t layer = part.getLayer();
      if (layer >= int64_t(actThresholds.size())) {
        part.emitOpError("layer ")
            << layer << " has no entry in pinfer.act_thresholds, which has "
            << actThresholds.size() << "; expected one per layer";
        return signalPassFailure();
      }
      part.setThresholdAttr(
          FloatAttr::get(Float32Type::get(ctx), actThresholds[layer]));
      if (failed(part.verify()))
        return signalPassFailure();
      continue;
    }
    if (sparsity != Sparsity::predicted)
      continue;
    OpBuilder b(part);
    SmallVector<Value, 2> weights;
    int64_t layer = part.getLayer();
    if (layer < 0 || layer >= int64_t(fc1Types.size())) {
      part.emitOpError("layer ")
          << layer << " has no predictor type in pinfer.predictor, which has "
          << fc1Types.size() << " layers";
      return signalPassFailure();
    }
    auto it = predictorWeights.find(layer);
    if (it == predictorWeights.end()) {
      Value fc1 = b.create<WeightOp>(
          part.getLoc(), fc1Types[layer],
          tensorName(TensorKind::PredFc1, int(layer)), Attribute());
      Value fc2 = b.create<WeightOp>(
          part.getLoc(), fc2Types[layer],
          tensorName(TensorKind::PredFc2, int(layer)), Attribute());
      it = predictorWeights.emplace(layer, std::make_pair(fc1, fc2)).first;
    }
    weights = {it->second.first, it->second.second};
    int64_t nFF = part.getNumNeurons();
    auto maskType = RankedTensorType::get({nFF}, b.getI1Type());
    auto predict =
        b.create<PredictOp>(part.getLoc(), maskType, part.getInput(), weights,
                            b.getI64IntegerAttr(layer),
                            b.getF32FloatAttr(threshold), part.getDeviceAttr());
    if (failed(predict.verify())) {
      predict.erase();
      return signalPassFailure();
    }
    part.getMaskMutable().assign(predict.getMask());
    LLVM_DEBUG(llvm::dbgs() << "layer " << layer << ": predictor on "
                            << stringifyDevice(part.getDevice()) << "\n");
  }
}
