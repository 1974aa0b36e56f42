//===- SplitFFN.cpp - placed ffn into GPU half + CPU half + merge ---------===//
//
// Turns the placement decision carried by a placed ffn into separate ops
// per device, so scheduling and code generation see two ordinary kernels
// and a sum.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "runtime/arch.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "pinfer-split-ffn"

namespace pinfer {
#define GEN_PASS_DEF_SPLITFFNPASS
#include "passes/Passes.h.inc"
} // namespace pinfer

using namespace mlir;
using namespace pinfer;

namespace {

struct SplitFFNPass : public pinfer::impl::SplitFFNPassBase<SplitFFNPass> {
  void runOnOperation() override;
};

FFNPartOp buildPart(OpBuilder &b, FFNOp ffn, Device device, int64_t count,
                    std::optional<int64_t> offset, Attribute neurons) {
  MLIRContext *ctx = b.getContext();
  auto part = b.create<FFNPartOp>(
      ffn.getLoc(), ffn.getType(), ffn.getInput(), ffn.getGate(), ffn.getUp(),
      ffn.getDown(), /*mask=*/Value(), ffn.getActivationAttr(),
      DeviceAttr::get(ctx, device), SparsityAttr::get(ctx, Sparsity::dense),
      ffn.getLayerAttr(), b.getI64IntegerAttr(count),
      offset ? b.getI64IntegerAttr(*offset) : IntegerAttr(), neurons,
      /*threshold=*/FloatAttr());
  return part;
}

} // namespace

void SplitFFNPass::runOnOperation() {
  SmallVector<FFNOp> ffns;
  getOperation().walk([&](FFNOp op) {
    if (op.getHotCount())
      ffns.push_back(op);
  });
  MLIRContext *ctx = &getContext();
  for (FFNOp ffn : ffns) {
    OpBuilder b(ffn);
    int64_t nFF = ffn.getNumNeurons();
    int64_t hot = *ffn.getHotCount();
    int64_t layer = ffn.getLayer();
    Value result;
    if (hot == 0 || hot == nFF) {
      // Wholly on one device: the neuron order does not matter.
      result = buildPart(b, ffn, hot ? Device::gpu : Device::cpu, nFF,
                         /*offset=*/0, Attribute());
    } else {
      SmallVector<int32_t> order;
      if (Attribute attr = ffn.getNeuronOrderAttr()) {
        auto table = getNeuronTable(attr);
        if (!table) {
          ffn.emitOpError("neuron_order resource has no data");
          return signalPassFailure();
        }
        order.assign(table->begin(), table->end());
      } else {
        for (int64_t i = 0; i < nFF; ++i)
          order.push_back(int32_t(i));
      }
      std::string base = layerName(int(layer));
      ArrayRef<int32_t> all(order);
      auto gpu = buildPart(
          b, ffn, Device::gpu, hot, std::nullopt,
          makeNeuronTable(ctx, base + ".gpu_neurons", all.take_front(hot)));
      auto cpu = buildPart(
          b, ffn, Device::cpu, nFF - hot, std::nullopt,
          makeNeuronTable(ctx, base + ".cpu_neurons", all.drop_front(hot)));
      result = b.create<MergeOp>(ffn.getLoc(), ffn.getType(), gpu.getResult(),
                                 cpu.getResult());
    }
    LLVM_DEBUG(llvm::dbgs() << "layer " << layer << ": " << hot << " GPU, "
                            << nFF - hot << " CPU neurons\n");
    ffn.replaceAllUsesWith(result);
    ffn.erase();
  }
}
