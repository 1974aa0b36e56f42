// CPU kernels of the sparse FFN halves: dot products of an f32 vector with a
// chosen set of gate/up rows, and accumulation of scaled rows of the
// transposed down projection (one row per neuron) into the output. The
// packed weights store each half's neurons contiguously, so a half is a row
// range and the neurons that fired are a short index list within it.
// Dot products use the dense products' kernels (quantised input for
// ActFormat::Q8 rows, kernels.h) so that a neuron's pre-activation is
// bitwise the dense one. Per-type kernels are reached through the type
// table's rows (runtime/type_table.h).
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/model.h"

#include <cstdint>
#include <vector>

namespace pinfer {

// out[k] = dot(w.row(rows[k]), x) for k in [0, nRows); `rows` null means the
// rows first..first+nRows-1. x: [w.cols], out: [nRows].
void sparseDots(const Weight &w, const uint32_t *rows, int64_t first,
                int64_t nRows, const float *x, float *out);

// y[i] += a * row[i] for i in [0, n) over a row of a computable `type`
// (its row's axpy); `n` a multiple of the type's block size. False for
// another type.
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

// The down projection of a split layout (ggml_types.h, DownLayout::SplitQ8 /
// SplitQ4 / SplitK): neurons come in groups that share a source block (or
// SplitK group), and for each group g, y[c] += scale[g][c] * sum_k coef[k] *
// q_k[c] over the group's neurons k, for c in [c0, c1) (multiples of 32;
// SplitK any range).
// This is the reference's per-block association: the block's partial sum,
// scaled once. SplitK's scale is d[c] * sc[g][c], and its mins add
// dm[c] * m[g][c] * sum_k coef[k].
struct SplitDown {
  bool q4 = false;               // SplitQ4 (nibbles) or SplitQ8 (bytes)
  const uint8_t *rows = nullptr; // packed neuron k's quants at rows + k*rowBytes
  size_t rowBytes = 0;
  const uint16_t *scales = nullptr; // f16 [n_ff/32][nEmbd], by source block
  int64_t nEmbd = 0;
  // SplitK (rows as SplitQ8's, signed bytes; scales null): per group of
  // its type's G neurons [n_ff/G][nEmbd], per source block [n_ff/S][nEmbd];
  // the mins null for types without.
  const int8_t *groupScales = nullptr, *groupMins = nullptr;
  const float *blockScales = nullptr, *blockMins = nullptr;
  int64_t groupsPerBlock = 1; // S / G
  int64_t group = 32;         // G: neurons a DownGroups group may hold

  // Bytes of the tables the products of groups `group[0 .. n)` (ascending)
  // read per output: a scale (and min) per group, SplitK's d (and dm) once
  // per block they fall in.
  size_t tableBytesRead(const uint32_t *group, size_t n) const {
    if (scales)
      return 2 * n;
    size_t blocks = 0;
    for (size_t i = 0; i < n; ++i)
      blocks +=
          i == 0 || group[i] / groupsPerBlock != group[i - 1] / groupsPerBlock;
    return n * (groupMins ? 2 : 1) + blocks * (blockMins ? 8 : 4);
  }
  // The tables of a layer of nFF neurons as the GPU holds them, one after
  // the other: SplitQ8/SplitQ4's scales; SplitK's group scales, group mins,
  // block scales, block mins (those it has). `size_t` bytes each.
  struct Part {
    const void *data;
    size_t bytes;
  };
  std::vector<Part> tables(int64_t nFF) const {
    const size_t n = size_t(nEmbd), groups = size_t(nFF / group),
                 blocks = groups / size_t(groupsPerBlock);
    if (scales)
      return {{scales, size_t(nFF / 32) * n * 2}};
    std::vector<Part> out = {{groupScales, groups * n}};
    if (groupMins)
      out.push_back({groupMins, groups * n});
    out.push_back({blockScales, blocks * n * sizeof(float)});
    if (blockMins)
      out.push_back({blockMins, blocks * n * sizeof(float)});
    return out;
  }
};
struct DownGroups {
  const uint32_t *rows;  // packed rows, group after group
  const float *coef;     // their coefficients
  const uint32_t *start; // [nGroups + 1] into rows/coef
  const uint32_t *block; // [nGroups] source block (SplitK: group) of each
  int64_t nGroups;
};
void splitDownAxpy(const SplitDown &down, const DownGroups &groups, float *y,
                   int64_t c0, int64_t c1);

} // namespace pinfer
