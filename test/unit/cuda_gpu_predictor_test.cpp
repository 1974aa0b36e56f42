// Tests a hot half's predictor on the GPU (runtime/gpu_attention.h,
// predictorKernelName) against its CPU twin: the runtime's predictorLogits
// chooses the neurons, exact-mode gate/up and the down projection compute
// the chosen ones. On a real GPU and, in ctest's ".standin" runs, through
// the libcuda stand-in with the emitted source built as host C++.
#include "codegen/CudaAttention.h"
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"
#include "runtime/predictor.h"
#include "runtime/sparse_kernels.h"

#include "host_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace pinfer;
using pinfer::testutil::randomRows;
using pinfer::testutil::useHostKernels;

namespace {

// More hot neurons than the pick kernel has threads: each lists a run of
// three (the last ones none).
// Tokens: a group of gpuattn::kTokenGroup in gate/up, then two alone.
constexpr int kEmbd = 256, kHot = 700, kTok = 6;

struct PredCase {
  GGMLType gate; // and up
  GGMLType fc1, fc2;
  int rank;
};

// The steps that put layer 0's predictor on the GPU.
std::vector<ProgramStep> predictOnGpuSteps() {
  std::vector<ProgramStep> steps(2);
  steps[0].kind = StepKind::Predict;
  steps[0].device = StepDevice::Gpu;
  steps[1].kind = StepKind::FfnHalf;
  steps[1].device = StepDevice::Gpu;
  return steps;
}

ProgramDesc predictedDesc(const PredCase &c, int cc, float threshold) {
  ProgramDesc d;
  d.params.nEmbd = kEmbd;
  d.params.nFF = kHot;
  d.params.nLayer = 1;
  d.params.activation = FfnActivation::ReLU;
  d.mode = SparsityMode::Predicted;
  d.predictorThreshold = threshold;
  d.smArch = "sm_" + std::to_string(cc);
  d.layers.resize(1);
  LayerDesc &l = d.layers[0];
  l.gateType = l.upType = c.gate;
  l.downTType = GGMLType::F32;
  l.predictorRank = uint32_t(c.rank);
  l.fc1Type = c.fc1;
  l.fc2Type = c.fc2;
  l.steps = predictOnGpuSteps();
  for (uint32_t i = 0; i < kHot; ++i)
    l.hot.push_back(i);
  return d;
}

using CudaPredictor = testutil::GpuTestWithParam<PredCase>;

// Tests that the predictor kernels and the predicted gate/up kernel choose
// the CPU predictor's neurons for each of six tokens (launched as one
// chunk), list the neurons any of them chose, and give the CPU twin's
// activations and down projection within 1e-4 normalised error; then the
// same for one token through the same record, its activations the bits it
// got in the chunk.
TEST_P(CudaPredictor, MatchesCpuTwin) {
  const PredCase &c = GetParam();
  Weight gate, up, downT;
  PredictorWeights pw;
  auto gateBytes = randomRows(c.gate, kEmbd, kHot, 1, gate);
  auto upBytes = randomRows(c.gate, kEmbd, kHot, 2, up);
  auto downBytes = randomRows(GGMLType::F32, kEmbd, kHot, 3, downT);
  auto fc1Bytes = randomRows(c.fc1, kEmbd, c.rank, 4, pw.fc1);
  auto fc2Bytes = randomRows(c.fc2, c.rank, kHot, 5, pw.fc2, 0.1f);
  std::mt19937 rng(6);
  std::normal_distribution<float> dist(0.f, 0.3f);
  std::vector<float> b1(c.rank), b2(kHot), x(size_t(kTok) * kEmbd);
  for (float &v : b1)
    v = dist(rng);
  for (float &v : b2)
    v = dist(rng);
  for (float &v : x)
    v = dist(rng);
  pw.b1 = b1.data();
  pw.b2 = b2.data();

  // The CPU predictor's scores of every token; the threshold in the middle
  // of their widest gap around the median, so that rounding differences
  // between the devices cannot move a neuron across it.
  std::vector<std::vector<float>> logits(kTok);
  std::vector<float> all;
  PredictorScratch scratch;
  for (int t = 0; t < kTok; ++t) {
    predictorLogits(pw, x.data() + size_t(t) * kEmbd, scratch);
    logits[t] = scratch.logits;
    all.insert(all.end(), scratch.logits.begin(), scratch.logits.end());
  }
  std::sort(all.begin(), all.end());
  float threshold = 0.f, gap = -1.f;
  for (size_t i = all.size() / 4; i + 1 < 3 * all.size() / 4; ++i)
    if (all[i + 1] - all[i] > gap) {
      gap = all[i + 1] - all[i];
      threshold = 0.5f * (all[i] + all[i + 1]);
    }
  pw.threshold = threshold;

  // The hot half's input as the executor sends it up: 8-bit values where
  // gate and up multiply them, else f32.
  const bool inputQ8 = usesQ8Act(c.gate);
  // The twin's gate and up multiply the same 8-bit values, as floats.
  std::vector<float> xIn = x, xTwin = x;
  if (inputQ8)
    for (int t = 0; t < kTok; ++t)
      testutil::quantisedInput(x.data() + size_t(t) * kEmbd, kEmbd,
                               xIn.data() + size_t(t) * kEmbd,
                               xTwin.data() + size_t(t) * kEmbd);
  // The CPU twin: chosen neurons as exact mode computes them, gate and up
  // from the input the GPU gets, the predictor from the f32 input as the
  // CPU's predict step reads it.
  std::vector<float> hWant(size_t(kTok) * kHot, 0.f),
      yWant(size_t(kTok) * kEmbd, 0.f);
  int chosen = 0;
  for (int t = 0; t < kTok; ++t) {
    const float *xt = xTwin.data() + size_t(t) * kEmbd;
    float *ht = hWant.data() + size_t(t) * kHot;
    for (int n = 0; n < kHot; ++n) {
      if (!(logits[t][n] > threshold))
        continue;
      ++chosen;
      const float a = ffnActivate(FfnActivation::ReLU,
                                  dotRow(gate.type, gate.row(n), xt, kEmbd));
      if (a != 0.f)
        ht[n] = a * dotRow(up.type, up.row(n), xt, kEmbd);
    }
    sparseDownAxpy(downT, nullptr, 0, kHot, ht,
                   yWant.data() + size_t(t) * kEmbd, 0, kEmbd);
  }
  ASSERT_GT(chosen, kTok * kHot / 8);
  ASSERT_LT(chosen, kTok * kHot * 7 / 8);

  ProgramDesc d = predictedDesc(c, gpu_.computeCapability(), threshold);
  CudaModule m = emitCuda(d);
  NvrtcOutput ptx;
  std::string error;
  ASSERT_TRUE(
      compileCuda(m.source, "test.cu", d.smArch, GpuImageKind::PTX, ptx, error))
      << error;
  const std::string name =
      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  ASSERT_EQ(useHostKernels(
                m.source, "p" + std::to_string(std::hash<std::string>()(name))),
            "");
  ASSERT_TRUE(gpu_.loadModule(ptx.image.data(), error)) << error;
  gpu_.setKernelAliases(m.aliases);
  using namespace gpuattn;
  // Which kernels the layer has follows from the types (gpu_attention.h).
  const bool quantX = predictorQuantisesInput(usesQ8Act(c.fc1), inputQ8);
  const std::string xqName = predictorKernelName(0, "xq"),
                    fc1Name = predictorKernelName(0, "fc1"),
                    hqName = predictorKernelName(0, "hq"),
                    pickName = predictorKernelName(0, "pick");
  void *fnXq = quantX ? gpu_.function(xqName.c_str(), error) : nullptr;
  void *fnFc1 = gpu_.function(fc1Name.c_str(), error);
  void *fnHq =
      usesQ8Act(c.fc2) ? gpu_.function(hqName.c_str(), error) : nullptr;
  void *fnPick = gpu_.function(pickName.c_str(), error);
  const CudaKernel &k = m.kernels[0];
  void *fnGateUp = gpu_.function(k.gateUp.c_str(), error);
  void *fnDown = gpu_.function(k.down.c_str(), error);
  ASSERT_TRUE(fnFc1 && fnPick && fnGateUp && fnDown && (fnXq || !quantX) &&
              (fnHq || !usesQ8Act(c.fc2)))
      << error;
  EXPECT_EQ(m.source.find(xqName) != std::string::npos, quantX);

  auto up1 = [&](CudaDriver::DevPtr &dst, const void *src, size_t bytes) {
    return gpu_.alloc(dst, bytes, error) && gpu_.upload(dst, src, bytes, error);
  };
  CudaDriver::DevPtr dGate, dUp, dDown, dFc1, dB1, dFc2, dB2, dX, dPX, dPH, dH,
      dY, dPart, dDone, dPick, dChosen;
  const std::vector<uint32_t> zeros(std::max<size_t>(k.downGrid, kPickListAt),
                                    0);
  const size_t f = sizeof(float);
  ASSERT_TRUE(up1(dGate, gateBytes.data(), gateBytes.size()) &&
              up1(dUp, upBytes.data(), upBytes.size()) &&
              up1(dDown, downBytes.data(), downBytes.size()) &&
              up1(dFc1, fc1Bytes.data(), fc1Bytes.size()) &&
              up1(dB1, b1.data(), f * b1.size()) &&
              up1(dFc2, fc2Bytes.data(), fc2Bytes.size()) &&
              up1(dB2, b2.data(), f * b2.size()) &&
              up1(dX, xIn.data(), f * xIn.size()) &&
              gpu_.alloc(dPX, f * kTok * kEmbd, error) &&
              gpu_.alloc(dPH, f * kTok * c.rank, error) &&
              gpu_.alloc(dH, f * kTok * kHot, error) &&
              gpu_.alloc(dY, f * kTok * kEmbd, error) &&
              gpu_.alloc(dPart, f * kTok * k.downGrid * k.downBlock * kDownCols,
                         error) &&
              up1(dDone, zeros.data(), 4 * zeros.size()) &&
              gpu_.alloc(dPick, pickBytes(kHot, kTok), error) &&
              gpu_.upload(dPick, zeros.data(), 4 * kPickListAt, error) &&
              gpu_.alloc(dChosen, 4, error))
      << error;
  int nTok = kTok;
  CudaDriver::DevPtr fc1In = quantX ? dPX : dX;
  void *xqArgs[] = {&dX, &dPX, &nTok};
  void *fc1Args[] = {&dFc1, &dB1, &fc1In, &dPH, &nTok};
  void *hqArgs[] = {&dPH, &dPH, &nTok};
  void *pickArgs[] = {&dFc2, &dB2, &dPH, &dH, &dPick, &dChosen, &nTok};
  void *gateUpArgs[] = {&dGate, &dUp, &dX, &dH, &nTok, &dPick};
  void *downArgs[] = {&dDown, &dH, &dY, &dPart, &dDone, &nTok, &dPick};
  // The hot half after the predictor: pick, gate/up over its list, down.
  auto hotHalf = [&] {
    return gpu_.launch(fnPick, pickGrid(kHot), kPickBlock, pickArgs, error) &&
           gpu_.launch(fnGateUp, k.gateUpGrid, k.gateUpBlock, gateUpArgs,
                       error) &&
           gpu_.launch(fnDown, k.downGrid, k.downBlock, downArgs, error);
  };
  ASSERT_TRUE(
      (!quantX ||
       gpu_.launch(fnXq, quantGrid(kTok), kQuantBlock, xqArgs, error)) &&
      gpu_.launch(fnFc1, matvecGrid(c.rank), kMatvecBlock, fc1Args, error) &&
      (!fnHq ||
       gpu_.launch(fnHq, quantGrid(kTok), kQuantBlock, hqArgs, error)) &&
      hotHalf() && gpu_.synchronize(error))
      << error;
  std::vector<float> hGot(hWant.size()), yGot(yWant.size());
  ASSERT_TRUE(gpu_.download(hGot.data(), dH, f * hGot.size(), error) &&
              gpu_.download(yGot.data(), dY, f * yGot.size(), error))
      << error;
  for (int t = 0; t < kTok; ++t) {
    SCOPED_TRACE("token " + std::to_string(t));
    const size_t h0 = size_t(t) * kHot, y0 = size_t(t) * kEmbd;
    EXPECT_LT(
        testutil::normalisedError(hGot.data() + h0, hWant.data() + h0, kHot),
        1e-4);
    EXPECT_LT(
        testutil::normalisedError(yGot.data() + y0, yWant.data() + y0, kEmbd),
        1e-4);
    // A neuron the predictor skipped is exactly zero on both; so is one
    // whose gate the ReLU zeroed.
    int mismatched = 0;
    for (int n = 0; n < kHot; ++n)
      mismatched += (hGot[h0 + n] == 0.f) != (hWant[h0 + n] == 0.f);
    EXPECT_LE(mismatched, 1);
  }
  // The list: every neuron some token chose, in order, and nothing else.
  auto listWanted = [&](int tokens) {
    std::vector<uint32_t> want;
    for (int n = 0; n < kHot; ++n)
      for (int t = 0; t < tokens; ++t)
        if (logits[t][n] > threshold) {
          want.push_back(uint32_t(n));
          break;
        }
    return want;
  };
  // The choices over the tokens: what the statistics count.
  auto choicesWanted = [&](int tokens) {
    uint32_t n = 0;
    for (int t = 0; t < tokens; ++t)
      for (int k = 0; k < kHot; ++k)
        n += logits[t][k] > threshold;
    return n;
  };
  auto listGot = [&] {
    std::vector<uint32_t> rec(kPickListAt + kHot);
    EXPECT_TRUE(gpu_.download(rec.data(), dPick, 4 * rec.size(), error))
        << error;
    EXPECT_EQ(rec[1], 0u) << "the finished blocks' counter is reset";
    EXPECT_EQ(rec[2], 0u) << "the choices' running sum is reset";
    return std::vector<uint32_t>(rec.begin() + kPickListAt,
                                 rec.begin() + kPickListAt +
                                     std::min<uint32_t>(rec[0], kHot));
  };
  auto choicesGot = [&] {
    uint32_t n = 0;
    EXPECT_TRUE(gpu_.download(&n, dChosen, 4, error)) << error;
    return n;
  };
  EXPECT_EQ(listGot(), listWanted(kTok));
  EXPECT_EQ(choicesGot(), choicesWanted(kTok));
  EXPECT_GT(choicesGot(), listWanted(kTok).size()); // tokens share neurons
  // The pair's tensor-core form (block-type rows and f16 rows on sm_80
  // and newer), over the same record: the rows' activations within
  // rounding, zero where a token did not choose the neuron, the same
  // neurons firing but where a gate sum is a rounding from zero.
  std::string absent;
  void *fnTiles = gpu_.function((k.gateUp + kTilesSuffix).c_str(), absent);
  EXPECT_EQ(fnTiles != nullptr,
            smHasIntMma(d.smArch) &&
                ((inputQ8 && hasTiles(c.gate) && !tileHalves(c.gate)) ||
                 c.gate == GGMLType::F16));
  if (fnTiles) {
    const std::vector<float> zeroH(hGot.size(), 0.f);
    std::vector<float> ht(hGot.size());
    CudaDriver::DevPtr dHt;
    void *tileArgs[] = {&dGate, &dUp, &dX, &dHt, &nTok, &dPick};
    ASSERT_TRUE(
        up1(dHt, zeroH.data(), f * zeroH.size()) &&
        gpu_.launch(fnTiles, tileGrid(kHot), kTileBlock, tileArgs, error) &&
        gpu_.download(ht.data(), dHt, f * ht.size(), error))
        << error;
    EXPECT_LT(testutil::normalisedError(ht.data(), hGot.data(), ht.size()),
              1e-5);
    int flipped = 0;
    for (size_t i = 0; i < ht.size(); ++i)
      flipped += (ht[i] == 0.f) != (hGot[i] == 0.f);
    EXPECT_LE(flipped, kTok);
  }
  // Again with the first token alone: the record serves the next launch,
  // and the shorter list gives that token's down projection.
  nTok = 1;
  std::vector<float> hOne(kHot);
  ASSERT_TRUE(hotHalf() && gpu_.synchronize(error) &&
              gpu_.download(yGot.data(), dY, f * kEmbd, error) &&
              gpu_.download(hOne.data(), dH, f * kHot, error))
      << error;
  EXPECT_EQ(listGot(), listWanted(1));
  EXPECT_EQ(choicesGot(), listWanted(1).size());
  // Its activations are the bits it got in the chunk's group.
  EXPECT_EQ(std::memcmp(hOne.data(), hGot.data(), f * kHot), 0);
  EXPECT_LT(testutil::normalisedError(yGot.data(), yWant.data(), kEmbd), 1e-4);
}

// Gate/up types whose input goes up f32 and as 8-bit values; predictor
// matrices quantised (their inputs quantised on the device, one of them
// in place) and not, with ranks that fill the kernels' last step and ranks
// that do not. (fc1 multiplies 8-bit values wherever gate and up do: the
// packed weights store it so, packedPredictorType.)
INSTANTIATE_TEST_SUITE_P(
    Predictors, CudaPredictor,
    ::testing::Values(
        PredCase{GGMLType::F16, GGMLType::Q8_0, GGMLType::Q8_0, 64},
        PredCase{GGMLType::Q8_0, GGMLType::Q8_0, GGMLType::F16, 48},
        PredCase{GGMLType::Q4_0, GGMLType::Q8_0, GGMLType::Q8_0, 96},
        PredCase{GGMLType::Q4_K, GGMLType::Q8_0, GGMLType::F16, 40},
        PredCase{GGMLType::F32, GGMLType::F16, GGMLType::F32, 20},
        PredCase{GGMLType::F32, GGMLType::F32, GGMLType::F16, 37}),
    [](const ::testing::TestParamInfo<PredCase> &info) {
      return std::string(typeName(info.param.gate)) + "_" +
             typeName(info.param.fc1) + "_" + typeName(info.param.fc2) + "_" +
             std::to_string(info.param.rank);
    });

// Tests that the steps decide: without a predict@gpu step the layer has no
// predictor kernels and its gate/up kernel takes no predictor arguments.
TEST(CudaPredictorSource, OnlyWithAPredictStepOnTheGpu) {
  ProgramDesc d = predictedDesc(
      PredCase{GGMLType::F16, GGMLType::Q8_0, GGMLType::Q8_0, 64}, 89, 0.f);
  const std::string with = emitCuda(d).source;
  EXPECT_NE(with.find("ffn_pred_l0_fc1"), std::string::npos);
  EXPECT_NE(with.find("ffn_pred_l0_pick"), std::string::npos);
  EXPECT_NE(with.find("const unsigned *__restrict__ pick"), std::string::npos);
  d.layers[0].steps[0].device = StepDevice::Cpu;
  const std::string without = emitCuda(d).source;
  EXPECT_EQ(without.find("ffn_pred_l0"), std::string::npos);
  EXPECT_EQ(without.find("pick"), std::string::npos);
}

} // namespace
