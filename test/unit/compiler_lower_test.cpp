// Tests of the lowering of scheduled pinfer IR to the emitters' program
// description: for generated models and a range of plans (mixed, all hot,
// all cold, zero hot, no GPU) in every sparsity mode, the description read
// from the IR must equal the one programFromPlan builds from the plan
// directly; the VRAM bill is the plan-memory pass's; broken IR is refused
// with a line naming the op and layer, and so are ops no runtime step runs;
// a 7B-like shape is timed.
#include "compiler/LowerToProgram.h"

#include "compiler/Import.h"
#include "compiler/InitAll.h"
#include "compiler/Targets.h"
#include "compiler/Trace.h"
#include "compiler/placement/Plan.h"
#include "dialects/PInfer/IR/PInferOps.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/vram_bill.h"
#include "tools/genmodel/model_generator.h"

#include "mlir/IR/MLIRContext.h"

#include "program_desc_oracle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>
#include <unistd.h>

using namespace pinfer;

namespace {

constexpr int kLayers = 3;
constexpr int kEmbd = 64;
constexpr int kFF = 128;
constexpr float kThreshold = 0.25f; // exact in decimal, see PredictedMode
const char *kArch = "sm_89";

std::string tempDir() {
  static std::string dir = [] {
    // The process's private directory (test_main.cpp), removed at exit.
    std::string tmpl = testing::TempDir() + "pinfer-lower-test-XXXXXX";
    return ::mkdtemp(&tmpl[0]) ? tmpl : testing::TempDir();
  }();
  return dir;
}

// A tiny LLaMA-shaped model of `type`, with PowerInfer predictors when
// `powerInfer`; generated once per process and kept open.
const Model &tinyModel(GGMLType type, bool powerInfer) {
  static std::map<std::pair<int, bool>, std::unique_ptr<Model>> cache;
  auto key = std::make_pair(int(type), powerInfer);
  auto it = cache.find(key);
  if (it != cache.end())
    return *it->second;
  GenModelConfig cfg;
  cfg.name = "lower-tiny";
  cfg.nEmbd = kEmbd;
  cfg.nFF = kFF;
  cfg.nLayer = kLayers;
  cfg.nHead = 4;
  cfg.nKVHead = 2;
  cfg.nCtx = 128;
  cfg.type = type;
  cfg.powerInfer = powerInfer;
  cfg.predictorRank = 16;
  cfg.sparseThreshold = kThreshold;
  cfg.threads = 2;
  cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
  std::string path = tempDir() + "/tiny-" + typeName(type) +
                     (powerInfer ? "-pwri" : "") + ".gguf";
  GenModelReport report;
  std::string error;
  if (!generateModel(cfg, path, report, error)) {
    ADD_FAILURE() << error;
    std::abort();
  }
  std::unique_ptr<Model> model = Model::open(path, error);
  if (!model) {
    ADD_FAILURE() << error;
    std::abort();
  }
  return *(cache[key] = std::move(model));
}

// A plan with hot[l] neurons of layer l on the GPU, a scrambled order per
// layer, attention on the GPU where attn[l].
Plan makePlan(std::vector<uint32_t> hot, std::vector<bool> attn, unsigned seed,
              bool head = false) {
  Plan plan;
  plan.target = "rtx4090";
  plan.nLayer = uint32_t(hot.size());
  plan.nFF = kFF;
  plan.nCtx = 128;
  plan.billBytes = 777; // the cost model's figure, not the pass's
  std::mt19937 rng(seed);
  for (size_t l = 0; l < hot.size(); ++l) {
    LayerPlan lp;
    lp.nHot = hot[l];
    lp.attentionOnGPU = attn[l];
    lp.order.resize(kFF);
    std::iota(lp.order.begin(), lp.order.end(), 0u);
    std::shuffle(lp.order.begin(), lp.order.end(), rng);
    plan.layers.push_back(lp);
  }
  plan.outputOnGPU = head;
  return plan;
}

void expectSameParams(const ModelParams &a, const ModelParams &b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.nVocab, b.nVocab);
  EXPECT_EQ(a.nEmbd, b.nEmbd);
  EXPECT_EQ(a.nFF, b.nFF);
  EXPECT_EQ(a.nLayer, b.nLayer);
  EXPECT_EQ(a.nHead, b.nHead);
  EXPECT_EQ(a.nKvHead, b.nKvHead);
  EXPECT_EQ(a.headDim, b.headDim);
  EXPECT_EQ(a.nRot, b.nRot);
  EXPECT_EQ(a.nCtxTrain, b.nCtxTrain);
  EXPECT_EQ(a.normEps, b.normEps);
  EXPECT_EQ(a.ropeBase, b.ropeBase);
  EXPECT_EQ(a.activation, b.activation);
}

bool isIdentity(const std::vector<uint32_t> &v, uint32_t first) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != first + i)
      return false;
  return true;
}

// Field by field. One known difference: a layer wholly on one device is a
// single part [0, n_ff) in the IR, and pinfer-split-ffn drops its order
// (it does not change the result), so the IR lists it in id order where
// programFromPlan keeps the plan's hottest-first order for a CPU half.
// Such a layer must hold the same ids, in id order. vramBillBytes: the IR
// carries pinfer-plan-memory's bill, programFromPlan the plan's; checked apart.
void expectSameDesc(const ProgramDesc &ir, const ProgramDesc &ref) {
  expectSameParams(ir.params, ref.params);
  EXPECT_EQ(ir.modelName, ref.modelName);
  EXPECT_EQ(ir.target, ref.target);
  EXPECT_EQ(ir.smArch, ref.smArch);
  EXPECT_EQ(ir.mode, ref.mode);
  EXPECT_EQ(ir.predictorThreshold, ref.predictorThreshold);
  EXPECT_EQ(ir.hasGpuPart(), ref.hasGpuPart());
  ASSERT_EQ(ir.layers.size(), ref.layers.size());
  for (size_t l = 0; l < ir.layers.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const LayerDesc &a = ir.layers[l], &b = ref.layers[l];
    EXPECT_EQ(a.gateType, b.gateType);
    EXPECT_EQ(a.upType, b.upType);
    EXPECT_EQ(a.downType, b.downType);
    EXPECT_EQ(a.downTType, b.downTType);
    EXPECT_EQ(a.sourceDown, b.sourceDown);
    if (b.sourceDown)
      EXPECT_TRUE(isIdentity(a.hot.empty() ? a.cold : a.hot, 0));
    EXPECT_EQ(a.predictorRank, b.predictorRank);
    EXPECT_EQ(a.attentionOnGPU, b.attentionOnGPU);
    // The steps, in order: what each is, where it runs, what an add adds.
    EXPECT_EQ(stepsText(a.steps.data(), a.steps.size()),
              stepsText(b.steps.data(), b.steps.size()));
    ASSERT_EQ(a.steps.size(), b.steps.size());
    for (size_t k = 0; k < a.steps.size(); ++k)
      EXPECT_EQ(a.steps[k].from, b.steps[k].from) << "step " << k;
    ASSERT_EQ(a.hot.size(), b.hot.size());
    ASSERT_EQ(a.cold.size(), b.cold.size());
    if (!b.hot.empty() && !b.cold.empty()) {
      EXPECT_EQ(a.hot, b.hot);
      EXPECT_EQ(a.cold, b.cold);
    } else {
      const std::vector<uint32_t> &ia = a.hot.empty() ? a.cold : a.hot;
      const std::vector<uint32_t> &ib = b.hot.empty() ? b.cold : b.hot;
      EXPECT_TRUE(isIdentity(ia, 0));
      EXPECT_EQ(std::set<uint32_t>(ia.begin(), ia.end()),
                std::set<uint32_t>(ib.begin(), ib.end()));
    }
  }
}

// Compiles through the IR and builds the reference straight from the plan.
void compareOne(const Model &model, const Plan &plan, SparsityMode mode,
                const std::string &smArch, ProgramDesc &ir) {
  PipelineOptions options;
  options.threshold = kThreshold;
  options.contextLength = 128;
  std::string error;
  ASSERT_TRUE(compileToProgram(model, plan, mode, plan.target, smArch, options,
                               ir, error))
      << error;
  ProgramDesc ref;
  ASSERT_TRUE(programFromPlan(model, plan, mode, smArch, ref, error)) << error;
  expectSameDesc(ir, ref);
}

// The VRAM bill's FFN weights, worked out from the description alone:
// gate, up and packed down rows of the hot neurons, and the predictor rows
// they use (fc1 and its f32 bias whole, owned fc2 rows and biases, in the
// packed types).
uint64_t hotWeightBytes(const ProgramDesc &d) {
  uint64_t bytes = 0;
  int64_t n = d.params.nEmbd;
  for (const LayerDesc &l : d.layers) {
    if (l.hot.empty())
      continue;
    bytes += l.hot.size() * (rowBytes(l.gateType, n) + rowBytes(l.upType, n) +
                             rowBytes(l.downTType, n));
    if (l.predictorRank)
      bytes += l.predictorRank * (rowBytes(l.fc1Type, n) + 4) +
               l.hot.size() * (rowBytes(l.fc2Type, l.predictorRank) + 4);
  }
  return bytes;
}

// What the executable allocates beside its weights (runtime/vram_bill.h,
// gpuWorkspaceVram), worked out from the description: the model's shapes
// and where the program runs.
uint64_t workspaceBytes(const ProgramDesc &d, int64_t nCtx) {
  if (!d.hasGpuPart())
    return 0;
  const ModelParams &p = d.params;
  GpuWorkspace w;
  w.nEmbd = p.nEmbd;
  w.nFF = p.nFF;
  w.nVocab = p.nVocab;
  w.nHead = p.nHead;
  w.qDim = p.qDim();
  w.kvDim = p.kvDim();
  w.headDim = p.headDim;
  w.nRot = p.nRot;
  w.nLayer = p.nLayer;
  w.nCtx = nCtx;
  w.head = d.headOnGPU;
  for (const LayerDesc &l : d.layers) {
    w.attentionLayers += l.attentionOnGPU;
    if (!l.hot.empty())
      w.maxRank = std::max<int64_t>(w.maxRank, l.predictorRank);
    w.resident = w.resident ||
                 stepsText(l.steps.data(), l.steps.size()).find("norm@gpu") !=
                     std::string::npos;
  }
  return gpuWorkspaceVram(w);
}

// The bill worked out by hand: what the program keeps (`kept`, and at most
// `slack` more: the IR's arena of a few vectors) and room for each of its
// buffers' alignment and guard (runtime/vram_bill.h), in whole 2 MiB pages.
// The bill the executable evaluates at its -c (ProgramDesc::vramBill) gives
// the same at the compile's context, and at another context the workspace
// of the description's shapes.
void expectBill(const ProgramDesc &d, uint64_t kept, uint64_t slack,
                int64_t nCtx) {
  const uint64_t buffers = deviceBuffersVram(d.params.nLayer);
  auto pages = [](uint64_t b) {
    return (b + kDevicePage - 1) / kDevicePage * kDevicePage;
  };
  EXPECT_GE(d.vramBillBytes, pages(kept + buffers));
  EXPECT_LE(d.vramBillBytes, pages(kept + buffers + slack));
  EXPECT_EQ(d.vramBill.at(nCtx), d.vramBillBytes);
  GpuWorkspace ws = d.vramBill.workspace;
  ws.nCtx = 16 * nCtx;
  EXPECT_EQ(gpuWorkspaceVram(ws), workspaceBytes(d, 16 * nCtx));
}

struct Scheduled {
  mlir::DialectRegistry registry;
  std::unique_ptr<mlir::MLIRContext> ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  ModelSpec spec;
};

// The scheduled module of `plan` on `model`, kept for tampering.
void schedule(const Model &model, const Plan &plan, Scheduled &s,
              EmitStage stage = EmitStage::Scheduled) {
  std::string error;
  ASSERT_TRUE(readModelSpec(model.file(), s.spec, error)) << error;
  registerAllDialects(s.registry);
  s.ctx = std::make_unique<mlir::MLIRContext>(s.registry);
  s.module = importModel(*s.ctx, s.spec, error);
  ASSERT_TRUE(s.module) << error;
  ASSERT_TRUE(attachPlan(*s.module, plan, error)) << error;
  ASSERT_TRUE(runStages(*s.module, stage, PipelineOptions(), error)) << error;
}

} // namespace

// Tests that a plan mixing split, all-CPU and all-GPU layers lowers to the
// same description as programFromPlan in each sparsity mode, for float and
// block-quantised weights.
TEST(CompilerLower, MixedPlanMatchesProgramFromPlan) {
  for (GGMLType type :
       {GGMLType::F16, GGMLType::Q8_0, GGMLType::Q4_0, GGMLType::Q4_1})
    for (SparsityMode mode : {SparsityMode::Dense, SparsityMode::Exact}) {
      SCOPED_TRACE(std::string(typeName(type)) + " mode " +
                   std::to_string(int(mode)));
      const Model &model = tinyModel(type, false);
      Plan plan = makePlan({40, 0, kFF}, {false, false, false}, 3);
      ProgramDesc ir;
      compareOne(model, plan, mode, kArch, ir);
      ASSERT_EQ(ir.layers.size(), size_t(kLayers));
      EXPECT_EQ(ir.layers[0].hot.size(), 40u);
      EXPECT_EQ(ir.modelName, "lower-tiny");
      EXPECT_EQ(ir.layers[0].downTType,
                type == GGMLType::F16 ? GGMLType::F16 : GGMLType::I8);
      // The all-CPU layer of a dense program keeps the source's down
      // matrix, and so does its all-GPU one of a block type (split rows).
      for (int l = 0; l < kLayers; ++l)
        EXPECT_EQ(ir.layers[l].sourceDown,
                  mode == SparsityMode::Dense &&
                      (l == 1 || (l == 2 && type != GGMLType::F16)))
            << "layer " << l;
    }
}

// Tests all hot, all cold and one hot neuron per layer, and that GPU
// attention is refused.
TEST(CompilerLower, EdgePlansMatchProgramFromPlan) {
  const Model &model = tinyModel(GGMLType::F16, false);
  ProgramDesc ir;
  {
    SCOPED_TRACE("all hot");
    compareOne(model, makePlan({kFF, kFF, kFF}, {false, false, false}, 1),
               SparsityMode::Exact, kArch, ir);
    for (const LayerDesc &l : ir.layers)
      EXPECT_TRUE(l.cold.empty());
  }
  {
    SCOPED_TRACE("all cold");
    compareOne(model, makePlan({0, 0, 0}, {false, false, false}, 2),
               SparsityMode::Exact, kArch, ir);
    EXPECT_FALSE(ir.hasGpuPart());
    EXPECT_EQ(ir.vramBillBytes, 0u); // nothing in VRAM, not even an arena
  }
  {
    // Attention on the GPU: the step runs there, with the projections'
    // types for its kernels.
    SCOPED_TRACE("GPU attention");
    PipelineOptions options;
    options.contextLength = 128;
    std::string error;
    ASSERT_TRUE(compileToProgram(
        model, makePlan({0, 0, 0}, {true, false, false}, 4),
        SparsityMode::Dense, "rtx4090", kArch, options, ir, error))
        << error;
    EXPECT_TRUE(ir.layers[0].attentionOnGPU);
    EXPECT_FALSE(ir.layers[1].attentionOnGPU);
    EXPECT_TRUE(ir.hasGpuPart());
    EXPECT_EQ(ir.layers[0].attention.wq, model.layer(0).wq.type);
    EXPECT_EQ(stepsText(ir.layers[0].steps.data(), 3),
              "attn_norm attention@gpu attn_add");
    EXPECT_EQ(stepsText(ir.layers[1].steps.data(), 3),
              "attn_norm attention@cpu attn_add");
  }
  {
    SCOPED_TRACE("one hot neuron, one cold neuron");
    compareOne(model, makePlan({1, kFF - 1, 64}, {false, false, false}, 5),
               SparsityMode::Exact, kArch, ir);
    EXPECT_EQ(ir.layers[0].hot.size(), 1u);
    EXPECT_EQ(ir.layers[1].cold.size(), 1u);
  }
}

// Tests that a target without a GPU gets an all-cold description from a
// plan that puts neurons and attention on the GPU, as programFromPlan does.
TEST(CompilerLower, NoGpuTargetIsAllCold) {
  const Model &model = tinyModel(GGMLType::Q8_0, false);
  ProgramDesc ir;
  compareOne(model, makePlan({40, 0, kFF}, {true, true, true}, 6, true),
             SparsityMode::Exact, "", ir);
  EXPECT_FALSE(ir.hasGpuPart());
  EXPECT_EQ(ir.vramBillBytes, 0u);
  for (const LayerDesc &l : ir.layers) {
    EXPECT_TRUE(l.hot.empty());
    EXPECT_FALSE(l.attentionOnGPU);
  }
}

// Tests that the predictor threshold reaches the program bit for bit (the
// pipeline was once printed as text and parsed back, which kept 6 digits).
TEST(CompilerLower, PredictorThresholdKeepsEveryDigit) {
  const Model &pwri = tinyModel(GGMLType::F16, true);
  Plan plan = makePlan({40, 0, kFF}, {false, false, false}, 7);
  PipelineOptions options;
  options.threshold = 0.123456789f;
  options.contextLength = 128;
  ProgramDesc ir;
  std::string error;
  ASSERT_TRUE(compileToProgram(pwri, plan, SparsityMode::Predicted, plan.target,
                               kArch, options, ir, error))
      << error;
  EXPECT_EQ(ir.predictorThreshold, 0.123456789f);
}

// Tests predicted sparsity on a PowerInfer model: predictor rank and
// threshold come from the halves' predict ops, equal to the file's; each
// half runs its own predictor, the GPU's too, so a program wholly on the
// GPU is predicted and bills its predictors in VRAM (fc1 as Q8_0 where its
// f16 rows of n_embd allow, fc2's rows of 16 kept f16). A model without
// predictors is refused on both paths.
TEST(CompilerLower, PredictedModeMatchesProgramFromPlan) {
  const Model &pwri = tinyModel(GGMLType::F16, true);
  ProgramDesc ir;
  for (Plan plan : {makePlan({40, 0, kFF}, {false, false, false}, 7),
                    makePlan({0, 0, 0}, {false, false, false}, 8),
                    makePlan({kFF, kFF, kFF}, {false, false, false}, 9)}) {
    compareOne(pwri, plan, SparsityMode::Predicted, kArch, ir);
    EXPECT_EQ(ir.mode, SparsityMode::Predicted);
    EXPECT_EQ(ir.predictorThreshold, kThreshold);
    for (const LayerDesc &l : ir.layers) {
      EXPECT_EQ(l.predictorRank, 16u);
      EXPECT_EQ(l.fc1Type, GGMLType::Q8_0);
      EXPECT_EQ(l.fc2Type, GGMLType::F16);
    }
  }
  // The last plan: everything hot, attention on the CPU. The bill is the
  // hot rows and the predictors, the executable's workspace and the GPU
  // arena (a few vectors).
  uint64_t weights = hotWeightBytes(ir) + workspaceBytes(ir, 128);
  expectBill(ir, weights, 64 * 1024, 128);

  const Model &plain = tinyModel(GGMLType::F16, false);
  Plan plan = makePlan({40, 0, kFF}, {false, false, false}, 7);
  PipelineOptions options;
  std::string error;
  EXPECT_FALSE(compileToProgram(plain, plan, SparsityMode::Predicted,
                                plan.target, kArch, options, ir, error));
  EXPECT_NE(error.find("mode=predicted needs the model's learned fc1/fc2 "
                       "predictors"),
            std::string::npos)
      << error;
  EXPECT_FALSE(
      programFromPlan(plain, plan, SparsityMode::Predicted, kArch, ir, error));
}

// Tests that the bill over the budget fails with plan-memory's diagnostic,
// and that the bill the description carries fits a budget of itself.
TEST(CompilerLower, BudgetExceededReturnsPlanMemoryDiagnostic) {
  const Model &model = tinyModel(GGMLType::F16, false);
  Plan plan = makePlan({kFF, kFF, kFF}, {false, false, false}, 10);
  PipelineOptions options;
  options.contextLength = 128;
  ProgramDesc ir;
  std::string error;
  ASSERT_TRUE(compileToProgram(model, plan, SparsityMode::Exact, plan.target,
                               kArch, options, ir, error))
      << error;
  uint64_t bill = ir.vramBillBytes;
  ASSERT_GT(bill, 0u);

  options.vramBudget = int64_t(bill);
  EXPECT_TRUE(compileToProgram(model, plan, SparsityMode::Exact, plan.target,
                               kArch, options, ir, error))
      << error;
  options.vramBudget = int64_t(bill) - 1;
  EXPECT_FALSE(compileToProgram(model, plan, SparsityMode::Exact, plan.target,
                                kArch, options, ir, error));
  std::string expected = "VRAM bill of " + std::to_string(bill) + " bytes";
  EXPECT_NE(error.find(expected), std::string::npos) << error;
  EXPECT_NE(error.find("exceeds the budget of " + std::to_string(bill - 1)),
            std::string::npos)
      << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

// Tests that a plan of the wrong layer count is refused.
TEST(CompilerLower, PlanOfWrongLayerCountFails) {
  const Model &model = tinyModel(GGMLType::F16, false);
  Plan plan = makePlan({1, 2}, {false, false}, 11);
  ProgramDesc ir;
  std::string error;
  EXPECT_FALSE(compileToProgram(model, plan, SparsityMode::Exact, plan.target,
                                kArch, PipelineOptions(), ir, error));
  EXPECT_NE(error.find("2 layers"), std::string::npos) << error;
}

// Tests the checks on the IR itself: a module that is not memory-planned,
// a half that lost neurons, two halves owning the same neuron, a GPU half
// for a target without a GPU, a weight type that is not the model's.
TEST(CompilerLower, RefusesInconsistentIR) {
  const Model &model = tinyModel(GGMLType::F16, false);
  Plan plan = makePlan({40, 0, kFF}, {false, false, false}, 12);
  ProgramDesc out;
  std::string error;
  {
    Scheduled s;
    schedule(model, plan, s, EmitStage::Placed);
    EXPECT_FALSE(programFromModule(*s.module, model, "t", kArch, out, error));
    EXPECT_NE(error.find("pinfer.memory"), std::string::npos) << error;
  }
  {
    Scheduled s;
    schedule(model, plan, s);
    ASSERT_TRUE(programFromModule(*s.module, model, "t", kArch, out, error))
        << error;
    EXPECT_FALSE(programFromModule(*s.module, model, "t", "", out, error));
    EXPECT_NE(error.find("ffn_part of layer 0"), std::string::npos) << error;
    EXPECT_NE(error.find("no GPU"), std::string::npos) << error;

    // The CPU half of layer 0 loses its last neuron.
    mlir::Builder b(s.ctx.get());
    FFNPartOp cpu;
    s.module->walk([&](FFNPartOp op) {
      if (op.getLayer() == 0 && op.getDevice() == Device::cpu)
        cpu = op;
    });
    ASSERT_TRUE(cpu);
    cpu.setCountAttr(b.getI64IntegerAttr(kFF - 40 - 1));
    EXPECT_FALSE(programFromModule(*s.module, model, "t", kArch, out, error));
    EXPECT_NE(error.find("layer 0"), std::string::npos) << error;
    EXPECT_NE(error.find("127 of 128"), std::string::npos) << error;

    // A range past the last row.
    cpu.setCountAttr(b.getI64IntegerAttr(kFF - 40));
    cpu.setOffsetAttr(b.getI64IntegerAttr(41));
    EXPECT_FALSE(programFromModule(*s.module, model, "t", kArch, out, error));
    EXPECT_NE(error.find("outside [0, 128)"), std::string::npos) << error;
    // Starting one row early: row 39 is also the GPU half's last.
    cpu.setOffsetAttr(b.getI64IntegerAttr(39));
    cpu.setCountAttr(b.getI64IntegerAttr(kFF - 40 - 1));
    EXPECT_FALSE(programFromModule(*s.module, model, "t", kArch, out, error));
    EXPECT_NE(error.find("owned twice"), std::string::npos) << error;
  }
  {
    // The model says q8_0, the IR f16.
    const Model &q8 = tinyModel(GGMLType::Q8_0, false);
    Scheduled s;
    schedule(model, plan, s);
    EXPECT_FALSE(programFromModule(*s.module, q8, "t", kArch, out, error));
    EXPECT_NE(error.find("the model stores q8_0"), std::string::npos) << error;
  }
}

// Tests the steps read off the scheduled IR: a split layer's, in the
// schedule's order with the arena offsets plan-memory gave; an op no
// runtime step runs is refused naming it and its layer, and so is a
// layer's op placed among the next layer's.
TEST(CompilerLower, StepsFollowTheScheduledIR) {
  const Model &model = tinyModel(GGMLType::F16, false);
  Plan plan = makePlan({40, 0, kFF}, {false, false, false}, 12);
  ProgramDesc out;
  std::string error;
  {
    Scheduled s;
    schedule(model, plan, s);
    ASSERT_TRUE(programFromModule(*s.module, model, "t", kArch, out, error))
        << error;
    const std::vector<ProgramStep> &steps = out.layers[0].steps;
    EXPECT_EQ(stepsText(steps.data(), steps.size()),
              "attn_norm attention@cpu attn_add ffn_norm transfer@gpu "
              "ffn_half@gpu transfer@cpu record ffn_half@cpu wait merge "
              "ffn_add");
    // Every op with a result has its arena offset; record and wait none.
    for (const ProgramStep &step : steps)
      EXPECT_EQ(step.arenaOffset < 0,
                step.kind == StepKind::Record || step.kind == StepKind::Wait)
          << stepKindName(step.kind);
    EXPECT_EQ(stepsText(out.layers[1].steps.data(), out.layers[1].steps.size()),
              "attn_norm attention@cpu attn_add ffn_norm ffn_half@cpu ffn_add");
    EXPECT_EQ(out.layers[1].steps.back().from, StepDevice::Cpu);
    EXPECT_EQ(out.layers[2].steps.back().from, StepDevice::Gpu);

    // A call between layer 0 and layer 1.
    mlir::OpBuilder b(s.ctx.get());
    b.setInsertionPointToEnd(s.module->getBody());
    auto probe = b.create<mlir::func::FuncOp>(s.module->getLoc(), "probe",
                                              b.getFunctionType({}, {}));
    probe.setPrivate();
    AttentionOp attn1;
    s.module->walk([&](AttentionOp op) {
      if (op.getLayer() == 1)
        attn1 = op;
    });
    ASSERT_TRUE(attn1);
    mlir::Operation *norm1 = attn1.getInput().getDefiningOp();
    b.setInsertionPoint(norm1);
    auto call = b.create<mlir::func::CallOp>(norm1->getLoc(), probe);
    EXPECT_FALSE(programFromModule(*s.module, model, "t", kArch, out, error));
    EXPECT_EQ(error, "scheduled IR: func.call of layer 0: no runtime step "
                     "runs it");
    call.erase();

    // Layer 0's wait after layer 1's attention.
    WaitOp wait0;
    s.module->walk([&](WaitOp op) {
      if (!wait0)
        wait0 = op;
    });
    ASSERT_TRUE(wait0);
    wait0->moveAfter(attn1);
    EXPECT_FALSE(programFromModule(*s.module, model, "t", kArch, out, error));
    EXPECT_EQ(error, "scheduled IR: pinfer.wait of layer 0: comes after steps "
                     "of layer 1, expected each layer's ops together, in "
                     "layer order");
  }
}

// Tests and times the ModelSpec path on a 7B-like shape (32 layers, n_embd
// 4096, n_ff 11008, q4_0, 3000 hot neurons per layer, context 2048): the
// halves are the plan's order cut at the hot count.
TEST(CompilerLower, SevenBLikeShape) {
  ModelParams p;
  p.arch = "llama";
  p.nVocab = 32000;
  p.nEmbd = 4096;
  p.nFF = 11008;
  p.nLayer = 32;
  p.nHead = 32;
  p.nKvHead = 32;
  p.nCtxTrain = 4096;
  p.activation = FfnActivation::ReLU;
  ModelSpec spec = makeModelSpec(p, GGMLType::Q4_0);
  Plan plan;
  plan.target = "rtx4090";
  std::mt19937 rng(13);
  for (int l = 0; l < 32; ++l) {
    LayerPlan lp;
    lp.nHot = l == 5 ? 0 : 3000;
    lp.order.resize(11008);
    std::iota(lp.order.begin(), lp.order.end(), 0u);
    std::shuffle(lp.order.begin(), lp.order.end(), rng);
    plan.layers.push_back(lp);
  }
  PipelineOptions options;
  options.contextLength = 2048;
  ProgramDesc out;
  std::string error;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(compileToProgram(spec, "7b-like", plan, SparsityMode::Exact,
                               plan.target, kArch, options, out, error))
      << error;
  double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("7B-like compileToProgram: %.3f s, VRAM bill %llu bytes\n", s,
              (unsigned long long)out.vramBillBytes);
  EXPECT_LT(s, 10.0);

  // The read-back alone, on the same scheduled module.
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  auto module = importModel(ctx, spec, error);
  ASSERT_TRUE(module) << error;
  ASSERT_TRUE(attachPlan(*module, plan, error)) << error;
  ASSERT_TRUE(runStages(*module, EmitStage::Scheduled, options, error))
      << error;
  ProgramDesc again;
  t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(programFromModule(*module, spec, "7b-like", plan.target, kArch,
                                again, error))
      << error;
  std::printf(
      "7B-like programFromModule alone: %.3f s\n",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count());
  EXPECT_EQ(again.vramBillBytes, out.vramBillBytes);
  ASSERT_EQ(out.layers.size(), 32u);
  for (int l = 0; l < 32; ++l) {
    const LayerPlan &lp = plan.layers[l];
    const LayerDesc &d = out.layers[l];
    EXPECT_EQ(d.gateType, GGMLType::Q4_0);
    EXPECT_EQ(d.downTType, GGMLType::I8); // split layout (quants, scales)
    EXPECT_EQ(d.attentionOnGPU, lp.attentionOnGPU);
    if (lp.nHot == 0) {
      EXPECT_TRUE(d.hot.empty());
      EXPECT_TRUE(isIdentity(d.cold, 0));
      continue;
    }
    std::vector<uint32_t> hot(lp.order.begin(), lp.order.begin() + lp.nHot);
    std::sort(hot.begin(), hot.end()); // the GPU half in id order
    EXPECT_EQ(d.hot, hot);
    EXPECT_TRUE(std::equal(d.cold.begin(), d.cold.end(),
                           lp.order.begin() + lp.nHot, lp.order.end()));
  }
  // 31 layers of 3000 hot q4_0 gate/up rows, packed down rows (4-bit
  // quants) and original ids, plus each layer's down block scales (11008 /
  // 32 blocks x 4096 outputs, f16); attention stays on the CPU.
  uint64_t ffn =
      31ull * 3000 * (2 * rowBytes(GGMLType::Q4_0, 4096) + 4096 / 2 + 4) +
      31ull * (11008 / 32) * 4096 * 2 + workspaceBytes(out, 2048);
  expectBill(out, ffn, 1 << 20, 2048);
}

// Tests that the placement's cost model and pinfer-plan-memory bill the
// same bytes for the same hot neurons (runtime/vram_bill.h): for f16,
// q8_0 and q4_0 FFNs (rows, and split down layouts with their ids and
// block scales), a split layer, an all-cold one and an all-hot one, the
// FFN part of the cost model's bill of the assignment equals the IR's
// vram_weights. Attention and the head stay on the CPU, so the IR holds
// nothing else in VRAM.
TEST(CompilerLower, CostModelAndPlanMemoryBillAlike) {
  for (GGMLType type : {GGMLType::F16, GGMLType::Q8_0, GGMLType::Q4_0}) {
    SCOPED_TRACE(typeName(type));
    const Model &model = tinyModel(type, false);
    ModelShape shape;
    std::string error;
    ASSERT_TRUE(modelShapeFromGGUF(model.file(), shape, error)) << error;
    Trace trace;
    trace.nLayer = kLayers;
    trace.nFF = kFF;
    trace.nTokens = 1000;
    trace.activation = "relu";
    for (int l = 0; l < kLayers; ++l) {
      std::vector<uint64_t> fired(kFF);
      for (int i = 0; i < kFF; ++i)
        fired[i] = uint64_t(1000 / (1 + i));
      trace.fired.push_back(fired);
    }
    const Target *target = findTarget("rtx4090", error);
    ASSERT_TRUE(target) << error;
    PlacementOptions opts;
    opts.granuleSize = 8;
    opts.minGranules = 1;
    opts.attention = AttentionPolicy::CPU;
    opts.outputMayUseGPU = false;
    PlacementInput in;
    ASSERT_TRUE(buildPlacementInput(trace, shape, *target, opts, in, error))
        << error;
    Assignment a;
    a.hotGranules = {5, 0, kFF / 8}; // 40, 0 and 128 hot neurons
    a.attention.assign(kLayers, false);
    const uint64_t costModel =
        assignmentBytes(in.problem, a) - in.problem.mandatoryBytes();

    Scheduled s;
    schedule(model, makePlan({40, 0, kFF}, {false, false, false}, 14), s);
    auto memory =
        (*s.module)->getAttrOfType<mlir::DictionaryAttr>("pinfer.memory");
    ASSERT_TRUE(memory);
    const uint64_t planMemory =
        memory.getAs<mlir::IntegerAttr>("vram_weights").getInt();
    EXPECT_EQ(costModel, planMemory);
    // Worked out by hand: per hot neuron its gate and up rows and its
    // packed down row (+ its id for a split layout), per layer with hot
    // neurons the split layout's scales.
    const uint64_t row = rowBytes(type, kEmbd);
    const bool split = type != GGMLType::F16;
    const uint64_t perNeuron =
        2 * row + (type == GGMLType::F16    ? row
                   : type == GGMLType::Q8_0 ? kEmbd + 4
                                            : kEmbd / 2 + 4);
    const uint64_t scales = split ? kFF / 32 * kEmbd * 2 : 0;
    EXPECT_EQ(planMemory, (40 + kFF) * perNeuron + 2 * scales);
  }
}

// Measures the two VRAM bills of one real plan (DP placement of a 7B-like
// q4_0 shape on an RTX 4090 with a 2.5 GiB budget, attention on the CPU,
// power-law firing counts): the cost model's, which programFromPlan carries,
// and pinfer-plan-memory's, which the IR carries. The IR's is checked against
// the bytes worked out by hand; the plan's is printed beside it.
TEST(CompilerLower, PlanBillAgainstPlanMemoryBill) {
  const uint32_t nLayer = 32, nFF = 11008, nEmbd = 4096;
  ModelParams p;
  p.arch = "llama";
  p.nVocab = 32000;
  p.nEmbd = nEmbd;
  p.nFF = nFF;
  p.nLayer = nLayer;
  p.nHead = 32;
  p.nKvHead = 32;
  p.nCtxTrain = 4096;
  p.activation = FfnActivation::ReLU;
  ModelSpec spec = makeModelSpec(p, GGMLType::Q4_0);
  ModelShape shape =
      syntheticShape(nLayer, nFF, nEmbd, nEmbd, 32000, GGMLType::Q4_0);

  Trace trace;
  trace.nLayer = nLayer;
  trace.nFF = nFF;
  trace.nTokens = 100000;
  trace.activation = "relu";
  std::mt19937 rng(21);
  for (uint32_t l = 0; l < nLayer; ++l) {
    std::vector<uint64_t> fired(nFF);
    for (uint32_t i = 0; i < nFF; ++i)
      fired[i] = uint64_t(trace.nTokens * 0.9 *
                          std::pow(1.0 + double(i) / (0.02 * nFF), -1.1));
    std::shuffle(fired.begin(), fired.end(), rng);
    trace.fired.push_back(fired);
  }
  std::string error;
  const Target *target = findTarget("rtx4090", error);
  ASSERT_TRUE(target) << error;
  PlacementOptions opts;
  opts.vramBudget = 2560ull << 20;
  opts.nCtx = 2048;
  opts.useZ3 = false;
  // The FFN split is what is compared; attention and the head stay on the
  // CPU, where the runtime runs them.
  opts.attention = AttentionPolicy::CPU;
  opts.outputMayUseGPU = false;
  Plan plan;
  ASSERT_TRUE(planPlacement(trace, shape, *target, opts, plan, error)) << error;

  PipelineOptions options;
  options.contextLength = 2048;
  ProgramDesc out;
  ASSERT_TRUE(compileToProgram(spec, "7b-like", plan, SparsityMode::Exact,
                               plan.target, target->smArch, options, out,
                               error))
      << error;
  uint64_t hot = 0, hotLayers = 0;
  int attn = 0;
  for (const LayerDesc &l : out.layers) {
    hot += l.hot.size();
    hotLayers += !l.hot.empty();
    attn += l.attentionOnGPU;
  }
  std::printf("plan bill %llu bytes (%s), plan-memory bill %llu bytes; "
              "%llu hot neurons, %d GPU attention layers, head on %s\n",
              (unsigned long long)plan.billBytes, plan.status.c_str(),
              (unsigned long long)out.vramBillBytes, (unsigned long long)hot,
              attn, plan.outputOnGPU ? "GPU" : "CPU");
  for (const BillLine &b : plan.bill)
    std::printf("  plan: %-40s %llu\n", b.what.c_str(),
                (unsigned long long)b.bytes);
  EXPECT_GT(hot, 0u);
  EXPECT_LE(plan.billBytes, opts.vramBudget);
  // What the program keeps in VRAM: per hot neuron its q4_0 gate and up
  // rows, its packed down row (4-bit quants) and its id, per layer with hot
  // neurons the down block scales, the head the plan put on the GPU, the
  // executable's workspace and a GPU arena of a few vectors. The plan bills
  // the same weights, plus the CUDA context reserve and the workspace of a
  // program wholly on the GPU (an upper bound).
  uint64_t perNeuron = 2 * rowBytes(GGMLType::Q4_0, nEmbd) + nEmbd / 2 +
                       4; // + its original id (the block of its scales)
  uint64_t scales = hotLayers * (nFF / 32) * uint64_t(nEmbd) * 2;
  uint64_t head =
      plan.outputOnGPU ? 32000 * rowBytes(GGMLType::Q4_0, nEmbd) : 0;
  uint64_t weights =
      hot * perNeuron + scales + head + workspaceBytes(out, 2048);
  expectBill(out, weights, 1 << 20, 2048);
  EXPECT_LE(out.vramBillBytes, plan.billBytes);
}
