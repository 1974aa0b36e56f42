// Activation traces: how often each FFN neuron of each layer fired over a
// profiling corpus, plus optional (layer input, firing mask) samples for
// predictor training. The binary format is described in docs/trace-format.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;

// One predictor-training sample of one layer.
struct TraceSample {
  std::vector<float> input;  // [n_embd] the FFN input (after the FFN norm)
  std::vector<uint8_t> mask; // [(n_ff + 7) / 8] firing bits, LSB first
  bool fired(uint32_t neuron) const {
    return (mask[neuron >> 3] >> (neuron & 7)) & 1;
  }
};

struct Trace {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  std::string modelIdentity; // modelIdentity() of the profiled GGUF
  uint32_t nLayer = 0;
  uint32_t nFF = 0;
  uint32_t nEmbd = 0; // length of sample inputs; 0 when there are no samples
  uint64_t nTokens = 0;
  std::vector<std::vector<uint64_t>> fired; // [n_layer][n_ff] firing counts
  std::string activation;                   // "relu", "silu", "drelu", ...
  // SiLU families fire when |activation| exceeds a per-layer threshold
  // calibrated so that `targetSparsity` of the activations fall below it.
  // Both are 0 / empty for ReLU families, where firing means > 0.
  float targetSparsity = 0;
  std::vector<float> thresholds; // [n_layer] or empty
  std::vector<std::vector<TraceSample>> samples; // [n_layer][S] or empty

  // Firing frequency (per token) of one neuron.
  double frequency(uint32_t layer, uint32_t neuron) const {
    return nTokens ? double(fired[layer][neuron]) / double(nTokens) : 0.0;
  }
};

// A fast 64-bit identity of a GGUF model as 16 hex digits: FNV-1a over every
// tensor's name, type, shape and size and over the first and last 4 KiB of
// its data. Reads at most 8 KiB per tensor, so it is quick on 13 GB files,
// and changes whenever the weights are re-quantised, re-shaped or replaced.
std::string modelIdentity(const GGUFFile &file);

// Writes `trace` to `path` (through PATH.tmp and a rename, so a failure never
// leaves a half file). Checks the trace's own consistency first.
bool writeTrace(const std::string &path, const Trace &trace,
                std::string &error);

// Reads a trace. Every count is checked against the file size before use;
// a malformed file gives one line: "PATH: at offset N: found X, expected Y".
bool readTrace(const std::string &path, Trace &trace, std::string &error);
// Same from memory; `name` stands for the path in error messages.
bool readTraceFromMemory(const uint8_t *data, size_t size,
                         const std::string &name, Trace &trace,
                         std::string &error);

// Refuses a trace recorded for another model, e.g. "model.trace was recorded
// for a model with 32 layers; model.gguf has 26". An empty identity on either
// side skips the hash comparison (synthetic traces).
bool checkTraceMatchesModel(const Trace &trace, const std::string &identity,
                            uint32_t nLayer, uint32_t nFF, std::string &error,
                            const std::string &traceName = "the trace",
                            const std::string &modelName = "the model");

} // namespace pinfer
