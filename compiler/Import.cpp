//===- Import.cpp - ModelSpec to the dense pinfer module ------------------===//
//
// One op per model-level step, weights referenced by GGUF name. Each weight
// handle is created just before its first use so that the printed IR reads
// layer by layer.
//
//===----------------------------------------------------------------------===//

#include "compiler/Import.h"

#include "compiler/placement/Plan.h"
#include "dialects/PInfer/IR/PInferOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace pinfer {

namespace {

class Importer {
public:
  Importer(MLIRContext &ctx, const ModelSpec &spec, std::string &error)
      : ctx(ctx), spec(spec), error(error), b(&ctx) {}

  OwningOpRef<ModuleOp> run();

private:
  Value weight(const std::string &name);
  Value weight(TensorKind kind, int layer = -1) {
    return weight(tensorName(kind, layer));
  }

  MLIRContext &ctx;
  const ModelSpec &spec;
  std::string &error;
  OpBuilder b;
  Location loc = UnknownLoc::get(&ctx);
};

Value Importer::weight(const std::string &name) {
  const TensorSpec *t = spec.tensor(name);
  if (!t) {
    error = "import: tensor " + name + " is not in the model spec";
    return Value();
  }
  // The dialect's dtypes are the type table's computable rows.
  if (!isComputable(t->type)) {
    error = "import: tensor " + name + ": type " + typeName(t->type) +
            " has no pinfer dtype, expected " + computableTypeNames();
    return Value();
  }
  auto type = WeightType::getChecked([&]() { return emitError(loc); }, &ctx,
                                     t->type, ArrayRef<int64_t>(t->ne));
  if (!type) {
    error = "import: tensor " + name + " has an invalid shape";
    return Value();
  }
  return b.create<WeightOp>(loc, type, name, Attribute());
}

OwningOpRef<ModuleOp> Importer::run() {
  const ModelParams &p = spec.params;
  if (p.nLayer <= 0 || p.nEmbd <= 0 || p.nFF <= 0 || p.nVocab <= 0 ||
      p.nHead <= 0) {
    error = "import: model spec has a zero dimension (n_layer, n_embd, n_ff, "
            "n_vocab or n_head)";
    return nullptr;
  }
  // The dialect spells the runtime's FfnActivation by the same names.
  Activation act = Activation::silu;
  switch (p.activation) {
  case FfnActivation::SiLU:
    act = Activation::silu;
    break;
  case FfnActivation::ReLU:
    act = Activation::relu;
    break;
  case FfnActivation::DReLU:
    act = Activation::drelu;
    break;
  case FfnActivation::GeluTanh:
    act = Activation::gelu;
    break;
  }
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  NamedAttrList model;
  model.append("activation", ActivationAttr::get(&ctx, act));
  model.append("arch", b.getStringAttr(p.arch));
  model.append("n_ctx_train", b.getI64IntegerAttr(p.nCtxTrain));
  model.append("n_layer", b.getI64IntegerAttr(p.nLayer));
  (*module)->setAttr("pinfer.model", model.getDictionary(&ctx));
  if (spec.hasPredictors) {
    auto toType = [&](const TensorSpec &t) -> Type {
      return isComputable(t.type)
                 ? WeightType::get(&ctx, t.type, ArrayRef<int64_t>(t.ne))
                 : Type();
    };
    // One type per layer: each layer's predictor has its own rank.
    SmallVector<Attribute> fc1s, fc2s;
    for (size_t l = 0; l < spec.fc1.size() && l < spec.fc2.size(); ++l) {
      Type fc1 = toType(spec.fc1[l]), fc2 = toType(spec.fc2[l]);
      if (!fc1 || !fc2) {
        error = "import: predictor weights of layer " + std::to_string(l) +
                " have a type with no pinfer dtype";
        return nullptr;
      }
      fc1s.push_back(TypeAttr::get(fc1));
      fc2s.push_back(TypeAttr::get(fc2));
    }
    NamedAttrList pred;
    pred.append("fc1", b.getArrayAttr(fc1s));
    pred.append("fc2", b.getArrayAttr(fc2s));
    (*module)->setAttr("pinfer.predictor", pred.getDictionary(&ctx));
  }

  auto vec = RankedTensorType::get({p.nEmbd}, b.getF32Type());
  auto logitsType = RankedTensorType::get({p.nVocab}, b.getF32Type());
  auto i32 = b.getI32Type();
  b.setInsertionPointToEnd(module->getBody());
  auto func = b.create<func::FuncOp>(
      loc, "forward", b.getFunctionType({i32, i32}, {logitsType}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value token = entry->getArgument(0), pos = entry->getArgument(1);

  const ArchInfo *arch = findArch(p.arch);
  if (!arch) {
    error = "import: " + unsupportedArchMessage(p.arch);
    return nullptr;
  }
  // The body below is the forward pass of runtime/forward.cpp: LLaMA's,
  // with Gemma 3's additions where the row has them.
  if (arch->norm != NormStyle::RMSNorm) {
    error = std::string("import: architecture '") + arch->name +
            "' has a norm style the importer does not build";
    return nullptr;
  }
  Value embd = weight(TensorKind::TokenEmbd);
  if (!embd)
    return nullptr;
  Value x = b.create<EmbeddingOp>(loc, vec, token, embd);
  // What the attention and embedding ops compute beyond LLaMA's, recorded
  // on them (the CPU runs attention; a GPU attention op would read these).
  if (arch->scaleEmbedding)
    x.getDefiningOp()->setAttr("scale_by_sqrt_n_embd", b.getUnitAttr());
  float eps = p.normEps > 0 ? p.normEps : 1e-5f;
  int64_t headDim = p.headDim ? p.headDim : p.nEmbd / p.nHead;
  int64_t nKV = p.nKvHead ? p.nKvHead : p.nHead;
  int64_t nRot = p.nRot ? p.nRot : headDim;
  for (int l = 0; l < p.nLayer; ++l) {
    loc = NameLoc::get(b.getStringAttr(layerName(l)));
    Value attnNorm = weight(TensorKind::AttnNorm, l);
    if (!attnNorm)
      return nullptr;
    Value h = b.create<RmsNormOp>(loc, x, attnNorm, eps);
    Value wq = weight(TensorKind::AttnQ, l);
    Value wk = weight(TensorKind::AttnK, l);
    Value wv = weight(TensorKind::AttnV, l);
    Value wo = weight(TensorKind::AttnOutput, l);
    if (!wq || !wk || !wv || !wo)
      return nullptr;
    Value attn = b.create<AttentionOp>(
        loc, vec, h, pos, wq, wk, wv, wo, b.getI64IntegerAttr(l),
        b.getI64IntegerAttr(p.nHead), b.getI64IntegerAttr(nKV),
        b.getI64IntegerAttr(headDim), b.getF32FloatAttr(p.ropeBase),
        b.getI64IntegerAttr(nRot), DeviceAttr());
    Operation *attnOp = attn.getDefiningOp();
    if (arch->rope == RopeStyle::Neox)
      attnOp->setAttr("rope_style", b.getStringAttr(ropeStyleName(arch->rope)));
    if (p.isSlidingLayer(l)) {
      attnOp->setAttr("window", b.getI64IntegerAttr(p.slidingWindow));
      attnOp->setAttr("rope_base_local", b.getF32FloatAttr(p.ropeBaseLocal));
    }
    // Extra small tensors by name: norms (Gemma 3) and biases (Qwen2).
    const std::pair<TensorKind, const char *> extras[] = {
        {TensorKind::AttnQNorm, "q_norm"}, {TensorKind::AttnKNorm, "k_norm"},
        {TensorKind::AttnQBias, "q_bias"}, {TensorKind::AttnKBias, "k_bias"},
        {TensorKind::AttnVBias, "v_bias"}};
    for (const auto &[k, attr] : extras)
      if (spec.tensor(tensorName(k, l)))
        attnOp->setAttr(attr, b.getStringAttr(tensorName(k, l)));
    if (spec.tensor(tensorName(TensorKind::PostAttnNorm, l))) {
      Value post = weight(TensorKind::PostAttnNorm, l);
      if (!post)
        return nullptr;
      attn = b.create<RmsNormOp>(loc, attn, post, eps);
    }
    x = b.create<AddOp>(loc, vec, x, attn, DeviceAttr());
    Value ffnNorm = weight(TensorKind::FfnNorm, l);
    if (!ffnNorm)
      return nullptr;
    h = b.create<RmsNormOp>(loc, x, ffnNorm, eps);
    Value gate = weight(TensorKind::FfnGate, l);
    Value up = weight(TensorKind::FfnUp, l);
    Value down = weight(TensorKind::FfnDown, l);
    if (!gate || !up || !down)
      return nullptr;
    Value ffn = b.create<FFNOp>(
        loc, vec, h, gate, up, down, ActivationAttr::get(&ctx, act),
        b.getI64IntegerAttr(l), IntegerAttr(), Attribute());
    if (spec.tensor(tensorName(TensorKind::PostFfnNorm, l))) {
      Value post = weight(TensorKind::PostFfnNorm, l);
      if (!post)
        return nullptr;
      ffn = b.create<RmsNormOp>(loc, ffn, post, eps);
    }
    x = b.create<AddOp>(loc, vec, x, ffn, DeviceAttr());
  }
  loc = NameLoc::get(b.getStringAttr("output"));
  Value outNorm = weight(TensorKind::OutputNorm);
  Value out = spec.tiedOutput ? embd : weight(TensorKind::Output);
  if (!outNorm || !out)
    return nullptr;
  Value logits = b.create<LMHeadOp>(loc, logitsType, x, outNorm, out,
                                    b.getF32FloatAttr(eps), DeviceAttr());
  b.create<func::ReturnOp>(loc, logits);

  // Collect verifier messages instead of printing them.
  std::string diag;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    if (diag.empty())
      diag = d.str();
    return success();
  });
  if (failed(verify(*module))) {
    error = "import: the model IR does not verify: " + diag;
    return nullptr;
  }
  return module;
}

} // namespace

OwningOpRef<ModuleOp> importModel(MLIRContext &ctx, const ModelSpec &spec,
                                  std::string &error) {
  ctx.loadDialect<PInferDialect, func::FuncDialect>();
  return Importer(ctx, spec, error).run();
}

bool attachPlan(ModuleOp module, const Plan &plan, std::string &error) {
  MLIRContext *ctx = module.getContext();
  int64_t nLayer = 0;
  module.walk([&](FFNOp) { ++nLayer; });
  if (int64_t(plan.layers.size()) != nLayer) {
    error = "plan has " + std::to_string(plan.layers.size()) +
            " layers, the model has " + std::to_string(nLayer);
    return false;
  }
  Builder b(ctx);
  auto gpu = DeviceAttr::get(ctx, Device::gpu);
  auto cpu = DeviceAttr::get(ctx, Device::cpu);
  SmallVector<Attribute> layers;
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const LayerPlan &lp = plan.layers[l];
    NamedAttrList entry;
    entry.append("attention", lp.attentionOnGPU ? gpu : cpu);
    entry.append("hot", b.getI64IntegerAttr(lp.nHot));
    if (!lp.order.empty()) {
      SmallVector<int32_t> order(lp.order.begin(), lp.order.end());
      entry.append("order",
                   makeNeuronTable(ctx, layerName(int(l)) + ".plan", order));
    }
    layers.push_back(entry.getDictionary(ctx));
  }
  NamedAttrList attrs;
  attrs.append("layers", b.getArrayAttr(layers));
  attrs.append("lm_head", plan.outputOnGPU ? gpu : cpu);
  module->setAttr("pinfer.plan", attrs.getDictionary(ctx));
  return true;
}

} // namespace pinfer
