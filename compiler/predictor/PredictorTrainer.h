//===- PredictorTrainer.h - activation predictors from traces ----*- C++ -*-===//
//
// Trains, per layer, the low-rank two-layer network that predicts from the
// FFN input which FFN neurons fire: logits = fc2 relu(fc1 x + b1) + b2. It
// learns from the (input, firing mask) samples of a trace, minimising a
// binary cross-entropy that up-weights firing neurons, then shifts a
// per-layer threshold on held-out samples until the target recall is met,
// and grows the rank of layers whose predicted sparsity stays too far below
// their true sparsity. docs/predictors.md describes the method and figures.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/Trace.h"
#include "runtime/ggml_types.h"

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace pinfer {

// What the trainer reports after each training round of a layer.
struct PredictorProgress {
  uint32_t layer = 0;
  uint32_t nLayer = 0;
  uint32_t rank = 0;
  int epoch = 0;     // epochs done in this round
  int epochs = 0;    // epochs of this round
  double seconds = 0; // since training started
  // Set on the call made after a round's held-out evaluation.
  bool evaluated = false;
  double predictedSparsity = 0;
  double trueSparsity = 0;
};

struct PredictorOptions {
  double targetRecall = 0.95; // share of firing neurons the predictor keeps
  double holdout = 0.2;       // share of each layer's samples kept out of
                              // training to set the threshold and measure
  uint32_t initialRank = 64;
  uint32_t maxRank = 1024;
  // A layer grows (rank x 2) while its held-out predicted sparsity is more
  // than this below the layer's true sparsity.
  double sparsityGap = 0.05;
  // ... and while the last growth raised it by at least this much: where
  // more rank stops helping (too few samples for the input width, or
  // structure a low-rank network cannot see) it is not spent.
  double minGain = 0.01;
  uint64_t sizeBudget = 0; // bytes of all stored predictors; 0: no limit
  int epochs = 12;         // first round of a layer
  int growEpochs = 8;      // each round after a growth (warm-started)
  int batchSize = 128;
  float learningRate = 2e-3f; // Adam
  // Weight of a firing neuron in the loss; 0 picks sqrt(off / on) of the
  // layer's training samples, clamped to [1, 16].
  float positiveWeight = 0;
  GGMLType type = GGMLType::F16; // storage type of fc1/fc2: F16 or F32
  uint64_t seed = 1;
  int nThreads = 0; // < 1: all hardware threads
  // Called after every epoch and after every evaluation; training never
  // depends on it.
  std::function<void(const PredictorProgress &)> progress;
};

// One trained layer. Biases are kept apart from the weights because
// PowerInfer-style files have none; they are stored as f32 tensors.
struct LayerPredictor {
  uint32_t rank = 0;
  std::vector<float> fc1; // [rank][n_embd]
  std::vector<float> b1;  // [rank]
  std::vector<float> fc2; // [n_ff][rank]
  std::vector<float> b2;  // [n_ff]
  float threshold = 0;    // active when logit > threshold

  // Measured on the held-out samples with `threshold`.
  double recall = 0;
  double predictedSparsity = 0; // share of neurons predicted off
  double trueSparsity = 0;      // share of neurons that did not fire
  uint32_t trainSamples = 0;
  uint32_t evalSamples = 0;
  int epochs = 0;      // over all rounds
  double seconds = 0;  // training time of this layer
  uint64_t bytes = 0;  // stored size (weights in the storage type + biases)
};

struct PredictorSet {
  std::string modelIdentity; // from the trace; refused on another model
  std::string activation;
  uint32_t nLayer = 0;
  uint32_t nEmbd = 0;
  uint32_t nFF = 0;
  GGMLType type = GGMLType::F16;
  double targetRecall = 0.95;
  std::vector<LayerPredictor> layers; // [n_layer]
  double seconds = 0;                 // total training time

  uint64_t bytes() const;
};

// Bytes one layer's predictor occupies at `rank` when stored as `type`.
uint64_t predictorBytes(uint32_t rank, uint32_t nEmbd, uint32_t nFF,
                        GGMLType type);

// Trains one predictor per layer of `trace`, which must hold samples for
// every layer. Deterministic for a given trace, options and thread count
// independent: the result does not depend on nThreads.
bool trainPredictors(const Trace &trace, const PredictorOptions &opts,
                     PredictorSet &out, std::string &error);

// Per-layer table (rank, bytes, recall, predicted and true sparsity,
// epochs, seconds) and totals.
void printPredictorReport(const PredictorSet &set, std::ostream &os);

} // namespace pinfer
