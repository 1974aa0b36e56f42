// The generation loop shared by `pinferc run` and every generated
// executable: tokenise the prompt, evaluate it, then sample and stream one
// token at a time until end of generation or -n tokens, and report speed the
// way llama.cpp does (or one JSON object with --json). The model evaluation
// itself is behind the Decoder interface so that the dense reference and the
// compiled, placed schedules run the very same loop.
#pragma once

#include "runtime/forward.h"
#include "runtime/sampler.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pinfer {

class JsonWriter;
class Model;
class Tokenizer;

// The best of a token's logits, chosen where the head computed them
// (runtime/gpu_attention.h): a superset of the k best by logit (ties to
// the lowest id), and the logits of the tokens asked for besides.
struct HeadSelection {
  std::vector<int32_t> ids;
  std::vector<float> logits;
  // Too many candidates to bring back: Decoder::logits() holds every logit.
  bool all = false;
  int nonFinite = -1; // a token whose logit is NaN or infinite, or -1
};

// Evaluates tokens in order, keeping its own KV cache.
class Decoder {
public:
  virtual ~Decoder() = default;
  virtual int nCtx() const = 0;
  virtual int nVocab() const = 0;
  // Evaluates `token` at `pos` (= the number of tokens evaluated so far).
  // With `wantLogits`, logits() then holds the next-token logits.
  virtual bool eval(int32_t token, int pos, bool wantLogits,
                    std::string &error) = 0;
  // Evaluates tokens[0..n) at pos..pos+n-1 (a prompt); logits() then holds
  // the logits after the last one when `wantLogits`. By default one eval()
  // per token.
  virtual bool evalBatch(const int32_t *tokens, int n, int pos,
                         bool wantLogits, std::string &error);
  virtual const float *logits() const = 0; // [n_vocab]
  // Whether evalSelect() chooses the best logits where the head runs (a
  // GPU), so that a token brings back those alone.
  virtual bool selects() const { return false; }
  // eval() that brings back the `k` best logits (Sampler::candidatesNeeded)
  // and those of `extra` (Sampler::penalised) into `out`, not logits();
  // or, where it cannot (out.all), every logit into logits().
  virtual bool evalSelect(int32_t token, int pos, int k,
                          const std::vector<int32_t> &extra, HeadSelection &out,
                          std::string &error);
  // Positions held in the KV cache: the next eval() is at this position.
  virtual int nPast() const = 0;
  // Forgets the positions from `nKeep` on; those before stay cached, so
  // that a prompt sharing them evaluates only what follows.
  virtual void truncate(int nKeep) = 0;
  void reset() { truncate(0); } // forget all positions
};

// The dense reference as a Decoder.
class ReferenceDecoder : public Decoder {
public:
  // `nThreads` < 1: all hardware threads.
  ReferenceDecoder(const Model &model, int nThreads);
  // Sizes the KV cache and the prompt batches (`nBatch` tokens); must
  // succeed before eval().
  bool init(int nCtx, std::string &error,
            int nBatch = ForwardState::kDefaultBatch);

  int nCtx() const override { return state_.nCtx; }
  int nVocab() const override;
  bool eval(int32_t token, int pos, bool wantLogits,
            std::string &error) override;
  bool evalBatch(const int32_t *tokens, int n, int pos, bool wantLogits,
                 std::string &error) override;
  const float *logits() const override { return state_.logits.data(); }
  int nPast() const override { return state_.nPast; }
  void truncate(int nKeep) override {
    state_.nPast = std::max(0, std::min(state_.nPast, nKeep));
  }

  ForwardState &state() { return state_; } // for instrumentation
  ThreadPool &pool() { return pool_; }

private:
  const Model &model_;
  ThreadPool pool_;
  ForwardState state_;
};

// One generated token's log-probability and its likeliest alternatives:
// the log-softmax of the model's logits, before the penalty, the
// temperature and the cuts (as OpenAI's and llama-server's logprobs).
struct TokenLogprobs {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top; // likeliest first, ties: lower id
};

// `chosen`'s log-probability under logits[0..nVocab) and the `nTop`
// likeliest tokens'.
TokenLogprobs logprobsOf(const float *logits, int nVocab, int32_t chosen,
                         int nTop);

struct GenerateOptions {
  std::string prompt;
  // The prompt as token ids (the server's token prompts), used as they are
  // in place of `prompt`'s text, which is then only echoed.
  std::vector<int32_t> promptTokens;
  // >= 0: each generated token's TokenLogprobs (with this many
  // alternatives) in GenerateResult::logprobs. Every logit then comes back
  // from a decoder that would choose the best on the GPU.
  int nProbs = -1;
  int nPredict = 128;  // tokens to generate; < 0: until EOG or the context is full
  int nThreads = 0;    // < 1: all hardware threads (reference decoder)
  // Microseconds a thread waiting for the next parallel step polls before
  // it sleeps (--poll). Polling saves the wake-up latency of the hundred or
  // so steps of each token on a machine whose cores are free; 0 suits
  // machines whose cores other work needs.
  static constexpr int kDefaultPollMicros = 200;
  int pollMicros = kDefaultPollMicros;
  // Context length (-c); kModelContext: the model's trained one, as
  // llama.cpp's -c 0; < 0: that, at most 4096.
  static constexpr int kModelContext = 0;
  int nCtx = -1;
  // Tokens of a prompt that go through the layers together, each weight row
  // read once for them (-b/-ub, as llama.cpp's physical batch); < 1: 32.
  int nBatch = 0;
  SamplerOptions sampling;
  bool json = false;       // one JSON object on `out` instead of text + report
  bool addBos = true;      // add BOS when the vocabulary asks for it
  // Special-token text in the prompt ("<|im_start|>", "</s>") becomes those
  // tokens, as llama-cli does; false keeps it as text (--no-parse-special).
  bool parseSpecial = true;
  bool echoPrompt = true;  // print the prompt before the generated text
  // --ignore-eos: end-of-generation tokens are never sampled, so that
  // generation runs to -n (benchmarks, as PowerInfer's examples use it).
  bool ignoreEos = false;
  // -r/--reverse-prompt: generation stops once the generated text contains
  // one of these (stop reason "stop"); the text keeps it.
  std::vector<std::string> stopStrings;
  std::ostream *out = nullptr; // generated text / JSON; default std::cout
  std::ostream *err = nullptr; // speed report and errors; default std::cerr
  std::string program;         // names the program in error lines
  // Called with each generated token's text as it is made (the server's
  // streams); returning false ends generation with stop reason
  // "cancelled" (a client that went away, a request past its time).
  std::function<bool(const std::string &piece)> onToken;
  // Milliseconds the caller took to load the model and set up its decoder,
  // reported first (llama.cpp's "load time"); < 0: not reported.
  double loadMs = -1;
  // With json: writes extra fields into the result object (placement, measured
  // sparsity...), called after generation, e.g. w.field("sparsity", 0.8).
  std::function<void(JsonWriter &w)> extraJson;
  // The tokens the decoder holds in its KV cache, kept by the caller across
  // generations (a chat's turns, the server's requests): the prompt's
  // common prefix with them is not evaluated again, and on return they are
  // what the decoder then holds. Null: the decoder starts empty. Each
  // token's logits are those of a fresh evaluation (batches are bitwise
  // token-by-token evaluation).
  std::vector<int32_t> *cache = nullptr;
};

struct GenerateResult {
  std::vector<int32_t> promptTokens;
  int promptCached = 0;        // of them, taken from the KV cache
  std::vector<int32_t> tokens; // generated, EOG excluded
  std::string text;            // pieces of `tokens`, concatenated
  std::vector<TokenLogprobs> logprobs; // one per token where opts.nProbs >= 0
  std::string stopReason;      // "eog", "stop", "length", "context",
                               // "interrupted" or "cancelled"
  uint32_t seed = 0;
  double promptMs = 0;  // evaluating the prompt
  double genMs = 0;     // evaluating generated tokens
  int genEvals = 0;     // generated tokens evaluated (the last one is not)
  double sampleMs = 0;
};

// Warnings (one line each on `err`) for flags that work but not as the
// user may hope: a context beyond the model's trained one, more threads
// than the machine has.
void warnAboutFlags(const GenerateOptions &opts, int nCtx, int nCtxTrain,
                    std::ostream &err);

// Runs the loop on any decoder. Returns 0, or 1 after printing one error
// line ("error: ...") on the error stream. Ctrl-C stops it after the
// current token with stop reason "interrupted", prints what was generated
// and the timings (or the JSON) as usual, and returns 130. `result` may be
// null.
int generate(Decoder &decoder, const Tokenizer &tokenizer,
             const GenerateOptions &opts, GenerateResult *result = nullptr);
// Same with the dense reference decoder, sized by opts.nThreads / opts.nCtx.
int generate(const Model &model, const Tokenizer &tokenizer,
             const GenerateOptions &opts, GenerateResult *result = nullptr);

} // namespace pinfer
