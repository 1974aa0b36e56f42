//===- VerifyLowering.cpp - the lowered IR holds only what runs -----------===//
//
// The last pass of pinfer-lower. The executable runs the lowered IR's steps
// with the runtime's routines; an op it has no routine for would be billed
// by pinfer-plan-memory and then silently run another way (or not at all).
// So such ops are refused here, each with the reason, until a runtime
// routine for them exists.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "pinfer-verify-lowering"

namespace pinfer {
#define GEN_PASS_DEF_VERIFYLOWERINGPASS
#include "passes/Passes.h.inc"
} // namespace pinfer

using namespace mlir;
using namespace pinfer;

namespace {

struct VerifyLoweringPass
    : public pinfer::impl::VerifyLoweringPassBase<VerifyLoweringPass> {
  void runOnOperation() override;
};

} // namespace

void VerifyLoweringPass::runOnOperation() {
  ModuleOp module = getOperation();
  bool ok = true;
  auto refuse = [&](Operation *op, const Twine &why) {
    op->emitOpError(why);
    ok = false;
  };
  if (!module->getAttrOfType<DictionaryAttr>("pinfer.memory")) {
    module.emitError("pinfer-verify-lowering: the module has no "
                     "pinfer.memory; expected the output of "
                     "pinfer-plan-memory");
    return signalPassFailure();
  }
  module.walk([&](Operation *op) {
    if (auto predict = dyn_cast<PredictOp>(op)) {
      if (predict.getWeights().size() != 2)
        refuse(op, "predicts from the gate magnitude: the runtime runs "
                   "only the model's fc1/fc2 predictors");
      for (Operation *user : predict.getMask().getUsers()) {
        auto part = dyn_cast<FFNPartOp>(user);
        if (!part ||
            part.getDevice() != predict.getDevice().value_or(Device::cpu))
          refuse(op, "feeds an op on another device: the runtime runs a "
                     "half's predictor where the half runs");
      }
    } else if (auto record = dyn_cast<RecordOp>(op)) {
      auto users = record.getEvent().getUsers();
      int64_t waits = std::distance(users.begin(), users.end());
      if (waits != 1)
        refuse(op, "has " + Twine(waits) +
                       " waits: the runtime syncs each recorded event "
                       "exactly once");
    }
  });
  if (!ok)
    signalPassFailure();
}
