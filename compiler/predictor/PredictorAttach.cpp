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

bool writeModelWithPredictors(const GGUFFile &model, const GGUFFile &predictors,
                              const std::string &path, std::string &error) {
  GGUFWriter w;
  w.setPowerInfer(model.isPowerInfer());
  w.setAlignment(uint32_t(model.alignment()));
  for (const GGUFKV &kv : model.metadata())
    if (kv.key != "general.alignment")
      w.set(kv.key, kv.value);
  w.setF32(kSparseThresholdKey, 0.f);
  // Each source tensor's pages leave the resident set once copied: the
  // copy of a model of several GiB holds one tensor at a time, not the
  // whole source mapped.
  auto copy = [&](const GGUFTensor &t, const GGUFFile &file) {
    std::vector<int64_t> ne(t.ne, t.ne + t.nDims);
    const uint8_t *src = t.data;
    const GGUFFile *from = &file;
    w.addTensor(t.name, t.type, ne, [src, from](uint8_t *dst, size_t n) {
      std::memcpy(dst, src, n);
      from->releasePages(uint64_t(src - from->base()), n);
    });
  };
  for (const GGUFTensor &t : model.tensors())
    if (!isPredictorTensor(t.name))
      copy(t, model);
  for (const GGUFTensor &t : predictors.tensors()) {
    TensorKind kind;
    int layer;
    if (!isPredictorTensor(t.name, kind, layer))
      continue;
    if (kind != TensorKind::PredFc2Bias) {
      copy(t, predictors);
      continue;
    }
    // Active where logit > threshold  <=>  logit - threshold > 0.
    float threshold = 0;
    if (!predictors.getF32("pinfer.predictor.threshold." +
                               std::to_string(layer),
                           threshold, error))
      return false;
    if (t.type != GGMLType::F32) {
      error = predictors.path() + ": tensor " + t.name +
              " is not f32, expected an f32 bias";
      return false;
    }
    std::vector<int64_t> ne(t.ne, t.ne + t.nDims);
    const float *src = reinterpret_cast<const float *>(t.data);
    w.addTensor(t.name, t.type, ne, [src, threshold](uint8_t *dst, size_t n) {
      float *out = reinterpret_cast<float *>(dst);
      for (size_t i = 0; i < n / sizeof(float); ++i)
        out[i] = src[i] - threshold;
    });
  }
  return w.write(path, error);
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
