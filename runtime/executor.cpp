// The specialised decoder; see executor.h.
#include "runtime/executor.h"

#include "runtime/gguf.h"
#include "runtime/kernels.h"
#include "runtime/sparse_kernels.h"

#include <algorithm>
#include <cinttypes>
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

uint64_t packedWeightsHash(const GGUFFile &file) {
  // Four independent multiply-xorshift lanes over 8-byte words, so that the
  // start-up check of a large file runs near memory speed.
  const uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t lanes[4] = {0x243F6A8885A308D3ull, 0x13198A2E03707344ull,
                       0xA4093822299F31D0ull, 0x082EFA98EC4E6C89ull};
  uint64_t begin = std::min<uint64_t>(file.dataOffset(), file.fileSize());
  const uint8_t *p = file.base() + begin;
  size_t n = size_t(file.fileSize() - begin);
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      lanes[l] = (lanes[l] ^ w) * kMul;
      lanes[l] ^= lanes[l] >> 29;
    }
  uint64_t h = n;
  for (; i < n; ++i)
    h = (h ^ p[i]) * kMul;
  for (uint64_t lane : lanes)
    h = ((h ^ lane) * kMul) ^ (h >> 31);
  return h;
}

std::string formatPackedHash(uint64_t hash) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, hash);
  return buf;
}

bool parsePackedHash(const std::string &text, uint64_t &out) {
  if (text.size() != 16)
    return false;
  out = 0;
  for (char c : text) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0)
      return false;
    out = out << 4 | uint64_t(d);
  }
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

void Executor::resetStats() { stats_.assign(params_.nLayer, LayerStats()); }

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
  const TypeInfo *info = typeInfo(t->type);
  if (!info || !info->computable || ne0 % info->blockSize != 0 || !t->data ||
      t->nbytes < rowBytes(t->type, ne0) * size_t(ne1)) {
    error = f.path() + ": tensor " + name +
            " has an unusable type or too little data, expected " +
            std::to_string(ne1) + " rows of " + std::to_string(ne0) +
            " f32/f16/bf16/q8_0/q4_0 elements";
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

} // namespace

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
  if (!parseActivation(pr.activation, p.activation)) {
    error = std::string("program: activation '") + pr.activation +
            "' is not supported";
    return false;
  }
  const GGUFFile &f = weights_;
  if (!bindWeight(f, "token_embd.weight", p.nEmbd, p.nVocab, tokEmbd_, error) ||
      !bindVector(f, "output_norm.weight", p.nEmbd, outputNorm_, error))
    return false;
  if (f.tensor("output.weight")) {
    if (!bindWeight(f, "output.weight", p.nEmbd, p.nVocab, output_, error))
      return false;
  } else {
    output_ = tokEmbd_;
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
    std::string n = "blk." + std::to_string(l) + ".";
    if (!bindVector(f, n + "attn_norm.weight", p.nEmbd, b.attnNorm, error) ||
        !bindWeight(f, n + "attn_q.weight", p.nEmbd, p.nEmbd, b.wq, error) ||
        !bindWeight(f, n + "attn_k.weight", p.nEmbd, p.kvDim(), b.wk, error) ||
        !bindWeight(f, n + "attn_v.weight", p.nEmbd, p.kvDim(), b.wv, error) ||
        !bindWeight(f, n + "attn_output.weight", p.nEmbd, p.nEmbd, b.wo,
                    error) ||
        !bindVector(f, n + "ffn_norm.weight", p.nEmbd, b.ffnNorm, error) ||
        !bindWeight(f, n + "ffn_gate.weight", p.nEmbd, p.nFF, b.gate, error) ||
        !bindWeight(f, n + "ffn_up.weight", p.nEmbd, p.nFF, b.up, error) ||
        !bindWeight(f, n + "ffn_down_t.weight", p.nEmbd, p.nFF, b.downT, error))
      return false;
    if (pr.mode == SparsityMode::Predicted && pl.predictorRank > 0) {
      if (!bindPredictor(f, uint32_t(l), pr.predictorThreshold, b.predictor,
                         error))
        return false;
      if (b.predictor.nEmbd() != p.nEmbd || b.predictor.nFF() != p.nFF ||
          b.predictor.rank() != pl.predictorRank) {
        error = f.path() + ": tensor " + n + "fc1.weight/fc2.weight: rank " +
                std::to_string(b.predictor.rank()) + ", expected " +
                std::to_string(pl.predictorRank) + " for this program";
        return false;
      }
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
  if (program_.vramBillBytes > freeB) {
    error = "not enough free VRAM on " + gpu->deviceName() + ": the plan for " +
            program_.target + " needs " +
            std::to_string(program_.vramBillBytes >> 20) + " MiB, " +
            std::to_string(freeB >> 20) + " MiB are free";
    return false;
  }
  if (!gpu->loadModule(program_.gpuImage, error)) {
    error += std::string(" (GPU code for ") + program_.smArch + " on " +
             gpu->deviceName() +
             "; a newer driver may be needed, or run with "
             "--cpu)";
    return false;
  }
  size_t maxHot = 0;
  for (int l = 0; l < params_.nLayer; ++l) {
    LayerBinding &b = layers_[l];
    const ProgramLayer &pl = program_.layers[l];
    maxHot = std::max<size_t>(maxHot, pl.nHot);
    if (pl.nHot == 0)
      continue;
    if (!(b.fnGateUp = gpu->function(pl.gateUpKernel, error)) ||
        !(b.fnDown = gpu->function(pl.downKernel, error)))
      return false;
    // Hot rows are the first nHot rows of each packed tensor: one upload.
    struct {
      const Weight *w;
      CudaDriver::DevPtr *dst;
    } parts[3] = {{&b.gate, &b.dGate}, {&b.up, &b.dUp}, {&b.downT, &b.dDownT}};
    for (auto &part : parts) {
      size_t bytes = part.w->rowBytes * pl.nHot;
      if (!gpu->alloc(*part.dst, bytes, error) ||
          !gpu->upload(*part.dst, part.w->data, bytes, error))
        return false;
    }
  }
  if (!gpu->alloc(dX_, sizeof(float) * params_.nEmbd, error) ||
      !gpu->alloc(dH_, sizeof(float) * std::max<size_t>(maxHot, 1), error) ||
      !gpu->alloc(dY_, sizeof(float) * params_.nEmbd, error))
    return false;
  gpu_ = std::move(gpu);
  return true;
}

bool Executor::init(int nCtx, bool useGpu, std::string &error) {
  if (!bind(error))
    return false;
  const ModelParams &p = params_;
  if (nCtx < 1 || nCtx > (1 << 24)) {
    error = "context size " + std::to_string(nCtx) +
            " is out of range, expected 1..16777216 (-c)";
    return false;
  }
  nCtx_ = nCtx;
  nPast_ = 0;
  x_.assign(p.nEmbd, 0.f);
  xb_.assign(p.nEmbd, 0.f);
  xb2_.assign(p.nEmbd, 0.f);
  q_.assign(size_t(p.nHead) * p.headDim, 0.f);
  attnOut_.assign(size_t(p.nHead) * p.headDim, 0.f);
  scores_.assign(size_t(p.nHead) * nCtx, 0.f);
  hHot_.assign(p.nFF, 0.f);
  hCold_.assign(p.nFF, 0.f);
  yHot_.assign(p.nEmbd, 0.f);
  yCold_.assign(p.nEmbd, 0.f);
  logits_.assign(p.nVocab, 0.f);
  chosen_.assign(p.nFF, 1);
  wouldFire_.assign(p.nFF, 0);
  keyCache_.assign(size_t(p.nLayer) * nCtx * p.kvDim(), 0.f);
  valueCache_.assign(size_t(p.nLayer) * nCtx * p.kvDim(), 0.f);
  invFreq_.resize(p.nRot / 2);
  ropeInvFreq(invFreq_.data(), p.nRot, p.ropeBase);
  resetStats();

  bool hasHot = false;
  for (uint32_t l = 0; l < program_.nLayer; ++l)
    hasHot |= program_.layers[l].nHot > 0;
  if (hasHot && program_.gpuImage) {
    if (!useGpu)
      gpuNote_ = "GPU disabled; computing the GPU part on the CPU";
    else if (!openGpu(error))
      return false;
  }
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
  // The predictor's logits, in packed order like its fc2 rows (those of the
  // other half are computed too: a few percent of this half's gate work).
  if (predict)
    predictorLogits(b.predictor, x, predScratch_, &pool_);
  const float *logits = predScratch_.logits.data();
  const float threshold = b.predictor.threshold;
  // Gate for every (chosen) neuron; up only where the activation can be
  // non-zero.
  pool_.parallelFor(count, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      if (predict) {
        chosen_[k] = logits[first + k] > threshold;
        wouldFire_[k] = 0;
        if (!chosen_[k]) {
          h[k] = 0.f;
          if (!recall)
            continue;
          // Only to count a miss: would this neuron have fired?
          float g = dotRow(b.gate.type, b.gate.row(first + k), x, nEmbd);
          float a = act == FfnActivation::SiLU ? silu(g) : relu(g);
          if (a != 0.f) {
            float u = dotRow(b.up.type, b.up.row(first + k), x, nEmbd);
            wouldFire_[k] =
                a * (act == FfnActivation::DReLU ? relu(u) : u) != 0.f;
          }
          continue;
        }
      }
      float g = dotRow(b.gate.type, b.gate.row(first + k), x, nEmbd);
      float a = act == FfnActivation::SiLU ? silu(g) : relu(g);
      if (exact && std::fabs(a) <= skipAtOrBelow) {
        h[k] = 0.f;
        continue;
      }
      float u = dotRow(b.up.type, b.up.row(first + k), x, nEmbd);
      h[k] = a * (act == FfnActivation::DReLU ? relu(u) : u);
    }
  });
  // Down: output columns split over threads in whole blocks.
  const int64_t unit = typeInfo(b.downT.type)->blockSize;
  const int64_t nUnits = nEmbd / unit;
  pool_.parallelFor(nUnits, [&](int64_t u0, int64_t u1) {
    sparseDownAxpy(b.downT, nullptr, first, count, h, y, u0 * unit, u1 * unit,
                   exact);
  });
  uint64_t fired = 0;
  for (uint32_t k = 0; k < count; ++k)
    fired += h[k] != 0.f;
  if (predict) {
    LayerStats &st = stats_[l];
    for (uint32_t k = 0; k < count; ++k) {
      st.predicted += chosen_[k];
      st.missed += wouldFire_[k];
    }
    st.coldFired += fired;
  }
  return fired;
}

bool Executor::ffn(int l, std::string &error) {
  const ProgramLayer &pl = program_.layers[l];
  LayerBinding &b = layers_[l];
  LayerStats &st = stats_[l];
  const bool exact = program_.mode != SparsityMode::Dense;
  const int nEmbd = params_.nEmbd;
  uint64_t firedHot = 0, firedCold = 0;
  bool onGpu = gpu_ && pl.nHot > 0;
  if (onGpu) {
    // Launch the hot half, compute the cold half meanwhile, then collect.
    if (!gpu_->upload(dX_, xb_.data(), sizeof(float) * nEmbd, error))
      return false;
    void *gateUpArgs[] = {&b.dGate, &b.dUp, &dX_, &dH_};
    void *downArgs[] = {&b.dDownT, &dH_, &dY_};
    if (!gpu_->launch(b.fnGateUp, pl.gateUpGrid, pl.gateUpBlock, gateUpArgs,
                      error) ||
        !gpu_->launch(b.fnDown, pl.downGrid, pl.downBlock, downArgs, error))
      return false;
  } else {
    firedHot =
        cpuHalf(l, 0, pl.nHot, xb_.data(), hHot_.data(), yHot_.data(), false);
  }
  // The predictor, when there is one, serves the cold half only: the hot
  // neurons fire often enough that predicting them saves little.
  const bool predict = program_.mode == SparsityMode::Predicted;
  firedCold = cpuHalf(l, pl.nHot, pl.nCold, xb_.data(), hCold_.data(),
                      yCold_.data(), predict);
  if (onGpu) {
    if (!gpu_->download(yHot_.data(), dY_, sizeof(float) * nEmbd, error) ||
        !gpu_->download(hHot_.data(), dH_, sizeof(float) * pl.nHot, error))
      return false;
    for (uint32_t k = 0; k < pl.nHot; ++k)
      firedHot += hHot_[k] != 0.f;
  }
  for (int i = 0; i < nEmbd; ++i)
    x_[i] += yHot_[i] + yCold_[i];
  st.tokens += 1;
  st.fired += firedHot + firedCold;
  st.gpuNeurons += onGpu ? (exact ? firedHot : pl.nHot) : 0;
  // Exact and predicted modes run up and down for the neurons that fired.
  st.cpuNeurons += (exact ? firedCold : pl.nCold) +
                   (onGpu ? 0 : (exact ? firedHot : pl.nHot));
  return true;
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
  const int nEmbd = p.nEmbd, kvDim = p.kvDim();
  rowToF32(tokEmbd_.type, tokEmbd_.row(token), x_.data(), nEmbd);
  for (int l = 0; l < p.nLayer; ++l) {
    const LayerBinding &b = layers_[l];
    float *layerKeys = keyCache_.data() + size_t(l) * nCtx_ * kvDim;
    float *layerValues = valueCache_.data() + size_t(l) * nCtx_ * kvDim;
    // Attention, exactly as the dense reference computes it.
    AttentionBlock ab{b.attnNorm.data(),
                      &b.wq,
                      &b.wk,
                      &b.wv,
                      &b.wo,
                      layerKeys,
                      layerValues,
                      xb_.data(),
                      xb2_.data(),
                      q_.data(),
                      attnOut_.data(),
                      scores_.data(),
                      invFreq_.data(),
                      nCtx_};
    attentionBlock(p, ab, x_.data(), 1, pos, pool_);

    rmsNorm(xb_.data(), x_.data(), b.ffnNorm.data(), nEmbd, p.normEps);
    if (!ffn(l, error))
      return false;
  }
  nPast_ = pos + 1;
  if (wantLogits) {
    rmsNorm(xb_.data(), x_.data(), outputNorm_.data(), nEmbd, p.normEps);
    matvec(output_, xb_.data(), logits_.data(), pool_);
  }
  return true;
}

} // namespace pinfer
