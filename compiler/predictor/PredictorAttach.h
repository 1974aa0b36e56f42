//===- PredictorAttach.h - give a model trained predictors ------*- C++ -*-===//
//
// Predicted mode reads predictors from the model (blk.N.fc1/fc2, as
// PowerInfer files store them). For a model that has none, pinferc trains
// them from the trace's samples (or loads a predictor file) and compiles
// from a copy of the model that carries them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace pinfer {

class GGUFFile;
class Progress;
struct Trace;

// Writes `path`: every key and tensor of `model` plus the predictor tensors
// of `predictors` (a file from writePredictorFile), with each layer's
// threshold folded into fc2.bias so that one threshold, 0, serves all
// layers (powerinfer.sparse_threshold = 0).
bool writeModelWithPredictors(const GGUFFile &model, const GGUFFile &predictors,
                              const std::string &path, std::string &error);

// Trains predictors from `trace` (which must hold samples) and writes them
// to `path`: a "train" step of `progress` counting (layer, epoch) steps,
// then, with `report`, the per-layer report on stderr once the step's line
// is finished.
bool trainPredictorFile(const Trace &trace, const std::string &path,
                        int nThreads, Progress &progress, bool report,
                        std::string &error);

} // namespace pinfer
