//===- PredictorAttach.h - give a model trained predictors ------*- C++ -*-===//
//
// Predicted mode reads predictors from the model (blk.N.fc1/fc2, as
// PowerInfer files store them). For a model that has none, pinferc trains
// them from the trace's samples (or loads a predictor file) and compiles
// from a copy of the model that carries them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace pinfer {

class GGUFFile;
struct Trace;

// Writes `path`: every key and tensor of `model` plus the predictor tensors
// of `predictors` (a file from writePredictorFile), with each layer's
// threshold folded into fc2.bias so that one threshold, 0, serves all
// layers (powerinfer.sparse_threshold = 0).
bool writeModelWithPredictors(const GGUFFile &model, const GGUFFile &predictors,
                              const std::string &path, std::string &error);

// Trains predictors from `trace` (which must hold samples) and writes them
// to `path`, printing the per-layer report unless `quiet`. `progress`, if
// set, hears the (layer, epoch) steps done of all, in place of the
// trainer's own bar on a terminal.
bool trainPredictorFile(
    const Trace &trace, const std::string &path, int nThreads, bool quiet,
    std::string &error,
    const std::function<void(uint64_t, uint64_t)> &progress = nullptr);

} // namespace pinfer
