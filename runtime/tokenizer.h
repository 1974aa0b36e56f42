// Text <-> token ids for the vocabularies stored in GGUF metadata, behaving
// exactly like llama.cpp's tokenizer on the same file (checked against its
// test vectors): SentencePiece-style vocabularies (tokenizer.ggml.model =
// "llama": score-ordered merges, byte fallback) and byte-level BPE ("gpt2":
// ranked merges over GPT-2's byte mapping, after a pre-tokenizer chosen by
// tokenizer.ggml.pre). See docs/tokenizers.md.
//
// No exceptions: loading reports one error line; encoding never fails
// (invalid UTF-8 is tokenized as U+FFFD, like llama.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace pinfer {

class GGUFFile;

enum class TokenizerKind { SPM, BPE };

// Pre-tokenizers of byte-level BPE vocabularies (tokenizer.ggml.pre).
enum class BPEPreTokenizer {
  Default, // "default" or absent: llama.cpp's fallback rule list
  GPT2,    // "gpt-2" and vocabularies that reuse its regex
  Falcon,  // "falcon"
  Llama3,  // "llama-bpe", "llama3", "llama-v3", "smaug-bpe": LLaMA-3's regex
  Qwen2,   // "qwen2", "deepseek-r1-qwen": LLaMA-3's with single digits
};

// Token types as GGUF stores them in tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

class Tokenizer {
public:
  // Reads tokenizer.ggml.* from `f`. On failure returns null and sets
  // `error` to one line naming the file, the key and what was expected.
  static std::unique_ptr<Tokenizer> fromGGUF(const GGUFFile &f,
                                             std::string &error);

  // Builds a tokenizer from vocabulary arrays, as fromGGUF does after
  // reading them; `source` names the origin in error messages. `scores` may
  // be empty (all zero), `types` may be empty (all normal), `merges` is
  // required for BPE. `pre` is the tokenizer.ggml.pre value.
  struct Vocab {
    TokenizerKind kind = TokenizerKind::SPM;
    std::string pre;
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    std::vector<std::string> merges;
    int32_t bos = -1, eos = -1, unk = -1, eot = -1, eom = -1;
    int addBos = -1;         // -1: absent (kind's default)
    int addSpacePrefix = -1; // -1: absent (SPM: true, BPE: false)
    std::string modelName;   // general.name (phi-3's strip rule keys on it)
  };
  static std::unique_ptr<Tokenizer>
  fromVocab(Vocab v, const std::string &source, std::string &error);

  TokenizerKind kind() const { return kind_; }
  BPEPreTokenizer preTokenizer() const { return pre_; }
  int32_t nVocab() const { return int32_t(tokens_.size()); }
  int32_t bos() const { return bos_; } // -1 when absent
  int32_t eos() const { return eos_; } // -1 when absent
  int32_t unk() const { return unk_; } // -1 when absent
  // tokenizer.ggml.add_bos_token, else SPM: true, BPE: false.
  bool addBosByDefault() const { return addBos_; }

  // Tokenizes `text`. `addBos` prepends bos() (when the vocabulary has one).
  // With `parseSpecial`, the text of control tokens (e.g. "<|endoftext|>")
  // becomes that token; user-defined tokens are always matched as whole
  // tokens, as llama.cpp and Hugging Face do.
  std::vector<int32_t> encode(const std::string &text, bool addBos,
                              bool parseSpecial) const;

  // Text of one token: SPM turns U+2581 into spaces and <0xNN> into the
  // byte; BPE undoes the byte mapping. Control and unknown tokens give their
  // raw text when `renderSpecial`, nothing otherwise. Out of range: "".
  std::string tokenToPiece(int32_t id, bool renderSpecial = true) const;
  // Concatenated pieces; with SPM's space prefix, the space in front of the
  // first piece is dropped (the one encode() added), as llama.cpp does.
  std::string decode(const std::vector<int32_t> &ids,
                     bool renderSpecial = true) const;

  const std::string &tokenText(int32_t id) const; // raw vocab string
  float tokenScore(int32_t id) const;
  TokenType tokenType(int32_t id) const;
  bool isControl(int32_t id) const;
  bool isEog(int32_t id) const; // end of generation: eos, eot, <|end|>, ...
  // Id of a token's exact text, or -1.
  int32_t findToken(const std::string &text) const;

private:
  Tokenizer() = default;
  bool init(Vocab &v, const std::string &source, std::string &error);

  struct Fragment {
    int32_t token; // -1: raw text [begin, end)
    size_t begin, end;
  };
  void splitSpecial(const std::string &text, bool parseSpecial,
                    std::vector<Fragment> &out) const;

  // tokenizer_spm.cpp
  void encodeSPM(const std::string &text, std::vector<int32_t> &out) const;
  int32_t byteTokenSPM(uint8_t byte) const;
  // tokenizer_bpe.cpp
  void encodeBPE(const std::string &text, std::vector<int32_t> &out) const;
  void bpeWord(const std::string &word, std::vector<int32_t> &out) const;
  int bpeRank(const std::string &left, const std::string &right) const;

  TokenizerKind kind_ = TokenizerKind::SPM;
  BPEPreTokenizer pre_ = BPEPreTokenizer::Default;
  std::vector<std::string> tokens_; // [n_vocab]
  std::vector<float> scores_;       // [n_vocab]
  std::vector<TokenType> types_;    // [n_vocab]
  std::vector<uint8_t> rstrip_;     // [n_vocab] strip spaces after it
  std::vector<uint8_t> eog_;        // [n_vocab]
  std::unordered_map<std::string, int32_t> textToId_;
  // "left\0right" -> merge rank; '\0' never occurs in byte-mapped text.
  std::unordered_map<std::string, int32_t> bpeRanks_;
  std::vector<int32_t> specials_; // control/user-defined/unknown, longest first
  int32_t bos_ = -1, eos_ = -1, unk_ = -1;
  bool addBos_ = false;
  bool addSpacePrefix_ = false;
};

} // namespace pinfer
