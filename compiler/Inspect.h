//===- Inspect.h - `pinferc inspect` ----------------------------*- C++ -*-===//
//
// Describes a GGUF model: architecture, hyperparameters, tokenizer, tensor
// table, bytes by type, FFN activation family and whether predictors exist.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <ostream>
#include <string>

namespace pinfer {

class GGUFFile;

// What pinferc knows about the FFN activation of a model, and why.
struct ActivationInfo {
  std::string name;   // "silu", "relu", "drelu"
  std::string source; // where it came from, e.g. "key pinfer.ffn_activation"
  bool reluFamily() const { return name == "relu" || name == "drelu"; }
};

// Reads `pinfer.ffn_activation`, else the architecture's default
// (modelActivation, runtime/arch.h). Returns false with an error for a value
// or an architecture pinferc does not know.
bool ffnActivation(const GGUFFile &file, ActivationInfo &out,
                   std::string &error);

// Prints the report as text or JSON. Returns false with a one-line error.
bool inspectModel(const GGUFFile &file, bool json, std::ostream &os,
                  std::string &error);

} // namespace pinfer
