// Chat templates by family; see chat_template.h.
#include "runtime/chat_template.h"

namespace pinfer {

const std::vector<std::string> &chatTemplateNames() {
  static const std::vector<std::string> names = {
      "chatml", "llama3", "gemma", "phi3", "llama2", "mistral"};
  return names;
}

std::string detectChatTemplate(const std::string &t, const std::string &arch) {
  auto has = [&](const char *s) { return t.find(s) != std::string::npos; };
  if (t.empty())
    return arch.rfind("gemma", 0) == 0 ? "gemma"
           : arch == "phi3"            ? "phi3"
                                       : "chatml";
  if (has("<|im_start|>"))
    return "chatml";
  if (has("<|start_header_id|>") && has("<|eot_id|>"))
    return "llama3";
  if (has("<start_of_turn>"))
    return "gemma";
  if (has("<|assistant|>") && has("<|end|>"))
    return "phi3";
  if (has("[INST]"))
    return has("<<SYS>>") ? "llama2" : "mistral";
  return "";
}

bool applyChatTemplate(const std::string &family,
                       const std::vector<ChatMessage> &messages,
                       std::string &out, std::string &error) {
  out.clear();
  for (const ChatMessage &m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      error = "message role '" + m.role +
              "' is not one of system, user, assistant";
      return false;
    }
  if (family == "chatml") {
    for (const ChatMessage &m : messages)
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    out += "<|im_start|>assistant\n";
  } else if (family == "llama3") {
    for (const ChatMessage &m : messages)
      out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" +
             m.content + "<|eot_id|>";
    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  } else if (family == "gemma") {
    // No system role: its text opens the first user turn.
    std::string system;
    for (const ChatMessage &m : messages) {
      if (m.role == "system") {
        system += m.content + "\n\n";
        continue;
      }
      const bool user = m.role == "user";
      out += std::string("<start_of_turn>") + (user ? "user" : "model") +
             "\n" + (user ? system : "") + m.content + "<end_of_turn>\n";
      if (user)
        system.clear();
    }
    out += "<start_of_turn>model\n";
  } else if (family == "phi3") {
    for (const ChatMessage &m : messages)
      out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
    out += "<|assistant|>\n";
  } else if (family == "llama2" || family == "mistral") {
    // [INST] user [/INST] answer</s>, the system text inside the first
    // instruction (between <<SYS>> markers for llama2).
    std::string system;
    bool first = true;
    for (const ChatMessage &m : messages) {
      if (m.role == "system") {
        system += m.content;
        continue;
      }
      if (m.role == "user") {
        out += first ? "[INST] " : "<s>[INST] ";
        if (!system.empty())
          out += family == "llama2" ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n"
                                    : system + "\n\n";
        system.clear();
        out += m.content + " [/INST]";
        first = false;
      } else {
        out += " " + m.content + "</s>";
      }
    }
  } else {
    error = "chat template '" + family + "' is not one of chatml, llama3, "
            "gemma, phi3, llama2, mistral";
    return false;
  }
  return true;
}

} // namespace pinfer
