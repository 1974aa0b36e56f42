// The independent oracle of the lowering: program descriptions built
// straight from a placement plan (or all cold), without the IR, steps
// included. The
// compiler builds its programs from the scheduled IR only
// (compiler/LowerToProgram.h); tests compare the two, and use the all-cold
// description where they need a program without compiling one.
#pragma once

#include "codegen/ProgramDesc.h"
#include "compiler/placement/Plan.h"
#include "runtime/arch.h"
#include "runtime/gguf.h"
#include "runtime/model.h"

#include <algorithm>
#include <string>
#include <vector>

namespace pinfer {

// Types and predictor shapes of every layer. Predicted mode needs the
// predictors PowerInfer files store: blk.N.fc1 {n_embd, R}, fc2 {R, n_ff}.
inline bool fillTypes(const Model &model, SparsityMode mode, ProgramDesc &out,
                      std::string &error) {
  out.params = model.params();
  out.mode = mode;
  const GGUFFile &f = model.file();
  std::string name;
  std::string ignored;
  if (model.file().getOptString("general.name", name, ignored))
    out.modelName = name;
  out.layers.resize(out.params.nLayer);
  for (int l = 0; l < out.params.nLayer; ++l) {
    const LayerWeights &w = model.layer(l);
    LayerDesc &d = out.layers[l];
    d.gateType = w.gate.type;
    d.upType = w.up.type;
    d.downType = w.down.type;
    d.downTType = transposedDownType(w.down.type);
    // PowerInfer's ffn_down_t alone: its rows, where their type is kept.
    const GGUFTensor *downT = f.tensor(tensorName(TensorKind::FfnDownT, l));
    if (downT && !f.tensor(tensorName(TensorKind::FfnDown, l)))
      d.downTType = downT->type == GGMLType::Q8_0 ||
                            downT->type == GGMLType::Q4_0 ||
                            typeTraits(downT->type)->blockSize == 1
                        ? downT->type
                        : GGMLType::F32;
    if (mode != SparsityMode::Predicted)
      continue;
    const std::string fc1Name = tensorName(TensorKind::PredFc1, l),
                      fc2Name = tensorName(TensorKind::PredFc2, l);
    const GGUFTensor *fc1 = f.tensor(fc1Name);
    const GGUFTensor *fc2 = f.tensor(fc2Name);
    if (!fc1 || !fc2 || fc1->ne[0] != out.params.nEmbd ||
        fc2->ne[0] != fc1->ne[1] || fc2->ne[1] != out.params.nFF ||
        fc1->ne[1] < 1) {
      error = f.path() + ": tensor " + fc1Name + "/" + fc2Name +
              ": missing or misshapen, expected "
              "predictors {n_embd, R} and {R, n_ff} for --sparsity predicted";
      return false;
    }
    d.predictorRank = uint32_t(fc1->ne[1]);
    d.fc1Type = packedPredictorType(fc1->type, fc1->ne[0]);
    d.fc2Type = packedPredictorType(fc2->type, fc2->ne[0]);
  }
  if (mode == SparsityMode::Predicted &&
      !f.getOptF32(kSparseThresholdKey, out.predictorThreshold, error))
    return false;
  return true;
}

// The steps pinfer-schedule gives a layer, stated from its halves alone:
// the GPU half (after its predictor) is enqueued first, the CPU half (after
// its own) runs
// between the GPU half's record and the one wait, and the FFN's output (the
// merge of two halves, or the one half) is added to the residual last.
inline std::vector<ProgramStep> expectedSteps(const LayerDesc &d) {
  auto step = [](StepKind kind, StepDevice device = StepDevice::None,
                 StepDevice from = StepDevice::None) {
    ProgramStep s;
    s.kind = kind;
    s.device = device;
    s.from = from;
    return s;
  };
  const bool hot = !d.hot.empty(), cold = !d.cold.empty();
  std::vector<ProgramStep> steps = {
      step(StepKind::AttnNorm), step(StepKind::Attention, StepDevice::Cpu),
      step(StepKind::AttnAdd), step(StepKind::FfnNorm)};
  if (hot)
    steps.push_back(step(StepKind::Transfer, StepDevice::Gpu));
  if (hot && d.predictorRank)
    steps.push_back(step(StepKind::Predict, StepDevice::Gpu));
  if (hot)
    for (ProgramStep s :
         {step(StepKind::FfnHalf, StepDevice::Gpu),
          step(StepKind::Transfer, StepDevice::Cpu), step(StepKind::Record)})
      steps.push_back(s);
  if (cold && d.predictorRank)
    steps.push_back(step(StepKind::Predict, StepDevice::Cpu));
  if (cold)
    steps.push_back(step(StepKind::FfnHalf, StepDevice::Cpu));
  if (hot)
    steps.push_back(step(StepKind::Wait));
  if (hot && cold)
    steps.push_back(step(StepKind::Merge));
  steps.push_back(step(StepKind::FfnAdd, StepDevice::None,
                       hot && cold ? StepDevice::None
                       : hot       ? StepDevice::Gpu
                                   : StepDevice::Cpu));
  return steps;
}

inline void fillExpectedSteps(ProgramDesc &desc) {
  for (LayerDesc &d : desc.layers)
    d.steps = expectedSteps(d);
}

// A dense layer with no GPU neuron keeps the source's down matrix, when
// the file has one (runtime/ggml_types.h, DownLayout::Source); so does one
// with no CPU neuron of a block type (whose neuron-major rows would be a
// split layout's). Its neurons are then in id order.
inline void fillSourceDown(const Model &model, ProgramDesc &desc) {
  for (size_t l = 0; l < desc.layers.size(); ++l) {
    LayerDesc &d = desc.layers[l];
    const bool hasDown =
        model.file().tensor(tensorName(TensorKind::FfnDown, int(l))) != nullptr;
    const bool splitRows = downLayoutFor(d.downType) != DownLayout::Rows;
    d.sourceDown = desc.mode == SparsityMode::Dense && hasDown &&
                   (d.hot.empty() || (d.cold.empty() && splitRows));
    std::vector<uint32_t> &ids = d.hot.empty() ? d.cold : d.hot;
    if (d.sourceDown)
      for (uint32_t i = 0; i < ids.size(); ++i)
        ids[i] = i;
  }
}

inline bool programAllCold(const Model &model, SparsityMode mode,
                           ProgramDesc &out, std::string &error) {
  out = ProgramDesc();
  if (!fillTypes(model, mode, out, error))
    return false;
  out.target = "cpu";
  for (LayerDesc &d : out.layers)
    for (int i = 0; i < out.params.nFF; ++i)
      d.cold.push_back(uint32_t(i));
  fillSourceDown(model, out);
  fillExpectedSteps(out);
  return true;
}

inline bool programFromPlan(const Model &model, const Plan &plan,
                            SparsityMode mode, const std::string &smArch,
                            ProgramDesc &out, std::string &error) {
  out = ProgramDesc();
  if (!fillTypes(model, mode, out, error))
    return false;
  out.target = plan.target;
  out.smArch = smArch;
  out.vramBillBytes = plan.billBytes;
  const ModelParams &p = out.params;
  if (plan.layers.size() != size_t(p.nLayer) || plan.nFF != uint32_t(p.nFF)) {
    error = "plan for target " + plan.target + ": " +
            std::to_string(plan.layers.size()) + " layers of " +
            std::to_string(plan.nFF) + " neurons, expected " +
            std::to_string(p.nLayer) + " layers of " + std::to_string(p.nFF);
    return false;
  }
  for (int l = 0; l < p.nLayer; ++l) {
    const LayerPlan &lp = plan.layers[l];
    LayerDesc &d = out.layers[l];
    if (lp.order.size() != size_t(p.nFF) || lp.nHot > lp.order.size()) {
      error = "plan layer " + std::to_string(l) + ": neuron order of " +
              std::to_string(lp.order.size()) + " ids with " +
              std::to_string(lp.nHot) + " hot, expected a permutation of " +
              std::to_string(p.nFF) + " ids";
      return false;
    }
    std::vector<uint8_t> seen(p.nFF, 0);
    for (uint32_t id : lp.order) {
      if (id >= uint32_t(p.nFF) || seen[id]) {
        error = "plan layer " + std::to_string(l) + ": neuron id " +
                std::to_string(id) +
                " is out of range or repeated, expected "
                "a permutation of 0.." +
                std::to_string(p.nFF - 1);
        return false;
      }
      seen[id] = 1;
    }
    // Without a GPU in the target the whole layer is cold.
    uint32_t nHot = smArch.empty() ? 0 : lp.nHot;
    d.hot.assign(lp.order.begin(), lp.order.begin() + nHot);
    std::sort(d.hot.begin(), d.hot.end()); // as LowerToProgram lists them
    d.cold.assign(lp.order.begin() + nHot, lp.order.end());
    d.attentionOnGPU = !smArch.empty() && lp.attentionOnGPU;
  }
  // Predicted mode: each half runs its own predictor, the GPU's too.
  fillSourceDown(model, out);
  fillExpectedSteps(out);
  return true;
}

} // namespace pinfer
