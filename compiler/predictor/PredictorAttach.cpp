//===- PredictorAttach.cpp - give a model trained predictors --------------===//

#include "compiler/predictor/PredictorAttach.h"

#include "compiler/Trace.h"
#include "compiler/predictor/PredictorFile.h"
#include "compiler/predictor/PredictorTrainer.h"
#include "runtime/gguf.h"

#include <cstring>
#include <iostream>
#include <unistd.h>

namespace pinfer {

static bool isPredictorTensor(const std::string &name) {
  size_t dot = name.find('.', 4);
  if (name.rfind("blk.", 0) != 0 || dot == std::string::npos)
    return false;
  std::string rest = name.substr(dot + 1);
  return rest == "fc1.weight" || rest == "fc1.bias" || rest == "fc2.weight" ||
         rest == "fc2.bias";
}

bool writeModelWithPredictors(const GGUFFile &model, const GGUFFile &predictors,
                              const std::string &path, std::string &error) {
  GGUFWriter w;
  w.setPowerInfer(model.isPowerInfer());
  w.setAlignment(uint32_t(model.alignment()));
  for (const GGUFKV &kv : model.metadata())
    if (kv.key != "general.alignment")
      w.set(kv.key, kv.value);
  w.setF32("powerinfer.sparse_threshold", 0.f);
  auto copy = [&](const GGUFTensor &t) {
    std::vector<int64_t> ne(t.ne, t.ne + t.nDims);
    const uint8_t *src = t.data;
    w.addTensor(t.name, t.type, ne, [src](uint8_t *dst, size_t n) {
      std::memcpy(dst, src, n);
    });
  };
  for (const GGUFTensor &t : model.tensors())
    if (!isPredictorTensor(t.name))
      copy(t);
  for (const GGUFTensor &t : predictors.tensors()) {
    if (!isPredictorTensor(t.name))
      continue;
    size_t dot = t.name.find('.', 4);
    if (t.name.compare(dot + 1, std::string::npos, "fc2.bias") != 0) {
      copy(t);
      continue;
    }
    // Active where logit > threshold  <=>  logit - threshold > 0.
    std::string layer = t.name.substr(4, dot - 4);
    float threshold = 0;
    if (!predictors.getF32("pinfer.predictor.threshold." + layer, threshold,
                           error))
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
                        int nThreads, bool quiet, std::string &error) {
  if (trace.samples.empty()) {
    error = "the trace holds no (input, firing mask) samples to train "
            "predictors from; profile with --samples N (e.g. 4000)";
    return false;
  }
  PredictorOptions opts;
  opts.nThreads = nThreads;
  const bool bar = !quiet && ::isatty(2);
  if (bar)
    opts.progress = terminalPredictorProgress();
  PredictorSet set;
  bool ok = trainPredictors(trace, opts, set, error);
  if (bar)
    std::cerr << "\n";
  if (!ok)
    return false;
  if (!quiet)
    printPredictorReport(set, std::cerr);
  return writePredictorFile(path, set, error);
}

} // namespace pinfer
