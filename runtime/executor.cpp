// The specialised decoder; see executor.h.
#include "runtime/executor.h"

#include "runtime/dot_kernels.h"
#include "runtime/gguf.h"
#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"
#include "runtime/packed_format.h"
#include "runtime/sparse_kernels.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace pinfer {

const char *sparsityModeName(SparsityMode mode) {
  switch (mode) {
  case SparsityMode::Dense:
    return "dense";
  case SparsityMode::Exact:
    return "exact";
  case SparsityMode::Predicted:
    return "predicted";
  case SparsityMode::Threshold:
    return "threshold";
  }
  return "?";
}

bool parseSparsityMode(const char *name, SparsityMode &out) {
  std::string n = name;
  if (n == "dense")
    out = SparsityMode::Dense;
  else if (n == "exact")
    out = SparsityMode::Exact;
  else if (n == "predicted")
    out = SparsityMode::Predicted;
  else if (n == "threshold")
    out = SparsityMode::Threshold;
  else
    return false;
  return true;
}

Executor::Executor(const Program &program, const GGUFFile &weights,
                   int nThreads)
    : program_(program), weights_(weights),
      pool_(nThreads < 1 ? ThreadPool::hardwareThreads() : nThreads) {}

Executor::~Executor() = default;

std::string Executor::deviceName() const {
  return gpu_ ? gpu_->deviceName() : std::string("cpu");
}

bool Executor::gpuKernelTimes(std::vector<CudaDriver::KernelTime> &out,
                              std::string &error) {
  out.clear();
  return !gpu_ || gpu_->kernelTimes(out, error);
}

void Executor::resetStats() {
  stats_.assign(params_.nLayer, LayerStats());
  cpuBytes_ = gpuBytes_ = tokenEvals_ = 0;
}

namespace {

// Finds a 2-D (ne1 > 1) or 1-D tensor of the expected shape; one error line
// otherwise.
const GGUFTensor *findTensor(const GGUFFile &f, const std::string &name,
                             int64_t ne0, int64_t ne1, std::string &error) {
  const GGUFTensor *t = f.tensor(name);
  if (!t) {
    error = f.path() + ": tensor " + name + " is missing";
    return nullptr;
  }
  if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
    error = f.path() + ": tensor " + name + " has shape " + t->shapeString() +
            ", expected [" + std::to_string(ne0) + ", " + std::to_string(ne1) +
            "] for this program";
    return nullptr;
  }
  const TypeTraits *info = typeTraits(t->type);
  if (!info || !info->computable || ne0 % info->blockSize != 0 || !t->data ||
      t->nbytes < rowBytes(t->type, ne0) * size_t(ne1)) {
    error = f.path() + ": tensor " + name +
            " has an unusable type or too little data, expected " +
            std::to_string(ne1) + " rows of " + std::to_string(ne0) +
            " elements of " + computableTypeNames();
    return nullptr;
  }
  return t;
}

bool bindWeight(const GGUFFile &f, const std::string &name, int64_t ne0,
                int64_t ne1, Weight &out, std::string &error) {
  const GGUFTensor *t = findTensor(f, name, ne0, ne1, error);
  if (!t)
    return false;
  out.name = t->name.c_str();
  out.type = t->type;
  out.cols = ne0;
  out.rows = ne1;
  out.rowBytes = rowBytes(t->type, ne0);
  out.data = t->data;
  return true;
}

bool bindVector(const GGUFFile &f, const std::string &name, int64_t n,
                std::vector<float> &out, std::string &error) {
  const GGUFTensor *t = findTensor(f, name, n, 1, error);
  if (!t)
    return false;
  out.resize(n);
  return dequantizeRow(t->type, t->data, out.data(), n);
}

// Neurons [first, first+count) of a layer grouped by the source block
// (`size` neurons of the original order: 32, or a SplitK type's group) they
// come from; rows relative to first.
void groupByBlock(const uint32_t *ids, uint32_t first, uint32_t count,
                  uint32_t size, BlockGroups &g) {
  std::vector<uint32_t> order(count);
  for (uint32_t k = 0; k < count; ++k)
    order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return ids[first + a] / size < ids[first + b] / size;
  });
  g.rows = order;
  g.start.clear();
  g.block.clear();
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t blk = ids[first + order[i]] / size;
    if (g.block.empty() || g.block.back() != blk) {
      g.block.push_back(blk);
      g.start.push_back(i);
    }
  }
  g.start.push_back(count);
}

} // namespace

// The packed down projection in the layout its tensors say (ggml_types.h,
// DownLayout): ffn_down_s present means a split layout, whose quants'
// row length tells Q8 (n_embd bytes) from Q4 (n_embd/2).
bool Executor::bindDown(const GGUFFile &f, int layer, int64_t nEmbd,
                        int64_t nFF, LayerBinding &b, std::string &error) {
  const std::string name = tensorName(TensorKind::FfnDownT, layer);
  const std::string scalesName = tensorName(TensorKind::FfnDownS, layer);
  const GGUFTensor *scales = f.tensor(scalesName);
  const std::string sourceName = tensorName(TensorKind::FfnDown, layer);
  if (!f.tensor(name) && f.tensor(sourceName)) {
    // DownLayout::Source: only a dense layer wholly on one device (the
    // CPU, or the GPU), whose neurons the packed file keeps in source
    // order.
    const ProgramLayer &pl = program_.layers[layer];
    bool identity = pl.nHot == 0 || pl.nCold == 0;
    for (uint32_t k = 0; identity && k < pl.nHot + pl.nCold; ++k)
      identity = pl.neuronIds[k] == k;
    if (program_.mode != SparsityMode::Dense || !identity) {
      error = f.path() + ": tensor " + sourceName +
              ": the source's down projection, expected only for a dense "
              "layer wholly on one device with its neurons in source order";
      return false;
    }
    b.downLayout = DownLayout::Source;
    return bindWeight(f, sourceName, nFF, nEmbd, b.downT, error);
  }
  if (!scales) {
    b.downLayout = DownLayout::Rows;
    return bindWeight(f, name, nEmbd, nFF, b.downT, error);
  }
  if (scales->type == GGMLType::I8)
    return bindSplitK(f, layer, nEmbd, nFF, b, error);
  if (nEmbd % 32 != 0 || nFF % QK8_0 != 0) {
    error = f.path() + ": tensor " + name + ": split down layout with n_embd " +
            std::to_string(nEmbd) + " and n_ff " + std::to_string(nFF) +
            ", expected both multiples of 32";
    return false;
  }
  if (!findTensor(f, scalesName, nEmbd, nFF / QK8_0, error))
    return false;
  const GGUFTensor *t = f.tensor(name);
  bool q8 = t && t->ne[0] == nEmbd, q4 = t && t->ne[0] == nEmbd / 2;
  if (!t || t->type != GGMLType::I8 || !(q8 || q4) || t->ne[1] != nFF ||
      t->ne[2] != 1 || t->ne[3] != 1 || nFF % QK8_0 || nEmbd % 32 ||
      scales->type != GGMLType::F16 ||
      t->nbytes < size_t(t->ne[0]) * size_t(nFF)) {
    error =
        f.path() + ": tensor " + name +
        (t ? " has shape " + t->shapeString() : std::string(" is missing")) +
        ", expected i8 [" + std::to_string(nEmbd) + " or " +
        std::to_string(nEmbd / 2) + ", " + std::to_string(nFF) +
        "] beside f16 scales for this program";
    return false;
  }
  b.downLayout = q8 ? DownLayout::SplitQ8 : DownLayout::SplitQ4;
  b.downT = Weight{t->name.c_str(),  t->type, t->ne[0], nFF,
                   size_t(t->ne[0]), t->data};
  b.split.q4 = q4;
  b.split.rows = t->data;
  b.split.rowBytes = size_t(t->ne[0]);
  b.split.scales = reinterpret_cast<const uint16_t *>(scales->data);
  b.split.nEmbd = nEmbd;
  return true;
}

namespace {

// A tensor of `type`, one byte or float a value, of shape [ne0, ne1] with
// ne1 dividing `of` (any ne1 where `of` is 0); one error line otherwise.
const GGUFTensor *findTable(const GGUFFile &f, const std::string &name,
                            GGMLType type, int64_t ne0, int64_t ne1, int64_t of,
                            std::string &error) {
  const GGUFTensor *t = f.tensor(name);
  const size_t size = type == GGMLType::F32 ? 4 : 1;
  if (t && t->type == type && t->ne[0] == ne0 && t->ne[2] == 1 &&
      t->ne[3] == 1 && t->ne[1] > 0 &&
      (of ? of % t->ne[1] == 0 : t->ne[1] == ne1) && t->data &&
      t->nbytes >= size * size_t(t->ne[0]) * size_t(t->ne[1]))
    return t;
  error = f.path() + ": tensor " + name +
          (t ? " has shape " + t->shapeString() + " of " + typeName(t->type)
             : std::string(" is missing")) +
          ", expected " + typeName(type) + " [" + std::to_string(ne0) + ", " +
          (of ? "a divisor of " + std::to_string(of) : std::to_string(ne1)) +
          "] for the split down layout";
  return nullptr;
}

} // namespace

// DownLayout::SplitK: the quants, the groups' scales (whose count gives
// G), the blocks' scales (S), and both mins or neither.
bool Executor::bindSplitK(const GGUFFile &f, int layer, int64_t nEmbd,
                          int64_t nFF, LayerBinding &b, std::string &error) {
  auto name = [&](TensorKind k) { return tensorName(k, layer); };
  const GGUFTensor *q, *sc, *d, *m = nullptr, *dm = nullptr;
  if (!(q = findTable(f, name(TensorKind::FfnDownT), GGMLType::I8, nEmbd, nFF,
                      0, error)) ||
      !(sc = findTable(f, name(TensorKind::FfnDownS), GGMLType::I8, nEmbd, 0,
                       nFF, error)) ||
      !(d = findTable(f, name(TensorKind::FfnDownD), GGMLType::F32, nEmbd, 0,
                      nFF, error)))
    return false;
  const int64_t group = nFF / sc->ne[1], block = nFF / d->ne[1];
  // The batch path's group arrays hold n_ff/16 groups a token.
  if (group < 16) {
    error = f.path() + ": tensor " + name(TensorKind::FfnDownS) +
            ": groups of " + std::to_string(group) +
            " neurons, expected at least 16";
    return false;
  }
  if (block % group != 0) {
    error = f.path() + ": tensor " + name(TensorKind::FfnDownD) +
            ": blocks of " + std::to_string(block) +
            " neurons, expected a multiple of the groups' " +
            std::to_string(group);
    return false;
  }
  if ((f.tensor(name(TensorKind::FfnDownM)) ||
       f.tensor(name(TensorKind::FfnDownDm))) &&
      (!(m = findTable(f, name(TensorKind::FfnDownM), GGMLType::I8, nEmbd,
                       sc->ne[1], 0, error)) ||
       !(dm = findTable(f, name(TensorKind::FfnDownDm), GGMLType::F32, nEmbd,
                        d->ne[1], 0, error))))
    return false;
  b.downLayout = DownLayout::SplitK;
  b.downT =
      Weight{q->name.c_str(), q->type, nEmbd, nFF, size_t(nEmbd), q->data};
  b.split = SplitDown{};
  b.split.rows = q->data;
  b.split.rowBytes = size_t(nEmbd);
  b.split.nEmbd = nEmbd;
  b.split.groupScales = reinterpret_cast<const int8_t *>(sc->data);
  b.split.groupMins = m ? reinterpret_cast<const int8_t *>(m->data) : nullptr;
  b.split.blockScales = reinterpret_cast<const float *>(d->data);
  b.split.blockMins = dm ? reinterpret_cast<const float *>(dm->data) : nullptr;
  b.split.groupsPerBlock = block / group;
  b.split.group = group;
  return true;
}

bool Executor::bind(std::string &error) {
  const Program &pr = program_;
  ModelParams &p = params_;
  p.nVocab = int(pr.nVocab);
  p.nEmbd = int(pr.nEmbd);
  p.nFF = int(pr.nFF);
  p.nLayer = int(pr.nLayer);
  p.nHead = int(pr.nHead);
  p.nKvHead = int(pr.nKvHead);
  p.headDim = int(pr.headDim);
  p.nRot = int(pr.nRot);
  p.nCtxTrain = int(pr.nCtxTrain);
  p.normEps = pr.normEps;
  p.ropeBase = pr.ropeBase;
  p.slidingWindow = int(pr.slidingWindow);
  if (!parseActivation(pr.activation, p.activation)) {
    error = std::string("program: activation '") + pr.activation +
            "' is not supported";
    return false;
  }
  const ArchInfo *arch = findArch(pr.arch);
  if (!arch) {
    error = "program: " + unsupportedArchMessage(pr.arch);
    return false;
  }
  p.arch = arch->name;
  p.ropeStyle = arch->rope;
  p.scaleEmbedding = arch->scaleEmbedding;
  p.slidingWindowPattern = arch->slidingWindowPattern;
  p.ropeBaseLocal = arch->ropeBaseLocal;
  const GGUFFile &f = weights_;
  // The Q4_0 matrices the packer stored scales first (only the CPU reads
  // them: attention of CPU layers, the output head on the CPU).
  std::vector<std::string> scalesFirst;
  if (f.find(kPackedScalesFirstKey) &&
      !f.getStringArray(kPackedScalesFirstKey, scalesFirst, error))
    return false;
  // Per layer: does the source's down projection quantise its input.
  std::vector<int32_t> downQ8;
  if (f.find(kPackedDownQ8Key) &&
      !f.getI32Array(kPackedDownQ8Key, downQ8, error))
    return false;
  if (!downQ8.empty() && downQ8.size() != size_t(p.nLayer)) {
    error = f.path() + ": key " + kPackedDownQ8Key + " has " +
            std::to_string(downQ8.size()) + " values, expected " +
            std::to_string(p.nLayer);
    return false;
  }
  // A tensor of the table, of the shape the table gives for this program.
  auto weight = [&](TensorKind kind, int layer, Weight &out) {
    const TensorInfo &t = tensorInfo(kind);
    if (!bindWeight(f, tensorName(kind, layer), dimValue(t.ne0, p),
                    dimValue(t.ne1, p), out, error))
      return false;
    if (std::find(scalesFirst.begin(), scalesFirst.end(), out.name) ==
        scalesFirst.end())
      return true;
    const bool inLayer = layer >= 0 && layer < p.nLayer;
    const bool gateUp =
        kind == TensorKind::FfnGate || kind == TensorKind::FfnUp;
    // Gate and up: the rows after the hot ones (the GPU's, as blocks).
    const bool cpuOnly = kind == TensorKind::Output ? !pr.headOnGPU
                         : gateUp ? inLayer && pr.layers[layer].nCold > 0
                                  : inLayer && !pr.layers[layer].attentionOnGPU;
    if (out.type != GGMLType::Q4_0 || out.cols % QK8_0 != 0 || !cpuOnly) {
      error = std::string(out.name) +
              ": stored scales first, expected a Q4_0 matrix that only the "
              "CPU multiplies (recompile with pinferc)";
      return false;
    }
    out.scalesFirst = true;
    out.scalesFirstFrom = gateUp ? int64_t(pr.layers[layer].nHot) : 0;
    return true;
  };
  auto vector = [&](TensorKind kind, int layer, std::vector<float> &out) {
    return bindVector(f, tensorName(kind, layer),
                      dimValue(tensorInfo(kind).ne0, p), out, error);
  };
  if (!weight(TensorKind::TokenEmbd, -1, tokEmbd_) ||
      !vector(TensorKind::OutputNorm, -1, outputNorm_))
    return false;
  if (f.tensor(tensorName(TensorKind::Output)) || !arch->tiedOutput) {
    if (!weight(TensorKind::Output, -1, output_))
      return false;
  } else {
    output_ = tokEmbd_;
  }
  // The emitted gather decodes the head's rows as token_embd's.
  if (pr.embedOnGPU && output_.data != tokEmbd_.data) {
    error = "the program gathers token embeddings from the output head's "
            "matrix, but the weights hold an output matrix of their own "
            "(recompile with pinferc)";
    return false;
  }
  layers_.resize(p.nLayer);
  for (int l = 0; l < p.nLayer; ++l) {
    LayerBinding &b = layers_[l];
    const ProgramLayer &pl = pr.layers[l];
    if (uint64_t(pl.nHot) + pl.nCold != uint64_t(p.nFF)) {
      error = "program layer " + std::to_string(l) + ": " +
              std::to_string(pl.nHot) + " hot + " + std::to_string(pl.nCold) +
              " cold neurons, expected " + std::to_string(p.nFF);
      return false;
    }
    // The row's tensors, in its order; the down projection is the packed
    // file's transpose.
    for (size_t k = 0; k < arch->nLayerTensors; ++k) {
      const TensorKind kind = arch->layerTensors[k];
      bool ok = false;
      switch (kind) {
      case TensorKind::AttnNorm:
        ok = vector(kind, l, b.attnNorm);
        break;
      case TensorKind::AttnQ:
        ok = weight(kind, l, b.wq);
        break;
      case TensorKind::AttnK:
        ok = weight(kind, l, b.wk);
        break;
      case TensorKind::AttnV:
        ok = weight(kind, l, b.wv);
        break;
      case TensorKind::AttnOutput:
        ok = weight(kind, l, b.wo);
        break;
      case TensorKind::FfnNorm:
        ok = vector(kind, l, b.ffnNorm);
        break;
      case TensorKind::FfnGate:
        ok = weight(kind, l, b.gate);
        break;
      case TensorKind::FfnUp:
        ok = weight(kind, l, b.up);
        break;
      case TensorKind::FfnDown:
        ok = bindDown(f, l, p.nEmbd, p.nFF, b, error);
        break;
      case TensorKind::AttnQNorm:
        ok = vector(kind, l, b.qNorm);
        break;
      case TensorKind::AttnKNorm:
        ok = vector(kind, l, b.kNorm);
        break;
      case TensorKind::PostAttnNorm:
        ok = vector(kind, l, b.postAttnNorm);
        break;
      case TensorKind::PostFfnNorm:
        ok = vector(kind, l, b.postFfnNorm);
        break;
      case TensorKind::AttnQBias:
        ok = vector(kind, l, b.bq);
        break;
      case TensorKind::AttnKBias:
        ok = vector(kind, l, b.bk);
        break;
      case TensorKind::AttnVBias:
        ok = vector(kind, l, b.bv);
        break;
      default:
        error = "program: tensor " + tensorName(kind, l) +
                " of architecture '" + arch->name +
                "': the executor has no place for it";
        break;
      }
      if (!ok)
        return false;
    }
    // The FFN loops take gate and up scales first together or not at all.
    if (b.gate.scalesFirst != b.up.scalesFirst) {
      error = f.path() + ": layer " + std::to_string(l) +
              ": only one of gate and up is stored scales first, expected "
              "both or neither (recompile with pinferc)";
      return false;
    }
    // A CPU layer's down rows multiply the 8-bit values of gate and up's
    // products, as the reference's; so do the source's rows of a layer
    // wholly on the GPU, there (ffn_lN_down_quant) and in its CPU twin.
    b.quantDown = (pl.nHot == 0 || b.downLayout == DownLayout::Source) &&
                  size_t(l) < downQ8.size() && downQ8[l] && p.nFF % QK8_0 == 0;
    if (isSplitDown(b.downLayout)) {
      const uint32_t size = uint32_t(b.split.group);
      groupByBlock(pl.neuronIds, 0, pl.nHot, size, b.hotGroups);
      groupByBlock(pl.neuronIds, pl.nHot, pl.nCold, size, b.coldGroups);
    }
    if (pr.mode == SparsityMode::Predicted && pl.predictorRank > 0) {
      if (!bindPredictor(f, uint32_t(l), pr.predictorThreshold, b.predictor,
                         error))
        return false;
      if (b.predictor.nEmbd() != p.nEmbd || b.predictor.nFF() != p.nFF ||
          b.predictor.rank() != pl.predictorRank) {
        error = f.path() + ": tensor " + tensorName(TensorKind::PredFc1, l) +
                "/" + tensorName(TensorKind::PredFc2, l) + ": rank " +
                std::to_string(b.predictor.rank()) + ", expected " +
                std::to_string(pl.predictorRank) + " for this program";
        return false;
      }
      b.gpuPredicts =
          pl.nHot > 0 &&
          hasStep(pl.steps, pl.nSteps, StepKind::Predict, StepDevice::Gpu);
    }
  }
  return true;
}

bool Executor::openGpu(std::string &error) {
  auto gpu = std::make_unique<CudaDriver>();
  std::string why;
  if (!gpu->open(why)) {
    gpuNote_ = why + "; computing the GPU part on the CPU";
    return true;
  }
  size_t freeB = 0, totalB = 0;
  if (!gpu->memInfo(freeB, totalB, error))
    return false;
  // The plan's bill at this run's context (its KV caches and attention
  // scratch grow with -c), held as one allocation that every buffer below
  // is carved from.
  vramBill_ = program_.vramBill.at(nCtx_);
  vramFreeAtStart_ = freeB;
  const std::string billed = std::string("the plan for ") + program_.target +
                             " needs " + std::to_string(vramBill_ >> 20) +
                             " MiB at -c " + std::to_string(nCtx_);
  if (vramBill_ > freeB) {
    error = "not enough free VRAM on " + gpu->deviceName() + ": " + billed +
            ", " + std::to_string(freeB >> 20) + " MiB are free" +
            (vramBill_ > program_.vramBillBytes
                 ? " (a smaller -c needs less)"
                 : " (pinferc --vram-budget sets what a plan may bill)");
    return false;
  }
  if (!gpu->reserve(vramBill_, error)) {
    error = "out of GPU memory on " + gpu->deviceName() + " (" + error +
            "): " + billed + " and " + std::to_string(freeB >> 20) +
            " MiB were free at start";
    return false;
  }
  gpu->setSyncDebug(gpuSyncDebug_);
  if (!gpu->setProfile(gpuProfile_, error))
    return false;
  gpu->setProfilePhase("decode");
  if (!gpu->loadModuleFor(program_.gpuCubin, program_.gpuCubinSize,
                          program_.smArch, program_.gpuImage, error)) {
    error += std::string(" (GPU code for ") + program_.smArch + " on " +
             gpu->deviceName() +
             "; a newer driver may be needed, or run with "
             "--cpu)";
    return false;
  }
  if (!gpu->moduleNote().empty())
    gpuNote_ = gpu->moduleNote();
  gpu->setKernelAliases(program_.kernelAliases, program_.nKernelAliases);
  // A buffer the reservation does not hold (a bill short of what is
  // carved below, which the stand-in tests rule out) takes an allocation
  // of its own; where that fails, the error names what it was for.
  const std::string device = gpu->deviceName();
  auto outOfMemory = [&, device, billed](const std::string &what) {
    error = "out of GPU memory on " + device + " uploading " + what + " (" +
            error + "): " + billed + " and " + std::to_string(freeB >> 20) +
            " MiB were free at start";
    return false;
  };
  size_t maxHot = 0, maxDownThreads = 0, maxDownGrid = 0, maxRank = 0,
         maxPredHot = 0;
  for (int l = 0; l < params_.nLayer; ++l) {
    LayerBinding &b = layers_[l];
    const ProgramLayer &pl = program_.layers[l];
    maxHot = std::max<size_t>(maxHot, pl.nHot);
    // A source-rows down kernel (a matvec) keeps no partial sums; where
    // its rows are a block type, the scratch holds its 8-bit input, n_ff
    // values a token in n_ff floats (within the bill's partial sums, those
    // of n_ff hot neurons: at least 16 x n_ff, or 32768 x the column tiles,
    // floats).
    const bool quantDown = b.downLayout == DownLayout::Source && pl.nHot > 0 &&
                           usesQ8Act(b.downT.type);
    if (b.downLayout != DownLayout::Source) {
      maxDownThreads =
          std::max<size_t>(maxDownThreads, size_t(pl.downGrid) * pl.downBlock);
      maxDownGrid = std::max<size_t>(maxDownGrid, pl.downGrid);
    } else if (quantDown) {
      maxDownThreads = std::max<size_t>(
          maxDownThreads,
          (size_t(params_.nFF) + gpuattn::kDownCols - 1) / gpuattn::kDownCols);
    }
    if (pl.nHot == 0)
      continue;
    if (!(b.fnGateUp = gpu->function(pl.gateUpKernel, error)) ||
        !(b.fnDown = gpu->function(pl.downKernel, error)) ||
        (quantDown && !(b.fnDownQuant = gpu->function(
                            gpuattn::downQuantKernelName(l).c_str(), error))) ||
        !gpu->createEvent(b.outCopied, error))
      return false;
    // The tile form exists only for some types, modes and GPUs.
    b.fnGateUpTiles =
        tilesOf(*gpu, pl.gateUpKernel,
                gpuattn::hasMatvecTiles(b.gate.type, params_.nEmbd) &&
                    gpuattn::hasMatvecTiles(b.up.type, params_.nEmbd));
    b.fnDownTiles = tilesOf(*gpu, pl.downKernel,
                            quantDown && gpuattn::hasTiles(b.downT.type));
    const std::string rowsOf = "layer " + std::to_string(l) + "'s ";
    // Hot rows are the first nHot rows of each packed tensor: one upload.
    struct {
      const Weight *w;
      CudaDriver::DevPtr *dst;
      const char *name;
    } parts[3] = {{&b.gate, &b.dGate, "gate"},
                  {&b.up, &b.dUp, "up"},
                  {&b.downT, &b.dDownT, "down"}};
    for (auto &part : parts) {
      // The source's down rows are outputs, every one of them needed.
      size_t bytes = part.w->rowBytes *
                     (part.w == &b.downT && b.downLayout == DownLayout::Source
                          ? size_t(params_.nEmbd)
                          : size_t(pl.nHot));
      if (!gpu->alloc(*part.dst, bytes, error))
        return outOfMemory(rowsOf + "hot " + part.name + " rows");
      if (!gpu->upload(*part.dst, part.w->data, bytes, error))
        return false;
    }
    if (isSplitDown(b.downLayout)) {
      // The split layout's kernel also needs every source block's tables,
      // one after the other (SplitDown::tables), and each hot neuron's
      // original id (its block).
      size_t idBytes = sizeof(uint32_t) * pl.nHot;
      if (!gpu->alloc(b.dDownS, splitTableBytes(b), error) ||
          !gpu->alloc(b.dIds, idBytes, error))
        return outOfMemory(rowsOf + "down scales");
      CudaDriver::DevPtr at = b.dDownS;
      for (const SplitDown::Part &t : b.split.tables(params_.nFF)) {
        if (!gpu->upload(at, t.data, t.bytes, error))
          return false;
        at += t.bytes;
      }
      if (!gpu->upload(b.dIds, pl.neuronIds, idBytes, error))
        return false;
    }
    if (b.gpuPredicts) {
      if (!uploadPredictor(l, *gpu, error))
        return error.find("cuMemAlloc") != std::string::npos
                   ? outOfMemory(rowsOf + "predictor")
                   : false;
      maxRank = std::max<size_t>(maxRank, size_t(b.predictor.rank()));
      maxPredHot = std::max<size_t>(maxPredHot, pl.nHot);
    }
  }

  // y [n_embd], a predicting layer's count of chosen neurons and the
  // count of hot neurons that fired (what comes down), then h [nHot].
  const size_t outFloats =
      size_t(params_.nEmbd) + kOutCounts + std::max<size_t>(maxHot, 1);
  if (maxHot > 0 && !resident_ &&
      !(fnHotCount_ = gpu->function(gpuattn::kHotCount, error)))
    return false;
  void *hx = nullptr, *hout = nullptr;
  if (!gpu->alloc(dX_, sizeof(float) * params_.nEmbd, error) ||
      !gpu->alloc(dOut_, sizeof(float) * outFloats, error) ||
      !gpu->alloc(dPart_, sizeof(float) * maxDownThreads * gpuattn::kDownCols,
                  error) ||
      !gpu->alloc(dDone_, sizeof(uint32_t) * maxDownGrid, error))
    return outOfMemory("the activation buffers");
  // The down kernels' counters start at zero; each launch leaves them so.
  const std::vector<uint32_t> zeros(std::max<size_t>(maxDownGrid, 1), 0);
  if (!gpu->upload(dDone_, zeros.data(), sizeof(uint32_t) * maxDownGrid, error))
    return false;
  if (!gpu->allocHost(hx, sizeof(float) * params_.nEmbd, error) ||
      !gpu->allocHost(hout, sizeof(float) * outFloats, error))
    return false;
  hostX_ = static_cast<float *>(hx);
  hostOut_ = static_cast<float *>(hout);
  // A prompt's chunk through the hot halves at once, where the card has
  // room for these (else the hot halves take the chunk token by token).
  const size_t T = size_t(std::min(nBatch_, kGpuChunk));
  std::string ignored;
  if (T > 1 && gpu->alloc(dHX_, sizeof(float) * T * params_.nEmbd, ignored) &&
      gpu->alloc(dHOut_, sizeof(float) * T * outFloats, ignored) &&
      gpu->alloc(dHPart_,
                 sizeof(float) * T * maxDownThreads * gpuattn::kDownCols,
                 ignored) &&
      gpu->allocHost(hx, sizeof(float) * T * params_.nEmbd, ignored) &&
      gpu->allocHost(hout, sizeof(float) * T * outFloats, ignored)) {
    hotChunk_ = int(T);
    hostHX_ = static_cast<float *>(hx);
    hostHOut_ = static_cast<float *>(hout);
  }
  // The predictors' scratch, for a chunk's tokens at most: the hidden
  // values, and the input's 8-bit copy where some layer's fc1 needs one.
  const size_t predTok = std::max<size_t>(T, 1);
  const bool predX = std::any_of(layers_.begin(), layers_.end(),
                                 [](const LayerBinding &b) {
                                   return b.fnPredXq != nullptr;
                                 });
  if (maxRank > 0 &&
      ((predX &&
        !gpu->alloc(dPredX_, sizeof(float) * predTok * params_.nEmbd, error)) ||
       !gpu->alloc(dPredH_, sizeof(float) * predTok * maxRank, error) ||
       !gpu->alloc(dPick_, gpuattn::pickBytes(maxPredHot, predTok), error)))
    return outOfMemory("the predictors' buffers");
  // The pick record's counter of finished blocks starts at zero; each
  // launch leaves it so.
  const uint32_t pickHead[gpuattn::kPickListAt] = {};
  if (maxRank > 0 && !gpu->upload(dPick_, pickHead, sizeof pickHead, error))
    return false;
  gpu_ = std::move(gpu);
  // Attention of the layers the plan puts on the GPU, then what they share:
  // input and output buffers, scratch, the RoPE tables.
  const ModelParams &p = params_;
  bool attention = false;
  for (int l = 0; l < p.nLayer; ++l)
    if (program_.layers[l].attentionOnGPU) {
      if (!uploadAttention(l, error))
        return error.find("cuMemAlloc") != std::string::npos
                   ? outOfMemory("layer " + std::to_string(l) +
                                 "'s attention and KV cache")
                   : false;
      attention = true;
    }
  const size_t f = sizeof(float);
  if (program_.headOnGPU) {
    // The output head: the whole matrix, its input and the logits.
    void *hx = nullptr, *hl = nullptr;
    const size_t headBytes = output_.rowBytes * output_.rows;
    if (!(fnHead_ = gpu_->function(gpuattn::kHeadKernel, error)))
      return false;
    if (!gpu_->alloc(dHeadW_, headBytes, error) ||
        !gpu_->alloc(dHeadX_, f * 2 * p.nEmbd, error) ||
        !gpu_->alloc(dLogits_, f * p.nVocab, error))
      return outOfMemory("the output head");
    if (!gpu_->upload(dHeadW_, output_.data, headBytes, error) ||
        !gpu_->allocHost(hx, f * 2 * p.nEmbd, error) ||
        !gpu_->allocHost(hl, f * p.nVocab, error))
      return false;
    hostHeadX_ = static_cast<float *>(hx);
    hostLogits_ = static_cast<float *>(hl);
    headOnGpu_ = true;
    // Its selection kernels and their record, the histogram zero.
    void *hq = nullptr, *hs = nullptr;
    const std::vector<unsigned char> zero(sizeof(gpuattn::HeadSel), 0);
    if (!(fnHeadHist_ = gpu_->function(gpuattn::kHeadHist, error)) ||
        !(fnHeadCut_ = gpu_->function(gpuattn::kHeadCut, error)) ||
        !(fnHeadPick_ = gpu_->function(gpuattn::kHeadPick, error)))
      return false;
    if (!gpu_->alloc(dSel_, zero.size(), error))
      return outOfMemory("the output head");
    if (!gpu_->upload(dSel_, zero.data(), zero.size(), error) ||
        !gpu_->allocHost(hq, gpuattn::kSelRequestBytes, error) ||
        !gpu_->allocHost(hs, sizeof(gpuattn::HeadSel), error))
      return false;
    hostSelReq_ = static_cast<gpuattn::HeadSel *>(hq);
    hostSel_ = static_cast<gpuattn::HeadSel *>(hs);
  }
  if (!attention)
    return gpu_->createEvent(attnCopied_, error);
  void *ax = nullptr, *ay = nullptr;
  const size_t attnX = f * (2 * p.nEmbd + p.nRot) + sizeof(int32_t);
  if (!gpu_->alloc(dAttnX_, attnX, error) ||
      !gpu_->alloc(dAttnY_, f * p.nEmbd, error) ||
      !gpu_->alloc(dQ_, f * p.qDim(), error) ||
      !gpu_->alloc(dK_, f * p.kvDim(), error) ||
      !gpu_->alloc(dV_, f * p.kvDim(), error) ||
      !gpu_->alloc(dScores_, f * size_t(p.nHead) * nCtx_, error) ||
      !gpu_->alloc(dAttnPart_,
                   f * gpuattn::attendPartFloats(p.nHead, nCtx_, p.headDim),
                   error) ||
      !gpu_->alloc(dAttnDone_, sizeof(uint32_t) * p.nHead, error) ||
      !gpu_->alloc(dAttnOut_, f * p.qDim(), error) ||
      !gpu_->alloc(dAttnOutQ_, f * p.qDim(), error))
    return outOfMemory("the attention buffers");
  const std::vector<uint32_t> noneDone(size_t(p.nHead), 0u);
  if (!gpu_->upload(dAttnDone_, noneDone.data(), sizeof(uint32_t) * p.nHead,
                    error) ||
      !gpu_->allocHost(ax, attnX, error) ||
      !gpu_->allocHost(ay, f * p.nEmbd, error) ||
      !gpu_->createEvent(attnCopied_, error))
    return false;
  hostAttnX_ = static_cast<float *>(ax);
  hostAttnY_ = static_cast<float *>(ay);
  return !resident_ || uploadResident(error);
}

uint64_t Executor::vramTaken() const {
  size_t freeB = 0, totalB = 0;
  std::string ignored;
  if (!gpu_ || !gpu_->memInfo(freeB, totalB, ignored) ||
      freeB > vramFreeAtStart_)
    return 0;
  return vramFreeAtStart_ - freeB;
}

bool Executor::init(int nCtx, bool useGpu, std::string &error) {
  if (!bind(error) || !checkSteps(error))
    return false;
  const ModelParams &p = params_;
  if (!checkContextSize(p, nCtx, nBatch_, error))
    return false;
  nCtx_ = nCtx;
  nPast_ = 0;
  x_.assign(p.nEmbd, 0.f);
  xb_.assign(p.nEmbd, 0.f);
  xb2_.assign(p.nEmbd, 0.f);
  q_.assign(size_t(p.nHead) * p.headDim, 0.f);
  attnOut_.assign(size_t(p.nHead) * p.headDim, 0.f);
  scores_.assign(size_t(p.nHead) * nCtx, 0.f);
  xq_.resize(size_t(p.nEmbd / QK8_0));
  firedRows_.reserve(p.nFF);
  firedCoef_.reserve(p.nFF);
  firedStart_.reserve(p.nFF / QK8_0 + 1);
  firedBlock_.reserve(p.nFF / QK8_0);
  hHot_.assign(p.nFF, 0.f);
  hCold_.assign(p.nFF, 0.f);
  hSource_.assign(p.nFF, 0.f);
  hBlocks_.resize(size_t(p.nFF / QK8_0));
  hDown_.assign(p.nFF, 0.f);
  yHot_.assign(p.nEmbd, 0.f);
  yCold_.assign(p.nEmbd, 0.f);
  yFfn_.assign(p.nEmbd, 0.f);
  ranSteps_.assign(p.nLayer, {});
  logits_.assign(p.nVocab, 0.f);
  chosen_.assign(p.nFF, 1);
  wouldFire_.assign(p.nFF, 0);
  keyCache_.assign(size_t(p.nLayer) * nCtx * p.kvDim(), 0);
  valueCache_.assign(size_t(p.nLayer) * nCtx * p.kvDim(), 0);
  invFreq_.resize(p.nRot / 2);
  ropeInvFreq(invFreq_.data(), p.nRot, p.ropeBase);
  invFreqLocal_.clear();
  if (p.slidingWindow > 0) {
    invFreqLocal_.resize(p.nRot / 2);
    ropeInvFreq(invFreqLocal_.data(), p.nRot, p.ropeBaseLocal);
  }
  resetStats();
  sizeBatch();

  bool hasGpuPart = program_.headOnGPU;
  for (uint32_t l = 0; l < program_.nLayer; ++l)
    hasGpuPart |=
        program_.layers[l].nHot > 0 || program_.layers[l].attentionOnGPU;
  if (hasGpuPart && program_.gpuImage) {
    if (!useGpu)
      gpuNote_ = "GPU disabled; computing the GPU part on the CPU";
    else if (!openGpu(error))
      return false;
  }
  residentOn_ = resident_ && gpu_;
  // The KV cache of a layer whose attention runs on the GPU is there: the
  // prompt's attention runs there in chunks, or (without room for a
  // chunk's buffers) token by token.
  bool attnOnGpu = false;
  for (const LayerBinding &b : layers_)
    attnOnGpu |= b.attnOnGpu;
  if (attnOnGpu && !resident_)
    allocResidentBatch();
  if (attnOnGpu && gpuChunk_ == 0)
    batchable_ = false;
  return true;
}

uint64_t Executor::cpuHalf(int l, uint32_t first, uint32_t count,
                           const float *x, float *h, float *y, bool predict) {
  const LayerBinding &b = layers_[l];
  const bool exact = program_.mode != SparsityMode::Dense;
  // Exact mode skips |a| <= 0, threshold mode |a| <= the layer's threshold.
  const float skipAtOrBelow = program_.mode == SparsityMode::Threshold
                                  ? program_.layers[l].actThreshold
                                  : 0.f;
  const FfnActivation act = params_.activation;
  const int64_t nEmbd = params_.nEmbd;
  std::fill(y, y + nEmbd, 0.f);
  if (count == 0)
    return 0;
  predict = predict && b.predictor.fc1.data;
  const bool recall = predict && measureRecall_;
  // What "fired" means for recall: a non-zero product for the ReLU family;
  // for SiLU, |silu(gate x)| above the threshold the profile counted firing
  // with, which is what the predictors were trained to find.
  const float firingAbove = program_.layers[l].actThreshold;
  const bool siluFiring = !isReluFamily(act) && firingAbove > 0.f;
  // The predictor's logits, in packed order like its fc2 rows, computed by
  // the layer's predict step before this half.
  const float *logits = predScratch_.logits.data();
  const float threshold = b.predictor.threshold;
  // Gate and up products as the dense reference computes them (quantised
  // input for Q8_0/Q4_0 rows, see ffn()), so a neuron's activation is
  // bitwise the reference's.
  const RowDot gateRow = rowDot(b.gate.type), upRow = rowDot(b.up.type);
  const BlockQ8Act *xq = xq_.data();
  // Rows stored scales first (the cold rows of Q4_0 gate and up): their
  // product with the input prepared once. The hot rows are blocks.
  const bool sf = b.gate.rowScalesFirst(first);
  const Q4SfAct *sfAct = sf ? prepQ4SfActs(xq, nEmbd, 1, sfAct_) : nullptr;
  // K-quant rows from the input in pairs of blocks (bitwise the same).
  const ActPairQ8 *xp = xPairsMade_ ? xPairs_.data() : nullptr;
  const float *xpScales = xPairsMade_ ? xPairScales_.data() : nullptr;
  auto rowAt = [&](const RowDot &dot, const uint8_t *row) {
    return sf                  ? dotQ4Sf(row, xq, sfAct, nEmbd)
           : xp && dot.q8Pairs ? dot.q8Pairs(row, xp, xpScales, nEmbd)
                               : dot(row, x, xq, nEmbd);
  };
  auto gateDot = [&](int64_t r) { return rowAt(gateRow, b.gate.row(r)); };
  auto upDot = [&](int64_t r) { return rowAt(upRow, b.up.row(r)); };
  // The generated code's specialised loop for this layer, when there is
  // one, compiled with the kernels the runtime picked (an executable built
  // for a CPU without AVX2 but run on one with it would otherwise multiply
  // its generated tokens differently from its prompt), and not while
  // measuring recall, which also scores skipped neurons.
  const ProgramLayer &pl = program_.layers[l];
  if (pl.cpuGateUp && pl.cpuGateUpLevel == kernelLevel() && !recall && !sf) {
    GateUpArgs args;
    args.gate = b.gate.data;
    args.up = b.up.data;
    args.gateRowBytes = b.gate.rowBytes;
    args.upRowBytes = b.up.rowBytes;
    args.x = x;
    args.xq = xq;
    args.xp = xp;
    args.xpScales = xpScales;
    args.first = first;
    args.skipAtOrBelow = skipAtOrBelow;
    args.logits = predict ? logits : nullptr;
    args.predictorThreshold = threshold;
    args.h = h;
    args.chosen = chosen_.data();
    pool_.parallelFor(
        count, [&](int64_t k0, int64_t k1) { pl.cpuGateUp(args, k0, k1); });
  } else {
    // Gate for every (chosen) neuron; up only where the activation can be
    // non-zero.
    pool_.parallelFor(count, [&](int64_t k0, int64_t k1) {
      // The next chosen neuron's gate row and this one's up row asked for
      // ahead, as the generated loop does (runtime/ffn_cpu.h).
      auto chosenFrom = [&](int64_t k) {
        return nextChosen(logits, first, threshold, k, k1);
      };
      int64_t next = predict ? chosenFrom(k0) : k0;
      for (int64_t k = k0; k < k1; ++k) {
        if (predict) {
          chosen_[k] = k == next;
          wouldFire_[k] = 0;
          if (chosen_[k]) {
            next = chosenFrom(k + 1);
            if (next < k1)
              dotk::prefetchRowStart(b.gate.row(first + next), b.gate.rowBytes);
            dotk::prefetchRowStart(b.up.row(first + k), b.up.rowBytes);
          }
          if (!chosen_[k]) {
            h[k] = 0.f;
            if (!recall)
              continue;
            // Only to count a miss: would this neuron have fired?
            float g = gateDot(first + k);
            float a = ffnActivate(act, g);
            if (siluFiring) {
              wouldFire_[k] = std::fabs(a) > firingAbove;
            } else if (a != 0.f) {
              float u = upDot(first + k);
              wouldFire_[k] = a * ffnUpFactor(act, u) != 0.f;
            }
            continue;
          }
        }
        float g = gateDot(first + k);
        float a = ffnActivate(act, g);
        if (exact && std::fabs(a) <= skipAtOrBelow) {
          h[k] = 0.f;
          continue;
        }
        float u = upDot(first + k);
        h[k] = a * ffnUpFactor(act, u);
        if (recall)
          wouldFire_[k] = siluFiring ? std::fabs(a) > firingAbove : h[k] != 0.f;
      }
    });
  }
  // The neurons that fired are those of h; the down projection multiplies
  // its quantised copy where the reference does.
  const float *hd = h;
  if (b.quantDown && b.downLayout != DownLayout::Source) {
    assert(first == 0 && count == uint32_t(params_.nFF));
    downInput(l, h, hDown_.data());
    hd = hDown_.data();
  }
  cpuDown(b, first < pl.nHot ? b.hotGroups : b.coldGroups, first, count, hd, y,
          exact);
  uint64_t fired = 0;
  for (uint32_t k = 0; k < count; ++k)
    fired += h[k] != 0.f;
  uint64_t gateRows = count;
  if (predict) {
    LayerStats &st = stats_[l];
    gateRows = 0;
    for (uint32_t k = 0; k < count; ++k) {
      st.predicted += chosen_[k];
      gateRows += chosen_[k];
      if (recall) {
        st.coldFired += chosen_[k] && wouldFire_[k];
        st.missed += !chosen_[k] && wouldFire_[k];
      }
    }
    if (!recall)
      st.coldFired += fired;
  }
  // Weight bytes this token read (the recall measurement's extra reads
  // are not part of the program's work and are not counted).
  if (countBytes_)
    cpuBytes_ += gateRows * b.gate.rowBytes +
                 (exact ? fired : count) * b.up.rowBytes +
                 (b.downLayout == DownLayout::Source
                      ? b.downT.rowBytes * size_t(params_.nEmbd)
                      : (exact ? fired : count) * b.downT.rowBytes);
  return fired;
}

void Executor::cpuDown(const LayerBinding &b, const BlockGroups &all,
                       uint32_t first, uint32_t count, const float *h, float *y,
                       bool skipZero) {
  const int64_t nEmbd = params_.nEmbd;
  if (b.downLayout == DownLayout::Source) {
    // Every neuron: the CPU half is the whole layer (bindDown).
    sourceDown(b, h, 1, y);
    return;
  }
  if (b.downLayout == DownLayout::Rows) {
    // Output columns split over threads in whole blocks.
    const int64_t unit = typeTraits(b.downT.type)->blockSize;
    pool_.parallelFor(nEmbd / unit, [&](int64_t u0, int64_t u1) {
      sparseDownAxpy(b.downT, nullptr, first, count, h, y, u0 * unit, u1 * unit,
                     skipZero);
    });
    return;
  }
  // The neurons that fired, source block by source block.
  firedRows_.clear();
  firedCoef_.clear();
  firedStart_.clear();
  firedBlock_.clear();
  for (size_t gi = 0; gi + 1 < all.start.size(); ++gi) {
    const uint32_t before = uint32_t(firedRows_.size());
    for (uint32_t i = all.start[gi]; i < all.start[gi + 1]; ++i) {
      const uint32_t k = all.rows[i];
      if (skipZero && h[k] == 0.f)
        continue;
      firedRows_.push_back(first + k);
      firedCoef_.push_back(h[k]);
    }
    if (firedRows_.size() > before) {
      firedStart_.push_back(before);
      firedBlock_.push_back(all.block[gi]);
    }
  }
  firedStart_.push_back(uint32_t(firedRows_.size()));
  if (countBytes_) // the table rows of the groups the neurons come from
    cpuBytes_ += size_t(nEmbd) *
                 b.split.tableBytesRead(firedBlock_.data(), firedBlock_.size());
  const DownGroups groups{firedRows_.data(), firedCoef_.data(),
                          firedStart_.data(), firedBlock_.data(),
                          int64_t(firedBlock_.size())};
  splitDownColumns(b.split, groups, y);
}

size_t Executor::splitTableBytes(const LayerBinding &b) const {
  size_t bytes = 0;
  for (const SplitDown::Part &t : b.split.tables(params_.nFF))
    bytes += t.bytes;
  return bytes;
}

void Executor::splitDownColumns(const SplitDown &d, const DownGroups &groups,
                                float *y) {
  // Output columns split over threads in chunks of 32; a SplitK layer's
  // last n_embd % 32 after them.
  const int64_t nEmbd = params_.nEmbd, whole = nEmbd / 32 * 32;
  pool_.parallelFor(nEmbd / 32, [&](int64_t u0, int64_t u1) {
    splitDownAxpy(d, groups, y, u0 * 32, u1 * 32);
  });
  if (whole < nEmbd)
    splitDownAxpy(d, groups, y, whole, nEmbd);
}

void Executor::sourceDown(const LayerBinding &b, const float *h, int n,
                          float *y) {
  // The reference's own product (the same input format and kernels, four
  // tokens at a time where the type has them), outputs split over threads.
  const int64_t nEmbd = params_.nEmbd;
  pool_.parallelFor(nEmbd, [&](int64_t e0, int64_t e1) {
    matvecRows(b.downT, h, b.downT.cols, y, nEmbd, n, e0, e1,
               /*f32Act=*/!b.quantDown);
  });
}

void Executor::downInput(int l, const float *h, float *out) {
  const uint32_t *ids = program_.layers[l].neuronIds;
  const int64_t nFF = params_.nFF;
  for (int64_t k = 0; k < nFF; ++k)
    hSource_[ids[k]] = h[k];
  quantizeActQ8(hSource_.data(), hBlocks_.data(), nFF);
  for (int64_t k = 0; k < nFF; ++k) {
    const BlockQ8Act &blk = hBlocks_[ids[k] / QK8_0];
    out[k] = blk.d * float(blk.qs[ids[k] % QK8_0]);
  }
}

void Executor::quantiseFfnInput(int l) {
  // Q8_0/Q4_0 gate and up rows multiply the 8-bit quantised input, as in the
  // dense reference; the GPU kernels get the same 8-bit values.
  const LayerBinding &b = layers_[l];
  if (xqReady_)
    return;
  // The paired copy, when made, is of this input only.
  xPairsMade_ = false;
  if (!(usesQ8Act(b.gate.type) || usesQ8Act(b.up.type)))
    return;
  quantizeActQ8(xb_.data(), xq_.data(), params_.nEmbd);
  xqReady_ = true;
  const int64_t nb = params_.nEmbd / QK8_0;
  xPairsMade_ =
      nb % 2 == 0 && (rowDot(b.gate.type).q8Pairs || rowDot(b.up.type).q8Pairs);
  if (xPairsMade_)
    pairActivations(xq_.data(), nb, 1, xPairs_, xPairScales_);
}

namespace {

std::string stepError(int l, const ProgramStep &s, const std::string &why) {
  return "program layer " + std::to_string(l) + ", step " + stepsText(&s, 1) +
         ": " + why;
}

} // namespace

bool Executor::runStep(int l, const ProgramStep &s, int pos, LayerRun &run,
                       std::string &error) {
  const ProgramLayer &pl = program_.layers[l];
  LayerBinding &b = layers_[l];
  const ModelParams &p = params_;
  const int nEmbd = p.nEmbd;
  if (residentOn_ && s.device == StepDevice::Gpu &&
      s.kind != StepKind::Attention && s.kind != StepKind::FfnHalf)
    return residentStep(l, s, error);
  switch (s.kind) {
  case StepKind::AttnNorm:
    rmsNorm(xb_.data(), x_.data(), b.attnNorm.data(), nEmbd, p.normEps);
    xqReady_ = false;
    return true;
  case StepKind::Attention:
    if (b.attnOnGpu)
      return attentionGpu(l, pos, error);
    // Exactly as the dense reference computes it.
    for (const Weight *w : {&b.wq, &b.wk, &b.wv, &b.wo})
      cpuBytes_ += w->rows * w->rowBytes;
    attentionCore(p,
                  attentionFor(l, xb_.data(), xb2_.data(), q_.data(),
                               attnOut_.data(), scores_.data()),
                  1, pos, pool_);
    return true;
  case StepKind::AttnAdd:
    for (int i = 0; i < nEmbd; ++i)
      x_[i] += xb2_[i];
    return true;
  case StepKind::AttnPostNorm:
    rmsNorm(xb2_.data(), xb2_.data(), b.postAttnNorm.data(), nEmbd, p.normEps);
    return true;
  case StepKind::FfnNorm:
    rmsNorm(xb_.data(), x_.data(), b.ffnNorm.data(), nEmbd, p.normEps);
    xqReady_ = false;
    return true;
  case StepKind::Transfer:
    // Without a GPU the hot half reads and writes host memory: nothing to
    // move.
    if (!run.onGpu)
      return true;
    if (s.device == StepDevice::Cpu) {
      // The driver's copies to the host block; the copy is done at the
      // wait that completes it, so that the CPU work scheduled between
      // runs while the GPU computes.
      run.copyPending = true;
      return true;
    }
    {
      // The GPU's gate/up kernel reads one input for both rows: the 8-bit
      // values (packActQ8's layout, 1.125 bytes a value) when both rows'
      // types multiply those, else f32 (a model mixing the two in one FFN
      // then differs from the reference in the block-type row by the
      // activation quantisation).
      // The previous layer's wait has completed the last copy from
      // hostX_, so it can be written.
      quantiseFfnInput(l);
      if (hotInputQ8(b.gate.type, b.up.type)) {
        packActQ8(xq_.data(), hostX_, nEmbd);
        return gpu_->uploadAsync(dX_, hostX_, packedActQ8Bytes(nEmbd), error);
      }
      std::copy(xb_.data(), xb_.data() + nEmbd, hostX_);
      return gpu_->uploadAsync(dX_, hostX_, sizeof(float) * nEmbd, error);
    }
  case StepKind::FfnHalf:
    quantiseFfnInput(l);
    if (s.device == StepDevice::Cpu) {
      // Predicted: the neurons the cold half's predict step chose.
      run.firedCold = cpuHalf(l, pl.nHot, pl.nCold, xb_.data(), hCold_.data(),
                              yCold_.data(), run.predicted);
      run.coldReady = true;
      return true;
    }
    if (!run.onGpu) {
      run.firedHot = cpuHalf(l, 0, pl.nHot, xb_.data(), hHot_.data(),
                             yHot_.data(), run.hotPredicted);
      run.hotReady = true;
      return true;
    }
    {
      // Enqueued: the kernels and the copy of their output (y, then the
      // activations, which count the neurons that fired) run while the
      // host goes on to the next steps; the event marks the copy's end.
      const CudaDriver::DevPtr counts = dOut_ + sizeof(float) * nEmbd;
      const CudaDriver::DevPtr dH = counts + sizeof(float) * kOutCounts;
      const CudaDriver::DevPtr chosen = residentOn_ ? chosenCounter(l) : counts;
      if (!launchHotHalf(l, dX_, dH, dOut_, dPart_, 1, chosen, error))
        return false;
      // With the residual stream on the GPU the output stays for the next
      // steps, and the neurons that fired are counted into the token's
      // counters, which come down at its end.
      if (residentOn_)
        return countHotFired(l, dH, int(pl.nHot), firedCounter(l), error);
      // Else y and the counts come down, not the activations.
      return countHotInto(l, dH, int(pl.nHot), counts + sizeof(uint32_t),
                          error) &&
             gpu_->downloadAsync(hostOut_, dOut_,
                                 sizeof(float) * (nEmbd + kOutCounts), error) &&
             gpu_->record(b.outCopied, error);
    }
  case StepKind::Record:
    run.copyRecorded = run.copyPending;
    return true;
  case StepKind::Predict: {
    // The scores of the step's half, in packed order like fc2's rows: the
    // hot rows [0, nHot) for the GPU half's, made there (its input went up
    // with the transfer before) or, without a GPU, here; the cold rows for
    // the CPU half's.
    const bool hot = s.device == StepDevice::Gpu;
    if (hot && run.onGpu)
      return launchPredictor(l, dX_, 1, error);
    const int64_t first = hot ? 0 : pl.nHot, end = hot ? pl.nHot : p.nFF;
    // Both halves' steps on the CPU (a GPU program without its GPU): fc1
    // once for the two.
    const bool reuse = run.predHidden;
    predictorLogits(b.predictor, xb_.data(), predScratch_, &pool_, first, end,
                    reuse);
    if (countBytes_)
      cpuBytes_ +=
          (reuse ? 0 : b.predictor.fc1.rows * b.predictor.fc1.rowBytes) +
          (end - first) * b.predictor.fc2.rowBytes;
    run.predHidden = true;
    (hot ? run.hotPredicted : run.predicted) = true;
    return true;
  }
  case StepKind::Wait:
    if (!run.copyRecorded)
      return true;
    if (!gpu_->wait(b.outCopied, error))
      return false;
    std::copy(hostOut_, hostOut_ + nEmbd, yHot_.data());
    {
      uint32_t counts[kOutCounts];
      std::memcpy(counts, hostOut_ + nEmbd, sizeof counts);
      run.firedHot = counts[1];
      if (b.gpuPredicts)
        run.chosenHot = counts[0];
    }
    run.copyPending = run.copyRecorded = false;
    run.hotReady = true;
    return true;
  case StepKind::Merge:
    if (!run.hotReady || !run.coldReady) {
      error = stepError(l, s, "a half's output is not complete here");
      return false;
    }
    for (int i = 0; i < nEmbd; ++i)
      yFfn_[i] = yHot_[i] + yCold_[i];
    run.merged = true;
    return true;
  case StepKind::FfnPostNorm:
  case StepKind::FfnAdd: {
    const bool ready = s.from == StepDevice::None  ? run.merged
                       : s.from == StepDevice::Gpu ? run.hotReady
                                                   : run.coldReady;
    if (!ready) {
      error = stepError(l, s, "the value it reads is not complete here");
      return false;
    }
    float *y = s.from == StepDevice::None  ? yFfn_.data()
               : s.from == StepDevice::Gpu ? yHot_.data()
                                           : yCold_.data();
    if (s.kind == StepKind::FfnPostNorm)
      rmsNorm(y, y, b.postFfnNorm.data(), nEmbd, p.normEps);
    else
      for (int i = 0; i < nEmbd; ++i)
        x_[i] += y[i];
    return true;
  }
  }
  error = stepError(l, s, "unknown step kind " + std::to_string(int(s.kind)));
  return false;
}

void Executor::countFfn(int l, const LayerRun &run, int tokens) {
  const ProgramLayer &pl = program_.layers[l];
  const LayerBinding &b = layers_[l];
  LayerStats &st = stats_[l];
  const bool exact = program_.mode != SparsityMode::Dense;
  if (run.onGpu && countBytes_) {
    // The hot kernels read every gate row, up and down rows where the
    // neuron fired (all of them in dense mode), and the scale table. With
    // the predictor on the GPU: fc1, every hot fc2 row, and the gate rows
    // of the neurons it chose.
    uint64_t rows = exact ? run.firedHot : pl.nHot;
    if (b.gpuPredicts)
      gpuBytes_ += b.predictor.fc1.rows * b.predictor.fc1.rowBytes +
                   pl.nHot * b.predictor.fc2.rowBytes;
    gpuBytes_ += (b.gpuPredicts ? run.chosenHot : pl.nHot) * b.gate.rowBytes +
                 rows * b.up.rowBytes +
                 (b.downLayout == DownLayout::Source
                      ? size_t(params_.nEmbd) * b.downT.rowBytes
                      : rows * b.downT.rowBytes) +
                 (isSplitDown(b.downLayout) ? splitTableBytes(b) : 0);
  }
  st.tokens += uint64_t(tokens);
  st.fired += run.firedHot + run.firedCold;
  if (run.onGpu && b.gpuPredicts)
    st.predicted += run.chosenHot;
  st.gpuNeurons += run.onGpu ? (exact ? run.firedHot : pl.nHot) : 0;
  // Exact and predicted modes run up and down for the neurons that fired.
  st.cpuNeurons += (exact ? run.firedCold : pl.nCold) +
                   (run.onGpu ? 0 : (exact ? run.firedHot : pl.nHot));
}

namespace {

// A layer of a program whose residual stream stays on the GPU has every
// step there (the runtime has no copies between them), and so does the head.
bool residentLayerOk(const ProgramLayer &pl) {
  if (!pl.steps || !pl.attentionOnGPU || pl.nCold != 0 || pl.nHot == 0)
    return false;
  for (uint32_t k = 0; k < pl.nSteps; ++k)
    if (pl.steps[k].device != StepDevice::Gpu)
      return false;
  return true;
}

} // namespace

bool Executor::checkSteps(std::string &error) {
  const uint32_t nLayer = program_.nLayer;
  ffnFirst_.assign(nLayer, 0);
  ffnLast_.assign(nLayer, 0);
  hasPredict_.assign(nLayer, 0);
  batchable_ = true;
  resident_ =
      nLayer > 0 && program_.layers[0].steps &&
      residualOnGpu(program_.layers[0].steps, program_.layers[0].nSteps);
  if (program_.embedOnGPU && !resident_) {
    error = "the program gathers token embeddings on the GPU, expected its "
            "residual stream there";
    return false;
  }
  for (uint32_t l = 0; l < nLayer; ++l) {
    const ProgramLayer &pl = program_.layers[l];
    if (resident_ && (!residentLayerOk(pl) || !program_.headOnGPU)) {
      error = "program layer " + std::to_string(l) +
              ": the residual stream is on the GPU, expected every norm and "
              "add step, the attention and one FFN half there, and the head";
      return false;
    }
    if (!pl.steps || pl.nSteps == 0) {
      error = "program layer " + std::to_string(l) +
              " has no steps, expected the lowered IR's (recompile with "
              "pinferc)";
      return false;
    }
    bool sawFfn = false, sawAdd = false;
    int postNorms[2] = {0, 0}; // attention's, FFN's
    for (uint32_t k = 0; k < pl.nSteps; ++k) {
      const ProgramStep &s = pl.steps[k];
      postNorms[0] += s.kind == StepKind::AttnPostNorm;
      postNorms[1] += s.kind == StepKind::FfnPostNorm;
      if (int(s.kind) >= kNumStepKinds) {
        error = "program layer " + std::to_string(l) + ": step " +
                std::to_string(k) + " has unknown kind " +
                std::to_string(int(s.kind));
        return false;
      }
      // What the runtime has routines for (pinfer-verify-lowering refuses
      // the rest at compile time).
      const bool gpu = s.device == StepDevice::Gpu;
      std::string why;
      if (s.kind == StepKind::Predict && gpu && pl.nHot == 0)
        why = "the layer has no neurons on the GPU";
      else if (s.kind == StepKind::Attention && gpu != pl.attentionOnGPU)
        why = "the program's table puts the layer's attention on the other "
              "device";
      else if (s.kind == StepKind::FfnHalf && (gpu ? pl.nHot : pl.nCold) == 0)
        why = "the layer has no neurons on that device";
      else if (s.kind == StepKind::Predict && !layers_[l].predictor.fc1.data)
        why = "the layer has no predictor";
      else if ((s.kind == StepKind::AttnPostNorm &&
                layers_[l].postAttnNorm.empty()) ||
               (s.kind == StepKind::FfnPostNorm &&
                layers_[l].postFfnNorm.empty()))
        why = "the layer has no such norm";
      if (!why.empty()) {
        error = stepError(int(l), s, why);
        return false;
      }
      hasPredict_[l] |= s.kind == StepKind::Predict;
      // The batched prompt path runs the attention steps for the chunk one
      // by one and the FFN steps as one group, which must end the layer
      // with its ffn_add.
      const bool ffnStep =
          s.kind != StepKind::AttnNorm && s.kind != StepKind::Attention &&
          s.kind != StepKind::AttnPostNorm && s.kind != StepKind::AttnAdd &&
          s.kind != StepKind::FfnNorm;
      if (ffnStep && !sawFfn) {
        sawFfn = true;
        ffnFirst_[l] = k;
      }
      if (sawAdd || (sawFfn && !ffnStep))
        batchable_ = false;
      if (s.kind == StepKind::FfnAdd) {
        sawAdd = true;
        ffnLast_[l] = k;
      }
    }
    if (!sawAdd)
      batchable_ = false;
    // A norm the weights have must be a step, or it would be skipped.
    if ((!layers_[l].postAttnNorm.empty() && postNorms[0] != 1) ||
        (!layers_[l].postFfnNorm.empty() && postNorms[1] != 1)) {
      error = "program layer " + std::to_string(l) +
              ": the weights have post-attention/post-FFN norms, expected "
              "one attn_post_norm and one ffn_post_norm step";
      return false;
    }
  }
  return true;
}

AttentionBlock Executor::attentionFor(int l, float *xb, float *xb2, float *q,
                                      float *attnOut, float *scores) {
  const LayerBinding &b = layers_[l];
  const size_t layerCache = size_t(l) * nCtx_ * params_.kvDim();
  AttentionBlock ab{b.attnNorm.data(),
                    &b.wq,
                    &b.wk,
                    &b.wv,
                    &b.wo,
                    keyCache_.data() + layerCache,
                    valueCache_.data() + layerCache,
                    xb,
                    xb2,
                    q,
                    attnOut,
                    scores,
                    invFreq_.data(),
                    nCtx_};
  setLayerAttention(params_, l, b, invFreq_.data(),
                    invFreqLocal_.empty() ? nullptr : invFreqLocal_.data(), ab);
  ab.kNew = kNew_.data();
  ab.vNew = vNew_.data();
  return ab;
}

bool Executor::evalSelect(int32_t token, int pos, int k,
                          const std::vector<int32_t> &extra, HeadSelection &out,
                          std::string &error) {
  if (!selects() || k < 1) {
    error = "the head cannot choose " + std::to_string(k) +
            " logits on this device";
    return false;
  }
  // More penalised tokens than the record holds: every logit comes back.
  if (int(extra.size()) > gpuattn::kSelExtraMax) {
    out = HeadSelection{};
    out.all = true;
    return eval(token, pos, true, error);
  }
  // The request (HeadSel's first kSelRequestBytes), uploaded with the
  // head's work; hostSelReq_ is free again: the last token's wait drained
  // its copy.
  gpuattn::HeadSel &req = *hostSelReq_;
  req.k = std::min(k, params_.nVocab);
  req.nExtra = int(extra.size());
  req.cut = 0;
  req.count = 0;
  req.bad = INT32_MAX;
  for (size_t j = 0; j < extra.size(); ++j) {
    if (extra[j] < 0 || extra[j] >= params_.nVocab) {
      error =
          "token " + std::to_string(extra[j]) + " is outside the vocabulary";
      return false;
    }
    req.extraIds[j] = extra[j];
  }
  out = HeadSelection{};
  selOut_ = &out;
  struct Clear {
    HeadSelection *&sel;
    ~Clear() { sel = nullptr; }
  } clear{selOut_};
  return eval(token, pos, true, error);
}

bool Executor::eval(int32_t token, int pos, bool wantLogits,
                    std::string &error) {
  const ModelParams &p = params_;
  if (token < 0 || token >= p.nVocab) {
    error = "token " + std::to_string(token) +
            " is outside the vocabulary of " + std::to_string(p.nVocab) +
            " tokens";
    return false;
  }
  if (pos != nPast_ || pos >= nCtx_) {
    error = "position " + std::to_string(pos) +
            " cannot be evaluated: " + std::to_string(nPast_) +
            " positions are cached and the context is " +
            std::to_string(nCtx_) + " (-c)";
    return false;
  }
  const int nEmbd = p.nEmbd;
  // One token's weight bytes are counted here, and only here (not in
  // batched prompt evaluation), so that their sum over tokenEvals_ is a
  // per-token figure.
  countBytes_ = true;
  struct Stop {
    bool &flag;
    ~Stop() { flag = false; }
  } stop{countBytes_};
  tokenEvals_ += 1;
  if (residentOn_ && program_.embedOnGPU) {
    gpuBytes_ += tokEmbd_.rowBytes;
  } else {
    cpuBytes_ += tokEmbd_.rowBytes;
    rowToF32(tokEmbd_.type, tokEmbd_.row(token), x_.data(), nEmbd);
    scaleEmbeddings(p, x_.data(), 1);
  }
  if (residentOn_ && !beginResidentToken(token, pos, wantLogits, error))
    return false;
  // A token that fails half-way leaves no held GPU work behind.
  struct Held {
    CudaDriver *gpu;
    ~Held() {
      if (gpu)
        gpu->cancelGraph();
    }
  } held{residentOn_ ? gpu_.get() : nullptr};
  // Each layer runs its steps in the program's order, and records them.
  for (int l = 0; l < p.nLayer; ++l) {
    const ProgramLayer &pl = program_.layers[l];
    std::vector<ProgramStep> &ran = ranSteps_[l];
    ran.clear();
    LayerRun run;
    run.onGpu = gpu_ && pl.nHot > 0;
    for (uint32_t k = 0; k < pl.nSteps; ++k) {
      if (!runStep(l, pl.steps[k], pos, run, error))
        return false;
      ran.push_back(pl.steps[k]);
    }
    if (!residentOn_)
      countFfn(l, run);
  }
  nPast_ = pos + 1;
  if (residentOn_)
    return endResidentToken(wantLogits, error);
  return !wantLogits || computeLogits(error);
}

} // namespace pinfer
