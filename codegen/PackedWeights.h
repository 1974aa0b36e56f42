// The packed weights file written beside a generated executable: a GGUF with
// the source model's metadata and tensors, except that each layer's FFN is
// stored in the program's neuron order (hot rows, then cold rows, each
// contiguous) and the down projection is stored transposed, one row per
// neuron (blk.N.ffn_down_t.weight {n_embd, n_ff}), so that both halves read
// whole rows. A content hash of the tensor data is stored under
// pinfer.packed.hash and baked into the executable, which checks it at
// start-up.
#pragma once

#include "codegen/ProgramDesc.h"

#include <cstdint>
#include <string>

namespace pinfer {

struct PackedWeightsInfo {
  uint64_t hash = 0;
  uint64_t fileBytes = 0;
};

// Writes the packed file for `model` and `program` at `path` (through
// PATH.tmp). False with one line in `error` on any failure.
bool writePackedWeights(const Model &model, const ProgramDesc &program,
                        const std::string &path, PackedWeightsInfo &info,
                        std::string &error);

} // namespace pinfer
