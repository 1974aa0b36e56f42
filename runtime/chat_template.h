// Chat prompts from messages, in the model's template family, as
// llama.cpp's llama_chat_apply_template recognises them: by telltale
// substrings of the Jinja text in tokenizer.chat_template (the template is
// never executed). Used by the server's /v1/chat/completions.
#pragma once

#include <string>
#include <vector>

namespace pinfer {

struct ChatMessage {
  std::string role; // "system", "user" or "assistant"
  std::string content;
};

// The families known: "chatml", "llama3", "gemma", "phi3", "llama2",
// "mistral".
const std::vector<std::string> &chatTemplateNames();

// The family of a GGUF tokenizer.chat_template text; "" when it is none of
// the known ones. A file without a template gets its architecture's family
// (`arch`: general.architecture; Gemma's files often carry none), else
// chatml, as llama.cpp falls back to.
std::string detectChatTemplate(const std::string &jinja,
                               const std::string &arch = "");

// The prompt for `messages` in `family`, ending where the assistant's
// answer begins. The BOS token is not written (the tokenizer adds it).
// False with `error` for an unknown family or role.
bool applyChatTemplate(const std::string &family,
                       const std::vector<ChatMessage> &messages,
                       std::string &prompt, std::string &error);

} // namespace pinfer
