// Tests batched prompt evaluation of the specialised decoder: for every
// weight type and sparsity mode, Executor::evalBatch of a 40-token prompt
// (chunks of 32 + 8) gives bitwise the logits, the greedy continuation and
// the LayerStats of evaluating the prompt token by token with eval(). The
// executor is built directly over packed weights written for a generated
// tiny model and a program whose layers split hot and cold neurons in a
// scrambled order (no GPU here: the hot half runs on the CPU). Also that
// the executor runs each layer's program steps in their order.
#include "codegen/PackedWeights.h"
#include "codegen/ProgramDesc.h"

#include "runtime/executor.h"
#include "runtime/ffn_cpu.h"
#include "runtime/forward.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/packed_format.h"
#include "runtime/thread_pool.h"
#include "tools/genmodel/model_generator.h"

#include "program_desc_oracle.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <ostream>
#include <unistd.h>
#include <vector>

using namespace pinfer;

namespace {

constexpr int kPrompt = 40; // one chunk of 32 and one of 8
constexpr int kGenerate = 8;
constexpr int kThreads = 2;

struct Case {
  GGMLType type;
  SparsityMode mode;
};

void PrintTo(const Case &c, std::ostream *os) {
  *os << typeTraits(c.type)->name << " " << sparsityModeName(c.mode);
}

std::string caseName(const ::testing::TestParamInfo<Case> &info) {
  return std::string(typeTraits(info.param.type)->name) + "_" +
         sparsityModeName(info.param.mode);
}

// A generated tiny model (2 layers of 512 neurons), its packed weights and
// the program tables an executable would carry for it.
class BatchFixture {
public:
  // `asLowered`: the all-CPU program as the lowering gives it (neurons in
  // id order, no hot half), instead of the scrambled split below.
  bool make(const Case &c, std::string &error, bool asLowered = false) {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-batch-test");
    char *tmpl = tmplBuf.data();
    if (!::mkdtemp(tmpl)) {
      error = "mkdtemp failed";
      return false;
    }
    dir_ = tmpl;
    GenModelConfig cfg;
    if (!applyPreset("tiny", cfg, error))
      return false;
    cfg.type = c.type;
    // Super-block types need rows of 256.
    if (typeTraits(c.type)->blockSize == QK_K)
      cfg.nEmbd = 256;
    // Threshold mode is the SiLU models' sparsity; the others run on a
    // ReLU model, with predictors for predicted mode.
    cfg.activation = c.mode == SparsityMode::Threshold ? FfnActivation::SiLU
                                                       : FfnActivation::ReLU;
    cfg.powerInfer = c.mode == SparsityMode::Predicted;
    cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
    const std::string src = dir_ + "/model.gguf",
                      packed = dir_ + "/packed.gguf";
    GenModelReport report;
    if (!generateModel(cfg, src, report, error))
      return false;
    model_ = Model::open(src, error);
    if (!model_)
      return false;
    if (!programAllCold(*model_, c.mode, desc_, error))
      return false;
    const ModelParams &p = model_->params();
    // Layer 0: 200 hot neurons (not a multiple of 32, so row blocks and
    // source blocks straddle the halves) in a scrambled order; layer 1: all
    // cold, also scrambled, but where the lowering keeps the source's down
    // matrix (a dense all-CPU layer), whose neurons stay in source order.
    for (int l = 0; l < p.nLayer && !asLowered; ++l) {
      std::vector<uint32_t> order;
      for (int i = 0; i < p.nFF; ++i)
        order.push_back(desc_.layers[l].sourceDown && l == 1
                            ? uint32_t(i)
                            : uint32_t((i * 37 + 5 * l) % p.nFF));
      const size_t nHot = l == 0 ? 200 : 0;
      desc_.layers[l].sourceDown = desc_.layers[l].sourceDown && l == 1;
      desc_.layers[l].hot.assign(order.begin(), order.begin() + nHot);
      desc_.layers[l].cold.assign(order.begin() + nHot, order.end());
      // A cut-off that skips part of the SiLU activations, not all.
      desc_.layers[l].actThreshold =
          c.mode == SparsityMode::Threshold ? 0.02f * float(l + 1) : 0.f;
    }
    fillExpectedSteps(desc_);
    PackedWeightsInfo info;
    if (!writePackedWeights(*model_, desc_, packed, info, error))
      return false;
    weights_ = GGUFFile::open(packed, error);
    if (!weights_)
      return false;

    ids_.resize(p.nLayer);
    layers_.resize(p.nLayer);
    for (int l = 0; l < p.nLayer; ++l) {
      const LayerDesc &d = desc_.layers[l];
      ids_[l] = desc_.packedOrder(l);
      ProgramLayer &pl = layers_[l];
      pl.nHot = uint32_t(d.hot.size());
      pl.nCold = uint32_t(d.cold.size());
      pl.neuronIds = ids_[l].data();
      pl.predictorRank = d.predictorRank;
      pl.actThreshold = d.actThreshold;
      pl.steps = d.steps.data();
      pl.nSteps = uint32_t(d.steps.size());
    }
    program_.modelName = "batch-test";
    program_.target = "cpu";
    program_.arch = model_->arch().name;
    program_.weightsHash = info.hash;
    program_.nLayer = uint32_t(p.nLayer);
    program_.nEmbd = uint32_t(p.nEmbd);
    program_.nFF = uint32_t(p.nFF);
    program_.nVocab = uint32_t(p.nVocab);
    program_.nHead = uint32_t(p.nHead);
    program_.nKvHead = uint32_t(p.nKvHead);
    program_.headDim = uint32_t(p.headDim);
    program_.nRot = uint32_t(p.nRot);
    program_.nCtxTrain = uint32_t(p.nCtxTrain);
    program_.normEps = p.normEps;
    program_.ropeBase = p.ropeBase;
    program_.activation = activationName(p.activation);
    program_.predictorThreshold = desc_.predictorThreshold;
    program_.mode = c.mode;
    program_.layers = layers_.data();
    return true;
  }

  std::unique_ptr<Executor> executor(std::string &error, int batch = 0) const {
    auto e = std::make_unique<Executor>(program_, *weights_, kThreads);
    if (batch > 0)
      e->setBatchSize(batch);
    if (!e->init(128, false, error))
      return nullptr;
    return e;
  }

  ~BatchFixture() {
    if (!dir_.empty()) {
      weights_.reset();
      std::remove((dir_ + "/model.gguf").c_str());
      std::remove((dir_ + "/packed.gguf").c_str());
      ::rmdir(dir_.c_str());
    }
  }

  std::vector<int32_t> prompt() const {
    std::vector<int32_t> t;
    const int32_t nVocab = model_->params().nVocab;
    for (int i = 0; i < kPrompt; ++i)
      t.push_back(int32_t((i * 7919 + 13) % nVocab));
    return t;
  }

  int nFF() const { return model_->params().nFF; }
  const Model &model() const { return *model_; }
  bool packedHas(const std::string &tensor) const {
    return weights_->tensor(tensor) != nullptr;
  }
  // The tensors the packed file stores scales first.
  std::vector<std::string> scalesFirst() const {
    std::vector<std::string> names;
    std::string error;
    weights_->getStringArray(kPackedScalesFirstKey, names, error);
    return names;
  }

  // Replaces layer l's steps (kept by the fixture).
  void setSteps(int l, std::vector<ProgramStep> steps) {
    desc_.layers[l].steps = std::move(steps);
    layers_[l].steps = desc_.layers[l].steps.data();
    layers_[l].nSteps = uint32_t(desc_.layers[l].steps.size());
  }
  const std::vector<ProgramStep> &steps(int l) const {
    return desc_.layers[l].steps;
  }

  // Hands every layer a specialised gate/up loop, as generated code does.
  void setGateUp(GateUpFn fn, int level) {
    for (ProgramLayer &pl : layers_) {
      pl.cpuGateUp = fn;
      pl.cpuGateUpLevel = level;
    }
  }

private:
  std::string dir_;
  std::unique_ptr<Model> model_;
  ProgramDesc desc_;
  std::unique_ptr<GGUFFile> weights_;
  std::vector<std::vector<uint32_t>> ids_;
  std::vector<ProgramLayer> layers_;
  Program program_;
};

bool sameLogits(const Executor &a, const Executor &b) {
  return std::memcmp(a.logits(), b.logits(), sizeof(float) * a.nVocab()) == 0;
}

void expectSameStats(const Executor &a, const Executor &b, const char *when) {
  ASSERT_EQ(a.stats().size(), b.stats().size());
  for (size_t l = 0; l < a.stats().size(); ++l) {
    const LayerStats &x = a.stats()[l], &y = b.stats()[l];
    EXPECT_EQ(x.tokens, y.tokens) << when << " layer " << l;
    EXPECT_EQ(x.gpuNeurons, y.gpuNeurons) << when << " layer " << l;
    EXPECT_EQ(x.cpuNeurons, y.cpuNeurons) << when << " layer " << l;
    EXPECT_EQ(x.fired, y.fired) << when << " layer " << l;
    EXPECT_EQ(x.predicted, y.predicted) << when << " layer " << l;
    EXPECT_EQ(x.coldFired, y.coldFired) << when << " layer " << l;
    EXPECT_EQ(x.missed, y.missed) << when << " layer " << l;
  }
}

int32_t argmax(const Executor &e) {
  const float *l = e.logits();
  return int32_t(std::max_element(l, l + e.nVocab()) - l);
}

class BatchPrompt : public ::testing::TestWithParam<Case> {};

TEST_P(BatchPrompt, BitwiseTokenByToken) {
  const Case c = GetParam();
  BatchFixture fx;
  std::string error;
  ASSERT_TRUE(fx.make(c, error)) << error;
  const std::vector<int32_t> prompt = fx.prompt();
  // Which down layout layer 1 (all on the CPU) runs: the source's matrix
  // in dense mode.
  const bool source = c.mode == SparsityMode::Dense;
  EXPECT_EQ(fx.packedHas("blk.1.ffn_down.weight"), source);
  EXPECT_EQ(fx.packedHas("blk.1.ffn_down_t.weight"), !source);

  // Token by token: the reference of this test.
  auto one = fx.executor(error);
  ASSERT_TRUE(one) << error;
  for (int i = 0; i < kPrompt; ++i)
    ASSERT_TRUE(one->eval(prompt[i], i, i == kPrompt - 1, error)) << error;
  // The whole prompt in one call (chunks of at most 32: 20 + 20), and in
  // two calls (5, then 35 from position 5: 18 + 17).
  auto whole = fx.executor(error, 32), parts = fx.executor(error, 32);
  ASSERT_TRUE(whole && parts) << error;
  // Chunks of 5 (-ub 5): 8 of them, the same logits.
  auto fives = fx.executor(error, 5);
  ASSERT_TRUE(fives) << error;
  ASSERT_EQ(fives->batchSize(), 5);
  ASSERT_TRUE(fives->evalBatch(prompt.data(), kPrompt, 0, true, error))
      << error;
  EXPECT_TRUE(sameLogits(*one, *fives));
  // Chunks of 20: where the CPU has AMX tiles, sixteen tokens on them and
  // four after them by the other kernels.
  auto twenties = fx.executor(error, 20);
  ASSERT_TRUE(twenties) << error;
  ASSERT_TRUE(twenties->evalBatch(prompt.data(), kPrompt, 0, true, error))
      << error;
  EXPECT_TRUE(sameLogits(*one, *twenties));
  expectSameStats(*one, *twenties, "after the prompt in chunks of 20");
  ASSERT_TRUE(whole->evalBatch(prompt.data(), kPrompt, 0, true, error))
      << error;
  ASSERT_TRUE(parts->evalBatch(prompt.data(), 5, 0, false, error)) << error;
  ASSERT_TRUE(parts->evalBatch(prompt.data() + 5, kPrompt - 5, 5, true, error))
      << error;
  EXPECT_TRUE(sameLogits(*one, *whole));
  EXPECT_TRUE(sameLogits(*one, *parts));
  // A KV cache that held another prompt sharing the first 20 tokens (a
  // chat's earlier turn): truncated to them, only the rest is evaluated,
  // and the logits are those of the whole prompt evaluated afresh.
  auto reused = fx.executor(error);
  ASSERT_TRUE(reused) << error;
  std::vector<int32_t> other = prompt;
  for (int i = 20; i < kPrompt; ++i)
    other[size_t(i)] = prompt[size_t(kPrompt - 1 - (i - 20))];
  ASSERT_NE(other, prompt);
  ASSERT_TRUE(reused->evalBatch(other.data(), kPrompt, 0, true, error))
      << error;
  reused->truncate(20);
  ASSERT_EQ(reused->nPast(), 20);
  ASSERT_TRUE(
      reused->evalBatch(prompt.data() + 20, kPrompt - 20, 20, true, error))
      << error;
  EXPECT_TRUE(sameLogits(*one, *reused));
  expectSameStats(*one, *whole, "after the prompt");
  expectSameStats(*one, *parts, "after the prompt in two calls");

  // The stats say the mode did what it should, so that the comparison
  // covers the skipping paths.
  uint64_t tokens = 0, cpu = 0, fired = 0, predicted = 0;
  for (const LayerStats &s : whole->stats()) {
    tokens += s.tokens;
    cpu += s.cpuNeurons;
    fired += s.fired;
    predicted += s.predicted;
  }
  EXPECT_EQ(tokens, uint64_t(2 * kPrompt));
  const uint64_t slots = tokens * uint64_t(fx.nFF());
  EXPECT_GT(fired, 0u);
  if (c.mode == SparsityMode::Dense) {
    EXPECT_EQ(cpu, slots);
  } else {
    EXPECT_LT(cpu, slots);
    EXPECT_LT(fired, slots);
  }
  if (c.mode == SparsityMode::Predicted) {
    EXPECT_GT(predicted, 0u);
  }

  // The greedy continuation: same tokens, bitwise the same logits, the KV
  // cache the batch wrote being read by every later position.
  for (int i = 0; i < kGenerate; ++i) {
    const int32_t next = argmax(*one);
    ASSERT_EQ(argmax(*whole), next) << "step " << i;
    ASSERT_EQ(argmax(*parts), next) << "step " << i;
    for (Executor *e : {one.get(), whole.get(), parts.get()})
      ASSERT_TRUE(e->eval(next, kPrompt + i, true, error)) << error;
    EXPECT_TRUE(sameLogits(*one, *whole)) << "step " << i;
    EXPECT_TRUE(sameLogits(*one, *parts)) << "step " << i;
  }
  expectSameStats(*one, *whole, "after generation");
}

// Tests that a dense all-CPU program of a decoded block type, whose
// layers keep the source's down matrix, gives bitwise the dense
// reference's logits: the same products of the same rows in the same order.
// The dense reference's logits, bitwise, from the executor of `fx`: a
// prompt as one batch, then greedy tokens one by one.
void expectDenseReferenceLogits(BatchFixture &fx) {
  std::string error;
  auto exe = fx.executor(error);
  ASSERT_TRUE(exe) << error;
  ForwardState ref;
  ASSERT_TRUE(ref.init(fx.model(), 128, error)) << error;
  ThreadPool pool(kThreads);
  const std::vector<int32_t> prompt = fx.prompt();
  ASSERT_TRUE(exe->evalBatch(prompt.data(), kPrompt, 0, true, error)) << error;
  ASSERT_TRUE(forwardBatch(fx.model(), ref, pool, prompt.data(), kPrompt, 0,
                           true, error))
      << error;
  for (int i = 0; i <= kGenerate; ++i) {
    ASSERT_EQ(std::memcmp(exe->logits(), ref.logits.data(),
                          sizeof(float) * exe->nVocab()),
              0)
        << "position " << kPrompt + i;
    const int32_t next = argmax(*exe);
    ASSERT_TRUE(exe->eval(next, kPrompt + i, true, error)) << error;
    ASSERT_TRUE(
        forwardBatch(fx.model(), ref, pool, &next, 1, kPrompt + i, true, error))
        << error;
  }
}

TEST(SourceDown, BitwiseTheDenseReference) {
  BatchFixture fx;
  std::string error;
  ASSERT_TRUE(fx.make({GGMLType::Q4_1, SparsityMode::Dense}, error, true))
      << error;
  ASSERT_TRUE(fx.packedHas("blk.0.ffn_down.weight"));
  ASSERT_TRUE(fx.packedHas("blk.1.ffn_down.weight"));
  expectDenseReferenceLogits(fx);
}

// Tests a dense all-CPU Q4_K program (its prompt's gate and up rows x
// tokens from the paired activation layout, its down input quantised):
// bitwise the dense reference's logits, prompt and generation.
TEST(SourceDown, KQuantBitwiseTheDenseReference) {
  BatchFixture fx;
  std::string error;
  ASSERT_TRUE(fx.make({GGMLType::Q4_K, SparsityMode::Dense}, error, true))
      << error;
  ASSERT_TRUE(fx.packedHas("blk.0.ffn_down.weight"));
  expectDenseReferenceLogits(fx);
}

// Tests that a dense all-CPU Q4_0 program, whose attention, gate, up and
// output-head rows the packed file stores scales first, gives bitwise the
// dense reference's logits, prompt and generation.
TEST(ScalesFirst, BitwiseTheDenseReference) {
  BatchFixture fx;
  std::string error;
  ASSERT_TRUE(fx.make({GGMLType::Q4_0, SparsityMode::Dense}, error, true))
      << error;
  const std::vector<std::string> sf = fx.scalesFirst();
  for (const char *name :
       {"blk.0.attn_q.weight", "blk.1.attn_output.weight",
        "blk.0.ffn_gate.weight", "blk.1.ffn_up.weight", "output.weight"})
    EXPECT_NE(std::find(sf.begin(), sf.end(), name), sf.end()) << name;
  expectDenseReferenceLogits(fx);
}

std::vector<Case> allCases() {
  std::vector<Case> cases;
  // Q4_1 stands for the decoded block formats (f32 transposed rows, or in
  // a dense all-CPU layer the source's down matrix).
  for (GGMLType t : {GGMLType::F32, GGMLType::F16, GGMLType::BF16,
                     GGMLType::Q8_0, GGMLType::Q4_0, GGMLType::Q4_1})
    for (SparsityMode m : {SparsityMode::Dense, SparsityMode::Exact,
                           SparsityMode::Predicted, SparsityMode::Threshold})
      cases.push_back({t, m});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllTypesAndModes, BatchPrompt,
                         ::testing::ValuesIn(allCases()), caseName);

// With recall measured, the prompt runs token by token and counts the
// misses exactly as eval() does.
TEST(BatchPromptRecall, MatchesTokenByToken) {
  BatchFixture fx;
  std::string error;
  ASSERT_TRUE(fx.make({GGMLType::Q8_0, SparsityMode::Predicted}, error))
      << error;
  const std::vector<int32_t> prompt = fx.prompt();
  auto one = fx.executor(error), batch = fx.executor(error);
  ASSERT_TRUE(one && batch) << error;
  one->setMeasureRecall(true);
  batch->setMeasureRecall(true);
  for (int i = 0; i < kPrompt; ++i)
    ASSERT_TRUE(one->eval(prompt[i], i, i == kPrompt - 1, error)) << error;
  ASSERT_TRUE(batch->evalBatch(prompt.data(), kPrompt, 0, true, error))
      << error;
  EXPECT_TRUE(sameLogits(*one, *batch));
  expectSameStats(*one, *batch, "with recall");
}

// The steps of a layer in `text` form, built from the fixture's own.
std::vector<ProgramStep> reorder(const std::vector<ProgramStep> &steps,
                                 const std::vector<std::string> &order) {
  std::vector<ProgramStep> out;
  for (const std::string &name : order)
    for (const ProgramStep &s : steps)
      if (stepsText(&s, 1) == name) {
        out.push_back(s);
        break;
      }
  return out;
}

// Tests that the executor runs a layer's steps in the program's order and
// records them as run: the CPU half moved before the GPU half's transfer
// (an order the scheduler does not make, with the same dataflow) gives
// bitwise the same logits, token by token and batched, and is the order
// reported; a merge before the CPU half has run is refused with a line
// naming the layer and step; a layer without steps is refused at start-up.
TEST(ExecutorSteps, RunsTheProgramOrder) {
  BatchFixture fx, moved;
  std::string error;
  ASSERT_TRUE(fx.make({GGMLType::Q8_0, SparsityMode::Predicted}, error))
      << error;
  ASSERT_TRUE(moved.make({GGMLType::Q8_0, SparsityMode::Predicted}, error))
      << error;
  ASSERT_EQ(stepsText(fx.steps(0).data(), fx.steps(0).size()),
            "attn_norm attention@cpu attn_add ffn_norm transfer@gpu "
            "predict@gpu ffn_half@gpu transfer@cpu record predict@cpu "
            "ffn_half@cpu wait merge ffn_add");
  const std::vector<std::string> cpuFirst = {
      "attn_norm",    "attention@cpu", "attn_add",     "ffn_norm",
      "predict@cpu",  "ffn_half@cpu",  "transfer@gpu", "predict@gpu",
      "ffn_half@gpu", "transfer@cpu",  "record",       "wait",
      "merge",        "ffn_add"};
  moved.setSteps(0, reorder(fx.steps(0), cpuFirst));
  ASSERT_EQ(moved.steps(0).size(), cpuFirst.size());

  const std::vector<int32_t> prompt = fx.prompt();
  auto a = fx.executor(error), b = moved.executor(error),
       batch = moved.executor(error);
  ASSERT_TRUE(a && b && batch) << error;
  for (int i = 0; i < kPrompt; ++i) {
    ASSERT_TRUE(a->eval(prompt[i], i, true, error)) << error;
    ASSERT_TRUE(b->eval(prompt[i], i, true, error)) << error;
    ASSERT_TRUE(sameLogits(*a, *b)) << "position " << i;
  }
  ASSERT_TRUE(batch->evalBatch(prompt.data(), kPrompt, 0, true, error))
      << error;
  EXPECT_TRUE(sameLogits(*a, *batch));
  const std::vector<ProgramStep> &ran = b->ranSteps()[0];
  std::string expected;
  for (const std::string &name : cpuFirst)
    expected += (expected.empty() ? "" : " ") + name;
  EXPECT_EQ(stepsText(ran.data(), ran.size()), expected);
  EXPECT_EQ(stepsText(a->ranSteps()[1].data(), a->ranSteps()[1].size()),
            stepsText(fx.steps(1).data(), fx.steps(1).size()));

  // The merge before the CPU half it sums.
  moved.setSteps(0,
                 reorder(fx.steps(0),
                         {"attn_norm", "attention@cpu", "attn_add", "ffn_norm",
                          "transfer@gpu", "predict@gpu", "ffn_half@gpu",
                          "transfer@cpu", "record", "wait", "merge",
                          "predict@cpu", "ffn_half@cpu", "ffn_add"}));
  auto bad = moved.executor(error);
  ASSERT_TRUE(bad) << error;
  EXPECT_FALSE(bad->eval(prompt[0], 0, true, error));
  EXPECT_EQ(error, "program layer 0, step merge: a half's output is not "
                   "complete here");

  moved.setSteps(1, {});
  EXPECT_FALSE(moved.executor(error));
  EXPECT_NE(error.find("program layer 1 has no steps"), std::string::npos)
      << error;
}

TEST(BatchPromptErrors, OneLine) {
  BatchFixture fx;
  std::string error;
  ASSERT_TRUE(fx.make({GGMLType::F16, SparsityMode::Exact}, error)) << error;
  auto e = fx.executor(error);
  ASSERT_TRUE(e) << error;
  std::vector<int32_t> prompt = fx.prompt();
  // Not at the next position.
  EXPECT_FALSE(e->evalBatch(prompt.data(), 4, 3, true, error));
  EXPECT_NE(error.find("positions 3..6 cannot be evaluated"), std::string::npos)
      << error;
  // Past the context (128).
  std::vector<int32_t> longPrompt(129, prompt[0]);
  EXPECT_FALSE(e->evalBatch(longPrompt.data(), 129, 0, true, error));
  EXPECT_NE(error.find("the context is 128"), std::string::npos) << error;
  // Outside the vocabulary.
  prompt[7] = -1;
  EXPECT_FALSE(e->evalBatch(prompt.data(), kPrompt, 0, true, error));
  EXPECT_NE(error.find("token -1 is outside the vocabulary"), std::string::npos)
      << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
  // Nothing was evaluated: the prompt still starts at position 0.
  prompt[7] = 1;
  EXPECT_TRUE(e->evalBatch(prompt.data(), kPrompt, 0, true, error)) << error;
}

// The gate/up loop generated code instantiates (tiny preset: n_embd 128),
// compiled with this test's flags, and counted so that the test sees when
// the executor runs it.
std::atomic<int> gSpecialisedCalls{0};
template <GGMLType T>
void countingGateUp(const GateUpArgs &a, int64_t k0, int64_t k1) {
  ++gSpecialisedCalls;
  gateUpRows<128, T, T, FfnActivation::ReLU, true>(a, k0, k1);
}

// Tests that the executor runs a layer's specialised loop when it was
// compiled with the kernels the runtime picked, and that its tokens' logits
// are then bitwise the generic loop's; and that it keeps the generic loop
// when the kernels differ (an executable built for another CPU).
TEST(SpecialisedGateUp, UsedOnlyWithTheRuntimesKernels) {
  const int compiled = PINFER_FFN_LEVEL;
  // The runtime's level that matches this file's, and one that does not.
  const KernelIsa same = compiled == 2   ? KernelIsa::Auto
                         : compiled == 1 ? KernelIsa::Avx2
                                         : KernelIsa::Scalar;
  const KernelIsa other = compiled == 0 ? KernelIsa::Auto : KernelIsa::Scalar;
  for (GGMLType type : {GGMLType::Q8_0, GGMLType::F16}) {
    BatchFixture fx;
    std::string error;
    ASSERT_TRUE(fx.make({type, SparsityMode::Exact}, error)) << error;
    const std::vector<int32_t> prompt = fx.prompt();
    setKernelIsa(same);
    ASSERT_EQ(kernelLevel(), compiled);
    auto generic = fx.executor(error);
    ASSERT_TRUE(generic) << error;
    fx.setGateUp(type == GGMLType::Q8_0 ? countingGateUp<GGMLType::Q8_0>
                                        : countingGateUp<GGMLType::F16>,
                 compiled);
    auto special = fx.executor(error);
    ASSERT_TRUE(special) << error;
    gSpecialisedCalls = 0;
    for (int i = 0; i < 12; ++i) {
      ASSERT_TRUE(generic->eval(prompt[i], i, true, error)) << error;
      ASSERT_TRUE(special->eval(prompt[i], i, true, error)) << error;
      ASSERT_TRUE(sameLogits(*generic, *special)) << "token " << i;
    }
    EXPECT_GT(gSpecialisedCalls.load(), 0);
    expectSameStats(*generic, *special, "specialised");
    // The other kernels at start-up: the specialised loop is left alone.
    setKernelIsa(other);
    if (kernelLevel() != compiled) {
      auto other = fx.executor(error);
      ASSERT_TRUE(other) << error;
      gSpecialisedCalls = 0;
      for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(other->eval(prompt[i], i, true, error)) << error;
      EXPECT_EQ(gSpecialisedCalls.load(), 0);
    }
    setKernelIsa(KernelIsa::Auto);
  }
}

} // namespace
