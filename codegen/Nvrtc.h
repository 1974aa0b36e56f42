// Compiles emitted CUDA C++ with NVRTC for a target architecture: PTX for
// the virtual architecture (compute_XX), or a CUBIN for the real one
// (sm_XX). NVRTC is optional at build time (PINFER_HAVE_NVRTC); without it
// every call reports that GPU targets cannot be compiled for.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

enum class GpuImageKind { PTX, CUBIN };

struct NvrtcOutput {
  std::vector<uint8_t> image; // PTX text with its NUL, or the CUBIN
  std::string log;            // NVRTC's log, possibly empty
  double seconds = 0;
};

// True when pinferc was built with NVRTC.
bool nvrtcAvailable();
// NVRTC's version, "13.0", or "" without it.
std::string nvrtcVersion();

// Compiles `source` (named `name` in diagnostics) for `smArch` ("sm_89").
// On failure, one line naming the kernel at fault (when the log says where)
// followed by NVRTC's log.
bool compileCuda(const std::string &source, const std::string &name,
                 const std::string &smArch, GpuImageKind kind, NvrtcOutput &out,
                 std::string &error);

} // namespace pinfer
