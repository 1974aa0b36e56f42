// The OpenAI-compatible server; see server.h. HTTP is Debian's cpp-httplib,
// JSON nlohmann-json (llama-server's own choices).
#include "runtime/server.h"

#include "runtime/arrival_order.h"
#include "runtime/chat_template.h"
#include "runtime/server_answer.h"
#include "runtime/server_request.h"
#include "runtime/version.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <mutex>
#include <sstream>

namespace pinfer {

namespace {

using json = nlohmann::ordered_json;

void sendError(httplib::Response &res, int status, const std::string &message,
               const char *type, const char *code = nullptr) {
  json e = {{"message", message}, {"type", type}};
  e["code"] = code ? json(code) : json(nullptr);
  res.status = status;
  res.set_content(dumpJson(json{{"error", e}}), "application/json");
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
    res.set_content(dumpJson(json{{"status", "ok"}}), "application/json");
  });
  server.Get("/v1/models", [&](const httplib::Request &,
                               httplib::Response &res) {
    json m = {{"id", opts.modelName}, {"object", "model"},
              {"created", 0}, {"owned_by", "pinferc"}};
    res.set_content(
        dumpJson(json{{"object", "list"}, {"data", json::array({m})}}),
        "application/json");
  });

  // llama-server's /props: what its web page and clients read first.
  server.Get("/props", [&](const httplib::Request &, httplib::Response &res) {
    GenerateOptions dflt = opts.defaults;
    if (!opts.lengthGiven)
      dflt.nPredict = -1;
    auto piece = [&](int32_t t) {
      return t < 0 ? std::string() : tokenizer.tokenToPiece(t, true);
    };
    json props = {{"default_generation_settings",
                   {{"n_ctx", decoder.nCtx()},
                    {"params", settingsJson(dflt, decoder.nCtx())}}},
                  {"total_slots", 1},
                  {"model_alias", opts.modelName},
                  {"model_path", opts.modelName},
                  {"chat_template", templateText},
                  {"chat_template_family", family},
                  {"bos_token", piece(tokenizer.bos())},
                  {"eos_token", piece(tokenizer.eos())},
                  {"modalities", {{"vision", false}, {"audio", false}}},
                  {"build_info", std::string("pinferc ") + pinferVersion()}};
    res.set_content(dumpJson(props), "application/json");
  });

  // POST handlers read their body themselves: the library's own reading
  // refuses a body sent as a form (curl's -d without a Content-Type, as
  // the docs' examples send) past 8 KiB, where a prompt may take 1 MiB.
  // Each handler gets the body parsed (parseRequestBody): one that is not
  // JSON, or nests too deep, is answered here.
  using Handler = std::function<void(const json &, httplib::Response &)>;
  auto post = [&](const char *path, Handler handler) {
    const size_t limit = opts.maxBodyBytes;
    server.Post(path, [handler, limit](const httplib::Request &req,
                                       httplib::Response &res,
                                       const httplib::ContentReader &read) {
      if (req.is_multipart_form_data())
        return sendError(res, 400, "expected a JSON body, not a multipart form",
                         "invalid_request_error");
      std::string text;
      // The library skips a body whose Content-Length is over the limit
      // without calling the receiver; a chunked one is counted here.
      bool tooLarge =
          std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr,
                        10) > limit;
      const bool whole = !tooLarge && read([&](const char *data, size_t n) {
        tooLarge = text.size() + n > limit;
        if (!tooLarge)
          text.append(data, n);
        return !tooLarge;
      });
      if (tooLarge)
        return sendError(res, 413, "the request body is too large",
                         "invalid_request_error", "payload_too_large");
      if (!whole)
        return sendError(res, 400, "the request body could not be read",
                         "invalid_request_error");
      std::string error;
      const json body = parseRequestBody(text, error);
      if (body.is_discarded())
        return sendError(res, 400, error, "invalid_request_error");
      handler(body, res);
    });
  };

  // llama-server's /tokenize and /detokenize: the model's tokenizer alone,
  // without the decoder (no turn to wait for).
  post(
      "/tokenize", [&](const json &body, httplib::Response &res) {
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
        res.set_content(dumpJson(json{{"tokens", ids}}), "application/json");
      });
  post("/detokenize", [&](const json &body, httplib::Response &res) {
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
    res.set_content(dumpJson(json{{"content", tokenizer.decode(ids)}}),
                    "application/json");
  });

  auto handle = [&](const json &body, httplib::Response &res,
                    Endpoint endpoint) {
    const bool chat = endpoint == Endpoint::Chat,
               native = endpoint == Endpoint::Native;
    std::string error;
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
    if (!readRequest(body, endpoint, opts, family, tokenizer, r, error))
      return sendError(res, 400, error, "invalid_request_error");
    r.gen.prompt = r.prompt;
    r.gen.promptTokens = r.promptIds;
    r.gen.sampling.repeatLastN =
        std::min(r.gen.sampling.repeatLastN, decoder.nCtx());
    const int nPrompt = int(r.promptIds.size());
    // A length the request did not give ends where the context does, as
    // llama-server's; one it gave must fit, as OpenAI's.
    if (!r.lengthGiven && r.gen.nPredict > decoder.nCtx() - nPrompt)
      r.gen.nPredict = -1;
    const int want = r.gen.nPredict >= 0 ? r.gen.nPredict : 1;
    if (nPrompt == 0)
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
    // OpenAI's text offsets count from the prompt's start.
    Pieces promptText;
    promptText.add(r.prompt);
    const size_t promptChars = promptText.chars;
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(
                        int64_t(opts.requestSeconds * 1000));

    if (!r.stream) {
      std::lock_guard<ArrivalOrder> lock(decoderTurn);
      std::ostringstream sink;
      r.gen.out = r.gen.err = &sink;
      r.gen.cache = &cached;
      bool late = false; // past the request's time: ended as at a length
      r.gen.onToken = [&](const std::string &) {
        late = std::chrono::steady_clock::now() >= deadline;
        return !late;
      };
      GenerateResult result;
      if (generate(decoder, tokenizer, r.gen, &result) != 0)
        return sendError(res, 500, lastLine(sink.str()), "server_error");
      if (late)
        result.stopReason = "length";
      // OpenAI leaves the stop string out, and the tokens of it.
      const StopAt stop = findStop(result.text, r.stops);
      const std::string text = result.text.substr(0, stop.at);
      Pieces pieces;
      for (int32_t t : result.tokens)
        pieces.add(tokenizer.tokenToPiece(t, false));
      const size_t shown = pieces.countWithin(text.size());
      if (native) {
        res.set_content(
            dumpJson(nativeAnswer(r, result, text, stop, tokenizer, pieces, 0,
                                  shown, decoder.nCtx(), opts.modelName)),
            "application/json");
        return;
      }
      json choice = {{"index", 0},
                     {"finish_reason", finishReason(result.stopReason)}};
      if (chat)
        choice["message"] = {{"role", "assistant"}, {"content", text}};
      else
        choice["text"] = text;
      choice["logprobs"] =
          r.nProbs >= 0 ? logprobsJson(endpoint, tokenizer, result.logprobs,
                                       pieces, 0, shown, promptChars)
                        : json(nullptr);
      json out = head;
      out["choices"] = json::array({choice});
      out["usage"] = usageOf(result);
      res.set_content(dumpJson(out), "application/json");
      return;
    }

    // Streamed: one event per piece of text, held back while it could be
    // the start of a stop string or ends inside a character. Each event
    // lists the tokens whose text begins in what has been sent.
    head["object"] = chat ? "chat.completion.chunk" : "text_completion";
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&, r, head, endpoint, chat, native, deadline,
         promptChars](size_t, httplib::DataSink &sink) mutable {
          GenerateResult result;
          Pieces pieces;
          size_t sent = 0, shown = 0; // bytes of text, tokens listed
          auto event = [&](const json &j) {
            const std::string s = "data: " + dumpJson(j) + "\n\n";
            return sink.is_writable() && sink.write(s.data(), s.size());
          };
          auto chunk = [&](const std::string &text, const char *finish) {
            sent += text.size();
            const size_t from = shown;
            shown = pieces.countWithin(sent);
            if (native) {
              json j = {{"index", 0},
                        {"content", text},
                        {"tokens", json::array()},
                        {"stop", false},
                        {"id_slot", 0},
                        {"tokens_predicted", result.tokens.size()},
                        {"tokens_evaluated", result.promptTokens.size()}};
              if (r.returnTokens)
                j["tokens"] = std::vector<int32_t>(
                    result.tokens.begin() + std::ptrdiff_t(from),
                    result.tokens.begin() + std::ptrdiff_t(shown));
              if (r.nProbs > 0)
                j["completion_probabilities"] =
                    logprobsJson(endpoint, tokenizer, result.logprobs, pieces,
                                 from, shown, 0);
              return event(j);
            }
            json c = {{"index", 0}};
            if (chat)
              c["delta"] = text.empty() && !finish
                               ? json{{"role", "assistant"}}
                               : json{{"content", text}};
            else
              c["text"] = text;
            c["logprobs"] =
                r.nProbs >= 0 && shown > from
                    ? logprobsJson(endpoint, tokenizer, result.logprobs, pieces,
                                   from, shown, promptChars)
                    : json(nullptr);
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
          bool stopped = false, gone = false, late = false;
          std::ostringstream log;
          r.gen.out = r.gen.err = &log;
          r.gen.cache = &cached;
          r.gen.onToken = [&](const std::string &piece) {
            pieces.add(piece);
            pending += piece;
            const StopAt stop = findStop(pending, r.stops);
            if (stop.at != std::string::npos) {
              stopped = true;
              pending.resize(stop.at);
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
            late = std::chrono::steady_clock::now() >= deadline;
            return !stopped && !late;
          };
          const int rc = generate(decoder, tokenizer, r.gen, &result);
          if (gone)
            return false;
          // Ended here, not by generate: say why as it would have.
          if (stopped)
            result.stopReason = "stop";
          else if (late)
            result.stopReason = "length";
          if (rc != 0) {
            event(json{{"error", {{"message", lastLine(log.str())},
                                  {"type", "server_error"}}}});
          } else if (native) {
            if (!pending.empty() && !stopped)
              chunk(pending, nullptr);
            // llama-server's last event: the whole answer's fields, no text.
            const size_t from = shown;
            shown = pieces.countWithin(sent);
            event(nativeAnswer(r, result, "", findStop(result.text, r.stops),
                               tokenizer, pieces, from, shown, decoder.nCtx(),
                               opts.modelName));
          } else {
            if (!pending.empty() && !stopped)
              chunk(pending, nullptr);
            chunk("", finishReason(result.stopReason));
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
  auto route = [&](const char *path, Endpoint endpoint) {
    post(path, [&, endpoint](const json &body, httplib::Response &s) {
      handle(body, s, endpoint);
    });
  };
  // llama-server's paths: /completion(s) its own, the others OpenAI's.
  route("/v1/completions", Endpoint::Completions);
  route("/v1/chat/completions", Endpoint::Chat);
  route("/chat/completions", Endpoint::Chat);
  route("/completion", Endpoint::Native);
  route("/completions", Endpoint::Native);
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
