// The hot down kernel's token loops (emitCuda's ffn_hot_l<N>_down): part
// of emitCuda, apart for length.
#pragma once

#include "runtime/ggml_types.h"

#include <ostream>
#include <string>

namespace pinfer {

// For a split layout (DownLayout::SplitQ8, SplitQ4, SplitK: a byte or a
// nibble per weight beside the source blocks' numbers) the down kernel's
// constants: kGroup, the neurons that share one set of the numbers, and
// where SplitK's tables lie in `scales`.
void emitSplitDownConstants(std::ostream &os, GGMLType source, int64_t nEmbd,
                            int64_t nFF);

// What the loops are over: a block's chunk [k0, k1) of the hot neurons'
// list, or with `picked` of the pick kernel's list of chosen ones.
struct DownLoops {
  // Of the {n_ff, n_embd} matrix: its layout (downLayoutFor) is the
  // rows'.
  GGMLType source = GGMLType::F32;
  GGMLType rowType = GGMLType::F32; // the rows' type, DownLayout::Rows
  int64_t nEmbd = 0, nFF = 0;
  unsigned cols = 1;    // outputs per thread (1 or 4)
  unsigned listMax = 0; // the most neurons a chunk holds
  int tokens = 1;       // a prompt's tokens per pass
  bool skipZero = false;
  bool picked = false;
};

// The kernel's token loops: `tokens` tokens at a time, then one at a
// time, each pass adding a row's values (decoded once for its tokens)
// times each token's activation. With `skipZero`, the block first lists
// the chunk's neurons any token of the pass fired (in shared memory, a
// ballot per warp) and each thread reads those only, where it tested
// every neuron's activation before; a split layout's neurons are listed
// in dense mode too (all of them), and go in runs of one group: each neuron
// adds hk * q to its run's sums and each run is scaled once, as the CPU half's
// splitDownAxpy scales its fired groups (the tables' numbers read and
// multiplied once a run, not once a neuron). Hot neurons in id order
// (LowerToProgram) make each group one run.
void emitDownLoops(std::ostream &os, const DownLoops &d);

} // namespace pinfer
