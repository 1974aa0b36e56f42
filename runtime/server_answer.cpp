// The server's answers as JSON; see server_answer.h.
#include "runtime/server_answer.h"

#include <algorithm>

namespace pinfer {

using json = nlohmann::ordered_json;

std::string dumpJson(const json &j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json usageOf(const GenerateResult &result) {
  const int nPrompt = int(result.promptTokens.size()),
            nGen = int(result.tokens.size());
  return {{"prompt_tokens", nPrompt},
          {"completion_tokens", nGen},
          {"total_tokens", nPrompt + nGen},
          {"prompt_tokens_details", {{"cached_tokens", result.promptCached}}}};
}

StopAt findStop(const std::string &text,
                const std::vector<std::string> &stops) {
  StopAt s;
  for (const std::string &w : stops) {
    const size_t at = text.find(w);
    if (at < s.at) {
      s.at = at;
      s.word = w;
    }
  }
  return s;
}

void Pieces::add(const std::string &piece) {
  text.push_back(piece);
  charAt.push_back(chars);
  bytes += piece.size();
  byteEnd.push_back(bytes);
  // A character begins at every byte but continuation bytes (10xxxxxx).
  for (char c : piece)
    chars += (uint8_t(c) & 0xC0) != 0x80;
}

size_t Pieces::countWithin(size_t end) const {
  return size_t(std::upper_bound(byteEnd.begin(), byteEnd.end(), end) -
                byteEnd.begin());
}

namespace {

json bytesOf(const std::string &piece) {
  json b = json::array();
  for (char c : piece)
    b.push_back(int(uint8_t(c)));
  return b;
}

} // namespace

json logprobsJson(Endpoint endpoint, const Tokenizer &tokenizer,
                  const std::vector<TokenLogprobs> &logprobs,
                  const Pieces &pieces, size_t from, size_t to,
                  size_t promptChars) {
  to = std::min({to, logprobs.size(), pieces.text.size()});
  if (endpoint == Endpoint::Completions) {
    json tokens = json::array(), values = json::array(), tops = json::array(),
         offsets = json::array();
    for (size_t i = from; i < to; ++i) {
      const TokenLogprobs &t = logprobs[i];
      tokens.push_back(pieces.text[i]);
      values.push_back(t.logprob);
      // Keyed by text: of two tokens with the same text, the likelier.
      json top = json::object();
      for (const auto &[id, lp] : t.top) {
        const std::string piece = tokenizer.tokenToPiece(id, false);
        if (!top.contains(piece))
          top[piece] = lp;
      }
      // OpenAI's: the chosen token too (unless a likelier one has its text).
      if (!top.contains(pieces.text[i]))
        top[pieces.text[i]] = t.logprob;
      tops.push_back(top);
      offsets.push_back(promptChars + pieces.charAt[i]);
    }
    return {{"tokens", tokens},
            {"token_logprobs", values},
            {"top_logprobs", tops},
            {"text_offset", offsets}};
  }
  const bool native = endpoint == Endpoint::Native;
  auto entry = [&](int32_t id, const std::string &piece, float lp) {
    json e = {{"token", piece}, {"logprob", lp}, {"bytes", bytesOf(piece)}};
    if (native)
      e["id"] = id;
    return e;
  };
  json content = json::array();
  for (size_t i = from; i < to; ++i) {
    const TokenLogprobs &t = logprobs[i];
    json e = entry(t.id, pieces.text[i], t.logprob);
    json top = json::array();
    for (const auto &[id, lp] : t.top)
      top.push_back(entry(id, tokenizer.tokenToPiece(id, false), lp));
    e["top_logprobs"] = top;
    content.push_back(e);
  }
  return native ? content : json{{"content", content}};
}

json settingsJson(const GenerateOptions &gen, int nCtx) {
  const SamplerOptions &s = gen.sampling;
  return {
      {"n_ctx", nCtx},
      {"n_predict", gen.nPredict},
      {"temperature", s.temperature},
      {"top_k", s.topK},
      {"top_p", s.topP},
      {"min_p", s.minP},
      {"repeat_penalty", s.repeatPenalty},
      {"repeat_last_n", s.repeatLastN},
      {"seed", s.seed == SamplerOptions::kRandomSeed ? json(-1) : json(s.seed)},
      {"stop", gen.stopStrings},
      {"n_probs", std::max(0, gen.nProbs)},
      {"ignore_eos", gen.ignoreEos}};
}

const char *stopType(const std::string &stopReason) {
  if (stopReason == "eog")
    return "eos";
  if (stopReason == "stop")
    return "word";
  if (stopReason == "length" || stopReason == "context")
    return "limit";
  return "none";
}

json nativeAnswer(const Request &r, const GenerateResult &result,
                  const std::string &text, const StopAt &stop,
                  const Tokenizer &tokenizer, const Pieces &pieces, size_t from,
                  size_t to, int nCtx, const std::string &model) {
  const int nPrompt = int(result.promptTokens.size()),
            nGen = int(result.tokens.size()),
            nEvaluated = nPrompt - result.promptCached;
  auto rate = [](int n, double ms) { return ms > 0 ? 1000.0 * n / ms : 0.0; };
  json settings = settingsJson(r.gen, nCtx);
  settings["seed"] = result.seed; // the one drawn, where the request drew
  json out = {
      {"index", 0},
      {"content", text},
      {"tokens", json::array()},
      {"id_slot", 0},
      {"stop", true},
      {"model", model},
      {"tokens_predicted", nGen},
      {"tokens_evaluated", nPrompt},
      {"tokens_cached", nPrompt + result.genEvals},
      {"generation_settings", settings},
      {"prompt", r.prompt},
      {"has_new_line", text.find('\n') != std::string::npos},
      {"truncated", false},
      {"stop_type", stopType(result.stopReason)},
      {"stopping_word", stop.word},
      {"timings",
       {{"prompt_n", nEvaluated},
        {"prompt_ms", result.promptMs},
        {"prompt_per_token_ms",
         nEvaluated > 0 ? result.promptMs / nEvaluated : 0.0},
        {"prompt_per_second", rate(nEvaluated, result.promptMs)},
        {"predicted_n", nGen},
        {"predicted_ms", result.genMs},
        {"predicted_per_token_ms", nGen > 0 ? result.genMs / nGen : 0.0},
        {"predicted_per_second", rate(nGen, result.genMs)}}}};
  if (r.returnTokens)
    out["tokens"] = std::vector<int32_t>(
        result.tokens.begin() +
            std::ptrdiff_t(std::min(from, result.tokens.size())),
        result.tokens.begin() +
            std::ptrdiff_t(std::min(to, result.tokens.size())));
  if (r.nProbs > 0)
    out["completion_probabilities"] = logprobsJson(
        Endpoint::Native, tokenizer, result.logprobs, pieces, from, to, 0);
  return out;
}

} // namespace pinfer
