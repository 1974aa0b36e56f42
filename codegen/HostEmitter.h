// Emits the host C++ of a generated executable: the program's constants
// (model shape, sparsity mode, target), the per-layer neuron index tables
// (packed row -> original neuron id; hot rows first, then cold), the GPU
// images (PTX, and a CUBIN when there is one; as byte arrays, or as files
// the assembler takes in), the packed weights' content hash,
// and a main() that hands all of it to the runtime (runtime/exec_main.h).
#pragma once

#include "codegen/CudaEmitter.h"
#include "codegen/ProgramDesc.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

struct HostInputs {
  const CudaModule *cuda = nullptr; // null: no GPU part
  std::vector<uint8_t> gpuImage;    // PTX (with its NUL) or CUBIN
  std::vector<uint8_t> gpuCubin;    // the CUBIN beside a PTX gpuImage
  uint64_t weightsHash = 0;
  std::string weightsFile; // file name beside the executable
  // Set when the images are the files kGpuImageFile and kGpuCubinFile in a
  // directory the assembler searches (-Wa,-I,DIR): the host code takes
  // them in with .incbin, where as byte arrays of megabytes they cost the
  // C++ compiler seconds per megabyte. Else (--emit cpp) byte arrays.
  bool imagesAsFiles = false;
};
constexpr const char *kGpuImageFile = "pinfer-gpu-image.bin";
constexpr const char *kGpuCubinFile = "pinfer-gpu-cubin.bin";

std::string emitHostCpp(const ProgramDesc &program, const HostInputs &in);

} // namespace pinfer
