//===- ApplyPlacement.cpp - attach the placement plan to each ffn ---------===//
//
// The placement solver decides, per layer, how many FFN neurons go to the
// GPU and in which order (hottest first). This pass moves that decision
// from the module attribute `pinfer.plan` onto the ops it concerns, so the
// later passes work op by op.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "pinfer-apply-placement"

namespace pinfer {
#define GEN_PASS_DEF_APPLYPLACEMENTPASS
#include "passes/Passes.h.inc"
} // namespace pinfer

using namespace mlir;
using namespace pinfer;

namespace {

struct ApplyPlacementPass
    : public pinfer::impl::ApplyPlacementPassBase<ApplyPlacementPass> {
  void runOnOperation() override;
};

// Reads an optional device entry of a plan dictionary; CPU when absent.
LogicalResult readDevice(ModuleOp module, DictionaryAttr dict, StringRef key,
                         Device &out) {
  out = Device::cpu;
  Attribute attr = dict.get(key);
  if (!attr)
    return success();
  auto device = dyn_cast<DeviceAttr>(attr);
  if (!device)
    return module.emitError("pinfer.plan: key '")
           << key << "' must be #pinfer.device<gpu|cpu>, got " << attr;
  out = device.getValue();
  return success();
}

} // namespace

void ApplyPlacementPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto plan = module->getAttrOfType<DictionaryAttr>("pinfer.plan");
  if (!plan) {
    module.emitError("no pinfer.plan attribute on the module; expected "
                     "{layers = [{hot = N : i64, order = array<i32: ...>}]}");
    return signalPassFailure();
  }
  auto layers = plan.getAs<ArrayAttr>("layers");
  if (!layers) {
    module.emitError("pinfer.plan: expected an array under 'layers'");
    return signalPassFailure();
  }

  SmallVector<FFNOp> ffns;
  module.walk([&](FFNOp op) { ffns.push_back(op); });
  if (ffns.size() != layers.size()) {
    module.emitError("pinfer.plan has ")
        << layers.size() << " layers, the module has " << ffns.size()
        << " ffn ops";
    return signalPassFailure();
  }

  std::vector<Device> attention(layers.size(), Device::cpu);
  for (FFNOp ffn : ffns) {
    int64_t layer = ffn.getLayer();
    if (layer >= int64_t(layers.size())) {
      ffn.emitOpError("layer ") << layer << " has no entry in pinfer.plan";
      return signalPassFailure();
    }
    auto entry = dyn_cast<DictionaryAttr>(layers[layer]);
    auto hot = entry ? entry.getAs<IntegerAttr>("hot") : IntegerAttr();
    if (!hot) {
      module.emitError("pinfer.plan: layers[")
          << layer << "] must be a dictionary with an integer 'hot'";
      return signalPassFailure();
    }
    int64_t nFF = ffn.getNumNeurons();
    if (hot.getInt() < 0 || hot.getInt() > nFF) {
      ffn.emitOpError("plan puts ")
          << hot.getInt() << " hot neurons in a layer of " << nFF;
      return signalPassFailure();
    }
    if (Attribute order = entry.get("order")) {
      auto table = isNeuronTable(order) ? getNeuronTable(order) : std::nullopt;
      if (!table || int64_t(table->size()) != nFF ||
          !checkNeuronIndices(*table, nFF).empty()) {
        ffn.emitOpError("plan order of layer ")
            << layer << " must be a permutation of the " << nFF << " neurons";
        return signalPassFailure();
      }
      ffn.setNeuronOrderAttr(order);
    }
    ffn.setHotCountAttr(
        IntegerAttr::get(IntegerType::get(&getContext(), 64), hot.getInt()));
    if (failed(readDevice(module, entry, "attention", attention[layer])))
      return signalPassFailure();
    LLVM_DEBUG(llvm::dbgs() << "layer " << layer << ": " << hot.getInt()
                            << " of " << nFF << " neurons on the GPU\n");
  }

  Device lmHead;
  if (failed(readDevice(module, plan, "lm_head", lmHead)))
    return signalPassFailure();
  MLIRContext *ctx = &getContext();
  module.walk([&](AttentionOp op) {
    int64_t layer = op.getLayerAttr().getInt();
    if (layer < int64_t(attention.size()))
      op.setDeviceAttr(DeviceAttr::get(ctx, attention[layer]));
  });
  module.walk(
      [&](LMHeadOp op) { op.setDeviceAttr(DeviceAttr::get(ctx, lmHead)); });
  module->removeAttr("pinfer.plan");
}
