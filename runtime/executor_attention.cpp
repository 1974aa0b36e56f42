// Attention on the GPU for the layers the plan puts there; see executor.h
// and runtime/gpu_attention.h (the kernels and their order). The norm
// before and the residual add after stay host steps: per layer only the
// normalised input goes up and the output projection comes back.
#include "runtime/executor.h"

#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"
#include "runtime/vram_bill.h"

#include <algorithm>
#include <cstring>

namespace pinfer {

bool Executor::uploadAttention(int l, std::string &error) {
  LayerBinding &b = layers_[l];
  const ModelParams &p = params_;
  CudaDriver &gpu = *gpu_;
  static const char *kKernels[] = {"wq",     "wk",    "wv", "rope",
                                   "attend", "quant", "wo"};
  void **fns[] = {&b.fnWq,     &b.fnWk,    &b.fnWv, &b.fnRope,
                  &b.fnAttend, &b.fnQuant, &b.fnWo};
  for (int k = 0; k < 7; ++k)
    if (!(*fns[k] = gpu.function(gpuattn::kernelName(l, kKernels[k]).c_str(),
                                 error)))
      return false;
  // A module compiled for an older GPU has no tiles: the chunk takes the
  // one-row kernels.
  static const char *kTiled[] = {"wq", "wk", "wv", "wo"};
  void **tiled[] = {&b.fnWqTiles, &b.fnWkTiles, &b.fnWvTiles, &b.fnWoTiles};
  const Weight *ws[] = {&b.wq, &b.wk, &b.wv, &b.wo};
  for (int k = 0; k < 4; ++k)
    *tiled[k] = tilesOf(gpu, gpuattn::kernelName(l, kTiled[k]),
                        gpuattn::hasMatvecTiles(ws[k]->type, ws[k]->cols));
  struct Part {
    const void *src;
    size_t bytes;
    CudaDriver::DevPtr *dst;
  };
  auto vec = [](const std::vector<float> &v, CudaDriver::DevPtr *dst) {
    return Part{v.data(), v.size() * sizeof(float), dst};
  };
  CudaDriver::DevPtr *ds[] = {&b.dWq, &b.dWk, &b.dWv, &b.dWo};
  std::vector<Part> parts;
  for (int k = 0; k < 4; ++k)
    parts.push_back(Part{ws[k]->data, ws[k]->rowBytes * ws[k]->rows, ds[k]});
  for (Part extra : {vec(b.bq, &b.dBq), vec(b.bk, &b.dBk), vec(b.bv, &b.dBv),
                     vec(b.qNorm, &b.dQNorm), vec(b.kNorm, &b.dKNorm)})
    if (extra.bytes)
      parts.push_back(extra);
  for (const Part &part : parts)
    if (!gpu.alloc(*part.dst, part.bytes, error) ||
        !gpu.upload(*part.dst, part.src, part.bytes, error))
      return false;
  const size_t cache = kvCacheVram(nCtx_, p.kvDim()) / 2; // K or V, f16
  if (!gpu.alloc(b.dKeys, cache, error) || !gpu.alloc(b.dValues, cache, error))
    return false;
  b.attnOnGpu = true;
  return true;
}

void Executor::stageInput(float *host, bool withQ8) {
  const int nEmbd = params_.nEmbd;
  std::copy(xb_.begin(), xb_.end(), host);
  if (!withQ8)
    return;
  attnXq_.resize(size_t(nEmbd / QK8_0));
  quantizeActQ8(xb_.data(), attnXq_.data(), nEmbd);
  packActQ8(attnXq_.data(), host + nEmbd, nEmbd);
}

bool Executor::attentionGpu(int l, int pos, std::string &error) {
  LayerBinding &b = layers_[l];
  const ModelParams &p = params_;
  const int nEmbd = p.nEmbd, qDim = p.qDim(), kvDim = p.kvDim();
  CudaDriver &gpu = *gpu_;
  const bool local = p.isSlidingLayer(l) && !invFreqLocal_.empty();
  CudaDriver::DevPtr x32 = dAttnX_, x8 = dAttnX_ + sizeof(float) * nEmbd;
  CudaDriver::DevPtr cs = dAttnX_ + sizeof(float) * 2 * nEmbd;
  CudaDriver::DevPtr posAt = cs + sizeof(float) * p.nRot;
  if (residentOn_) {
    // The input is already there (the attn_norm step's), and the
    // position's RoPE tables and the position came up with the token.
    cs = dTok_ + sizeof(float) * (nEmbd + (local ? p.nRot : 0));
    posAt = tokenPosition();
  } else {
    // The input, f32 and as the 8-bit values the CPU's matvecs multiply for
    // Q8_0/Q4_0/Q5_0 rows; each projection reads the one its type reads.
    stageInput(hostAttnX_, usesQ8Act(b.wq.type) || usesQ8Act(b.wk.type) ||
                               usesQ8Act(b.wv.type));
    // After the input: this position's RoPE cos/sin pairs for the layer.
    gpuattn::ropeAngles(local ? invFreqLocal_.data() : invFreq_.data(),
                        p.nRot, pos, hostAttnX_ + 2 * nEmbd);
    const int32_t position = pos;
    std::memcpy(hostAttnX_ + 2 * nEmbd + p.nRot, &position, sizeof position);
  }
  auto input = [&](const Weight &w) { return usesQ8Act(w.type) ? &x8 : &x32; };
  // Every argument is the same at every position (the position is read
  // from device memory): the resident path replays a token as one graph.
  CudaDriver::DevPtr noBias = 0;
  CudaDriver::DevPtr woIn = usesQ8Act(b.wo.type) ? dAttnOutQ_ : dAttnOut_;
  int nCtx = nCtx_, one = 1;
  void *aq[] = {&b.dWq, &b.dBq, input(b.wq), &dQ_, &one};
  void *ak[] = {&b.dWk, &b.dBk, input(b.wk), &dK_, &one};
  void *av[] = {&b.dWv, &b.dBv, input(b.wv), &dV_, &one};
  void *ar[] = {&dQ_,      &dK_,      &dV_, &b.dKeys, &b.dValues,
                &b.dQNorm, &b.dKNorm, &cs,  &posAt,   &one};
  void *aa[] = {&dQ_,        &b.dKeys,   &b.dValues, &dScores_, &dAttnPart_,
                &dAttnDone_, &dAttnOut_, &posAt,     &nCtx,     &one};
  void *an[] = {&dAttnOut_, &dAttnOutQ_, &one};
  void *ao[] = {&b.dWo, &noBias, &woIn, &dAttnY_, &one};
  using namespace gpuattn;
  const std::string name[] = {kernelName(l, "wq"),   kernelName(l, "wk"),
                              kernelName(l, "wv"),   kernelName(l, "rope"),
                              kernelName(l, "attend"), kernelName(l, "quant"),
                              kernelName(l, "wo")};
  if ((!residentOn_ &&
       !gpu.uploadAsync(dAttnX_, hostAttnX_,
                        sizeof(float) * (2 * nEmbd + p.nRot) + sizeof(int32_t),
                        error)) ||
      !gpu.launch(b.fnWq, matvecGrid(qDim), kMatvecBlock, aq, error,
                  name[0].c_str(), l, b.wq.bytes()) ||
      !gpu.launch(b.fnWk, matvecGrid(kvDim), kMatvecBlock, ak, error,
                  name[1].c_str(), l, b.wk.bytes()) ||
      !gpu.launch(b.fnWv, matvecGrid(kvDim), kMatvecBlock, av, error,
                  name[2].c_str(), l, b.wv.bytes()) ||
      !gpu.launch(b.fnRope, unsigned(p.nHead + p.nKvHead), kRopeBlock, ar,
                  error, name[3].c_str(), l) ||
      !gpu.launch(b.fnAttend, attendGrid(p.nHead, p.nKvHead, nCtx_),
                  kAttendBlock, aa, error, name[4].c_str(), l))
    return false;
  if (usesQ8Act(b.wo.type) && !gpu.launch(b.fnQuant, quantGrid(1), kQuantBlock,
                                          an, error, name[5].c_str(), l))
    return false;
  if (!gpu.launch(b.fnWo, matvecGrid(nEmbd), kMatvecBlock, ao, error,
                  name[6].c_str(), l, b.wo.bytes()))
    return false;
  // The output stays on the GPU for the residual stream's next steps, or
  // comes down for the host's.
  if (!residentOn_) {
    if (!gpu.downloadAsync(hostAttnY_, dAttnY_, sizeof(float) * nEmbd,
                           error) ||
        !gpu.record(attnCopied_, error) || !gpu.wait(attnCopied_, error))
      return false;
    std::copy(hostAttnY_, hostAttnY_ + nEmbd, xb2_.begin());
  }
  if (countBytes_) {
    for (const Weight *w : {&b.wq, &b.wk, &b.wv, &b.wo})
      gpuBytes_ += w->rows * w->rowBytes;
    gpuBytes_ += 2 * sizeof(float) * uint64_t(pos + 1) * kvDim;
  }
  return true;
}

bool Executor::computeLogits(std::string &error) {
  const ModelParams &p = params_;
  const int nEmbd = p.nEmbd;
  rmsNorm(xb_.data(), x_.data(), outputNorm_.data(), nEmbd, p.normEps);
  if (!headOnGpu_) {
    matvec(output_, xb_.data(), logits_.data(), pool_);
    if (countBytes_)
      cpuBytes_ += output_.rows * output_.rowBytes;
    return true;
  }
  // As the CPU's matvec: 8-bit input for Q8_0/Q4_0/Q5_0 rows.
  stageInput(hostHeadX_, usesQ8Act(output_.type));
  if (!gpu_->uploadAsync(dHeadX_, hostHeadX_, sizeof(float) * 2 * nEmbd,
                         error) ||
      !enqueueHead(error) || !gpu_->record(attnCopied_, error) ||
      !gpu_->wait(attnCopied_, error))
    return false;
  return takeHead(error);
}

bool Executor::enqueueHead(std::string &error) {
  const ModelParams &p = params_;
  CudaDriver::DevPtr x = usesQ8Act(output_.type)
                             ? dHeadX_ + sizeof(float) * p.nEmbd
                             : dHeadX_;
  CudaDriver::DevPtr noBias = 0;
  int one = 1;
  void *args[] = {&dHeadW_, &noBias, &x, &dLogits_, &one};
  if (!gpu_->launch(fnHead_, gpuattn::matvecGrid(p.nVocab),
                    gpuattn::kMatvecBlock, args, error, gpuattn::kHeadKernel,
                    -1, output_.bytes()))
    return false;
  if (!selOut_)
    return gpu_->downloadAsync(hostLogits_, dLogits_, sizeof(float) * p.nVocab,
                               error);
  // The best logits chosen here; the same launches and copies at every
  // token (the request's contents change, not its address).
  using namespace gpuattn;
  void *both[] = {&dLogits_, &dSel_};
  void *sel[] = {&dSel_};
  return gpu_->uploadAsync(dSel_, hostSelReq_, kSelRequestBytes, error) &&
         gpu_->launch(fnHeadHist_, selGrid(p.nVocab), kSelBlock, both, error,
                      kHeadHist) &&
         gpu_->launch(fnHeadCut_, 1, kSelCutBlock, sel, error, kHeadCut) &&
         gpu_->launch(fnHeadPick_, selGrid(p.nVocab), kSelBlock, both, error,
                      kHeadPick) &&
         gpu_->downloadAsync(hostSel_, dSel_, kSelResultBytes, error);
}

void Executor::takeLogits() {
  std::copy(hostLogits_, hostLogits_ + params_.nVocab, logits_.begin());
  if (countBytes_)
    gpuBytes_ += output_.rows * output_.rowBytes;
}

bool Executor::takeHead(std::string &error) {
  if (!selOut_) {
    takeLogits();
    return true;
  }
  using namespace gpuattn;
  const HeadSel &sel = *hostSel_;
  HeadSelection &out = *selOut_;
  out.nonFinite = sel.bad == INT32_MAX ? -1 : sel.bad;
  if (sel.count > uint32_t(kSelCap)) {
    // Too many share the cut's bin (a flat distribution): all the logits.
    if (!gpu_->download(hostLogits_, dLogits_, sizeof(float) * params_.nVocab,
                        error))
      return false;
    takeLogits();
    out.all = true;
    return true;
  }
  if (sel.count > uint32_t(kSelFirst) &&
      !gpu_->download(hostSel_->cand + kSelFirst,
                      dSel_ + offsetof(HeadSel, cand) +
                          sizeof(HeadSelCand) * kSelFirst,
                      sizeof(HeadSelCand) * (sel.count - kSelFirst), error))
    return false;
  out.ids.resize(sel.count + size_t(sel.nExtra));
  out.logits.resize(out.ids.size());
  for (uint32_t i = 0; i < sel.count; ++i) {
    out.ids[i] = sel.cand[i].id;
    out.logits[i] = sel.cand[i].logit;
  }
  for (int j = 0; j < sel.nExtra; ++j) {
    out.ids[sel.count + j] = hostSelReq_->extraIds[j];
    out.logits[sel.count + j] = sel.extraLogits[j];
  }
  if (countBytes_)
    gpuBytes_ += output_.rows * output_.rowBytes;
  return true;
}

} // namespace pinfer
