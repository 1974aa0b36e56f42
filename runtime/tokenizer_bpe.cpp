// Byte-level BPE (tokenizer.ggml.model = "gpt2") encoding. The text is first
// cut into words by the vocabulary's pre-tokenizer: a list of passes, each
// splitting every piece left by the previous one, written here as code with
// the semantics of the regular expressions llama.cpp uses for them (a match
// and the text between two matches each become a piece). Each word is
// byte-mapped (GPT-2's printable stand-ins) and merged pair by pair in rank
// order of tokenizer.ggml.merges, lowest rank first, leftmost on ties.
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_merge.h"

#include "runtime/unicode.h"

#include <algorithm>
#include <cstring>

namespace pinfer {
namespace {

// A piece of the text as a codepoint range [begin, end).
struct Span {
  size_t begin, end;
};

using Spans = std::vector<Span>;

bool isAsciiDigit(uint32_t cp) { return cp >= '0' && cp <= '9'; }

// Characters of the class [\p{P}$+<=>^~|`] (falcon; the default list has no
// backtick). ASCII punctuation is listed explicitly; beyond ASCII the
// general category decides.
bool isPunctOrListedSymbol(uint32_t cp, bool withBacktick) {
  if (cp < 128) {
    // ASCII \p{P}, then the listed symbols.
    static const char kListed[] = "!\"#%&'()*,-./:;?@[\\]_{}$+<=>^~|";
    if (cp == '`')
      return withBacktick;
    return cp != 0 && std::strchr(kListed, int(cp)) != nullptr;
  }
  return !unicodeIsWhitespace(cp) &&
         unicodeCategory(cp) == UnicodeCategory::Punctuation;
}

// A pass that cuts maximal runs of characters satisfying `inClass` out of
// each piece: "[class]+". Runs and the text between them are pieces.
template <typename Pred>
Spans splitRuns(const std::vector<uint32_t> &cps, const Spans &in,
                Pred inClass) {
  Spans out;
  out.reserve(in.size() * 2);
  for (const Span &s : in) {
    size_t gap = s.begin;
    size_t i = s.begin;
    while (i < s.end) {
      if (!inClass(cps[i])) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < s.end && inClass(cps[j]))
        ++j;
      if (i > gap)
        out.push_back(Span{gap, i});
      out.push_back(Span{i, j});
      gap = i = j;
    }
    if (s.end > gap)
      out.push_back(Span{gap, s.end});
  }
  return out;
}

// "[0-9][0-9][0-9]": non-overlapping triples of ASCII digits, searched left
// to right; a run's leftover digits stay with the text around them.
Spans splitDigitTriples(const std::vector<uint32_t> &cps, const Spans &in) {
  Spans out;
  out.reserve(in.size() * 2);
  for (const Span &s : in) {
    size_t gap = s.begin;
    size_t i = s.begin;
    while (i + 3 <= s.end) {
      if (isAsciiDigit(cps[i]) && isAsciiDigit(cps[i + 1]) &&
          isAsciiDigit(cps[i + 2])) {
        if (i > gap)
          out.push_back(Span{gap, i});
        out.push_back(Span{i, i + 3});
        gap = i = i + 3;
      } else {
        ++i;
      }
    }
    if (s.end > gap)
      out.push_back(Span{gap, s.end});
  }
  return out;
}

// GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matched at each position in turn, alternatives in order, as a
// backtracking regex engine would. Positions outside the piece count as
// "no character", so lookahead stops at the piece's edge.
Spans splitGPT2(const std::vector<uint32_t> &cps, const Spans &in) {
  Spans out;
  out.reserve(in.size() * 2);
  enum Kind : uint8_t { None, Letter, Number, Space, Other };
  for (const Span &s : in) {
    auto kindAt = [&](size_t p) -> Kind {
      if (p < s.begin || p >= s.end)
        return None;
      uint32_t cp = cps[p];
      if (unicodeIsWhitespace(cp))
        return Space;
      UnicodeCategory c = unicodeCategory(cp);
      if (c == UnicodeCategory::Letter)
        return Letter;
      if (c == UnicodeCategory::Number)
        return Number;
      return Other;
    };
    auto cpAt = [&](size_t p) -> uint32_t {
      return p < s.end ? cps[p] : 0xFFFFFFFFu;
    };
    size_t pos = s.begin;
    while (pos < s.end) {
      const size_t start = pos;
      const uint32_t cp = cps[pos];
      if (cp == '\'' && pos + 1 < s.end) {
        uint32_t c1 = cpAt(pos + 1), c2 = cpAt(pos + 2);
        size_t len = 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
          len = 2;
        else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
                 (c1 == 'l' && c2 == 'l'))
          len = 3;
        if (len) {
          out.push_back(Span{start, start + len});
          pos = start + len;
          continue;
        }
      }
      // " ?X+" for X = letters, numbers, or anything but those and space.
      const size_t body = cp == ' ' ? pos + 1 : pos;
      const Kind k = kindAt(body);
      if (k == Letter || k == Number || k == Other) {
        pos = body;
        while (kindAt(pos) == k)
          ++pos;
        out.push_back(Span{start, pos});
        continue;
      }
      size_t nSpace = 0;
      while (kindAt(pos + nSpace) == Space)
        ++nSpace;
      if (nSpace > 1 && pos + nSpace < s.end) {
        // \s+(?!\S): leave the last space to prefix the next word.
        pos += nSpace - 1;
      } else if (nSpace > 0) {
        pos += nSpace;
      } else {
        pos += 1;
      }
      out.push_back(Span{start, pos});
    }
  }
  return out;
}

// LLaMA-3's pattern (Qwen2's is the same with \p{N} for \p{N}{1,3}):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// matched as splitGPT2 matches GPT-2's: alternatives in order at each
// position, positions outside the piece being "no character".
Spans splitLlama3(const std::vector<uint32_t> &cps, const Spans &in,
                  size_t maxDigits) {
  Spans out;
  out.reserve(in.size() * 2);
  for (const Span &s : in) {
    auto at = [&](size_t p) -> uint32_t {
      return p < s.end ? cps[p] : 0xFFFFFFFFu;
    };
    auto inside = [&](size_t p) { return p < s.end; };
    auto isSpace = [&](size_t p) {
      return inside(p) && unicodeIsWhitespace(cps[p]);
    };
    auto isLetter = [&](size_t p) {
      return inside(p) && unicodeIsLetter(cps[p]);
    };
    auto isNumber = [&](size_t p) {
      return inside(p) && unicodeIsNumber(cps[p]);
    };
    auto isNewline = [&](size_t p) {
      return inside(p) && (cps[p] == '\r' || cps[p] == '\n');
    };
    // [^\s\p{L}\p{N}]
    auto isOther = [&](size_t p) {
      return inside(p) && !isSpace(p) && !isLetter(p) && !isNumber(p);
    };
    auto lower = [](uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
    size_t pos = s.begin;
    while (pos < s.end) {
      const size_t start = pos;
      auto emit = [&](size_t end) {
        out.push_back(Span{start, end});
        pos = end;
      };
      if (at(pos) == '\'') {
        const uint32_t c1 = lower(at(pos + 1)), c2 = lower(at(pos + 2));
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
          emit(pos + 2);
          continue;
        }
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
            (c1 == 'l' && c2 == 'l')) {
          emit(pos + 3);
          continue;
        }
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+
      {
        size_t body = pos;
        if (!isNewline(pos) && !isLetter(pos) && !isNumber(pos) &&
            isLetter(pos + 1))
          body = pos + 1;
        if (isLetter(body)) {
          size_t e = body;
          while (isLetter(e))
            ++e;
          emit(e);
          continue;
        }
      }
      // \p{N}{1,maxDigits}
      if (isNumber(pos)) {
        size_t e = pos;
        while (isNumber(e) && e - pos < maxDigits)
          ++e;
        emit(e);
        continue;
      }
      // ' '?[^\s\p{L}\p{N}]+[\r\n]*
      {
        const size_t body = at(pos) == ' ' && isOther(pos + 1) ? pos + 1 : pos;
        if (isOther(body)) {
          size_t e = body;
          while (isOther(e))
            ++e;
          while (isNewline(e))
            ++e;
          emit(e);
          continue;
        }
      }
      // Whitespace: \s*[\r\n]+ ends after the run's last newline;
      // \s+(?!\S) leaves the run's last space to the next word; \s+.
      size_t e = pos;
      size_t lastNewline = s.end;
      while (isSpace(e)) {
        if (isNewline(e))
          lastNewline = e;
        ++e;
      }
      if (lastNewline != s.end) {
        emit(lastNewline + 1);
      } else if (e > pos + 1 && inside(e)) {
        emit(e - 1);
      } else if (e > pos) {
        emit(e);
      } else {
        emit(pos + 1);
      }
    }
  }
  return out;
}

} // namespace

int Tokenizer::bpeRank(const std::string &left,
                       const std::string &right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key += left;
  key.push_back('\0');
  key += right;
  auto it = bpeRanks_.find(key);
  return it == bpeRanks_.end() ? -1 : it->second;
}

void Tokenizer::encodeBPE(const std::string &text,
                          std::vector<int32_t> &out) const {
  const std::vector<uint32_t> cps = utf8Decode(text);
  Spans spans{Span{0, cps.size()}};
  switch (pre_) {
  case BPEPreTokenizer::GPT2:
    spans = splitGPT2(cps, spans);
    break;
  case BPEPreTokenizer::Llama3:
    spans = splitLlama3(cps, spans, 3);
    break;
  case BPEPreTokenizer::Qwen2:
    spans = splitLlama3(cps, spans, 1);
    break;
  case BPEPreTokenizer::Falcon:
    spans = splitRuns(cps, spans, [](uint32_t cp) {
      return isPunctOrListedSymbol(cp, /*withBacktick=*/true);
    });
    spans = splitGPT2(cps, spans);
    spans = splitDigitTriples(cps, spans);
    break;
  case BPEPreTokenizer::Default:
    spans = splitRuns(cps, spans, [](uint32_t cp) {
      return isPunctOrListedSymbol(cp, /*withBacktick=*/false);
    });
    spans = splitGPT2(cps, spans);
    spans = splitRuns(cps, spans, [](uint32_t cp) {
      return cp < 128 ? isAsciiDigit(cp)
                      : !unicodeIsWhitespace(cp) && unicodeIsNumber(cp);
    });
    spans = splitDigitTriples(cps, spans);
    break;
  }

  std::string utf8, word;
  for (const Span &s : spans) {
    // Re-encode (invalid input bytes became U+FFFD), then map every byte to
    // its printable stand-in, the alphabet the merges are written in.
    utf8.clear();
    for (size_t i = s.begin; i < s.end; ++i)
      utf8Append(utf8, cps[i]);
    word.clear();
    for (unsigned char b : utf8)
      word += byteToUnicode(b);
    // LLaMA-3's vocabulary takes a pre-token that is itself a token whole,
    // without merging (llama.cpp's ignore_merges): its merges do not
    // always rebuild every token.
    if (pre_ == BPEPreTokenizer::Llama3) {
      const int32_t whole = findToken(word);
      if (whole >= 0) {
        out.push_back(whole);
        continue;
      }
    }
    bpeWord(word, out);
  }
}

void Tokenizer::bpeWord(const std::string &word,
                        std::vector<int32_t> &out) const {
  // A lower merge rank merges first.
  std::vector<MergedPiece> pieces = mergePieces(
      word,
      [&](const std::string &left,
          const std::string &right) -> std::optional<double> {
        int rank = bpeRank(left, right);
        if (rank < 0)
          return std::nullopt;
        return -double(rank);
      });

  std::string piece;
  for (const MergedPiece &m : pieces) {
    piece.assign(word, m.offset, m.len);
    int32_t id = findToken(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // A merge result missing from the vocabulary (a broken file): fall back
    // to single-byte tokens where they exist, as llama.cpp does.
    for (char b : piece) {
      int32_t bid = findToken(std::string(1, b));
      if (bid >= 0)
        out.push_back(bid);
    }
  }
}

} // namespace pinfer
