// End-to-end tests of the compile job: a tiny generated model is compiled
// for a CPU-only target and for a GPU target (whose GPU part runs on the CPU
// where there is no GPU), the executables are run greedily, and their tokens
// are compared with the dense reference token for token, in exact and dense
// sparsity modes. Also the job's errors.
#include "compiler/Compile.h"

#include "compile_test_util.h"

#include "compiler/Profile.h"
#include "compiler/Trace.h"
#include "compiler/placement/Plan.h"
#include "runtime/executor.h"
#include "runtime/generate.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

bool fileExists(const std::string &path) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (f)
    std::fclose(f);
  return f != nullptr;
}

const char *kPrompt = "Once upon a time there was a little";

// What --emit=mlir-scheduled prints for the job `args` describes (its
// output and IR hook cleared); "" when the job fails.
std::string emitScheduled(CompileArgs args) {
  args.output.clear();
  args.loweredIr = nullptr;
  args.emit = "mlir-scheduled";
  std::ostringstream printed;
  std::streambuf *stdoutBuf = std::cout.rdbuf(printed.rdbuf());
  const int rc = compileModel(args);
  std::cout.rdbuf(stdoutBuf);
  return rc == 0 ? printed.str() : "";
}
constexpr int kTokens = 24;

class CompileTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-compile-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    model_ = dir_ + "/tiny.gguf";
    GenModelConfig cfg;
    std::string error;
    ASSERT_TRUE(applyPreset("tiny", cfg, error)) << error;
    cfg.type = GGMLType::Q8_0;
    cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
    GenModelReport report;
    ASSERT_TRUE(generateModel(cfg, model_, report, error)) << error;

    // The dense reference's greedy tokens, and a profile for placement.
    auto model = Model::open(model_, error);
    ASSERT_TRUE(model) << error;
    auto tok = Tokenizer::fromGGUF(model->file(), error);
    ASSERT_TRUE(tok) << error;
    std::vector<int32_t> tokens;
    std::string log;
    ASSERT_TRUE(referenceTokens(*model, *tok, kPrompt, kTokens, tokens, log))
        << log;
    reference_ = new std::vector<int32_t>(tokens);
    ASSERT_EQ(int(reference_->size()), kTokens);
    // The split plan's oracle: its layers' down projections multiply f32.
    ASSERT_TRUE(referenceTokens(*model, *tok, kPrompt, kTokens, tokens, log,
                                allLayersF32Down(*model)))
        << log;
    splitReference_ = new std::vector<int32_t>(tokens);

    Trace trace;
    ProfileOptions popts;
    popts.maxTokens = 256;
    ASSERT_TRUE(profileModel(*model, *tok, modelIdentity(model->file()),
                             std::string(200, ' ') + kPrompt +
                                 " girl who lived in a village near the "
                                 "forest. Every day she walked to the river.",
                             popts, trace, error))
        << error;
    trace_ = dir_ + "/tiny.trace";
    ASSERT_TRUE(writeTrace(trace_, trace, error)) << error;

    plan_ = dir_ + "/split.plan.json";
    ASSERT_TRUE(writeSplitPlan(plan_, trace.modelIdentity, error)) << error;
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + dir_).c_str());
    delete reference_;
    delete splitReference_;
  }

  // Compiles for `target` in `mode`, runs the executable greedily and
  // returns its JSON output.
  std::string compileAndRun(const std::string &target, const std::string &mode,
                            const std::string &plan, std::string &err) {
    CompileArgs args;
    args.model = model_;
    args.target = target;
    args.trace = trace_;
    args.sparsity = mode;
    args.plan = plan;
    args.nCtx = 256;
    args.noZ3 = true;
    args.quiet = true;
    args.output = dir_ + "/exe-" + target + "-" + mode;
    EXPECT_EQ(compileModel(args), 0);
    std::string out;
    EXPECT_EQ(run(args.output + " -p '" + std::string(kPrompt) + "' -n " +
                      std::to_string(kTokens) + " --temp 0 --json -t 2",
                  out, err, dir_),
              0)
        << err;
    return out;
  }

  static std::string dir_, model_, trace_, plan_;
  static std::vector<int32_t> *reference_, *splitReference_;
};

std::string CompileTest::dir_, CompileTest::model_, CompileTest::trace_,
    CompileTest::plan_;
std::vector<int32_t> *CompileTest::reference_ = nullptr;
std::vector<int32_t> *CompileTest::splitReference_ = nullptr;

// Tests that the CPU-only executable gives the reference's greedy tokens in
// exact and dense modes, and reports all neurons on the CPU.
TEST_F(CompileTest, CpuTargetMatchesReference) {
  for (const char *mode : {"exact", "dense"}) {
    std::string err;
    std::string json = compileAndRun("cpu", mode, "", err);
    EXPECT_EQ(jsonInts(json, "tokens"), *reference_) << mode << "\n" << json;
    EXPECT_EQ(sumField(json, "neurons_computed_gpu"), 0) << json;
    // What the object is, and the load time beside the other timings.
    EXPECT_EQ(json.rfind("{\"format\":\"pinferc-generation\",\"version\":1,",
                         0),
              0u)
        << json;
    EXPECT_NE(json.find("\"load_ms\":"), std::string::npos) << json;
    EXPECT_GT(sumField(json, "neurons_computed_cpu"), 0) << json;
    EXPECT_NE(json.find("\"sparsity_mode\":\"" + std::string(mode) + "\""),
              std::string::npos);
  }
}

// Tests that the GPU target, with a plan that splits the layers, gives
// the reference's tokens in both modes (down projections on f32
// activations, as split layers multiply them); without a GPU the hot half runs
// on the CPU and the executable says so once.
TEST_F(CompileTest, GpuTargetMatchesReference) {
  for (const char *mode : {"exact", "dense"}) {
    std::string err;
    std::string json = compileAndRun("rtx4090", mode, plan_, err);
    EXPECT_EQ(jsonInts(json, "tokens"), *splitReference_) << mode << "\n"
                                                          << json;
    // The plan puts part of each layer on the GPU.
    EXPECT_GT(sumField(json, "hot_neurons"), 0) << json;
    EXPECT_GT(sumField(json, "cold_neurons"), 0) << json;
    CudaDriver probe;
    std::string why;
    if (!probe.open(why)) {
      size_t first = err.find("computing the GPU part on the CPU");
      EXPECT_NE(first, std::string::npos) << err;
      EXPECT_EQ(err.find("computing the GPU part on the CPU", first + 1),
                std::string::npos);
      EXPECT_EQ(json.find("\"gpu_image\""), std::string::npos) << json;
    } else {
      // On a GPU the hot half ran there, from the CUBIN where the device
      // runs sm_89 code, else from the PTX.
      EXPECT_NE(json.find("\"gpu_active\":true"), std::string::npos) << json;
      EXPECT_GT(sumField(json, "neurons_computed_gpu"), 0) << json;
      const bool cubin = cubinRunsOn("sm_89", probe.computeCapability());
      EXPECT_NE(json.find(std::string("\"gpu_image\":\"") +
                          (cubin ? "cubin" : "ptx") + "\""),
                std::string::npos)
          << json;
    }
  }
}

// Tests the down projection's input per layer in a GPU program: a layer
// wholly on the CPU quantises it in source blocks (its neurons packed in
// another order), as the reference does; a split layer multiplies f32.
TEST_F(CompileTest, CpuLayerOfAGpuProgramQuantisesItsDownInput) {
  std::string error, log;
  auto model = Model::open(model_, error);
  ASSERT_TRUE(model) << error;
  auto tok = Tokenizer::fromGGUF(model->file(), error);
  ASSERT_TRUE(tok) << error;
  std::vector<int32_t> expected;
  ASSERT_TRUE(
      referenceTokens(*model, *tok, kPrompt, kTokens, expected, log, {0, 1}))
      << log;
  const std::string plan = dir_ + "/cpu-layer.plan.json";
  ASSERT_TRUE(writeSplitPlan(plan, modelIdentity(model->file()), error, false,
                             /*cpuLayer=*/0))
      << error;
  std::string err;
  std::string json = compileAndRun("rtx4090", "exact", plan, err);
  EXPECT_EQ(jsonInts(json, "tokens"), expected) << json;
}

// Tests that exact mode skips work: it computes up and down only for the
// neurons that fired, dense mode for all, and both measure the same
// sparsity.
TEST_F(CompileTest, ExactModeSkipsNeurons) {
  std::string err;
  std::string exact = compileAndRun("cpu", "exact", "", err);
  std::string dense = compileAndRun("cpu", "dense", "", err);
  double nExact = sumField(exact, "neurons_computed_cpu");
  double nDense = sumField(dense, "neurons_computed_cpu");
  EXPECT_GT(nExact, 0);
  EXPECT_LT(nExact, 0.5 * nDense);
  EXPECT_EQ(sumField(exact, "sparsity"), sumField(dense, "sparsity"));
  EXPECT_GT(sumField(exact, "sparsity"), 0.3);
}

// Tests predicted sparsity on a PowerInfer-layout model: the executable
// runs the predictors of the cold half, reports how many neurons they chose
// and, with --measure-recall, how many firing neurons they caught; a model
// without predictors is refused at compile time.
TEST_F(CompileTest, PredictedMode) {
  GenModelConfig cfg;
  std::string error;
  ASSERT_TRUE(applyPreset("tiny", cfg, error)) << error;
  cfg.type = GGMLType::F16;
  cfg.powerInfer = true;
  cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
  GenModelReport report;
  std::string pwri = dir_ + "/tiny-pwri.gguf";
  ASSERT_TRUE(generateModel(cfg, pwri, report, error)) << error;
  // The same split, made for this model: a plan names the model it is for.
  const std::string pwriPlan = dir_ + "/pwri.plan.json";
  {
    auto file = GGUFFile::open(pwri, error);
    ASSERT_TRUE(file) << error;
    ASSERT_TRUE(writeSplitPlan(pwriPlan, modelIdentity(*file), error)) << error;
  }

  for (const char *target : {"cpu", "rtx4090"}) {
    CompileArgs args;
    args.model = pwri;
    args.target = target;
    args.plan = std::string(target) == "cpu" ? "" : pwriPlan;
    args.sparsity = "predicted";
    args.quiet = true;
    args.output = dir_ + "/exe-predicted-" + target;
    std::ostringstream lowered;
    args.loweredIr = &lowered;
    ASSERT_EQ(compileModel(args), 0);
    // --emit=mlir-scheduled shows the IR this compile lowered.
    const std::string emitted = emitScheduled(args);
    EXPECT_EQ(emitted, lowered.str());
    EXPECT_NE(emitted.find("pinfer.predict"), std::string::npos);
    std::string out, err;
    ASSERT_EQ(run(args.output + " -p '" + std::string(kPrompt) + "' -n " +
                      std::to_string(kTokens) +
                      " --temp 0 --json --measure-recall -t 2",
                  out, err, dir_),
              0)
        << err;
    EXPECT_EQ(jsonInts(out, "tokens").size(), size_t(kTokens)) << out;
    // Per layer: tokens evaluated, cold neurons, neurons chosen.
    double tokensPerLayer = sumField(out, "tokens") / 2;
    double coldSlots = sumField(out, "cold_neurons") * tokensPerLayer;
    double chosen = sumField(out, "predicted_neurons");
    EXPECT_GT(chosen, 0) << out;
    // The predictor skips most cold neurons ...
    EXPECT_LT(chosen, 0.5 * coldSlots) << out;
    // ... and catches most of those that fire (planted fidelity 0.9).
    double recall = sumField(out, "recall") / 2;
    EXPECT_GT(recall, 0.8) << out;
    std::cerr << target << ": chosen " << chosen << " of " << coldSlots
              << " cold neuron slots, recall " << recall << "\n";
    EXPECT_LE(recall, 1.0);
  }

  // A model without predictors gets them trained from profiling samples;
  // they are kept beside the executable, and nothing else is.
  CompileArgs args;
  args.model = model_;
  args.target = "cpu";
  args.sparsity = "predicted";
  args.quiet = true;
  args.output = dir_ + "/exe-predicted-trained";
  EXPECT_EQ(compileModel(args), 0);
  EXPECT_TRUE(fileExists(args.output + ".predictors.gguf"));
  for (const char *left : {".with-predictors.tmp.gguf", ".tmp"})
    EXPECT_FALSE(fileExists(args.output + left)) << left;
}

// Tests --emit: the CUDA source of the GPU part and the host C++ are
// printed and nothing is written; a CPU target has no CUDA to emit.
TEST_F(CompileTest, EmitPrintsSources) {
  CompileArgs args;
  args.model = model_;
  args.target = "rtx4090";
  args.plan = plan_;
  args.quiet = true;
  args.emit = "cuda";
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(compileModel(args), 0);
  std::string cuda = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(cuda.find("ffn_hot_l0_gate_up"), std::string::npos);
  EXPECT_NE(cuda.find("kHot = 208"), std::string::npos);

  args.emit = "cpp";
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(compileModel(args), 0);
  std::string cpp = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(cpp.find("int main("), std::string::npos);
  EXPECT_NE(cpp.find("kNeuronIds1[]"), std::string::npos);
  EXPECT_NE(cpp.find("kGpuImage"), std::string::npos);
  // The CUBIN for the target's architecture beside the PTX.
  EXPECT_NE(cpp.find("CUBIN for sm_89"), std::string::npos);
  EXPECT_NE(cpp.find("p.gpuCubin = kGpuCubin;"), std::string::npos);

  args.target = "cpu";
  args.plan.clear();
  args.emit = "cuda";
  EXPECT_EQ(compileModel(args), 1);
}

// Tests that --emit=mlir-scheduled prints the very IR the compile job
// lowers into the executable's program, byte for byte, in each sparsity
// mode on a GPU target (split plan) and on --target cpu (the same IR with
// an all-cold plan); and that the CPU target's IR has no GPU op.
TEST_F(CompileTest, EmitShowsTheIrTheJobLowers) {
  for (const char *target : {"cpu", "rtx4090"})
    for (const char *sparsity : {"dense", "exact"}) {
      SCOPED_TRACE(std::string(target) + " " + sparsity);
      CompileArgs args;
      args.model = model_;
      args.trace = trace_;
      args.target = target;
      args.plan = std::string(target) == "cpu" ? "" : plan_;
      args.sparsity = sparsity;
      args.quiet = true;
      args.output = dir_ + "/exe-ir";
      std::ostringstream lowered;
      args.loweredIr = &lowered;
      ASSERT_EQ(compileModel(args), 0);

      const std::string emitted = emitScheduled(args);
      EXPECT_EQ(emitted, lowered.str());
      EXPECT_NE(emitted.find("pinfer.memory"), std::string::npos);
      EXPECT_EQ(emitted.find("#pinfer.device<gpu>") == std::string::npos,
                std::string(target) == "cpu");
    }
}

// Tests that the weights are found with --weights when moved, and that a
// missing or changed weights file is refused with a one-line error.
TEST_F(CompileTest, ChangedWeightsAreRefused) {
  CompileArgs args;
  args.model = model_;
  args.target = "cpu";
  args.quiet = true;
  args.output = dir_ + "/exe-changed";
  ASSERT_EQ(compileModel(args), 0);
  std::string weights = weightsPathFor(args.output);
  std::string out, err;
  // --weights finds a file that was moved away from the executable.
  std::string moved = dir_ + "/moved.gguf";
  ASSERT_EQ(std::rename(weights.c_str(), moved.c_str()), 0);
  EXPECT_EQ(run(args.output + " -p hi -n 2 --temp 0 --weights " + moved, out,
                err, dir_),
            0)
      << err;
  EXPECT_EQ(run(args.output + " -p hi -n 2", out, err, dir_), 1);
  EXPECT_NE(err.find("not found"), std::string::npos) << err;
  ASSERT_EQ(std::rename(moved.c_str(), weights.c_str()), 0);
  {
    std::fstream f(weights, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x55');
  }
  EXPECT_EQ(run(args.output + " -p hi -n 2 --temp 0", out, err, dir_), 1);
  EXPECT_NE(err.find("content hash"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

// Tests the job's one-line errors: unknown target, a file that is not ours
// in the way of the weights, a missing host compiler.
TEST_F(CompileTest, Errors) {
  CompileArgs args;
  args.model = model_;
  args.output = dir_ + "/exe-err";
  args.quiet = true;
  args.target = "no-such-gpu";
  EXPECT_EQ(compileModel(args), 1);

  args.target = "cpu";
  std::string foreign = weightsPathFor(args.output);
  { std::ofstream(foreign) << "precious"; }
  EXPECT_EQ(compileModel(args), 1);
  EXPECT_EQ(readFile(foreign), "precious");
  std::remove(foreign.c_str());

  ::setenv("CXX", "/nonexistent/c++", 1);
  EXPECT_EQ(compileModel(args), 1);
  ::unsetenv("CXX");
  struct stat st;
  EXPECT_NE(::stat(args.output.c_str(), &st), 0);

  args.sparsity = "sometimes";
  EXPECT_EQ(compileModel(args), 1);

  // --march reaches the host compiler: refused unless it looks like a CPU
  // name, and a name the compiler does not know is one error line naming it.
  args.sparsity = "exact";
  args.march = "x86-64; true";
  testing::internal::CaptureStderr();
  EXPECT_EQ(compileModel(args), 1);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--march: 'x86-64; true' is not a CPU name"),
            std::string::npos)
      << err;
  args.march = "no-such-cpu";
  testing::internal::CaptureStderr();
  EXPECT_EQ(compileModel(args), 1);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("does not accept -march=no-such-cpu"), std::string::npos)
      << err;
  // Found before anything is written.
  EXPECT_NE(::stat(args.output.c_str(), &st), 0);
  EXPECT_NE(::stat(weightsPathFor(args.output).c_str(), &st), 0);
}

} // namespace
