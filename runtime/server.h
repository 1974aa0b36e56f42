// The executables' OpenAI-compatible HTTP server (--server), as llama-server
// serves: /health, /v1/models, /props, /tokenize, /detokenize,
// /v1/completions, /v1/chat/completions and llama-server's /completion,
// whole or streamed (server-sent events), with log-probabilities where
// asked and OpenAI-style JSON errors.
// Requests run one at a time in arrival order on the one decoder; a client
// that goes away mid-stream ends its generation. docs/server.md.
#pragma once

#include "runtime/generate.h"
#include "runtime/tokenizer.h"

#include <ostream>
#include <string>

namespace pinfer {

struct ServerOptions {
  std::string host = "127.0.0.1"; // loopback unless asked
  int port = 8080;                // 0: any free port (printed)
  std::string modelName;          // what /v1/models lists
  std::string chatTemplate;       // family (chat_template.h); "" detect
  std::string architecture;       // general.architecture, for detection
  GenerateOptions defaults;       // sampling, threads, context from flags
  bool lengthGiven = false;       // -n was given: the requests' default
  size_t maxBodyBytes = 1 << 20;  // larger requests get 413
  double requestSeconds = 600;    // a generation past this is ended
  std::string program;            // names the program in its lines
};

// Serves until the process is interrupted (Ctrl-C) or the socket cannot be
// bound. Prints "PROGRAM: listening on http://HOST:PORT (model NAME)" on
// `log` once ready. Returns the exit status (1 with one line when it
// cannot listen or the chat template is unknown).
int runServer(Decoder &decoder, const Tokenizer &tokenizer,
              const std::string &templateText, const ServerOptions &opts,
              std::ostream &log);

} // namespace pinfer
