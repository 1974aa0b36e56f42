// Compiles emitted CUDA C++ with NVRTC for a target architecture: PTX for
// the virtual architecture (compute_XX), a CUBIN for the real one (sm_XX),
// or both from one compilation. NVRTC is optional at build time
// (PINFER_HAVE_NVRTC); without it every call reports that GPU targets cannot
// be compiled for.
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

// The two images an executable embeds, from one NVRTC compilation for the
// real architecture (NVRTC keeps the PTX it made on the way to the CUBIN).
struct NvrtcImages {
  std::vector<uint8_t> ptx;   // for compute_XX, with its NUL: runs on this
                              // and newer architectures (driver JIT)
  std::vector<uint8_t> cubin; // for sm_XX; empty when NVRTC gave none
  std::string cubinNote;      // why `cubin` is empty, else ""
  std::string log;
  double seconds = 0;
};

// Compiles `source` for `smArch` into PTX and CUBIN. A toolkit that cannot
// make the CUBIN (it refuses sm_XX, or returns an empty one) is not an
// error: the PTX is compiled alone and `cubinNote` says why there is no
// CUBIN. Errors in the source fail as compileCuda does.
bool compileCudaImages(const std::string &source, const std::string &name,
                       const std::string &smArch, NvrtcImages &out,
                       std::string &error);

} // namespace pinfer
