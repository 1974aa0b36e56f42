// Tests of the test-model generator: files read back with the project's own
// GGUF reader and model loader, and the planted sparsity measured by running
// random tokens through the dense reference forward pass.
#include "tools/genmodel/model_generator.h"

#include "runtime/forward.h"
#include "runtime/gguf.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/thread_pool.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <set>
#include <unistd.h>

using namespace pinfer;

namespace {

const std::string kVocab =
    std::string(PINFER_FIXTURES_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";

class GenModelTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-genmodel");
    char *tmpl = tmplBuf.data();
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string &f : files_)
      std::remove(f.c_str());
    rmdir(dir_.c_str());
  }
  static GenModelConfig tinyConfig() {
    GenModelConfig cfg;
    std::string err;
    EXPECT_TRUE(applyPreset("tiny", cfg, err)) << err;
    cfg.vocabPath = kVocab;
    cfg.threads = 2;
    return cfg;
  }
  std::string generate(const GenModelConfig &cfg, const std::string &name) {
    std::string path = dir_ + "/" + name, err;
    GenModelReport rep;
    EXPECT_TRUE(generateModel(cfg, path, rep, err)) << err;
    files_.push_back(path);
    return path;
  }
  std::string dir_;
  std::vector<std::string> files_;
};

std::vector<float> dequantRow(const GGUFTensor &t, int64_t r) {
  std::vector<float> out(t.ne[0]);
  size_t rb = rowBytes(t.type, t.ne[0]);
  EXPECT_TRUE(dequantizeRow(t.type, t.data + r * rb, out.data(), t.ne[0]));
  return out;
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

// Share of all firings carried by the 10 % most frequently firing neurons.
double top10Share(std::vector<double> rates) {
  std::sort(rates.begin(), rates.end(), std::greater<double>());
  size_t top = std::max<size_t>(1, size_t(std::llround(0.1 * rates.size())));
  double all = std::accumulate(rates.begin(), rates.end(), 0.0);
  return std::accumulate(rates.begin(), rates.begin() + top, 0.0) / all;
}

// Runs `nSeq` sequences of `len` uniformly random tokens through the dense
// reference. Per layer and neuron, counts how often the gate pre-activation
// was positive (recomputed from the FFN input the hook sees) and, when
// `fc1`/`fc2` are given, how the PowerInfer predictor's verdicts compare.
struct Measured {
  std::vector<std::vector<double>> gateRate; // [n_layer][n_ff]
  std::vector<std::vector<double>> fireRate; // [n_layer][n_ff], product != 0
  double recall = 0, precision = 0;
  int tokens = 0;
  std::vector<float> lastLogits;
  std::vector<int> greedy; // greedy continuation of the last sequence
};

Measured measure(const std::string &path, int nSeq, int len, bool predictor) {
  Measured m;
  std::string err;
  std::unique_ptr<Model> model = Model::open(path, err);
  EXPECT_TRUE(model) << err;
  if (!model)
    return m;
  const ModelParams &p = model->params();
  const GGUFFile &f = model->file();
  ThreadPool pool(2);
  ForwardState st;
  EXPECT_TRUE(st.init(*model, len + 16, err)) << err;
  std::vector<uint64_t> counts(size_t(p.nLayer) * p.nFF, 0);
  std::vector<uint64_t> gateCounts(size_t(p.nLayer) * p.nFF, 0);
  st.firingCounts = counts.data();
  uint64_t tp = 0, fp = 0, fn = 0;
  float threshold = 0;
  if (predictor) {
    EXPECT_TRUE(f.getF32("powerinfer.sparse_threshold", threshold, err)) << err;
  }
  std::vector<float> hidden;
  st.ffnHook = [&](int l, int, const float *x, const uint8_t *fired) {
    const LayerWeights &w = model->layer(l);
    for (int i = 0; i < p.nFF; ++i)
      gateCounts[size_t(l) * p.nFF + i] +=
          dotRow(w.gate.type, w.gate.row(i), x, p.nEmbd) > 0;
    if (!predictor)
      return;
    const GGUFTensor *fc1 =
        f.tensor("blk." + std::to_string(l) + ".fc1.weight");
    const GGUFTensor *fc2 =
        f.tensor("blk." + std::to_string(l) + ".fc2.weight");
    size_t rb1 = rowBytes(fc1->type, fc1->ne[0]);
    size_t rb2 = rowBytes(fc2->type, fc2->ne[0]);
    hidden.resize(fc1->ne[1]);
    for (int64_t r = 0; r < fc1->ne[1]; ++r)
      hidden[r] =
          std::max(0.f, dotRow(fc1->type, fc1->data + r * rb1, x, fc1->ne[0]));
    for (int i = 0; i < p.nFF; ++i) {
      bool pred = dotRow(fc2->type, fc2->data + i * rb2, hidden.data(),
                         fc2->ne[0]) >= threshold;
      tp += pred && fired[i];
      fp += pred && !fired[i];
      fn += !pred && fired[i];
    }
  };
  uint64_t rng = 12345;
  auto nextToken = [&]() {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return int32_t((rng >> 33) % uint64_t(p.nVocab));
  };
  for (int s = 0; s < nSeq; ++s) {
    st.reset();
    for (int pos = 0; pos < len; ++pos) {
      bool last = s == nSeq - 1 && pos == len - 1;
      EXPECT_TRUE(forward(*model, st, pool, nextToken(), pos, last, err))
          << err;
      ++m.tokens;
    }
  }
  m.lastLogits = st.logits;
  // Greedy continuation without instrumentation.
  st.firingCounts = nullptr;
  st.ffnHook = nullptr;
  for (int k = 0; k < 12; ++k) {
    int best = int(std::max_element(st.logits.begin(), st.logits.end()) -
                   st.logits.begin());
    m.greedy.push_back(best);
    EXPECT_TRUE(forward(*model, st, pool, best, st.nPast, true, err)) << err;
  }
  m.gateRate.assign(p.nLayer, std::vector<double>(p.nFF));
  m.fireRate.assign(p.nLayer, std::vector<double>(p.nFF));
  for (int l = 0; l < p.nLayer; ++l)
    for (int i = 0; i < p.nFF; ++i) {
      m.gateRate[l][i] = double(gateCounts[size_t(l) * p.nFF + i]) / m.tokens;
      m.fireRate[l][i] = double(counts[size_t(l) * p.nFF + i]) / m.tokens;
    }
  m.recall = tp + fn ? double(tp) / double(tp + fn) : 0;
  m.precision = tp + fp ? double(tp) / double(tp + fp) : 0;
  return m;
}

// Checks measured per-neuron rates of every layer against the planted ones
// stored in the file.
void expectPlanted(const std::string &path,
                   const std::vector<std::vector<double>> &measured,
                   double activeFraction, const char *what) {
  std::string err;
  std::unique_ptr<GGUFFile> f = GGUFFile::open(path, err);
  ASSERT_TRUE(f) << err;
  std::vector<float> planted;
  ASSERT_TRUE(f->getF32Array("pinfer.planted.firing_rate", planted, err))
      << err;
  float plantedShare = 0;
  ASSERT_TRUE(f->getF32("pinfer.planted.top10_share", plantedShare, err));
  const size_t nff = measured[0].size();
  ASSERT_EQ(planted.size(), measured.size() * nff);
  for (size_t l = 0; l < measured.size(); ++l) {
    std::vector<double> want(planted.begin() + l * nff,
                             planted.begin() + (l + 1) * nff);
    const std::vector<double> &got = measured[l];
    double mean = std::accumulate(got.begin(), got.end(), 0.0) / nff;
    double corr = pearson(want, got), share = top10Share(got);
    SCOPED_TRACE(std::string(what) + " layer " + std::to_string(l));
    EXPECT_NEAR(mean, activeFraction, 0.02);
    EXPECT_GT(corr, 0.95);
    EXPECT_NEAR(share, plantedShare, 0.05);
    std::printf("[ measured ] %s layer %zu: mean rate %.4f, correlation %.4f, "
                "top-10%% share %.3f (planted %.3f)\n",
                what, l, mean, corr, share, plantedShare);
  }
}

TEST(GenModelPowerLaw, MeetsMeanAndHotShare) {
  PowerLawFit fit = fitPowerLaw(11008, 0.10, 0.80, 0, 0.99);
  EXPECT_TRUE(fit.hotShareReached);
  EXPECT_NEAR(fit.meanRate, 0.10, 1e-4);
  EXPECT_NEAR(fit.top10Share, 0.80, 1e-3);
  EXPECT_GT(fit.alpha, 0.5);
  EXPECT_TRUE(std::is_sorted(fit.byRank.rbegin(), fit.byRank.rend()));
  EXPECT_LE(fit.byRank.front(), 0.99f);
  EXPECT_GT(fit.byRank.back(), 0.f);

  PowerLawFit fixed = fitPowerLaw(4096, 0.25, 0.8, 0.7, 0.99);
  EXPECT_DOUBLE_EQ(fixed.alpha, 0.7);
  EXPECT_NEAR(fixed.meanRate, 0.25, 1e-4);
  EXPECT_LT(fixed.top10Share, 0.5); // a gentle exponent spreads the work

  // 10 % of neurons cannot carry 80 % of a 50 % mean rate.
  PowerLawFit unreachable = fitPowerLaw(1024, 0.5, 0.8, 0, 0.99);
  EXPECT_FALSE(unreachable.hotShareReached);
  EXPECT_NEAR(unreachable.meanRate, 0.5, 1e-3);
}

TEST(GenModelPowerLaw, InverseNormalCdf) {
  EXPECT_NEAR(inverseNormalCdf(0.975), 1.959964, 1e-5);
  EXPECT_NEAR(inverseNormalCdf(0.5), 0.0, 1e-9);
  EXPECT_NEAR(inverseNormalCdf(0.001), -3.090232, 1e-5);
  EXPECT_NEAR(inverseNormalCdf(0.3), -inverseNormalCdf(0.7), 1e-9);
}

TEST(GenModelConfigTest, RejectsBadShapesInOneLine) {
  GenModelConfig cfg;
  std::string err;
  EXPECT_TRUE(validateConfig(cfg, err)) << err;
  cfg.nEmbd = 100;
  EXPECT_FALSE(validateConfig(cfg, err));
  EXPECT_NE(err.find("--n-embd 100"), std::string::npos) << err;
  cfg = GenModelConfig();
  cfg.nKVHead = 3;
  EXPECT_FALSE(validateConfig(cfg, err));
  EXPECT_NE(err.find("--n-kv-head"), std::string::npos) << err;
  cfg = GenModelConfig();
  cfg.type = GGMLType::IQ4_NL;
  EXPECT_FALSE(validateConfig(cfg, err));
  EXPECT_NE(err.find("--type iq4_nl"), std::string::npos) << err;
  EXPECT_FALSE(applyPreset("13b", cfg, err));
  EXPECT_NE(err.find("tiny"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);
}

TEST_F(GenModelTest, MissingVocabularyIsOneLineError) {
  GenModelConfig cfg = tinyConfig();
  cfg.vocabPath = dir_ + "/missing.gguf";
  GenModelReport rep;
  std::string err;
  EXPECT_FALSE(generateModel(cfg, dir_ + "/x.gguf", rep, err));
  EXPECT_NE(err.find("missing.gguf"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);
}

// Every weight type: keys, shapes and types as written, the vocabulary
// copied whole, and the bias channel intact after quantization.
TEST_F(GenModelTest, ReadsBackForEveryWeightType) {
  std::string err;
  std::unique_ptr<GGUFFile> vocab = GGUFFile::open(kVocab, err);
  ASSERT_TRUE(vocab) << err;
  const GGMLType types[] = {GGMLType::F32, GGMLType::F16, GGMLType::BF16,
                            GGMLType::Q8_0, GGMLType::Q4_0};
  for (GGMLType type : types) {
    SCOPED_TRACE(typeName(type));
    GenModelConfig cfg = tinyConfig();
    cfg.type = type;
    cfg.nLayer = 1;
    cfg.activation = FfnActivation::DReLU;
    std::string path = generate(cfg, std::string("m-") + typeName(type));
    std::unique_ptr<GGUFFile> f = GGUFFile::open(path, err);
    ASSERT_TRUE(f) << err;
    EXPECT_FALSE(f->isPowerInfer());
    std::string s;
    uint32_t u = 0;
    ASSERT_TRUE(f->getString("general.architecture", s, err)) << err;
    EXPECT_EQ(s, "llama");
    ASSERT_TRUE(f->getString("pinfer.ffn_activation", s, err)) << err;
    EXPECT_EQ(s, "drelu");
    ASSERT_TRUE(f->getU32("general.file_type", u, err)) << err;
    EXPECT_EQ(u, type == GGMLType::F32    ? 0u
                 : type == GGMLType::F16  ? 1u
                 : type == GGMLType::Q4_0 ? 2u
                 : type == GGMLType::Q8_0 ? 7u
                                          : 32u);
    const std::pair<const char *, uint32_t> dims[] = {
        {"llama.embedding_length", 128},
        {"llama.feed_forward_length", 512},
        {"llama.block_count", 1},
        {"llama.attention.head_count", 4},
        {"llama.attention.head_count_kv", 2},
        {"llama.context_length", 256},
        {"llama.rope.dimension_count", 32}};
    for (const auto &d : dims) {
      ASSERT_TRUE(f->getU32(d.first, u, err)) << err;
      EXPECT_EQ(u, d.second) << d.first;
    }
    float eps = 0;
    ASSERT_TRUE(f->getF32("llama.attention.layer_norm_rms_epsilon", eps, err));
    EXPECT_FLOAT_EQ(eps, 1e-5f);
    // Every tokenizer key, unchanged.
    size_t copied = 0;
    for (const GGUFKV &kv : vocab->metadata()) {
      if (kv.key.compare(0, 10, "tokenizer.") != 0)
        continue;
      const GGUFValue *v = f->find(kv.key);
      ASSERT_NE(v, nullptr) << kv.key;
      EXPECT_EQ(v->type, kv.value.type) << kv.key;
      EXPECT_EQ(v->arr.size(), kv.value.arr.size()) << kv.key;
      EXPECT_EQ(v->s, kv.value.s) << kv.key;
      EXPECT_EQ(v->u, kv.value.u) << kv.key;
      ++copied;
    }
    EXPECT_GE(copied, 9u);
    std::vector<std::string> tokens;
    ASSERT_TRUE(f->getStringArray("tokenizer.ggml.tokens", tokens, err));
    EXPECT_EQ(tokens.size(), 32000u);
    EXPECT_EQ(tokens[1], "<s>");

    struct Want {
      const char *name;
      int64_t ne0, ne1;
      bool norm;
    };
    const Want want[] = {{"token_embd.weight", 128, 32000, false},
                         {"blk.0.attn_norm.weight", 128, 1, true},
                         {"blk.0.attn_q.weight", 128, 128, false},
                         {"blk.0.attn_k.weight", 128, 64, false},
                         {"blk.0.attn_v.weight", 128, 64, false},
                         {"blk.0.attn_output.weight", 128, 128, false},
                         {"blk.0.ffn_norm.weight", 128, 1, true},
                         {"blk.0.ffn_gate.weight", 128, 512, false},
                         {"blk.0.ffn_up.weight", 128, 512, false},
                         {"blk.0.ffn_down.weight", 512, 128, false},
                         {"output_norm.weight", 128, 1, true},
                         {"output.weight", 128, 32000, false}};
    EXPECT_EQ(f->tensors().size(), std::size(want));
    for (const Want &w : want) {
      const GGUFTensor *t = f->tensor(w.name);
      ASSERT_NE(t, nullptr) << w.name;
      EXPECT_EQ(t->ne[0], w.ne0) << w.name;
      EXPECT_EQ(t->ne[1], w.ne1) << w.name;
      EXPECT_EQ(t->nDims, w.norm ? 1u : 2u) << w.name;
      EXPECT_EQ(t->type, w.norm ? GGMLType::F32 : type) << w.name;
    }
    EXPECT_TRUE(Model::load(*f, err)) << err;

    // The bias channel: one constant value in every embedding, never
    // written by a layer output.
    const GGUFTensor *embd = f->tensor("token_embd.weight");
    std::vector<float> e0 = dequantRow(*embd, 0), e1 = dequantRow(*embd, 31999);
    for (int j = 0; j < kBiasChannelDims; ++j) {
      EXPECT_EQ(e0[j], e0[0]);
      EXPECT_EQ(e1[j], e0[0]);
    }
    EXPECT_GT(e0[0], 0.f);
    const GGUFTensor *wo = f->tensor("blk.0.attn_output.weight");
    const GGUFTensor *down = f->tensor("blk.0.ffn_down.weight");
    for (int j = 0; j < kBiasChannelDims; ++j) {
      for (float x : dequantRow(*wo, j))
        ASSERT_EQ(x, 0.f);
      for (float x : dequantRow(*down, j))
        ASSERT_EQ(x, 0.f);
    }
  }
}

// The key property: neurons fire as often as planted, in every layer, through
// the real forward pass (attention included).
TEST_F(GenModelTest, ReluFiringRatesMatchPlanted) {
  GenModelConfig cfg = tinyConfig();
  cfg.activation = FfnActivation::ReLU;
  std::string path = generate(cfg, "relu.gguf");
  Measured m = measure(path, 8, 64, false);
  ASSERT_EQ(m.tokens, 512);
  expectPlanted(path, m.fireRate, 0.10, "relu f16");
  // Numerically alive: logits spread, greedy decoding does not stick to one
  // token.
  float lo = *std::min_element(m.lastLogits.begin(), m.lastLogits.end());
  float hi = *std::max_element(m.lastLogits.begin(), m.lastLogits.end());
  EXPECT_GT(hi - lo, 5.f);
  EXPECT_GT(std::set<int>(m.greedy.begin(), m.greedy.end()).size(), 4u);
}

TEST_F(GenModelTest, DreluQ4FiringRatesMatchPlanted) {
  GenModelConfig cfg = tinyConfig();
  cfg.activation = FfnActivation::DReLU;
  cfg.type = GGMLType::Q4_0;
  cfg.nLayer = 4;
  cfg.activeFraction = 0.15;
  std::string path = generate(cfg, "drelu.gguf");
  Measured m = measure(path, 8, 64, false);
  expectPlanted(path, m.fireRate, 0.15, "drelu q4_0");
}

// SiLU never outputs exact zeros; the planted quantity is the sign of the
// gate pre-activation, which skews |activation|.
TEST_F(GenModelTest, SiluGateSignsMatchPlanted) {
  GenModelConfig cfg = tinyConfig();
  cfg.activation = FfnActivation::SiLU;
  cfg.type = GGMLType::BF16;
  std::string path = generate(cfg, "silu.gguf");
  Measured m = measure(path, 8, 64, false);
  expectPlanted(path, m.gateRate, 0.10, "silu bf16 gate>0");
}

TEST_F(GenModelTest, PowerInferPredictorPredicts) {
  GenModelConfig cfg = tinyConfig();
  cfg.powerInfer = true;
  cfg.type = GGMLType::Q8_0;
  std::string path = generate(cfg, "pwri.gguf");
  std::string err;
  std::unique_ptr<GGUFFile> f = GGUFFile::open(path, err);
  ASSERT_TRUE(f) << err;
  EXPECT_TRUE(f->isPowerInfer());
  float thr = -1;
  ASSERT_TRUE(f->getF32("powerinfer.sparse_threshold", thr, err)) << err;
  EXPECT_EQ(thr, 0.f);
  // The same model without --powerinfer.
  GenModelConfig plainCfg = cfg;
  plainCfg.powerInfer = false;
  std::unique_ptr<GGUFFile> plain =
      GGUFFile::open(generate(plainCfg, "plain.gguf"), err);
  ASSERT_TRUE(plain) << err;
  const int64_t R = effectivePredictorRank(cfg);
  for (int l = 0; l < 2; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    const GGUFTensor *fc1 = f->tensor(b + "fc1.weight");
    const GGUFTensor *fc2 = f->tensor(b + "fc2.weight");
    const GGUFTensor *dt = f->tensor(b + "ffn_down_t.weight");
    // As PowerInfer's converter writes: the down projection only
    // transposed (PowerInfer refuses a file that also has ffn_down).
    EXPECT_FALSE(f->tensor(b + "ffn_down.weight"));
    const GGUFTensor *down = plain->tensor(b + "ffn_down.weight");
    ASSERT_TRUE(fc1 && fc2 && dt && down);
    EXPECT_EQ(fc1->ne[0], 128);
    EXPECT_EQ(fc1->ne[1], R);
    EXPECT_EQ(fc2->ne[0], R);
    EXPECT_EQ(fc2->ne[1], 512);
    EXPECT_EQ(fc1->type, GGMLType::F16);
    EXPECT_EQ(dt->ne[0], 128);
    EXPECT_EQ(dt->ne[1], 512);
    EXPECT_EQ(dt->type, GGMLType::Q8_0);
    // ffn_down_t is the plain model's ffn_down transposed (each quantized
    // along its rows).
    double maxAbs = 0, maxDiff = 0;
    for (int64_t i = 0; i < 512; i += 37) {
      std::vector<float> col = dequantRow(*dt, i);
      for (int64_t j = 0; j < 128; ++j) {
        float d = dequantRow(*down, j)[i];
        maxAbs = std::max(maxAbs, double(std::fabs(d)));
        maxDiff = std::max(maxDiff, double(std::fabs(d - col[j])));
      }
    }
    EXPECT_GT(maxAbs, 0);
    EXPECT_LT(maxDiff, 0.02 * maxAbs);
  }
  // Everything but the PowerInfer layout's own tensors is the plain
  // model's.
  for (const GGUFTensor &t : plain->tensors()) {
    TensorKind kind;
    int layer;
    if (parseTensorName(t.name, kind, layer) && kind == TensorKind::FfnDown)
      continue;
    const GGUFTensor *q = f->tensor(t.name);
    ASSERT_NE(q, nullptr) << t.name;
    ASSERT_EQ(q->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(q->data, t.data, t.nbytes), 0) << t.name;
  }
  // Per layer: fc1, fc2 and ffn_down_t in, ffn_down out.
  EXPECT_EQ(f->tensors().size(), plain->tensors().size() + 2 * 2);

  Measured m = measure(path, 4, 64, true);
  expectPlanted(path, m.fireRate, 0.10, "relu q8_0 powerinfer");
  std::printf("[ measured ] predictor recall %.4f precision %.4f\n", m.recall,
              m.precision);
  EXPECT_GT(m.recall, 0.85);
  EXPECT_GT(m.precision, 0.75);
}

// Same seed, same bytes, whatever the thread count; another seed differs.
TEST_F(GenModelTest, DeterministicFromSeed) {
  GenModelConfig cfg = tinyConfig();
  cfg.type = GGMLType::Q4_0;
  cfg.powerInfer = true;
  cfg.activation = FfnActivation::DReLU;
  cfg.threads = 1;
  std::string a = generate(cfg, "a.gguf");
  cfg.threads = 3;
  std::string b = generate(cfg, "b.gguf");
  cfg.seed = 2;
  std::string c = generate(cfg, "c.gguf");
  auto bytes = [](const std::string &p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  };
  std::vector<char> ba = bytes(a), bb = bytes(b), bc = bytes(c);
  ASSERT_GT(ba.size(), 1000000u);
  EXPECT_TRUE(ba == bb);
  ASSERT_EQ(ba.size(), bc.size());
  EXPECT_FALSE(ba == bc);
}

} // namespace

// A qwen2 file: the same generator with the architecture's Q/K/V biases,
// loaded by the reference with them bound, and byte-for-byte the same on
// every run (the biases are written when the file is).
TEST_F(GenModelTest, Qwen2WithBiasesIsDeterministic) {
  GenModelConfig cfg = tinyConfig();
  cfg.arch = "qwen2";
  std::string a = generate(cfg, "qa.gguf");
  std::string b = generate(cfg, "qb.gguf");
  auto bytes = [](const std::string &p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_TRUE(bytes(a) == bytes(b));
  std::string error;
  std::unique_ptr<Model> m = Model::open(a, error);
  ASSERT_TRUE(m) << error;
  EXPECT_EQ(m->params().arch, "qwen2");
  EXPECT_EQ(m->params().ropeStyle, RopeStyle::Neox);
  const LayerWeights &l0 = m->layer(0);
  ASSERT_EQ(int(l0.bq.size()), m->params().qDim());
  ASSERT_EQ(int(l0.bk.size()), m->params().kvDim());
  ASSERT_EQ(int(l0.bv.size()), m->params().kvDim());
  float sum = 0;
  for (float v : l0.bq)
    sum += std::fabs(v);
  EXPECT_GT(sum, 0.f);
  cfg.arch = "gemma3";
  EXPECT_FALSE(validateConfig(cfg, error));
  EXPECT_NE(error.find("--arch gemma3: expected llama or qwen2"),
            std::string::npos) << error;
}
