// Tokenizer tests: llama.cpp's tokenizer test vectors (fixtures/vocab) must
// be reproduced exactly, decoding must invert encoding, special tokens and
// malformed metadata must behave as documented in docs/tokenizers.md.
#include "runtime/gguf.h"
#include "runtime/tokenizer.h"
#include "runtime/unicode.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <sstream>

using namespace pinfer;

namespace {

// The fixtures, else llama.cpp's test vocabularies that
// scripts/install-models.sh extracts into the cache (llama-bpe, qwen2).
std::string vocabPath(const std::string &name) {
  const std::string file = "/ggml-vocab-" + name + ".gguf";
  const std::string fixture = std::string(PINFER_FIXTURES_DIR) + "/vocab" + file;
  if (std::ifstream(fixture).good())
    return fixture;
  std::string cache;
  if (const char *c = std::getenv("PINFERC_CACHE"))
    cache = c;
  else if (const char *x = std::getenv("XDG_CACHE_HOME"))
    cache = std::string(x) + "/pinferc";
  else if (const char *h = std::getenv("HOME"))
    cache = std::string(h) + "/.cache/pinferc";
  return cache + "/vocab" + file;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// Splits NAME.gguf.inp exactly as llama.cpp's test-tokenizer-0 does: on
// "\n__ggml_vocab_test__\n", the text after the last separator being a
// case only if non-empty; NAME.gguf.out has one line of ids per case.
std::vector<Case> readCases(const std::string &gguf) {
  const std::string raw = readFile(gguf + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<Case> cases;
  std::istringstream out(readFile(gguf + ".out"));
  std::string line;
  size_t i = 0;
  while (std::getline(out, line)) {
    if (i >= inputs.size())
      break;
    Case c{inputs[i++], {}};
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id)
      c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), inputs.size()) << gguf << ": .inp/.out disagree";
  return cases;
}

std::string idsString(const std::vector<int32_t> &ids) {
  std::string s;
  for (int32_t id : ids)
    s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::string escaped(const std::string &s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else
      out.push_back(char(c));
  }
  return out;
}

struct Loaded {
  std::unique_ptr<GGUFFile> file;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string &name) {
  Loaded l;
  std::string error;
  l.file = GGUFFile::open(vocabPath(name), error);
  EXPECT_TRUE(l.file) << error;
  if (!l.file)
    return l;
  l.tok = Tokenizer::fromGGUF(*l.file, error);
  EXPECT_TRUE(l.tok) << error;
  return l;
}

class VocabTest : public ::testing::TestWithParam<const char *> {
protected:
  void SetUp() override {
    if (!std::ifstream(vocabPath(GetParam())).good())
      GTEST_SKIP() << vocabPath(GetParam())
                   << " is absent (bash scripts/install-models.sh)";
  }
};

TEST_P(VocabTest, ReproducesLlamaCppVectors) {
  Loaded l = load(GetParam());
  ASSERT_TRUE(l.tok);
  std::vector<Case> cases = readCases(vocabPath(GetParam()));
  ASSERT_GE(cases.size(), 40u);
  int failures = 0;
  for (const Case &c : cases) {
    std::vector<int32_t> got = l.tok->encode(c.text, false, false);
    if (got != c.ids) {
      ++failures;
      ADD_FAILURE() << GetParam() << ": '" << escaped(c.text) << "'\n"
                    << "  expected: " << idsString(c.ids) << "\n"
                    << "  got:      " << idsString(got);
    }
  }
  EXPECT_EQ(failures, 0) << failures << " of " << cases.size()
                         << " strings differ";
}

TEST_P(VocabTest, DecodeInvertsEncode) {
  Loaded l = load(GetParam());
  ASSERT_TRUE(l.tok);
  for (const Case &c : readCases(vocabPath(GetParam()))) {
    std::vector<int32_t> ids = l.tok->encode(c.text, false, false);
    EXPECT_EQ(l.tok->decode(ids), c.text) << "'" << escaped(c.text) << "'";
  }
}

// Encoding a few kilobytes must take milliseconds, not seconds.
TEST_P(VocabTest, EncodesKilobytesInMilliseconds) {
  Loaded l = load(GetParam());
  ASSERT_TRUE(l.tok);
  std::string text;
  for (const Case &c : readCases(vocabPath(GetParam())))
    text += c.text + "\n";
  while (text.size() < 8192)
    text += text;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = l.tok->encode(text, false, false);
  auto t1 = std::chrono::steady_clock::now();
  double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  std::printf("%s: %zu bytes -> %zu tokens in %.2f ms\n", GetParam(),
              text.size(), ids.size(), ms);
  EXPECT_LT(ms, 200.0);
  EXPECT_EQ(l.tok->decode(ids), text);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, VocabTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2",
                                           "falcon", "llama-bpe", "qwen2"),
                         [](const ::testing::TestParamInfo<const char *> &i) {
                           std::string n = i.param;
                           for (char &c : n)
                             if (c == '-')
                               c = '_';
                           return n;
                         });

TEST(Tokenizer, MetadataOfFixtures) {
  Loaded spm = load("llama-spm");
  ASSERT_TRUE(spm.tok);
  EXPECT_EQ(spm.tok->kind(), TokenizerKind::SPM);
  EXPECT_EQ(spm.tok->nVocab(), 32000);
  EXPECT_EQ(spm.tok->bos(), 1);
  EXPECT_EQ(spm.tok->eos(), 2);
  EXPECT_TRUE(spm.tok->addBosByDefault());
  EXPECT_TRUE(spm.tok->isEog(2));
  EXPECT_FALSE(spm.tok->isEog(1));
  EXPECT_TRUE(spm.tok->isControl(1));
  EXPECT_EQ(spm.tok->tokenText(13), "<0x0A>");
  EXPECT_EQ(spm.tok->tokenToPiece(13), "\n");
  EXPECT_EQ(spm.tok->tokenToPiece(29871), " ");
  EXPECT_EQ(spm.tok->tokenToPiece(1), "<s>");
  EXPECT_EQ(spm.tok->tokenToPiece(1, false), "");
  EXPECT_EQ(spm.tok->tokenToPiece(-1), "");
  EXPECT_EQ(spm.tok->tokenText(32000), "");

  Loaded gpt2 = load("gpt-2");
  ASSERT_TRUE(gpt2.tok);
  EXPECT_EQ(gpt2.tok->kind(), TokenizerKind::BPE);
  EXPECT_EQ(gpt2.tok->preTokenizer(), BPEPreTokenizer::GPT2);
  EXPECT_EQ(gpt2.tok->nVocab(), 50257);
  EXPECT_FALSE(gpt2.tok->addBosByDefault());
  EXPECT_TRUE(gpt2.tok->isEog(50256));
  EXPECT_EQ(gpt2.tok->tokenToPiece(220), " ");  // "Ġ"
  EXPECT_EQ(gpt2.tok->tokenToPiece(198), "\n"); // "Ċ"

  Loaded phi3 = load("phi-3");
  ASSERT_TRUE(phi3.tok);
  EXPECT_TRUE(phi3.tok->isEog(32000));  // <|endoftext|>
  EXPECT_TRUE(phi3.tok->isEog(32007));  // <|end|>
  EXPECT_FALSE(phi3.tok->isEog(32010)); // <|user|>

  Loaded falcon = load("falcon");
  ASSERT_TRUE(falcon.tok);
  EXPECT_EQ(falcon.tok->preTokenizer(), BPEPreTokenizer::Falcon);
}

TEST(Tokenizer, BosIsPrependedOnRequest) {
  Loaded spm = load("llama-spm");
  ASSERT_TRUE(spm.tok);
  EXPECT_EQ(spm.tok->encode("Hello world", true, false),
            (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(spm.tok->encode("", true, false), (std::vector<int32_t>{1}));
  EXPECT_EQ(spm.tok->encode("", false, false), (std::vector<int32_t>{}));
}

TEST(Tokenizer, SpecialTokensSplitOnlyWhenParsed) {
  Loaded gpt2 = load("gpt-2");
  ASSERT_TRUE(gpt2.tok);
  const std::string text = "Hello<|endoftext|> world";
  std::vector<int32_t> parsed = gpt2.tok->encode(text, false, true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{15496, 50256, 995}));
  std::vector<int32_t> plain = gpt2.tok->encode(text, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(gpt2.tok->decode(plain), text);
  EXPECT_EQ(gpt2.tok->decode(parsed), text);
  EXPECT_EQ(gpt2.tok->decode(parsed, false), "Hello world");

  // SentencePiece puts a space in front of text that follows a special
  // token; phi-3's chat tokens also swallow the white space after them.
  Loaded phi3 = load("phi-3");
  ASSERT_TRUE(phi3.tok);
  std::vector<int32_t> chat =
      phi3.tok->encode("<|user|>\nHi there<|end|>", false, true);
  std::vector<int32_t> expected{32010};
  for (int32_t id : phi3.tok->encode("Hi there", false, false))
    expected.push_back(id);
  expected.push_back(32007);
  EXPECT_EQ(chat, expected);
  // User-defined tokens ("</s>" in phi-3) are matched even in plain text.
  std::vector<int32_t> userDefined = phi3.tok->encode("a</s>", false, false);
  EXPECT_EQ(std::count(userDefined.begin(), userDefined.end(), 2), 1);
}

TEST(Tokenizer, InvalidUtf8BecomesReplacementCharacter) {
  Loaded gpt2 = load("gpt-2");
  ASSERT_TRUE(gpt2.tok);
  EXPECT_EQ(gpt2.tok->decode(gpt2.tok->encode("a\xff"
                                              "b",
                                              false, false)),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(Unicode, CategoriesAndByteMapping) {
  EXPECT_EQ(unicodeCategory('a'), UnicodeCategory::Letter);
  EXPECT_EQ(unicodeCategory(0x0416), UnicodeCategory::Letter); // Ж
  EXPECT_EQ(unicodeCategory(0x4E00), UnicodeCategory::Letter); // 一
  EXPECT_EQ(unicodeCategory('7'), UnicodeCategory::Number);
  EXPECT_EQ(unicodeCategory(0x00BD), UnicodeCategory::Number);      // ½
  EXPECT_EQ(unicodeCategory(0x3001), UnicodeCategory::Punctuation); // 、
  EXPECT_EQ(unicodeCategory('$'), UnicodeCategory::Symbol);
  EXPECT_EQ(unicodeCategory(0x0301), UnicodeCategory::Mark);
  EXPECT_EQ(unicodeCategory(0x0378), UnicodeCategory::Unassigned);
  EXPECT_TRUE(unicodeIsWhitespace(0x3000));
  EXPECT_FALSE(unicodeIsWhitespace(0x200B)); // zero width space is not
  EXPECT_EQ(byteToUnicode(' '), "\xC4\xA0"); // Ġ
  EXPECT_EQ(byteToUnicode('A'), "A");
  for (int b = 0; b < 256; ++b) {
    std::vector<uint32_t> cp = utf8Decode(byteToUnicode(uint8_t(b)));
    ASSERT_EQ(cp.size(), 1u);
    EXPECT_EQ(unicodeToByte(cp[0]), b);
  }
}

// Writes a vocabulary-only GGUF with the given metadata and loads it.
std::unique_ptr<Tokenizer>
loadWritten(const GGUFWriter &w, const std::string &name, std::string &error) {
  const std::string path =
      ::testing::TempDir() + "/tokenizer_" + std::to_string(getpid()) + "_" + name + ".gguf";
  if (!w.write(path, error))
    return nullptr;
  std::unique_ptr<GGUFFile> f = GGUFFile::open(path, error);
  if (!f)
    return nullptr;
  std::unique_ptr<Tokenizer> t = Tokenizer::fromGGUF(*f, error);
  std::remove(path.c_str());
  return t;
}

GGUFWriter tinyVocab(const std::string &model) {
  GGUFWriter w;
  w.setString("tokenizer.ggml.model", model);
  w.set("tokenizer.ggml.tokens",
        GGUFValue::ofStrings({"a", "b", "ab", "\xE2\x96\x81"}));
  w.set("tokenizer.ggml.scores", GGUFValue::ofF32s({0, 0, 1, 0}));
  w.set("tokenizer.ggml.merges", GGUFValue::ofStrings({"a b"}));
  return w;
}

TEST(TokenizerErrors, UnknownTokenizerKind) {
  std::string error;
  EXPECT_FALSE(loadWritten(tinyVocab("xyz"), "kind", error));
  EXPECT_NE(error.find("tokenizer.ggml.model"), std::string::npos) << error;
  EXPECT_NE(error.find("'xyz'"), std::string::npos) << error;
  EXPECT_NE(error.find("expected llama or gpt2"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(TokenizerErrors, UnknownPreTokenizer) {
  GGUFWriter w = tinyVocab("gpt2");
  w.setString("tokenizer.ggml.pre", "klingon");
  std::string error;
  EXPECT_FALSE(loadWritten(w, "pre", error));
  EXPECT_NE(error.find("tokenizer.ggml.pre"), std::string::npos) << error;
  EXPECT_NE(error.find("'klingon'"), std::string::npos) << error;
}

TEST(TokenizerErrors, MissingOrInconsistentArrays) {
  GGUFWriter noTokens;
  noTokens.setString("tokenizer.ggml.model", "llama");
  std::string error;
  EXPECT_FALSE(loadWritten(noTokens, "notokens", error));
  EXPECT_NE(error.find("tokenizer.ggml.tokens"), std::string::npos) << error;

  GGUFWriter shortScores = tinyVocab("llama");
  shortScores.set("tokenizer.ggml.scores", GGUFValue::ofF32s({0, 0}));
  error.clear();
  EXPECT_FALSE(loadWritten(shortScores, "scores", error));
  EXPECT_NE(error.find("tokenizer.ggml.scores"), std::string::npos) << error;

  GGUFWriter noMerges;
  noMerges.setString("tokenizer.ggml.model", "gpt2");
  noMerges.set("tokenizer.ggml.tokens", GGUFValue::ofStrings({"a"}));
  error.clear();
  EXPECT_FALSE(loadWritten(noMerges, "merges", error));
  EXPECT_NE(error.find("tokenizer.ggml.merges"), std::string::npos) << error;

  GGUFWriter badBos = tinyVocab("llama");
  badBos.setU32("tokenizer.ggml.bos_token_id", 99);
  error.clear();
  EXPECT_FALSE(loadWritten(badBos, "bos", error));
  EXPECT_NE(error.find("tokenizer.ggml.bos_token_id"), std::string::npos)
      << error;
}

TEST(TokenizerErrors, NegativeIdMeansAbsent) {
  GGUFWriter w = tinyVocab("llama");
  w.set("tokenizer.ggml.bos_token_id", GGUFValue::ofI32(-1));
  w.setString("tokenizer.ggml.eos_token_id", "2");
  std::string error;
  EXPECT_FALSE(loadWritten(w, "eos", error));
  EXPECT_NE(error.find("tokenizer.ggml.eos_token_id"), std::string::npos)
      << error;
  w.setU32("tokenizer.ggml.eos_token_id", 2);
  std::unique_ptr<Tokenizer> t = loadWritten(w, "negbos", error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->bos(), -1);
  EXPECT_EQ(t->eos(), 2);
  // No BOS to add: the request is ignored rather than writing -1.
  EXPECT_EQ(t->encode("ab", true, false), (std::vector<int32_t>{3, 2}));
}

// Small vocabularies written and read back: SPM merges the best-scoring
// pair first, BPE the lowest-ranked merge first, whatever the order in the
// text.
TEST(Tokenizer, TinyVocabulariesFollowScoresAndRanks) {
  auto vocab = [](const std::string &model, float abScore, float bcScore,
                  std::vector<std::string> merges) {
    GGUFWriter w;
    w.setString("tokenizer.ggml.model", model);
    w.setString("tokenizer.ggml.pre", "gpt-2");
    // ids:                          0    1    2     3     4    5
    w.set("tokenizer.ggml.tokens",
          GGUFValue::ofStrings({"a", "b", "c", "ab", "bc", "\xE2\x96\x81"}));
    w.set("tokenizer.ggml.scores",
          GGUFValue::ofF32s({0, 0, 0, abScore, bcScore, 0}));
    w.set("tokenizer.ggml.merges", GGUFValue::ofStrings(merges));
    return w;
  };
  std::string error;
  auto spmAB = loadWritten(vocab("llama", 2, 1, {}), "spm_ab", error);
  ASSERT_TRUE(spmAB) << error;
  EXPECT_EQ(spmAB->encode("abc", false, false),
            (std::vector<int32_t>{5, 3, 2}));
  auto spmBC = loadWritten(vocab("llama", 1, 2, {}), "spm_bc", error);
  ASSERT_TRUE(spmBC) << error;
  EXPECT_EQ(spmBC->encode("abc", false, false),
            (std::vector<int32_t>{5, 0, 4}));
  // No byte tokens and no unknown token: an unmergeable character is
  // dropped rather than mis-encoded.
  EXPECT_EQ(spmBC->encode("d", false, false), (std::vector<int32_t>{5}));

  auto bpeAB =
      loadWritten(vocab("gpt2", 0, 0, {"a b", "b c"}), "bpe_ab", error);
  ASSERT_TRUE(bpeAB) << error;
  EXPECT_EQ(bpeAB->encode("abc", false, false), (std::vector<int32_t>{3, 2}));
  auto bpeBC =
      loadWritten(vocab("gpt2", 0, 0, {"b c", "a b"}), "bpe_bc", error);
  ASSERT_TRUE(bpeBC) << error;
  EXPECT_EQ(bpeBC->encode("abc", false, false), (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(bpeBC->decode({0, 4}), "abc");
}

} // namespace
