// SentencePiece-style (tokenizer.ggml.model = "llama") encoding: start from
// single UTF-8 characters and repeatedly merge the adjacent pair whose
// concatenation is the vocabulary token with the highest score (leftmost
// first on ties), as llama.cpp's llm_tokenizer_spm does; what remains
// outside the vocabulary falls back to <0xNN> byte tokens.
#include "runtime/tokenizer.h"

#include "runtime/tokenizer_merge.h"

#include <cstdio>

namespace pinfer {

int32_t Tokenizer::byteTokenSPM(uint8_t byte) const {
  char name[8];
  std::snprintf(name, sizeof(name), "<0x%02X>", unsigned(byte));
  int32_t id = findToken(name);
  if (id >= 0)
    return id;
  // Vocabularies without byte tokens may hold the byte itself.
  id = findToken(std::string(1, char(byte)));
  return id >= 0 ? id : unk_;
}

void Tokenizer::encodeSPM(const std::string &text,
                          std::vector<int32_t> &out) const {
  std::string merged;
  std::vector<MergedPiece> pieces = mergePieces(
      text,
      [&](const std::string &left,
          const std::string &right) -> std::optional<double> {
        merged = left;
        merged += right;
        int32_t id = findToken(merged);
        if (id < 0)
          return std::nullopt;
        return double(scores_[id]);
      });

  // Every merged piece is a vocabulary token by construction; a single
  // character may not be, and is then spelled in byte tokens.
  std::string piece;
  for (const MergedPiece &m : pieces) {
    piece.assign(text, m.offset, m.len);
    int32_t id = findToken(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (unsigned char b : piece) {
      int32_t bid = byteTokenSPM(b);
      if (bid >= 0)
        out.push_back(bid);
    }
  }
}

} // namespace pinfer
