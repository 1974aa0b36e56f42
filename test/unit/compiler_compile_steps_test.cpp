// End-to-end tests that the executable runs the lowered IR's steps: tiny
// generated models are compiled in each sparsity mode (dense and exact on a
// ReLU model, predicted on a ReLU model with PowerInfer predictors,
// threshold on a SiLU model) for a GPU target whose layers are split
// between the halves (the GPU half runs on the CPU where there is no GPU)
// and for --target cpu. The steps the compile lowered (CompileArgs::
// loweredSteps, and --emit=steps) must be the steps the executable reports
// it ran for a token, in --json and in --verbose.
#include "compiler/Compile.h"

#include "compile_test_util.h"

#include "compiler/Profile.h"
#include "compiler/Trace.h"
#include "compiler/placement/Plan.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

const char *kPrompt = "Once upon a time there was a little";
const char *kText = "Once upon a time there was a little girl who lived in a "
                    "village near the forest. Every day she walked to the "
                    "river and sang to the fish, and the fish sang back.";

// Every string value under "key" in compact JSON, in order of appearance
// (values without escapes, as step lists are).
std::vector<std::string> jsonStrings(const std::string &json,
                                     const std::string &key) {
  std::vector<std::string> v;
  const std::string k = "\"" + key + "\":\"";
  for (size_t at = json.find(k); at != std::string::npos;
       at = json.find(k, at + 1)) {
    const size_t begin = at + k.size();
    v.push_back(json.substr(begin, json.find('"', begin) - begin));
  }
  return v;
}

// The lines of `text` that start with `prefix`, each with its newline.
std::string linesStarting(const std::string &text, const std::string &prefix) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0)
      out += line + "\n";
  return out;
}

// One model of the test: its file, a profile of it, and a plan that
// splits each of its layers (writeSplitPlan, made for this model).
struct TestModel {
  std::string path, trace, plan;
};

class StepsTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-steps-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    relu_ = new TestModel;
    pwri_ = new TestModel;
    silu_ = new TestModel;
    makeModel("relu", FfnActivation::ReLU, GGMLType::Q8_0, false, *relu_);
    makeModel("pwri", FfnActivation::ReLU, GGMLType::F16, true, *pwri_);
    makeModel("silu", FfnActivation::SiLU, GGMLType::Q8_0, false, *silu_);
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + dir_).c_str());
    delete relu_;
    delete pwri_;
    delete silu_;
  }

  static void makeModel(const std::string &name, FfnActivation act,
                        GGMLType type, bool powerInfer, TestModel &out) {
    GenModelConfig cfg;
    std::string error;
    ASSERT_TRUE(applyPreset("tiny", cfg, error)) << error;
    cfg.activation = act;
    cfg.type = type;
    cfg.powerInfer = powerInfer;
    cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
    GenModelReport report;
    out.path = dir_ + "/" + name + ".gguf";
    ASSERT_TRUE(generateModel(cfg, out.path, report, error)) << error;
    auto model = Model::open(out.path, error);
    ASSERT_TRUE(model) << error;
    auto tok = Tokenizer::fromGGUF(model->file(), error);
    ASSERT_TRUE(tok) << error;
    // A SiLU model's profile carries the thresholds of threshold mode.
    Trace trace;
    ProfileOptions popts;
    popts.maxTokens = 256;
    popts.nThreads = 2;
    ASSERT_TRUE(profileModel(*model, *tok, modelIdentity(model->file()),
                             std::string(kText) + " " + kText, popts, trace,
                             error))
        << error;
    out.trace = dir_ + "/" + name + ".trace";
    ASSERT_TRUE(writeTrace(out.trace, trace, error)) << error;
    out.plan = dir_ + "/" + name + ".plan.json";
    ASSERT_TRUE(writeSplitPlan(out.plan, trace.modelIdentity, error)) << error;
  }

  static CompileArgs argsFor(const TestModel &m, const std::string &target,
                             const std::string &mode) {
    CompileArgs args;
    args.model = m.path;
    args.target = target;
    args.trace = m.trace;
    args.sparsity = mode;
    args.plan = target == "cpu" ? "" : m.plan;
    args.nCtx = 256;
    args.noZ3 = true;
    args.quiet = true;
    args.output = dir_ + "/exe-" + target + "-" + mode;
    return args;
  }

  // Compiles `args`, runs the executable with --json --verbose, and checks
  // that the steps it ran are the steps the compile lowered, and that
  // --emit=steps prints them too. Returns the lowered steps.
  static std::string compileRunCompare(CompileArgs args) {
    std::ostringstream lowered;
    args.loweredSteps = &lowered;
    EXPECT_EQ(compileModel(args), 0);
    const std::string steps = lowered.str();
    EXPECT_NE(steps, "");

    CompileArgs emit = args;
    emit.loweredSteps = nullptr;
    emit.output.clear();
    emit.emit = "steps";
    std::ostringstream printed;
    std::streambuf *stdoutBuf = std::cout.rdbuf(printed.rdbuf());
    const int rc = compileModel(emit);
    std::cout.rdbuf(stdoutBuf);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(printed.str(), steps);

    std::string out, err;
    EXPECT_EQ(run(args.output + " -p '" + std::string(kPrompt) +
                      "' -n 8 --temp 0 --json --verbose -t 2",
                  out, err, dir_),
              0)
        << err;
    // --json: per layer, the steps run for the last token evaluated.
    std::vector<std::string> ran = jsonStrings(out, "steps");
    std::string ranLines;
    for (size_t l = 0; l < ran.size(); ++l)
      ranLines += "steps layer " + std::to_string(l) + ": " + ran[l] + "\n";
    EXPECT_EQ(ranLines, steps) << out;
    // --verbose: the same lines on stderr, once.
    EXPECT_EQ(linesStarting(err, "steps layer"), steps) << err;
    return steps;
  }

  static std::string dir_;
  static TestModel *relu_, *pwri_, *silu_;
};

std::string StepsTest::dir_;
TestModel *StepsTest::relu_ = nullptr, *StepsTest::pwri_ = nullptr,
          *StepsTest::silu_ = nullptr;

// Every line of `steps` (one per layer) contains `what`.
bool everyLayerHas(const std::string &steps, const std::string &what) {
  std::istringstream in(steps);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.find(what) == std::string::npos)
      return false;
    ++n;
  }
  return n == 2; // the tiny preset's layers
}

// Tests each mode on its model, on a GPU target whose plan splits every
// layer and on a CPU target: the executable ran the lowered steps; the
// split layers have both halves, the transfers, the record, the wait and
// the merge; the CPU target's have none of them; predicted mode has each
// half's predictor, on its device.
TEST_F(StepsTest, ExecutableRunsTheLoweredSteps) {
  struct {
    const char *mode;
    TestModel *model;
  } cases[] = {{"dense", relu_},
               {"exact", relu_},
               {"predicted", pwri_},
               {"threshold", silu_}};
  for (const auto &c : cases) {
    SCOPED_TRACE(c.mode);
    const bool predicted = std::string(c.mode) == "predicted";
    const std::string gpu =
        compileRunCompare(argsFor(*c.model, "rtx4090", c.mode));
    EXPECT_TRUE(everyLayerHas(
        gpu, std::string("attn_norm attention@cpu attn_add ffn_norm "
                         "transfer@gpu ") +
                 (predicted ? "predict@gpu " : "") +
                 "ffn_half@gpu transfer@cpu record "))
        << gpu;
    EXPECT_TRUE(everyLayerHas(gpu, " ffn_half@cpu wait merge ffn_add")) << gpu;
    const std::string cpu = compileRunCompare(argsFor(*c.model, "cpu", c.mode));
    EXPECT_EQ(cpu.find("@gpu"), std::string::npos) << cpu;
    EXPECT_EQ(cpu.find("wait"), std::string::npos) << cpu;
    EXPECT_TRUE(everyLayerHas(cpu, "ffn_half@cpu ffn_add")) << cpu;
    EXPECT_EQ(everyLayerHas(gpu, "record predict@cpu ffn_half@cpu"), predicted)
        << gpu;
    EXPECT_EQ(everyLayerHas(cpu, "ffn_norm predict@cpu ffn_half@cpu"),
              predicted)
        << cpu;
  }
}

// Tests a GPU target whose split comes from the solver under a VRAM
// budget (the tiny model's mandatory bill at -c 256 is 403.7 MiB, the CUDA
// context's reserve, the executable's workspace, its buffers' alignment
// and the rounding to whole pages; 0.1 MiB more holds
// part of the FFNs, but 0.15 MiB would hold a layer's attention and its
// f16 KV cache too)
// rather than from a plan: the steps run are the steps lowered, and some
// layer has both halves.
TEST_F(StepsTest, BudgetSplitRunsTheLoweredSteps) {
  CompileArgs args = argsFor(*relu_, "rtx4090", "exact");
  args.plan.clear();
  args.vramBudget = "403.8MiB";
  args.minGranules = 1;
  args.output = dir_ + "/exe-budget";
  const std::string steps = compileRunCompare(args);
  EXPECT_NE(steps.find("ffn_half@gpu"), std::string::npos) << steps;
  EXPECT_NE(steps.find("merge"), std::string::npos) << steps;
}

} // namespace
