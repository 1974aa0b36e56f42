// Interactive chat; see chat_cli.h.
#include "runtime/chat_cli.h"

#include "runtime/chat_template.h"

#include <sstream>

namespace pinfer {

int runChat(Decoder &decoder, const Tokenizer &tokenizer,
            const std::string &family, const std::string &system,
            const std::string &firstUser, GenerateOptions gen, std::istream &in,
            std::ostream &out, std::ostream &err) {
  std::vector<ChatMessage> messages;
  if (!system.empty())
    messages.push_back({"system", system});
  gen.echoPrompt = false;
  gen.json = false;
  // Each turn's prompt is the whole conversation: the KV cache keeps the
  // turns before, so only the new ones are evaluated.
  std::vector<int32_t> cache;
  gen.cache = &cache;
  std::string line;
  bool first = !firstUser.empty();
  for (;;) {
    out << "\n> " << std::flush;
    if (first) {
      line = firstUser; // answered before the terminal's first line
      out << line << "\n";
      first = false;
    } else if (!std::getline(in, line))
      break;
    if (line.empty())
      continue;
    messages.push_back({"user", line});
    std::string error;
    if (!applyChatTemplate(family, messages, gen.prompt, error)) {
      err << gen.program << ": error: " << error << "\n";
      return 1;
    }
    // The answer streams to `out`; the speed lines of each answer are
    // dropped (the end of the chat is what matters).
    std::ostringstream report;
    gen.out = &out;
    gen.err = &report;
    GenerateResult r;
    if (generate(decoder, tokenizer, gen, &r) != 0) {
      err << report.str();
      return 1;
    }
    if (r.stopReason == "interrupted")
      break;
    // An answer cut by the end of the context: no later turn fits either.
    if (r.stopReason == "context") {
      out << "\n";
      err << gen.program << ": error: the context of " << decoder.nCtx()
          << " tokens (-c) is full; the chat ends\n";
      return 1;
    }
    messages.push_back({"assistant", r.text});
  }
  out << "\n";
  return 0;
}

} // namespace pinfer
