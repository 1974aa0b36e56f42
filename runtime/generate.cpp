// The generation loop; see generate.h.
#include "runtime/generate.h"

#include "runtime/json.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

namespace pinfer {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One line of the speed report, in llama.cpp's layout.
std::string speedLine(const char *what, double ms, int n, const char *unit) {
  char buf[256];
  double perTok = n > 0 ? ms / n : 0;
  double perSec = ms > 0 ? 1000.0 * n / ms : 0;
  std::snprintf(buf, sizeof(buf),
                "%16s = %10.2f ms / %5d %-6s (%8.2f ms per token, %8.2f "
                "tokens per second)\n",
                what, ms, n, unit, perTok, perSec);
  return buf;
}

// Ctrl-C during generation stops it after the current token, so that the
// text so far, the timing lines and the JSON are still printed (as
// llama-cli does); a second Ctrl-C ends the process at once.
std::atomic<int> gInterrupted{0};

void onInterrupt(int) {
  gInterrupted.store(1);
  ::signal(SIGINT, SIG_DFL);
}

// Installs onInterrupt for its lifetime, then puts the previous handler back.
struct InterruptScope {
  struct sigaction previous;
  InterruptScope() {
    gInterrupted.store(0);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = onInterrupt;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &previous);
  }
  ~InterruptScope() { ::sigaction(SIGINT, &previous, nullptr); }
};

// Index of the first logit that is NaN or infinite, or -1.
int firstNonFinite(const float *logits, int n) {
  for (int i = 0; i < n; ++i)
    if (!std::isfinite(logits[i]))
      return i;
  return -1;
}

} // namespace

TokenLogprobs logprobsOf(const float *logits, int nVocab, int32_t chosen,
                         int nTop) {
  float most = -INFINITY;
  for (int i = 0; i < nVocab; ++i)
    most = std::max(most, logits[i]);
  double sum = 0;
  for (int i = 0; i < nVocab; ++i)
    sum += std::exp(double(logits[i]) - most);
  const double logZ = most + std::log(sum);
  TokenLogprobs t;
  t.id = chosen;
  t.logprob = float(double(logits[chosen]) - logZ);
  // The nTop best by logit, then lower id: a sorted window kept small.
  const size_t k = size_t(std::max(0, std::min(nTop, nVocab)));
  auto better = [](const std::pair<int32_t, float> &a,
                   const std::pair<int32_t, float> &b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  std::vector<std::pair<int32_t, float>> &top = t.top;
  top.reserve(k + 1);
  for (int i = 0; i < nVocab && k > 0; ++i) {
    if (top.size() == k && !(logits[i] > top.back().second))
      continue; // ties keep the lower id already held
    std::pair<int32_t, float> c{i, logits[i]};
    top.insert(std::upper_bound(top.begin(), top.end(), c, better), c);
    if (top.size() > k)
      top.pop_back();
  }
  for (auto &c : top)
    c.second = float(double(c.second) - logZ);
  return t;
}

void warnAboutFlags(const GenerateOptions &opts, int nCtx, int nCtxTrain,
                    std::ostream &err) {
  if (nCtxTrain > 0 && nCtx > nCtxTrain)
    err << "warning: the context of " << nCtx
        << " tokens (-c) exceeds the model's trained context of " << nCtxTrain
        << "; output may degrade past it\n";
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0 && opts.nThreads > int(hw))
    err << "warning: -t " << opts.nThreads << " is more than the " << hw
        << " hardware threads of this machine; generation will be slower "
           "than with -t "
        << hw << "\n";
}

bool Decoder::evalSelect(int32_t, int, int, const std::vector<int32_t> &,
                         HeadSelection &, std::string &error) {
  error = "this decoder chooses no logits where it computes them";
  return false;
}

bool Decoder::evalBatch(const int32_t *tokens, int n, int pos, bool wantLogits,
                        std::string &error) {
  for (int i = 0; i < n; ++i)
    if (!eval(tokens[i], pos + i, wantLogits && i == n - 1, error))
      return false;
  return true;
}

ReferenceDecoder::ReferenceDecoder(const Model &model, int nThreads)
    : model_(model),
      pool_(nThreads < 1 ? ThreadPool::hardwareThreads() : nThreads) {}

bool ReferenceDecoder::init(int nCtx, std::string &error, int nBatch) {
  return state_.init(model_, nCtx, error, nBatch);
}

bool ReferenceDecoder::evalBatch(const int32_t *tokens, int n, int pos,
                                 bool wantLogits, std::string &error) {
  return forwardBatch(model_, state_, pool_, tokens, n, pos, wantLogits, error);
}

int ReferenceDecoder::nVocab() const { return model_.params().nVocab; }

bool ReferenceDecoder::eval(int32_t token, int pos, bool wantLogits,
                            std::string &error) {
  return forward(model_, state_, pool_, token, pos, wantLogits, error);
}

int generate(const Model &model, const Tokenizer &tokenizer,
             const GenerateOptions &opts, GenerateResult *result) {
  std::ostream &err = opts.err ? *opts.err : std::cerr;
  ReferenceDecoder decoder(model, opts.nThreads);
  decoder.pool().setSpinMicros(opts.pollMicros);
  int nCtx = opts.nCtx;
  if (nCtx == GenerateOptions::kModelContext)
    nCtx = model.params().nCtxTrain > 0 ? model.params().nCtxTrain : 4096;
  if (nCtx < 0)
    nCtx = std::min(model.params().nCtxTrain, 4096);
  std::string error;
  if (!decoder.init(nCtx, error,
                    opts.nBatch > 0 ? opts.nBatch
                                    : ForwardState::kDefaultBatch)) {
    err << (opts.program.empty() ? "" : opts.program + ": ") << "error: "
        << error << "\n";
    return 1;
  }
  warnAboutFlags(opts, nCtx, model.params().nCtxTrain, err);
  return generate(decoder, tokenizer, opts, result);
}

int generate(Decoder &decoder, const Tokenizer &tokenizer,
             const GenerateOptions &opts, GenerateResult *resultOut) {
  std::ostream &out = opts.out ? *opts.out : std::cout;
  std::ostream &err = opts.err ? *opts.err : std::cerr;
  GenerateResult local;
  GenerateResult &r = resultOut ? *resultOut : local;
  r = GenerateResult();
  auto fail = [&](const std::string &msg) {
    err << (opts.program.empty() ? "" : opts.program + ": ") << "error: "
        << msg << "\n";
    return 1;
  };

  if (opts.prompt.empty() && opts.promptTokens.empty())
    return fail("the prompt is empty, expected some text (-p)");
  r.promptTokens =
      !opts.promptTokens.empty()
          ? opts.promptTokens
          : tokenizer.encode(opts.prompt,
                             opts.addBos && tokenizer.addBosByDefault(),
                             opts.parseSpecial);
  const int nPrompt = int(r.promptTokens.size());
  const int nCtx = decoder.nCtx();
  if (nPrompt == 0)
    return fail("the prompt gave no tokens, expected at least one (-p)");
  if (nPrompt >= nCtx)
    return fail("prompt is " + std::to_string(nPrompt) +
                " tokens but the context is " + std::to_string(nCtx) + " (-c)");
  // More than the context leaves: generate until it is full, as llama.cpp
  // does, and say so first.
  const bool fillsContext = opts.nPredict < 0 || nPrompt + opts.nPredict > nCtx;
  if (opts.nPredict >= 0 && fillsContext)
    err << (opts.program.empty() ? "" : opts.program + ": ")
        << "warning: prompt is " << nPrompt << " tokens and -n asks for "
        << opts.nPredict << " more, but the context is " << nCtx
        << " (-c): generating until it is full\n";
  for (int32_t t : r.promptTokens)
    if (t < 0 || t >= decoder.nVocab())
      return fail("the tokenizer produced token " + std::to_string(t) +
                  " but the model has " + std::to_string(decoder.nVocab()) +
                  " tokens");

  SamplerOptions sampling = opts.sampling;
  if (opts.ignoreEos)
    for (int32_t t = 0; t < decoder.nVocab(); ++t)
      if (tokenizer.isEog(t))
        sampling.banned.push_back(t);
  Sampler sampler(sampling, decoder.nVocab());
  r.seed = sampler.seed();
  // From here on Ctrl-C stops generation and still reports (the echoed
  // prompt shows that it is in place).
  InterruptScope interruptible;
  if (!opts.json && opts.echoPrompt) {
    out << opts.prompt;
    out.flush();
  }

  std::string error;
  // The prompt's common prefix with what the decoder holds stays cached;
  // its last token is always evaluated, for the logits.
  int keep = 0;
  if (opts.cache) {
    const std::vector<int32_t> &held = *opts.cache;
    const int most = std::min({nPrompt - 1, int(held.size()), decoder.nPast()});
    while (keep < most && held[size_t(keep)] == r.promptTokens[size_t(keep)])
      ++keep;
    // Until the evaluation succeeds the decoder holds only the prefix.
    opts.cache->resize(size_t(keep));
  }
  decoder.truncate(keep);
  r.promptCached = keep;
  Clock::time_point t0 = Clock::now();
  if (!decoder.evalBatch(r.promptTokens.data() + keep, nPrompt - keep, keep,
                         true, error))
    return fail(error);
  if (opts.cache)
    *opts.cache = r.promptTokens;
  for (int32_t t : r.promptTokens)
    sampler.accept(t);
  r.promptMs = msSince(t0);

  const char *deviceSampling = std::getenv("PINFER_DEVICE_SAMPLING");
  const bool selectOnDevice =
      decoder.selects() &&
      !(deviceSampling && std::string(deviceSampling) == "0");
  bool selected = false; // the last evaluation chose the best logits
  HeadSelection best;
  const int limit = fillsContext ? nCtx - nPrompt : opts.nPredict;
  int pos = nPrompt;
  r.stopReason = fillsContext ? "context" : "length";
  while (int(r.tokens.size()) < limit) {
    if (gInterrupted.load()) {
      r.stopReason = "interrupted";
      break;
    }
    // The token's logits: the best of them where the decoder chose them
    // (selected), else all of them.
    const bool fromBest = selected && !best.all;
    const int bad = fromBest
                        ? best.nonFinite
                        : firstNonFinite(decoder.logits(), decoder.nVocab());
    if (bad >= 0)
      return fail("the model computed a non-finite logit (token " +
                  std::to_string(bad) + ") at position " +
                  std::to_string(pos - 1) +
                  ": its weights hold NaN or infinite values, or overflow");
    Clock::time_point ts = Clock::now();
    int32_t tok = fromBest
                      ? sampler.sampleFrom(best.ids.data(), best.logits.data(),
                                           int(best.ids.size()))
                      : sampler.sample(decoder.logits());
    r.sampleMs += msSince(ts);
    if (tokenizer.isEog(tok)) {
      r.stopReason = "eog";
      break;
    }
    sampler.accept(tok);
    r.tokens.push_back(tok);
    if (opts.nProbs >= 0)
      r.logprobs.push_back(
          logprobsOf(decoder.logits(), decoder.nVocab(), tok, opts.nProbs));
    std::string piece = tokenizer.tokenToPiece(tok, false);
    r.text += piece;
    if (!opts.json) {
      out << piece;
      out.flush();
    }
    if (opts.onToken && !opts.onToken(piece)) {
      r.stopReason = "cancelled";
      break;
    }
    // A stop string may end in this piece and begin in earlier ones.
    bool stopped = false;
    for (const std::string &s : opts.stopStrings) {
      const size_t tail = piece.size() + s.size();
      const size_t from = r.text.size() > tail ? r.text.size() - tail : 0;
      stopped |= !s.empty() && r.text.find(s, from) != std::string::npos;
    }
    if (stopped) {
      r.stopReason = "stop";
      break;
    }
    if (int(r.tokens.size()) == limit || pos >= nCtx)
      break;
    Clock::time_point te = Clock::now();
    // Where the head runs on a GPU, only the logits the sampler reads come
    // back (PINFER_DEVICE_SAMPLING=0, or log-probabilities asked for: all
    // of them).
    const int need =
        selectOnDevice && opts.nProbs < 0 ? sampler.candidatesNeeded() : 0;
    const std::vector<int32_t> extra =
        need > 0 ? sampler.penalised() : std::vector<int32_t>();
    selected = need > 0;
    if (selected ? !decoder.evalSelect(tok, pos, need, extra, best, error)
                 : !decoder.eval(tok, pos, true, error))
      return fail(error);
    if (opts.cache)
      opts.cache->push_back(tok);
    r.genMs += msSince(te);
    ++r.genEvals;
    ++pos;
  }

  if (opts.json) {
    const int nEvaluated = nPrompt - r.promptCached;
    double promptTps = r.promptMs > 0 ? 1000.0 * nEvaluated / r.promptMs : 0;
    double genTps = r.genMs > 0 ? 1000.0 * r.genEvals / r.genMs : 0;
    JsonWriter w(out, false);
    w.beginObject();
    // What this object is (docs/json.md): pinferc run's and executables'.
    w.field("format", "pinferc-generation").field("version", uint64_t(1));
    w.field("prompt_tokens", nPrompt);
    w.field("prompt_cached", r.promptCached);
    w.array("tokens", r.tokens);
    w.field("text", r.text);
    w.field("stop", r.stopReason);
    w.field("seed", uint64_t(r.seed));
    w.key("timings").beginObject();
    w.field("prompt_tokens_per_s", promptTps);
    w.field("gen_tokens_per_s", genTps);
    w.field("prompt_ms", r.promptMs);
    w.field("gen_ms", r.genMs);
    w.field("gen_evals", r.genEvals);
    w.field("sample_ms", r.sampleMs);
    if (opts.loadMs >= 0)
      w.field("load_ms", opts.loadMs);
    w.endObject();
    if (opts.extraJson)
      opts.extraJson(w);
    w.endObject();
    out << "\n";
    out.flush();
  } else {
    out << "\n";
    out.flush();
    err << "\n";
    if (r.stopReason == "context")
      err << (opts.program.empty() ? "" : opts.program + ": ")
          << "stopped: the context of " << nCtx << " tokens is full (-c)\n";
    if (opts.loadMs >= 0) {
      char load[96];
      std::snprintf(load, sizeof load, "%16s = %10.2f ms\n", "load time",
                    opts.loadMs);
      err << load;
    }
    err << speedLine("sampling time", r.sampleMs, int(r.tokens.size()), "runs")
        << speedLine("prompt eval time", r.promptMs, nPrompt - r.promptCached,
                     "tokens")
        << speedLine("eval time", r.genMs, r.genEvals, "runs");
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%16s = %10.2f ms / %5d tokens\n",
                  "total time", r.promptMs + r.genMs + r.sampleMs,
                  nPrompt + int(r.tokens.size()));
    err << buf;
  }
  // As a shell reports a command that Ctrl-C ended.
  return r.stopReason == "interrupted" ? 128 + SIGINT : 0;
}

} // namespace pinfer
