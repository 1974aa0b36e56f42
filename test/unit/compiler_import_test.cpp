// Tests GGUF -> ModelSpec -> dense IR import and the registered pipelines
// driven from C++ (the path pinferc takes), including a 7B-like shape.

#include "compiler/Import.h"
#include "compiler/InitAll.h"
#include "compiler/ModelSpec.h"
#include "compiler/Pipeline.h"
#include "compiler/placement/Plan.h"
#include "dialects/PInfer/IR/PInferOps.h"
#include "runtime/gguf.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <sstream>

using namespace pinfer;

namespace {

// A 2-layer LLaMA-shaped file with zero weights: only names, types and
// shapes matter to the import.
std::string writeTinyModel(const std::string &name, bool withOutput,
                           bool dropDown) {
  const int nEmbd = 64, nFF = 128, nVocab = 32, nLayer = 2;
  GGUFWriter w;
  w.setString("general.architecture", "llama");
  w.setU32("llama.embedding_length", nEmbd);
  w.setU32("llama.feed_forward_length", nFF);
  w.setU32("llama.block_count", nLayer);
  w.setU32("llama.attention.head_count", 4);
  w.setU32("llama.attention.head_count_kv", 2);
  w.setU32("llama.context_length", 256);
  w.setF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.setString("pinfer.ffn_activation", "relu");
  auto none = [](uint8_t *, size_t) {};
  w.addTensor("token_embd.weight", GGMLType::Q8_0, {nEmbd, nVocab}, none);
  w.addTensor("output_norm.weight", GGMLType::F32, {nEmbd}, none);
  if (withOutput)
    w.addTensor("output.weight", GGMLType::F16, {nEmbd, nVocab}, none);
  for (int l = 0; l < nLayer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    w.addTensor(b + "attn_norm.weight", GGMLType::F32, {nEmbd}, none);
    w.addTensor(b + "ffn_norm.weight", GGMLType::F32, {nEmbd}, none);
    w.addTensor(b + "attn_q.weight", GGMLType::F16, {nEmbd, nEmbd}, none);
    w.addTensor(b + "attn_k.weight", GGMLType::F16, {nEmbd, 32}, none);
    w.addTensor(b + "attn_v.weight", GGMLType::F16, {nEmbd, 32}, none);
    w.addTensor(b + "attn_output.weight", GGMLType::F16, {nEmbd, nEmbd}, none);
    w.addTensor(b + "ffn_gate.weight", GGMLType::Q4_0, {nEmbd, nFF}, none);
    w.addTensor(b + "ffn_up.weight", GGMLType::Q4_0, {nEmbd, nFF}, none);
    if (!(dropDown && l == 1))
      w.addTensor(b + "ffn_down.weight", GGMLType::F16, {nFF, nEmbd}, none);
  }
  std::string path = std::string(PINFER_BINARY_DIR) + "/" + name;
  std::string error;
  EXPECT_TRUE(w.write(path, error)) << error;
  return path;
}

template <typename OpT> int countOps(mlir::ModuleOp m) {
  int n = 0;
  m.walk([&](OpT) { ++n; });
  return n;
}

Plan makeTestPlan(int nLayer, int nFF, int hot, unsigned seed) {
  Plan plan;
  std::mt19937 rng(seed);
  for (int l = 0; l < nLayer; ++l) {
    LayerPlan lp;
    lp.nHot = hot;
    lp.order.resize(nFF);
    std::iota(lp.order.begin(), lp.order.end(), 0u);
    std::shuffle(lp.order.begin(), lp.order.end(), rng);
    plan.layers.push_back(lp);
  }
  return plan;
}

} // namespace

// Tests that a GGUF file imports to a verified module with one op per step.
TEST(CompilerImport, TinyFileImportsAndVerifies) {
  std::string path = writeTinyModel("import_tiny.gguf", true, false);
  std::string error;
  auto file = GGUFFile::open(path, error);
  ASSERT_TRUE(file) << error;
  ModelSpec spec;
  ASSERT_TRUE(readModelSpec(*file, spec, error)) << error;
  EXPECT_EQ(spec.params.nLayer, 2);
  EXPECT_FALSE(spec.tiedOutput);
  EXPECT_EQ(spec.tensor("blk.1.ffn_gate.weight")->type, GGMLType::Q4_0);

  mlir::MLIRContext ctx;
  auto module = importModel(ctx, spec, error);
  ASSERT_TRUE(module) << error;
  EXPECT_TRUE(mlir::succeeded(mlir::verify(*module)));
  EXPECT_EQ(countOps<FFNOp>(*module), 2);
  EXPECT_EQ(countOps<AttentionOp>(*module), 2);
  EXPECT_EQ(countOps<EmbeddingOp>(*module), 1);
  EXPECT_EQ(countOps<LMHeadOp>(*module), 1);
  module->walk([&](AttentionOp op) {
    EXPECT_EQ(op.getNKvHead(), 2);
    EXPECT_EQ(op.getHeadDim(), 16);
  });
  module->walk(
      [&](FFNOp op) { EXPECT_EQ(op.getActivation(), Activation::relu); });
  auto func = module->lookupSymbol<mlir::func::FuncOp>("forward");
  ASSERT_TRUE(func);
  EXPECT_EQ(func.getFunctionType().getNumInputs(), 2u);
  EXPECT_EQ(
      mlir::cast<mlir::RankedTensorType>(func.getFunctionType().getResult(0))
          .getDimSize(0),
      32);
  std::remove(path.c_str());
}

// Tests that a file without output.weight imports with the head tied to the
// token embedding.
TEST(CompilerImport, TiedOutputReusesEmbedding) {
  std::string path = writeTinyModel("import_tied.gguf", false, false);
  std::string error;
  auto file = GGUFFile::open(path, error);
  ASSERT_TRUE(file) << error;
  ModelSpec spec;
  ASSERT_TRUE(readModelSpec(*file, spec, error)) << error;
  EXPECT_TRUE(spec.tiedOutput);
  mlir::MLIRContext ctx;
  auto module = importModel(ctx, spec, error);
  ASSERT_TRUE(module) << error;
  module->walk([&](LMHeadOp op) {
    auto w = op.getOutput().getDefiningOp<WeightOp>();
    ASSERT_TRUE(w);
    EXPECT_EQ(w.getName(), "token_embd.weight");
  });
  std::remove(path.c_str());
}

// Tests that a missing tensor is one error line naming file and tensor.
TEST(CompilerImport, MissingTensorNamesIt) {
  std::string path = writeTinyModel("import_missing.gguf", true, true);
  std::string error;
  auto file = GGUFFile::open(path, error);
  ASSERT_TRUE(file) << error;
  ModelSpec spec;
  EXPECT_FALSE(readModelSpec(*file, spec, error));
  EXPECT_NE(error.find("blk.1.ffn_down.weight"), std::string::npos) << error;
  EXPECT_NE(error.find("import_missing.gguf"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  std::remove(path.c_str());
}

// Tests that the placed and scheduled stages run from C++ and that the
// VRAM budget is enforced with a one-line error.
TEST(CompilerImport, StagesAndBudget) {
  ModelParams p;
  p.nVocab = 100;
  p.nEmbd = 64;
  p.nFF = 96;
  p.nLayer = 3;
  p.nHead = 4;
  p.activation = FfnActivation::ReLU;
  ModelSpec spec = makeModelSpec(p, GGMLType::F16);
  Plan plan = makeTestPlan(3, 96, 40, 1);
  plan.layers[1].nHot = 0;  // wholly on the CPU
  plan.layers[2].nHot = 96; // wholly on the GPU

  std::ostringstream dense, scheduled;
  std::string error;
  ASSERT_TRUE(emitMLIR(spec, nullptr, EmitStage::Dense, dense, error)) << error;
  EXPECT_NE(dense.str().find("pinfer.ffn "), std::string::npos);
  EXPECT_FALSE(emitMLIR(spec, nullptr, EmitStage::Placed, dense, error));

  ASSERT_TRUE(emitMLIR(spec, &plan, EmitStage::Scheduled, scheduled, error))
      << error;
  const std::string &ir = scheduled.str();
  EXPECT_NE(ir.find("pinfer.merge"), std::string::npos);
  EXPECT_NE(ir.find("pinfer.wait"), std::string::npos);
  EXPECT_NE(ir.find("vram_total"), std::string::npos);

  // The printed IR parses back and verifies.
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  auto parsed = mlir::parseSourceString<mlir::ModuleOp>(ir, &ctx);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(countOps<MergeOp>(*parsed), 1);
  EXPECT_EQ(countOps<FFNPartOp>(*parsed), 4);

  PipelineOptions tight;
  tight.vramBudget = 1000;
  std::ostringstream sink;
  EXPECT_FALSE(emitMLIR(spec, &plan, EmitStage::Scheduled, sink, error, tight));
  EXPECT_NE(error.find("exceeds the budget of 1000 bytes"), std::string::npos)
      << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

// Tests that dense IR printed with its plan, parsed and run through the
// registered pipelines, gives exactly the IR of the one-call path.
TEST(CompilerImport, DenseWithPlanReplays) {
  ModelParams p;
  p.nVocab = 50;
  p.nEmbd = 32;
  p.nFF = 300; // tables above the inline limit travel as resources
  p.nLayer = 2;
  p.nHead = 2;
  p.activation = FfnActivation::ReLU;
  ModelSpec spec = makeModelSpec(p, GGMLType::F16);
  Plan plan = makeTestPlan(2, 300, 100, 5);
  std::ostringstream dense, direct;
  std::string error;
  ASSERT_TRUE(emitMLIR(spec, &plan, EmitStage::Dense, dense, error)) << error;
  EXPECT_NE(dense.str().find("pinfer.plan"), std::string::npos);
  ASSERT_TRUE(emitMLIR(spec, &plan, EmitStage::Scheduled, direct, error))
      << error;

  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(dense.str(), &ctx);
  ASSERT_TRUE(module);
  ASSERT_TRUE(runPipeline(*module, "pinfer-place,pinfer-lower", error))
      << error;
  std::string replayed;
  llvm::raw_string_ostream os(replayed);
  module->print(os);
  EXPECT_EQ(os.str(), direct.str());
}

// Tests that a bad pipeline string is reported, not fatal.
TEST(CompilerImport, BadPipelineIsAnError) {
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  auto module = mlir::ModuleOp::create(mlir::UnknownLoc::get(&ctx));
  std::string error;
  EXPECT_FALSE(runPipeline(module, "pinfer-no-such-pass", error));
  EXPECT_NE(error.find("pinfer-no-such-pass"), std::string::npos) << error;
  EXPECT_FALSE(runPipeline(module, "pinfer-apply-placement", error));
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_NE(error.find("no pinfer.plan attribute"), std::string::npos) << error;
  module->erase();
}

// Tests that a plan for another layer count is refused in one line.
TEST(CompilerImport, PlanLayerCountMismatch) {
  ModelParams p;
  p.nVocab = 10;
  p.nEmbd = 32;
  p.nFF = 8;
  p.nLayer = 2;
  p.nHead = 2;
  ModelSpec spec = makeModelSpec(p, GGMLType::F32);
  mlir::MLIRContext ctx;
  std::string error;
  auto module = importModel(ctx, spec, error);
  ASSERT_TRUE(module) << error;
  Plan plan = makeTestPlan(3, 8, 2, 3);
  EXPECT_FALSE(attachPlan(*module, plan, error));
  EXPECT_EQ(error, "plan has 3 layers, the model has 2");
}

// Tests that import plus every pass on a 7B-like shape (32 layers, n_embd
// 4096, n_ff 11008, 32 heads) runs in seconds and that the printed module
// parses back quickly (neuron tables travel as resource blobs).
TEST(CompilerImport, SevenBLikeShapeIsFast) {
  ModelParams p;
  p.nVocab = 32000;
  p.nEmbd = 4096;
  p.nFF = 11008;
  p.nLayer = 32;
  p.nHead = 32;
  p.nCtxTrain = 4096;
  p.activation = FfnActivation::ReLU;
  ModelSpec spec = makeModelSpec(p, GGMLType::Q4_0);
  Plan plan = makeTestPlan(32, 11008, 3000, 7);

  auto t0 = std::chrono::steady_clock::now();
  std::ostringstream os;
  std::string error;
  PipelineOptions options;
  options.sparsity = "exact";
  options.contextLength = 2048;
  ASSERT_TRUE(emitMLIR(spec, &plan, EmitStage::Scheduled, os, error, options))
      << error;
  auto t1 = std::chrono::steady_clock::now();

  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  auto parsed = mlir::parseSourceString<mlir::ModuleOp>(os.str(), &ctx);
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_TRUE(parsed);
  EXPECT_EQ(countOps<MergeOp>(*parsed), 32);
  EXPECT_EQ(countOps<PredictOp>(*parsed), 0);
  EXPECT_EQ(countOps<WaitOp>(*parsed), 32); // one per split FFN

  double compile = std::chrono::duration<double>(t1 - t0).count();
  double parse = std::chrono::duration<double>(t2 - t1).count();
  std::printf("7B-like: import+passes+print %.3f s, parse+verify %.3f s, "
              "IR %zu bytes\n",
              compile, parse, os.str().size());
  EXPECT_LT(compile, 10.0);
  EXPECT_LT(parse, 1.0);
}
