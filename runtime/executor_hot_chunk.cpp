// The hot half of a prompt's chunk on the GPU for a program with a CPU
// part; see executor.h. One copy up of the chunk's FFN input, the layer's
// predictor where its steps put one there, its gate/up and down kernels
// over the chunk's tokens (each row read once per
// chunk, each token computed as alone), the count of hot neurons that fired,
// one copy down of y and the counts; the cold half runs on the CPU
// meanwhile (ffnBatch), and the
// two merge as eval() merges them, so the chunk's results are bitwise those
// of token-by-token evaluation.
#include "runtime/executor.h"

#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"

#include <algorithm>
#include <cstring>

namespace pinfer {

bool Executor::hotChunkGpu(int l, int n, std::string &error) {
  LayerBinding &b = layers_[l];
  const ProgramLayer &pl = program_.layers[l];
  const int64_t nEmbd = params_.nEmbd, nBlk = nEmbd / QK8_0;
  // The input each token's hot half reads alone (the Transfer step): the
  // 8-bit values where both gate and up rows multiply them, else f32.
  const bool q8 = hotInputQ8(b.gate.type, b.up.type);
  for (int t = 0; t < n; ++t) {
    float *dst = hostHX_ + size_t(t) * nEmbd;
    if (q8)
      packActQ8(bXq_.data() + size_t(t) * nBlk, dst, nEmbd);
    else
      std::copy(bXb_.data() + size_t(t) * nEmbd,
                bXb_.data() + size_t(t + 1) * nEmbd, dst);
  }
  CudaDriver &gpu = *gpu_;
  // y of the chunk's tokens, the counts, then their activations (which
  // stay).
  const CudaDriver::DevPtr counts = dHOut_ + sizeof(float) * size_t(n) * nEmbd;
  const CudaDriver::DevPtr dH = counts + sizeof(float) * kOutCounts;
  return gpu.uploadAsync(dHX_, hostHX_, sizeof(float) * size_t(n) * nEmbd,
                         error) &&
         (!b.gpuPredicts || launchPredictor(l, dHX_, n, error)) &&
         launchHotHalf(l, dHX_, dH, dHOut_, dHPart_, n, counts, error) &&
         countHotInto(l, dH, int64_t(n) * pl.nHot, counts + sizeof(uint32_t),
                      error) &&
         gpu.downloadAsync(hostHOut_, dHOut_,
                           sizeof(float) * (size_t(n) * nEmbd + kOutCounts),
                           error) &&
         gpu.record(b.outCopied, error);
}

bool Executor::hotChunkDone(int l, int n, std::string &error) {
  LayerBinding &b = layers_[l];
  const int64_t nEmbd = params_.nEmbd;
  if (!gpu_->wait(b.outCopied, error))
    return false;
  std::copy(hostHOut_, hostHOut_ + size_t(n) * nEmbd, bYHot_.begin());
  uint32_t counts[kOutCounts];
  std::memcpy(counts, hostHOut_ + size_t(n) * nEmbd, sizeof counts);
  // The hot neurons that fired over the chunk's tokens: the layer's
  // counters take only their sum (ffnBatch), so the first token carries it.
  for (int t = 0; t < n; ++t)
    bFired_[2 * t] = t == 0 ? counts[1] : 0;
  // The neurons the GPU's predictor chose, over the chunk's tokens.
  if (b.gpuPredicts)
    stats_[l].predicted += counts[0];
  return true;
}

} // namespace pinfer
