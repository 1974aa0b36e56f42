// A server request read and checked; see server_request.h.
#include "runtime/server_request.h"

#include "runtime/chat_template.h"

#include <cmath>
#include <iomanip>
#include <sstream>

namespace pinfer {

namespace {

using json = nlohmann::ordered_json;

// Fields every generation endpoint takes: OpenAI's, and those of
// llama-server's that its clients send to OpenAI's endpoints too.
const char *const kCommon[] = {"model",
                               "max_tokens",
                               "temperature",
                               "top_p",
                               "top_k",
                               "min_p",
                               "seed",
                               "stop",
                               "stream",
                               "n",
                               "user",
                               "presence_penalty",
                               "frequency_penalty",
                               "repeat_penalty",
                               "repeat_last_n",
                               "stream_options",
                               "max_completion_tokens",
                               "n_predict",
                               "cache_prompt",
                               "echo",
                               "logit_bias",
                               "response_format",
                               "ignore_eos"};

// llama-server's fields for samplers and features this server does not
// have, taken at the value that turns them off (clients such as its own
// web page send them all, to /completion and to chat), refused at any
// other.
struct Neutral {
  const char *key;
  json off;
};
const Neutral kNeutral[] = {{"typical_p", 1.0},
                            {"tfs_z", 1.0},
                            {"mirostat", 0},
                            {"dynatemp_range", 0.0},
                            {"xtc_probability", 0.0},
                            {"dry_multiplier", 0.0},
                            {"grammar", ""},
                            {"post_sampling_probs", false},
                            {"timings_per_token", false},
                            {"min_keep", 0},
                            {"top_n_sigma", -1.0},
                            {"penalize_nl", false}};

// Settings of those samplers, taken at any value and unused while the
// sampler is off; and llama-server's sampler order (the order here is
// fixed: penalty, top-k, top-p, min-p, temperature).
const char *const kSettingsOfOff[] = {"mirostat_tau",
                                      "mirostat_eta",
                                      "dynatemp_exponent",
                                      "dry_base",
                                      "dry_allowed_length",
                                      "dry_penalty_last_n",
                                      "dry_sequence_breakers",
                                      "xtc_threshold",
                                      "samplers"};

// /completion's own fields besides kCommon and kNeutral.
const char *const kNative[] = {"prompt", "n_probs", "return_tokens", "n_keep",
                               "id_slot"};

bool knownField(const std::string &key, Endpoint endpoint) {
  for (const char *k : kCommon)
    if (key == k)
      return true;
  for (const Neutral &n : kNeutral)
    if (key == n.key)
      return true;
  for (const char *k : kSettingsOfOff)
    if (key == k)
      return true;
  switch (endpoint) {
  case Endpoint::Completions:
    return key == "prompt" || key == "logprobs";
  case Endpoint::Chat:
    return key == "messages" || key == "logprobs" || key == "top_logprobs";
  case Endpoint::Native:
    for (const char *k : kNative)
      if (key == k)
        return true;
    return false;
  }
  return false;
}

// The prompt of a completion: a string; token ids; llama-server's mix of
// strings and ids (BOS in front only where it opens with text); or
// OpenAI's batch of one (a string or ids in an array).
bool readPrompt(const json &body, const GenerateOptions &gen,
                const Tokenizer &tokenizer, Request &r, std::string &error) {
  const json *p = body.contains("prompt") ? &body["prompt"] : nullptr;
  if (p && p->is_array() && p->size() == 1 &&
      ((*p)[0].is_string() || (*p)[0].is_array()))
    p = &(*p)[0];
  const bool bos = gen.addBos && tokenizer.addBosByDefault();
  if (p && p->is_string()) {
    r.prompt = p->get<std::string>();
    r.promptIds = tokenizer.encode(r.prompt, bos, gen.parseSpecial);
    return true;
  }
  // Ids, or ids and text; text alone in an array is several prompts.
  bool ids = p && p->is_array() && !p->empty(), anyId = false;
  for (size_t i = 0; ids && i < p->size(); ++i) {
    ids = (*p)[i].is_number_integer() || (*p)[i].is_string();
    anyId |= (*p)[i].is_number_integer();
  }
  ids &= anyId;
  if (!ids) {
    error = p && p->is_array() && p->size() > 1
                ? "field 'prompt' holds several prompts; send one"
                : "field 'prompt' must be a string, token ids, or an array "
                  "of one of them";
    return false;
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const json &e = (*p)[i];
    if (e.is_string()) {
      const std::vector<int32_t> t = tokenizer.encode(
          e.get<std::string>(), bos && i == 0, gen.parseSpecial);
      r.promptIds.insert(r.promptIds.end(), t.begin(), t.end());
      continue;
    }
    const int64_t id = e.get<int64_t>();
    if (id < 0 || id >= tokenizer.nVocab()) {
      error = "field 'prompt' holds token " + std::to_string(id) +
              ", not an id below " + std::to_string(tokenizer.nVocab());
      return false;
    }
    r.promptIds.push_back(int32_t(id));
  }
  r.prompt = tokenizer.decode(r.promptIds);
  return true;
}

// A chat's messages put in the template.
bool readMessages(const json &body, const std::string &family,
                  std::string &prompt, std::string &error) {
  if (!body.contains("messages") || !body["messages"].is_array() ||
      body["messages"].empty()) {
    error = "field 'messages' must be a non-empty array";
    return false;
  }
  std::vector<ChatMessage> messages;
  for (const json &m : body["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
        !m.contains("content")) {
      error = "each message must have a string 'role' and 'content'";
      return false;
    }
    // Content as a string, or as OpenAI's parts, of which text only.
    std::string content;
    const json &c = m["content"];
    if (c.is_string())
      content = c.get<std::string>();
    else if (c.is_array()) {
      for (const json &part : c) {
        if (!part.is_object() || !part.contains("type") ||
            part["type"] != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          error = "a message's content parts must be {\"type\": \"text\", "
                  "\"text\": ...}: only text is supported";
          return false;
        }
        content += part["text"].get<std::string>();
      }
    } else {
      error = "each message must have a string 'role' and 'content'";
      return false;
    }
    messages.push_back({m["role"].get<std::string>(), content});
  }
  return applyChatTemplate(family, messages, prompt, error);
}

} // namespace

json parseRequestBody(const std::string &text, std::string &error) {
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        error = "the request body nests arrays and objects deeper than " +
                std::to_string(kMaxJsonDepth) + " levels";
        return json(json::value_t::discarded);
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded())
    error = "the request body is not valid JSON";
  return body;
}

bool readRequest(const json &body, Endpoint endpoint, const ServerOptions &opts,
                 const std::string &family, const Tokenizer &tokenizer,
                 Request &r, std::string &error) {
  if (!body.is_object()) {
    error = "the request body must be a JSON object";
    return false;
  }
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!knownField(it.key(), endpoint)) {
      error = "unknown field '" + it.key() + "'";
      return false;
    }
  const bool chat = endpoint == Endpoint::Chat;
  r.gen = opts.defaults;
  r.gen.json = false;
  r.gen.echoPrompt = false;
  // A number in [lo, hi]; an integer where `integer` (lengths, top_k,
  // seeds: 12.5 tokens is a mistake, not 12).
  auto number = [&](const char *key, double lo, double hi, double &out,
                    bool integer = false) {
    if (!body.contains(key) || body[key].is_null())
      return true;
    if (!body[key].is_number()) {
      error = std::string("field '") + key + "' must be a number";
      return false;
    }
    out = body[key].get<double>();
    if (integer && out != std::floor(out)) {
      error = std::string("field '") + key + "' must be an integer";
      return false;
    }
    if (!(out >= lo && out <= hi)) {
      std::ostringstream range;
      range << std::setprecision(12) << "field '" << key
            << "' is out of range [" << lo << ", " << hi << "]";
      error = range.str();
      return false;
    }
    return true;
  };
  auto boolean = [&](const char *key, bool &out) {
    if (!body.contains(key) || body[key].is_null())
      return true;
    if (!body[key].is_boolean()) {
      error = std::string("field '") + key + "' must be true or false";
      return false;
    }
    out = body[key].get<bool>();
    return true;
  };
  // What the request leaves out comes from the executable's flags, as
  // llama-server's do; the length, where -n was not given, as OpenAI's
  // (16 tokens for a completion, an answer to its end for chat) or as
  // llama-server's /completion (to the end).
  const SamplerOptions &flags = opts.defaults.sampling;
  double maxTokens = opts.defaults.nPredict, temperature = flags.temperature,
         topP = flags.topP, topK = std::max(0, flags.topK), minP = flags.minP,
         seed = flags.seed == SamplerOptions::kRandomSeed ? -1.0
                                                          : double(flags.seed),
         n = 1, penalty = flags.repeatPenalty, lastN = flags.repeatLastN,
         zero = 0, nProbs = 0, anyInt = 0, slot = 0;
  if (!opts.lengthGiven)
    maxTokens = endpoint == Endpoint::Completions ? 16 : -1;
  for (const char *k : {"n_predict", "max_tokens", "max_completion_tokens"})
    r.lengthGiven |= body.contains(k) && !body[k].is_null();
  // Fields llama-server clients send, where they ask for what is done
  // anyway: the KV cache is always reused (cache_prompt), text comes back
  // without the prompt, plain.
  auto onlyDefault = [&](const char *key, const json &dflt) {
    if (!body.contains(key) || body[key].is_null() || body[key] == dflt)
      return true;
    error =
        std::string("field '") + key + "' is supported only as " + dflt.dump();
    return false;
  };
  bool cachePrompt = true;
  if (!boolean("cache_prompt", cachePrompt) ||
      !boolean("ignore_eos", r.gen.ignoreEos) ||
      !boolean("return_tokens", r.returnTokens) || !boolean("stream", r.stream))
    return false;
  // An empty logit_bias is [] to llama-server's clients, {} to OpenAI's.
  if (!onlyDefault("echo", false) ||
      !(body.contains("logit_bias") && body["logit_bias"] == json::array()
            ? true
            : onlyDefault("logit_bias", json::object())) ||
      !onlyDefault("response_format", json{{"type", "text"}}))
    return false;
  for (const Neutral &f : kNeutral)
    if (body.contains(f.key) && !body[f.key].is_null() &&
        !(body[f.key] == f.off)) {
      error = std::string("field '") + f.key + "' is supported only as " +
              f.off.dump() + " (that sampler or feature is not built)";
      return false;
    }
  // llama-server's own name for the length; -1: to the end.
  // Negative temperatures (greedy) and top_k (no limit) as llama-server.
  if (!number("n_predict", -1, 1 << 24, maxTokens, true) ||
      !number("max_tokens", -1, 1 << 24, maxTokens, true) ||
      !number("max_completion_tokens", -1, 1 << 24, maxTokens, true) ||
      !number("temperature", -1e9, 100, temperature) ||
      !number("top_p", 0, 1, topP) ||
      !number("top_k", -(1 << 30), 1 << 30, topK, true) ||
      !number("min_p", 0, 1, minP) ||
      !number("seed", -1, 4294967295.0, seed, true) || !number("n", 1, 1, n) ||
      !number("repeat_penalty", 0.01, 100, penalty) ||
      !number("repeat_last_n", -1, 1 << 20, lastN, true) ||
      !number("presence_penalty", 0, 0, zero) ||
      !number("frequency_penalty", 0, 0, zero) ||
      !number("n_probs", 0, kMaxLogprobs, nProbs, true) ||
      !number("top_logprobs", 0, kMaxLogprobs, nProbs, true) ||
      // No context shift happens (a request must fit), so nothing to keep.
      !number("n_keep", -1, 1 << 24, anyInt, true) ||
      !number("id_slot", -1, 0, slot, true))
    return false;
  r.gen.nPredict = int(maxTokens);
  r.gen.sampling.temperature = float(std::max(0.0, temperature));
  r.gen.sampling.topP = float(topP);
  r.gen.sampling.topK = int(std::max(0.0, topK));
  r.gen.sampling.minP = float(minP);
  r.gen.sampling.repeatPenalty = float(penalty);
  // -1: the whole context, as llama-server's.
  r.gen.sampling.repeatLastN = lastN < 0 ? (1 << 20) : int(lastN);
  r.gen.sampling.seed =
      seed < 0 ? SamplerOptions::kRandomSeed : uint32_t(int64_t(seed));

  // Log-probabilities: OpenAI's completions ask with a count, its chat with
  // a switch and top_logprobs, llama-server's /completion with n_probs.
  const json logprobs = body.value("logprobs", json());
  if (endpoint == Endpoint::Native) {
    r.nProbs = nProbs > 0 ? int(nProbs) : -1;
  } else if (chat) {
    if (!logprobs.is_null() && !logprobs.is_boolean()) {
      error = "field 'logprobs' must be true or false";
      return false;
    }
    if (body.contains("top_logprobs") && !body["top_logprobs"].is_null() &&
        logprobs != true) {
      error = "field 'top_logprobs' needs 'logprobs': true";
      return false;
    }
    r.nProbs = logprobs == true ? int(nProbs) : -1;
  } else if (!logprobs.is_null()) {
    double k = 0;
    if (!number("logprobs", 0, kMaxLogprobs, k, true))
      return false;
    r.nProbs = int(k);
  }
  r.gen.nProbs = r.nProbs;

  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json &so = body["stream_options"];
    if (!so.is_object() ||
        (so.contains("include_usage") && !so["include_usage"].is_boolean())) {
      error = "field 'stream_options' must be {\"include_usage\": true or "
              "false}";
      return false;
    }
    r.streamUsage = so.value("include_usage", false);
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    // OpenAI's endpoints take up to four, llama-server's any number.
    const size_t most = endpoint == Endpoint::Native ? 1 << 10 : 4;
    const json &s = body["stop"];
    if (s.is_string())
      r.stops.push_back(s.get<std::string>());
    else if (s.is_array() && s.size() <= most) {
      for (const json &x : s) {
        if (!x.is_string()) {
          error = "field 'stop' must be a string or an array of strings";
          return false;
        }
        r.stops.push_back(x.get<std::string>());
      }
    } else {
      error = "field 'stop' must be a string or up to " + std::to_string(most) +
              " strings";
      return false;
    }
    for (const std::string &x : r.stops)
      if (x.empty()) {
        error = "field 'stop' has an empty string";
        return false;
      }
  }
  r.gen.stopStrings = r.stops;
  if (!chat)
    return readPrompt(body, r.gen, tokenizer, r, error);
  if (!readMessages(body, family, r.prompt, error))
    return false;
  r.promptIds =
      tokenizer.encode(r.prompt, r.gen.addBos && tokenizer.addBosByDefault(),
                       r.gen.parseSpecial);
  return true;
}

} // namespace pinfer
