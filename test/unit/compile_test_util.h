// Helpers for the end-to-end tests that compile a tiny generated model,
// run the executable and compare it with the dense reference: running a
// command, reading its JSON output, the reference's greedy tokens, and a
// plan that splits each layer between GPU and CPU.
#pragma once

#include "compiler/placement/Plan.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace pinfer::testutil {

// The built tools, for tests that run them as a user would.
inline const std::string kPinferc = PINFER_BINARY_DIR "/tools/pinferc/pinferc";
inline const std::string kGenmodel =
    PINFER_BINARY_DIR "/tools/genmodel/pinfer-genmodel";

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `cmd`, returns its exit status; stdout and stderr into the strings
// (through files in `dir`).
inline int run(const std::string &cmd, std::string &out, std::string &err,
               const std::string &dir) {
  std::string o = dir + "/stdout.txt", e = dir + "/stderr.txt";
  int rc = std::system((cmd + " > " + o + " 2> " + e).c_str());
  out = readFile(o);
  err = readFile(e);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The integers of the JSON array under "key".
inline std::vector<int32_t> jsonInts(const std::string &json,
                                     const std::string &key) {
  std::vector<int32_t> v;
  size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos)
    return v;
  at = json.find('[', at);
  size_t end = json.find(']', at);
  std::string body = json.substr(at + 1, end - at - 1);
  for (char &c : body)
    if (c == ',')
      c = ' ';
  std::istringstream in(body);
  int32_t x;
  while (in >> x)
    v.push_back(x);
  return v;
}

// Every numeric value under "key" in compact JSON, in order of appearance.
inline std::vector<double> jsonNumbers(const std::string &json,
                                       const std::string &key) {
  std::vector<double> v;
  std::string k = "\"" + key + "\":";
  for (size_t at = json.find(k); at != std::string::npos;
       at = json.find(k, at + 1))
    v.push_back(std::atof(json.c_str() + at + k.size()));
  return v;
}

// Sum of every numeric value under "key" (one per layer object).
inline double sumField(const std::string &json, const std::string &key) {
  std::vector<double> v = jsonNumbers(json, key);
  return std::accumulate(v.begin(), v.end(), 0.0);
}

// The dense reference's greedy tokens for `prompt`. `f32Down` [n_layer]
// marks the layers whose down projection multiplies f32 activations, as a
// program's do where the plan splits a layer's neurons across devices
// (ForwardState::f32DownLayers); empty: none.
inline bool referenceTokens(const Model &model, const Tokenizer &tok,
                            const std::string &prompt, int n,
                            std::vector<int32_t> &tokens, std::string &log,
                            const std::vector<uint8_t> &f32Down = {}) {
  GenerateOptions opts;
  opts.prompt = prompt;
  opts.nPredict = n;
  opts.sampling.temperature = 0;
  std::ostringstream sink;
  opts.out = &sink;
  opts.err = &sink;
  ReferenceDecoder decoder(model, 0);
  std::string error;
  if (!decoder.init(std::min(model.params().nCtxTrain, 4096), error)) {
    log = error;
    return false;
  }
  decoder.state().f32DownLayers = f32Down;
  GenerateResult result;
  int rc = generate(decoder, tok, opts, &result);
  log = sink.str();
  tokens = result.tokens;
  return rc == 0;
}

// Every layer's down projection on f32 activations: the oracle of programs
// whose plan gives every layer GPU neurons (writeSplitPlan, whole-model
// plans).
inline std::vector<uint8_t> allLayersF32Down(const Model &model) {
  return std::vector<uint8_t>(size_t(model.params().nLayer), 1);
}

// A plan for the tiny preset (2 layers of 512 neurons) that splits each
// layer: 200 + 8 l hot neurons in a scrambled order, so that the packing's
// permutation is exercised. `identity` is the model's (modelIdentity): the
// compiler refuses a plan made for another model. With `attentionOnGPU`
// each layer's attention (and KV cache) is on the GPU too; layer
// `cpuLayer`, if any, gets no hot neuron (its order still scrambled).
inline bool writeSplitPlan(const std::string &path, const std::string &identity,
                           std::string &error, bool attentionOnGPU = false,
                           int cpuLayer = -1) {
  Plan plan;
  plan.target = "rtx4090";
  plan.modelIdentity = identity;
  plan.nLayer = 2;
  plan.nFF = 512;
  plan.nCtx = 256;
  plan.bill.push_back({"hot FFN rows", 1 << 20});
  plan.billBytes = 1 << 20;
  plan.layers.resize(2);
  for (int l = 0; l < 2; ++l) {
    plan.layers[l].nHot = l == cpuLayer ? 0 : 200 + 8 * l;
    plan.layers[l].attentionOnGPU = attentionOnGPU;
    for (uint32_t i = 0; i < 512; ++i)
      plan.layers[l].order.push_back((i * 37 + l) % 512);
  }
  return writePlanJson(path, plan, error);
}

} // namespace pinfer::testutil
