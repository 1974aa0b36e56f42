// Run-time evaluation of an activation predictor: the small two-layer network
// that, from the FFN input of one layer, guesses which FFN neurons will fire
// so that only those rows of the gate/up/down matrices are computed. Works on
// weights of any computable type straight from a mapped GGUF (PowerInfer's
// own predictors or the ones pinferc trains), through the dense kernels.
#pragma once

#include "runtime/model.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;
class ThreadPool;

// One layer's predictor: logits = fc2 · relu(fc1 · x + b1) + b2, and neuron i
// is predicted active when logits[i] > threshold.
struct PredictorWeights {
  Weight fc1;                  // {n_embd, rank}: rank rows of length n_embd
  Weight fc2;                  // {rank, n_ff}: n_ff rows of length rank
  const float *b1 = nullptr;   // [rank] or null (PowerInfer files have none)
  const float *b2 = nullptr;   // [n_ff] or null
  float threshold = 0.0f;

  int64_t nEmbd() const { return fc1.cols; }
  int64_t rank() const { return fc1.rows; }
  int64_t nFF() const { return fc2.rows; }
};

// Binds blk.<layer>.fc1.weight / fc2.weight (and the optional f32
// blk.<layer>.fc1.bias / fc2.bias) of `file`, which must outlive the result.
// Checks that the shapes chain (fc1 rows == fc2 cols), that the types are
// computable and that the data lies inside the file. `threshold` is stored
// as given.
bool bindPredictor(const GGUFFile &file, uint32_t layer, float threshold,
                   PredictorWeights &out, std::string &error);

// Scratch of one evaluation, reused across tokens so that a prediction
// allocates nothing after the first call.
struct PredictorScratch {
  std::vector<float> hidden; // [rank]
  std::vector<float> logits; // [n_ff]
};

// Computes the logits of `x` ([n_embd]) into scratch.logits. With a pool the
// two products are split over its threads; without one they run on the
// calling thread.
void predictorLogits(const PredictorWeights &p, const float *x,
                     PredictorScratch &scratch, ThreadPool *pool = nullptr);
// The same for the scores of neurons [first, end) only (scratch.logits
// still holds n_ff values; the others are left as they were): a half's
// predict step scores its own rows. `hiddenReady`: scratch.hidden already
// holds fc1's output for this x (the other half's step made it), and only
// fc2's rows run.
void predictorLogits(const PredictorWeights &p, const float *x,
                     PredictorScratch &scratch, ThreadPool *pool, int64_t first,
                     int64_t end, bool hiddenReady = false);

// Predicted-active neurons of `x`, ascending, into `active` (cleared first).
// Returns their number.
size_t predictActive(const PredictorWeights &p, const float *x,
                     PredictorScratch &scratch, std::vector<int32_t> &active,
                     ThreadPool *pool = nullptr);

// Same as a bit mask: mask[(n_ff + 7) / 8], bit i (LSB first) set when
// neuron i is predicted active. Returns the number of set bits.
size_t predictMask(const PredictorWeights &p, const float *x,
                   PredictorScratch &scratch, std::vector<uint8_t> &mask,
                   ThreadPool *pool = nullptr);

// Counts of one comparison of predicted against true firing masks, summed
// over tokens: recall = truePositive / (truePositive + falseNegative),
// predicted sparsity = 1 - (truePositive + falsePositive) / total.
struct PredictionCounts {
  uint64_t truePositive = 0;
  uint64_t falsePositive = 0;
  uint64_t falseNegative = 0;
  uint64_t total = 0; // neurons x tokens

  void add(const uint8_t *predicted, const uint8_t *actual, int64_t nFF);
  double recall() const;
  double predictedSparsity() const;
  double trueSparsity() const;
};

} // namespace pinfer
