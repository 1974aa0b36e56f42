// A down projection packed in its split layout (runtime/ggml_types.h,
// DownLayout::SplitQ8/SplitQ4/SplitK) as the packed weights store it, and
// the groups the executor makes of the neurons that fired: what the CPU
// and GPU split-down tests multiply.
#pragma once

#include "codegen/PackedWeights.h"
#include "runtime/ggml_types.h"
#include "runtime/sparse_kernels.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pinfer::testutil {

struct PackedSplitDown {
  std::vector<uint8_t> rows;
  // The tables one after the other, as the GPU holds them
  // (SplitDown::tables); `split` points into them.
  std::vector<uint8_t> tables;
  SplitDown split;
  int64_t group = 32; // neurons a group of DownGroups may hold

  // Neurons in packed order `order` (packed row k is neuron order[k]).
  PackedSplitDown(const Weight &down, const std::vector<uint32_t> &order) {
    const int64_t nEmbd = down.rows, nFF = down.cols;
    const DownLayout layout = downLayoutFor(down.type);
    rows.resize(transposedDownRowBytes(down.type, nEmbd) * size_t(nFF));
    tables.resize(splitDownTableBytes(down.type, nEmbd, nFF));
    split.rows = rows.data();
    split.rowBytes = transposedDownRowBytes(down.type, nEmbd);
    split.nEmbd = nEmbd;
    if (layout != DownLayout::SplitK) {
      split.q4 = layout == DownLayout::SplitQ4;
      packSplitDownRows(down, order, rows.data());
      packSplitDownScales(down, reinterpret_cast<uint16_t *>(tables.data()));
      split.scales = reinterpret_cast<const uint16_t *>(tables.data());
      return;
    }
    const TypeTraits &t = *typeTraits(down.type);
    group = t.splitK.group;
    packSplitKRows(down, order, reinterpret_cast<int8_t *>(rows.data()));
    const size_t groups = size_t(nFF / group) * size_t(nEmbd),
                 blocks = size_t(nFF / t.blockSize) * size_t(nEmbd);
    uint8_t *at = tables.data();
    packSplitKTable(down, SplitKTable::Scales, at);
    split.groupScales = reinterpret_cast<const int8_t *>(at);
    at += groups;
    if (t.splitK.mins) {
      packSplitKTable(down, SplitKTable::Mins, at);
      split.groupMins = reinterpret_cast<const int8_t *>(at);
      at += groups;
    }
    packSplitKTable(down, SplitKTable::BlockScales, at);
    split.blockScales = reinterpret_cast<const float *>(at);
    at += blocks * sizeof(float);
    if (t.splitK.mins) {
      packSplitKTable(down, SplitKTable::BlockMins, at);
      split.blockMins = reinterpret_cast<const float *>(at);
    }
    split.group = group;
    split.groupsPerBlock = t.blockSize / group;
  }
};

// The packed rows whose coefficient coef[k] is not zero, grouped by their
// neuron's group (order[k] / group), in ascending group order, each group's
// rows in packed order: as the executor groups them.
struct FiredGroups {
  std::vector<uint32_t> rows, start, block;
  std::vector<float> coef;

  FiredGroups(const std::vector<uint32_t> &order, const float *coefByRow,
              int64_t group) {
    const uint32_t n = uint32_t(order.size()); // all neurons or some
    const uint32_t nGroups =
        n ? *std::max_element(order.begin(), order.end()) / uint32_t(group) + 1
          : 0;
    for (uint32_t g = 0; g < nGroups; ++g) {
      const uint32_t before = uint32_t(rows.size());
      for (uint32_t k = 0; k < n; ++k)
        if (order[k] / group == g && coefByRow[k] != 0.f) {
          rows.push_back(k);
          coef.push_back(coefByRow[k]);
        }
      if (rows.size() > before) {
        start.push_back(before);
        block.push_back(g);
      }
    }
    start.push_back(uint32_t(rows.size()));
  }
  DownGroups groups() const {
    return {rows.data(), coef.data(), start.data(), block.data(),
            int64_t(block.size())};
  }
};

} // namespace pinfer::testutil
