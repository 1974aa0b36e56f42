// The OpenAI-compatible server; see server.h. HTTP is Debian's cpp-httplib,
// JSON nlohmann-json (llama-server's own choices).
#include "runtime/server.h"

#include "runtime/arrival_order.h"
#include "runtime/chat_template.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <mutex>
#include <sstream>

namespace pinfer {

namespace {

using json = nlohmann::json;

// Invalid UTF-8 (a token may end inside a character) becomes U+FFFD.
std::string dump(const json &j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void sendError(httplib::Response &res, int status, const std::string &message,
               const char *type, const char *code = nullptr) {
  json e = {{"message", message}, {"type", type}};
  e["code"] = code ? json(code) : json(nullptr);
  res.status = status;
  res.set_content(dump(json{{"error", e}}), "application/json");
}

// The longest prefix of `s` that ends on a whole UTF-8 character.
size_t wholeCharacters(const std::string &s) {
  size_t n = s.size(), i = n;
  // Back over at most 3 continuation bytes to the lead byte.
  while (i > 0 && n - i < 4 && (uint8_t(s[i - 1]) & 0xC0) == 0x80)
    --i;
  if (i == 0)
    return n;
  const uint8_t lead = uint8_t(s[i - 1]);
  const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return n - (i - 1) >= need ? n : i - 1;
}

// One request, checked: the prompt and the sampling fields.
struct Request {
  std::string prompt;
  GenerateOptions gen;
  std::vector<std::string> stops;
  bool stream = false;
  bool streamUsage = false; // stream_options.include_usage
  bool lengthGiven = false; // by the request (else -n's or the default)
};

// OpenAI's usage object for a finished generation.
json usageOf(const GenerateResult &result) {
  const int nPrompt = int(result.promptTokens.size()),
            nGen = int(result.tokens.size());
  return {{"prompt_tokens", nPrompt},
          {"completion_tokens", nGen},
          {"total_tokens", nPrompt + nGen},
          {"prompt_tokens_details", {{"cached_tokens", result.promptCached}}}};
}

// Reads the OpenAI fields of `body` into `r`; false with an error message
// (the field named) for a wrong type or value, or a field it does not know.
bool readRequest(const json &body, bool chat, const ServerOptions &opts,
                 const std::string &family, Request &r, std::string &error) {
  static const char *common[] = {"model",
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
                                 "stream_options",
                                 "logprobs",
                                 "max_completion_tokens",
                                 "n_predict",
                                 "cache_prompt",
                                 "echo",
                                 "logit_bias",
                                 "response_format"};
  if (!body.is_object()) {
    error = "the request body must be a JSON object";
    return false;
  }
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool known = it.key() == (chat ? "messages" : "prompt");
    for (const char *k : common)
      known |= it.key() == k;
    if (!known) {
      error = "unknown field '" + it.key() + "'";
      return false;
    }
  }
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
  // What the request leaves out comes from the executable's flags, as
  // llama-server's do; the length, where -n was not given, as OpenAI's
  // (16 tokens for a completion, an answer to its end for chat).
  const SamplerOptions &flags = opts.defaults.sampling;
  double maxTokens = opts.defaults.nPredict, temperature = flags.temperature,
         topP = flags.topP, topK = std::max(0, flags.topK), minP = flags.minP,
         seed = flags.seed == SamplerOptions::kRandomSeed ? -1.0
                                                          : double(flags.seed),
         n = 1, penalty = flags.repeatPenalty, zero = 0;
  if (!opts.lengthGiven)
    maxTokens = chat ? -1 : 16;
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
  if (body.contains("cache_prompt") && !body["cache_prompt"].is_boolean()) {
    error = "field 'cache_prompt' must be true or false";
    return false;
  }
  if (!onlyDefault("echo", false) ||
      !onlyDefault("logit_bias", json::object()) ||
      !onlyDefault("response_format", json{{"type", "text"}}))
    return false;
  // llama-server's own name for the length; -1: to the end.
  // Negative temperatures (greedy) and top_k (no limit) as llama-server.
  if (!number("n_predict", -1, 1 << 24, maxTokens, true) ||
      !number("max_tokens", 0, 1 << 24, maxTokens, true) ||
      !number("max_completion_tokens", 0, 1 << 24, maxTokens, true) ||
      !number("temperature", -1e9, 100, temperature) ||
      !number("top_p", 0, 1, topP) ||
      !number("top_k", -(1 << 30), 1 << 30, topK, true) ||
      !number("min_p", 0, 1, minP) ||
      !number("seed", -1, 4294967295.0, seed, true) || !number("n", 1, 1, n) ||
      !number("repeat_penalty", 0.01, 100, penalty) ||
      !number("presence_penalty", 0, 0, zero) ||
      !number("frequency_penalty", 0, 0, zero))
    return false;
  r.gen.nPredict = int(maxTokens);
  r.gen.sampling.temperature = float(std::max(0.0, temperature));
  r.gen.sampling.topP = float(topP);
  r.gen.sampling.topK = int(std::max(0.0, topK));
  r.gen.sampling.minP = float(minP);
  r.gen.sampling.repeatPenalty = float(penalty);
  r.gen.sampling.seed =
      seed < 0 ? SamplerOptions::kRandomSeed : uint32_t(int64_t(seed));
  if (body.contains("stream")) {
    if (!body["stream"].is_boolean()) {
      error = "field 'stream' must be true or false";
      return false;
    }
    r.stream = body["stream"].get<bool>();
  }
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
    const json &s = body["stop"];
    if (s.is_string())
      r.stops.push_back(s.get<std::string>());
    else if (s.is_array() && s.size() <= 4) {
      for (const json &x : s) {
        if (!x.is_string()) {
          error = "field 'stop' must be a string or an array of strings";
          return false;
        }
        r.stops.push_back(x.get<std::string>());
      }
    } else {
      error = "field 'stop' must be a string or up to 4 strings";
      return false;
    }
    for (const std::string &x : r.stops)
      if (x.empty()) {
        error = "field 'stop' has an empty string";
        return false;
      }
  }
  r.gen.stopStrings = r.stops;
  if (!chat) {
    // One prompt: a string, or an array holding one (OpenAI's batch form).
    const json *prompt = body.contains("prompt") ? &body["prompt"] : nullptr;
    if (prompt && prompt->is_array() && prompt->size() == 1 &&
        (*prompt)[0].is_string())
      prompt = &(*prompt)[0];
    if (!prompt || !prompt->is_string()) {
      error = prompt && prompt->is_array() && !prompt->empty() &&
                      (*prompt)[0].is_number_integer()
                  ? "field 'prompt': token ids are not supported, send text"
                  : "field 'prompt' must be a string (or an array of one)";
      return false;
    }
    r.prompt = prompt->get<std::string>();
    return true;
  }
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
  return applyChatTemplate(family, messages, r.prompt, error);
}

// The last non-empty line of generate()'s error output, without "error: ".
std::string lastLine(const std::string &text) {
  std::string line, last;
  std::istringstream in(text);
  while (std::getline(in, line))
    if (!line.empty())
      last = line;
  const size_t at = last.find("error: ");
  return at == std::string::npos ? last : last.substr(at + 7);
}

const char *finishReason(const std::string &stop) {
  return stop == "length" || stop == "context" ? "length" : "stop";
}

} // namespace

// Connections served at once (threads that mostly wait).
constexpr size_t kHttpThreads = 64;

int runServer(Decoder &decoder, const Tokenizer &tokenizer,
              const std::string &templateText, const ServerOptions &opts,
              std::ostream &log) {
  std::string family = opts.chatTemplate;
  if (family.empty()) {
    family = detectChatTemplate(templateText, opts.architecture);
    if (family.empty()) {
      // Chat then answers 400; completions still work.
      log << opts.program << ": note: the model's chat template is none of "
          << "chatml, llama3, gemma, phi3, llama2, mistral; "
          << "/v1/chat/completions needs --chat-template NAME\n";
    }
  }
  httplib::Server server;
  ArrivalOrder decoderTurn; // one generation at a time, in arrival order
  // What the decoder's KV cache holds (guarded by decoderTurn): a request
  // that starts as the previous conversation did (the same system prompt,
  // a chat's earlier turns) evaluates only what follows.
  std::vector<int32_t> cached;
  std::atomic<uint64_t> nextId{1};
  server.set_payload_max_length(opts.maxBodyBytes);
  // Each connection holds a thread while it reads (30 s for a slow client)
  // or waits for its turn at the decoder; with the library's 8, eight
  // stalled clients would keep /health and everyone else waiting.
  server.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  server.set_read_timeout(30, 0);
  server.set_write_timeout(30, 0);

  server.Get("/health", [](const httplib::Request &, httplib::Response &res) {
    res.set_content(dump(json{{"status", "ok"}}), "application/json");
  });
  server.Get("/v1/models", [&](const httplib::Request &,
                               httplib::Response &res) {
    json m = {{"id", opts.modelName}, {"object", "model"},
              {"created", 0}, {"owned_by", "pinferc"}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}),
                    "application/json");
  });

  // llama-server's /tokenize and /detokenize: the model's tokenizer alone,
  // without the decoder (no turn to wait for).
  server.Post(
      "/tokenize", [&](const httplib::Request &req, httplib::Response &res) {
        json body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("content") ||
            !body["content"].is_string())
          return sendError(res, 400, "expected {\"content\": TEXT}",
                           "invalid_request_error");
        if (body.contains("add_special") && !body["add_special"].is_boolean())
          return sendError(res, 400,
                           "field 'add_special' must be true or false",
                           "invalid_request_error");
        const bool addSpecial = body.value("add_special", false);
        const std::vector<int32_t> ids =
            tokenizer.encode(body["content"].get<std::string>(),
                             addSpecial && tokenizer.addBosByDefault(), true);
        res.set_content(dump(json{{"tokens", ids}}), "application/json");
      });
  server.Post("/detokenize",
              [&](const httplib::Request &req, httplib::Response &res) {
                json body = json::parse(req.body, nullptr, false);
                if (!body.is_object() || !body.contains("tokens") ||
                    !body["tokens"].is_array())
                  return sendError(res, 400, "expected {\"tokens\": [ID, ...]}",
                                   "invalid_request_error");
                std::vector<int32_t> ids;
                for (const json &t : body["tokens"]) {
                  if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
                      t.get<int64_t>() >= tokenizer.nVocab())
                    return sendError(res, 400,
                                     "field 'tokens' holds " + t.dump() +
                                         ", not a token id below " +
                                         std::to_string(tokenizer.nVocab()),
                                     "invalid_request_error");
                  ids.push_back(int32_t(t.get<int64_t>()));
                }
                res.set_content(dump(json{{"content", tokenizer.decode(ids)}}),
                                "application/json");
              });

  auto handle = [&](const httplib::Request &req, httplib::Response &res,
                    bool chat) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return sendError(res, 400, "the request body is not valid JSON",
                       "invalid_request_error");
    if (chat && family.empty())
      return sendError(res, 400,
                       "the model's chat template is not one this server "
                       "knows (chatml, llama3, gemma, phi3, llama2, "
                       "mistral); start it with --chat-template NAME",
                       "invalid_request_error");
    if (body.is_object() && body.contains("model") &&
        (!body["model"].is_string() ||
         (body["model"].get<std::string>() != opts.modelName &&
          !body["model"].get<std::string>().empty())))
      return sendError(res, 404,
                       "model '" + (body["model"].is_string()
                                        ? body["model"].get<std::string>()
                                        : body["model"].dump()) +
                           "' does not exist; this server has '" +
                           opts.modelName + "'",
                       "invalid_request_error", "model_not_found");
    Request r;
    std::string error;
    if (!readRequest(body, chat, opts, family, r, error))
      return sendError(res, 400, error, "invalid_request_error");
    r.gen.prompt = r.prompt;
    const int nPrompt = int(
        tokenizer
            .encode(r.prompt, r.gen.addBos && tokenizer.addBosByDefault(),
                    r.gen.parseSpecial)
            .size());
    // A length the request did not give ends where the context does, as
    // llama-server's; one it gave must fit, as OpenAI's.
    if (!r.lengthGiven && r.gen.nPredict > decoder.nCtx() - nPrompt)
      r.gen.nPredict = -1;
    const int want = r.gen.nPredict >= 0 ? r.gen.nPredict : 1;
    if (r.prompt.empty())
      return sendError(res, 400, "the prompt is empty",
                       "invalid_request_error");
    if (nPrompt + want > decoder.nCtx())
      return sendError(
          res, 400,
          "the prompt (" + std::to_string(nPrompt) + " tokens) and " +
              std::to_string(want) + " tokens to generate exceed the " +
              "context of " + std::to_string(decoder.nCtx()) + " tokens",
          "invalid_request_error", "context_length_exceeded");

    const std::string id =
        std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(nextId++);
    const long long created =
        std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count();
    json head = {{"id", id},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created},
                 {"model", opts.modelName}};
    // Text up to the first stop string (OpenAI leaves it out).
    auto cut = [&](const std::string &text) {
      size_t at = std::string::npos;
      for (const std::string &s : r.stops)
        at = std::min(at, text.find(s));
      return at == std::string::npos ? text : text.substr(0, at);
    };
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(
                        int64_t(opts.requestSeconds * 1000));

    if (!r.stream) {
      std::lock_guard<ArrivalOrder> lock(decoderTurn);
      std::ostringstream sink;
      r.gen.out = r.gen.err = &sink;
      r.gen.cache = &cached;
      r.gen.onToken = [&](const std::string &) {
        return std::chrono::steady_clock::now() < deadline;
      };
      GenerateResult result;
      if (generate(decoder, tokenizer, r.gen, &result) != 0)
        return sendError(res, 500, lastLine(sink.str()), "server_error");
      const std::string text = cut(result.text);
      json choice = {{"index", 0},
                     {"finish_reason", finishReason(result.stopReason)}};
      if (chat)
        choice["message"] = {{"role", "assistant"}, {"content", text}};
      else
        choice["text"] = text;
      json out = head;
      out["choices"] = json::array({choice});
      out["usage"] = usageOf(result);
      res.set_content(dump(out), "application/json");
      return;
    }

    // Streamed: one event per piece of text, held back while it could be
    // the start of a stop string or ends inside a character.
    head["object"] = chat ? "chat.completion.chunk" : "text_completion";
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&, r, head, chat, deadline](size_t, httplib::DataSink &sink) mutable {
          auto event = [&](const json &j) {
            const std::string s = "data: " + dump(j) + "\n\n";
            return sink.is_writable() && sink.write(s.data(), s.size());
          };
          auto chunk = [&](const std::string &text, const char *finish) {
            json c = {{"index", 0}};
            if (chat)
              c["delta"] = text.empty() && !finish
                               ? json{{"role", "assistant"}}
                               : json{{"content", text}};
            else
              c["text"] = text;
            c["finish_reason"] = finish ? json(finish) : json(nullptr);
            json j = head;
            j["choices"] = json::array({c});
            return event(j);
          };
          size_t hold = 0;
          for (const std::string &s : r.stops)
            hold = std::max(hold, s.size() - 1);
          std::lock_guard<ArrivalOrder> lock(decoderTurn);
          if (chat && !chunk("", nullptr))
            return false;
          std::string pending;
          bool stopped = false, gone = false;
          std::ostringstream log;
          r.gen.out = r.gen.err = &log;
          r.gen.cache = &cached;
          r.gen.onToken = [&](const std::string &piece) {
            pending += piece;
            size_t at = std::string::npos;
            for (const std::string &s : r.stops)
              at = std::min(at, pending.find(s));
            if (at != std::string::npos) {
              stopped = true;
              pending.resize(at);
            }
            size_t send = stopped ? pending.size()
                                  : (pending.size() > hold
                                         ? pending.size() - hold
                                         : 0);
            send = std::min(send, wholeCharacters(pending.substr(0, send)));
            if (send && !chunk(pending.substr(0, send), nullptr)) {
              gone = true; // the client went away: free the decoder
              return false;
            }
            pending.erase(0, send);
            return !stopped && std::chrono::steady_clock::now() < deadline;
          };
          GenerateResult result;
          const int rc = generate(decoder, tokenizer, r.gen, &result);
          if (gone)
            return false;
          if (rc != 0) {
            event(json{{"error", {{"message", lastLine(log.str())},
                                  {"type", "server_error"}}}});
          } else {
            if (!pending.empty() && !stopped)
              chunk(pending, nullptr);
            chunk("", stopped ? "stop" : finishReason(result.stopReason));
            // As OpenAI's: one more chunk, without choices, with the usage.
            if (r.streamUsage) {
              json j = head;
              j["choices"] = json::array();
              j["usage"] = usageOf(result);
              event(j);
            }
            const std::string done = "data: [DONE]\n\n";
            sink.write(done.data(), done.size());
          }
          sink.done();
          return true;
        });
  };
  server.Post("/v1/completions",
              [&](const httplib::Request &q, httplib::Response &s) {
                handle(q, s, false);
              });
  server.Post("/v1/chat/completions",
              [&](const httplib::Request &q, httplib::Response &s) {
                handle(q, s, true);
              });
  server.set_error_handler([](const httplib::Request &req,
                              httplib::Response &res) {
    if (!res.body.empty())
      return; // an error already written
    const int status = res.status;
    if (status == 404)
      sendError(res, 404, "no endpoint " + req.method + " " + req.path,
                "invalid_request_error", "not_found");
    else if (status == 413)
      sendError(res, 413, "the request body is too large",
                "invalid_request_error", "payload_too_large");
    else
      sendError(res, status, "request failed with status " +
                                 std::to_string(status),
                "invalid_request_error");
  });
  server.set_exception_handler([](const httplib::Request &,
                                  httplib::Response &res,
                                  std::exception_ptr) {
    sendError(res, 500, "internal error", "server_error");
  });

  int port = opts.port;
  if (port == 0)
    port = server.bind_to_any_port(opts.host);
  else if (!server.bind_to_port(opts.host, port))
    port = -1;
  if (port < 0) {
    log << opts.program << ": error: cannot listen on " << opts.host << ":"
        << opts.port << "\n";
    return 1;
  }
  log << opts.program << ": listening on http://" << opts.host << ":" << port
      << " (model " << opts.modelName << ", chat template "
      << (family.empty() ? "none" : family) << ")\n";
  log.flush();
  return server.listen_after_bind() ? 0 : 1;
}

} // namespace pinfer
