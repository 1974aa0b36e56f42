// Perplexity of a text under any Decoder (the dense reference or a compiled
// executable), so sparsity modes can be compared on the same text.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace pinfer {

class Decoder;
class JsonWriter;
class Tokenizer;

struct PerplexityResult {
  double perplexity = 0;
  double meanNll = 0;      // nats per scored token
  uint64_t scored = 0;     // tokens whose probability was scored
  uint64_t chunks = 0;
  double seconds = 0;
  // The most likely next token at each scored position, in order: what an
  // oracle compares position by position (`perplexity --argmax`).
  std::vector<int32_t> argmax;
};

// Splits the tokenised text into chunks of the decoder's context length
// (each starting with BOS when the vocabulary asks for it) and scores every
// token of a chunk after its first `nCtx / 4` tokens, so each scored token
// has some context. `maxChunks` 0 means all.
bool perplexity(Decoder &decoder, const Tokenizer &tokenizer,
                const std::string &text, uint64_t maxChunks,
                PerplexityResult &out, std::string &error);

// Prints `r` as one line ("perplexity: P over N tokens in C chunks of
// nCtx (S s<note>)") or as one JSON object to which `extra` may add fields.
void printPerplexity(std::ostream &os, const PerplexityResult &r, int nCtx,
                     bool json, const std::string &note = "",
                     const std::function<void(JsonWriter &)> &extra = nullptr);

} // namespace pinfer
