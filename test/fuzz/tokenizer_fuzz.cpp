// libFuzzer target for the tokenizers (runtime/tokenizer.h). Built with
// clang's -fsanitize=fuzzer,address,undefined. The first input byte chooses
// what the rest is:
//
//   bit 7 clear: text, encoded with one of the four fixture vocabularies
//     (bits 0-1: llama-spm, phi-3, gpt-2, falcon; bit 2: parseSpecial; bit 3:
//     addBos; bit 4: renderSpecial when decoding). Every id must be in the
//     vocabulary, every accessor must take it, and decoding it must give the
//     text back wherever the tokenizer promises that (see roundTrips).
//   bit 7 set: a GGUF file whose tokenizer.ggml.* metadata builds a
//     tokenizer (the vocabulary of an untrusted model). A refusal must be one
//     line naming the file; an accepted vocabulary is used to encode a few
//     texts and every token's own text, and to decode every id.
//
// The fixture vocabularies are read once, from PINFER_FIXTURES_DIR (set at
// build time, or in the environment to override it).
#include "runtime/gguf.h"
#include "runtime/tokenizer.h"
#include "runtime/unicode.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

using namespace pinfer;

namespace {

volatile uint64_t gSink; // keeps the walk from being optimised away

const char *const kVocabs[4] = {"llama-spm", "phi-3", "gpt-2", "falcon"};
std::unique_ptr<Tokenizer> gTok[4];

// Whether `s` is valid UTF-8 (shortest forms, no surrogates, <= U+10FFFF).
bool validUtf8(const std::string &s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n)
      return false;
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += n + 1;
  }
  return true;
}

// Ids in range and every per-token accessor exercised on them.
uint64_t walkIds(const Tokenizer &tok, const std::vector<int32_t> &ids,
                 bool renderSpecial) {
  uint64_t h = 0;
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.nVocab())
      __builtin_trap();
    h += tok.tokenToPiece(id, renderSpecial).size();
    h += tok.tokenText(id).size() + static_cast<uint64_t>(tok.tokenType(id));
    h += tok.isControl(id) + tok.isEog(id);
    float s = tok.tokenScore(id);
    h += s == s;
  }
  h += tok.decode(ids, renderSpecial).size();
  return h;
}

// Byte-level BPE maps every byte to a symbol, so valid UTF-8 comes back
// byte for byte when the vocabulary holds all 256 byte symbols (gpt-2 does;
// falcon lacks 28, whose bytes are dropped as llama.cpp drops them) and no
// special token was matched (control tokens only match with parseSpecial;
// these vocabularies mark none user-defined).
bool gRoundTrips[4];

bool hasEveryByte(const Tokenizer &tok) {
  if (tok.kind() != TokenizerKind::BPE)
    return false;
  for (int b = 0; b < 256; ++b)
    if (tok.findToken(byteToUnicode(static_cast<uint8_t>(b))) < 0)
      return false;
  return true;
}

int encodeText(uint8_t sel, const std::string &text) {
  int v = sel & 3;
  const Tokenizer &tok = *gTok[v];
  bool parseSpecial = sel & 4, addBos = sel & 8, renderSpecial = sel & 16;
  std::vector<int32_t> ids = tok.encode(text, addBos, parseSpecial);
  if (addBos && tok.bos() >= 0 && (ids.empty() || ids[0] != tok.bos()))
    __builtin_trap();
  uint64_t h = walkIds(tok, ids, renderSpecial);
  if (gRoundTrips[v] && !parseSpecial && validUtf8(text)) {
    std::vector<int32_t> body(ids.begin() + (addBos && tok.bos() >= 0),
                              ids.end());
    if (tok.decode(body, true) != text) {
      std::fprintf(stderr, "%s does not decode its own encoding\n",
                   kVocabs[v]);
      __builtin_trap();
    }
  }
  // Out of range ids give nothing, and do not crash.
  for (int32_t bad : {-1, tok.nVocab(), INT32_MIN, INT32_MAX})
    if (!tok.tokenToPiece(bad).empty())
      __builtin_trap();
  gSink = h;
  return 0;
}

int buildVocab(const uint8_t *data, size_t size) {
  std::string err;
  auto f = GGUFFile::fromMemory(data, size, "fuzz.gguf", err);
  if (f == nullptr)
    return 0; // the GGUF fuzzer covers the container
  std::unique_ptr<Tokenizer> tok = Tokenizer::fromGGUF(*f, err);
  if (tok == nullptr) {
    if (err.empty() || err.find('\n') != std::string::npos ||
        err.compare(0, 11, "fuzz.gguf: ") != 0)
      __builtin_trap();
    return 0;
  }
  if (tok->nVocab() <= 0)
    __builtin_trap();
  for (int32_t special : {tok->bos(), tok->eos(), tok->unk()})
    if (special < -1 || special >= tok->nVocab())
      __builtin_trap();
  uint64_t h = 0;
  std::vector<int32_t> all;
  for (int32_t id = 0; id < tok->nVocab() && id < 4096; ++id) {
    all.push_back(id);
    const std::string &t = tok->tokenText(id);
    int32_t found = tok->findToken(t);
    if (found < 0 || tok->tokenText(found) != t)
      __builtin_trap();
    for (bool special : {false, true})
      h += walkIds(*tok, tok->encode(t, false, special), true);
  }
  h += walkIds(*tok, all, true) + walkIds(*tok, all, false);
  for (const char *text : {"", " ", "Hello world", "  a\tb\n\nc ",
                           "\xe2\x96\x81x", "\xff\xfe", "<s></s><unk>"})
    for (bool special : {false, true})
      h += walkIds(*tok, tok->encode(text, true, special), special);
  gSink = h;
  return 0;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *env = std::getenv("PINFER_FIXTURES_DIR");
  std::string dir = env && *env ? env : PINFER_FIXTURES_DIR;
  for (int v = 0; v < 4; ++v) {
    std::string path = dir + "/vocab/ggml-vocab-" + kVocabs[v] + ".gguf";
    std::string err;
    auto f = GGUFFile::open(path, err);
    if (f)
      gTok[v] = Tokenizer::fromGGUF(*f, err);
    if (!gTok[v]) {
      std::fprintf(stderr, "tokenizer_fuzz: %s\n", err.c_str());
      std::exit(1);
    }
    gRoundTrips[v] = hasEveryByte(*gTok[v]);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] & 0x80)
    return buildVocab(data + 1, size - 1);
  return encodeText(data[0],
                    std::string(reinterpret_cast<const char *>(data + 1),
                                size - 1));
}
