//===- Profile.h - activation profiling with the dense reference -*- C++ -*-===//
//
// Runs the dense reference over a corpus and records, per layer and FFN
// neuron, on how many tokens it fired. ReLU families fire when their
// activation is non-zero; SiLU families when |silu(gate x)| exceeds a
// per-layer threshold calibrated on the first tokens to a target sparsity.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/Trace.h"

#include <cstdint>
#include <functional>
#include <string>

namespace pinfer {

class Model;
class Tokenizer;

struct ProfileOptions {
  uint64_t maxTokens = 0;     // 0: the whole corpus
  int nCtx = 0;               // chunk length; < 1: min(512, trained context)
  int nThreads = 0;           // < 1: all hardware threads
  uint32_t samplesPerLayer = 0; // (input, mask) pairs kept for predictors
  float targetSparsity = 0.5f;  // SiLU families only
  int calibrationTokens = 32;   // SiLU families: tokens used to set thresholds
  // Hears the tokens profiled so far and the corpus's token count.
  std::function<void(uint64_t, uint64_t)> progress;
  uint32_t seed = 1234;         // sample selection
};

// Profiles `model` on `text`. `identity` is the model's modelIdentity().
bool profileModel(const Model &model, const Tokenizer &tokenizer,
                  const std::string &identity, const std::string &text,
                  const ProfileOptions &opts, Trace &trace,
                  std::string &error);

} // namespace pinfer
