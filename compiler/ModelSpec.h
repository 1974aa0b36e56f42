// What the compiler needs to know about a model to build its IR: the
// hyperparameters and, for every weight the forward pass reads, its stored
// type and shape. Read from a GGUF file (through the runtime's Model loader,
// so the compiler and the dense reference accept exactly the same files) or
// made up for a shape study without any file.
#pragma once

#include "runtime/ggml_types.h"
#include "runtime/model.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;

struct TensorSpec {
  GGMLType type = GGMLType::F32;
  std::vector<int64_t> ne; // ggml order: ne[0] is the row length
};

struct ModelSpec {
  ModelParams params;
  bool tiedOutput = false; // output.weight absent: the head reuses token_embd
  // Every weight the forward pass reads, by GGUF name. Norm vectors are
  // listed as f32 whatever the file stores: the packed weights keep them so.
  // A layer whose file holds its down projection only as PowerInfer's
  // blk.N.ffn_down_t lists ffn_down as the loader binds it and ffn_down_t
  // as stored.
  std::map<std::string, TensorSpec> tensors;
  // PowerInfer predictors (blk.N.fc1.weight {n_embd, R}, blk.N.fc2.weight
  // {R, n_ff}), one pair per layer when present: each layer has its own
  // rank (the trainer sizes each to its layer) and may have its own type.
  bool hasPredictors = false;
  std::vector<TensorSpec> fc1, fc2; // [n_layer]

  const TensorSpec *tensor(const std::string &name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }
};

// Reads `file`. On failure returns false with one line in `error` naming the
// file and the key or tensor at fault.
bool readModelSpec(const GGUFFile &file, ModelSpec &spec, std::string &error);

// A LLaMA-family spec of the given shape with every matrix stored as
// `matrixType` (norms f32), for tests and measurements without a file.
// params.headDim and params.nRot default to nEmbd / nHead when zero.
ModelSpec makeModelSpec(ModelParams params, GGMLType matrixType,
                        bool tiedOutput = false);

} // namespace pinfer
