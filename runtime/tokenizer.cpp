// Tokenizer construction from GGUF metadata, special-token splitting, and
// the parts shared by both vocabulary kinds (pieces, decoding). The merge
// algorithms live in tokenizer_spm.cpp and tokenizer_bpe.cpp.
#include "runtime/tokenizer.h"

#include "runtime/gguf.h"
#include "runtime/unicode.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string_view>

namespace pinfer {
namespace {

const char kSpaceMarker[] = "\xE2\x96\x81"; // U+2581, SentencePiece's space

// Texts that end a turn or a document in the vocabularies llama.cpp knows;
// such tokens stop generation and are treated as control tokens whatever
// type the file gives them, as llama.cpp does.
const char *const kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",   "<|endoftext|>",
    "<|eom_id|>", "<EOT>",      "_<EOT>",  "<|end_of_text|>",
};

void replaceAll(std::string &s, const std::string &from,
                const std::string &to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (;;) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos)
      break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// A string from the file quoted in an error: control bytes, quotes and
// backslashes as \xNN, so that the error stays one line, and at most 64
// bytes of it (as in gguf.cpp).
std::string quoted(const std::string &s) {
  std::string out = "'";
  for (unsigned char c : s.substr(0, 64)) {
    if (c >= 0x20 && c != 0x7f && c != '\\' && c != '\'') {
      out += char(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out + (s.size() > 64 ? "...'" : "'");
}

// "<0xNN>" -> NN, or -1.
int byteTokenValue(const std::string &text) {
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>')
    return -1;
  int hi = hexDigit(text[3]), lo = hexDigit(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

bool isPreGPT2(const std::string &pre) {
  // Vocabularies whose pre-tokenizer is exactly GPT-2's regex.
  return pre == "gpt-2" || pre == "phi-2" || pre == "mpt" || pre == "olmo";
}

// Reads an optional token id key into `out`, left at -1 when the key is
// absent or negative (some converters write -1 for "none").
bool readOptId(const GGUFFile &f, const char *key, int32_t &out,
               std::string &error) {
  const GGUFValue *v = f.find(key);
  if (!v)
    return true;
  int64_t id = 0;
  if (!v->asInt(id)) {
    error = f.path() + ": key " + key + ": has type " + valueTypeName(v->type) +
            ", expected an integer token id";
    return false;
  }
  // -1, and 0xFFFFFFFF as a uint32, mean "no such token" (llama.cpp's
  // LLAMA_TOKEN_NULL).
  if (id < 0 || id == 0xFFFFFFFFll)
    return true;
  if (id > INT32_MAX) {
    error = f.path() + ": key " + key + ": token id " + std::to_string(id) +
            " is out of range, expected an id below the vocabulary size";
    return false;
  }
  out = int32_t(id); // checked against the vocabulary in init()
  return true;
}

bool readOptBool(const GGUFFile &f, const char *key, int &out,
                 std::string &error) {
  if (!f.find(key))
    return true;
  bool v = false;
  if (!f.getBool(key, v, error))
    return false;
  out = v ? 1 : 0;
  return true;
}

} // namespace

std::unique_ptr<Tokenizer> Tokenizer::fromGGUF(const GGUFFile &f,
                                               std::string &error) {
  const std::string &path = f.path();
  Vocab v;
  std::string model;
  if (!f.getString("tokenizer.ggml.model", model, error))
    return nullptr;
  if (model == "llama") {
    v.kind = TokenizerKind::SPM;
  } else if (model == "gpt2") {
    v.kind = TokenizerKind::BPE;
  } else {
    error = path + ": key tokenizer.ggml.model: unknown tokenizer " +
            quoted(model) + " (expected llama or gpt2)";
    return nullptr;
  }
  if (!f.getOptString("tokenizer.ggml.pre", v.pre, error) ||
      !f.getStringArray("tokenizer.ggml.tokens", v.tokens, error))
    return nullptr;
  if (f.find("tokenizer.ggml.scores")) {
    // Scores are float32 in every converter we know; some store int32.
    std::string floatError;
    if (!f.getF32Array("tokenizer.ggml.scores", v.scores, floatError)) {
      std::vector<int32_t> iscores;
      if (!f.getI32Array("tokenizer.ggml.scores", iscores, error)) {
        error = floatError;
        return nullptr;
      }
      v.scores.assign(iscores.begin(), iscores.end());
    }
  }
  if (f.find("tokenizer.ggml.token_type") &&
      !f.getI32Array("tokenizer.ggml.token_type", v.types, error))
    return nullptr;
  if (v.kind == TokenizerKind::BPE &&
      !f.getStringArray("tokenizer.ggml.merges", v.merges, error))
    return nullptr;
  if (!readOptId(f, "tokenizer.ggml.bos_token_id", v.bos, error) ||
      !readOptId(f, "tokenizer.ggml.eos_token_id", v.eos, error) ||
      !readOptId(f, "tokenizer.ggml.unknown_token_id", v.unk, error) ||
      !readOptId(f, "tokenizer.ggml.eot_token_id", v.eot, error) ||
      !readOptId(f, "tokenizer.ggml.eom_token_id", v.eom, error) ||
      !readOptBool(f, "tokenizer.ggml.add_bos_token", v.addBos, error) ||
      !readOptBool(f, "tokenizer.ggml.add_space_prefix", v.addSpacePrefix,
                   error) ||
      !f.getOptString("general.name", v.modelName, error))
    return nullptr;
  return fromVocab(std::move(v), path, error);
}

std::unique_ptr<Tokenizer>
Tokenizer::fromVocab(Vocab v, const std::string &source, std::string &error) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  if (!t->init(v, source, error))
    return nullptr;
  return t;
}

bool Tokenizer::init(Vocab &v, const std::string &source, std::string &error) {
  kind_ = v.kind;
  const size_t n = v.tokens.size();
  if (n == 0 || n > size_t(INT32_MAX)) {
    error = source + ": key tokenizer.ggml.tokens: " + std::to_string(n) +
            " tokens (expected 1 to 2^31-1)";
    return false;
  }
  if (!v.scores.empty() && v.scores.size() != n) {
    error = source +
            ": key tokenizer.ggml.scores: " + std::to_string(v.scores.size()) +
            " entries (expected " + std::to_string(n) + ", one per token)";
    return false;
  }
  if (!v.types.empty() && v.types.size() != n) {
    error = source + ": key tokenizer.ggml.token_type: " +
            std::to_string(v.types.size()) + " entries (expected " +
            std::to_string(n) + ", one per token)";
    return false;
  }
  if (kind_ == TokenizerKind::BPE) {
    if (v.pre.empty() || v.pre == "default") {
      pre_ = BPEPreTokenizer::Default;
    } else if (isPreGPT2(v.pre)) {
      pre_ = BPEPreTokenizer::GPT2;
    } else if (v.pre == "falcon") {
      pre_ = BPEPreTokenizer::Falcon;
    } else if (v.pre == "llama-bpe" || v.pre == "llama3" ||
               v.pre == "llama-v3" || v.pre == "smaug-bpe") {
      pre_ = BPEPreTokenizer::Llama3;
    } else if (v.pre == "qwen2" || v.pre == "deepseek-r1-qwen") {
      pre_ = BPEPreTokenizer::Qwen2;
    } else {
      error = source + ": key tokenizer.ggml.pre: unknown pre-tokenizer " +
              quoted(v.pre) +
              " (expected default, gpt-2, phi-2, mpt, olmo, falcon, "
              "llama-bpe, llama3, llama-v3, smaug-bpe, qwen2 or "
              "deepseek-r1-qwen)";
      return false;
    }
  }
  struct IdKey {
    const char *key;
    int32_t id;
  };
  for (const IdKey &k : {IdKey{"tokenizer.ggml.bos_token_id", v.bos},
                         IdKey{"tokenizer.ggml.eos_token_id", v.eos},
                         IdKey{"tokenizer.ggml.unknown_token_id", v.unk},
                         IdKey{"tokenizer.ggml.eot_token_id", v.eot},
                         IdKey{"tokenizer.ggml.eom_token_id", v.eom}}) {
    if (k.id < -1 || k.id >= int32_t(n)) {
      error = source + ": key " + k.key + ": token id " + std::to_string(k.id) +
              " out of range (vocabulary has " + std::to_string(n) + " tokens)";
      return false;
    }
  }

  tokens_ = std::move(v.tokens);
  scores_ =
      v.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(v.scores);
  types_.assign(n, TokenType::Normal);
  for (size_t i = 0; i < v.types.size(); ++i) {
    int32_t ty = v.types[i];
    types_[i] = ty >= 0 && ty <= 6 ? TokenType(ty) : TokenType::Undefined;
  }
  textToId_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // An empty token could never be matched; give it a unique name so that
    // lookups stay one-to-one, as llama.cpp does.
    if (tokens_[i].empty())
      tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";
    textToId_.emplace(tokens_[i], int32_t(i)); // first occurrence wins
  }

  bos_ = v.bos;
  eos_ = v.eos;
  unk_ = v.unk;
  addBos_ = v.addBos >= 0 ? v.addBos == 1 : kind_ == TokenizerKind::SPM;
  addSpacePrefix_ = v.addSpacePrefix >= 0 ? v.addSpacePrefix == 1
                                          : kind_ == TokenizerKind::SPM;

  eog_.assign(n, 0);
  for (int32_t id : {v.eos, v.eot, v.eom})
    if (id >= 0)
      eog_[id] = 1;
  for (const char *text : kEogTexts) {
    int32_t id = findToken(text);
    if (id < 0)
      continue;
    eog_[id] = 1;
    types_[id] = TokenType::Control;
  }

  for (size_t i = 0; i < n; ++i) {
    TokenType ty = types_[i];
    if (ty == TokenType::Control || ty == TokenType::UserDefined ||
        ty == TokenType::Unknown)
      specials_.push_back(int32_t(i));
  }
  // Longest first, so that a special token containing another wins.
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](int32_t a, int32_t b) {
                     return tokens_[a].size() > tokens_[b].size();
                   });

  // Phi-3's chat tokens swallow the white space after them (its Hugging Face
  // tokenizer marks them rstrip); llama.cpp keys this on the model name.
  rstrip_.assign(n, 0);
  std::string name = v.modelName;
  for (char &c : name)
    c = char(std::tolower(static_cast<unsigned char>(c)));
  if (name.find("phi-3") != std::string::npos ||
      name.find("phi3") != std::string::npos) {
    for (int32_t id : specials_)
      rstrip_[id] = 1;
    for (const char *text : {"</s>"})
      if (findToken(text) >= 0)
        rstrip_[findToken(text)] = 1;
    for (const char *text : {"<unk>", "<s>", "<|endoftext|>"})
      if (findToken(text) >= 0)
        rstrip_[findToken(text)] = 0;
  }

  if (kind_ == TokenizerKind::BPE) {
    bpeRanks_.reserve(v.merges.size());
    for (size_t i = 0; i < v.merges.size(); ++i) {
      const std::string &m = v.merges[i];
      // Split at the first space after the first byte: a merge's left part
      // may itself be a space in vocabularies without byte mapping.
      size_t pos = m.find(' ', 1);
      if (pos == std::string::npos) {
        error = source + ": key tokenizer.ggml.merges: entry " +
                std::to_string(i) + " " + quoted(m) +
                " has no space (expected 'LEFT RIGHT')";
        return false;
      }
      std::string key = m.substr(0, pos);
      key.push_back('\0');
      key.append(m, pos + 1, std::string::npos);
      bpeRanks_.emplace(std::move(key), int32_t(i)); // first occurrence wins
    }
  }
  return true;
}

int32_t Tokenizer::findToken(const std::string &text) const {
  auto it = textToId_.find(text);
  return it == textToId_.end() ? -1 : it->second;
}

const std::string &Tokenizer::tokenText(int32_t id) const {
  static const std::string empty;
  return id >= 0 && id < nVocab() ? tokens_[id] : empty;
}

float Tokenizer::tokenScore(int32_t id) const {
  return id >= 0 && id < nVocab() ? scores_[id] : 0.0f;
}

TokenType Tokenizer::tokenType(int32_t id) const {
  return id >= 0 && id < nVocab() ? types_[id] : TokenType::Undefined;
}

bool Tokenizer::isControl(int32_t id) const {
  return tokenType(id) == TokenType::Control;
}

bool Tokenizer::isEog(int32_t id) const {
  return id >= 0 && id < nVocab() && eog_[id];
}

void Tokenizer::splitSpecial(const std::string &text, bool parseSpecial,
                             std::vector<Fragment> &out) const {
  out.assign(1, Fragment{-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : specials_) {
    TokenType ty = types_[id];
    if (!parseSpecial && (ty == TokenType::Control || ty == TokenType::Unknown))
      continue; // only user-defined tokens are matched in plain text
    const std::string &tok = tokens_[id];
    next.clear();
    bool found = false;
    for (const Fragment &fr : out) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      size_t begin = fr.begin;
      const size_t end = fr.end;
      while (begin < end) {
        size_t hit = std::string_view(text.data(), end).find(tok, begin);
        if (hit == std::string_view::npos)
          break;
        found = true;
        if (hit > begin)
          next.push_back(Fragment{-1, begin, hit});
        next.push_back(Fragment{id, 0, 0});
        begin = hit + tok.size();
        if (rstrip_[id])
          while (begin < end &&
                 std::isspace(static_cast<unsigned char>(text[begin])))
            ++begin;
      }
      if (begin < end)
        next.push_back(Fragment{-1, begin, end});
    }
    if (found)
      out.swap(next);
  }
}

std::vector<int32_t> Tokenizer::encode(const std::string &text, bool addBos,
                                       bool parseSpecial) const {
  std::vector<int32_t> out;
  if (addBos && bos_ >= 0)
    out.push_back(bos_);
  if (text.empty())
    return out;
  std::vector<Fragment> frags;
  splitSpecial(text, parseSpecial, frags);
  // SentencePiece puts a space in front of the text and after every special
  // token, so that a word gets the same token at the start as elsewhere.
  bool afterSpecial = true;
  for (const Fragment &fr : frags) {
    if (fr.token >= 0) {
      out.push_back(fr.token);
      afterSpecial = true;
      continue;
    }
    std::string piece(text, fr.begin, fr.end - fr.begin);
    if (kind_ == TokenizerKind::SPM) {
      if (addSpacePrefix_ && afterSpecial)
        piece.insert(piece.begin(), ' ');
      replaceAll(piece, " ", kSpaceMarker);
      encodeSPM(piece, out);
    } else {
      encodeBPE(piece, out);
    }
    afterSpecial = false;
  }
  return out;
}

std::string Tokenizer::tokenToPiece(int32_t id, bool renderSpecial) const {
  if (id < 0 || id >= nVocab())
    return std::string();
  const std::string &text = tokens_[id];
  switch (types_[id]) {
  case TokenType::Control:
  case TokenType::Unknown:
    return renderSpecial ? text : std::string();
  case TokenType::UserDefined:
    return text;
  case TokenType::Byte: {
    int b = byteTokenValue(text);
    return b < 0 ? std::string() : std::string(1, char(b));
  }
  case TokenType::Normal:
    break;
  default: // undefined and unused tokens have no text, as in llama.cpp
    return std::string();
  }
  if (kind_ == TokenizerKind::SPM) {
    std::string piece = text;
    replaceAll(piece, kSpaceMarker, " ");
    return piece;
  }
  std::string piece;
  for (uint32_t cp : utf8Decode(text)) {
    int b = unicodeToByte(cp);
    if (b >= 0)
      piece.push_back(char(b));
    else
      utf8Append(piece, cp); // not a byte stand-in: keep the character
  }
  return piece;
}

std::string Tokenizer::decode(const std::vector<int32_t> &ids,
                              bool renderSpecial) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = tokenToPiece(ids[i], renderSpecial);
    // Drop the space encode() put in front of the text.
    if (i == 0 && addSpacePrefix_ && !piece.empty() && piece[0] == ' ')
      piece.erase(0, 1);
    out += piece;
  }
  return out;
}

} // namespace pinfer
