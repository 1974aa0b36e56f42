// The cost model: model shape, target figures and trace frequencies become a
// PlacementProblem whose objective is the expected bytes the GPU reads per
// token (time saved is that times a per-target constant, so maximising bytes
// maximises saved time).
#include "compiler/placement/CostModel.h"
#include "runtime/program.h"
#include "runtime/vram_bill.h"

#include "compiler/Trace.h"
#include "runtime/arch.h"
#include "runtime/gguf.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>

namespace pinfer {

namespace {

// Bounds the layer count a file can make the cost model allocate for.
constexpr int kMaxLayers = 4096;

uint64_t rowBytesOr0(GGMLType type, int64_t n) {
  const TypeTraits *info = typeTraits(type);
  if (!info || n % info->blockSize)
    return 0;
  return rowBytes(type, n);
}

// One neuron's row of the packed transposed down projection; 0 when its
// type has no whole rows of n_embd: SplitQ8/SplitQ4's quants run in the
// source's blocks; rows in their own type; SplitK's a byte an output,
// whatever n_embd (Gemma 3 270M's 640 is no multiple of a K-quant's 256).
uint64_t downRowBytes(GGMLType source, int64_t nEmbd) {
  if (downLayoutFor(source) == DownLayout::Rows)
    return rowBytesOr0(transposedDownType(source), nEmbd);
  if (downLayoutFor(source) == DownLayout::SplitK)
    return transposedDownRowBytes(source, nEmbd);
  return rowBytesOr0(source, nEmbd) ? transposedDownRowBytes(source, nEmbd)
                                    : 0;
}

// A dense layer's split down rows of every neuron and their tables less
// the source's down matrix {n_ff, n_embd} of `type` (runtime/vram_bill.h):
// SplitK's a byte a weight beside the source's few bits, Q8_0/Q4_0's the
// same bytes (0).
uint64_t sourceDownSaving(GGMLType type, int64_t nEmbd, int64_t nFF) {
  const uint64_t rows = uint64_t(nFF) * transposedDownRowBytes(type, nEmbd) +
                        splitDownTableBytes(type, nEmbd, nFF),
                 source = uint64_t(nEmbd) * rowBytes(type, nFF);
  return rows > source ? rows - source : 0;
}

// The VRAM figures of a shape whose FFN weights are stored as gate, up and
// down: the bill's (runtime/vram_bill.h).
void setHotVram(ModelShape &s, GGMLType gate, GGMLType up, GGMLType down) {
  const HotFfnVram v = hotFfnVram(gate, up, down, s.nEmbd, s.nFF);
  s.hotNeuronBytes = v.perNeuron;
  s.downScaleBytes = v.perLayer;
}

} // namespace

bool modelShapeFromGGUF(const GGUFFile &file, ModelShape &out,
                        std::string &error, const GGUFFile *predictors) {
  out = ModelShape();
  const std::string &path = file.path();
  // The head count sizes the attention's buffers in the GPU workspace; a
  // file without it places (the loader refuses it later).
  const ArchInfo *arch = archOf(file, error);
  if (!arch || !file.getOptU32(arch->key(ArchKey::HeadCount), out.nHead, error))
    return false;
  const GGUFTensor *embd = nullptr, *output = nullptr;
  uint32_t nLayer = 0;
  for (const GGUFTensor &t : file.tensors()) {
    TensorKind kind;
    int l;
    if (!parseTensorName(t.name, kind, l))
      continue;
    if (kind == TensorKind::TokenEmbd)
      embd = &t;
    else if (kind == TensorKind::Output)
      output = &t;
    else if (l >= kMaxLayers) {
      error = path + ": tensor " + t.name + ": layer " + std::to_string(l) +
              ", expected fewer than " + std::to_string(kMaxLayers) + " layers";
      return false;
    } else if (l >= 0)
      nLayer = std::max(nLayer, uint32_t(l) + 1);
  }
  if (!embd) {
    error = path + ": tensor " + tensorName(TensorKind::TokenEmbd) +
            ": missing, expected the token embedding of a LLaMA-family model";
    return false;
  }
  if (nLayer == 0) {
    error = path + ": no layer tensors (" + layerName(0) +
            ".*), expected at least one layer";
    return false;
  }
  out.nLayer = nLayer;
  out.nEmbd = uint32_t(embd->ne[0]);
  out.nVocab = uint32_t(embd->ne[1]);
  out.embeddingBytes = embd->nbytes;
  out.outputBytes = output ? output->nbytes : embd->nbytes;
  out.attentionBytes.assign(nLayer, 0);
  std::vector<uint64_t> neuron(nLayer, 0);
  std::vector<uint32_t> nFF(nLayer, 0);
  GGMLType ffnTypes[3] = {GGMLType::F32, GGMLType::F32, GGMLType::F32};
  // A layer's predictor: fc1 {n_embd, R} `t` of `from`, with its fc2
  // {R, n_ff} there.
  auto addPredictor = [&](const GGUFFile &from, const GGUFTensor &t, int l) {
    const GGUFTensor *fc2 = from.tensor(tensorName(TensorKind::PredFc2, l));
    if (!fc2 || uint32_t(l) >= nLayer)
      return;
    if (out.predictorVram.size() < nLayer)
      out.predictorVram.resize(nLayer);
    out.predictorVram[l] = predictorVram(t.type, fc2->type, t.ne[0], t.ne[1]);
    out.maxRank = std::max(out.maxRank, uint32_t(t.ne[1]));
  };
  if (predictors)
    for (const GGUFTensor &t : predictors->tensors()) {
      TensorKind kind;
      int l;
      if (parseTensorName(t.name, kind, l) && l >= 0 &&
          kind == TensorKind::PredFc1)
        addPredictor(*predictors, t, l);
    }
  for (const GGUFTensor &t : file.tensors()) {
    TensorKind kind;
    int l;
    if (!parseTensorName(t.name, kind, l) || l < 0)
      continue;
    switch (kind) {
    case TensorKind::AttnNorm:
    case TensorKind::AttnQ:
    case TensorKind::AttnK:
    case TensorKind::AttnV:
    case TensorKind::AttnOutput:
    case TensorKind::FfnNorm:
      out.attentionBytes[l] += t.nbytes;
      if (kind == TensorKind::AttnK)
        out.nKVDim = uint32_t(t.ne[1]);
      if (kind == TensorKind::AttnQ)
        out.qDim = std::max(out.qDim, uint32_t(t.ne[1]));
      break;
    case TensorKind::FfnGate:
    case TensorKind::FfnUp:
      // {n_embd, n_ff}: one row of n_embd elements per neuron
      nFF[l] = uint32_t(t.ne[1]);
      neuron[l] += rowBytesOr0(t.type, t.ne[0]);
      if (kind == TensorKind::FfnGate)
        out.gateBytes = rowBytesOr0(t.type, t.ne[0]);
      else
        out.ffnType = t.type;
      if (l == 0)
        ffnTypes[kind == TensorKind::FfnGate ? 0 : 1] = t.type;
      break;
    case TensorKind::FfnDown:
      // stored {n_ff, n_embd}; the packed file keeps it transposed, one
      // row of n_embd per neuron (quantised sources: the quants per neuron,
      // the block scales per layer), and that is what the GPU holds. A
      // PowerInfer source's own transpose (ffn_down_t) is replaced by it.
      neuron[l] += downRowBytes(t.type, out.nEmbd);
      if (l == 0)
        ffnTypes[2] = t.type;
      out.downTableBytes.resize(nLayer);
      out.downTableBytes[l] = splitDownTableBytes(t.type, out.nEmbd, t.ne[0]);
      if (denseGpuKeepsSourceDown(t.type) && rowBytesOr0(t.type, t.ne[0]) &&
          downRowBytes(t.type, out.nEmbd)) {
        out.sourceDownSaving.resize(nLayer);
        out.sourceDownSaving[l] = sourceDownSaving(t.type, out.nEmbd, t.ne[0]);
      }
      break;
    case TensorKind::PredFc1:
      if (!predictors)
        addPredictor(file, t, l);
      break;
    case TensorKind::FfnDownT:
      // A layer stored as PowerInfer's converter writes it, with no
      // ffn_down: its {n_embd, n_ff} transpose stands for it, as the
      // loader binds it (Model::load).
      if (!file.tensor(tensorName(TensorKind::FfnDown, l))) {
        const GGMLType type = downTypeFromTransposed(t.type);
        neuron[l] += downRowBytes(type, out.nEmbd);
        if (l == 0)
          ffnTypes[2] = type;
      }
      break;
    default:
      break;
    }
  }
  out.nFF = nFF[0];
  out.neuronBytes = neuron[0];
  for (uint32_t l = 0; l < nLayer; ++l) {
    if (nFF[l] != out.nFF || nFF[l] == 0) {
      error = path + ": tensor " + tensorName(TensorKind::FfnUp, int(l)) +
              ": n_ff " + std::to_string(nFF[l]) + ", expected " +
              std::to_string(out.nFF) + " as in layer 0 (uniform FFNs only)";
      return false;
    }
    if (neuron[l] != out.neuronBytes || neuron[l] == 0) {
      error = path + ": layer " + std::to_string(l) +
              ": FFN row size differs from layer 0 or is not a whole number "
              "of blocks, expected uniform FFN weights";
      return false;
    }
  }
  // The layers are alike: layer 0's types stand for all.
  setHotVram(out, ffnTypes[0], ffnTypes[1], ffnTypes[2]);
  return true;
}

ModelShape syntheticShape(uint32_t nLayer, uint32_t nFF, uint32_t nEmbd,
                          uint32_t nKVDim, uint32_t nVocab, GGMLType type) {
  ModelShape s;
  s.nLayer = nLayer;
  s.nFF = nFF;
  s.nEmbd = nEmbd;
  s.nKVDim = nKVDim;
  s.nVocab = nVocab;
  s.nHead = std::max(1u, nEmbd / 64);
  s.qDim = nEmbd;
  s.ffnType = type;
  uint64_t row = rowBytesOr0(type, nEmbd);
  s.neuronBytes = 2 * row + downRowBytes(type, nEmbd);
  s.gateBytes = row;
  setHotVram(s, type, type, type);
  if (denseGpuKeepsSourceDown(type) && row && rowBytesOr0(type, nFF))
    s.sourceDownSaving.assign(nLayer, sourceDownSaving(type, nEmbd, nFF));
  uint64_t norms = 2ull * nEmbd * 4;
  s.attentionBytes.assign(nLayer, 2 * uint64_t(nEmbd) * row +
                                      2 * uint64_t(nKVDim) * row + norms);
  s.outputBytes = uint64_t(nVocab) * row;
  s.embeddingBytes = uint64_t(nVocab) * row;
  return s;
}

CostModel costModelFor(const Target &target, const ModelShape &shape) {
  CostModel c;
  c.cpuBytesPerSecond = target.host.memBandwidthGBs * 1e9;
  c.gpuBytesPerSecond = target.gpuBandwidthGBs * 1e9;
  if (target.hasGPU()) {
    // Per layer with a GPU FFN half: its two kernels (up/gate and down),
    // one event wait to merge with the CPU half, and the layer input to the
    // GPU and its output back over PCIe.
    double transfer = 2.0 * shape.nEmbd * 4 / (target.pcieGBs * 1e9);
    c.layerOverheadSeconds =
        (2 * target.launchUs + target.syncUs) * 1e-6 + transfer;
  }
  return c;
}

uint32_t autoGranuleSize(uint32_t nFF) {
  uint32_t g = 32;
  while ((nFF + g - 1) / g > 256)
    g += 32;
  return g;
}

bool buildPlacementInput(const Trace &trace, const ModelShape &shape,
                         const Target &target, const PlacementOptions &opts,
                         PlacementInput &out, std::string &error) {
  out = PlacementInput();
  if (trace.nLayer != shape.nLayer || trace.nFF != shape.nFF) {
    error = "the trace has " + std::to_string(trace.nLayer) + " layers x n_ff " +
            std::to_string(trace.nFF) + "; the model has " +
            std::to_string(shape.nLayer) + " x " + std::to_string(shape.nFF);
    return false;
  }
  if (shape.attentionBytes.size() != shape.nLayer || shape.neuronBytes == 0) {
    error = "model shape is incomplete: per-layer attention sizes or the FFN "
            "row size are missing";
    return false;
  }
  PlacementProblem &p = out.problem;
  uint32_t G = opts.granuleSize ? opts.granuleSize : autoGranuleSize(shape.nFF);
  out.granuleSize = G;
  out.cost = costModelFor(target, shape);
  // A target without a GPU places nothing there, whatever the budget says.
  bool gpu = target.hasGPU();
  p.budget = !gpu              ? 0
             : opts.vramBudget ? opts.vramBudget
                               : target.defaultBudget();
  p.maxGpuLayers = opts.maxGpuLayers;

  // Mandatory bill.
  const uint64_t kvLayer = kvCacheVram(opts.nCtx, shape.nKVDim);
  if (gpu) {
    p.mandatory.push_back({kContextReserveBill, target.contextReserveBytes});
    // The executable's buffers beside the weights and caches
    // (runtime/vram_bill.h), as for a program wholly on the GPU: at least
    // what pinfer-plan-memory bills for the plan chosen.
    GpuWorkspace ws;
    ws.nEmbd = shape.nEmbd;
    ws.nFF = shape.nFF;
    ws.nVocab = shape.nVocab;
    ws.nHead = std::max(1u, shape.nHead);
    ws.qDim = shape.qDim ? shape.qDim : shape.nEmbd;
    ws.kvDim = shape.nKVDim;
    ws.headDim = ws.qDim / ws.nHead;
    ws.nRot = ws.headDim;
    ws.nLayer = shape.nLayer;
    ws.nCtx = opts.nCtx;
    ws.maxRank = opts.reads == NeuronReads::WhenFiring ? shape.maxRank : 0;
    ws.attentionLayers = shape.nLayer;
    ws.head = ws.resident = true;
    p.mandatory.push_back(
        {"GPU workspace (buffers at -c " + std::to_string(opts.nCtx) + ")",
         gpuWorkspaceVram(ws)});
    // The executable's one device allocation: every buffer's alignment and
    // guard, and the rounding to whole pages (at most one page).
    p.mandatory.push_back({"alignment and 2 MiB pages",
                           deviceBuffersVram(shape.nLayer) + kDevicePage});
    if (opts.attention == AttentionPolicy::GPU) {
      uint64_t attn = std::accumulate(shape.attentionBytes.begin(),
                                      shape.attentionBytes.end(), uint64_t(0));
      p.mandatory.push_back({"KV cache at -c " + std::to_string(opts.nCtx),
                             kvLayer * shape.nLayer});
      p.mandatory.push_back({"attention weights (all layers)", attn});
    }
  }
  uint64_t fixed = p.mandatoryBytes();
  if (fixed > p.budget && gpu) {
    std::string parts;
    for (const BillLine &b : p.mandatory)
      parts += (parts.empty() ? "" : ", ") + b.what + " " +
               formatBytes(b.bytes);
    error = "VRAM bill of mandatory parts is " + formatBytes(fixed) + " (" +
            parts + "); budget is " + formatBytes(p.budget) +
            (opts.vramBudget ? " (--vram-budget)" : " (" + target.name + ")");
    return false;
  }

  // Per layer: sort neurons by firing count, hottest first, ties by id so
  // the order is deterministic.
  // Bytes a neuron costs the CPU per token: some every token, the rest
  // per firing.
  double alwaysBytes = 0, firingBytes = double(shape.neuronBytes);
  if (opts.reads == NeuronReads::GateAlways) {
    alwaysBytes = double(shape.gateBytes);
    firingBytes -= alwaysBytes;
  } else if (opts.reads == NeuronReads::Always) {
    alwaysBytes = firingBytes;
    firingBytes = 0;
  }
  out.order.resize(shape.nLayer);
  out.freq.resize(shape.nLayer);
  p.layers.resize(shape.nLayer);
  for (uint32_t l = 0; l < shape.nLayer; ++l) {
    const std::vector<uint64_t> &fired = trace.fired[l];
    std::vector<uint32_t> &order = out.order[l];
    order.resize(shape.nFF);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return fired[a] > fired[b]; });
    std::vector<double> &f = out.freq[l];
    f.resize(shape.nFF);
    for (uint32_t r = 0; r < shape.nFF; ++r)
      f[r] = trace.frequency(l, order[r]);

    LayerProblem &lp = p.layers[l];
    // Predicted mode: the layer's GPU half runs its own predictor.
    const HotFfnVram predictor =
        opts.reads == NeuronReads::WhenFiring && l < shape.predictorVram.size()
            ? shape.predictorVram[l]
            : HotFfnVram();
    // A neuron the trace never saw fire may still fire: its value is that
    // of the rule of succession, (fired + 1) / (tokens + 2), so that VRAM
    // left over holds the tail too (a layer then needs no CPU half) while
    // the measured order decides everything else.
    const double n = double(trace.nTokens);
    for (uint32_t first = 0; first < shape.nFF; first += G) {
      Granule g;
      g.firstRank = first;
      g.count = std::min(G, shape.nFF - first);
      g.bytes = g.count * (shape.hotNeuronBytes + predictor.perNeuron);
      double expected = 0;
      for (uint32_t r = first; r < first + g.count; ++r) {
        g.firings += f[r];
        expected += (double(fired[order[r]]) + 1) / (n + 2);
      }
      g.utility = expected * firingBytes + g.count * alwaysBytes;
      lp.granules.push_back(g);
    }
    // A layer's GPU half needs the down projection's block scales whole
    // and, in predicted mode, its predictor's fc1 (pinfer-insert-predictors
    // gives each half its own).
    const uint64_t tables = l < shape.downTableBytes.size()
                                ? shape.downTableBytes[l]
                                : shape.downScaleBytes;
    lp.hotFixedBytes = tables + predictor.perLayer;
    if (opts.reads == NeuronReads::Always &&
        l < shape.sourceDownSaving.size()) {
      // Whole, the layer holds neither the split rows' tables (in the
      // saving) nor the ids.
      lp.wholeSavingBytes =
          shape.sourceDownSaving[l] + sizeof(uint32_t) * uint64_t(shape.nFF);
      // The same bytes are read per token: a dense layer wholly on the CPU
      // multiplies the source's down matrix too (compiler/LowerToProgram,
      // sourceDown), and only a layer split between the devices reads its
      // neurons' f32 rows, on both sides. Without this charge a split
      // looked like a saving where it slows the CPU: a Q4_K layer with a
      // few neurons on the GPU reads about three times the bytes it read
      // whole on the CPU.
      // (The neurons' rows against the source's matrix, the tables aside
      // as the granules' bytes count them: 0 for Q8_0/Q4_0.)
      lp.sourceReadBytes = double(shape.sourceDownSaving[l] -
                                  std::min(shape.sourceDownSaving[l], tables));
      const CostModel &c = out.cost;
      if (gpu && c.gpuBytesPerSecond > c.cpuBytesPerSecond)
        lp.splitReadCost = lp.sourceReadBytes * c.cpuBytesPerSecond /
                           (c.gpuBytesPerSecond - c.cpuBytesPerSecond);
    }
    lp.hotFixedName = predictor.perLayer == 0 ? "down scales"
                      : shape.downScaleBytes  ? "down scales + predictors"
                                              : "predictors";
    if (opts.minGranules >= 0) {
      lp.minGranules = uint32_t(std::max(1, opts.minGranules));
    } else {
      // Smallest prefix whose saved CPU time pays for the layer's overhead.
      double saved = out.cost.savedPerByte();
      double need = out.cost.layerOverheadSeconds;
      lp.minGranules = uint32_t(lp.granules.size()) + 1;
      double u = 0;
      for (uint32_t k = 0; k < lp.granules.size(); ++k) {
        u += lp.granules[k].utility;
        // Net of what leaving the source's rows costs (layerUtility).
        const double net = u - lp.sourceReadBytes -
                           (k + 1 < lp.granules.size() ? lp.splitReadCost : 0);
        if (net * saved >= need) {
          lp.minGranules = k + 1;
          break;
        }
      }
    }
    if (!gpu)
      lp.minGranules = uint32_t(lp.granules.size()) + 1;
    // What a layer split between the devices costs per token, as
    // expectedSecondsPerToken counts it: two launches the CPU waits on and
    // one wait. (With every attention on the GPU no layer is whole, and
    // the cost is the same for every plan.) A minimum given by the user
    // (--min-granules) takes that judgement over.
    if (gpu && opts.attention != AttentionPolicy::GPU && opts.minGranules < 0 &&
        out.cost.savedPerByte() > 0)
      lp.splitCost = (2 * target.launchUs + target.syncUs) * 1e-6 /
                     out.cost.savedPerByte();
    if (gpu && opts.attention == AttentionPolicy::Optional) {
      lp.hasAttention = true;
      lp.attention.name = "attention + KV cache";
      lp.attention.bytes = shape.attentionBytes[l] + kvLayer;
      // Per token the attention reads its weights and the KV rows so far:
      // half the cache on average over a context filled to n_ctx.
      lp.attention.utility = double(shape.attentionBytes[l]) + kvLayer / 2.0;
    }
  }
  if (gpu && opts.outputMayUseGPU) {
    out.outputName = "output head";
    // With the record its selection kernels fill (runtime/vram_bill.h).
    p.globals.push_back({out.outputName, shape.outputBytes + headSelectVram(),
                         double(shape.outputBytes)});
  } else {
    out.fixedCpuBytesPerToken += double(shape.outputBytes);
  }
  double attention = std::accumulate(shape.attentionBytes.begin(),
                                     shape.attentionBytes.end(), 0.0) +
                     shape.nLayer * (kvLayer / 2.0); // KV reads, as above
  if (gpu && opts.attention == AttentionPolicy::GPU)
    out.fixedGpuBytesPerToken += attention;
  else if (!gpu || opts.attention == AttentionPolicy::CPU)
    out.fixedCpuBytesPerToken += attention;
  return true;
}

} // namespace pinfer
