//===- Profile.cpp - activation profiling with the dense reference --------===//

#include "compiler/Profile.h"

#include "runtime/generate.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

namespace pinfer {

namespace {

// Keeps a uniform random subset of at most `cap` items per layer
// (reservoir sampling), so samples span the whole corpus.
struct SampleReservoir {
  uint32_t cap = 0;
  std::vector<uint64_t> seen; // [n_layer]
  std::mt19937_64 rng;

  // Returns the slot to overwrite, or -1 to drop this item.
  int64_t slot(uint32_t layer, size_t held) {
    uint64_t n = seen[layer]++;
    if (held < cap)
      return int64_t(held);
    uint64_t j = std::uniform_int_distribution<uint64_t>(0, n)(rng);
    return j < cap ? int64_t(j) : -1;
  }
};

} // namespace


bool profileModel(const Model &model, const Tokenizer &tokenizer,
                  const std::string &identity, const std::string &text,
                  const ProfileOptions &opts, Trace &trace,
                  std::string &error) {
  const ModelParams &p = model.params();
  std::vector<int32_t> tokens = tokenizer.encode(text, false, false);
  if (tokens.empty()) {
    error = "the corpus tokenises to no tokens";
    return false;
  }
  if (opts.maxTokens && tokens.size() > opts.maxTokens)
    tokens.resize(opts.maxTokens);

  int nCtx = opts.nCtx > 0 ? opts.nCtx
                           : std::min(512, p.nCtxTrain > 0 ? p.nCtxTrain : 512);
  if (nCtx < 2) {
    error = "context length for profiling must be at least 2";
    return false;
  }
  ReferenceDecoder decoder(model, opts.nThreads);
  if (!decoder.init(nCtx, error))
    return false;
  ForwardState &state = decoder.state();

  const bool relu = isReluFamily(p.activation);
  trace = Trace();
  trace.modelIdentity = identity;
  trace.nLayer = p.nLayer;
  trace.nFF = p.nFF;
  trace.activation = activationName(p.activation);
  trace.targetSparsity = relu ? 0.f : opts.targetSparsity;
  std::vector<uint64_t> counts(size_t(p.nLayer) * p.nFF, 0); // [n_layer][n_ff]

  // SiLU families: |silu(gate x)| of the first tokens, per layer, to set the
  // thresholds; those tokens are counted once the thresholds are known.
  int calTokens = relu ? 0 : std::max(1, opts.calibrationTokens);
  std::vector<std::vector<float>> calMagnitudes(relu ? 0 : p.nLayer);
  // [n_layer][cal_tokens * n_ff]
  std::vector<float> magnitude(p.nFF); // [n_ff] scratch
  std::vector<uint8_t> mask(p.nFF);    // [n_ff] scratch

  SampleReservoir reservoir;
  reservoir.cap = opts.samplesPerLayer;
  reservoir.seen.assign(p.nLayer, 0);
  reservoir.rng.seed(opts.seed);
  if (opts.samplesPerLayer) {
    trace.nEmbd = p.nEmbd;
    trace.samples.assign(p.nLayer, {});
  }

  uint64_t tokenIndex = 0; // text tokens evaluated
  // The hook sees positions in the chunk; chunkBase + pos is the token's
  // index in the text (BOS at position 0 is not a text token).
  int64_t chunkBase = 0;
  auto record = [&](int layer, uint64_t token, const float *input,
                    const uint8_t *fired) {
    const uint8_t *bits = fired;
    if (!relu) {
      // The hook sees silu(g) * u and u for this token; |silu(g)| = |h / u|.
      const float *h = state.hookProduct, *u = state.hookUp;
      for (int i = 0; i < p.nFF; ++i)
        magnitude[i] = u[i] != 0.f ? std::fabs(h[i] / u[i]) : 0.f;
      if (token < uint64_t(calTokens)) {
        auto &cal = calMagnitudes[layer];
        cal.insert(cal.end(), magnitude.begin(), magnitude.end());
        return; // counted after calibration
      }
      float th = trace.thresholds[layer];
      for (int i = 0; i < p.nFF; ++i)
        mask[i] = magnitude[i] > th;
      bits = mask.data();
    }
    uint64_t *c = counts.data() + size_t(layer) * p.nFF;
    for (int i = 0; i < p.nFF; ++i)
      c[i] += bits[i];
    if (reservoir.cap) {
      auto &held = trace.samples[layer];
      int64_t slot = reservoir.slot(layer, held.size());
      if (slot < 0)
        return;
      TraceSample s;
      s.input.assign(input, input + p.nEmbd);
      s.mask.assign((p.nFF + 7) / 8, 0);
      for (int i = 0; i < p.nFF; ++i)
        if (bits[i])
          s.mask[i >> 3] |= uint8_t(1u << (i & 7));
      if (size_t(slot) == held.size())
        held.push_back(std::move(s));
      else
        held[slot] = std::move(s);
    }
  };
  state.ffnHook = [&](int layer, int pos, const float *input,
                      const uint8_t *fired) {
    record(layer, uint64_t(chunkBase + pos), input, fired);
  };
  // Each chunk reads every layer's weights once: a layer's pages leave the
  // resident set when the chunk is through it (the next chunk maps them
  // back from the page cache), so the profile holds one layer of the model
  // at a time besides its KV cache and samples, not the whole file.
  state.layerDone = [&](int layer) {
    const LayerWeights &w = model.layer(layer);
    const GGUFFile &file = model.file();
    for (const Weight *t :
         {&w.wq, &w.wk, &w.wv, &w.wo, &w.gate, &w.up, &w.down})
      if (t->data)
        file.releasePages(uint64_t(t->data - file.base()),
                          uint64_t(t->rows) * t->rowBytes);
  };

  // Thresholds at the target sparsity: the magnitude below which that share
  // of the calibration activations fall.
  auto calibrate = [&]() {
    trace.thresholds.assign(p.nLayer, 0.f);
    for (int l = 0; l < p.nLayer; ++l) {
      std::vector<float> v = calMagnitudes[l];
      size_t k = std::min(v.size() - 1,
                          size_t(opts.targetSparsity * double(v.size())));
      std::nth_element(v.begin(), v.begin() + k, v.end());
      trace.thresholds[l] = v[k];
    }
    // Count the calibration tokens now that the thresholds are known.
    for (int l = 0; l < p.nLayer; ++l) {
      uint64_t *c = counts.data() + size_t(l) * p.nFF;
      const auto &cal = calMagnitudes[l];
      for (size_t j = 0; j < cal.size(); ++j)
        c[j % p.nFF] += cal[j] > trace.thresholds[l];
    }
    calMagnitudes.clear();
  };

  const int32_t bos = tokenizer.bos();
  const bool addBos = tokenizer.addBosByDefault() && bos >= 0;
  size_t next = 0;
  if (opts.progress)
    opts.progress(0, tokens.size());
  while (next < tokens.size()) {
    decoder.reset();
    int pos = 0;
    if (addBos) {
      // BOS opens every chunk as it opens every prompt; its activations are
      // not part of the text and are not counted.
      auto hook = std::move(state.ffnHook);
      state.ffnHook = nullptr;
      if (!decoder.eval(bos, pos++, false, error))
        return false;
      state.ffnHook = std::move(hook);
    }
    // The text in prompt batches (the reference's batches are bitwise
    // its token-by-token evaluation, so the counts are those of one token
    // at a time), at most kReportEvery tokens a call so that progress
    // moves.
    const size_t kReportEvery = 128;
    while (pos < nCtx && next < tokens.size()) {
      size_t n =
          std::min({size_t(nCtx - pos), tokens.size() - next, kReportEvery});
      // The calibration tokens end a batch: the thresholds must be known
      // before any later token is counted.
      if (!relu && tokenIndex < uint64_t(calTokens))
        n = std::min(n, size_t(uint64_t(calTokens) - tokenIndex));
      chunkBase = int64_t(tokenIndex) - pos;
      if (!decoder.evalBatch(tokens.data() + next, int(n), pos, false, error))
        return false;
      pos += int(n);
      next += n;
      tokenIndex += n;
      if (!relu && tokenIndex == uint64_t(calTokens))
        calibrate();
      if (opts.progress)
        opts.progress(tokenIndex, tokens.size());
    }
  }
  if (!relu && tokenIndex < uint64_t(calTokens))
    calibrate(); // a corpus shorter than the calibration window
  state.ffnHook = nullptr;
  state.layerDone = nullptr;

  trace.nTokens = tokenIndex;
  trace.fired.assign(p.nLayer, {});
  for (int l = 0; l < p.nLayer; ++l)
    trace.fired[l].assign(counts.begin() + size_t(l) * p.nFF,
                          counts.begin() + size_t(l + 1) * p.nFF);
  return true;
}

} // namespace pinfer
