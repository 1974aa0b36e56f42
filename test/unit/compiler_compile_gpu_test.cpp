// End-to-end tests of an executable's GPU path without a GPU: the job
// compiles a tiny generated model for rtx4090 with a plan that splits every
// layer, its emitted CUDA source is built as host C++ (test/cuda_host), and
// the executable runs with the test-only libcuda stand-in on its
// LD_LIBRARY_PATH. Its hot halves then run as kernels through the driver
// calls a GPU would get: uploads, a stream, pinned buffers, asynchronous
// copies, events. Checked: the dense reference's tokens in every sparsity
// mode, nothing leaked, and injected faults (allocation, launch, copy, too
// little memory) each end it with one clear line.
#include "compiler/Compile.h"

#include "compile_test_util.h"
#include "host_kernels.h"

#include "compiler/Profile.h"
#include "compiler/Trace.h"
#include "runtime/gguf.h"
#include "runtime/gpu_attention.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

const char *kPrompt = "Once upon a time there was a little";
constexpr int kTokens = 16;

// The stand-in's counts at exit (driver_standin.cpp, writeReport).
std::map<std::string, long> readReport(const std::string &path) {
  std::map<std::string, long> counts;
  std::istringstream in(readFile(path));
  std::string key;
  long value;
  while (in >> key >> value)
    counts[key] = value;
  return counts;
}

class CompileGpuTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-compile-gpu-test");
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
    auto model = Model::open(model_, error);
    ASSERT_TRUE(model) << error;
    auto tok = Tokenizer::fromGGUF(model->file(), error);
    ASSERT_TRUE(tok) << error;
    std::vector<int32_t> tokens;
    std::string log;
    // Every plan of these tests gives each layer GPU neurons.
    ASSERT_TRUE(referenceTokens(*model, *tok, kPrompt, kTokens, tokens, log,
                                allLayersF32Down(*model)))
        << log;
    reference_ = new std::vector<int32_t>(tokens);
    Trace trace;
    ProfileOptions popts;
    popts.maxTokens = 256;
    ASSERT_TRUE(profileModel(*model, *tok, modelIdentity(model->file()),
                             std::string(kPrompt) +
                                 " girl who lived in a village near the "
                                 "forest. Every day she walked to the river.",
                             popts, trace, error))
        << error;
    trace_ = dir_ + "/tiny.trace";
    ASSERT_TRUE(writeTrace(trace_, trace, error)) << error;
    plan_ = dir_ + "/split.plan.json";
    ASSERT_TRUE(writeSplitPlan(plan_, trace.modelIdentity, error)) << error;
    attnPlan_ = dir_ + "/split-attention.plan.json";
    ASSERT_TRUE(
        writeSplitPlan(attnPlan_, trace.modelIdentity, error, true))
        << error;
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + dir_).c_str());
    delete reference_;
  }

  // Compiles for rtx4090 in `mode` with the split plan, and builds the
  // emitted CUDA source as host kernels; the executable's path.
  // With plan "": the job's own placement, every layer allowed a split.
  static std::string compile(const std::string &mode,
                             const std::string &plan = plan_) {
    return compileModelAs(model_, trace_, mode, plan, mode);
  }
  // The same for any model and trace (""), named by `tag`: dir_/exe-TAG
  // and its kernels dir_/kernels-TAG (runOnStandin's `mode`).
  static std::string compileModelAs(const std::string &model,
                                    const std::string &trace,
                                    const std::string &mode,
                                    const std::string &plan,
                                    const std::string &tag,
                                    std::string *cuda = nullptr) {
    CompileArgs args;
    args.model = model;
    args.target = "rtx4090";
    args.trace = trace;
    args.sparsity = mode;
    args.plan = plan;
    if (plan.empty())
      args.minGranules = 1;
    args.nCtx = 256;
    args.noZ3 = true;
    args.quiet = true;
    args.output = dir_ + "/exe-" + tag;
    EXPECT_EQ(compileModel(args), 0);
    args.output.clear();
    args.emit = "cuda";
    std::ostringstream printed;
    std::streambuf *saved = std::cout.rdbuf(printed.rdbuf());
    EXPECT_EQ(compileModel(args), 0);
    std::cout.rdbuf(saved);
    EXPECT_EQ(buildHostKernels(printed.str(), dir_, "kernels-" + tag), "");
    if (cuda)
      *cuda = printed.str();
    return dir_ + "/exe-" + tag;
  }

  // Runs `exe` greedily through the stand-in with `env` added; its exit
  // status, JSON output, stderr and the stand-in's report.
  int runOnStandin(const std::string &exe, const std::string &mode,
                   const std::string &env, const std::string &flags,
                   std::string &out, std::string &err,
                   std::map<std::string, long> &report,
                   int nTokens = kTokens) {
    const std::string reportPath = dir_ + "/report-" + mode + ".txt";
    std::remove(reportPath.c_str());
    const std::string cmd =
        "env LD_LIBRARY_PATH=" PINFER_CUDA_STANDIN_DIR
        " PINFER_CUDA_STANDIN_KERNELS=" +
        dir_ + "/kernels-" + mode + ".so PINFER_CUDA_STANDIN_REPORT=" +
        reportPath + " " + env + " " + exe + " -p '" + kPrompt + "' -n " +
        std::to_string(nTokens) + " --temp 0 --json -t 2 " + flags;
    const int rc = run(cmd, out, err, dir_);
    report = readReport(reportPath);
    // Whatever the program and its -c, it never holds more device memory
    // than its plan bills (what its start checked was free), the stand-in
    // counting each allocation in whole 2 MiB pages: every buffer is
    // carved from the one reservation of the bill.
    if (rc == 0 && out.find("\"vram_bill_bytes\"") != std::string::npos) {
      const double bill = sumField(out, "vram_bill_bytes");
      if (bill > 0) {
        EXPECT_LE(double(report["peak_device_bytes"]), bill) << cmd;
        // The driver's free memory fell by the reservation, no more.
        EXPECT_EQ(sumField(out, "vram_taken_bytes"), bill) << cmd;
        EXPECT_EQ(sumField(out, "gpu_buffers_beyond_bill"), 0) << cmd;
        EXPECT_GT(sumField(out, "gpu_buffers"), 0) << cmd;
        EXPECT_LE(sumField(out, "gpu_buffers"),
                  double(maxDeviceBuffers(
                      int64_t(jsonNumbers(out, "ffn_hot_device").size()))))
            << cmd;
      }
    }
    return rc;
  }

  // The tiny preset as `cfg` sets it (its type, layout...) in dir_/NAME,
  // and the reference's first `nTokens` tokens for kPrompt; with `plan`,
  // a plan that splits every layer at dir_/PLAN too.
  static void generateTiny(GenModelConfig cfg, const std::string &name,
                           int nTokens, std::vector<int32_t> &reference,
                           const std::string &plan = "", int64_t nEmbd = 0) {
    std::string error;
    ASSERT_TRUE(applyPreset("tiny", cfg, error)) << error;
    if (nEmbd)
      cfg.nEmbd = nEmbd;
    cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
    GenModelReport genReport;
    ASSERT_TRUE(generateModel(cfg, dir_ + "/" + name, genReport, error))
        << error;
    auto m = Model::open(dir_ + "/" + name, error);
    ASSERT_TRUE(m) << error;
    auto tok = Tokenizer::fromGGUF(m->file(), error);
    ASSERT_TRUE(tok) << error;
    std::string log;
    ASSERT_TRUE(referenceTokens(*m, *tok, kPrompt, nTokens, reference, log,
                                allLayersF32Down(*m)))
        << log;
    if (!plan.empty()) {
      ASSERT_TRUE(
          writeSplitPlan(dir_ + "/" + plan, modelIdentity(m->file()), error))
          << error;
    }
  }

  // Runs `exe` with its tiles and with PINFER_GPU_TILES=0: `want`'s tokens
  // both times; a prompt's chunk launches each kernel kind of `kinds` in
  // its tile form (KIND_tiles) and not the one-row kernel, or with the
  // tiles off the other way round, and a generated token the one-row
  // kernel.
  void expectPromptTiles(const std::string &exe, const std::string &tag,
                         const std::vector<int32_t> &want, int nTokens,
                         const std::vector<std::string> &kinds) {
    for (const char *env : {"", "PINFER_GPU_TILES=0"}) {
      SCOPED_TRACE(env);
      std::string out, err;
      std::map<std::string, long> report;
      ASSERT_EQ(runOnStandin(exe, tag, env, "--gpu-profile", out, err, report,
                             nTokens),
                0)
          << err;
      EXPECT_EQ(jsonInts(out, "tokens"), want) << out;
      const bool tiles = *env == 0;
      auto launched = [&](const char *phase, const std::string &kernel) {
        return out.find(std::string("\"phase\":\"") + phase +
                        "\",\"kernel\":\"" + kernel + "\"") !=
               std::string::npos;
      };
      for (const std::string &k : kinds) {
        EXPECT_EQ(launched("prompt", k + gpuattn::kTilesSuffix), tiles)
            << k << "\n"
            << out;
        EXPECT_EQ(launched("prompt", k), !tiles) << k << "\n" << out;
        EXPECT_TRUE(launched("decode", k)) << k << "\n" << out;
      }
    }
  }
  // DenseBlockTypeLayersKeepTheSourceDownRows for one type.
  void expectSourceDownRows(GGMLType type);
  // HalfProductsTakeTilesInAPrompt for one type.
  void expectHalfTiles(GGMLType type);

  static std::string dir_, model_, trace_, plan_, attnPlan_;
  static std::vector<int32_t> *reference_;
};

std::string CompileGpuTest::dir_, CompileGpuTest::model_,
    CompileGpuTest::trace_, CompileGpuTest::plan_, CompileGpuTest::attnPlan_;
std::vector<int32_t> *CompileGpuTest::reference_ = nullptr;

// Tests that the GPU path gives the reference's tokens in dense and exact
// modes (threshold mode's kernels: cuda_gpu_test), with the hot halves
// computed by kernels (a prompt's chunk at once, as token by token), and
// that the
// executable frees what it allocated, unloads its module, releases the
// context and copies asynchronously only from page-locked memory.
TEST_F(CompileGpuTest, StandinRunsTheGpuPath) {
  for (const char *mode : {"dense", "exact"}) {
    SCOPED_TRACE(mode);
    const std::string exe = compile(mode);
    std::string out, err;
    std::map<std::string, long> report;
    ASSERT_EQ(runOnStandin(exe, mode, "", "", out, err, report), 0) << err;
    EXPECT_NE(out.find("\"gpu_active\":true"), std::string::npos) << out;
    // The stand-in is compute capability 8.9: the sm_89 CUBIN runs.
    EXPECT_NE(out.find("\"gpu_image\":\"cubin\""), std::string::npos) << out;
    EXPECT_GT(sumField(out, "neurons_computed_gpu"), 0) << out;
    EXPECT_EQ(jsonInts(out, "tokens"), *reference_) << out;
    // Two kernels per layer and token evaluation (2 layers).
    EXPECT_GE(report["launches"], 4 * kTokens) << out;
    EXPECT_EQ(report["leaked_allocations"], 0);
    EXPECT_EQ(report["leaked_pinned"], 0);
    EXPECT_EQ(report["modules_loaded"], 1);
    EXPECT_EQ(report["modules_unloaded"], 1);
    EXPECT_EQ(report["context_retains"], 0);
    EXPECT_EQ(report["pageable_async_copies"], 0);
    // The prompt's chunk through the hot halves at once gives what token
    // by token (-b 1) gives: the tokens, and per layer the neurons that
    // fired on each device. With --gpu-sync-debug, which checks after each
    // launch that the kernel wrote nothing into the guards after its
    // buffers.
    const std::vector<double> gpuFired =
        jsonNumbers(out, "neurons_computed_gpu");
    const std::vector<double> cpuFired =
        jsonNumbers(out, "neurons_computed_cpu");
    ASSERT_EQ(
        runOnStandin(exe, mode, "", "-b 1 --gpu-sync-debug", out, err, report),
        0)
        << err;
    EXPECT_GE(sumField(out, "gpu_guard_checks"), report["launches"]) << out;
    EXPECT_EQ(jsonInts(out, "tokens"), *reference_) << out;
    EXPECT_EQ(jsonNumbers(out, "neurons_computed_gpu"), gpuFired) << out;
    EXPECT_EQ(jsonNumbers(out, "neurons_computed_cpu"), cpuFired) << out;
  }
}

// Tests a PowerInfer q4_0 file, whose packed down rows stay q4_0 (its own
// ffn_down_t rows): the hot halves' down kernels read those rows on the
// GPU path and the executable gives the reference's tokens.
TEST_F(CompileGpuTest, PowerInferQ4RowsOnTheGpu) {
  GenModelConfig cfg;
  cfg.type = GGMLType::Q4_0;
  cfg.powerInfer = true;
  std::vector<int32_t> reference;
  ASSERT_NO_FATAL_FAILURE(
      generateTiny(cfg, "pwri.gguf", kTokens, reference, "pwri.plan.json"));
  const std::string model = dir_ + "/pwri.gguf";
  std::string error;
  std::string cuda;
  const std::string exe = compileModelAs(
      model, "", "exact", dir_ + "/pwri.plan.json", "pwri", &cuda);
  EXPECT_NE(cuda.find("pf_at_q4_0(row, c + i)"), std::string::npos);
  auto packed = GGUFFile::open(exe + ".weights.gguf", error);
  ASSERT_TRUE(packed) << error;
  const GGUFTensor *downT = packed->tensor("blk.0.ffn_down_t.weight");
  ASSERT_TRUE(downT);
  EXPECT_EQ(downT->type, GGMLType::Q4_0);
  packed.reset();
  std::string out, err;
  std::map<std::string, long> report;
  ASSERT_EQ(runOnStandin(exe, "pwri", "", "", out, err, report), 0) << err;
  EXPECT_NE(out.find("\"gpu_active\":true"), std::string::npos) << out;
  EXPECT_GT(sumField(out, "neurons_computed_gpu"), 0) << out;
  EXPECT_EQ(jsonInts(out, "tokens"), reference) << out;
}

// Tests a model whose output is tied to token_embd, whole on the GPU: the
// head's matrix is the embedding table, so each token goes up as its id and
// the embed_gather kernel writes its row; the CPU reads no weight byte, and
// the tokens are the reference's, prompt in one chunk or token by token.
TEST_F(CompileGpuTest, TiedEmbeddingGatheredOnTheGpu) {
  GenModelConfig cfg;
  cfg.type = GGMLType::Q8_0;
  cfg.tiedOutput = true;
  constexpr int kFew = 4;
  std::vector<int32_t> reference;
  ASSERT_NO_FATAL_FAILURE(generateTiny(cfg, "tied.gguf", kFew, reference));
  const std::string model = dir_ + "/tied.gguf";
  {
    std::string error;
    auto f = GGUFFile::open(model, error);
    ASSERT_TRUE(f) << error;
    ASSERT_EQ(f->tensor("output.weight"), nullptr);
  }
  std::string cuda;
  const std::string exe = compileModelAs(model, "", "dense", "", "tied", &cuda);
  EXPECT_NE(cuda.find(gpuattn::kEmbedGather), std::string::npos);
  for (const char *batch : {"", "-b 1"}) {
    SCOPED_TRACE(batch);
    std::string out, err;
    std::map<std::string, long> report;
    ASSERT_EQ(runOnStandin(exe, "tied", "", std::string("--verbose ") + batch,
                           out, err, report, kFew),
              0)
        << err;
    EXPECT_EQ(jsonInts(out, "tokens"), reference) << out;
    EXPECT_NE(err.find("steps layer 1: attn_norm@gpu"), std::string::npos)
        << err;
    EXPECT_EQ(sumField(out, "cpu_weight_bytes_per_token"), 0) << out;
    EXPECT_GT(sumField(out, "gpu_weight_bytes_per_token"), 1 << 20) << out;
    EXPECT_EQ(report["leaked_allocations"], 0);
  }
  // The CPU path of the same executable gives them too.
  std::string out, err;
  std::map<std::string, long> report;
  ASSERT_EQ(runOnStandin(exe, "tied", "", "--cpu", out, err, report, kFew), 0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"), reference) << out;
}

// Tests that a dense layer of a block type wholly on the GPU keeps the
// source's down rows (DownLayout::Source: a matvec over n_embd rows of
// q4_K, where the neuron-major rows would be a byte a weight, 7x the bytes;
// of q4_0, the same bytes as its split rows, multiplied as the reference
// multiplies them and on tensor cores in a prompt), packs at the source's
// size, and gives the reference's tokens on the GPU path and its CPU path.
TEST_F(CompileGpuTest, DenseBlockTypeLayersKeepTheSourceDownRows) {
  for (GGMLType type : {GGMLType::Q4_K, GGMLType::Q4_0})
    ASSERT_NO_FATAL_FAILURE(expectSourceDownRows(type));
}

void CompileGpuTest::expectSourceDownRows(GGMLType type) {
  SCOPED_TRACE(typeName(type));
  const std::string name = std::string("dense_") + typeName(type);
  GenModelConfig cfg;
  cfg.type = type;
  cfg.activation = FfnActivation::SiLU;
  constexpr int kFew = 4;
  std::vector<int32_t> reference;
  std::string error;
  // n_embd 256: a q4_K block along each row.
  ASSERT_NO_FATAL_FAILURE(
      generateTiny(cfg, name + ".gguf", kFew, reference, "", 256));
  const std::string model = dir_ + "/" + name + ".gguf";
  std::string cuda;
  const std::string exe = compileModelAs(model, "", "dense", "", name, &cuda);
  EXPECT_NE(cuda.find(std::string("down projection: the source's ") +
                      typeName(type) + " rows"),
            std::string::npos);
  // Which multiply the 8-bit values of gate and up's products.
  EXPECT_NE(cuda.find(gpuattn::downQuantKernelName(0) + "("),
            std::string::npos);
  auto packed = GGUFFile::open(exe + ".weights.gguf", error);
  ASSERT_TRUE(packed) << error;
  EXPECT_NE(packed->tensor("blk.0.ffn_down.weight"), nullptr);
  EXPECT_EQ(packed->tensor("blk.0.ffn_down_t.weight"), nullptr);
  // The CPU path multiplies the source rows with the reference's own
  // product (sourceDown), the GPU path with dp4a over the same 8-bit
  // activations: both the plain reference's tokens (down products over
  // gate and up's 8-bit values), not those of f32 down activations, which
  // the split layouts' rows take.
  auto m = Model::open(model, error);
  ASSERT_TRUE(m) << error;
  auto tok = Tokenizer::fromGGUF(m->file(), error);
  ASSERT_TRUE(tok) << error;
  std::vector<int32_t> plain;
  std::string log;
  ASSERT_TRUE(referenceTokens(*m, *tok, kPrompt, kFew, plain, log)) << log;
  for (const char *flags : {"--verbose", "--cpu"}) {
    SCOPED_TRACE(flags);
    std::string out, err;
    std::map<std::string, long> report;
    ASSERT_EQ(runOnStandin(exe, name, "", flags, out, err, report, kFew), 0)
        << err;
    EXPECT_EQ(jsonInts(out, "tokens"), plain) << out;
    EXPECT_EQ(report["leaked_allocations"], 0);
  }
  // A prompt's chunk takes the down rows' tensor-core form (rtx4090:
  // sm_89), a generated token the matvec; PINFER_GPU_TILES=0 the matvec
  // for both, with the same tokens.
  expectPromptTiles(exe, name, plain, kFew, {"ffn_hot_down"});
}

// Tests that an f16 (and a bf16) model's attention projections and gate/up
// pairs take their tensor-core form in a prompt (parts of the f32
// activations in the rows' type, mma.m16n8k16) and a generated token the
// one-row kernels, with the reference's tokens, and that
// PINFER_GPU_TILES=0 leaves the prompt on the one-row kernels.
TEST_F(CompileGpuTest, HalfProductsTakeTilesInAPrompt) {
  for (GGMLType type : {GGMLType::F16, GGMLType::BF16})
    ASSERT_NO_FATAL_FAILURE(expectHalfTiles(type));
}

void CompileGpuTest::expectHalfTiles(GGMLType type) {
  SCOPED_TRACE(typeName(type));
  const std::string name = typeName(type);
  GenModelConfig cfg;
  cfg.type = type;
  cfg.activation = FfnActivation::SiLU;
  constexpr int kFew = 4;
  std::vector<int32_t> reference;
  ASSERT_NO_FATAL_FAILURE(generateTiny(cfg, name + ".gguf", kFew, reference));
  std::string cuda;
  const std::string exe =
      compileModelAs(dir_ + "/" + name + ".gguf", "", "dense", "", name, &cuda);
  EXPECT_NE(cuda.find("attn_l0_wq_tiles("), std::string::npos);
  EXPECT_NE(cuda.find("ffn_hot_l0_gate_up_tiles("), std::string::npos);
  expectPromptTiles(
      exe, name, reference, kFew,
      {"attn_wq", "attn_wk", "attn_wv", "attn_wo", "ffn_hot_gate_up"});
}

// Tests K-quant layers split between the devices (exact mode): the packed
// down projection is SplitK's (i8 quants, the groups' scales and mins, the
// blocks' d and dm), the hot halves' kernels decode it on the GPU path and
// the CPU halves multiply it by groups, and the executable gives the
// reference's tokens, a prompt's chunk at once as token by token.
TEST_F(CompileGpuTest, SplitKQuantLayersTakeSplitKRows) {
  GenModelConfig cfg;
  cfg.type = GGMLType::Q4_K;
  constexpr int kFew = 6;
  std::vector<int32_t> reference;
  ASSERT_NO_FATAL_FAILURE(generateTiny(cfg, "ksplit.gguf", kFew, reference,
                                       "ksplit.plan.json", 256));
  std::string error, cuda;
  const std::string exe =
      compileModelAs(dir_ + "/ksplit.gguf", "", "exact",
                     dir_ + "/ksplit.plan.json", "ksplit", &cuda);
  EXPECT_NE(cuda.find("q4_K split: w = (d * sc) * q + dm * m"),
            std::string::npos);
  auto packed = GGUFFile::open(exe + ".weights.gguf", error);
  ASSERT_TRUE(packed) << error;
  const struct {
    const char *name;
    GGMLType type;
    int64_t ne1;
  } tables[] = {{"blk.0.ffn_down_t.weight", GGMLType::I8, 512},
                {"blk.0.ffn_down_s.weight", GGMLType::I8, 512 / 32},
                {"blk.0.ffn_down_m.weight", GGMLType::I8, 512 / 32},
                {"blk.0.ffn_down_d.weight", GGMLType::F32, 512 / 256},
                {"blk.0.ffn_down_dm.weight", GGMLType::F32, 512 / 256}};
  for (const auto &t : tables) {
    const GGUFTensor *got = packed->tensor(t.name);
    ASSERT_TRUE(got) << t.name;
    EXPECT_EQ(got->type, t.type) << t.name;
    EXPECT_EQ(got->ne[0], 256) << t.name;
    EXPECT_EQ(got->ne[1], t.ne1) << t.name;
  }
  packed.reset();
  for (const char *flags : {"--gpu-sync-debug", "-b 1 --gpu-sync-debug"}) {
    SCOPED_TRACE(flags);
    std::string out, err;
    std::map<std::string, long> report;
    ASSERT_EQ(runOnStandin(exe, "ksplit", "", flags, out, err, report, kFew), 0)
        << err;
    EXPECT_EQ(jsonInts(out, "tokens"), reference) << out;
    EXPECT_GT(sumField(out, "neurons_computed_gpu"), 0) << out;
    EXPECT_GT(sumField(out, "neurons_computed_cpu"), 0) << out;
    // The tables and each hot neuron's id and place are billed as taken.
    EXPECT_EQ(sumField(out, "vram_taken_bytes"),
              sumField(out, "vram_bill_bytes"))
        << out;
    EXPECT_EQ(sumField(out, "gpu_buffers_beyond_bill"), 0) << out;
    EXPECT_EQ(report["leaked_allocations"], 0);
  }
}

// Tests that with attention on the GPU (the plan puts each layer's there,
// with its KV cache) the executable runs the attention kernels, reads no
// attention weight on the CPU and still gives the reference's tokens.
TEST_F(CompileGpuTest, AttentionRunsOnTheGpu) {
  const std::string exe = compile("exact", attnPlan_);
  std::string out, err;
  std::map<std::string, long> report;
  ASSERT_EQ(runOnStandin(exe, "exact", "", "--verbose", out, err, report), 0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"), *reference_) << out;
  EXPECT_NE(err.find("attn_norm attention@gpu attn_add"), std::string::npos)
      << err;
  // Per layer and token: 6 attention kernels (Q8_0: and the quantisation
  // of the output projection's input) and the FFN's 2.
  EXPECT_GE(report["launches"], 2 * 9 * kTokens) << out;
  EXPECT_EQ(report["leaked_allocations"], 0);
  EXPECT_EQ(report["pageable_async_copies"], 0);
  // A prompt of 5 x 9 tokens in one chunk of the host's (-b 64), which the
  // GPU's attention takes in parts of 32 and 13, against token by token:
  // the same tokens and, per layer, the same neurons fired on each device.
  std::string longPrompt;
  for (int i = 0; i < 5; ++i)
    longPrompt += std::string(i ? " " : "") + kPrompt;
  std::vector<std::string> outs;
  for (const char *batch : {"-b 64", "-b 1"}) {
    ASSERT_EQ(runOnStandin(exe, "exact", "", "-p '" + longPrompt + "' " + batch,
                           out, err, report, 4),
              0)
        << err;
    outs.push_back(out);
  }
  EXPECT_GT(sumField(outs[0], "prompt_tokens"), 32) << outs[0];
  EXPECT_EQ(jsonInts(outs[0], "tokens"), jsonInts(outs[1], "tokens"));
  for (const char *key : {"neurons_computed_gpu", "neurons_computed_cpu"})
    EXPECT_EQ(jsonNumbers(outs[0], key), jsonNumbers(outs[1], key)) << key;
  // The same executable without the GPU runs attention on the CPU.
  ASSERT_EQ(runOnStandin(exe, "exact", "", "--cpu", out, err, report), 0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"), *reference_) << out;
}

// Tests predicted mode with each hot half's own predictor on the GPU (a
// PowerInfer file and its predictors): the steps put a predict step on each
// device, the emitted module has the predictor kernels, and the executable
// gives the tokens of its CPU twin (--cpu: the same steps on the host, the
// GPU half's predictor among them), a prompt's chunk as token by token, for
// a split plan and for the whole model on the GPU (the residual stream
// there too, decoded tokens as CUDA graphs).
TEST_F(CompileGpuTest, PredictorsRunOnTheGpu) {
  GenModelConfig cfg;
  std::string error;
  ASSERT_TRUE(applyPreset("tiny", cfg, error)) << error;
  cfg.type = GGMLType::Q8_0;
  cfg.powerInfer = true;
  cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
  const std::string model = dir_ + "/pwri-pred.gguf";
  GenModelReport genReport;
  ASSERT_TRUE(generateModel(cfg, model, genReport, error)) << error;
  {
    auto m = Model::open(model, error);
    ASSERT_TRUE(m) << error;
    ASSERT_TRUE(writeSplitPlan(dir_ + "/pwri-pred.plan.json",
                               modelIdentity(m->file()), error))
        << error;
  }
  struct {
    const char *tag, *plan, *steps;
    int tokens;
  } runs[] = {
      {"pred-split", "pwri-pred.plan.json",
       "ffn_norm transfer@gpu predict@gpu ffn_half@gpu transfer@cpu record "
       "predict@cpu ffn_half@cpu wait merge ffn_add",
       kTokens},
      // The head's 32,000 rows are most of the stand-in's work: few tokens.
      {"pred-whole", "", "ffn_norm@gpu predict@gpu ffn_half@gpu ffn_add@gpu",
       4}};
  for (const auto &r : runs) {
    SCOPED_TRACE(r.tag);
    std::string cuda;
    const std::string exe =
        compileModelAs(model, "", "predicted",
                       *r.plan ? dir_ + "/" + r.plan : "", r.tag, &cuda);
    EXPECT_NE(cuda.find("ffn_pred_l0_fc1"), std::string::npos);
    EXPECT_NE(cuda.find("ffn_pred_l1_fc1"), std::string::npos);
    std::string out, err;
    std::map<std::string, long> report;
    ASSERT_EQ(
        runOnStandin(exe, r.tag, "", "--verbose", out, err, report, r.tokens),
        0)
        << err;
    EXPECT_NE(err.find(r.steps), std::string::npos) << err;
    EXPECT_NE(out.find("\"gpu_active\":true"), std::string::npos) << out;
    EXPECT_EQ(report["leaked_allocations"], 0);
    EXPECT_EQ(report["pageable_async_copies"], 0);
    const std::vector<int32_t> tokens = jsonInts(out, "tokens");
    const std::vector<double> gpuFired =
        jsonNumbers(out, "neurons_computed_gpu");
    EXPECT_GT(sumField(out, "neurons_computed_gpu"), 0) << out;
    // Per layer, the neurons both halves' predictors chose (the GPU's
    // counted by its pick kernel): at least those that ran.
    const std::vector<double> chosen = jsonNumbers(out, "predicted_neurons");
    const std::vector<double> cpuRan = jsonNumbers(out, "neurons_computed_cpu");
    ASSERT_EQ(chosen.size(), gpuFired.size()) << out;
    for (size_t l = 0; l < chosen.size(); ++l)
      EXPECT_GE(chosen[l], gpuFired[l] + cpuRan[l]) << "layer " << l;
    // Token by token, each launch's buffer guards checked.
    ASSERT_EQ(runOnStandin(exe, r.tag, "", "-b 1 --gpu-sync-debug", out, err,
                           report, r.tokens),
              0)
        << err;
    EXPECT_GE(sumField(out, "gpu_guard_checks"), report["launches"]) << out;
    EXPECT_EQ(jsonInts(out, "tokens"), tokens) << out;
    EXPECT_EQ(jsonNumbers(out, "neurons_computed_gpu"), gpuFired) << out;
    EXPECT_EQ(jsonNumbers(out, "predicted_neurons"), chosen) << out;
    ASSERT_EQ(runOnStandin(exe, r.tag, "", "--cpu", out, err, report, r.tokens),
              0)
        << err;
    EXPECT_EQ(jsonInts(out, "tokens"), tokens) << out;
    // The CPU's predictors choose the same neurons.
    EXPECT_EQ(jsonNumbers(out, "predicted_neurons"), chosen) << out;
  }
}

void expectOneLine(const std::string &stderrText, const std::string &exe);

// Tests that where the whole model fits (the job's own placement on a
// 24 GiB target), attention, every FFN neuron and the output head run on
// the GPU: the CPU reads only the token's embedding row, and the tokens
// are the reference's. The residual stream stays there too: norms and adds
// are GPU steps, and the host waits once per token (not after each
// attention and FFN), and a decoded token is one CUDA graph launch.
TEST_F(CompileGpuTest, WholeModelOnTheGpu) {
  const std::string exe = compile("exact", "");
  std::string out, err;
  std::map<std::string, long> report;
  // A few tokens: the head's 32,000 rows are most of the work through the
  // stand-in's fibers.
  constexpr int kFew = 4;
  auto expectReferenceTokens = [&] {
    EXPECT_EQ(
        jsonInts(out, "tokens"),
        std::vector<int32_t>(reference_->begin(), reference_->begin() + kFew))
        << out;
  };
  ASSERT_EQ(
      runOnStandin(exe, "exact", "", "--verbose", out, err, report, kFew), 0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"),
            std::vector<int32_t>(reference_->begin(),
                                 reference_->begin() + kFew))
      << out;
  EXPECT_NE(out.find("\"output_head_device\":\"gpu\""), std::string::npos)
      << out;
  EXPECT_EQ(sumField(out, "cold_neurons"), 0) << out;
  EXPECT_LT(sumField(out, "cpu_weight_bytes_per_token"), 1024) << out;
  EXPECT_GT(sumField(out, "gpu_weight_bytes_per_token"), 1 << 20) << out;
  EXPECT_EQ(report["leaked_allocations"], 0);
  EXPECT_NE(err.find("steps layer 1: attn_norm@gpu attention@gpu "
                     "attn_add@gpu ffn_norm@gpu ffn_half@gpu ffn_add@gpu"),
            std::string::npos)
      << err;
  // The prompt (9 tokens) goes as one chunk, then one wait per token (and
  // one at exit).
  const long evals = sumField(out, "gen_evals");
  EXPECT_EQ(report["host_waits"], 1 + evals + 1) << out;
  EXPECT_EQ(report["pageable_async_copies"], 0);
  // A decoded token is one graph launch: its kernels were launched one by
  // one only while the graph was captured.
  EXPECT_EQ(sumField(out, "gpu_graph_captures"), 1) << out;
  EXPECT_EQ(sumField(out, "gpu_graph_launches"), evals) << out;
  EXPECT_EQ(report["graph_launches"], evals);
  EXPECT_EQ(report["leaked_graph_execs"], 0);
  const long graphed = report["launches"];
  // Per layer, the hot neurons that fired over every token: any change in
  // any token's FFN input moves them.
  const std::vector<double> fired = jsonNumbers(out, "neurons_computed_gpu");

  // The prompt in chunks of 4, 4 and 1 tokens, and token by token (-b 1:
  // each prompt token a graph of its own kind): the same tokens and the
  // same neurons fired, since each kernel computes a chunk's tokens as it
  // computes one.
  for (const char *batch : {"-b 4", "-b 1"}) {
    SCOPED_TRACE(batch);
    ASSERT_EQ(runOnStandin(exe, "exact", "", batch, out, err, report, kFew), 0)
        << err;
    EXPECT_EQ(
        jsonInts(out, "tokens"),
        std::vector<int32_t>(reference_->begin(), reference_->begin() + kFew))
        << out;
    EXPECT_EQ(jsonNumbers(out, "neurons_computed_gpu"), fired) << out;
  }
  // Three kinds of graph with -b 1: a prompt token without logits, the
  // last one with them all, a generated token with the head's best only.
  EXPECT_EQ(sumField(out, "gpu_graph_captures"), 3) << out;
  EXPECT_EQ(report["host_waits"], sumField(out, "prompt_tokens") + evals + 1)
      << out;

  // The bill follows the run's -c, not the compile's (256): the KV caches
  // and attention scratch of a longer context are billed, checked against
  // free VRAM and held (runOnStandin checks the peak against the bill at
  // each -c); a card with room for a short context only refuses a long
  // one, saying what would fit.
  ASSERT_EQ(runOnStandin(exe, "exact", "", "-c 64", out, err, report, kFew), 0)
      << err;
  expectReferenceTokens();
  const double shortBill = sumField(out, "vram_bill_bytes");
  ASSERT_EQ(runOnStandin(exe, "exact", "", "-c 8192", out, err, report, kFew),
            0)
      << err;
  expectReferenceTokens();
  const double longBill = sumField(out, "vram_bill_bytes");
  EXPECT_GT(longBill, shortBill);
  const std::string room =
      "PINFER_CUDA_STANDIN_VRAM_MIB=" + std::to_string(long(shortBill) >> 20);
  ASSERT_NE(runOnStandin(exe, "exact", room, "-c 8192", out, err, report, kFew),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("MiB at -c 8192"), std::string::npos) << err;
  EXPECT_NE(err.find("(a smaller -c needs less)"), std::string::npos) << err;
  ASSERT_EQ(runOnStandin(exe, "exact", room, "-c 64", out, err, report, kFew),
            0)
      << err;
  expectReferenceTokens();

  // Launched one by one: the same tokens, every kernel of every token.
  ASSERT_EQ(runOnStandin(exe, "exact", "PINFER_CUDA_GRAPHS=0", "", out, err,
                         report, kFew),
            0)
      << err;
  expectReferenceTokens();
  EXPECT_EQ(sumField(out, "gpu_graph_launches"), 0) << out;
  EXPECT_EQ(report["graph_launches"], 0);
  EXPECT_GT(report["launches"], graphed) << graphed;
  const long oneByOne = report["launches"];

  // --gpu-profile: the same kernels, one by one between timing events, and
  // the same tokens; the table counts every launch, by phase and kind.
  ASSERT_EQ(
      runOnStandin(exe, "exact", "", "--gpu-profile", out, err, report, kFew),
      0)
      << err;
  expectReferenceTokens();
  EXPECT_EQ(report["graph_launches"], 0);
  EXPECT_EQ(report["launches"], oneByOne);
  EXPECT_EQ(sumField(out, "launches"), oneByOne) << out;
  const long layers = long(jsonNumbers(out, "hot_neurons").size());
  auto launchesOf = [&](const char *phase, const char *kernel) {
    std::smatch m;
    const std::regex row(std::string("\"phase\":\"") + phase +
                         "\",\"kernel\":\"" + kernel +
                         "\",\"launches\":([0-9]+),\"ms\":[-0-9.e+]+"
                         "(,\"bytes\":([0-9]+))?");
    if (!std::regex_search(out, m, row))
      return std::make_pair(-1L, -1L);
    return std::make_pair(std::stol(m[1]), m[3].matched ? std::stol(m[3]) : 0L);
  };
  // The prompt is one chunk: each layer's projections once (their tensor-
  // core form: Q8_0 rows for sm_89); a generated token, once per layer.
  const auto promptWq = launchesOf("prompt", "attn_wq_tiles");
  EXPECT_EQ(launchesOf("prompt", "attn_wq").first, -1) << out;
  const auto decodeWq = launchesOf("decode", "attn_wq");
  EXPECT_EQ(promptWq.first, layers) << out;
  EXPECT_EQ(decodeWq.first, layers * evals) << out;
  // Each launch reads the layer's whole matrix, whatever its tokens.
  EXPECT_GT(promptWq.second, 0) << out;
  EXPECT_EQ(decodeWq.second, promptWq.second * evals) << out;
  EXPECT_EQ(launchesOf("decode", "lm_head").first, evals) << out;
  EXPECT_NE(err.find("GPU kernels: " + std::to_string(oneByOne) + " launches"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("decode  attn_wq"), std::string::npos) << err;
  // PINFER_GPU_TILES=0: the prompt's chunk through the one-row kernels,
  // the same tokens.
  ASSERT_EQ(runOnStandin(exe, "exact", "PINFER_GPU_TILES=0", "--gpu-profile",
                         out, err, report, kFew),
            0)
      << err;
  expectReferenceTokens();
  EXPECT_EQ(launchesOf("prompt", "attn_wq").first, layers) << out;
  EXPECT_EQ(launchesOf("prompt", "attn_wq_tiles").first, -1) << out;
  // With --gpu-sync-debug as well: a wait after each launch, every time
  // read, the same tokens, and no kernel wrote into the guards after the
  // buffers it was given.
  ASSERT_EQ(runOnStandin(exe, "exact", "", "--gpu-profile --gpu-sync-debug",
                         out, err, report, kFew),
            0)
      << err;
  expectReferenceTokens();
  EXPECT_EQ(sumField(out, "launches"), oneByOne) << out;
  EXPECT_GE(sumField(out, "gpu_guard_checks"), oneByOne) << out;

  // A driver that refuses the graph: one note, then the same tokens with
  // the kernels launched one by one.
  ASSERT_EQ(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_FAIL=graph=1", "",
                         out, err, report, kFew),
            0)
      << err;
  expectReferenceTokens();
  EXPECT_NE(err.find("cuGraphInstantiateWithFlags failed: out of memory; "
                     "launching kernels one by one"),
            std::string::npos)
      << err;
  EXPECT_EQ(report["graph_launches"], 0);

  // A kernel fault (the third launch, in the prompt's chunk) names the
  // kernels launched since the last wait.
  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_FAIL=launch=3", "",
                         out, err, report, kFew),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("unspecified launch failure"), std::string::npos) << err;
  EXPECT_NE(err.find("kernel attn_l0_wv_tiles (layer 0)"), std::string::npos)
      << err;

  // Without the GPU the same steps run on the host, with the same tokens.
  ASSERT_EQ(runOnStandin(exe, "exact", "", "--cpu", out, err, report, kFew),
            0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"),
            std::vector<int32_t>(reference_->begin(),
                                 reference_->begin() + kFew))
      << out;
}

// Tests that a head on the GPU chooses the best logits there when the
// sampler needs only those (top-k, a repetition penalty, banned
// end-of-generation tokens): the same tokens as with every logit brought
// back (PINFER_DEVICE_SAMPLING=0), for less than half the bytes copied
// down, and greedy decoding keeps the reference's tokens (above).
TEST_F(CompileGpuTest, HeadChoosesOnTheGpu) {
  const std::string exe = compile("exact", "");
  constexpr int kFew = 4;
  const std::string flags =
      "--temp 0.9 --top-k 40 --repeat-penalty 1.5 --seed 7 --ignore-eos";
  std::string out, err;
  std::map<std::string, long> chosen, all;
  ASSERT_EQ(runOnStandin(exe, "exact", "", flags, out, err, chosen, kFew), 0)
      << err;
  const std::vector<int32_t> tokens = jsonInts(out, "tokens");
  ASSERT_EQ(tokens.size(), size_t(kFew)) << out;
  EXPECT_EQ(sumField(out, "gpu_graph_captures"), 1) << out;
  ASSERT_EQ(runOnStandin(exe, "exact", "PINFER_DEVICE_SAMPLING=0", flags, out,
                         err, all, kFew),
            0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"), tokens) << out;
  EXPECT_GT(chosen["bytes_down"], 0);
  EXPECT_LT(2 * chosen["bytes_down"], all["bytes_down"])
      << chosen["bytes_down"] << " vs " << all["bytes_down"];
  EXPECT_EQ(chosen["leaked_allocations"], 0);
  EXPECT_EQ(chosen["pageable_async_copies"], 0);
  // Without the GPU: the same tokens from the CPU's logits.
  ASSERT_EQ(
      runOnStandin(exe, "exact", "", flags + " --cpu", out, err, all, kFew), 0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"), tokens) << out;
}

// Tests that a device that cannot run the CUBIN gets the PTX, with the
// same tokens.
TEST_F(CompileGpuTest, OlderDeviceLoadsThePtx) {
  const std::string exe = compile("exact");
  std::string out, err;
  std::map<std::string, long> report;
  ASSERT_EQ(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_CC=80", "", out,
                         err, report),
            0)
      << err;
  EXPECT_NE(out.find("\"gpu_image\":\"ptx\""), std::string::npos) << out;
  EXPECT_EQ(jsonInts(out, "tokens"), *reference_) << out;
}

// One line on stderr, naming the executable (AddressSanitizer's note on
// the fibers of the host-built kernels, "==PID==WARNING: ...", aside).
void expectOneLine(const std::string &stderrText, const std::string &exe) {
  std::string err;
  std::istringstream in(stderrText);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("==", 0) != 0)
      err += line + "\n";
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(err.rfind(exe.substr(exe.rfind('/') + 1) + ": ", 0), 0u) << err;
}

// Tests that injected faults end the run with one line that says what
// failed: an allocation names the bill and the free memory; a kernel fault
// names the kernels and layer since the last synchronisation, and the one
// kernel under --gpu-sync-debug.
TEST_F(CompileGpuTest, FaultsEndWithOneClearLine) {
  const std::string exe = compile("exact");
  std::string out, err;
  std::map<std::string, long> report;

  // The executable's one device allocation, its bill (every buffer is
  // carved from it), fails despite the free memory its start saw.
  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_FAIL=alloc=1", "",
                         out, err, report),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("out of GPU memory on pinfer host stand-in"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("the plan for rtx4090 needs"), std::string::npos) << err;
  EXPECT_NE(err.find("MiB were free at start"), std::string::npos) << err;
  EXPECT_EQ(report["leaked_allocations"], 0) << err;

  // The prompt goes as one chunk: launches 1 and 2 are layer 0's gate/up
  // (its tensor-core form: Q8_0 rows for sm_89) and down kernels over its
  // tokens. The fault surfaces at the layer's wait, which names both ...
  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_FAIL=launch=2", "",
                         out, err, report),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("unspecified launch failure"), std::string::npos) << err;
  EXPECT_NE(err.find("kernel ffn_hot_l0_gate_up_tiles (layer 0), kernel "
                     "ffn_hot_l0_down (layer 0)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("--gpu-sync-debug"), std::string::npos) << err;
  // ... and --gpu-sync-debug the one that failed.
  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_FAIL=launch=2",
                         "--gpu-sync-debug", out, err, report),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("in the GPU work of kernel ffn_hot_l0_down (layer 0)"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("gate_up"), std::string::npos) << err;

  // A kernel that writes one byte past its buffer: --gpu-sync-debug's
  // guard after that buffer names it, the buffer and the byte.
  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_FAIL=overrun=2",
                         "--gpu-sync-debug", out, err, report),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("kernel ffn_hot_l0_down (layer 0) wrote outside its "
                     "device buffers: byte 0 of the guard after the "),
            std::string::npos)
      << err;
  EXPECT_EQ(report["leaked_allocations"], 0) << err;

  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_FAIL=copy=1", "",
                         out, err, report),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("cuMemcpyHtoD failed"), std::string::npos) << err;

  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_VRAM_MIB=0", "",
                         out, err, report),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("not enough free VRAM on pinfer host stand-in"),
            std::string::npos)
      << err;

  // Without the kernels the module does not load: one line, and --cpu
  // still runs.
  ASSERT_NE(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_KERNELS=", "", out,
                         err, report),
            0);
  expectOneLine(err, exe);
  EXPECT_NE(err.find("cuModuleLoadData failed"), std::string::npos) << err;
  ASSERT_EQ(runOnStandin(exe, "exact", "PINFER_CUDA_STANDIN_KERNELS=", "--cpu",
                         out, err, report),
            0)
      << err;
  EXPECT_EQ(jsonInts(out, "tokens"), *reference_) << out;
}

} // namespace
