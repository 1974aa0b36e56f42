//===- PredictorAttach.h - give a model trained predictors ------*- C++ -*-===//
//
// Predicted mode reads predictors from the model (blk.N.fc1/fc2, as
// PowerInfer files store them). For a model that has none, pinferc trains
// them from the trace's samples (or loads a predictor file) and compiles
// from a view of the model that carries them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <memory>
#include <string>

namespace pinfer {

class GGUFFile;
class Progress;
struct Trace;

// `model` as a file that also holds the predictor tensors of `predictors`
// (a file from writePredictorFile; the model's own predictor tensors, if
// any, dropped), with each layer's threshold folded into fc2.bias so that
// one threshold, 0, serves all layers (powerinfer.sparse_threshold = 0).
// A view (GGUFFile::view) that owns both files: nothing is written, where
// a copy of a 7B model would be gigabytes.
std::unique_ptr<GGUFFile>
modelWithPredictors(std::unique_ptr<GGUFFile> model,
                    std::unique_ptr<GGUFFile> predictors, std::string &error);

// Trains predictors from `trace` (which must hold samples) and writes them
// to `path`: a "train" step of `progress` counting (layer, epoch) steps,
// then, with `report`, the per-layer report on stderr once the step's line
// is finished.
bool trainPredictorFile(const Trace &trace, const std::string &path,
                        int nThreads, Progress &progress, bool report,
                        std::string &error);

} // namespace pinfer
