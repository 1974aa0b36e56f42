// CPU kernels of the sparse FFN halves: dot products of an f32 vector with a
// chosen set of gate/up rows, and accumulation of scaled rows of the
// transposed down projection (one row per neuron) into the output. The
// packed weights store each half's neurons contiguously, so a half is a row
// range and the neurons that fired are a short index list within it.
// Correctness first: simple loops the compiler vectorises; dot products reuse
// the dense reference's dotRow so that a neuron's pre-activation is bitwise
// the dense one.
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/model.h"

#include <cstdint>

namespace pinfer {

// out[k] = dot(w.row(rows[k]), x) for k in [0, nRows); `rows` null means the
// rows first..first+nRows-1. x: [w.cols], out: [nRows].
void sparseDots(const Weight &w, const uint32_t *rows, int64_t first,
                int64_t nRows, const float *x, float *out);

// y[i] += a * row[i] for i in [0, n) over a row of `type` (F32, F16, BF16,
// Q8_0, Q4_0); `n` a multiple of the type's block size. False for another
// type.
bool axpyRow(GGMLType type, const void *row, float a, float *y, int64_t n);

// Elements [c0, c1) of the same: c0 and c1 multiples of the block size.
bool axpyRowRange(GGMLType type, const void *row, float a, float *y, int64_t c0,
                  int64_t c1);

// y[c] += sum_k coef[k] * downT.row(rows[k])[c] for c in [c0, c1): the down
// projection of the neurons in `rows` (each a row of the transposed down
// weight {n_embd, n_neurons}). With `skipZero`, neurons whose coef is
// exactly 0 are not read (exact sparsity); without, every row is.
// `rows` null means rows first..first+nRows-1.
void sparseDownAxpy(const Weight &downT, const uint32_t *rows, int64_t first,
                    int64_t nRows, const float *coef, float *y, int64_t c0,
                    int64_t c1, bool skipZero = true);

} // namespace pinfer
