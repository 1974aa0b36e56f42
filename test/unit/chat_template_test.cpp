// Tests the chat templates: each family's prompt for a system, user,
// assistant, user conversation (as llama.cpp's llama_chat_apply_template
// writes them), recognition from GGUF template texts, and the refusals.
#include "runtime/chat_template.h"

#include <gtest/gtest.h>

using namespace pinfer;

namespace {

const std::vector<ChatMessage> kChat = {{"system", "Be brief."},
                                        {"user", "Hi"},
                                        {"assistant", "Hello."},
                                        {"user", "Why?"}};

std::string apply(const std::string &family) {
  std::string prompt, error;
  EXPECT_TRUE(applyChatTemplate(family, kChat, prompt, error)) << error;
  return prompt;
}

TEST(ChatTemplate, Families) {
  EXPECT_EQ(apply("chatml"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi"
            "<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply("llama3"),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhy?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(apply("gemma"),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(apply("phi3"),
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>"
            "\nHello.<|end|>\n<|user|>\nWhy?<|end|>\n<|assistant|>\n");
  EXPECT_EQ(apply("llama2"),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello.</s>"
            "<s>[INST] Why? [/INST]");
  EXPECT_EQ(apply("mistral"),
            "[INST] Be brief.\n\nHi [/INST] Hello.</s><s>[INST] Why? [/INST]");
}

TEST(ChatTemplate, RecognisedFromTheModelsText) {
  EXPECT_EQ(detectChatTemplate(""), "chatml");
  // No template in the file: the architecture's family.
  EXPECT_EQ(detectChatTemplate("", "gemma3"), "gemma");
  EXPECT_EQ(detectChatTemplate("", "qwen2"), "chatml");
  EXPECT_EQ(detectChatTemplate("{% for m in messages %}<|im_start|>{{ m.role }}"),
            "chatml");
  EXPECT_EQ(detectChatTemplate("<|start_header_id|>' + role + '<|end_header_id|>"
                               "{{ content }}<|eot_id|>"),
            "llama3");
  EXPECT_EQ(detectChatTemplate("{{ '<start_of_turn>' + role + '\\n' }}"), "gemma");
  EXPECT_EQ(detectChatTemplate("<|user|>{{ c }}<|end|><|assistant|>"), "phi3");
  EXPECT_EQ(detectChatTemplate("[INST] <<SYS>>\\n{{ s }}"), "llama2");
  EXPECT_EQ(detectChatTemplate("{{ '[INST] ' + m['content'] + ' [/INST]' }}"),
            "mistral");
  EXPECT_EQ(detectChatTemplate("{{ '<|custom|>' }}"), "");
}

TEST(ChatTemplate, Refusals) {
  std::string prompt, error;
  EXPECT_FALSE(applyChatTemplate("jinja", kChat, prompt, error));
  EXPECT_NE(error.find("'jinja' is not one of"), std::string::npos) << error;
  EXPECT_FALSE(
      applyChatTemplate("chatml", {{"robot", "beep"}}, prompt, error));
  EXPECT_EQ(error, "message role 'robot' is not one of system, user, assistant");
}

} // namespace
