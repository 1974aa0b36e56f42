// SentencePiece-style (tokenizer.ggml.model = "llama") encoding: start from
// single UTF-8 characters and repeatedly merge the adjacent pair whose
// concatenation is the vocabulary token with the highest score (leftmost
// first on ties), as llama.cpp's llm_tokenizer_spm does; what remains
// outside the vocabulary falls back to <0xNN> byte tokens.
#include "runtime/tokenizer.h"

#include "runtime/unicode.h"

#include <algorithm>
#include <cstdio>
#include <queue>

namespace pinfer {
namespace {

struct Symbol {
  int prev, next;
  size_t offset, len; // bytes of the text; len 0 once merged into `prev`
};

struct Candidate {
  int left, right;
  float score;
  size_t len; // left.len + right.len when queued; stale if that changed
};

struct CandidateOrder {
  // priority_queue puts the "largest" on top: highest score, then the
  // leftmost pair.
  bool operator()(const Candidate &a, const Candidate &b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

} // namespace

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
  std::vector<Symbol> syms;
  syms.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    size_t len = std::min(utf8SeqLen(static_cast<unsigned char>(text[off])),
                          text.size() - off);
    int idx = int(syms.size());
    syms.push_back(Symbol{idx - 1, -1, off, len});
    if (idx > 0)
      syms[idx - 1].next = idx;
    off += len;
  }
  if (syms.empty())
    return;

  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
  std::string scratch;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0)
      return;
    size_t len = syms[left].len + syms[right].len;
    scratch.assign(text, syms[left].offset, len);
    int32_t id = findToken(scratch);
    if (id < 0)
      return;
    queue.push(Candidate{left, right, scores_[id], len});
  };
  for (int i = 1; i < int(syms.size()); ++i)
    consider(i - 1, i);

  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol &l = syms[c.left];
    Symbol &r = syms[c.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len)
      continue; // one side was merged since this pair was queued
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0)
      syms[r.next].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  // Every merged symbol is a vocabulary token by construction; a single
  // character may not be, and is then spelled in byte tokens.
  for (int i = 0; i != -1; i = syms[i].next) {
    scratch.assign(text, syms[i].offset, syms[i].len);
    int32_t id = findToken(scratch);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (unsigned char b : scratch) {
      int32_t bid = byteTokenSPM(b);
      if (bid >= 0)
        out.push_back(bid);
    }
  }
}

} // namespace pinfer
