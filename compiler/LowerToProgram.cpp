//===- LowerToProgram.cpp - scheduled pinfer IR to a ProgramDesc ----------===//
//
// Reads what the passes decided back out of the IR, checking it as it goes:
// the emitters trust the description blindly, so a module that would make
// them index out of range or drop a neuron is rejected here with the op and
// layer at fault.
//
//===----------------------------------------------------------------------===//

#include "compiler/LowerToProgram.h"
#include "runtime/kernels.h"

#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/Support/raw_os_ostream.h"

#include "compiler/Import.h"
#include "compiler/InitAll.h"
#include "compiler/placement/Plan.h"
#include "dialects/PInfer/IR/PInferOps.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/vram_bill.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"

#include <algorithm>
#include <map>

using namespace mlir;

namespace pinfer {

namespace {

SparsityMode toMode(Sparsity s) {
  switch (s) {
  case Sparsity::dense:
    return SparsityMode::Dense;
  case Sparsity::exact:
    return SparsityMode::Exact;
  case Sparsity::predicted:
    return SparsityMode::Predicted;
  case Sparsity::threshold:
    return SparsityMode::Threshold;
  }
  return SparsityMode::Exact;
}

std::string where(int64_t layer, llvm::StringRef op) {
  return "scheduled IR: " + op.str() + " of layer " + std::to_string(layer) +
         ": ";
}

std::string deviceName(Device d) { return stringifyDevice(d).str(); }

// What one layer's halves say, gathered before the checks that need both.
struct LayerRead {
  FFNPartOp part[2]; // indexed by Device (cpu 0, gpu 1)
  bool attentionOnGPU = false;
  bool sawAttention = false;
};

// The neuron_order table of the weight behind `v` (empty: identity), or
// false with `error` set.
bool weightOrder(Value v, int64_t nFF, int64_t layer, Attribute &attr,
                 SmallVector<int32_t> &order, std::string &error) {
  auto weight = v.getDefiningOp<WeightOp>();
  if (!weight) {
    error = where(layer, "pinfer.ffn_part") +
            "a weight does not come from pinfer.weight, expected a named "
            "tensor";
    return false;
  }
  attr = weight.getNeuronOrderAttr();
  order.clear();
  if (!attr)
    return true;
  auto table = getNeuronTable(attr);
  if (!table || int64_t(table->size()) != nFF) {
    error = where(layer, "pinfer.weight \"" + weight.getName().str() + "\"") +
            "neuron_order has no data or not " + std::to_string(nFF) +
            " entries";
    return false;
  }
  order.assign(table->begin(), table->end());
  return true;
}

// The neurons `part` owns, in the order it runs them.
bool ownedNeurons(FFNPartOp part, int64_t nFF, std::vector<uint32_t> &out,
                  std::string &error) {
  int64_t layer = part.getLayer();
  std::string at =
      where(layer, "pinfer.ffn_part (" + deviceName(part.getDevice()) + ")");
  int64_t count = part.getCount();
  out.clear();
  if (Attribute neurons = part.getNeuronsAttr()) {
    auto table = getNeuronTable(neurons);
    if (!table) {
      error = at + "neuron table resource has no data";
      return false;
    }
    if (int64_t(table->size()) != count) {
      error = at + "table of " + std::to_string(table->size()) +
              " neurons, expected count = " + std::to_string(count);
      return false;
    }
    for (int32_t n : *table)
      out.push_back(uint32_t(n));
    return true;
  }
  int64_t offset = part.getOffsetAttr() ? part.getOffsetAttr().getInt() : 0;
  if (offset < 0 || count < 0 || offset + count > nFF) {
    error = at + "range [" + std::to_string(offset) + ", " +
            std::to_string(offset + count) + ") outside [0, " +
            std::to_string(nFF) + ")";
    return false;
  }
  // A range indexes the permuted rows; all three weights must agree on
  // the permutation or the packed gate, up and down rows would not match.
  Attribute gateAttr;
  SmallVector<int32_t> order;
  if (!weightOrder(part.getGate(), nFF, layer, gateAttr, order, error))
    return false;
  for (Value w : {part.getUp(), part.getDown()}) {
    Attribute attr;
    SmallVector<int32_t> other;
    if (!weightOrder(w, nFF, layer, attr, other, error))
      return false;
    if (attr != gateAttr) {
      error = at + "gate, up and down carry different neuron_order tables, "
                   "expected one permutation";
      return false;
    }
  }
  for (int64_t i = offset; i < offset + count; ++i)
    out.push_back(order.empty() ? uint32_t(i) : uint32_t(order[i]));
  return true;
}

// Checks a weight's type against the model's tensor of the same name.
bool checkType(Value v, const ModelSpec &spec, int64_t layer,
               std::string &error) {
  auto weight = v.getDefiningOp<WeightOp>();
  auto type = cast<WeightType>(v.getType());
  const TensorSpec *t = weight ? spec.tensor(weight.getName().str()) : nullptr;
  if (!t) {
    error = where(layer, "pinfer.ffn_part") + "weight '" +
            (weight ? weight.getName().str() : std::string("?")) +
            "' is not a tensor of the model";
    return false;
  }
  if (type.getDtype() != t->type) {
    error = where(layer, "pinfer.weight \"" + weight.getName().str() + "\"") +
            "type " + std::string(typeName(type.getDtype())) +
            ", the model stores " + typeName(t->type);
    return false;
  }
  return true;
}

StepDevice stepDevice(Device d) {
  return d == Device::gpu ? StepDevice::Gpu : StepDevice::Cpu;
}

// The FFN half behind `v`: its result, or that result moved by a
// pinfer.transfer; null otherwise.
FFNPartOp halfBehind(Value v) {
  if (auto transfer = v.getDefiningOp<TransferOp>())
    v = transfer.getInput();
  return v.getDefiningOp<FFNPartOp>();
}

// The FFN output behind `v`: a merge of two halves, or one half (moved or
// not); sets `from` as FfnAdd reads it. False otherwise.
bool ffnOutputBehind(Value v, int64_t &layer, StepDevice &from) {
  if (auto merge = v.getDefiningOp<MergeOp>()) {
    if (FFNPartOp half = halfBehind(merge.getLhs())) {
      layer = half.getLayer();
      from = StepDevice::None;
      return true;
    }
    return false;
  }
  if (FFNPartOp half = halfBehind(v)) {
    layer = half.getLayer();
    from = stepDevice(half.getDevice());
    return true;
  }
  return false;
}

// A GPU attention's output, brought back to the host: the attention step
// itself moves its input up and its output down (runtime/program.h), so
// the transfers around it are not steps of their own.
AttentionOp attentionBehind(Value v) {
  if (auto t = v.getDefiningOp<TransferOp>())
    v = t.getInput();
  return v.getDefiningOp<AttentionOp>();
}
// Whether a transfer moves a GPU attention's or the GPU head's input or
// output: those are the attention step's own, and the head's (which runs
// after the steps: the executor normalises on the host, sends the result
// up and brings the logits back).
bool ownedTransfer(TransferOp t) {
  // The embedding's copy up is the token's upload, before the layers, when
  // the residual stream stays on the GPU.
  if (t.getInput().getDefiningOp<AttentionOp>() ||
      t.getInput().getDefiningOp<LMHeadOp>() ||
      t.getInput().getDefiningOp<EmbeddingOp>())
    return true;
  for (Operation *user : t->getUsers())
    if (isa<AttentionOp, LMHeadOp>(user))
      return true;
  return false;
}

// `v` through a post-norm (Gemma 3): the attention or FFN output a
// pinfer.rms_norm of a block's output reads; `v` itself otherwise.
Value throughPostNorm(Value v) {
  auto norm = v.getDefiningOp<RmsNormOp>();
  if (!norm)
    return v;
  Value in = norm.getInput();
  int64_t layer;
  StepDevice from;
  if (attentionBehind(in) || ffnOutputBehind(in, layer, from))
    return in;
  return v;
}

// The layer whose FFN reads `v` (an ffn_part or predict, directly or
// through a transfer to the GPU); -1 when nothing does.
int64_t ffnReaderLayer(Value v) {
  for (Operation *user : v.getUsers()) {
    if (auto part = dyn_cast<FFNPartOp>(user))
      return part.getLayer();
    if (auto predict = dyn_cast<PredictOp>(user))
      return predict.getLayer();
    if (auto transfer = dyn_cast<TransferOp>(user))
      if (transfer.getTo() == Device::gpu)
        if (int64_t l = ffnReaderLayer(transfer.getResult()); l >= 0)
          return l;
  }
  return -1;
}

// One op of the scheduled function as a step of a layer. The executor runs
// a step on fixed buffers (runtime/program.h), so an op becomes a step only
// where its operands are the values that step reads: a norm feeds an
// attention or an FFN, an add sums an attention's or an FFN's output into
// the residual, a transfer moves the FFN input up or a GPU half's output
// down. `current` is the layer of the step before (a record belongs to the
// GPU work issued before it). Sets `layer` and `step`, or `why`.
void readStep(Operation &op, int64_t current,
              const llvm::DenseMap<Operation *, int64_t> &recordLayer,
              int64_t &layer, ProgramStep &step, std::string &why) {
  layer = -1;
  // Norms and adds run on the host unless the residual stream stays on the
  // GPU (pinfer-schedule).
  if (isa<RmsNormOp, AddOp>(op))
    if (auto device = op.getAttrOfType<DeviceAttr>("device"))
      step.device = stepDevice(device.getValue());
  if (auto norm = dyn_cast<RmsNormOp>(op)) {
    // A norm of a block's output (Gemma 3's post norms).
    if (auto attn = attentionBehind(norm.getInput())) {
      step.kind = StepKind::AttnPostNorm;
      layer = attn.getLayer();
      return;
    }
    if (ffnOutputBehind(norm.getInput(), layer, step.from)) {
      step.kind = StepKind::FfnPostNorm;
      return;
    }
    for (Operation *user : norm->getUsers()) {
      // Directly, or through the transfer to a GPU attention.
      if (auto t = dyn_cast<TransferOp>(user))
        for (Operation *u : t->getUsers())
          if (isa<AttentionOp>(u))
            user = u;
      if (auto attn = dyn_cast<AttentionOp>(user)) {
        step.kind = StepKind::AttnNorm;
        layer = attn.getLayer();
        return;
      }
    }
    step.kind = StepKind::FfnNorm;
    layer = ffnReaderLayer(norm.getResult());
    if (layer < 0)
      why = "its result feeds neither an attention nor an FFN half";
  } else if (auto attn = dyn_cast<AttentionOp>(op)) {
    step.kind = StepKind::Attention;
    step.device = stepDevice(attn.getDevice().value_or(Device::cpu));
    layer = attn.getLayer();
  } else if (auto add = dyn_cast<AddOp>(op)) {
    // The residual is one operand, the block's output (normed or not) the
    // other.
    for (Value v : {add.getRhs(), add.getLhs()}) {
      v = throughPostNorm(v);
      if (auto a = attentionBehind(v)) {
        step.kind = StepKind::AttnAdd;
        layer = a.getLayer();
        return;
      }
      if (ffnOutputBehind(v, layer, step.from)) {
        step.kind = StepKind::FfnAdd;
        return;
      }
    }
    why = "adds neither an attention's nor an FFN's output to the residual";
  } else if (auto transfer = dyn_cast<TransferOp>(op)) {
    step.kind = StepKind::Transfer;
    step.device = stepDevice(transfer.getTo());
    if (transfer.getTo() == Device::gpu) {
      layer = ffnReaderLayer(transfer.getResult());
      if (layer < 0 || !transfer.getInput().getDefiningOp<RmsNormOp>())
        why = "moves to the GPU a value other than an FFN input, the only "
              "one the runtime uploads";
    } else {
      auto half = transfer.getInput().getDefiningOp<FFNPartOp>();
      if (half && half.getDevice() == Device::gpu)
        layer = half.getLayer();
      else
        why = "moves to the host a value other than a GPU half's output, the "
              "only one the runtime downloads";
    }
  } else if (auto part = dyn_cast<FFNPartOp>(op)) {
    step.kind = StepKind::FfnHalf;
    step.device = stepDevice(part.getDevice());
    layer = part.getLayer();
  } else if (auto predict = dyn_cast<PredictOp>(op)) {
    step.kind = StepKind::Predict;
    step.device = stepDevice(predict.getDevice().value_or(Device::cpu));
    layer = predict.getLayer();
  } else if (isa<RecordOp>(op)) {
    step.kind = StepKind::Record;
    layer = current;
    if (layer < 0)
      why = "records before any layer's GPU work";
  } else if (auto wait = dyn_cast<WaitOp>(op)) {
    step.kind = StepKind::Wait;
    auto it = recordLayer.find(wait.getEvent().getDefiningOp());
    if (it != recordLayer.end())
      layer = it->second;
    else
      why = "waits for an event no pinfer.record before it made";
  } else if (auto merge = dyn_cast<MergeOp>(op)) {
    step.kind = StepKind::Merge;
    FFNPartOp a = halfBehind(merge.getLhs()), b = halfBehind(merge.getRhs());
    if (a && b && a.getLayer() == b.getLayer() &&
        a.getDevice() != b.getDevice())
      layer = a.getLayer();
    else
      why = "sums values other than one layer's GPU and CPU halves";
  } else {
    why = "no runtime step runs it";
  }
}

// Each layer's steps: the ops of the scheduled function in block order.
// Weights are bound at start-up and the embedding and head run before and
// after the layers, so none of them is a step; every other op is one, or
// the module is refused with the op and its layer.
bool readSteps(ModuleOp module, std::vector<LayerDesc> &layers,
               std::string &error) {
  const int64_t nLayer = int64_t(layers.size());
  func::FuncOp forward;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    if (forward || !func.getBody().hasOneBlock()) {
      error = "scheduled IR: function @" + func.getSymName().str() +
              ": expected one forward function of one block";
      return false;
    }
    forward = func;
  }
  if (!forward) {
    error = "scheduled IR: no function with a body, expected @forward";
    return false;
  }
  int64_t current = -1; // the layer of the last step
  bool afterHead = false;
  llvm::DenseMap<Operation *, int64_t> recordLayer;
  bool attentionCopyPending = false;
  llvm::SmallPtrSet<Operation *, 8> foldedRecords;
  for (Operation &op : forward.getBody().front()) {
    if (isa<WeightOp, func::ReturnOp>(op))
      continue;
    const std::string name = op.getName().getStringRef().str();
    if (isa<EmbeddingOp>(op)) {
      if (current >= 0) {
        error = where(current, name) + "after the layer's steps, expected it "
                                       "before layer 0";
        return false;
      }
      continue;
    }
    if (isa<LMHeadOp>(op)) {
      afterHead = true;
      continue;
    }
    // The copies of a GPU attention's (or head's) input and output, and the
    // record and wait that complete the second, are its own.
    if (auto t = dyn_cast<TransferOp>(op))
      if (ownedTransfer(t)) {
        if (t.getTo() == Device::cpu)
          attentionCopyPending = true;
        continue;
      }
    if (isa<RecordOp>(op) && attentionCopyPending) {
      attentionCopyPending = false;
      foldedRecords.insert(&op);
      continue;
    }
    if (auto wait = dyn_cast<WaitOp>(op))
      if (foldedRecords.count(wait.getEvent().getDefiningOp()))
        continue;
    int64_t layer = -1;
    ProgramStep step;
    std::string why;
    readStep(op, current, recordLayer, layer, step, why);
    if (!why.empty()) {
      error =
          where(layer >= 0 ? layer : std::max<int64_t>(current, 0), name) + why;
      return false;
    }
    if (layer < 0 || layer >= nLayer) {
      error = where(layer, name) + "layer out of [0, " +
              std::to_string(nLayer) + ")";
      return false;
    }
    // The executor runs the layers one after the other, each to its end.
    if (layer < current || afterHead) {
      error = where(layer, name) + "comes after " +
              (afterHead ? std::string("pinfer.lm_head")
                         : "steps of layer " + std::to_string(current)) +
              ", expected each layer's ops together, in layer order";
      return false;
    }
    if (isa<RecordOp>(op))
      recordLayer[&op] = layer;
    if (auto offset = op.getAttrOfType<IntegerAttr>("pinfer.offset"))
      step.arenaOffset = offset.getInt();
    layers[layer].steps.push_back(step);
    current = layer;
  }

  // What the runtime computes once per layer and token must be there once:
  // a step list that left out a half, a merge or an add would run, and
  // compute something else.
  for (int64_t l = 0; l < nLayer; ++l) {
    const LayerDesc &d = layers[l];
    int count[kNumStepKinds] = {};
    int halves[3] = {}, predicts[3] = {};
    for (const ProgramStep &s : d.steps) {
      count[int(s.kind)] += 1;
      if (s.kind == StepKind::FfnHalf)
        halves[int(s.device)] += 1;
      if (s.kind == StepKind::Predict)
        predicts[int(s.device)] += 1;
    }
    const bool both = !d.hot.empty() && !d.cold.empty();
    struct {
      StepKind kind;
      int expected;
    } want[] = {{StepKind::AttnNorm, 1},
                {StepKind::Attention, 1},
                {StepKind::AttnAdd, 1},
                {StepKind::FfnNorm, 1},
                {StepKind::Merge, both ? 1 : 0},
                {StepKind::FfnAdd, 1},
                {StepKind::Wait, count[int(StepKind::Record)]},
                // Post norms where the layer has them, once.
                {StepKind::AttnPostNorm,
                 std::min(count[int(StepKind::AttnPostNorm)], 1)},
                {StepKind::FfnPostNorm,
                 std::min(count[int(StepKind::FfnPostNorm)], 1)}};
    for (auto w : want)
      if (count[int(w.kind)] != w.expected) {
        error = "scheduled IR: layer " + std::to_string(l) + " has " +
                std::to_string(count[int(w.kind)]) + " " +
                stepKindName(w.kind) + " steps, expected " +
                std::to_string(w.expected);
        return false;
      }
    if (halves[int(StepDevice::Gpu)] != int(!d.hot.empty()) ||
        halves[int(StepDevice::Cpu)] != int(!d.cold.empty())) {
      error = "scheduled IR: layer " + std::to_string(l) +
              ": the FFN half steps do not match the halves, expected one "
              "per device that owns neurons";
      return false;
    }
    // A predictor per predicted half, on the half's device, and one at
    // least where the layer has a predictor.
    const int nPredicts =
        predicts[int(StepDevice::Cpu)] + predicts[int(StepDevice::Gpu)];
    if (predicts[int(StepDevice::None)] != 0 ||
        predicts[int(StepDevice::Cpu)] > halves[int(StepDevice::Cpu)] ||
        predicts[int(StepDevice::Gpu)] > halves[int(StepDevice::Gpu)] ||
        (d.predictorRank > 0) != (nPredicts > 0)) {
      error = "scheduled IR: layer " + std::to_string(l) + " has " +
              std::to_string(nPredicts) +
              " predict steps, expected one on the device of each "
              "predicted half" +
              (d.predictorRank ? "" : " (the layer has no predictor)");
      return false;
    }
  }
  return true;
}

} // namespace

// The types and extras of layer l's attention, from the model's tensors.
static bool attentionDesc(const ModelSpec &spec, int64_t l, AttentionDesc &a,
                          std::string &error) {
  auto type = [&](const char *kind, GGMLType &out) {
    const std::string name =
        "blk." + std::to_string(l) + ".attn_" + kind + ".weight";
    const TensorSpec *t = spec.tensor(name);
    if (!t) {
      error = "layer " + std::to_string(l) + ": no " + name +
              " for the attention the plan puts on the GPU";
      return false;
    }
    out = t->type;
    return true;
  };
  const std::string blk = "blk." + std::to_string(l) + ".";
  a.bias = spec.tensor(blk + "attn_q.bias") != nullptr;
  a.qkNorm = spec.tensor(blk + "attn_q_norm.weight") != nullptr;
  a.window = spec.params.isSlidingLayer(int(l)) ? spec.params.slidingWindow : 0;
  return type("q", a.wq) && type("k", a.wk) && type("v", a.wv) &&
         type("output", a.wo);
}

bool programFromModule(ModuleOp scheduled, const ModelSpec &spec,
                       const std::string &modelName, const std::string &target,
                       const std::string &smArch, ProgramDesc &out,
                       std::string &error) {
  out = ProgramDesc();
  out.params = spec.params;
  out.modelName = modelName;
  out.target = target;
  out.smArch = smArch;
  const int64_t nLayer = spec.params.nLayer, nFF = spec.params.nFF;
  if (nLayer <= 0 || nFF <= 0) {
    error = "scheduled IR: model of " + std::to_string(nLayer) + " layers of " +
            std::to_string(nFF) + " neurons, expected positive sizes";
    return false;
  }

  auto memory = scheduled->getAttrOfType<DictionaryAttr>("pinfer.memory");
  auto total = memory ? memory.getAs<IntegerAttr>("vram_total") : IntegerAttr();
  if (!total || total.getInt() < 0) {
    error = "scheduled IR: module attribute pinfer.memory.vram_total is "
            "missing, expected the output of pinfer-plan-memory";
    return false;
  }
  out.vramBillBytes = uint64_t(total.getInt());
  // The bill's parts, for the executable to bill its own -c.
  auto part = [&](DictionaryAttr dict, StringRef name, int64_t &to) {
    auto v = dict ? dict.getAs<IntegerAttr>(name) : IntegerAttr();
    if (!v || v.getInt() < 0) {
      error = "scheduled IR: module attribute pinfer.memory is missing " +
              name.str() + ", expected the output of pinfer-plan-memory";
      return false;
    }
    to = v.getInt();
    return true;
  };
  auto shape = memory.getAs<DictionaryAttr>("vram_workspace_shape");
  int64_t fixed = 0, kvPerPosition = 0;
  GpuWorkspace &ws = out.vramBill.workspace;
  if (!part(memory, "vram_fixed", fixed) ||
      !part(memory, "vram_kv_per_position", kvPerPosition))
    return false;
  for (const WorkspaceField &f : kWorkspaceFields)
    if (!part(shape, f.ir, ws.*f.member))
      return false;
  for (const WorkspaceFlag &f : kWorkspaceFlags) {
    int64_t flag = 0;
    if (!part(shape, f.ir, flag))
      return false;
    ws.*f.member = flag != 0;
  }
  out.vramBill.fixed = uint64_t(fixed);
  out.vramBill.kvPerPosition = uint64_t(kvPerPosition);
  out.vramBill.gpu = out.vramBillBytes > 0;

  std::vector<LayerRead> read(nLayer);
  bool ok = true;
  bool sawMode = false, sawThreshold = false;
  bool gpuExactOnly =
      false; // every half so far a GPU half skipping exact zeros
  SparsityMode mode = SparsityMode::Exact;
  float threshold = 0.f;
  auto fail = [&](std::string message) {
    if (ok)
      error = std::move(message);
    ok = false;
    return WalkResult::interrupt();
  };
  scheduled.walk([&](Operation *op) -> WalkResult {
    if (auto ffn = dyn_cast<FFNOp>(op))
      return fail(where(ffn.getLayer(), "pinfer.ffn") +
                  "not split into halves, expected the output of "
                  "pinfer-place");
    if (auto attn = dyn_cast<AttentionOp>(op)) {
      int64_t l = attn.getLayer();
      if (l < 0 || l >= nLayer)
        return fail(where(l, "pinfer.attention") + "layer out of [0, " +
                    std::to_string(nLayer) + ")");
      read[l].sawAttention = true;
      read[l].attentionOnGPU = attn.getDevice() == Device::gpu;
      return WalkResult::advance();
    }
    if (auto head = dyn_cast<LMHeadOp>(op)) {
      if (head.getDevice() != Device::gpu)
        return WalkResult::advance();
      if (smArch.empty())
        return fail("scheduled IR: pinfer.lm_head: placed on the GPU, but the "
                    "target has no GPU (no sm arch)");
      const TensorSpec *w =
          spec.tensor(spec.tiedOutput ? "token_embd.weight" : "output.weight");
      if (!w)
        return fail("scheduled IR: pinfer.lm_head: the model has no output "
                    "matrix for the head the plan puts on the GPU");
      out.headOnGPU = true;
      out.headType = w->type;
      return WalkResult::advance();
    }
    auto part = dyn_cast<FFNPartOp>(op);
    if (!part)
      return WalkResult::advance();
    int64_t l = part.getLayer();
    std::string at =
        where(l, "pinfer.ffn_part (" + deviceName(part.getDevice()) + ")");
    if (l < 0 || l >= nLayer)
      return fail(at + "layer out of [0, " + std::to_string(nLayer) + ")");
    if (part.getNumNeurons() != nFF)
      return fail(at + "weights of " + std::to_string(part.getNumNeurons()) +
                  " neurons, the model has n_ff = " + std::to_string(nFF));
    FFNPartOp &slot = read[l].part[part.getDevice() == Device::gpu];
    if (slot)
      return fail(at + "a second half on the same device, expected at most "
                       "one per device");
    slot = part;
    SparsityMode m = toMode(part.getSparsity());
    // In a predicted program a GPU half may skip exact zeros instead of
    // running a predictor (as pinferc before its GPU predictors made
    // them): it agrees with either mode.
    const bool gpuExact =
        part.getDevice() == Device::gpu && m == SparsityMode::Exact;
    if (sawMode && m != mode &&
        !(gpuExact && mode == SparsityMode::Predicted) &&
        !(gpuExactOnly && m == SparsityMode::Predicted))
      return fail(at + "sparsity " +
                  stringifySparsity(part.getSparsity()).str() +
                  " differs from the other halves' " + sparsityModeName(mode));
    if (!sawMode || !gpuExact)
      mode = m;
    gpuExactOnly = (gpuExactOnly || !sawMode) && gpuExact;
    sawMode = true;
    Value mask = part.getMask();
    if (m != SparsityMode::Predicted)
      return WalkResult::advance();
    auto predict = mask ? mask.getDefiningOp<PredictOp>() : PredictOp();
    if (!predict)
      return fail(at + "predicted sparsity without a pinfer.predict mask");
    if (predict.getWeights().size() != 2)
      return fail(where(l, "pinfer.predict") +
                  "predicts from the gate magnitude, expected learned "
                  "fc1/fc2 predictors (the program description has no "
                  "gate-magnitude rule)");
    float t = predict.getThreshold().convertToFloat();
    if (sawThreshold && t != threshold)
      return fail(where(l, "pinfer.predict") + "threshold " +
                  std::to_string(t) + " differs from the other predictors' " +
                  std::to_string(threshold));
    sawThreshold = true;
    threshold = t;
    return WalkResult::advance();
  });
  if (!ok)
    return false;
  if (!sawMode) {
    error = "scheduled IR: no pinfer.ffn_part ops, expected the output of "
            "pinfer-place for a model of " +
            std::to_string(nLayer) + " layers";
    return false;
  }
  out.mode = mode;
  out.predictorThreshold = mode == SparsityMode::Predicted ? threshold : 0.f;

  out.layers.resize(nLayer);
  std::vector<uint8_t> seen(nFF);
  for (int64_t l = 0; l < nLayer; ++l) {
    LayerRead &r = read[l];
    LayerDesc &d = out.layers[l];
    FFNPartOp cpu = r.part[0], gpu = r.part[1];
    FFNPartOp any = gpu ? gpu : cpu;
    if (!any) {
      error = where(l, "pinfer.ffn_part") +
              "missing, expected one or two halves for every layer";
      return false;
    }
    if (!r.sawAttention) {
      error = where(l, "pinfer.attention") + "missing";
      return false;
    }
    if (cpu && gpu && cpu.getGate() != gpu.getGate()) {
      error = where(l, "pinfer.ffn_part") +
              "the two halves read different gate weights, expected the "
              "layer's one";
      return false;
    }
    if (cpu && !ownedNeurons(cpu, nFF, d.cold, error))
      return false;
    if (gpu && !ownedNeurons(gpu, nFF, d.hot, error))
      return false;
    if (smArch.empty() && (!d.hot.empty() || r.attentionOnGPU)) {
      error = where(l, d.hot.empty() ? "pinfer.attention" : "pinfer.ffn_part") +
              "placed on the GPU, but the target has no GPU (no sm arch)";
      return false;
    }
    d.attentionOnGPU = r.attentionOnGPU;
    if (d.attentionOnGPU && !attentionDesc(spec, l, d.attention, error))
      return false;

    // Every neuron exactly once across the two halves.
    std::fill(seen.begin(), seen.end(), 0);
    for (const std::vector<uint32_t> *half : {&d.hot, &d.cold})
      for (uint32_t n : *half) {
        if (n >= uint32_t(nFF) || seen[n]) {
          error =
              where(l, "pinfer.ffn_part") + "neuron " + std::to_string(n) +
              (n >= uint32_t(nFF) ? " is out of range" : " is owned twice") +
              ", expected each of the " + std::to_string(nFF) +
              " neurons exactly once across the halves";
          return false;
        }
        seen[n] = 1;
      }
    if (d.hot.size() + d.cold.size() != size_t(nFF)) {
      error = where(l, "pinfer.ffn_part") + "halves own " +
              std::to_string(d.hot.size() + d.cold.size()) + " of " +
              std::to_string(nFF) + " neurons, expected all of them";
      return false;
    }
    // The GPU half in id order: a split layout's down kernel reads the
    // numbers of a source block once for the block's neurons that are
    // adjacent in its list (CudaSplitDown.h), and its chunks of neurons
    // then hold as many hot neurons of every firing rate. The plan's
    // hottest-first order has done its work (which neurons are hot).
    std::sort(d.hot.begin(), d.hot.end());

    if (!checkType(any.getGate(), spec, l, error) ||
        !checkType(any.getUp(), spec, l, error) ||
        !checkType(any.getDown(), spec, l, error))
      return false;
    d.gateType = cast<WeightType>(any.getGate().getType()).getDtype();
    d.upType = cast<WeightType>(any.getUp().getType()).getDtype();
    d.downType = cast<WeightType>(any.getDown().getType()).getDtype();
    d.downTType = transposedDownType(d.downType);
    // A file that holds the down projection only transposed (PowerInfer's
    // converter) keeps its rows where their type allows (a q4_0 file's
    // rows stay q4_0, not f32).
    if (const TensorSpec *t =
            spec.tensor(tensorName(TensorKind::FfnDownT, int(l))))
      d.downTType = packedTypeOfTransposed(t->type);
    // A dense layer wholly on the CPU reads every neuron's down column, so
    // it keeps the source matrix and multiplies it as the dense reference
    // does: a row of the output at a time, four prompt tokens per pass,
    // the integer-free f32 products of its type. Against the neuron-major
    // rows the sparse layouts need, that is the smaller read where those
    // rows would be decoded f32 (block types whose blocks run along the
    // neuron axis), and for Q8_0/Q4_0 the faster product (a 1B q4_0 token
    // decoded 1.5x faster than through the split rows). Its product needs
    // the neurons in source order, and the file's ffn_down (PowerInfer's
    // converter may write only the transpose).
    if (mode == SparsityMode::Dense && d.hot.empty() &&
        spec.tensor(tensorName(TensorKind::FfnDown, int(l)))) {
      d.sourceDown = true;
      std::sort(d.cold.begin(), d.cold.end());
    }
    // So does a dense layer wholly on the GPU of a block type
    // (runtime/vram_bill.h): its down kernel is then a matvec over the
    // source rows, of the reference's 8-bit products and with tensor-core
    // tiles for a prompt, which a token reads at the source's size (SplitK's
    // rows, of the K-quants, Q4_1 and Q5_x, are a byte a weight and the
    // tables). The VRAM bills (placement, pinfer-plan-memory) ask the same
    // predicate.
    if (mode == SparsityMode::Dense && d.cold.empty() && !d.hot.empty() &&
        denseGpuKeepsSourceDown(d.downType) &&
        spec.tensor(tensorName(TensorKind::FfnDown, int(l)))) {
      d.sourceDown = true;
    }

    if (mode == SparsityMode::Threshold) {
      // One threshold per layer: both halves skip the same neurons they
      // would skip if the layer were not split.
      FloatAttr t = any.getThresholdAttr();
      if (!t ||
          (cpu && gpu && cpu.getThresholdAttr() != gpu.getThresholdAttr())) {
        error = where(l, "pinfer.ffn_part") +
                (t ? "the halves have different thresholds"
                   : "threshold sparsity without a threshold") +
                ", expected one threshold per layer";
        return false;
      }
      d.actThreshold = t.getValue().convertToFloat();
      continue;
    }
    if (mode != SparsityMode::Predicted)
      continue;
    // Both halves' predictors share fc1/fc2; fc2's rows must follow the
    // weights' permutation so that bit i scores packed neuron i.
    for (FFNPartOp part : {gpu, cpu}) {
      if (!part || !part.getMask()) // a GPU half that skips exact zeros
        continue;
      auto predict = part.getMask().getDefiningOp<PredictOp>();
      auto fc1 = cast<WeightType>(predict.getWeights()[0].getType());
      auto fc2w = predict.getWeights()[1].getDefiningOp<WeightOp>();
      auto gatew = part.getGate().getDefiningOp<WeightOp>();
      if (fc1.getShape().size() != 2 ||
          fc1.getRowLength() != spec.params.nEmbd || fc1.getShape()[1] < 1) {
        error = where(l, "pinfer.predict") +
                "fc1 is not {n_embd, R}, expected {" +
                std::to_string(spec.params.nEmbd) + ", R}";
        return false;
      }
      uint32_t rank = uint32_t(fc1.getShape()[1]);
      if (d.predictorRank && d.predictorRank != rank) {
        error = where(l, "pinfer.predict") +
                "the halves' predictors have "
                "ranks " +
                std::to_string(d.predictorRank) + " and " +
                std::to_string(rank) + ", expected one predictor per layer";
        return false;
      }
      d.predictorRank = rank;
      // As the packed weights store them (packedPredictorType).
      auto fc2 = cast<WeightType>(predict.getWeights()[1].getType());
      d.fc1Type = packedPredictorType(fc1.getDtype(), fc1.getRowLength());
      d.fc2Type = packedPredictorType(fc2.getDtype(), fc2.getRowLength());
      // The GPU's fc1 multiplies the hot half's input as it goes up: its
      // 8-bit values where gate and up take those.
      if (part == gpu && hotInputQ8(d.gateType, d.upType) &&
          !usesQ8Act(d.fc1Type)) {
        error = where(l, "pinfer.predict") + "fc1 of type " +
                typeName(d.fc1Type) +
                " on the GPU beside 8-bit gate and up inputs, expected an "
                "fc1 that multiplies 8-bit activations";
        return false;
      }
      if (part.getOffsetAttr() && fc2w && gatew &&
          fc2w.getNeuronOrderAttr() != gatew.getNeuronOrderAttr()) {
        error = where(l, "pinfer.predict") +
                "fc2 rows are not permuted like the FFN weights, expected "
                "the same neuron_order";
        return false;
      }
    }
  }
  if (!readSteps(scheduled, out.layers, error))
    return false;
  out.embedOnGPU = out.headOnGPU && spec.tiedOutput && !out.layers.empty() &&
                   residualOnGpu(out.layers[0].steps.data(),
                                 uint32_t(out.layers[0].steps.size()));
  return true;
}

bool modelSpecOf(const Model &model, ModelSpec &spec, std::string &name,
                 std::string &error) {
  if (!readModelSpec(model.file(), spec, error))
    return false;
  spec.params = model.params();
  std::string ignored;
  if (!model.file().getOptString("general.name", name, ignored))
    name.clear();
  return true;
}

bool programFromModule(ModuleOp scheduled, const Model &model,
                       const std::string &target, const std::string &smArch,
                       ProgramDesc &out, std::string &error) {
  ModelSpec spec;
  std::string name;
  if (!modelSpecOf(model, spec, name, error))
    return false;
  return programFromModule(scheduled, spec, name, target, smArch, out, error);
}

bool compileToProgram(const ModelSpec &spec, const std::string &modelName,
                      const Plan &plan, SparsityMode mode,
                      const std::string &target, const std::string &smArch,
                      const PipelineOptions &options, ProgramDesc &out,
                      std::string &error, std::ostream *printScheduled) {
  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext ctx(registry);
  OwningOpRef<ModuleOp> module = importModel(ctx, spec, error);
  if (!module)
    return false;
  // A target without a GPU runs everything on the CPU whatever the plan
  // says; say so in the IR too, so that it is what the passes see.
  const Plan *placed = &plan;
  Plan cold;
  if (smArch.empty()) {
    cold = plan;
    for (LayerPlan &lp : cold.layers) {
      lp.nHot = 0;
      lp.attentionOnGPU = false;
    }
    cold.outputOnGPU = false;
    placed = &cold;
  }
  PipelineOptions o = options;
  o.sparsity = sparsityModeName(mode);
  if (!attachPlan(*module, *placed, error) ||
      !runStages(*module, EmitStage::Scheduled, o, error))
    return false;
  if (printScheduled) {
    llvm::raw_os_ostream os(*printScheduled);
    module->print(os);
  }
  return programFromModule(*module, spec, modelName, target, smArch, out,
                           error);
}

bool compileToProgram(const Model &model, const Plan &plan, SparsityMode mode,
                      const std::string &target, const std::string &smArch,
                      const PipelineOptions &options, ProgramDesc &out,
                      std::string &error, std::ostream *printScheduled) {
  ModelSpec spec;
  std::string name;
  if (!modelSpecOf(model, spec, name, error))
    return false;
  return compileToProgram(spec, name, plan, mode, target, smArch, options, out,
                          error, printScheduled);
}

} // namespace pinfer
