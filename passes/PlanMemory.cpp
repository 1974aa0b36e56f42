//===- PlanMemory.cpp - static arenas and the VRAM bill -------------------===//
//
// Generated executables never allocate per token: every activation has a
// fixed offset in one arena per device, found here from live ranges. The
// same pass adds up what the program keeps in VRAM so that a plan that does
// not fit the target is rejected at compile time, not at start-up.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "runtime/arch.h"
#include "runtime/vram_bill.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "pinfer-plan-memory"

namespace pinfer {
#define GEN_PASS_DEF_PLANMEMORYPASS
#include "passes/Passes.h.inc"
} // namespace pinfer

using namespace mlir;
using namespace pinfer;

namespace {

struct PlanMemoryPass
    : public pinfer::impl::PlanMemoryPassBase<PlanMemoryPass> {
  using PlanMemoryPassBase::PlanMemoryPassBase;
  void runOnOperation() override;
};

// First-fit allocator over one arena. Buffers are freed when the op
// index passes their last use.
struct Arena {
  struct Live {
    int64_t offset, size, lastUse;
  };
  int64_t alignment;
  int64_t size = 0;
  std::vector<Live> live;

  int64_t allocate(int64_t bytes, int64_t now, int64_t lastUse) {
    live.erase(std::remove_if(live.begin(), live.end(),
                              [&](const Live &l) { return l.lastUse < now; }),
               live.end());
    std::sort(live.begin(), live.end(),
              [](const Live &a, const Live &b) { return a.offset < b.offset; });
    bytes = (bytes + alignment - 1) / alignment * alignment;
    int64_t offset = 0;
    for (const Live &l : live) {
      if (offset + bytes <= l.offset)
        break;
      offset = std::max(offset, l.offset + l.size);
    }
    live.push_back({offset, bytes, lastUse});
    size = std::max(size, offset + bytes);
    return offset;
  }
};

int64_t valueBytes(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || !type.hasStaticShape())
    return 0;
  int64_t elemBytes = type.getElementType().isInteger(1)
                          ? 1
                          : type.getElementTypeBitWidth() / 8;
  return type.getNumElements() * elemBytes;
}

} // namespace

void PlanMemoryPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = &getContext();
  if (contextLength <= 0) {
    module.emitError("pinfer-plan-memory: context-length must be positive, "
                     "got ")
        << int64_t(contextLength);
    return signalPassFailure();
  }

  Arena cpu{64}, gpu{256};
  int64_t weightBytes = 0, kvGPU = 0, kvCPU = 0, headSelect = 0,
          kvGPUPerPosition = 0;
  llvm::StringSet<> wholeOnGPU; // names of weights held whole in VRAM
  auto addWhole = [&](Value w) {
    auto op = w.getDefiningOp<WeightOp>();
    if (op && wholeOnGPU.insert(op.getName()).second)
      weightBytes += storedBytes(cast<WeightType>(w.getType()));
  };

  // What the executable allocates beside the weights and caches
  // (runtime/vram_bill.h, gpuWorkspaceVram), from the IR's shapes and where
  // its ops run; nothing for a program without a GPU part.
  GpuWorkspace ws;
  bool anyGpu = false;
  auto noteShapes = [&](Operation *op) {
    auto device = op->getAttrOfType<DeviceAttr>("device");
    const bool onGpu = device && device.getValue() == Device::gpu;
    anyGpu = anyGpu || onGpu;
    if (auto attn = dyn_cast<AttentionOp>(op)) {
      const int64_t nHead = int64_t(attn.getNHead()),
                    headDim = int64_t(attn.getHeadDim());
      ws.nHead = std::max(ws.nHead, nHead);
      ws.headDim = std::max(ws.headDim, headDim);
      ws.qDim = std::max(ws.qDim, nHead * headDim);
      ws.kvDim = std::max(ws.kvDim, int64_t(attn.getNKvHead()) * headDim);
      ws.nRot = std::max(ws.nRot, int64_t(attn.getRopeDim()));
      ++ws.nLayer;
      ws.attentionLayers += attn.getDevice() == Device::gpu;
    } else if (auto part = dyn_cast<FFNPartOp>(op)) {
      ws.nEmbd = std::max(ws.nEmbd,
                          cast<RankedTensorType>(part.getType()).getDimSize(0));
      ws.nFF = std::max(ws.nFF, part.getNumNeurons());
    } else if (auto head = dyn_cast<LMHeadOp>(op)) {
      ws.nVocab = std::max(
          ws.nVocab, cast<RankedTensorType>(head.getType()).getDimSize(0));
      ws.head = ws.head || head.getDevice() == Device::gpu;
    } else if (isa<RmsNormOp>(op)) {
      ws.resident = ws.resident || onGpu;
    } else if (auto predict = dyn_cast<PredictOp>(op)) {
      if (onGpu && predict.getWeights().size() == 2)
        ws.maxRank = std::max(
            ws.maxRank,
            cast<WeightType>(predict.getWeights()[1].getType()).getRowLength());
    } else if (auto transfer = dyn_cast<TransferOp>(op)) {
      anyGpu = anyGpu || transfer.getTo() == Device::gpu;
    }
  };

  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    DenseMap<Operation *, int64_t> index;
    std::vector<int64_t> waits; // op indices of pinfer.wait, ascending
    int64_t i = 0;
    func.walk([&](Operation *op) {
      if (isa<WaitOp>(op))
        waits.push_back(i);
      index[op] = i++;
    });
    // A copy to the GPU reads its host buffer asynchronously: the buffer
    // must stay untouched until the next wait has drained the stream.
    auto drainedAt = [&](int64_t at) {
      auto it = std::lower_bound(waits.begin(), waits.end(), at);
      return it == waits.end() ? i : *it;
    };
    func.walk([&](Operation *op) {
      noteShapes(op);
      auto device = op->getAttrOfType<DeviceAttr>("device");
      bool gpuOp = device && device.getValue() == Device::gpu;
      if (auto attn = dyn_cast<AttentionOp>(op)) {
        int64_t kv = int64_t(
            kvCacheVram(contextLength, attn.getNKvHead() * attn.getHeadDim()));
        bool onGPU = attn.getDevice() == Device::gpu;
        (onGPU ? kvGPU : kvCPU) += kv;
        if (onGPU)
          kvGPUPerPosition +=
              int64_t(kvCacheVram(1, attn.getNKvHead() * attn.getHeadDim()));
        if (onGPU)
          for (Value w :
               {attn.getWq(), attn.getWk(), attn.getWv(), attn.getWo()})
            addWhole(w);
      } else if (auto head = dyn_cast<LMHeadOp>(op)) {
        if (head.getDevice() == Device::gpu) {
          addWhole(head.getNorm());
          addWhole(head.getOutput());
          headSelect = int64_t(headSelectVram());
        }
      } else if (auto part = dyn_cast<FFNPartOp>(op)) {
        if (gpuOp) {
          // The hot rows as the placement's cost model bills them
          // (runtime/vram_bill.h).
          int64_t nEmbd = cast<RankedTensorType>(part.getType()).getDimSize(0);
          auto dtype = [](Value w) {
            return cast<WeightType>(w.getType()).getDtype();
          };
          // A dense layer wholly here keeps the source's down matrix where
          // its packed rows would be SplitK's (the lowering asks the same).
          auto down = part.getDown().getDefiningOp<WeightOp>();
          TensorKind downKind;
          int downLayer;
          bool sourceDown =
              part.getSparsity() == Sparsity::dense &&
              int64_t(part.getCount()) == part.getNumNeurons() && down &&
              parseTensorName(down.getName().str(), downKind, downLayer) &&
              downKind == TensorKind::FfnDown &&
              denseGpuKeepsSourceDown(dtype(part.getDown()));
          weightBytes +=
              sourceDown
                  ? int64_t(denseSourceFfnVram(
                        dtype(part.getGate()), dtype(part.getUp()),
                        dtype(part.getDown()), nEmbd, part.getNumNeurons()))
                  : int64_t(hotFfnVram(dtype(part.getGate()),
                                       dtype(part.getUp()),
                                       dtype(part.getDown()), nEmbd,
                                       part.getNumNeurons())
                                .bytes(uint64_t(part.getCount())));
          // Its own predictor, as the packed weights store it
          // (runtime/vram_bill.h, predictorVram): fc1 and b1 whole, the hot
          // neurons' fc2 rows and biases.
          if (Value mask = part.getMask())
            if (auto predict = mask.getDefiningOp<PredictOp>())
              if (predict.getWeights().size() == 2) {
                auto fc1 = cast<WeightType>(predict.getWeights()[0].getType());
                auto fc2 = cast<WeightType>(predict.getWeights()[1].getType());
                weightBytes +=
                    int64_t(predictorVram(fc1.getDtype(), fc2.getDtype(), nEmbd,
                                          fc2.getRowLength())
                                .bytes(uint64_t(part.getCount())));
              }
        }
      }
      if (op->getNumResults() != 1 || !isa<PInferDialect>(op->getDialect()))
        return;
      Value result = op->getResult(0);
      int64_t bytes = valueBytes(result);
      if (!bytes)
        return;
      int64_t lastUse = index[op];
      for (Operation *user : result.getUsers()) {
        lastUse = std::max(lastUse, index[user]);
        auto transfer = dyn_cast<TransferOp>(user);
        if (transfer && transfer.getTo() == Device::gpu)
          lastUse = std::max(lastUse, drainedAt(index[user]));
      }
      Arena &arena = getValueDevice(result) == Device::gpu ? gpu : cpu;
      int64_t offset = arena.allocate(bytes, index[op], lastUse);
      op->setAttr("pinfer.offset",
                  IntegerAttr::get(IntegerType::get(ctx, 64), offset));
    });
  }

  ws.nCtx = contextLength;
  const int64_t workspace = anyGpu ? int64_t(gpuWorkspaceVram(ws)) : 0;

  // The executable evaluates the same bill at its own -c
  // (runtime/vram_bill.h): one device allocation, whole pages, room for
  // every buffer's alignment and guard.
  VramBill bill;
  bill.gpu = anyGpu;
  bill.fixed = uint64_t(weightBytes + gpu.size + headSelect);
  bill.kvPerPosition = uint64_t(kvGPUPerPosition);
  bill.workspace = ws;
  const int64_t buffers = anyGpu ? int64_t(deviceBuffersVram(ws.nLayer)) : 0;
  int64_t budget = vramBudget, tokens = contextLength;
  int64_t total = int64_t(bill.at(contextLength));
  auto i64 = [&](int64_t v) {
    return IntegerAttr::get(IntegerType::get(ctx, 64), v);
  };
  NamedAttrList shapes;
  for (const WorkspaceField &f : kWorkspaceFields)
    shapes.append(f.ir, i64(ws.*f.member));
  for (const WorkspaceFlag &f : kWorkspaceFlags)
    shapes.append(f.ir, i64(ws.*f.member));
  NamedAttrList memory;
  memory.append("context_length", i64(tokens));
  memory.append("cpu_arena", i64(cpu.size));
  memory.append("gpu_arena", i64(gpu.size));
  memory.append("host_kv_cache", i64(kvCPU));
  memory.append("vram_buffers", i64(buffers));
  memory.append("vram_fixed", i64(int64_t(bill.fixed)));
  memory.append("vram_head_select", i64(headSelect));
  memory.append("vram_kv_cache", i64(kvGPU));
  memory.append("vram_kv_per_position", i64(kvGPUPerPosition));
  memory.append("vram_total", i64(total));
  memory.append("vram_weights", i64(weightBytes));
  memory.append("vram_workspace", i64(workspace));
  memory.append("vram_workspace_shape", shapes.getDictionary(ctx));
  module->setAttr("pinfer.memory", memory.getDictionary(ctx));
  LLVM_DEBUG(llvm::dbgs() << "VRAM bill " << total << " bytes\n");
  if (budget > 0 && total > budget) {
    module.emitError("VRAM bill of ")
        << total << " bytes (weights " << weightBytes << ", KV cache " << kvGPU
        << " for " << tokens << " tokens, arena " << gpu.size
        << ", head selection " << headSelect << ", workspace " << workspace
        << ", buffers' alignment " << buffers
        << ", rounded up to whole 2 MiB pages) exceeds the budget of " << budget
        << " bytes";
    return signalPassFailure();
  }
}
