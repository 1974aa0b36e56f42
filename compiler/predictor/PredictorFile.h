//===- PredictorFile.h - trained predictors as a GGUF file -------*- C++ -*-===//
//
// Stores a PredictorSet as GGUF: per layer blk.N.fc1.weight {n_embd, rank}
// and blk.N.fc2.weight {rank, n_ff} in f16 or f32 (the PowerInfer names and
// shapes, so runtime/predictor.h binds either kind of file), f32 biases
// blk.N.fc1.bias / blk.N.fc2.bias, and metadata under pinfer.predictor.*:
// the model identity of the trace (a file trained for another model is
// refused), shapes, per-layer rank, threshold and held-out figures.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/predictor/PredictorTrainer.h"
#include "runtime/predictor.h"

#include <memory>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;

// Writes `set` to `path` (through PATH.tmp and a rename).
bool writePredictorFile(const std::string &path, const PredictorSet &set,
                        std::string &error);

// A predictor file bound for evaluation; the weights point into the mapping
// held by `file`.
struct LoadedPredictors {
  std::unique_ptr<GGUFFile> file;
  std::string modelIdentity;
  std::string activation;
  uint32_t nLayer = 0, nEmbd = 0, nFF = 0;
  double targetRecall = 0;
  std::vector<PredictorWeights> layers; // [n_layer], thresholds set
  std::vector<float> recall;            // [n_layer] held-out, at training
  std::vector<float> predictedSparsity; // [n_layer] held-out, at training

  LoadedPredictors();
  ~LoadedPredictors();
  LoadedPredictors(LoadedPredictors &&);
  LoadedPredictors &operator=(LoadedPredictors &&);
};

// Opens `path` and binds every layer. When `expectedIdentity` is non-empty
// and the file records a different (non-empty) identity, fails with
// "PATH: predictors were trained for model X, expected Y". Shapes are
// checked against the metadata and, when non-zero, against `nLayer`,
// `nEmbd` and `nFF`.
bool readPredictorFile(const std::string &path,
                       const std::string &expectedIdentity, uint32_t nLayer,
                       uint32_t nEmbd, uint32_t nFF, LoadedPredictors &out,
                       std::string &error);

} // namespace pinfer
