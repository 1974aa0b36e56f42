// A hot half's own predictor on the GPU; see executor.h. In predicted mode
// a layer whose steps hold predict@gpu scores its hot neurons there, as the
// CPU's predictor scores the cold ones: fc1 with its bias and ReLU over the
// hot half's input, then, launched with the hot half, each neuron's fc2
// row over those hidden values and the list of the chosen neurons, so
// that a neuron predicted not to fire costs its fc2 row and no gate, up or
// down row, and gate/up and down run over the list.
#include "runtime/executor.h"

#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"

#include <vector>

namespace pinfer {

bool Executor::uploadPredictor(int l, CudaDriver &gpu, std::string &error) {
  using namespace gpuattn;
  LayerBinding &b = layers_[l];
  const ProgramLayer &pl = program_.layers[l];
  const PredictorWeights &pw = b.predictor;
  const bool quantX = predictorQuantisesInput(
      usesQ8Act(pw.fc1.type), hotInputQ8(b.gate.type, b.up.type));
  const std::string xq = predictorKernelName(l, "xq"),
                    fc1 = predictorKernelName(l, "fc1"),
                    hq = predictorKernelName(l, "hq"),
                    pick = predictorKernelName(l, "pick");
  if ((quantX && !(b.fnPredXq = gpu.function(xq.c_str(), error))) ||
      !(b.fnPredFc1 = gpu.function(fc1.c_str(), error)) ||
      !(b.fnPredPick = gpu.function(pick.c_str(), error)) ||
      (usesQ8Act(pw.fc2.type) &&
       !(b.fnPredHq = gpu.function(hq.c_str(), error))))
    return false;
  // Biases go up as zeros where the model has none: the kernels add them
  // always, and the plan bills them always (runtime/vram_bill.h).
  const int64_t rank = pw.rank();
  const std::vector<float> b1 = pw.b1 ? std::vector<float>(pw.b1, pw.b1 + rank)
                                      : std::vector<float>(size_t(rank), 0.f);
  const std::vector<float> b2 = pw.b2
                                    ? std::vector<float>(pw.b2, pw.b2 + pl.nHot)
                                    : std::vector<float>(size_t(pl.nHot), 0.f);
  const size_t fc1Bytes = pw.fc1.rowBytes * size_t(rank),
               fc2Bytes = pw.fc2.rowBytes * pl.nHot;
  return gpu.alloc(b.dFc1, fc1Bytes, error) &&
         gpu.alloc(b.dB1, sizeof(float) * b1.size(), error) &&
         gpu.alloc(b.dFc2, fc2Bytes, error) &&
         gpu.alloc(b.dB2, sizeof(float) * b2.size(), error) &&
         gpu.upload(b.dFc1, pw.fc1.data, fc1Bytes, error) &&
         gpu.upload(b.dB1, b1.data(), sizeof(float) * b1.size(), error) &&
         gpu.upload(b.dFc2, pw.fc2.data, fc2Bytes, error) &&
         gpu.upload(b.dB2, b2.data(), sizeof(float) * b2.size(), error);
}

bool Executor::launchPredictor(int l, CudaDriver::DevPtr x, int nTok,
                               std::string &error) {
  using namespace gpuattn;
  LayerBinding &b = layers_[l];
  const PredictorWeights &pw = b.predictor;
  CudaDriver &gpu = *gpu_;
  const int64_t rank = pw.rank();
  const std::string xq = predictorKernelName(l, "xq"),
                    fc1 = predictorKernelName(l, "fc1"),
                    hq = predictorKernelName(l, "hq");
  CudaDriver::DevPtr in = x;
  if (b.fnPredXq) {
    void *args[] = {&x, &dPredX_, &nTok};
    if (!gpu.launch(b.fnPredXq, quantGrid(nTok), kQuantBlock, args, error,
                    xq.c_str(), l))
      return false;
    in = dPredX_;
  }
  void *fc1Args[] = {&b.dFc1, &b.dB1, &in, &dPredH_, &nTok};
  if (!gpu.launch(b.fnPredFc1, matvecGrid(rank), kMatvecBlock, fc1Args, error,
                  fc1.c_str(), l, b.predictor.fc1.bytes()))
    return false;
  if (!b.fnPredHq)
    return true;
  void *hqArgs[] = {&dPredH_, &dPredH_, &nTok};
  return gpu.launch(b.fnPredHq, quantGrid(nTok), kQuantBlock, hqArgs, error,
                    hq.c_str(), l);
}

} // namespace pinfer
