// The packed weights file written beside a generated executable: a GGUF with
// the source model's metadata and tensors, except that each layer's FFN is
// stored in the program's neuron order (hot rows, then cold rows, each
// contiguous) and the down projection is stored transposed, one row per
// neuron (blk.N.ffn_down_t.weight; block-type sources keep their scales
// apart in blk.N.ffn_down_s.weight and, for SplitK, _m/_d/_dm, see
// runtime/ggml_types.h, DownLayout), so that both halves read whole rows. A
// content hash of the tensor data is stored under pinfer.packed.hash and baked
// into the executable, which checks it at start-up.
#pragma once

#include "codegen/ProgramDesc.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pinfer {

struct PackedWeightsInfo {
  uint64_t hash = 0;
  uint64_t fileBytes = 0;
};

// Writes the packed file for `model` and `program` at `path` (through
// PATH.tmp). False with one line in `error` on any failure. `progress`, if
// set, hears the bytes written so far and the file's size.
bool writePackedWeights(
    const Model &model, const ProgramDesc &program, const std::string &path,
    PackedWeightsInfo &info, std::string &error,
    const std::function<void(uint64_t, uint64_t)> &progress = nullptr);

// The split down layouts (runtime/ggml_types.h, DownLayout::SplitQ8/SplitQ4)
// of a Q8_0 or Q4_0 down projection {n_ff, n_embd}, copied bit for bit:
// packed row k holds the quants of neuron order[k]
// (transposedDownRowBytes each), and the scales are f16 [n_ff/32][n_embd].
void packSplitDownRows(const Weight &down, const std::vector<uint32_t> &order,
                       uint8_t *rows);
void packSplitDownScales(const Weight &down, uint16_t *scales);

// DownLayout::SplitK of a down projection {n_ff, n_embd} of a type with a
// SplitK form: packed row k holds neuron order[k]'s quants (n_embd bytes);
// each table is [groups or blocks][n_embd] (runtime/ggml_types.h).
enum class SplitKTable { Scales, Mins, BlockScales, BlockMins };
void packSplitKRows(const Weight &down, const std::vector<uint32_t> &order,
                    int8_t *rows);
void packSplitKTable(const Weight &down, SplitKTable table, uint8_t *dst);

} // namespace pinfer
