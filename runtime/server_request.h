// A server request's JSON read and checked into generation options, for
// the three generation endpoints (OpenAI's completions and chat, and
// llama-server's own /completion). docs/server.md lists the fields.
#pragma once

#include "runtime/generate.h"
#include "runtime/server.h"
#include "runtime/tokenizer.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pinfer {

enum class Endpoint {
  Completions, // POST /v1/completions
  Chat,        // POST /v1/chat/completions
  Native,      // POST /completion (llama-server's)
};

struct Request {
  std::string prompt;             // as text (chat: the templated turns)
  std::vector<int32_t> promptIds; // what is evaluated
  GenerateOptions gen;
  std::vector<std::string> stops;
  bool stream = false;
  bool streamUsage = false;  // stream_options.include_usage
  bool lengthGiven = false;  // by the request (else -n's or the default)
  int nProbs = -1;           // log-probabilities with this many others
  bool returnTokens = false; // /completion's return_tokens
};

// Most alternatives a request may ask for per token (OpenAI's top_logprobs).
constexpr int kMaxLogprobs = 20;

// Deepest nesting of arrays and objects a request body may have.
constexpr int kMaxJsonDepth = 64;

// A request body parsed, or a discarded value with `error` set: text that
// is not JSON, or that nests deeper than kMaxJsonDepth (the parser's
// values recurse as deep as the text nests: a body of a few hundred
// kilobytes of brackets would exhaust the stack).
nlohmann::ordered_json parseRequestBody(const std::string &text,
                                        std::string &error);

// Reads `body` into `r`: the prompt (text, token ids, or llama-server's
// mix of both; a chat's messages in template `family`), tokenised, and
// the sampling fields, with what the request leaves out from `opts`.
// False with a message naming the field for a wrong type or value, a
// token id outside the vocabulary, or a field the endpoint does not know.
bool readRequest(const nlohmann::ordered_json &body, Endpoint endpoint,
                 const ServerOptions &opts, const std::string &family,
                 const Tokenizer &tokenizer, Request &r, std::string &error);

} // namespace pinfer
