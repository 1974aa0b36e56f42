// A prompt's chunk on a whole-GPU program; see executor.h. The chunk's
// tokens go up together (embeddings or, with Program::embedOnGPU, ids; RoPE
// tables, positions); each matvec, gate/up and down kernel then reads its
// rows once for the chunk (the kernels' nTok), the norms run a block per
// token, the rope kernel puts every token's K and V rows in the cache and
// the attend kernel runs a group of blocks per token. Every kernel computes
// each token as it does alone, so the chunk's logits and KV cache are
// bitwise those of token-by-token evaluation.
#include "runtime/executor.h"

#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"

#include <algorithm>
#include <cstring>

namespace pinfer {

// Offsets (in floats) in dBTok_ / hostBTok_ for a chunk of capacity T.
size_t Executor::batchCsOffset(bool local) const {
  const size_t T = size_t(gpuChunk_);
  return T * size_t(params_.nEmbd) + (local ? T * size_t(params_.nRot) : 0);
}
size_t Executor::batchPosOffset() const {
  return batchCsOffset(true) + size_t(gpuChunk_) * size_t(params_.nRot);
}

namespace {

// Bytes of dBTok_ / hostBTok_ before the token ids, after the positions
// [T] and the counters (fired [n_layer], then chosen [n_layer]); the ids
// [T] end them.
size_t batchIdsAt(size_t posOffset, size_t T, int nLayer) {
  return sizeof(float) * posOffset + sizeof(int32_t) * T +
         2 * sizeof(uint32_t) * size_t(nLayer);
}

} // namespace

void Executor::allocResidentBatch() {
  CudaDriver &gpu = *gpu_;
  const ModelParams &p = params_;
  // The FFN's input, output and partial sums are the split programs'
  // chunk buffers (hotChunk_), sized alike: a whole-GPU program needs them.
  const int T = std::min(nBatch_, kGpuChunk);
  if (T < 2 || (resident_ && hotChunk_ < T))
    return;
  gpuChunk_ = T;
  const size_t f = sizeof(float), t = size_t(T);
  const size_t tokBytes =
      batchIdsAt(batchPosOffset(), t, p.nLayer) + sizeof(int32_t) * t;
  std::string ignored;
  void *host = nullptr, *hostX = nullptr, *hostY = nullptr;
  // A card without room for the chunk's buffers runs prompts token by
  // token, as before.
  if (!gpu.alloc(dBTok_, tokBytes, ignored) ||
      !gpu.allocHost(host, tokBytes, ignored) ||
      !gpu.alloc(dBAttnX_, f * 2 * t * p.nEmbd, ignored) ||
      !gpu.allocHost(hostX, f * 2 * t * p.nEmbd, ignored) ||
      !gpu.allocHost(hostY, f * t * p.nEmbd, ignored) ||
      !gpu.alloc(dBQ_, f * t * p.qDim(), ignored) ||
      !gpu.alloc(dBK_, f * t * p.kvDim(), ignored) ||
      !gpu.alloc(dBV_, f * t * p.kvDim(), ignored) ||
      !gpu.alloc(dBAttnOut_, f * t * p.qDim(), ignored) ||
      !gpu.alloc(dBAttnOutQ_, f * t * p.qDim(), ignored) ||
      !gpu.alloc(dBAttnY_, f * t * p.nEmbd, ignored) ||
      !gpu.alloc(dBScores_, f * t * size_t(p.nHead) * size_t(nCtx_), ignored) ||
      !gpu.alloc(dBAttnPart_,
                 f * t * gpuattn::attendPartFloats(p.nHead, nCtx_, p.headDim),
                 ignored) ||
      !gpu.alloc(dBAttnDone_, sizeof(uint32_t) * t * size_t(p.nHead),
                 ignored) ||
      !gpu.upload(dBAttnDone_,
                  std::vector<uint32_t>(t * size_t(p.nHead), 0u).data(),
                  sizeof(uint32_t) * t * size_t(p.nHead), ignored)) {
    gpuChunk_ = 0;
    return;
  }
  hostBTok_ = static_cast<float *>(host);
  hostBAttnX_ = static_cast<float *>(hostX);
  hostBAttnY_ = static_cast<float *>(hostY);
}

bool Executor::attentionGpuChunk(int l, int n, int pos0, std::string &error) {
  // A prompt chunk (-b) larger than the GPU's goes in parts.
  for (int s = 0; s < n; s += gpuChunk_)
    if (!attentionGpuPart(l, s, std::min(gpuChunk_, n - s), pos0 + s, error))
      return false;
  return true;
}

bool Executor::attentionGpuPart(int l, int first, int n, int pos0,
                                std::string &error) {
  const LayerBinding &b = layers_[l];
  const ModelParams &p = params_;
  const int64_t nEmbd = p.nEmbd;
  const size_t f = sizeof(float), T = size_t(gpuChunk_);
  // Each token's input as a token's attention stages it (stageInput): f32,
  // then the 8-bit values where a projection multiplies them; its RoPE
  // tables and position as a whole-GPU chunk has them.
  const bool q8 =
      usesQ8Act(b.wq.type) || usesQ8Act(b.wk.type) || usesQ8Act(b.wv.type);
  attnXq_.resize(size_t(nEmbd / QK8_0));
  for (int t = 0; t < n; ++t) {
    const float *x = bXb_.data() + size_t(first + t) * nEmbd;
    std::copy(x, x + nEmbd, hostBAttnX_ + size_t(t) * nEmbd);
    if (q8) {
      quantizeActQ8(x, attnXq_.data(), nEmbd);
      packActQ8(attnXq_.data(), hostBAttnX_ + (T + size_t(t)) * nEmbd, nEmbd);
    }
  }
  stageChunkTables(pos0, n);
  CudaDriver &gpu = *gpu_;
  const size_t tables = batchCsOffset(false);
  return gpu.uploadAsync(dBAttnX_, hostBAttnX_, f * 2 * T * nEmbd, error) &&
         gpu.uploadAsync(dBTok_ + f * tables, hostBTok_ + tables,
                         f * (batchPosOffset() - tables) + 4 * T, error) &&
         attentionGpuBatch(l, n, error) &&
         gpu.downloadAsync(hostBAttnY_, dBAttnY_, f * size_t(n) * nEmbd,
                           error) &&
         gpu.record(attnCopied_, error) && gpu.wait(attnCopied_, error) &&
         (std::copy(hostBAttnY_, hostBAttnY_ + size_t(n) * nEmbd,
                    bXb2_.begin() + size_t(first) * nEmbd),
          true);
}

void Executor::stageChunkTables(int pos0, int n) {
  const ModelParams &p = params_;
  for (int t = 0; t < n; ++t) {
    gpuattn::ropeAngles(invFreq_.data(), p.nRot, pos0 + t,
                        hostBTok_ + batchCsOffset(false) + size_t(t) * p.nRot);
    if (!invFreqLocal_.empty())
      gpuattn::ropeAngles(invFreqLocal_.data(), p.nRot, pos0 + t,
                          hostBTok_ + batchCsOffset(true) + size_t(t) * p.nRot);
    const int32_t position = pos0 + t;
    std::memcpy(hostBTok_ + batchPosOffset() + t, &position, sizeof position);
  }
}

bool Executor::evalResidentBatch(const int32_t *tokens, int n, int pos,
                                 bool wantLogits, std::string &error) {
  const ModelParams &p = params_;
  if (!checkBatch(tokens, n, pos, nPast_, nCtx_, p.nVocab, error))
    return false;
  for (int done = 0; done < n; done += gpuChunk_) {
    const int m = std::min(gpuChunk_, n - done);
    if (!residentChunk(tokens + done, m, pos + done,
                       wantLogits && done + m == n, error))
      return false;
  }
  return true;
}

bool Executor::residentChunk(const int32_t *tokens, int m, int pos0,
                             bool wantLogits, std::string &error) {
  const ModelParams &p = params_;
  const int nEmbd = p.nEmbd;
  CudaDriver &gpu = *gpu_;
  float *host = hostBTok_;
  if (!program_.embedOnGPU) {
    for (int t = 0; t < m; ++t)
      rowToF32(tokEmbd_.type, tokEmbd_.row(tokens[t]), host + size_t(t) * nEmbd,
               nEmbd);
    scaleEmbeddings(p, host, m);
  }
  stageChunkTables(pos0, m);
  uint32_t *counters =
      reinterpret_cast<uint32_t *>(host + batchPosOffset() + gpuChunk_);
  std::fill_n(counters, 2 * p.nLayer, 0u);
  const size_t idsAt = batchIdsAt(batchPosOffset(), gpuChunk_, p.nLayer);
  std::memcpy(reinterpret_cast<char *>(host) + idsAt, tokens,
              sizeof(int32_t) * size_t(m));
  // With the gather, everything after the residuals goes up, and the
  // gather writes them.
  const size_t skip =
      program_.embedOnGPU ? sizeof(float) * batchCsOffset(false) : 0;
  if (!gpu.uploadAsync(dBTok_ + skip, reinterpret_cast<char *>(host) + skip,
                       idsAt + sizeof(int32_t) * size_t(m) - skip, error))
    return false;
  if (program_.embedOnGPU) {
    CudaDriver::DevPtr ids = dBTok_ + idsAt;
    void *args[] = {&dHeadW_, &ids, &dBTok_};
    if (!gpu.launch(fnEmbed_, unsigned(m), gpuattn::kEmbedBlock, args, error,
                    gpuattn::kEmbedGather, -1))
      return false;
  }
  for (int l = 0; l < p.nLayer; ++l) {
    const ProgramLayer &pl = program_.layers[l];
    for (uint32_t k = 0; k < pl.nSteps; ++k)
      if (!residentBatchStep(l, pl.steps[k], m, error))
        return false;
  }
  // The last token's final norm and head, as a decoded token's.
  const CudaDriver::DevPtr last =
      dBTok_ + sizeof(float) * size_t(m - 1) * size_t(nEmbd);
  if (wantLogits && !residentHead(last, error))
    return false;
  const CudaDriver::DevPtr dCounters =
      dBTok_ + sizeof(float) * (batchPosOffset() + size_t(gpuChunk_));
  if (!gpu.downloadAsync(hostFired_, dCounters,
                         2 * sizeof(uint32_t) * size_t(p.nLayer), error) ||
      !gpu.record(attnCopied_, error) || !gpu.wait(attnCopied_, error))
    return false;
  for (int l = 0; l < p.nLayer; ++l) {
    LayerRun run;
    run.onGpu = true;
    run.firedHot = hostFired_[l];
    run.chosenHot = hostFired_[p.nLayer + l];
    countFfn(l, run, m);
  }
  nPast_ = pos0 + m;
  if (wantLogits)
    takeLogits();
  return true;
}

bool Executor::residentBatchStep(int l, const ProgramStep &s, int m,
                                 std::string &error) {
  LayerBinding &b = layers_[l];
  const ProgramLayer &pl = program_.layers[l];
  const int64_t nEmbd = params_.nEmbd;
  const size_t f = sizeof(float);
  // Norms: one block per token; then the 8-bit values in place or, for
  // attention's input, in the second half of dBAttnX_.
  const CudaDriver::DevPtr x8 = dBAttnX_ + f * size_t(gpuChunk_) * nEmbd;
  const CudaDriver::DevPtr dY = dHOut_,
                           dH = dHOut_ + f * size_t(gpuChunk_) * nEmbd;
  switch (s.kind) {
  case StepKind::AttnNorm:
    return residentNorm(dBTok_, b.dAttnNorm, dBAttnX_,
                        usesQ8Act(b.wq.type) || usesQ8Act(b.wk.type) ||
                                usesQ8Act(b.wv.type)
                            ? x8
                            : 0,
                        m, l, error);
  case StepKind::Attention:
    return attentionGpuBatch(l, m, error);
  case StepKind::AttnPostNorm:
    return residentNorm(dBAttnY_, b.dPostAttnNorm, dBAttnY_, 0, m, l, error);
  case StepKind::AttnAdd:
    return residentAdd(dBTok_, dBAttnY_, m, l, error);
  case StepKind::FfnNorm:
    return residentNorm(dBTok_, b.dFfnNorm, dHX_,
                        hotInputQ8(b.gate.type, b.up.type) ? dHX_ : 0, m, l,
                        error);
  case StepKind::Predict:
    return launchPredictor(l, dHX_, m, error);
  case StepKind::FfnHalf: {
    const CudaDriver::DevPtr counter =
        dBTok_ + f * (batchPosOffset() + size_t(gpuChunk_)) +
        sizeof(uint32_t) * size_t(l);
    const CudaDriver::DevPtr chosen =
        counter + sizeof(uint32_t) * size_t(params_.nLayer);
    return launchHotHalf(l, dHX_, dH, dY, dHPart_, m, chosen, error) &&
           countHotFired(l, dH, m * int(pl.nHot), counter, error);
  }
  case StepKind::FfnPostNorm:
    return residentNorm(dY, b.dPostFfnNorm, dY, 0, m, l, error);
  case StepKind::FfnAdd:
    return residentAdd(dBTok_, dY, m, l, error);
  default:
    error = "program layer " + std::to_string(l) + ", step " +
            stepsText(&s, 1) + ": no GPU routine for it in a prompt's chunk";
    return false;
  }
}

bool Executor::attentionGpuBatch(int l, int m, std::string &error) {
  LayerBinding &b = layers_[l];
  const ModelParams &p = params_;
  const int64_t nEmbd = p.nEmbd, qDim = p.qDim(), kvDim = p.kvDim();
  CudaDriver &gpu = *gpu_;
  using namespace gpuattn;
  const size_t f = sizeof(float);
  const bool local = p.isSlidingLayer(l) && !invFreqLocal_.empty();
  CudaDriver::DevPtr x32 = dBAttnX_,
                     x8 = dBAttnX_ + f * size_t(gpuChunk_) * nEmbd;
  auto input = [&](const Weight &w) { return usesQ8Act(w.type) ? &x8 : &x32; };
  CudaDriver::DevPtr noBias = 0;
  CudaDriver::DevPtr woIn = usesQ8Act(b.wo.type) ? dBAttnOutQ_ : dBAttnOut_;
  int nCtx = nCtx_;
  void *aq[] = {&b.dWq, &b.dBq, input(b.wq), &dBQ_, &m};
  void *ak[] = {&b.dWk, &b.dBk, input(b.wk), &dBK_, &m};
  void *av[] = {&b.dWv, &b.dBv, input(b.wv), &dBV_, &m};
  const std::string name[] = {kernelName(l, "wq"),     kernelName(l, "wk"),
                              kernelName(l, "wv"),     kernelName(l, "rope"),
                              kernelName(l, "attend"), kernelName(l, "quant"),
                              kernelName(l, "wo")};
  // Two tokens or more take a projection's tensor-core form, if it has
  // one.
  auto matvec = [&](void *rows, void *tiles, int64_t n, void **args,
                    const std::string &kernel, const Weight &w) {
    return launchTilesOr(gpu, m, tiles, n, rows, matvecGrid(n), kMatvecBlock,
                         args, error, kernel, l, w.bytes());
  };
  if (!matvec(b.fnWq, b.fnWqTiles, qDim, aq, name[0], b.wq) ||
      !matvec(b.fnWk, b.fnWkTiles, kvDim, ak, name[1], b.wk) ||
      !matvec(b.fnWv, b.fnWvTiles, kvDim, av, name[2], b.wv))
    return false;
  // Every token's K and V rows reach the cache (rope) before any token
  // attends; each attends up to its own position.
  CudaDriver::DevPtr cs = dBTok_ + f * batchCsOffset(local),
                     pos = dBTok_ + f * batchPosOffset();
  void *ar[] = {&dBQ_,     &dBK_,     &dBV_, &b.dKeys, &b.dValues,
                &b.dQNorm, &b.dKNorm, &cs,   &pos,     &m};
  void *aa[] = {&dBQ_,        &b.dKeys,    &b.dValues, &dBScores_, &dBAttnPart_,
                &dBAttnDone_, &dBAttnOut_, &pos,       &nCtx,      &m};
  if (!gpu.launch(b.fnRope, unsigned(p.nHead + p.nKvHead) * unsigned(m),
                  kRopeBlock, ar, error, name[3].c_str(), l) ||
      !gpu.launch(b.fnAttend,
                  attendGrid(p.nHead, p.nKvHead, nCtx_) * unsigned(m),
                  kAttendBlock, aa, error, name[4].c_str(), l))
    return false;
  void *an[] = {&dBAttnOut_, &dBAttnOutQ_, &m};
  void *ao[] = {&b.dWo, &noBias, &woIn, &dBAttnY_, &m};
  return (!usesQ8Act(b.wo.type) ||
          gpu.launch(b.fnQuant, quantGrid(m), kQuantBlock, an, error,
                     name[5].c_str(), l)) &&
         matvec(b.fnWo, b.fnWoTiles, nEmbd, ao, name[6], b.wo);
}

} // namespace pinfer
