// The JSON the server answers with, apart from HTTP: the usage, where a
// stop string cuts the text, the generated tokens' log-probabilities in
// each endpoint's shape, and llama-server's /completion and /props
// objects. docs/server.md.
#pragma once

#include "runtime/generate.h"
#include "runtime/server_request.h"
#include "runtime/tokenizer.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pinfer {

// Invalid UTF-8 (a token may end inside a character) becomes U+FFFD.
std::string dumpJson(const nlohmann::ordered_json &j);

// OpenAI's usage object for a finished generation.
nlohmann::ordered_json usageOf(const GenerateResult &result);

// The first of `stops` in `text`: where it begins (npos: none) and which.
struct StopAt {
  size_t at = std::string::npos;
  std::string word;
};
StopAt findStop(const std::string &text, const std::vector<std::string> &stops);

// Generated tokens' text, each with the character it begins at (OpenAI's
// text_offset) and the byte it ends at.
struct Pieces {
  std::vector<std::string> text;
  std::vector<size_t> byteEnd, charAt;
  size_t bytes = 0, chars = 0;
  void add(const std::string &piece);
  // Tokens whose text lies wholly within bytes [0, end): those a text cut
  // there (at a stop string), or sent up to there, shows.
  size_t countWithin(size_t end) const;
};

// Log-probabilities of the generated tokens [from, to): OpenAI's
// completions' (tokens, token_logprobs, top_logprobs with the chosen
// token, text_offset from the prompt's start), its chat's ({"content":
// [{token, logprob, bytes, top_logprobs}]}) or llama-server's /completion
// ([{id, token, logprob, bytes, top_logprobs}]).
nlohmann::ordered_json logprobsJson(Endpoint endpoint,
                                    const Tokenizer &tokenizer,
                                    const std::vector<TokenLogprobs> &logprobs,
                                    const Pieces &pieces, size_t from,
                                    size_t to, size_t promptChars);

// The sampling settings of a generation, as llama-server lists them.
nlohmann::ordered_json settingsJson(const GenerateOptions &gen, int nCtx);

// llama-server's "stop_type": eos, word, limit or none.
const char *stopType(const std::string &stopReason);

// llama-server's final /completion object for `result` (text already cut
// at the stop string `stop`); tokens [from, to) listed with their ids and
// log-probabilities where asked.
nlohmann::ordered_json
nativeAnswer(const Request &r, const GenerateResult &result,
             const std::string &text, const StopAt &stop,
             const Tokenizer &tokenizer, const Pieces &pieces, size_t from,
             size_t to, int nCtx, const std::string &model);

} // namespace pinfer
