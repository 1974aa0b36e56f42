// End-to-end tests of threshold sparsity on a tiny generated SiLU model:
// executables compiled for a CPU-only target and for a GPU target (whose
// GPU part runs on the CPU where there is no GPU) skip the neurons whose
// |silu(gate x)| is at most the layer's calibrated threshold. They must
// reach the target sparsity, keep perplexity near dense, and with every
// threshold 0 give exactly the tokens of exact mode and of the dense
// reference. Also the mode's errors.
#include "compiler/Compile.h"

#include "compile_test_util.h"

#include "compiler/Calibration.h"
#include "compiler/Profile.h"
#include "compiler/Trace.h"
#include "compiler/placement/Plan.h"
#include "runtime/generate.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

const char *kPrompt = "Once upon a time there was a little";
constexpr int kTokens = 24;

// The last value under "key": the top-level one, which follows the
// per-layer objects.
double lastNumber(const std::string &json, const std::string &key) {
  std::vector<double> v = jsonNumbers(json, key);
  return v.empty() ? NAN : v.back();
}

class ThresholdTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-threshold-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    model_ = dir_ + "/tiny-silu.gguf";
    GenModelConfig cfg;
    std::string error;
    ASSERT_TRUE(applyPreset("tiny", cfg, error)) << error;
    ASSERT_TRUE(parseActivation("silu", cfg.activation));
    cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
    GenModelReport report;
    ASSERT_TRUE(generateModel(cfg, model_, report, error)) << error;
    reluModel_ = dir_ + "/tiny-relu.gguf";
    GenModelConfig relu;
    ASSERT_TRUE(applyPreset("tiny", relu, error)) << error;
    relu.vocabPath = cfg.vocabPath;
    ASSERT_TRUE(generateModel(relu, reluModel_, report, error)) << error;

    // The dense reference's greedy tokens.
    auto model = Model::open(model_, error);
    ASSERT_TRUE(model) << error;
    ASSERT_EQ(model->params().activation, FfnActivation::SiLU);
    auto tok = Tokenizer::fromGGUF(model->file(), error);
    ASSERT_TRUE(tok) << error;
    std::vector<int32_t> tokens;
    std::string log;
    ASSERT_TRUE(referenceTokens(*model, *tok, kPrompt, kTokens, tokens, log))
        << log;
    reference_ = new std::vector<int32_t>(tokens);
    ASSERT_EQ(int(reference_->size()), kTokens);

    // A profile at target sparsity 0.5, and a copy of it whose thresholds
    // are all 0 (which must skip exactly what exact mode skips).
    Trace trace;
    ProfileOptions popts;
    popts.targetSparsity = 0.5f;
    ASSERT_TRUE(profileModel(*model, *tok, modelIdentity(model->file()),
                             calibrationText(), popts, trace, error))
        << error;
    ASSERT_EQ(trace.thresholds.size(), 2u);
    for (float t : trace.thresholds)
      EXPECT_GT(t, 0.f);
    trace_ = dir_ + "/tiny.trace";
    ASSERT_TRUE(writeTrace(trace_, trace, error)) << error;
    std::fill(trace.thresholds.begin(), trace.thresholds.end(), 0.f);
    trace.targetSparsity = 0.f;
    zeroTrace_ = dir_ + "/zero.trace";
    ASSERT_TRUE(writeTrace(zeroTrace_, trace, error)) << error;

    // A plan that splits each layer into a GPU and a CPU half, in a
    // scrambled order, so that both halves apply the threshold.
    plan_ = dir_ + "/split.plan.json";
    ASSERT_TRUE(writeSplitPlan(plan_, trace.modelIdentity, error)) << error;
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + dir_).c_str());
    delete reference_;
  }

  static CompileArgs argsFor(const std::string &target, const std::string &mode,
                             const std::string &name) {
    CompileArgs args;
    args.model = model_;
    args.target = target;
    args.trace = trace_;
    args.sparsity = mode;
    args.plan = target == "cpu" ? "" : plan_;
    args.nCtx = 256;
    args.noZ3 = true;
    args.quiet = true;
    args.output = dir_ + "/exe-" + name;
    return args;
  }

  // Runs a compiled executable with `flags`; its stdout.
  static std::string runExe(const CompileArgs &args, const std::string &flags) {
    std::string out, err;
    EXPECT_EQ(run(args.output + " " + flags + " --json -t 2", out, err, dir_),
              0)
        << err;
    return out;
  }

  static std::string generateFlags() {
    return "-p '" + std::string(kPrompt) + "' -n " + std::to_string(kTokens) +
           " --temp 0";
  }

  static std::string dir_, model_, reluModel_, trace_, zeroTrace_, plan_;
  static std::vector<int32_t> *reference_;
};

std::string ThresholdTest::dir_, ThresholdTest::model_,
    ThresholdTest::reluModel_, ThresholdTest::trace_, ThresholdTest::zeroTrace_,
    ThresholdTest::plan_;
std::vector<int32_t> *ThresholdTest::reference_ = nullptr;

// Tests that, on both targets, the trace's thresholds reach its target
// sparsity of 0.5 within 0.1 when generating, that each layer reports its
// threshold, and that the executable says it runs in threshold mode.
TEST_F(ThresholdTest, ReachesTraceTargetSparsity) {
  for (const char *target : {"cpu", "rtx4090"}) {
    CompileArgs args =
        argsFor(target, "threshold", std::string("threshold-") + target);
    ASSERT_EQ(compileModel(args), 0) << target;
    std::string json = runExe(args, generateFlags());
    EXPECT_EQ(jsonInts(json, "tokens").size(), size_t(kTokens)) << json;
    EXPECT_NE(json.find("\"sparsity_mode\":\"threshold\""), std::string::npos)
        << json;
    std::vector<double> thresholds = jsonNumbers(json, "act_threshold");
    ASSERT_EQ(thresholds.size(), 2u) << json;
    for (double t : thresholds)
      EXPECT_GT(t, 0.0) << json;
    double sparsity = lastNumber(json, "sparsity");
    EXPECT_NEAR(sparsity, 0.5, 0.1) << target << "\n" << json;
    std::cerr << target << ": measured sparsity " << sparsity << "\n";
  }
}

// Tests that --target-sparsity other than the trace's recalibrates the
// thresholds on the built-in text, for a low and a high target.
TEST_F(ThresholdTest, TargetSparsityRecalibrates) {
  for (float target : {0.3f, 0.7f}) {
    CompileArgs args = argsFor("cpu", "threshold", "retarget");
    args.targetSparsity = target;
    ASSERT_EQ(compileModel(args), 0) << target;
    std::string json = runExe(args, generateFlags());
    double sparsity = lastNumber(json, "sparsity");
    EXPECT_NEAR(sparsity, target, 0.1) << json;
    std::cerr << "target " << target << ": measured sparsity " << sparsity
              << "\n";
  }
}

// Tests that without a trace the built-in text is profiled at the asked
// target, for the thresholds and the placement alike.
TEST_F(ThresholdTest, ProfilesWithoutTrace) {
  CompileArgs args = argsFor("rtx4090", "threshold", "no-trace");
  args.trace.clear();
  args.plan.clear();
  args.targetSparsity = 0.6f;
  ASSERT_EQ(compileModel(args), 0);
  std::string json = runExe(args, generateFlags());
  EXPECT_NEAR(lastNumber(json, "sparsity"), 0.6, 0.1) << json;
}

// Tests predicted mode on the SiLU model (predictors trained from the
// calibration profile): the executable carries the profile's firing
// thresholds, and --check-sparsity's recall counts the neurons with
// |silu(gate x)| above them that the predictor chose (about the training
// target, 0.9 here), not the share of all (non-zero) neurons chosen (about
// 0.6 here, what counting "non-zero" gave).
TEST_F(ThresholdTest, PredictedRecallUsesFiringThresholds) {
  CompileArgs args = argsFor("cpu", "predicted", "predicted-silu");
  args.trace.clear();
  ASSERT_EQ(compileModel(args), 0);
  std::string json = runExe(args, generateFlags() + " --check-sparsity");
  std::vector<double> thresholds = jsonNumbers(json, "act_threshold");
  ASSERT_EQ(thresholds.size(), 2u) << json;
  for (double t : thresholds)
    EXPECT_GT(t, 0.0) << json;
  std::vector<double> recall = jsonNumbers(json, "recall");
  ASSERT_EQ(recall.size(), 2u) << json;
  std::vector<double> chosen = jsonNumbers(json, "predicted_neurons");
  for (size_t l = 0; l < recall.size(); ++l) {
    EXPECT_GT(recall[l], 0.7) << json;
    EXPECT_LE(recall[l], 1.0) << json;
    std::cerr << "layer " << l << ": recall " << recall[l] << ", chose "
              << chosen[l] << " neuron slots\n";
  }
}

// Tests that every threshold 0 gives exactly the tokens of exact mode and
// of the dense reference, on both targets.
TEST_F(ThresholdTest, ZeroThresholdsMatchExact) {
  for (const char *target : {"cpu", "rtx4090"}) {
    CompileArgs exact =
        argsFor(target, "exact", std::string("exact-") + target);
    ASSERT_EQ(compileModel(exact), 0);
    CompileArgs zero =
        argsFor(target, "threshold", std::string("zero-") + target);
    zero.trace = zeroTrace_;
    ASSERT_EQ(compileModel(zero), 0);
    std::string exactJson = runExe(exact, generateFlags());
    std::string zeroJson = runExe(zero, generateFlags());
    EXPECT_EQ(jsonInts(exactJson, "tokens"), *reference_) << exactJson;
    EXPECT_EQ(jsonInts(zeroJson, "tokens"), *reference_) << zeroJson;
    for (double t : jsonNumbers(zeroJson, "act_threshold"))
      EXPECT_EQ(t, 0.0) << zeroJson;
  }
}

// Tests that perplexity on the calibration text stays finite and within a
// factor 1.25 of dense (measured: about 0.99 at sparsity 0.5 on this model),
// and that --perplexity reports the sparsity it ran at.
TEST_F(ThresholdTest, PerplexityNearDense) {
  const std::string text = PINFER_SOURCE_DIR "/compiler/data/calibration.txt";
  CompileArgs dense = argsFor("cpu", "dense", "ppl-dense");
  ASSERT_EQ(compileModel(dense), 0);
  CompileArgs thr = argsFor("cpu", "threshold", "ppl-threshold");
  ASSERT_EQ(compileModel(thr), 0);
  std::string denseJson = runExe(dense, "--perplexity " + text);
  std::string thrJson = runExe(thr, "--perplexity " + text);
  double pDense = lastNumber(denseJson, "perplexity");
  double pThr = lastNumber(thrJson, "perplexity");
  ASSERT_TRUE(std::isfinite(pDense)) << denseJson;
  ASSERT_TRUE(std::isfinite(pThr)) << thrJson;
  EXPECT_GT(pThr, 0.0);
  EXPECT_LT(pThr / pDense, 1.25) << denseJson << thrJson;
  EXPECT_GT(pThr / pDense, 1 / 1.25) << denseJson << thrJson;
  EXPECT_NEAR(lastNumber(thrJson, "sparsity"), 0.5, 0.1) << thrJson;
  EXPECT_EQ(lastNumber(denseJson, "sparsity"), 0.0) << denseJson;
  std::cerr << "perplexity dense " << pDense << ", threshold " << pThr
            << " at sparsity " << lastNumber(thrJson, "sparsity") << "\n";
}

// Tests that the hot-half kernel carries the layer's threshold and the host
// code the per-layer table.
TEST_F(ThresholdTest, EmittedSourcesCarryThresholds) {
  CompileArgs args = argsFor("rtx4090", "threshold", "emit");
  args.output.clear(); // printed (with -o, --emit writes the file)
  args.emit = "cuda";
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(compileModel(args), 0);
  std::string cuda = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(cuda.find("if (fabsf(a) <= "), std::string::npos) << cuda;
  EXPECT_EQ(cuda.find("if (a == 0.f)"), std::string::npos);
  args.emit = "cpp";
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(compileModel(args), 0);
  std::string cpp = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(cpp.find("l[0].actThreshold = "), std::string::npos);
  EXPECT_NE(cpp.find("l[1].actThreshold = "), std::string::npos);
  EXPECT_NE(cpp.find("pinfer::SparsityMode::Threshold"), std::string::npos);
}

// Tests the mode's errors: a ReLU-family model is refused, as is a target
// sparsity of 1 or more; nothing is written.
TEST_F(ThresholdTest, Errors) {
  CompileArgs args = argsFor("cpu", "threshold", "relu");
  args.model = reluModel_;
  args.trace.clear();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(compileModel(args), 1);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--sparsity threshold: "), std::string::npos) << err;
  EXPECT_NE(err.find("expected a SiLU or GELU model"), std::string::npos) << err;
  struct stat st;
  EXPECT_NE(::stat(args.output.c_str(), &st), 0);

  args = argsFor("cpu", "threshold", "full");
  args.targetSparsity = 1.f;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(compileModel(args), 1);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--target-sparsity: "), std::string::npos) << err;
  EXPECT_NE(::stat(args.output.c_str(), &st), 0);
}

} // namespace
