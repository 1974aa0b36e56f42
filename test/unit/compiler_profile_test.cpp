// Tests that `pinferc profile` recovers the firing rates planted in a
// generated ReLU model, that the trace it writes reads back, and that SiLU
// thresholds reach the requested sparsity.
#include "compiler/Calibration.h"
#include "compiler/Profile.h"
#include "compiler/Trace.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <numeric>

using namespace pinfer;

namespace {

const std::string kVocab =
    std::string(PINFER_FIXTURES_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";

std::string makeModel(FfnActivation act, const std::string &name) {
  GenModelConfig cfg;
  std::string err;
  EXPECT_TRUE(applyPreset("tiny", cfg, err)) << err;
  cfg.vocabPath = kVocab;
  cfg.activation = act;
  cfg.type = GGMLType::F16;
  cfg.seed = 7;
  std::string path = testing::TempDir() + "/" + std::to_string(getpid()) + "_" + name;
  GenModelReport report;
  EXPECT_TRUE(generateModel(cfg, path, report, err)) << err;
  return path;
}

double pearson(const std::vector<double> &a, const std::vector<double> &b) {
  double ma = std::accumulate(a.begin(), a.end(), 0.0) / a.size();
  double mb = std::accumulate(b.begin(), b.end(), 0.0) / b.size();
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

} // namespace

// Tests that measured per-neuron rates match the planted ones within
// sampling error on the built-in calibration text (~1100 tokens).
TEST(Profile, RecoversPlantedReluRates) {
  std::string path = makeModel(FfnActivation::ReLU, "profile_relu.gguf"), err;
  auto model = Model::open(path, err);
  ASSERT_NE(model, nullptr) << err;
  auto tok = Tokenizer::fromGGUF(model->file(), err);
  ASSERT_NE(tok, nullptr) << err;
  std::vector<float> planted;
  ASSERT_TRUE(model->file().getF32Array("pinfer.planted.firing_rate", planted,
                                        err))
      << err;
  const ModelParams &p = model->params();
  ASSERT_EQ(planted.size(), size_t(p.nLayer) * p.nFF);

  ProfileOptions opts;
  opts.nThreads = 2;
  opts.samplesPerLayer = 64;
  Trace trace;
  ASSERT_TRUE(profileModel(*model, *tok, modelIdentity(model->file()),
                           calibrationText(), opts, trace, err))
      << err;
  EXPECT_GT(trace.nTokens, 1000u);
  ASSERT_EQ(trace.nLayer, uint32_t(p.nLayer));
  ASSERT_EQ(trace.samples.size(), size_t(p.nLayer));
  for (int l = 0; l < p.nLayer; ++l) {
    std::vector<double> want(p.nFF), got(p.nFF);
    double mean = 0;
    for (int i = 0; i < p.nFF; ++i) {
      want[i] = planted[size_t(l) * p.nFF + i];
      got[i] = trace.frequency(l, i);
      mean += got[i] / p.nFF;
    }
    // 10% planted; the standard error of a mean over ~1100 tokens and 512
    // neurons is far below 0.02.
    EXPECT_NEAR(mean, 0.10, 0.02) << "layer " << l;
    EXPECT_GT(pearson(want, got), 0.95) << "layer " << l;
    EXPECT_EQ(trace.samples[l].size(), 64u);
    EXPECT_EQ(trace.samples[l][0].input.size(), size_t(p.nEmbd));
  }

  // The trace survives a write/read and matches the model it came from.
  std::string tpath = testing::TempDir() + "/profile_relu_" + std::to_string(getpid()) + ".trace";
  ASSERT_TRUE(writeTrace(tpath, trace, err)) << err;
  Trace back;
  ASSERT_TRUE(readTrace(tpath, back, err)) << err;
  EXPECT_EQ(back.fired, trace.fired);
  EXPECT_TRUE(checkTraceMatchesModel(back, modelIdentity(model->file()),
                                     p.nLayer, p.nFF, err))
      << err;
  std::remove(tpath.c_str());
  std::remove(path.c_str());
}

// Tests that SiLU thresholds are calibrated to the requested sparsity: the
// share of (token, neuron) pairs counted as firing is 1 - target.
TEST(Profile, SiluThresholdsReachTargetSparsity) {
  std::string path = makeModel(FfnActivation::SiLU, "profile_silu.gguf"), err;
  auto model = Model::open(path, err);
  ASSERT_NE(model, nullptr) << err;
  auto tok = Tokenizer::fromGGUF(model->file(), err);
  ASSERT_NE(tok, nullptr) << err;
  ProfileOptions opts;
  opts.nThreads = 2;
  opts.targetSparsity = 0.7f;
  opts.calibrationTokens = 64;
  Trace trace;
  ASSERT_TRUE(profileModel(*model, *tok, modelIdentity(model->file()),
                           calibrationText(), opts, trace, err))
      << err;
  ASSERT_EQ(trace.thresholds.size(), size_t(model->params().nLayer));
  EXPECT_EQ(trace.activation, "silu");
  for (uint32_t l = 0; l < trace.nLayer; ++l) {
    EXPECT_GT(trace.thresholds[l], 0.f);
    double fired = 0;
    for (uint64_t c : trace.fired[l])
      fired += double(c);
    double rate = fired / (double(trace.nTokens) * trace.nFF);
    // Thresholds come from the first 64 tokens; the rest of the text
    // drifts a little from them.
    EXPECT_NEAR(rate, 0.30, 0.06) << "layer " << l;
  }
  std::remove(path.c_str());
}
