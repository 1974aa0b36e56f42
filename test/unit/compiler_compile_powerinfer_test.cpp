// Tests of models in PowerInfer's own layout, whose layers hold the down
// projection only transposed (blk.N.ffn_down_t.weight {n_embd, n_ff}, no
// ffn_down), as pinfer-genmodel --powerinfer and PowerInfer's converter
// write them: the loader transposes it exactly, the reference gives the
// same tokens as on the same model stored plainly, the compiled executable
// gives the reference's tokens, and a misshapen ffn_down_t is refused in
// one line.
#include "compiler/Compile.h"

#include "compile_test_util.h"

#include "compiler/ModelSpec.h"
#include "compiler/Trace.h"
#include "compiler/placement/CostModel.h"
#include "compiler/placement/Plan.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

const char *kPrompt = "Once upon a time there was a little";
constexpr int kTokens = 16;

class PowerInferLayout : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-pwri-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // The tiny preset in `type`, with or without --powerinfer (same seed).
  std::string generate(GGMLType type, bool powerInfer) {
    GenModelConfig cfg;
    std::string error;
    EXPECT_TRUE(applyPreset("tiny", cfg, error)) << error;
    cfg.type = type;
    cfg.powerInfer = powerInfer;
    cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
    std::string path =
        dir_ + "/" + typeName(type) + (powerInfer ? "-pwri.gguf" : ".gguf");
    GenModelReport report;
    EXPECT_TRUE(generateModel(cfg, path, report, error)) << error;
    return path;
  }

  // A copy of `from` in which `edit` may drop (return false) or reshape a
  // tensor, and `extra` add tensors.
  std::string
  rewrite(const std::string &from, const std::string &name,
          const std::function<bool(const GGUFTensor &, std::vector<int64_t> &)>
              &edit,
          const std::function<void(GGUFWriter &)> &extra = nullptr) {
    std::string path = dir_ + "/" + name, error;
    auto src = GGUFFile::open(from, error);
    EXPECT_TRUE(src) << error;
    GGUFWriter w;
    w.setPowerInfer(src->isPowerInfer());
    for (const GGUFKV &kv : src->metadata())
      if (kv.key != "general.alignment")
        w.set(kv.key, kv.value);
    for (const GGUFTensor &t : src->tensors()) {
      std::vector<int64_t> ne(t.ne, t.ne + t.nDims);
      if (!edit(t, ne))
        continue;
      size_t bytes = rowBytes(t.type, ne[0]);
      for (size_t d = 1; d < ne.size(); ++d)
        bytes *= size_t(ne[d]);
      w.addTensorData(t.name, t.type, ne, t.data, std::min(bytes, t.nbytes));
    }
    if (extra)
      extra(w);
    EXPECT_TRUE(w.write(path, error)) << error;
    return path;
  }

  static std::vector<int32_t> reference(const std::string &path) {
    std::string error, log;
    auto model = Model::open(path, error);
    EXPECT_TRUE(model) << error;
    auto tok = Tokenizer::fromGGUF(model->file(), error);
    EXPECT_TRUE(tok) << error;
    std::vector<int32_t> tokens;
    EXPECT_TRUE(referenceTokens(*model, *tok, kPrompt, kTokens, tokens, log))
        << log;
    return tokens;
  }

  std::string dir_;
};

// Tests that a --powerinfer file has no ffn_down, and that the loader binds
// its ffn_down_t transposed, value for value (f32 for block types), as the
// compiler's model spec and cost model see it too.
TEST_F(PowerInferLayout, LoaderTransposesDownT) {
  for (GGMLType type : {GGMLType::F32, GGMLType::F16, GGMLType::BF16,
                        GGMLType::Q8_0, GGMLType::Q4_0}) {
    SCOPED_TRACE(typeName(type));
    std::string error, path = generate(type, true);
    auto model = Model::open(path, error);
    ASSERT_TRUE(model) << error;
    const ModelParams &p = model->params();
    ModelSpec spec;
    ASSERT_TRUE(readModelSpec(model->file(), spec, error)) << error;
    for (int l = 0; l < p.nLayer; ++l) {
      EXPECT_FALSE(model->file().tensor(tensorName(TensorKind::FfnDown, l)));
      const GGUFTensor *t =
          model->file().tensor(tensorName(TensorKind::FfnDownT, l));
      ASSERT_TRUE(t && t->type == type);
      const Weight &d = model->layer(l).down;
      ASSERT_EQ(d.type, downTypeFromTransposed(type));
      ASSERT_EQ(d.cols, p.nFF);
      ASSERT_EQ(d.rows, p.nEmbd);
      std::vector<float> neuron(p.nEmbd), out(p.nFF);
      for (int e = 0; e < p.nEmbd; ++e) {
        ASSERT_TRUE(dequantizeRow(d.type, d.row(e), out.data(), p.nFF));
        for (int i = 0; i < p.nFF; i += 7) {
          ASSERT_TRUE(dequantizeRow(type, t->data + i * rowBytes(type, p.nEmbd),
                                    neuron.data(), p.nEmbd));
          ASSERT_EQ(out[i], neuron[e]) << l << "," << e << "," << i;
        }
      }
      const TensorSpec *s = spec.tensor(tensorName(TensorKind::FfnDown, l));
      ASSERT_TRUE(s);
      EXPECT_EQ(s->type, d.type);
      EXPECT_EQ(s->ne, (std::vector<int64_t>{p.nFF, p.nEmbd}));
    }
    // One neuron's bytes: gate and up rows, and its packed down row.
    ModelShape shape;
    ASSERT_TRUE(modelShapeFromGGUF(model->file(), shape, error)) << error;
    EXPECT_EQ(shape.neuronBytes,
              2 * rowBytes(type, p.nEmbd) +
                  transposedDownRowBytes(model->layer(0).down.type, p.nEmbd));
  }
}

// Tests that the reference gives the same tokens on a --powerinfer file as
// on the same model written plainly (f16: ffn_down_t holds ffn_down's
// values), and on a file holding both (ffn_down is then the one bound).
TEST_F(PowerInferLayout, SameTokensAsPlainModel) {
  const std::string plain = generate(GGMLType::F16, false);
  const std::string pwri = generate(GGMLType::F16, true);
  const std::vector<int32_t> want = reference(plain);
  ASSERT_EQ(int(want.size()), kTokens);
  EXPECT_EQ(reference(pwri), want);

  std::string error;
  auto src = GGUFFile::open(plain, error);
  ASSERT_TRUE(src) << error;
  const std::string both = rewrite(
      pwri, "both.gguf",
      [](const GGUFTensor &, std::vector<int64_t> &) { return true; },
      [&](GGUFWriter &w) {
        for (int l = 0; l < 2; ++l) {
          const GGUFTensor *t = src->tensor(tensorName(TensorKind::FfnDown, l));
          ASSERT_TRUE(t);
          w.addTensorData(t->name, t->type, {t->ne[0], t->ne[1]}, t->data,
                          t->nbytes);
        }
      });
  auto model = Model::open(both, error);
  ASSERT_TRUE(model) << error;
  EXPECT_STREQ(model->layer(1).down.name,
               tensorName(TensorKind::FfnDown, 1).c_str());
  EXPECT_EQ(reference(both), want);
}

// Tests that the main job compiles a --powerinfer file, its layers split
// between GPU and CPU, and that the executable gives the reference's
// tokens: f16 and q4_0, whose packed rows are ffn_down_t's own, copied
// in packed order (the q4_0 rows at an eighth of the f32 rows' bytes).
TEST_F(PowerInferLayout, CompiledExecutableMatchesReference) {
  for (GGMLType type : {GGMLType::F16, GGMLType::Q4_0}) {
    SCOPED_TRACE(typeName(type));
    const std::string pwri = generate(type, true);
    std::string error;
    const std::string plan = dir_ + "/split.plan.json";
    {
      auto file = GGUFFile::open(pwri, error);
      ASSERT_TRUE(file) << error;
      ASSERT_TRUE(writeSplitPlan(plan, modelIdentity(*file), error)) << error;
    }
    CompileArgs args;
    args.model = pwri;
    args.target = "rtx4090";
    args.plan = plan;
    args.sparsity = "exact";
    args.nCtx = 256;
    args.noZ3 = true;
    args.quiet = true;
    args.output = dir_ + "/exe-" + typeName(type);
    ASSERT_EQ(compileModel(args), 0);
    std::string out, err;
    ASSERT_EQ(run(args.output + " -p '" + kPrompt + "' -n " +
                      std::to_string(kTokens) + " --temp 0 --json -t 2",
                  out, err, dir_),
              0)
        << err;
    EXPECT_EQ(jsonInts(out, "tokens"), reference(pwri)) << out;
    auto packed = GGUFFile::open(args.output + ".weights.gguf", error);
    ASSERT_TRUE(packed) << error;
    const GGUFTensor *downT = packed->tensor("blk.0.ffn_down_t.weight");
    ASSERT_TRUE(downT);
    EXPECT_EQ(downT->type, type);
    EXPECT_GT(sumField(out, "cold_neurons"), 0) << out;
    EXPECT_GT(sumField(out, "hot_neurons"), 0) << out;
  }
}

// Tests that a misshapen ffn_down_t is refused with one line naming it and
// the shape expected, by the loader and by pinferc; and that a layer with
// neither down projection gets the missing-tensor error.
TEST_F(PowerInferLayout, MisshapenDownTRefused) {
  const std::string pwri = generate(GGMLType::F16, true);
  const std::string downT = tensorName(TensorKind::FfnDownT, 1);
  struct Case {
    const char *name;
    std::vector<int64_t> ne;
    std::string want;
  };
  const Case cases[] = {
      {"swapped.gguf",
       {512, 128},
       "tensor " + downT + " has shape [512, 128], expected [128, 512]"},
      {"short.gguf",
       {128, 256},
       "tensor " + downT + " has shape [128, 256], expected [128, 512]"},
      {"3d.gguf",
       {128, 256, 2},
       "tensor " + downT + " has shape [128, 256, 2], expected [128, 512]"},
  };
  for (const Case &c : cases) {
    const std::string path = rewrite(
        pwri, c.name, [&](const GGUFTensor &t, std::vector<int64_t> &ne) {
          if (t.name == downT)
            ne = c.ne;
          return true;
        });
    std::string error;
    EXPECT_FALSE(Model::open(path, error)) << c.name;
    EXPECT_EQ(error, path + ": " + c.want);
    std::string out, err;
    EXPECT_NE(run(kPinferc + " run " + path + " -p hi -n 1", out, err, dir_),
              0);
    EXPECT_EQ(err, "pinferc: error: " + path + ": " + c.want + "\n");
  }
  const std::string neither = rewrite(
      pwri, "neither.gguf", [&](const GGUFTensor &t, std::vector<int64_t> &) {
        return t.name != downT;
      });
  std::string error;
  EXPECT_FALSE(Model::open(neither, error));
  EXPECT_EQ(error, neither + ": tensor " + tensorName(TensorKind::FfnDown, 1) +
                       " is missing");
}

} // namespace
