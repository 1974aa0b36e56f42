// Regression tests for what the tokenizer fuzzer (test/fuzz/tokenizer_fuzz.cpp)
// found: errors about a vocabulary quoted its strings raw, so a merge, a
// model or a pre-tokenizer name holding a newline broke the one-line rule.
#include "runtime/gguf.h"
#include "runtime/tokenizer.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

using namespace pinfer;

namespace {

Tokenizer::Vocab bpeVocab() {
  Tokenizer::Vocab v;
  v.kind = TokenizerKind::BPE;
  v.tokens = {"a", "b", "ab"};
  v.merges = {"a b"};
  return v;
}

std::string buildError(Tokenizer::Vocab v) {
  std::string err;
  EXPECT_EQ(Tokenizer::fromVocab(std::move(v), "v.gguf", err), nullptr);
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  EXPECT_EQ(err.rfind("v.gguf: ", 0), 0u) << err;
  return err;
}

} // namespace

// Tests that the vocabulary the errors are built from is otherwise valid.
TEST(TokenizerErrors, BaseVocabularyBuilds) {
  std::string err;
  EXPECT_NE(Tokenizer::fromVocab(bpeVocab(), "v.gguf", err), nullptr) << err;
}

// Tests that a merge without a space is quoted with its control bytes
// escaped (the fuzzer's input had "a\r\n").
TEST(TokenizerErrors, MergeIsQuotedOnOneLine) {
  Tokenizer::Vocab v = bpeVocab();
  v.merges.push_back("a\r\n'\\");
  EXPECT_NE(buildError(v).find("key tokenizer.ggml.merges: entry 1 "
                               "'a\\x0d\\x0a\\x27\\x5c' has no space"),
            std::string::npos);
}

// Tests that a long merge is cut in the message.
TEST(TokenizerErrors, LongMergeIsCut) {
  Tokenizer::Vocab v = bpeVocab();
  v.merges.push_back(std::string(1000, 'x'));
  EXPECT_NE(buildError(v).find("'" + std::string(64, 'x') + "...'"),
            std::string::npos);
}

// Tests that an unknown pre-tokenizer name is escaped.
TEST(TokenizerErrors, PreTokenizerIsQuotedOnOneLine) {
  Tokenizer::Vocab v = bpeVocab();
  v.pre = "gpt\n2";
  EXPECT_NE(buildError(v).find("unknown pre-tokenizer 'gpt\\x0a2'"),
            std::string::npos);
}

// Tests that an unknown tokenizer model read from a file is escaped.
TEST(TokenizerErrors, ModelIsQuotedOnOneLine) {
  GGUFWriter w;
  w.setString("tokenizer.ggml.model", "llama\nx");
  w.set("tokenizer.ggml.tokens", GGUFValue::ofStrings({"a"}));
  std::string path = ::testing::TempDir() + "/tokenizer_errors_" +
                     std::to_string(getpid()) + ".gguf";
  std::string err;
  ASSERT_TRUE(w.write(path, err)) << err;
  auto f = GGUFFile::open(path, err);
  std::remove(path.c_str());
  ASSERT_NE(f, nullptr) << err;
  EXPECT_EQ(Tokenizer::fromGGUF(*f, err), nullptr);
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  EXPECT_NE(err.find("unknown tokenizer 'llama\\x0ax' (expected llama or gpt2)"),
            std::string::npos)
      << err;
}
