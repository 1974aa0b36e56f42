//===- Schedule.cpp - overlap CPU and GPU work, insert transfers ----------===//
//
// GPU work is asynchronous: kernels and copies are enqueued on one stream
// and the host only blocks at a `pinfer.wait`. Putting the CPU half of each
// FFN between the GPU half's enqueue and the wait lets both devices work at
// once, and leaves exactly one sync per FFN.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "pinfer-schedule"

namespace pinfer {
#define GEN_PASS_DEF_SCHEDULEPASS
#include "passes/Passes.h.inc"
} // namespace pinfer

using namespace mlir;
using namespace pinfer;

namespace {

struct SchedulePass : public pinfer::impl::SchedulePassBase<SchedulePass> {
  void runOnOperation() override;
  LogicalResult scheduleBlock(Block &block);
};

bool isOnGPU(Operation *op) {
  if (isa<TransferOp>(op))
    return false;
  auto device = op->getAttrOfType<DeviceAttr>("device");
  return device && device.getValue() == Device::gpu;
}

// Whether the residual stream can stay on the GPU (see the header), and if
// so marks the block's norms and adds for the GPU.
void placeResidualStream(Block &block, MLIRContext *ctx) {
  bool anyLayer = false;
  for (Operation &op : block) {
    if (isa<MergeOp>(op))
      return;
    if (isa<AttentionOp, FFNPartOp, PredictOp, LMHeadOp>(op)) {
      if (!isOnGPU(&op))
        return;
      anyLayer |= isa<AttentionOp>(op);
    }
  }
  if (!anyLayer)
    return;
  for (Operation &op : block)
    if (isa<RmsNormOp, AddOp>(op))
      op.setAttr("device", DeviceAttr::get(ctx, Device::gpu));
}

} // namespace

LogicalResult SchedulePass::scheduleBlock(Block &block) {
  // The CPU half (and its predictor) goes right before the merge, so that
  // it is issued after the GPU half's record and before the wait.
  SmallVector<MergeOp> merges;
  for (Operation &op : block)
    if (auto merge = dyn_cast<MergeOp>(op))
      merges.push_back(merge);
  for (MergeOp merge : merges) {
    for (Value operand : {merge.getLhs(), merge.getRhs()}) {
      auto part = operand.getDefiningOp<FFNPartOp>();
      if (!part || part.getDevice() != Device::cpu)
        continue;
      if (Value mask = part.getMask())
        if (Operation *predict = mask.getDefiningOp())
          predict->moveBefore(merge);
      part->moveBefore(merge);
    }
  }

  MLIRContext *ctx = &getContext();
  placeResidualStream(block, ctx);
  DenseMap<Value, Value> onGPU; // host value -> its copy on the GPU
  SmallVector<Operation *> ops;
  for (Operation &op : block)
    ops.push_back(&op);
  for (Operation *op : ops) {
    if (!isOnGPU(op))
      continue;
    OpBuilder b(op);
    for (OpOperand &operand : op->getOpOperands()) {
      Value v = operand.get();
      if (!isa<RankedTensorType>(v.getType()) ||
          getValueDevice(v) == Device::gpu)
        continue;
      Value &copy = onGPU[v];
      if (!copy) {
        // Place the copy right after the value is made (or at the block
        // start), so that the first GPU user and all later ones see it.
        OpBuilder cb(ctx);
        if (Operation *def = v.getDefiningOp())
          cb.setInsertionPointAfter(def);
        else
          cb.setInsertionPointToStart(&block);
        copy = cb.create<TransferOp>(op->getLoc(), v.getType(), v,
                                     DeviceAttr::get(ctx, Device::gpu));
      }
      operand.set(copy);
    }
    // Results the host needs come back with a copy and an event; the wait
    // goes before the first host user.
    for (Value result : op->getResults()) {
      SmallVector<OpOperand *> hostUses;
      for (OpOperand &use : result.getUses())
        if (!isOnGPU(use.getOwner()))
          hostUses.push_back(&use);
      if (hostUses.empty())
        continue;
      b.setInsertionPointAfter(op);
      auto back = b.create<TransferOp>(op->getLoc(), result.getType(), result,
                                       DeviceAttr::get(ctx, Device::cpu));
      auto event = b.create<RecordOp>(op->getLoc(), EventType::get(ctx));
      Operation *firstUser = nullptr;
      for (OpOperand *use : hostUses) {
        Operation *user = block.findAncestorOpInBlock(*use->getOwner());
        if (!firstUser || user->isBeforeInBlock(firstUser))
          firstUser = user;
        use->set(back);
      }
      b.setInsertionPoint(firstUser);
      b.create<WaitOp>(op->getLoc(), event);
      LLVM_DEBUG(llvm::dbgs()
                 << "sync before " << firstUser->getName() << "\n");
    }
  }
  return success();
}

void SchedulePass::runOnOperation() {
  ModuleOp module = getOperation();
  if (module->hasAttr("pinfer.scheduled")) {
    module.emitError("module is already scheduled (pinfer.scheduled is set)");
    return signalPassFailure();
  }
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    if (!func.getBody().hasOneBlock()) {
      func.emitOpError("pinfer-schedule expects a single-block body");
      return signalPassFailure();
    }
    if (failed(scheduleBlock(func.getBody().front())))
      return signalPassFailure();
  }
  module->setAttr("pinfer.scheduled", UnitAttr::get(&getContext()));
}
