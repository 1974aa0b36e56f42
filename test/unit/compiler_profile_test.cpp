// Tests that `pinferc profile` recovers the firing rates planted in a
// generated ReLU model, that the trace it writes reads back, and that SiLU
// thresholds reach the requested sparsity.
#include "compiler/Calibration.h"
#include "compiler/Profile.h"
#include "compiler/Trace.h"
#include "runtime/generate.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
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

// Tests that profiling in prompt batches counts exactly what evaluating the
// text one token at a time does (chunks of a short context, BOS opening
// each, the SiLU calibration window ending mid-batch), and that the SiLU
// thresholds are those of the first tokens' magnitudes.
TEST(Profile, BatchedCountsAreThoseOfOneTokenAtATime) {
  for (FfnActivation act : {FfnActivation::ReLU, FfnActivation::SiLU}) {
    SCOPED_TRACE(activationName(act));
    std::string path = makeModel(act, "profile_batched.gguf"), err;
    auto model = Model::open(path, err);
    ASSERT_NE(model, nullptr) << err;
    auto tok = Tokenizer::fromGGUF(model->file(), err);
    ASSERT_NE(tok, nullptr) << err;
    const ModelParams &p = model->params();
    ProfileOptions opts;
    opts.nThreads = 2;
    opts.nCtx = 45; // chunks of 44 text tokens after BOS
    opts.maxTokens = 150;
    opts.calibrationTokens = 21;
    opts.targetSparsity = 0.6f;
    Trace trace;
    ASSERT_TRUE(profileModel(*model, *tok, modelIdentity(model->file()),
                             calibrationText(), opts, trace, err))
        << err;
    ASSERT_EQ(trace.nTokens, 150u);

    // The oracle: one eval() per token, as a prompt-less loop would.
    const bool relu = act == FfnActivation::ReLU;
    std::vector<int32_t> tokens = tok->encode(calibrationText(), false, false);
    tokens.resize(150);
    ReferenceDecoder dec(*model, 2);
    ASSERT_TRUE(dec.init(45, err)) << err;
    ForwardState &st = dec.state();
    std::vector<std::vector<uint64_t>> fired(p.nLayer,
                                             std::vector<uint64_t>(p.nFF));
    std::vector<std::vector<float>> magnitudes(p.nLayer);
    std::vector<std::vector<float>> cal(p.nLayer);
    bool counting = false;
    st.ffnHook = [&](int l, int, const float *, const uint8_t *bits) {
      if (!counting)
        return;
      std::vector<float> &m = magnitudes[l];
      m.assign(p.nFF, 0.f);
      for (int i = 0; i < p.nFF; ++i)
        m[i] = st.hookUp[i] != 0.f ? std::fabs(st.hookProduct[i] / st.hookUp[i])
                                   : 0.f;
      for (int i = 0; i < p.nFF; ++i)
        fired[l][i] += relu ? bits[i] : 0;
    };
    size_t next = 0;
    std::vector<std::vector<std::vector<float>>> perToken; // SiLU: [tok][l]
    while (next < tokens.size()) {
      dec.reset();
      counting = false;
      ASSERT_TRUE(dec.eval(tok->bos(), 0, false, err)) << err;
      counting = true;
      for (int pos = 1; pos < 45 && next < tokens.size(); ++pos, ++next) {
        ASSERT_TRUE(dec.eval(tokens[next], pos, false, err)) << err;
        if (!relu)
          perToken.push_back(magnitudes);
      }
    }
    if (!relu) {
      for (int l = 0; l < p.nLayer; ++l) {
        std::vector<float> v;
        for (size_t t = 0; t < 21; ++t)
          v.insert(v.end(), perToken[t][l].begin(), perToken[t][l].end());
        size_t k = std::min(v.size() - 1, size_t(0.6 * double(v.size())));
        std::nth_element(v.begin(), v.begin() + k, v.end());
        EXPECT_EQ(trace.thresholds.at(l), v[k]) << "layer " << l;
        for (const auto &m : perToken)
          for (int i = 0; i < p.nFF; ++i)
            fired[l][i] += m[l][i] > trace.thresholds[l];
      }
    }
    EXPECT_EQ(trace.fired, fired);
    std::remove(path.c_str());
  }
}
