//===- PredictorAttach.cpp - give a model trained predictors --------------===//

#include "compiler/predictor/PredictorAttach.h"

#include "compiler/Progress.h"
#include "compiler/Trace.h"
#include "compiler/predictor/PredictorFile.h"
#include "compiler/predictor/PredictorTrainer.h"
#include "runtime/arch.h"
#include "runtime/gguf.h"

#include <cstring>
#include <iostream>
#include <memory>
#include <vector>

namespace pinfer {

// A predictor tensor of some layer: its kind and layer.
static bool isPredictorTensor(const std::string &name, TensorKind &kind,
                              int &layer) {
  if (!parseTensorName(name, kind, layer) || layer < 0)
    return false;
  return kind == TensorKind::PredFc1 || kind == TensorKind::PredFc1Bias ||
         kind == TensorKind::PredFc2 || kind == TensorKind::PredFc2Bias;
}
static bool isPredictorTensor(const std::string &name) {
  TensorKind kind;
  int layer;
  return isPredictorTensor(name, kind, layer);
}

std::unique_ptr<GGUFFile>
modelWithPredictors(std::unique_ptr<GGUFFile> model,
                    std::unique_ptr<GGUFFile> predictors, std::string &error) {
  // What the view's added tensors read: the predictor file's mapping, and
  // the fc2 biases with their thresholds folded in.
  struct Held {
    std::unique_ptr<GGUFFile> predictors;
    std::vector<std::vector<float>> biases;
  };
  auto held = std::make_shared<Held>();
  std::vector<GGUFTensor> added;
  for (const GGUFTensor &t : predictors->tensors()) {
    TensorKind kind;
    int layer;
    if (!isPredictorTensor(t.name, kind, layer))
      continue;
    added.push_back(t);
    if (kind != TensorKind::PredFc2Bias)
      continue;
    // Active where logit > threshold  <=>  logit - threshold > 0.
    float threshold = 0;
    if (!predictors->getF32("pinfer.predictor.threshold." +
                                std::to_string(layer),
                            threshold, error))
      return nullptr;
    if (t.type != GGMLType::F32 || t.nbytes != uint64_t(t.nelements()) * 4) {
      error = predictors->path() + ": tensor " + t.name +
              " is not f32, expected an f32 bias";
      return nullptr;
    }
    std::vector<float> &bias = held->biases.emplace_back(t.nelements());
    std::memcpy(bias.data(), t.data, t.nbytes);
    for (float &b : bias)
      b -= threshold;
    added.back().data = reinterpret_cast<const uint8_t *>(bias.data());
  }
  held->predictors = std::move(predictors);
  std::vector<GGUFKV> kvs{{kSparseThresholdKey, GGUFValue::ofF32(0.f)}};
  return GGUFFile::view(
      std::move(model),
      [](const GGUFTensor &t) { return !isPredictorTensor(t.name); },
      std::move(added), std::move(kvs), std::move(held), error);
}

bool trainPredictorFile(const Trace &trace, const std::string &path,
                        int nThreads, Progress &progress, bool report,
                        std::string &error) {
  if (trace.samples.empty()) {
    error = "the trace holds no (input, firing mask) samples to train "
            "predictors from; profile with --samples N (e.g. 4000)";
    return false;
  }
  PredictorOptions opts;
  opts.nThreads = nThreads;
  opts.progress = [&progress](const PredictorProgress &p) {
    if (!p.evaluated)
      progress.update(uint64_t(p.layer) * uint64_t(p.epochs) +
                          uint64_t(p.epoch),
                      uint64_t(p.nLayer) * uint64_t(p.epochs));
  };
  progress.begin("train",
                 "training predictors from " + std::to_string(trace.nTokens) +
                     " profiled tokens",
                 Progress::Unit::Items, "layer epochs");
  PredictorSet set;
  bool ok = trainPredictors(trace, opts, set, error);
  progress.end();
  if (!ok)
    return false;
  if (report)
    printPredictorReport(set, std::cerr);
  return writePredictorFile(path, set, error);
}

} // namespace pinfer
