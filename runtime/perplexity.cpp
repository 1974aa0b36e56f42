// Perplexity over chunks of a text.
#include "runtime/perplexity.h"

#include "runtime/generate.h"
#include "runtime/json.h"
#include "runtime/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace pinfer {

// log softmax(logits)[target], computed stably in double.
static double logProb(const float *logits, int n, int32_t target) {
  float maxLogit = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int i = 0; i < n; ++i)
    sum += std::exp(double(logits[i]) - maxLogit);
  return double(logits[target]) - maxLogit - std::log(sum);
}

bool perplexity(Decoder &decoder, const Tokenizer &tokenizer,
                const std::string &text, uint64_t maxChunks,
                PerplexityResult &out, std::string &error) {
  auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> tokens = tokenizer.encode(text, false, false);
  const bool bos = tokenizer.addBosByDefault() && tokenizer.bos() >= 0;
  const int nCtx = decoder.nCtx();
  const int perChunk = nCtx - (bos ? 1 : 0);
  const int skip = std::max(1, nCtx / 4);
  if (perChunk < 2 || int(tokens.size()) < skip + 1) {
    error = "text too short for perplexity: " + std::to_string(tokens.size()) +
            " tokens, need more than " + std::to_string(skip) +
            " at context " + std::to_string(nCtx);
    return false;
  }
  out = PerplexityResult();
  double nll = 0;
  for (size_t begin = 0; begin + 1 < tokens.size(); begin += perChunk) {
    if (maxChunks && out.chunks == maxChunks)
      break;
    size_t end = std::min(tokens.size(), begin + perChunk);
    decoder.reset();
    int pos = 0;
    if (bos && !decoder.eval(tokenizer.bos(), pos++, false, error))
      return false;
    for (size_t i = begin; i < end; ++i, ++pos) {
      // Logits are needed only where the next token is scored.
      bool score = pos >= skip && i + 1 < end;
      if (!decoder.eval(tokens[i], pos, score, error))
        return false;
      if (score) {
        const float *logits = decoder.logits();
        nll -= logProb(logits, decoder.nVocab(), tokens[i + 1]);
        out.argmax.push_back(int32_t(
            std::max_element(logits, logits + decoder.nVocab()) - logits));
        ++out.scored;
      }
    }
    ++out.chunks;
  }
  if (out.scored == 0) {
    error = "no token was scored (text shorter than a quarter context)";
    return false;
  }
  out.meanNll = nll / double(out.scored);
  out.perplexity = std::exp(out.meanNll);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                              start)
                    .count();
  return true;
}

void printPerplexity(std::ostream &os, const PerplexityResult &r, int nCtx,
                     bool json, const std::string &note,
                     const std::function<void(JsonWriter &)> &extra) {
  if (json) {
    JsonWriter w(os);
    w.beginObject()
        .field("format", "pinferc-perplexity")
        .field("version", uint64_t(1))
        .field("perplexity", r.perplexity)
        .field("mean_nll", r.meanNll)
        .field("scored_tokens", r.scored)
        .field("chunks", r.chunks)
        .field("seconds", r.seconds);
    if (extra)
      extra(w);
    w.endObject();
    return;
  }
  os << "perplexity: " << r.perplexity << " over " << r.scored
     << " tokens in " << r.chunks << " chunks of " << nCtx << " (" << r.seconds
     << " s" << note << ")\n";
}

} // namespace pinfer
