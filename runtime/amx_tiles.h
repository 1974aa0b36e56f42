// Prompt products on AMX tiles (Intel's tile registers and TDPBUSD /
// TDPBSSD, in Sapphire Rapids and later Xeons): sixteen rows of a Q4_K,
// Q5_K, Q6_K, Q5_0, Q8_0 or Q4_0 matrix times sixteen tokens' 8-bit
// activations per tile multiply, where the AVX-512 VNNI kernels do one row and
// token per vector instruction. A tile multiply gives the exact integer
// products of one activation block for all 256 pairs (Q6_K: two, of the
// scaled values' high and low parts); the f32 steps that follow are those of
// the AVX-512 kernels (runtime/dot_q8_blocks.h), lane by lane, so each row and
// token comes out bitwise as the one-row, one-token kernel computes it: prompts
// and generated tokens, and any split of a prompt into chunks, agree.
//
// Used where the CPU has AMX-TILE and AMX-INT8 and the kernel grants the
// process its tile state (Linux 5.16 and later), at the AVX-512 kernel
// level. Elsewhere at that level (AVX-512 VNNI without AMX) the same
// products run on vector registers in the tiles' shape: one VPDPBUSD
// multiplies four values of a row by the sixteen tokens' four activations,
// so eight give a row's block for all sixteen tokens, the integers a tile
// multiply gives, and the f32 steps are the same. PINFER_AMX=0 turns both
// off, PINFER_AMX=vnni asks for the vector form (to compare).
#pragma once

#include "runtime/ggml_types.h"

#include <cstdint>
#include <vector>

namespace pinfer {

// Rows and tokens of one tile multiply.
constexpr int kAmxRows = 16;
constexpr int kAmxTokens = 16;

// How prompt products use the tiles: not at all, on AVX-512 VNNI
// registers, or on AMX.
enum class TileMode { Off, Vnni, Amx };
// What products use now: the mode asked for, at most what the CPU, the OS
// and the kernel level allow (Amx falls back to Vnni, both to Off below
// the AVX-512 level).
TileMode tileMode();
// Asks for a mode (tests and benchmarks compare them).
void setTileMode(TileMode mode);
inline bool tilesActive() { return tileMode() != TileMode::Off; }

// Whether `type`'s rows have a tile product.
bool amxReads(GGMLType type);

// Groups of kAmxTokens tokens of a quantised activation, laid out as the
// tiles read them: per group and 32-value block, the 16 tokens' bytes in
// the B operand's order (4-byte groups of the 16 tokens side by side, 8
// rows of 64 bytes), then the 16 tokens' block scales and block sums. A
// last group of at least kAmxPadFrom tokens is filled up with zeros (a
// tile multiply of a few tokens still beats the vector kernels).
constexpr int kAmxPadFrom = 6;
struct AmxActs {
  std::vector<int8_t> bytes;
  std::vector<float> scales; // per group and block: 16 scales, 16 sums
  int64_t nb = 0;            // blocks per token
  int groups = 0;
  int tokens = 0; // the tokens the groups hold: the first `tokens` of xq
};
// The first tokens of xq (nb blocks per token), nTok in all: whole
// groups, and a last partial one from kAmxPadFrom tokens.
void amxPrepare(const BlockQ8Act *xq, int64_t nb, int nTok, AmxActs &out);

// Rows [0, nRows) (a multiple of kAmxRows; row r at row + r * rowBytes) of
// `type` times the prepared tokens, n values each:
// y[t * yStride + r] for t < acts.tokens. Bitwise the AVX-512
// one-row, one-token product. False (nothing written) where tiles are not
// active or the type has none.
bool amxRows(GGMLType type, const uint8_t *row, int64_t rowBytes, int64_t nRows,
             const AmxActs &acts, int64_t n, float *y, int64_t yStride);

} // namespace pinfer
