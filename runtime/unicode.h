// Unicode helpers for the tokenizers: UTF-8 decoding and encoding with the
// same error recovery as llama.cpp (an invalid byte becomes U+FFFD), the
// general-category groups the pre-tokenizer rules are written in (\p{L},
// \p{N}, \p{P}, ...), the White_Space property, and GPT-2's byte-level
// mapping (every byte to a printable codepoint) used by byte-level BPE
// vocabularies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

// General-category groups; numbering matches scripts/gen_unicode_data.py.
enum class UnicodeCategory : uint8_t {
  Unassigned = 0,  // Cn
  Control = 1,     // Cc, Cf, Co, Cs
  Letter = 2,      // L*
  Mark = 3,        // M*
  Number = 4,      // N*
  Punctuation = 5, // P*
  Symbol = 6,      // S*
  Separator = 7,   // Z*
};

UnicodeCategory unicodeCategory(uint32_t cp);
bool unicodeIsWhitespace(uint32_t cp);
inline bool unicodeIsLetter(uint32_t cp) {
  return unicodeCategory(cp) == UnicodeCategory::Letter;
}
inline bool unicodeIsNumber(uint32_t cp) {
  return unicodeCategory(cp) == UnicodeCategory::Number;
}

// Length of the UTF-8 sequence that starts with byte `c`, judged by its high
// bits only (1 for continuation bytes), as the merge loops step through text.
inline size_t utf8SeqLen(unsigned char c) {
  static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                     1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[c >> 4];
}

// Decodes `text`; each byte that does not start a well-formed sequence is
// replaced by U+FFFD and skipped.
std::vector<uint32_t> utf8Decode(const std::string &text);
void utf8Append(std::string &out, uint32_t cp);

// GPT-2 byte-level mapping: byte -> UTF-8 of its printable stand-in, and
// back (returns -1 for a codepoint that stands for no byte).
const std::string &byteToUnicode(uint8_t byte);
int unicodeToByte(uint32_t cp);

} // namespace pinfer
