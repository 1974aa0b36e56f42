// The residual stream on the GPU; see executor.h. When the program's norm
// and add steps run on the GPU (every layer's attention and FFN and the
// head are there), a token costs one upload (its embedding row, or its id
// where the head's matrix is token_embd; the RoPE tables of its position,
// zeroed counters), the layers' kernels back to back on the stream, and one
// copy down (the logits and the per-layer counts of hot neurons that fired)
// with the token's only wait.
#include "runtime/executor.h"

#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace pinfer {

namespace {

size_t tokFloats(const ModelParams &p) {
  return size_t(p.nEmbd) + 2 * size_t(p.nRot);
}

// Bytes of dTok_: those floats, the position, the per-layer counters (the
// hot neurons fired, then chosen), then the token's id.
size_t tokIdAt(const ModelParams &p) {
  return sizeof(float) * tokFloats(p) + sizeof(int32_t) +
         2 * sizeof(uint32_t) * size_t(p.nLayer);
}
size_t tokBytes(const ModelParams &p) { return tokIdAt(p) + sizeof(int32_t); }

} // namespace

bool Executor::uploadResident(std::string &error) {
  CudaDriver &gpu = *gpu_;
  const ModelParams &p = params_;
  using namespace gpuattn;
  if (!(fnResNorm_ = gpu.function(kResidNorm, error)) ||
      !(fnResAdd_ = gpu.function(kResidAdd, error)) ||
      !(fnResQuant_ = gpu.function(kResidQuant, error)) ||
      !(fnResCount_ = gpu.function(kResidCount, error)))
    return false;
  if (program_.embedOnGPU && !(fnEmbed_ = gpu.function(kEmbedGather, error)))
    return false;
  auto put = [&](const std::vector<float> &v, CudaDriver::DevPtr &dst) {
    return v.empty() || (gpu.alloc(dst, sizeof(float) * v.size(), error) &&
                         gpu.upload(dst, v.data(), sizeof(float) * v.size(),
                                    error));
  };
  for (LayerBinding &b : layers_)
    if (!put(b.attnNorm, b.dAttnNorm) || !put(b.ffnNorm, b.dFfnNorm) ||
        !put(b.postAttnNorm, b.dPostAttnNorm) ||
        !put(b.postFfnNorm, b.dPostFfnNorm))
      return false;
  void *ht = nullptr, *hf = nullptr;
  if (!put(outputNorm_, dOutNorm_) || !gpu.alloc(dTok_, tokBytes(p), error) ||
      !gpu.allocHost(ht, tokBytes(p), error) ||
      !gpu.allocHost(hf, 2 * sizeof(uint32_t) * size_t(p.nLayer), error))
    return false;
  hostTok_ = static_cast<float *>(ht);
  hostFired_ = static_cast<uint32_t *>(hf);
  allocResidentBatch();
  return true;
}

bool Executor::beginResidentToken(int token, int pos, bool wantLogits,
                                  std::string &error) {
  const ModelParams &p = params_;
  // The last token's wait has completed every copy from hostTok_.
  if (!program_.embedOnGPU)
    std::copy(x_.begin(), x_.end(), hostTok_);
  gpuattn::ropeAngles(invFreq_.data(), p.nRot, pos, hostTok_ + p.nEmbd);
  if (!invFreqLocal_.empty())
    gpuattn::ropeAngles(invFreqLocal_.data(), p.nRot, pos,
                        hostTok_ + p.nEmbd + p.nRot);
  const int32_t position = pos;
  std::memcpy(hostTok_ + tokFloats(p), &position, sizeof position);
  std::fill_n(reinterpret_cast<uint32_t *>(hostTok_ + tokFloats(p) + 1),
              2 * p.nLayer, 0u);
  std::memcpy(reinterpret_cast<char *>(hostTok_) + tokIdAt(p), &token,
              sizeof token);
  // The token's work from its upload to its copy down is one graph: the
  // same launches with the same arguments at every position (the position
  // and the token's id are read on the device), with or without the head.
  gpu_->beginGraph(!wantLogits ? 0 : selOut_ ? 2 : 1);
  if (!program_.embedOnGPU)
    return gpu_->uploadAsync(dTok_, hostTok_, tokBytes(p), error);
  // Everything after the residual, which the gather then writes.
  const size_t skip = sizeof(float) * size_t(p.nEmbd);
  CudaDriver::DevPtr ids = dTok_ + tokIdAt(p);
  void *args[] = {&dHeadW_, &ids, &dTok_};
  return gpu_->uploadAsync(dTok_ + skip,
                           reinterpret_cast<char *>(hostTok_) + skip,
                           tokBytes(p) - skip, error) &&
         gpu_->launch(fnEmbed_, 1, gpuattn::kEmbedBlock, args, error,
                      gpuattn::kEmbedGather, -1);
}

CudaDriver::DevPtr Executor::tokenPosition() const {
  return dTok_ + sizeof(float) * tokFloats(params_);
}

CudaDriver::DevPtr Executor::firedCounter(int l) const {
  return tokenPosition() + sizeof(int32_t) + sizeof(uint32_t) * size_t(l);
}

CudaDriver::DevPtr Executor::chosenCounter(int l) const {
  return firedCounter(params_.nLayer + l);
}

bool Executor::countHotFired(int l, CudaDriver::DevPtr h, int n,
                             CudaDriver::DevPtr counter, std::string &error) {
  using namespace gpuattn;
  void *args[] = {&h, &n, &counter};
  return gpu_->launch(fnResCount_, residGrid(n), kResidBlock, args, error,
                      kResidCount, l);
}

bool Executor::countHotInto(int l, CudaDriver::DevPtr h, int64_t n,
                            CudaDriver::DevPtr c, std::string &error) {
  int count = int(n);
  void *args[] = {&h, &count, &c};
  return gpu_->launch(fnHotCount_, 1, gpuattn::kHotCountBlock, args, error,
                      gpuattn::kHotCount, l);
}

bool Executor::residentNorm(CudaDriver::DevPtr x, CudaDriver::DevPtr w,
                            CudaDriver::DevPtr y, CudaDriver::DevPtr yq,
                            int nTok, int l, std::string &error) {
  using namespace gpuattn;
  void *norm[] = {&x, &w, &y};
  if (!gpu_->launch(fnResNorm_, unsigned(nTok), kResidNormBlock, norm, error,
                    kResidNorm, l))
    return false;
  if (!yq)
    return true;
  void *quant[] = {&y, &yq, &nTok};
  return gpu_->launch(fnResQuant_, quantGrid(nTok), kQuantBlock, quant, error,
                      kResidQuant, l);
}

bool Executor::residentAdd(CudaDriver::DevPtr x, CudaDriver::DevPtr y, int nTok,
                           int l, std::string &error) {
  using namespace gpuattn;
  void *args[] = {&x, &y, &nTok};
  return gpu_->launch(fnResAdd_, residGrid(int64_t(nTok) * params_.nEmbd),
                      kResidBlock, args, error, kResidAdd, l);
}

void *Executor::tilesOf(CudaDriver &gpu, const std::string &kernel, bool has) {
  // A module compiled for an older GPU has none: no error.
  std::string absent;
  return has && gpuattn::tilesWanted()
             ? gpu.function((kernel + gpuattn::kTilesSuffix).c_str(), absent)
             : nullptr;
}

bool Executor::launchTilesOr(CudaDriver &gpu, int nTok, void *tiles,
                             int64_t tileRows, void *rows, unsigned grid,
                             unsigned block, void **args, std::string &error,
                             const std::string &kernel, int layer,
                             uint64_t bytes) {
  return nTok > 1 && tiles
             ? gpu.launch(tiles, gpuattn::tileGrid(tileRows),
                          gpuattn::kTileBlock, args, error,
                          (kernel + gpuattn::kTilesSuffix).c_str(), layer,
                          bytes)
             : gpu.launch(rows, grid, block, args, error, kernel.c_str(), layer,
                          bytes);
}

bool Executor::launchHotHalf(int l, CudaDriver::DevPtr x, CudaDriver::DevPtr h,
                             CudaDriver::DevPtr y, CudaDriver::DevPtr part,
                             int nTok, CudaDriver::DevPtr chosen,
                             std::string &error) {
  LayerBinding &b = layers_[l];
  const ProgramLayer &pl = program_.layers[l];
  // With the layer's predictor on the GPU its pick kernel first scores
  // each neuron from the hidden values launchPredictor left in dPredH_
  // and lists the chosen ones in dPick_, which gate/up and down then
  // take as their last argument.
  void *pickArgs[] = {&b.dFc2, &b.dB2, &dPredH_, &h, &dPick_, &chosen, &nTok};
  void *gateUpArgs[] = {&b.dGate, &b.dUp, &x, &h, &nTok, &dPick_};
  // Source rows of a block type take h's 8-bit values, in the scratch.
  CudaDriver::DevPtr downIn = b.fnDownQuant ? part : h;
  void *downRowArgs[] = {&b.dDownT, &downIn, &y,     &part,
                         &dDone_,   &nTok,   &dPick_};
  void *quantArgs[] = {&h, &part, &nTok};
  void *downSplitArgs[] = {&b.dDownT, &b.dDownS, &b.dIds, &h,     &y,
                           &part,     &dDone_,   &nTok,   &dPick_};
  void **downArgs = isSplitDown(b.downLayout) ? downSplitArgs : downRowArgs;
  if (b.gpuPredicts &&
      !gpu_->launch(b.fnPredPick, gpuattn::pickGrid(pl.nHot),
                    gpuattn::kPickBlock, pickArgs, error,
                    gpuattn::predictorKernelName(l, "pick").c_str(), l))
    return false;
  // The rows read, for --gpu-profile: in dense mode every hot row, once
  // per launch whatever its tokens; the sparse modes' rows depend on what
  // fired, and go uncounted.
  const bool dense = program_.mode == SparsityMode::Dense;
  const uint64_t gateUpBytes =
      dense ? uint64_t(pl.nHot) * (b.gate.rowBytes + b.up.rowBytes) : 0;
  const uint64_t downBytes = !dense || isSplitDown(b.downLayout) ? 0
                             : b.downLayout == DownLayout::Source
                                 ? uint64_t(params_.nEmbd) * b.downT.rowBytes
                                 : uint64_t(pl.nHot) * b.downT.rowBytes;
  // Two tokens or more take the pair's and the down rows' tile forms
  // where they have them.
  return launchTilesOr(*gpu_, nTok, b.fnGateUpTiles, pl.nHot, b.fnGateUp,
                       pl.gateUpGrid, pl.gateUpBlock, gateUpArgs, error,
                       pl.gateUpKernel, l, gateUpBytes) &&
         (!b.fnDownQuant ||
          gpu_->launch(b.fnDownQuant, gpuattn::quantGrid(nTok),
                       gpuattn::kQuantBlock, quantArgs, error,
                       gpuattn::downQuantKernelName(l).c_str(), l)) &&
         launchTilesOr(*gpu_, nTok, b.fnDownTiles, params_.nEmbd, b.fnDown,
                       pl.downGrid, pl.downBlock, downArgs, error,
                       pl.downKernel, l, downBytes);
}

bool Executor::residentStep(int l, const ProgramStep &s, std::string &error) {
  LayerBinding &b = layers_[l];
  const CudaDriver::DevPtr f = sizeof(float);
  switch (s.kind) {
  case StepKind::AttnNorm:
    // Into the attention's input: f32, then its 8-bit values beside.
    return residentNorm(dTok_, b.dAttnNorm, dAttnX_,
                        usesQ8Act(b.wq.type) || usesQ8Act(b.wk.type) ||
                                usesQ8Act(b.wv.type)
                            ? dAttnX_ + f * params_.nEmbd
                            : 0,
                        1, l, error);
  case StepKind::AttnPostNorm:
    return residentNorm(dAttnY_, b.dPostAttnNorm, dAttnY_, 0, 1, l, error);
  case StepKind::AttnAdd:
    return residentAdd(dTok_, dAttnY_, 1, l, error);
  case StepKind::FfnNorm:
    // Into the hot half's input, which reads one form for both rows (see
    // the Transfer step).
    return residentNorm(dTok_, b.dFfnNorm, dX_,
                        hotInputQ8(b.gate.type, b.up.type) ? dX_ : 0, 1, l,
                        error);
  case StepKind::Predict:
    return launchPredictor(l, dX_, 1, error);
  case StepKind::FfnPostNorm:
    return residentNorm(dOut_, b.dPostFfnNorm, dOut_, 0, 1, l, error);
  case StepKind::FfnAdd:
    return residentAdd(dTok_, dOut_, 1, l, error);
  default:
    error = "program layer " + std::to_string(l) + ", step " +
            stepsText(&s, 1) + ": no GPU routine for it";
    return false;
  }
}

bool Executor::residentHead(CudaDriver::DevPtr x, std::string &error) {
  // The final norm into the head's input (f32, then its 8-bit values).
  return residentNorm(x, dOutNorm_, dHeadX_,
                      usesQ8Act(output_.type)
                          ? dHeadX_ + sizeof(float) * params_.nEmbd
                          : 0,
                      1, -1, error) &&
         enqueueHead(error);
}

bool Executor::endResidentToken(bool wantLogits, std::string &error) {
  const ModelParams &p = params_;
  CudaDriver &gpu = *gpu_;
  if (wantLogits && !residentHead(dTok_, error))
    return false;
  if (!gpu.downloadAsync(hostFired_, firedCounter(0),
                         2 * sizeof(uint32_t) * size_t(p.nLayer), error) ||
      !gpu.endGraph(error))
    return false;
  if (!graphNoted_ && !gpu.graphNote().empty()) {
    std::fprintf(stderr, "%s\n", gpu.graphNote().c_str());
    graphNoted_ = true;
  }
  if (!gpu.record(attnCopied_, error) || !gpu.wait(attnCopied_, error))
    return false;
  for (int l = 0; l < p.nLayer; ++l) {
    LayerRun run;
    run.onGpu = true;
    run.firedHot = hostFired_[l];
    run.chosenHot = hostFired_[p.nLayer + l];
    countFfn(l, run);
  }
  return !wantLogits || takeHead(error);
}

} // namespace pinfer
