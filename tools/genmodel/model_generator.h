// Synthetic LLaMA-architecture GGUF models with planted power-law activation
// sparsity. No real weights can be downloaded where pinferc is built and
// tested, yet profiling, placement and prediction need a model whose neurons
// fire with known, skewed probabilities. This library writes such models of
// any shape and weight type, streaming tensor by tensor, deterministically
// from a seed; docs/test-models.md explains how the sparsity is planted.
#pragma once

#include "runtime/arch.h" // FfnActivation, activationName, parseActivation
#include "runtime/ggml_types.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

// Residual-stream dimensions [0, kBiasChannelDims) form the constant bias
// channel: every token embedding holds the same value there and no layer
// writes to them, so a gate weight on these dimensions acts as a per-neuron
// bias. It spans exactly one Q8_0/Q4_0 block so that quantization keeps the
// (constant) block exact.
constexpr int64_t kBiasChannelDims = 32;

struct GenModelConfig {
  std::string name = "pinfer-synthetic";
  // A row of runtime/arch.h whose layer is LLaMA's plus small extras the
  // generator can fill: llama, qwen2 (Q/K/V biases, NeoX rope).
  std::string arch = "llama";
  int64_t nEmbd = 128;
  int64_t nFF = 512;
  int64_t nLayer = 2;
  int64_t nHead = 4;
  int64_t nKVHead = 2;
  int64_t nCtx = 256;
  GGMLType type = GGMLType::F16; // matrices; norms are always F32
  FfnActivation activation = FfnActivation::ReLU;
  uint64_t seed = 1;
  std::string vocabPath; // GGUF whose tokenizer.* keys are copied

  // Planted sparsity: neuron firing probabilities follow a power law in a
  // random per-layer rank order, with this mean, and the top 10 % of neurons
  // carrying `hotShare` of all firings (alpha > 0 fixes the exponent instead).
  double activeFraction = 0.10;
  double hotShare = 0.80;
  double alpha = 0;
  double maxRate = 0.99; // the hottest neurons are clipped here

  // PowerInfer layout: PWRI magic, predictors, transposed down projection.
  bool powerInfer = false;
  // ffn_down beside ffn_down_t: pinferc packs quantised types from it at
  // their own size; PowerInfer refuses such files.
  bool withFfnDown = false;
  int64_t predictorRank = 0; // 0: enough to see the whole planted structure
  float sparseThreshold = 0.0f;
  // Share of each gate row's variance that lies in a low-rank subspace the
  // predictor can see; the rest is what a predictor cannot know.
  double predictorFidelity = 0.9;

  float rmsEps = 1e-5f;
  float ropeFreqBase = 10000.0f;
  // No output.weight: the head reuses token_embd, as in Gemma's and
  // smaller LLaMA-family files.
  bool tiedOutput = false;
  int threads = 0; // 0: all hardware threads; the output never depends on it
};

// Presets: tiny, small, medium, 1b, 7b, 70b (see docs/test-models.md). Only the
// shape fields are changed.
bool applyPreset(const std::string &name, GenModelConfig &cfg,
                 std::string &error);
std::vector<std::string> presetNames();

// Checks shapes and parameters; one line naming the offending option.
bool validateConfig(const GenModelConfig &cfg, std::string &error);

// Rank of the planted low-rank gate structure and the predictor rank used
// for `cfg` (the explicit one, or the default that captures all of it).
int64_t plantedGateRank(const GenModelConfig &cfg);
int64_t effectivePredictorRank(const GenModelConfig &cfg);

// p(rank) = min(maxRate, scale * (rank + 1)^-alpha), mean activeFraction.
struct PowerLawFit {
  double alpha = 0;
  double scale = 0;
  double meanRate = 0;
  double top1Share = 0;        // share of all firings carried by the top 1 %
  double top10Share = 0;       // ... top 10 %
  double top20Share = 0;       // ... top 20 %
  bool hotShareReached = true; // false when hotShare was out of reach
  std::vector<float> byRank;   // [n] descending
};
PowerLawFit fitPowerLaw(int64_t n, double activeFraction, double hotShare,
                        double alpha, double maxRate);

// Planted probability that neuron i of `layer` fires (its gated activation
// is non-zero for relu/drelu; gate pre-activation positive for silu). The
// same numbers are stored in the file under pinfer.planted.firing_rate.
std::vector<float> plantedFiringRates(const GenModelConfig &cfg, int64_t layer);

// Inverse of the standard normal CDF.
double inverseNormalCdf(double p);

struct GenModelReport {
  int64_t nVocab = 0;
  uint64_t tensorBytes = 0; // sum of tensor data sizes
  uint64_t fileBytes = 0;   // 0 for a dry run
  int64_t nParams = 0;
  PowerLawFit fit;
  double seconds = 0;
};

// Computes the report (sizes, fit) without writing anything.
bool planModel(const GenModelConfig &cfg, GenModelReport &report,
               std::string &error);
// Writes the model to `path` (through PATH.tmp, renamed on success).
bool generateModel(const GenModelConfig &cfg, const std::string &path,
                   GenModelReport &report, std::string &error);

} // namespace pinfer
