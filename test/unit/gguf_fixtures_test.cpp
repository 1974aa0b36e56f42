// Reads the real vocabulary files in the shared fixtures (GGUF files written
// by llama.cpp's tools) and checks their metadata for consistency, that
// rewriting them reproduces the original bytes, and that parsing a 32000
// token vocabulary stays fast.
#include "runtime/gguf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

using namespace pinfer;

namespace {

const std::string kVocabDir = std::string(PINFER_FIXTURES_DIR) + "/vocab";

std::vector<std::string> vocabFiles() {
  std::vector<std::string> out;
  DIR *d = opendir(kVocabDir.c_str());
  if (d == nullptr)
    return out;
  while (dirent *e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0)
      out.push_back(kVocabDir + "/" + n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> readFile(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::string leaf(const std::string &p) { return p.substr(p.rfind('/') + 1); }

TEST(GGUFFixtures, EveryVocabularyIsConsistent) {
  std::vector<std::string> files = vocabFiles();
  ASSERT_GE(files.size(), 4u) << "no vocabulary fixtures in " << kVocabDir;
  for (const std::string &path : files) {
    SCOPED_TRACE(path);
    std::string err;
    auto f = GGUFFile::open(path, err);
    ASSERT_NE(f, nullptr) << err;
    EXPECT_TRUE(f->version() == 2 || f->version() == 3);
    EXPECT_FALSE(f->isPowerInfer());
    EXPECT_TRUE(f->tensors().empty());

    std::string arch, model;
    ASSERT_TRUE(f->getString("general.architecture", arch, err)) << err;
    EXPECT_FALSE(arch.empty());
    ASSERT_TRUE(f->getString("tokenizer.ggml.model", model, err)) << err;
    EXPECT_TRUE(model == "llama" || model == "gpt2") << model;

    std::vector<std::string> tokens;
    ASSERT_TRUE(f->getStringArray("tokenizer.ggml.tokens", tokens, err)) << err;
    ASSERT_FALSE(tokens.empty());
    uint32_t vocabSize = 0;
    if (f->find(arch + ".vocab_size")) {
      ASSERT_TRUE(f->getU32(arch + ".vocab_size", vocabSize, err)) << err;
      EXPECT_EQ(vocabSize, tokens.size());
    }
    if (f->find("tokenizer.ggml.scores")) {
      std::vector<float> scores;
      ASSERT_TRUE(f->getF32Array("tokenizer.ggml.scores", scores, err)) << err;
      EXPECT_EQ(scores.size(), tokens.size());
    }
    if (f->find("tokenizer.ggml.token_type")) {
      std::vector<int32_t> types;
      ASSERT_TRUE(f->getI32Array("tokenizer.ggml.token_type", types, err))
          << err;
      EXPECT_EQ(types.size(), tokens.size());
      for (int32_t t : types)
        ASSERT_TRUE(t >= 1 && t <= 6) << "token type " << t;
    }
    if (f->find("tokenizer.ggml.merges")) {
      std::vector<std::string> merges;
      ASSERT_TRUE(f->getStringArray("tokenizer.ggml.merges", merges, err))
          << err;
      ASSERT_FALSE(merges.empty());
      for (const std::string &m : merges)
        ASSERT_NE(m.find(' '), std::string::npos) << "merge '" << m << "'";
    }
    for (const char *key :
         {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
          "tokenizer.ggml.unknown_token_id",
          "tokenizer.ggml.padding_token_id"}) {
      uint32_t id = 0;
      if (!f->find(key))
        continue;
      ASSERT_TRUE(f->getU32(key, id, err)) << err;
      EXPECT_LT(id, tokens.size()) << key;
    }
  }
}

TEST(GGUFFixtures, KnownFacts) {
  struct Fact {
    const char *file, *arch, *model;
    size_t tokens;
    uint32_t bos, eos;
    const char *bosText;
  };
  const Fact facts[] = {
      {"ggml-vocab-llama-spm.gguf", "llama", "llama", 32000, 1, 2, "<s>"},
      {"ggml-vocab-phi-3.gguf", "phi3", "llama", 32064, 1, 32000, "<s>"},
      {"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", 50257, 50256, 50256,
       "<|endoftext|>"},
      {"ggml-vocab-falcon.gguf", "falcon", "gpt2", 65024, 11, 11,
       "<|endoftext|>"},
  };
  for (const Fact &fact : facts) {
    SCOPED_TRACE(fact.file);
    std::string err, arch, model;
    auto f = GGUFFile::open(kVocabDir + "/" + fact.file, err);
    ASSERT_NE(f, nullptr) << err;
    ASSERT_TRUE(f->getString("general.architecture", arch, err));
    EXPECT_EQ(arch, fact.arch);
    ASSERT_TRUE(f->getString("tokenizer.ggml.model", model, err));
    EXPECT_EQ(model, fact.model);
    std::vector<std::string> tokens;
    ASSERT_TRUE(f->getStringArray("tokenizer.ggml.tokens", tokens, err));
    EXPECT_EQ(tokens.size(), fact.tokens);
    uint32_t bos = 0, eos = 0;
    ASSERT_TRUE(f->getU32("tokenizer.ggml.bos_token_id", bos, err));
    ASSERT_TRUE(f->getU32("tokenizer.ggml.eos_token_id", eos, err));
    EXPECT_EQ(bos, fact.bos);
    EXPECT_EQ(eos, fact.eos);
    ASSERT_LT(bos, tokens.size());
    EXPECT_EQ(tokens[bos], fact.bosText);
  }
}

// The writer lays out metadata exactly as llama.cpp's writer did: rewriting
// a fixture's metadata reproduces its bytes (the writer adds the alignment
// padding that a tensor-less file may omit).
TEST(GGUFFixtures, RewriteReproducesTheOriginalBytes) {
  for (const std::string &path : vocabFiles()) {
    SCOPED_TRACE(path);
    std::string err;
    auto f = GGUFFile::open(path, err);
    ASSERT_NE(f, nullptr) << err;
    GGUFWriter w;
    for (const GGUFKV &kv : f->metadata())
      w.set(kv.key, kv.value);
    std::string out = testing::TempDir() + "/pinfer_rewrite_" +
                      std::to_string(getpid()) + "_" + leaf(path);
    ASSERT_TRUE(w.write(out, err)) << err;
    std::vector<uint8_t> a = readFile(path), b = readFile(out);
    std::remove(out.c_str());
    ASSERT_GE(b.size(), a.size());
    EXPECT_EQ(b.size() % 32, 0u);
    // The header version is the one difference allowed: we always write 3.
    EXPECT_TRUE(std::equal(a.begin() + 8, a.end(), b.begin() + 8));
    EXPECT_TRUE(std::equal(a.begin(), a.begin() + 4, b.begin()));
    for (size_t k = a.size(); k < b.size(); ++k)
      ASSERT_EQ(b[k], 0);
  }
}

TEST(GGUFFixtures, MemoryAndMappedReadsAgree) {
  std::string path = kVocabDir + "/ggml-vocab-gpt-2.gguf", err;
  auto mapped = GGUFFile::open(path, err);
  ASSERT_NE(mapped, nullptr) << err;
  std::vector<uint8_t> bytes = readFile(path);
  auto mem = GGUFFile::fromMemory(bytes.data(), bytes.size(), "gpt2", err);
  ASSERT_NE(mem, nullptr) << err;
  ASSERT_EQ(mem->metadata().size(), mapped->metadata().size());
  EXPECT_EQ(mem->dataOffset(), mapped->dataOffset());
  EXPECT_EQ(mem->path(), "gpt2");
  for (size_t k = 0; k < mem->metadata().size(); ++k) {
    const GGUFValue &x = mem->metadata()[k].value,
                    &y = mapped->metadata()[k].value;
    EXPECT_EQ(mem->metadata()[k].key, mapped->metadata()[k].key);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.arr.size(), y.arr.size());
    EXPECT_EQ(x.s, y.s);
  }
}

// A 32000-token vocabulary (strings, scores and types: ~100k values) must
// parse in well under 100 ms; the best of a few runs excludes page-cache
// warm-up.
TEST(GGUFFixtures, ParsesA32kVocabularyQuickly) {
  std::string path = kVocabDir + "/ggml-vocab-llama-spm.gguf", err;
  double best = 1e9;
  for (int k = 0; k < 5; ++k) {
    auto t0 = std::chrono::steady_clock::now();
    auto f = GGUFFile::open(path, err);
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_NE(f, nullptr) << err;
    best = std::min(best,
                    std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::printf("parsed %s in %.2f ms\n", path.c_str(), best);
  EXPECT_LT(best, 100.0);
}

} // namespace
