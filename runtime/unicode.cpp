// Unicode tables and UTF-8 helpers for the tokenizers. The category table is
// generated (scripts/gen_unicode_data.py) as sorted ranges and searched by
// bisection; ASCII, which is most of the text in practice, has a flat table.
#include "runtime/unicode.h"

#include <algorithm>
#include <array>

namespace pinfer {
namespace {

const uint32_t kCategoryRanges[] = {
#include "runtime/unicode_data.inc"
};

struct AsciiTable {
  std::array<UnicodeCategory, 128> cat;
  AsciiTable() {
    for (uint32_t c = 0; c < 128; ++c)
      cat[c] = slowCategory(c);
  }
  static UnicodeCategory slowCategory(uint32_t cp) {
    const uint32_t *begin = std::begin(kCategoryRanges);
    const uint32_t *end = std::end(kCategoryRanges);
    // First entry whose start is beyond cp, then step back one.
    const uint32_t *it = std::upper_bound(
        begin, end, cp, [](uint32_t v, uint32_t e) { return v < (e >> 3); });
    if (it == begin)
      return UnicodeCategory::Unassigned;
    return static_cast<UnicodeCategory>(it[-1] & 7);
  }
};

const AsciiTable &asciiTable() {
  static const AsciiTable table;
  return table;
}

// GPT-2's mapping keeps the printable Latin-1 bytes as themselves and moves
// the other 68 bytes, in order, to U+0100 onwards.
struct ByteMap {
  std::array<std::string, 256> toUtf8;
  std::array<int16_t, 324> fromCp; // codepoints used are all below 324
  ByteMap() {
    fromCp.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                       (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(next++);
      utf8Append(toUtf8[b], cp);
      fromCp[cp] = int16_t(b);
    }
  }
};

const ByteMap &byteMap() {
  static const ByteMap map;
  return map;
}

} // namespace

UnicodeCategory unicodeCategory(uint32_t cp) {
  if (cp < 128)
    return asciiTable().cat[cp];
  if (cp > 0x10FFFF)
    return UnicodeCategory::Unassigned;
  return AsciiTable::slowCategory(cp);
}

bool unicodeIsWhitespace(uint32_t cp) {
  // The White_Space property (PropList.txt); it has not changed in years.
  if (cp <= 0x20)
    return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp >= 0x2000 && cp <= 0x200A)
    return true;
  static const uint32_t kOthers[] = {0x85,   0xA0,   0x1680, 0x2028,
                                     0x2029, 0x202F, 0x205F, 0x3000};
  return std::find(std::begin(kOthers), std::end(kOthers), cp) !=
         std::end(kOthers);
}

std::vector<uint32_t> utf8Decode(const std::string &text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  const auto *s = reinterpret_cast<const unsigned char *>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  auto cont = [&](size_t k) { return k < n && (s[k] & 0xC0) == 0x80; };
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      out.push_back(c);
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && cont(i + 1)) {
      out.push_back(((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu));
      i += 2;
    } else if ((c & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      out.push_back(((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) |
                    (s[i + 2] & 0x3Fu));
      i += 3;
    } else if ((c & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) &&
               cont(i + 3)) {
      out.push_back(((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) |
                    ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu));
      i += 4;
    } else {
      out.push_back(0xFFFD);
      i += 1;
    }
  }
  return out;
}

void utf8Append(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | ((cp >> 18) & 0x07)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

const std::string &byteToUnicode(uint8_t byte) {
  return byteMap().toUtf8[byte];
}

int unicodeToByte(uint32_t cp) {
  return cp < byteMap().fromCp.size() ? byteMap().fromCp[cp] : -1;
}

} // namespace pinfer
