// Tests the dense reference end to end on tiny random LLaMA models written
// with GGUFWriter: logits of the runtime forward pass (KV cache, threads,
// every weight type) against an independent double-precision implementation
// in this file that recomputes the whole sequence at every step; firing
// counts and the FFN hook; Model::load's refusals; and the generation loop.
#include "runtime/forward.h"

#include "runtime/generate.h"
#include "runtime/gguf.h"
#include "runtime/json.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/thread_pool.h"
#include "runtime/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>

#include <unistd.h>

using namespace pinfer;

namespace {

// ---- tiny model files -------------------------------------------------------

struct TinySpec {
  int nEmbd = 64, nFF = 128, nLayer = 2, nHead = 4, nKvHead = 2, nCtx = 128;
  int nRot = 0; // 0: key absent (= head size)
  GGMLType type = GGMLType::F32;
  std::string activation = "silu"; // "" : key absent
  bool tied = false;
  float outputScale = 4.f; // widens logit margins so greedy choices are stable
  // Edits before writing, for the refusal tests.
  std::function<void(GGUFWriter &)> edit;
  std::string skipTensor;  // not written
  std::string badTypeTensor; // written as iq4_nl
};

// An SPM vocabulary: unk, bos, eos, the 256 byte tokens and a few pieces.
std::vector<std::string> vocabTokens() {
  std::vector<std::string> t = {"<unk>", "<s>", "</s>"};
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    t.push_back(buf);
  }
  const char *pieces[] = {"\xE2\x96\x81the", "\xE2\x96\x81" "a", "\xE2\x96\x81" "cat",
                          "\xE2\x96\x81" "dog", "\xE2\x96\x81on", "\xE2\x96\x81mat",
                          "\xE2\x96\x81sat", "\xE2\x96\x81is", "\xE2\x96\x81" "and",
                          "\xE2\x96\x81", "e", "t", "a", "o", "n", "s", "h", "r",
                          "d", "l", "c", "m", "g", "i", "th", "he", "in", "er",
                          "an", "at", "on", "en"};
  for (const char *p : pieces)
    t.push_back(p);
  return t;
}

// Values of a tensor, a pure function of its name so that every type variant
// of a model quantises the same f32 weights.
std::vector<float> tensorValues(const std::string &name, int64_t n, float lo,
                                float hi) {
  std::mt19937 rng(uint32_t(std::hash<std::string>()(name)));
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

std::string writeTinyModel(const TinySpec &s, const std::string &file) {
  const std::vector<std::string> toks = vocabTokens();
  const int nVocab = int(toks.size());
  const int headDim = s.nEmbd / s.nHead, kvDim = s.nKvHead * headDim;
  GGUFWriter w;
  w.setString("general.architecture", "llama");
  w.setU32("llama.embedding_length", s.nEmbd);
  w.setU32("llama.feed_forward_length", s.nFF);
  w.setU32("llama.block_count", s.nLayer);
  w.setU32("llama.attention.head_count", s.nHead);
  w.setU32("llama.attention.head_count_kv", s.nKvHead);
  w.setU32("llama.context_length", s.nCtx);
  w.setF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.setF32("llama.rope.freq_base", 10000.f);
  if (s.nRot)
    w.setU32("llama.rope.dimension_count", s.nRot);
  if (!s.activation.empty())
    w.setString("pinfer.ffn_activation", s.activation);
  w.setString("tokenizer.ggml.model", "llama");
  w.set("tokenizer.ggml.tokens", GGUFValue::ofStrings(toks));
  std::vector<float> scores(nVocab);
  std::vector<int32_t> types(nVocab, 1);
  for (int i = 0; i < nVocab; ++i)
    scores[i] = -float(i);
  types[0] = 2;
  types[1] = types[2] = 3;
  for (int b = 0; b < 256; ++b)
    types[3 + b] = 6;
  w.set("tokenizer.ggml.scores", GGUFValue::ofF32s(scores));
  w.set("tokenizer.ggml.token_type", GGUFValue::ofI32s(types));
  w.setU32("tokenizer.ggml.bos_token_id", 1);
  w.setU32("tokenizer.ggml.eos_token_id", 2);
  w.setU32("tokenizer.ggml.unknown_token_id", 0);

  auto add = [&](const std::string &name, int64_t ne0, int64_t ne1, float lo,
                 float hi, bool isNorm) {
    if (name == s.skipTensor)
      return;
    GGMLType type = isNorm ? GGMLType::F32 : s.type;
    if (name == s.badTypeTensor)
      type = GGMLType::IQ4_NL;
    std::vector<float> v = tensorValues(name, ne0 * ne1, lo, hi);
    std::vector<int64_t> ne = ne1 == 1 && isNorm ? std::vector<int64_t>{ne0}
                                                 : std::vector<int64_t>{ne0, ne1};
    w.addTensor(name, type, ne, [v, type, ne0, ne1](uint8_t *dst, size_t) {
      if (type == GGMLType::IQ4_NL)
        return; // refused before use; zero bytes suffice
      size_t rb = rowBytes(type, ne0);
      for (int64_t r = 0; r < ne1; ++r)
        quantizeRow(type, v.data() + r * ne0, dst + r * rb, ne0);
    });
  };
  auto lin = [](int fanIn) { return std::sqrt(3.f / fanIn); };
  add("token_embd.weight", s.nEmbd, nVocab, -1.f, 1.f, false);
  for (int l = 0; l < s.nLayer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", s.nEmbd, 1, 0.8f, 1.2f, true);
    add(b + "attn_q.weight", s.nEmbd, s.nEmbd, -lin(s.nEmbd), lin(s.nEmbd), false);
    add(b + "attn_k.weight", s.nEmbd, kvDim, -lin(s.nEmbd), lin(s.nEmbd), false);
    add(b + "attn_v.weight", s.nEmbd, kvDim, -lin(s.nEmbd), lin(s.nEmbd), false);
    add(b + "attn_output.weight", s.nEmbd, s.nEmbd, -lin(s.nEmbd), lin(s.nEmbd), false);
    add(b + "ffn_norm.weight", s.nEmbd, 1, 0.8f, 1.2f, true);
    add(b + "ffn_gate.weight", s.nEmbd, s.nFF, -lin(s.nEmbd), lin(s.nEmbd), false);
    add(b + "ffn_up.weight", s.nEmbd, s.nFF, -lin(s.nEmbd), lin(s.nEmbd), false);
    add(b + "ffn_down.weight", s.nFF, s.nEmbd, -lin(s.nFF), lin(s.nFF), false);
  }
  add("output_norm.weight", s.nEmbd, 1, 0.8f, 1.2f, true);
  if (!s.tied)
    add("output.weight", s.nEmbd, nVocab, -lin(s.nEmbd) * s.outputScale,
        lin(s.nEmbd) * s.outputScale, false);
  if (s.edit)
    s.edit(w);
  std::string path = ::testing::TempDir() + "/" + std::to_string(getpid()) + "_" + file;
  std::string error;
  EXPECT_TRUE(w.write(path, error)) << error;
  return path;
}

// ---- independent double-precision reference --------------------------------

// Every tensor of the file dequantised with the shared ggml_types converter.
struct RefModel {
  const GGUFFile *file;
  int nEmbd, nFF, nLayer, nHead, nKvHead, headDim, nRot, nVocab;
  std::string act;
  double eps = 1e-5, base = 10000;

  std::vector<float> get(const std::string &name) const {
    const GGUFTensor *t = file->tensor(name);
    EXPECT_NE(t, nullptr) << name;
    std::vector<float> out(t->nelements());
    size_t rb = rowBytes(t->type, t->ne[0]);
    for (int64_t r = 0; r < t->nrows(); ++r)
      EXPECT_TRUE(dequantizeRow(t->type, t->data + r * rb,
                                out.data() + r * t->ne[0], t->ne[0]));
    return out;
  }
};

using Vec = std::vector<double>;

Vec matmul(const std::vector<float> &w, const Vec &x, size_t rows) {
  Vec y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < x.size(); ++c)
      y[r] += double(w[r * x.size() + c]) * x[c];
  return y;
}

// The activation quantisation products with Q8_0/Q4_0 weights apply
// (runtime/kernels.h): per 32 elements, scale max|x| / 127, values rounded
// to the nearest step.
Vec quantAct(const Vec &x) {
  Vec y(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    double amax = 0;
    for (size_t j = b; j < b + 32; ++j)
      amax = std::max(amax, std::fabs(x[j]));
    double d = amax / 127;
    for (size_t j = b; j < b + 32; ++j)
      y[j] = d > 0 ? d * std::nearbyint(x[j] / d) : 0.0;
  }
  return y;
}

// The input a product with tensor `name` sees: quantised for block types.
Vec actFor(const RefModel &m, const std::string &name, const Vec &x) {
  const GGUFTensor *t = m.file->tensor(name);
  return t && usesQ8Act(t->type) ? quantAct(x) : x;
}

Vec rmsnorm(const Vec &x, const std::vector<float> &w, double eps) {
  double ss = 0;
  for (double v : x)
    ss += v * v;
  double s = 1.0 / std::sqrt(ss / x.size() + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = x[i] * s * w[i];
  return y;
}

void ropeRef(Vec &v, int nHeads, int headDim, int nRot, int pos, double base) {
  for (int h = 0; h < nHeads; ++h)
    for (int i = 0; 2 * i < nRot; ++i) {
      double th = pos * std::pow(base, -2.0 * i / nRot);
      double &a = v[h * headDim + 2 * i], &b = v[h * headDim + 2 * i + 1];
      double x0 = a, x1 = b;
      a = x0 * std::cos(th) - x1 * std::sin(th);
      b = x0 * std::sin(th) + x1 * std::cos(th);
    }
}

// Runs tokens[0..n) through the whole model with full causal attention (no
// cache) and returns the logits of the last position. `fired`, when given,
// receives the firing count per [layer][neuron] over all n positions.
Vec refLogits(const RefModel &m, const std::vector<int32_t> &tokens,
              std::vector<uint64_t> *fired = nullptr) {
  const size_t n = tokens.size();
  const int kvDim = m.nKvHead * m.headDim;
  std::vector<float> embd = m.get("token_embd.weight");
  std::vector<Vec> x(n);
  for (size_t t = 0; t < n; ++t)
    x[t].assign(embd.begin() + size_t(tokens[t]) * m.nEmbd,
                embd.begin() + size_t(tokens[t] + 1) * m.nEmbd);
  if (fired)
    fired->assign(size_t(m.nLayer) * m.nFF, 0);
  for (int l = 0; l < m.nLayer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    auto attnNorm = m.get(b + "attn_norm.weight"), wq = m.get(b + "attn_q.weight"),
         wk = m.get(b + "attn_k.weight"), wv = m.get(b + "attn_v.weight"),
         wo = m.get(b + "attn_output.weight"), ffnNorm = m.get(b + "ffn_norm.weight"),
         gate = m.get(b + "ffn_gate.weight"), up = m.get(b + "ffn_up.weight"),
         down = m.get(b + "ffn_down.weight");
    std::vector<Vec> q(n), k(n), v(n);
    for (size_t t = 0; t < n; ++t) {
      Vec h = rmsnorm(x[t], attnNorm, m.eps);
      q[t] = matmul(wq, actFor(m, b + "attn_q.weight", h), m.nEmbd);
      k[t] = matmul(wk, actFor(m, b + "attn_k.weight", h), kvDim);
      v[t] = matmul(wv, actFor(m, b + "attn_v.weight", h), kvDim);
      ropeRef(q[t], m.nHead, m.headDim, m.nRot, int(t), m.base);
      ropeRef(k[t], m.nKvHead, m.headDim, m.nRot, int(t), m.base);
      // The KV cache holds f16 values (rounded to nearest even).
      for (Vec *kv : {&k[t], &v[t]})
        for (double &e : *kv)
          e = fp16ToF32(f32ToFp16(float(e)));
    }
    for (size_t t = 0; t < n; ++t) {
      Vec att(m.nEmbd, 0.0);
      for (int h = 0; h < m.nHead; ++h) {
        int kh = h / (m.nHead / m.nKvHead);
        Vec s(t + 1);
        double mx = -1e300;
        for (size_t u = 0; u <= t; ++u) {
          double d = 0;
          for (int i = 0; i < m.headDim; ++i)
            d += q[t][h * m.headDim + i] * k[u][kh * m.headDim + i];
          s[u] = d / std::sqrt(double(m.headDim));
          mx = std::max(mx, s[u]);
        }
        double z = 0;
        for (double &e : s)
          z += (e = std::exp(e - mx));
        for (size_t u = 0; u <= t; ++u)
          for (int i = 0; i < m.headDim; ++i)
            att[h * m.headDim + i] += s[u] / z * v[u][kh * m.headDim + i];
      }
      Vec o = matmul(wo, actFor(m, b + "attn_output.weight", att), m.nEmbd);
      for (int i = 0; i < m.nEmbd; ++i)
        x[t][i] += o[i];
    }
    for (size_t t = 0; t < n; ++t) {
      Vec h = rmsnorm(x[t], ffnNorm, m.eps);
      Vec g = matmul(gate, actFor(m, b + "ffn_gate.weight", h), m.nFF),
          u = matmul(up, actFor(m, b + "ffn_up.weight", h), m.nFF);
      Vec a(m.nFF);
      for (int i = 0; i < m.nFF; ++i) {
        if (m.act == "silu")
          a[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        else if (m.act == "relu")
          a[i] = std::max(g[i], 0.0) * u[i];
        else
          a[i] = std::max(g[i], 0.0) * std::max(u[i], 0.0);
        if (fired && a[i] != 0)
          (*fired)[size_t(l) * m.nFF + i]++;
      }
      Vec d = matmul(down, actFor(m, b + "ffn_down.weight", a), m.nEmbd);
      for (int i = 0; i < m.nEmbd; ++i)
        x[t][i] += d[i];
    }
  }
  Vec h = rmsnorm(x[n - 1], m.get("output_norm.weight"), m.eps);
  bool tied = m.file->tensor("output.weight") == nullptr;
  std::string out = tied ? "token_embd.weight" : "output.weight";
  return matmul(m.get(out), actFor(m, out, h), m.nVocab);
}

RefModel refOf(const Model &model, const GGUFFile &file) {
  const ModelParams &p = model.params();
  RefModel r;
  r.file = &file;
  r.nEmbd = p.nEmbd;
  r.nFF = p.nFF;
  r.nLayer = p.nLayer;
  r.nHead = p.nHead;
  r.nKvHead = p.nKvHead;
  r.headDim = p.headDim;
  r.nRot = p.nRot;
  r.nVocab = p.nVocab;
  r.act = activationName(p.activation);
  return r;
}

// max |a - b| / max |ref|: the normalised error used by every bound here.
double normErr(const float *a, const Vec &ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::fabs(a[i] - ref[i]));
    den = std::max(den, std::fabs(ref[i]));
  }
  return num / den;
}

const std::vector<int32_t> kSeq = {1, 259, 261, 40, 268, 7, 290, 100};

std::vector<std::vector<float>> runtimeLogits(const Model &model,
                                              const std::vector<int32_t> &toks,
                                              int threads) {
  ThreadPool pool(threads);
  ForwardState st;
  std::string error;
  EXPECT_TRUE(st.init(model, 32, error)) << error;
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < toks.size(); ++i) {
    EXPECT_TRUE(forward(model, st, pool, toks[i], int(i), true, error)) << error;
    out.push_back(st.logits);
  }
  return out;
}

const char *typeTag(GGMLType t) { return typeName(t); }

} // namespace

// Tests that the runtime forward pass (KV cache, one token at a time) gives
// the logits of the naive double-precision pass at each of 8 positions, for
// each weight type and kernel ISA (the reference uses the same dequantised
// weights and, for Q8_0/Q4_0 products other than the down projection, the
// same 8-bit quantisation of the input).
// Bound: normalised error 3e-4. f32 arithmetic through two layers measured
// 2.6e-7 to 3.7e-7 with an f32 KV cache; in f16, a key or value whose f32
// and double values round to neighbouring halves (one half's step is 2^-11
// of it) moves the logits ~1e-4, which the f16 scalar run meets once.
// Errors in the arithmetic itself are larger (a lost rounding of the cache
// measured 2.4e-2 on the 8-bit types).
TEST(Forward, MatchesDoubleReferenceForEachType) {
  for (GGMLType type : {GGMLType::F32, GGMLType::F16, GGMLType::BF16,
                        GGMLType::Q8_0, GGMLType::Q4_0}) {
    TinySpec s;
    s.type = type;
    std::string path = writeTinyModel(s, std::string("ref_") + typeTag(type) + ".gguf");
    std::string error;
    auto model = Model::open(path, error);
    ASSERT_TRUE(model) << error;
    EXPECT_EQ(model->params().nVocab, int(vocabTokens().size()));
    EXPECT_EQ(model->params().nKvHead, 2);
    RefModel ref = refOf(*model, model->file());
    std::vector<Vec> expect;
    for (size_t i = 0; i < kSeq.size(); ++i)
      expect.push_back(refLogits(
          ref, std::vector<int32_t>(kSeq.begin(), kSeq.begin() + i + 1)));
    // Both the SIMD and the portable kernels.
    for (KernelIsa isa : {KernelIsa::Auto, KernelIsa::Scalar}) {
      setKernelIsa(isa);
      auto got = runtimeLogits(*model, kSeq, 2);
      double worst = 0;
      for (size_t i = 0; i < kSeq.size(); ++i)
        worst = std::max(worst, normErr(got[i].data(), expect[i]));
      EXPECT_LE(worst, 3e-4) << typeTag(type) << " " << kernelIsaName();
    }
    setKernelIsa(KernelIsa::Auto);
  }
}

// Tests that lower-precision copies of one model stay close to the f32
// model and, where the f32 top-2 margin is large, pick the same greedy token.
// Bounds (normalised logit error vs f32), about 2-3x what the quantisation
// noise of seven 64-wide random matrices in series gives: f16 2e-3, bf16
// 2e-2, q8_0 4e-2, q4_0 5e-1 (Q4_0 alone perturbs each weight by ~6 %).
TEST(Forward, QuantisedModelsTrackF32) {
  TinySpec s;
  std::string error;
  auto f32 = Model::open(writeTinyModel(s, "track_f32.gguf"), error);
  ASSERT_TRUE(f32) << error;
  auto base = runtimeLogits(*f32, kSeq, 1);
  struct Case {
    GGMLType type;
    double bound;
    int minGreedyChecks;
  } cases[] = {{GGMLType::F16, 2e-3, 6}, {GGMLType::BF16, 2e-2, 4},
               {GGMLType::Q8_0, 4e-2, 2}, {GGMLType::Q4_0, 5e-1, 0}};
  for (const Case &c : cases) {
    s.type = c.type;
    auto m = Model::open(writeTinyModel(s, std::string("track_") + typeTag(c.type) + ".gguf"), error);
    ASSERT_TRUE(m) << error;
    auto got = runtimeLogits(*m, kSeq, 1);
    int greedyChecks = 0;
    for (size_t i = 0; i < kSeq.size(); ++i) {
      Vec ref(base[i].begin(), base[i].end());
      double err = normErr(got[i].data(), ref);
      EXPECT_LE(err, c.bound) << typeTag(c.type) << " pos " << i;
      // Greedy agreement where the margin exceeds twice the allowed error.
      std::vector<float> sorted = base[i];
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(),
                        std::greater<float>());
      double scale = *std::max_element(ref.begin(), ref.end(), [](double a, double b) {
        return std::fabs(a) < std::fabs(b);
      });
      if (sorted[0] - sorted[1] > 2 * c.bound * std::fabs(scale)) {
        auto argmax = [](const std::vector<float> &v) {
          return std::max_element(v.begin(), v.end()) - v.begin();
        };
        EXPECT_EQ(argmax(got[i]), argmax(base[i])) << typeTag(c.type) << " pos " << i;
        ++greedyChecks;
      }
    }
    EXPECT_GE(greedyChecks, c.minGreedyChecks) << typeTag(c.type);
  }
}

// Tests that the thread count does not change a single bit of the logits.
TEST(Forward, ThreadCountDoesNotChangeLogits) {
  TinySpec s;
  s.type = GGMLType::Q8_0;
  std::string error;
  auto model = Model::open(writeTinyModel(s, "threads.gguf"), error);
  ASSERT_TRUE(model) << error;
  auto one = runtimeLogits(*model, kSeq, 1);
  auto three = runtimeLogits(*model, kSeq, 3);
  EXPECT_EQ(one, three);
}

// Tests the variants of the architecture: ReLU and dReLU FFNs, multi-query
// attention (one KV head), partial rotary dimensions and tied output, each
// against the double reference (bound 1e-5), and the firing counts and FFN
// hook against the reference's count of nonzero activation products.
TEST(Forward, VariantsAndFiringCounts) {
  struct Variant {
    const char *act;
    int nKvHead;
    int nRot;
    bool tied;
  } variants[] = {{"relu", 2, 0, false}, {"drelu", 1, 8, true},
                  {"silu", 4, 0, true}, {"", 2, 0, false}};
  int vi = 0;
  for (const Variant &v : variants) {
    TinySpec s;
    s.activation = v.act;
    s.nKvHead = v.nKvHead;
    s.nRot = v.nRot;
    s.tied = v.tied;
    std::string error;
    auto model = Model::open(writeTinyModel(s, "variant" + std::to_string(vi++) + ".gguf"), error);
    ASSERT_TRUE(model) << error;
    const ModelParams &p = model->params();
    EXPECT_EQ(model->outputTied(), v.tied);
    EXPECT_STREQ(activationName(p.activation), *v.act ? v.act : "silu");
    RefModel ref = refOf(*model, model->file());

    ThreadPool pool(2);
    ForwardState st;
    ASSERT_TRUE(st.init(*model, 16, error)) << error;
    std::vector<uint64_t> counts(size_t(p.nLayer) * p.nFF, 0);
    std::vector<uint64_t> hookCounts(counts.size(), 0);
    int hookCalls = 0;
    st.firingCounts = counts.data();
    st.ffnHook = [&](int layer, int pos, const float *in, const uint8_t *fired) {
      ++hookCalls;
      EXPECT_EQ(pos, hookCalls / p.nLayer - (hookCalls % p.nLayer == 0));
      for (int i = 0; i < p.nFF; ++i)
        hookCounts[size_t(layer) * p.nFF + i] += fired[i];
      EXPECT_TRUE(std::isfinite(in[0]));
    };
    for (size_t i = 0; i < kSeq.size(); ++i)
      ASSERT_TRUE(forward(*model, st, pool, kSeq[i], int(i), true, error)) << error;
    std::vector<uint64_t> refCounts;
    Vec logits = refLogits(ref, kSeq, &refCounts);
    EXPECT_LE(normErr(st.logits.data(), logits), 1e-5) << v.act;
    EXPECT_EQ(hookCalls, int(kSeq.size()) * p.nLayer);
    EXPECT_EQ(hookCounts, counts);
    // A product within float rounding of zero could flip; allow 2 in all.
    uint64_t diff = 0, total = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      diff += counts[i] > refCounts[i] ? counts[i] - refCounts[i]
                                       : refCounts[i] - counts[i];
      total += counts[i];
    }
    EXPECT_LE(diff, 2u) << v.act;
    uint64_t all = uint64_t(kSeq.size()) * counts.size();
    if (p.activation == FfnActivation::SiLU)
      EXPECT_EQ(total, all);
    else // ReLU families fire on a fraction: about 1/2 (relu), 1/4 (drelu).
      EXPECT_TRUE(total > all / 10 && total < all * 8 / 10) << total << "/" << all;
  }
}

// Tests that evaluating the sequence in batches (chunked by a batch size of
// 3, and in one call of 8) gives bitwise the logits, KV cache and firing
// counts of one-token calls, with the hook seeing every (layer, position).
TEST(Forward, BatchesMatchOneTokenCallsBitwise) {
  TinySpec s;
  s.type = GGMLType::Q4_0;
  s.activation = "relu";
  std::string error;
  auto model = Model::open(writeTinyModel(s, "batch.gguf"), error);
  ASSERT_TRUE(model) << error;
  const ModelParams &p = model->params();
  ThreadPool pool(2);
  // chunks: the chunks the two calls take (each through every layer, in
  // order, as layerDone sees them).
  auto run = [&](int nBatch, int split, int chunks, ForwardState &st,
                 std::vector<uint64_t> &counts, std::vector<int> &hookSeen) {
    std::vector<int> layersDone;
    st.layerDone = [&](int layer) { layersDone.push_back(layer); };
    ASSERT_TRUE(st.init(*model, 16, error, nBatch)) << error;
    counts.assign(size_t(p.nLayer) * p.nFF, 0);
    hookSeen.assign(size_t(p.nLayer) * kSeq.size(), 0);
    st.firingCounts = counts.data();
    st.ffnHook = [&](int layer, int pos, const float *, const uint8_t *fired) {
      hookSeen[size_t(layer) * kSeq.size() + pos]++;
      for (int i = 0; i < p.nFF; ++i) // relu: fired iff the product is nonzero
        ASSERT_EQ(fired[i], st.hookProduct[i] != 0.f);
      ASSERT_TRUE(st.hookUp >= st.hUp.data() &&
                  st.hookUp < st.hUp.data() + st.hUp.size());
    };
    // Two calls: [0, split) without logits, [split, 8) with.
    ASSERT_TRUE(forwardBatch(*model, st, pool, kSeq.data(), split, 0, false, error)) << error;
    ASSERT_TRUE(forwardBatch(*model, st, pool, kSeq.data() + split,
                             int(kSeq.size()) - split, split, true, error))
        << error;
    EXPECT_EQ(st.nPast, int(kSeq.size()));
    ASSERT_EQ(layersDone.size(), size_t(chunks * p.nLayer)) << nBatch;
    for (size_t i = 0; i < layersDone.size(); ++i)
      EXPECT_EQ(layersDone[i], int(i % size_t(p.nLayer))) << i;
    st.layerDone = nullptr;
  };
  ForwardState one, chunked, whole;
  std::vector<uint64_t> c1, c2, c3;
  std::vector<int> h1, h2, h3;
  run(1, 1, 8, one, c1, h1);
  run(3, 2, 3, chunked, c2, h2); // 2, then 6 as 3 + 3
  run(32, 5, 2, whole, c3, h3);
  EXPECT_EQ(one.logits, chunked.logits);
  EXPECT_EQ(one.logits, whole.logits);
  EXPECT_EQ(one.keyCache, whole.keyCache);
  EXPECT_EQ(one.valueCache, chunked.valueCache);
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(c1, c3);
  EXPECT_EQ(h1, std::vector<int>(h1.size(), 1));
  EXPECT_EQ(h2, h1);
  EXPECT_EQ(h3, h1);
  // And the result is still the reference's.
  RefModel ref = refOf(*model, model->file());
  EXPECT_LE(normErr(whole.logits.data(), refLogits(ref, kSeq)), 1e-5);
  // A batch running past the context is refused and leaves the state as is.
  std::vector<int32_t> nine(9, 5);
  std::vector<float> before = whole.logits;
  EXPECT_FALSE(forwardBatch(*model, whole, pool, nine.data(), 9, 8, true, error));
  EXPECT_NE(error.find("context is 16"), std::string::npos) << error;
  EXPECT_EQ(whole.nPast, 8);
  EXPECT_EQ(whole.logits, before);
}

// Tests the forward pass's own errors: tokens outside the vocabulary,
// positions out of order and a full context.
TEST(Forward, RejectsBadTokensAndPositions) {
  TinySpec s;
  std::string error;
  auto model = Model::open(writeTinyModel(s, "errors.gguf"), error);
  ASSERT_TRUE(model) << error;
  ThreadPool pool(1);
  ForwardState st;
  ASSERT_TRUE(st.init(*model, 2, error));
  EXPECT_FALSE(forward(*model, st, pool, model->params().nVocab, 0, true, error));
  EXPECT_NE(error.find("outside the vocabulary"), std::string::npos) << error;
  EXPECT_FALSE(forward(*model, st, pool, 5, 1, true, error));
  EXPECT_TRUE(forward(*model, st, pool, 5, 0, false, error)) << error;
  EXPECT_TRUE(forward(*model, st, pool, 6, 1, true, error)) << error;
  EXPECT_FALSE(forward(*model, st, pool, 7, 2, true, error));
  EXPECT_NE(error.find("context is 2"), std::string::npos) << error;
  EXPECT_FALSE(st.init(*model, 0, error));
}

// Tests that a KV cache larger than the machine's memory is refused up front
// with a message, not attempted: 256 layers at 16M positions need 256 GiB
// of f16 keys and values.
TEST(Forward, RefusesKvCacheLargerThanMemory) {
  TinySpec s;
  s.nLayer = 256;
  s.nEmbd = 32;
  s.nHead = 2;
  s.nKvHead = 1;
  s.nFF = 32;
  std::string error;
  auto model = Model::open(writeTinyModel(s, "huge.gguf"), error);
  ASSERT_TRUE(model) << error;
  double need = 2.0 * 2 * 256 * double(1 << 24) * 16;
  double mem = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (need <= mem)
    GTEST_SKIP() << "this machine has more memory than the test asks for";
  ForwardState st;
  EXPECT_FALSE(st.init(*model, 1 << 24, error, 32)); // chunks of 32 tokens
  EXPECT_NE(error.find("a context of 16777216 tokens needs 260.12 GiB (KV "
                       "cache and attention scores)"),
            std::string::npos)
      << error;
}

// Tests that the context's other buffers count too: here the KV cache is
// small (one 2-wide KV head) and the attention scores of a 32-token chunk
// of 32 heads are not; sized by -c alone they ended in std::bad_alloc.
TEST(Forward, RefusesAttentionScoresLargerThanMemory) {
  TinySpec s;
  s.nLayer = 1;
  s.nEmbd = 64;
  s.nHead = 32;
  s.nKvHead = 1;
  s.nFF = 32;
  std::string error;
  auto model = Model::open(writeTinyModel(s, "wide.gguf"), error);
  ASSERT_TRUE(model) << error;
  const uint64_t need = contextBytes(model->params(), 1 << 24, 32);
  // f16 keys and values (2 x 2 values per position), f32 scores.
  EXPECT_EQ(need, (2ull * 2 * 2 + 4ull * 33 * 32) * (1 << 24));
  double mem = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (double(need) <= mem)
    GTEST_SKIP() << "this machine has more memory than the test asks for";
  ForwardState st;
  EXPECT_FALSE(st.init(*model, 1 << 24, error, 32));
  EXPECT_NE(error.find("a context of 16777216 tokens needs 66.12 GiB"),
            std::string::npos)
      << error;
}

// Tests that Model::load refuses malformed models with one line naming the
// file and the key or tensor at fault.
TEST(Model, LoadRefusesMalformedModels) {
  struct Case {
    const char *name;
    std::function<void(TinySpec &)> setup;
    std::vector<std::string> expect;
  } cases[] = {
      {"missing", [](TinySpec &s) { s.skipTensor = "blk.1.ffn_up.weight"; },
       {"tensor blk.1.ffn_up.weight is missing"}},
      {"badtype", [](TinySpec &s) { s.badTypeTensor = "blk.1.ffn_up.weight"; },
       {"blk.1.ffn_up.weight has type iq4_nl; pinferc computes f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K and bf16"}},
      {"shape",
       [](TinySpec &s) {
         s.edit = [](GGUFWriter &w) { w.setU32("llama.feed_forward_length", 96); };
       },
       {"blk.0.ffn_gate.weight has shape [64, 128], expected [64, 96]"}},
      {"heads",
       [](TinySpec &s) {
         s.edit = [](GGUFWriter &w) { w.setU32("llama.attention.head_count", 5); };
       },
       {"llama.attention.head_count", "do not divide"}},
      {"kvheads",
       [](TinySpec &s) {
         s.edit = [](GGUFWriter &w) { w.setU32("llama.attention.head_count_kv", 3); };
       },
       {"llama.attention.head_count_kv"}},
      {"act", [](TinySpec &s) { s.activation = "tanh"; },
       {"pinfer.ffn_activation", "'tanh'", "silu, relu, drelu or gelu"}},
      {"arch",
       [](TinySpec &s) {
         s.edit = [](GGUFWriter &w) { w.setString("general.architecture", "falcon"); };
       },
       {"general.architecture", "'falcon'"}},
      {"nolayers",
       [](TinySpec &s) { s.edit = [](GGUFWriter &w) { w.setU32("llama.block_count", 0); }; },
       {"llama.block_count", "out of range"}},
      {"missingkey",
       [](TinySpec &s) {
         s.edit = [](GGUFWriter &w) { w.setString("llama.embedding_length", "x"); };
       },
       {"llama.embedding_length"}},
  };
  for (Case &c : cases) {
    TinySpec s;
    c.setup(s);
    std::string path = writeTinyModel(s, std::string("bad_") + c.name + ".gguf");
    std::string error;
    auto model = Model::open(path, error);
    EXPECT_FALSE(model) << c.name;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    EXPECT_NE(error.find(path), std::string::npos) << error;
    for (const std::string &e : c.expect)
      EXPECT_NE(error.find(e), std::string::npos) << c.name << ": " << error;
  }
}

// ---- generation loop --------------------------------------------------------

namespace {

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
};

Loaded loadWithTokenizer(const std::string &file) {
  TinySpec s;
  Loaded l;
  std::string error;
  l.model = Model::open(writeTinyModel(s, file), error);
  EXPECT_TRUE(l.model) << error;
  if (l.model) {
    l.tok = Tokenizer::fromGGUF(l.model->file(), error);
    EXPECT_TRUE(l.tok) << error;
  }
  return l;
}

} // namespace

// Tests that greedy generation produces exactly the tokens of a hand-written
// loop over forward() and argmax, streams their text, and reports speed.
TEST(Generate, GreedyMatchesManualLoop) {
  Loaded l = loadWithTokenizer("gen.gguf");
  ASSERT_TRUE(l.tok);
  GenerateOptions o;
  o.prompt = "the cat sat on the mat";
  o.nPredict = 10;
  o.nThreads = 2;
  o.nCtx = 64;
  o.sampling.temperature = 0;
  std::ostringstream out, err;
  o.out = &out;
  o.err = &err;
  GenerateResult r;
  ASSERT_EQ(generate(*l.model, *l.tok, o, &r), 0) << err.str();

  std::vector<int32_t> prompt = l.tok->encode(o.prompt, true, false);
  EXPECT_EQ(r.promptTokens, prompt);
  ASSERT_EQ(prompt[0], 1); // BOS
  ThreadPool pool(1);
  ForwardState st;
  std::string error;
  ASSERT_TRUE(st.init(*l.model, 64, error));
  for (size_t i = 0; i < prompt.size(); ++i)
    ASSERT_TRUE(forward(*l.model, st, pool, prompt[i], int(i), true, error));
  std::vector<int32_t> expect;
  std::string text;
  for (int pos = int(prompt.size()); int(expect.size()) < o.nPredict; ++pos) {
    int32_t t = int32_t(std::max_element(st.logits.begin(), st.logits.end()) -
                        st.logits.begin());
    if (l.tok->isEog(t))
      break;
    expect.push_back(t);
    text += l.tok->tokenToPiece(t, false);
    ASSERT_TRUE(forward(*l.model, st, pool, t, pos, true, error));
  }
  EXPECT_EQ(r.tokens, expect);
  EXPECT_EQ(r.text, text);
  EXPECT_EQ(out.str(), o.prompt + text + "\n");
  EXPECT_EQ(r.stopReason, expect.size() == 10u ? "length" : "eog");
  EXPECT_NE(err.str().find("prompt eval time ="), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("tokens per second"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("       eval time ="), std::string::npos) << err.str();
}

// Tests -r/--reverse-prompt: generation stops at the token whose piece
// completes a stop string (which may begin in an earlier piece), with stop
// reason "stop"; and --ignore-eos: the run goes to -n even where greedy
// decoding would end it.
TEST(Generate, StopStringsAndIgnoreEos) {
  Loaded l = loadWithTokenizer("genstop.gguf");
  ASSERT_TRUE(l.tok);
  GenerateOptions o;
  o.prompt = "the cat sat on the mat";
  o.nPredict = 12;
  o.nThreads = 1;
  o.nCtx = 64;
  o.sampling.temperature = 0;
  std::ostringstream out, err;
  o.out = &out;
  o.err = &err;
  GenerateResult full;
  ASSERT_EQ(generate(*l.model, *l.tok, o, &full), 0) << err.str();
  ASSERT_GE(full.tokens.size(), 4u);
  // A stop string spanning the end of the second piece and the third.
  std::string upTo2, upTo3;
  for (int i = 0; i < 3; ++i)
    (i < 2 ? upTo2 : upTo3) += l.tok->tokenToPiece(full.tokens[i], false);
  upTo3 = upTo2 + upTo3;
  ASSERT_GT(upTo3.size(), upTo2.size());
  const std::string stop = upTo3.substr(upTo2.size() - 1, 2);
  ASSERT_EQ(upTo2.find(stop), std::string::npos) << stop;
  o.stopStrings = {"never there", stop};
  {
    GenerateResult r;
    ASSERT_EQ(generate(*l.model, *l.tok, o, &r), 0) << err.str();
    EXPECT_EQ(r.stopReason, "stop");
    EXPECT_EQ(r.tokens, std::vector<int32_t>(full.tokens.begin(),
                                             full.tokens.begin() + 3));
  }
  o.stopStrings.clear();
  o.ignoreEos = true;
  o.nPredict = 40;
  GenerateResult r;
  ASSERT_EQ(generate(*l.model, *l.tok, o, &r), 0) << err.str();
  EXPECT_EQ(r.tokens.size(), 40u);
  EXPECT_EQ(r.stopReason, "length");
  for (int32_t t : r.tokens)
    EXPECT_FALSE(l.tok->isEog(t));
}

// Tests the JSON result: one object with the required fields, valid
// escaping, extra fields from the callback, and a reproducible sampled run.
TEST(Generate, JsonOutputAndSeededSampling) {
  Loaded l = loadWithTokenizer("genjson.gguf");
  ASSERT_TRUE(l.tok);
  GenerateOptions o;
  o.prompt = "a dog\tis";
  o.nPredict = 12;
  o.nThreads = 1;
  o.nCtx = 64;
  o.json = true;
  o.sampling.temperature = 1.0f;
  o.sampling.seed = 42;
  o.extraJson = [](JsonWriter &w) { w.field("backend", "reference"); };
  std::ostringstream out1, out2, err;
  o.out = &out1;
  o.err = &err;
  GenerateResult r1, r2;
  ASSERT_EQ(generate(*l.model, *l.tok, o, &r1), 0) << err.str();
  o.out = &out2;
  ASSERT_EQ(generate(*l.model, *l.tok, o, &r2), 0) << err.str();
  EXPECT_EQ(r1.tokens, r2.tokens);
  EXPECT_EQ(r1.seed, 42u);
  const std::string j = out1.str();
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.substr(j.size() - 2), "}\n");
  EXPECT_EQ(std::count(j.begin(), j.end(), '\n'), 1);
  for (const char *key : {"\"prompt_tokens\":", "\"tokens\":[", "\"text\":",
                          "\"timings\":{", "\"prompt_tokens_per_s\":",
                          "\"gen_tokens_per_s\":", "\"prompt_ms\":", "\"gen_ms\":",
                          "\"backend\":\"reference\""})
    EXPECT_NE(j.find(key), std::string::npos) << key << " in " << j;
  EXPECT_NE(j.find("\"prompt_tokens\":" + std::to_string(r1.promptTokens.size())),
            std::string::npos);
  EXPECT_EQ(err.str(), ""); // no speed report in JSON mode
}

// Tests generation over a kept KV cache (a chat's turns, the server's
// requests): a prompt that extends the last conversation evaluates only
// what follows the shared prefix, and the tokens and the last logits are
// bitwise those of a fresh decoder; a prompt sharing only BOS starts over.
TEST(Generate, CachedPrefixGivesTheFreshResult) {
  Loaded l = loadWithTokenizer("gencache.gguf");
  ASSERT_TRUE(l.tok);
  std::string error;
  ReferenceDecoder kept(*l.model, 1), fresh(*l.model, 1);
  ASSERT_TRUE(kept.init(128, error)) << error;
  ASSERT_TRUE(fresh.init(128, error)) << error;
  GenerateOptions o;
  o.nPredict = 6;
  o.ignoreEos = true;
  o.sampling.temperature = 0;
  o.json = true;
  std::ostringstream out, err;
  o.out = &out;
  o.err = &err;
  std::vector<int32_t> cache;
  o.cache = &cache;

  o.prompt = "Once upon a time";
  GenerateResult first;
  ASSERT_EQ(generate(kept, *l.tok, o, &first), 0) << err.str();
  EXPECT_EQ(first.promptCached, 0);
  // The cache holds the prompt and every generated token evaluated (the
  // last one sampled is not).
  std::vector<int32_t> held = first.promptTokens;
  held.insert(held.end(), first.tokens.begin(), first.tokens.end() - 1);
  EXPECT_EQ(cache, held);
  EXPECT_EQ(kept.nPast(), int(held.size()));

  for (const std::string &prompt :
       {"Once upon a time" + first.text + " and then", std::string("a dog"),
        std::string("a dog is")}) {
    o.prompt = prompt;
    GenerateResult again, alone;
    out.str("");
    ASSERT_EQ(generate(kept, *l.tok, o, &again), 0) << err.str();
    const std::string json = out.str();
    o.cache = nullptr;
    ASSERT_EQ(generate(fresh, *l.tok, o, &alone), 0) << err.str();
    o.cache = &cache;
    EXPECT_EQ(again.tokens, alone.tokens) << prompt;
    EXPECT_EQ(std::memcmp(kept.logits(), fresh.logits(),
                          sizeof(float) * size_t(kept.nVocab())),
              0)
        << prompt;
    EXPECT_EQ(alone.promptCached, 0);
    EXPECT_NE(
        json.find("\"prompt_cached\":" + std::to_string(again.promptCached)),
        std::string::npos)
        << json;
    if (prompt.compare(0, 4, "Once") == 0)
      EXPECT_GE(again.promptCached, int(first.promptTokens.size()) - 1);
    else if (prompt == "a dog")
      EXPECT_LE(again.promptCached, 1) << "only BOS is shared";
    else // "a dog is" after "a dog": all of "a dog"
      EXPECT_GE(again.promptCached, 2);
  }
}

// Tests the loop's refusals (an empty prompt, a prompt longer than the
// context) and that a prompt plus -n longer than the context generates
// until the context is full, with a warning.
TEST(Generate, RefusesPromptsThatDoNotFit) {
  Loaded l = loadWithTokenizer("generr.gguf");
  ASSERT_TRUE(l.tok);
  GenerateOptions o;
  o.nThreads = 1;
  o.nCtx = 16;
  std::ostringstream out, err;
  o.out = &out;
  o.err = &err;
  o.prompt = "";
  EXPECT_EQ(generate(*l.model, *l.tok, o), 1);
  EXPECT_NE(err.str().find("prompt is empty"), std::string::npos) << err.str();
  err.str("");
  o.prompt = std::string(40, 'x'); // byte tokens
  size_t n = l.tok->encode(o.prompt, true, false).size();
  ASSERT_GT(n, 40u);
  EXPECT_EQ(generate(*l.model, *l.tok, o), 1);
  EXPECT_NE(err.str().find("prompt is " + std::to_string(n) +
                           " tokens but the context is 16 (-c)"),
            std::string::npos)
      << err.str();
  err.str("");
  EXPECT_EQ(out.str(), "");
  // More than the context leaves: a warning, then tokens until it is full,
  // as llama.cpp generates them.
  o.prompt = "the cat";
  o.nPredict = 15;
  o.json = true;
  const int inPrompt = int(l.tok->encode(o.prompt, true, false).size());
  EXPECT_EQ(generate(*l.model, *l.tok, o), 0) << err.str();
  EXPECT_NE(err.str().find("warning: prompt is " + std::to_string(inPrompt) +
                           " tokens and -n asks for 15 more, but the context "
                           "is 16 (-c): generating until it is full"),
            std::string::npos)
      << err.str();
  EXPECT_NE(out.str().find("\"stop\":\"context\""), std::string::npos)
      << out.str();
  const std::string json = out.str();
  const size_t open = json.find("\"tokens\":["), close = json.find(']', open);
  ASSERT_NE(open, std::string::npos) << json;
  const std::string list = json.substr(open + 10, close - open - 10);
  const size_t generated =
      list.empty() ? 0 : size_t(std::count(list.begin(), list.end(), ',')) + 1;
  EXPECT_EQ(generated + size_t(inPrompt), 16u) << json;
}

// Tests that invalid UTF-8 becomes U+FFFD and valid text is kept.
TEST(Generate, SanitizeUtf8) {
  EXPECT_EQ(sanitizeUtf8("h\xC3\xA9llo \xE2\x96\x81"), "h\xC3\xA9llo \xE2\x96\x81");
  EXPECT_EQ(sanitizeUtf8("a\xE2\x96"), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(sanitizeUtf8("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD"); // overlong
  EXPECT_EQ(sanitizeUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

// Tests that a PowerInfer file without pinfer.ffn_activation runs as ReLU,
// as `pinferc inspect` reports it: one rule decides for both.
TEST(Model, PowerInferFileDefaultsToRelu) {
  TinySpec s;
  s.activation = "";
  s.edit = [](GGUFWriter &w) { w.setPowerInfer(true); };
  std::string error;
  auto model = Model::open(writeTinyModel(s, "pwri-noact.gguf"), error);
  ASSERT_TRUE(model) << error;
  EXPECT_EQ(model->params().activation, FfnActivation::ReLU);
  FfnActivation act;
  std::string source;
  ASSERT_TRUE(modelActivation(model->file(), act, &source, error)) << error;
  EXPECT_EQ(act, FfnActivation::ReLU);
  EXPECT_NE(source.find("PWRI"), std::string::npos) << source;
}
