// Prompt products of F16 rows with f32 activations, tokens in register
// tiles: each weight conversion (two of the core's scarce vector-ALU slots
// per sixteen weights) serves eight tokens where the rows x tokens kernel
// (runtime/dot_kernels.h, dotF16RowsAvx512) gets two, and the activations
// are read in K-blocks that stay in L1 while every row of a row block
// passes over them. Each product keeps dotF16Avx2's accumulators (lanes
// 0-15 and 16-31 of each 32 weights, FMAs in order of the weights; kept in
// memory between K-blocks, which changes no value) and sums them as it
// does, so results are bitwise the one-token product: prompts and
// generated tokens agree.
#pragma once

#include <cstdint>

namespace pinfer {

// Tokens below which the tiles do not pay for their accumulators'
// round trips (a generated token, or a chunk's last few tokens).
constexpr int kF16TileTokensMin = 8;

// Rows [0, nRows) (row r at row + r * rowBytes, n values) times nTok
// tokens (x_t = x + t * xStride): y[t * yStride + r]. False, with nothing
// written, below the AVX-512 kernel level or where n is not a multiple of
// 32.
bool f16TokenTiles(const uint8_t *row, int64_t rowBytes, int64_t nRows,
                   const float *x, int64_t xStride, int nTok, int64_t n,
                   float *y, int64_t yStride);

// A generated token or a few (below kF16TileTokensMin): kFewRows rows at a
// time per token, each activation load serving them all and the rows read
// as that many streams, which the hardware prefetchers keep fuller than
// one row after another (the one-row loop read 55 % of the bandwidth
// probe's rate). Bitwise dotF16Avx2 per row and token, for any row length
// (a predictor's fc2 rows are its rank long); false, with nothing written,
// below the AVX-512 kernel level.
constexpr int kFewRows = 4;
bool f16FewTokens(const uint8_t *row, int64_t rowBytes, int64_t nRows,
                  const float *x, int64_t xStride, int nTok, int64_t n,
                  float *y, int64_t yStride);

} // namespace pinfer
