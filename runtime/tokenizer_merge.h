// The merge loop SentencePiece and byte-level BPE encoding share: start
// from the UTF-8 characters of a text and repeatedly merge the adjacent
// pair with the best priority, the leftmost pair first on ties, until no
// adjacent pair may merge. The two differ only in how a pair is ranked
// (SPM: the score of the merged token; BPE: the rank of the merge rule).
#pragma once

#include "runtime/unicode.h"

#include <algorithm>
#include <optional>
#include <queue>
#include <string>
#include <vector>

namespace pinfer {

// A byte range of the text that survived merging.
struct MergedPiece {
  size_t offset, len;
};

// `priority(left, right)` gives the priority of merging two adjacent
// pieces (higher merges first), or nothing when they may not merge.
template <typename Priority>
std::vector<MergedPiece> mergePieces(const std::string &text,
                                     Priority priority) {
  struct Symbol {
    int prev, next;
    size_t offset, len; // bytes of the text; len 0 once merged into `prev`
  };
  struct Pair {
    int left, right;
    double priority;
    size_t len; // left.len + right.len when queued; stale if that changed
  };
  struct PairOrder {
    // priority_queue puts the "largest" on top: the highest priority, then
    // the leftmost pair.
    bool operator()(const Pair &a, const Pair &b) const {
      return a.priority < b.priority ||
             (a.priority == b.priority && a.left > b.left);
    }
  };

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

  std::priority_queue<Pair, std::vector<Pair>, PairOrder> queue;
  std::string left, right;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0)
      return;
    left.assign(text, syms[l].offset, syms[l].len);
    right.assign(text, syms[r].offset, syms[r].len);
    std::optional<double> p = priority(left, right);
    if (p)
      queue.push(Pair{l, r, *p, syms[l].len + syms[r].len});
  };
  for (int i = 1; i < int(syms.size()); ++i)
    consider(i - 1, i);

  while (!queue.empty()) {
    Pair p = queue.top();
    queue.pop();
    Symbol &l = syms[p.left];
    Symbol &r = syms[p.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != p.len)
      continue; // one side was merged since this pair was queued
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0)
      syms[r.next].prev = p.left;
    consider(l.prev, p.left);
    consider(p.left, l.next);
  }

  std::vector<MergedPiece> pieces;
  for (int i = syms.empty() ? -1 : 0; i != -1; i = syms[i].next)
    pieces.push_back(MergedPiece{syms[i].offset, syms[i].len});
  return pieces;
}

} // namespace pinfer
