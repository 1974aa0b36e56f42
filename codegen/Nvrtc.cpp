// NVRTC compilation; see Nvrtc.h.
#include "codegen/Nvrtc.h"

#include "codegen/CudaEmitter.h"

#include <chrono>
#include <cstdlib>

#ifdef PINFER_HAVE_NVRTC
#include <nvrtc.h>
#endif

namespace pinfer {

bool nvrtcAvailable() {
#ifdef PINFER_HAVE_NVRTC
  return true;
#else
  return false;
#endif
}

std::string nvrtcVersion() {
#ifdef PINFER_HAVE_NVRTC
  int major = 0, minor = 0;
  if (::nvrtcVersion(&major, &minor) == NVRTC_SUCCESS)
    return std::to_string(major) + "." + std::to_string(minor);
#endif
  return "";
}

#ifdef PINFER_HAVE_NVRTC
namespace {

// "name(123): error: ..." -> 123; 0 when absent.
int firstErrorLine(const std::string &log, const std::string &name) {
  size_t at = log.find(name + "(");
  if (at == std::string::npos)
    return 0;
  return std::atoi(log.c_str() + at + name.size() + 1);
}

} // namespace
#endif

bool compileCuda(const std::string &source, const std::string &name,
                 const std::string &smArch, GpuImageKind kind, NvrtcOutput &out,
                 std::string &error) {
#ifndef PINFER_HAVE_NVRTC
  error = "cannot compile " + name + " for " + smArch +
          ": pinferc was built without NVRTC (install the CUDA toolkit and "
          "rebuild, or use --target cpu)";
  return false;
#else
  if (smArch.rfind("sm_", 0) != 0 || smArch.size() < 5) {
    error = "cannot compile " + name + ": architecture '" + smArch +
            "', expected sm_XX";
    return false;
  }
  auto t0 = std::chrono::steady_clock::now();
  nvrtcProgram prog;
  if (nvrtcCreateProgram(&prog, source.c_str(), name.c_str(), 0, nullptr,
                         nullptr) != NVRTC_SUCCESS) {
    error = "cannot compile " + name + ": NVRTC could not create a program";
    return false;
  }
  // CUBIN needs the real architecture; PTX the virtual one.
  std::string arch = kind == GpuImageKind::CUBIN
                         ? "-arch=" + smArch
                         : "-arch=compute_" + smArch.substr(3);
  const char *opts[] = {arch.c_str(), "--std=c++17", "-default-device"};
  nvrtcResult rc = nvrtcCompileProgram(prog, 3, opts);
  size_t logSize = 0;
  nvrtcGetProgramLogSize(prog, &logSize);
  out.log.assign(logSize, '\0');
  if (logSize)
    nvrtcGetProgramLog(prog, &out.log[0]);
  while (!out.log.empty() && (out.log.back() == '\0' || out.log.back() == '\n'))
    out.log.pop_back();
  if (rc != NVRTC_SUCCESS) {
    std::string kernel = kernelAtLine(source, firstErrorLine(out.log, name));
    error = "NVRTC failed to compile " +
            (kernel.empty() ? name : "kernel " + kernel + " of " + name) +
            " for " + smArch + ": " + nvrtcGetErrorString(rc) + "\n" + out.log;
    nvrtcDestroyProgram(&prog);
    return false;
  }
  size_t size = 0;
  nvrtcResult got;
  if (kind == GpuImageKind::CUBIN) {
    got = nvrtcGetCUBINSize(prog, &size);
    out.image.resize(size);
    if (got == NVRTC_SUCCESS)
      got = nvrtcGetCUBIN(prog, reinterpret_cast<char *>(out.image.data()));
  } else {
    got = nvrtcGetPTXSize(prog, &size); // includes the NUL
    out.image.resize(size);
    if (got == NVRTC_SUCCESS)
      got = nvrtcGetPTX(prog, reinterpret_cast<char *>(out.image.data()));
  }
  nvrtcDestroyProgram(&prog);
  if (got != NVRTC_SUCCESS || out.image.empty()) {
    error = "NVRTC produced no " +
            std::string(kind == GpuImageKind::CUBIN ? "CUBIN" : "PTX") +
            " for " + name + " (" + smArch + ")";
    return false;
  }
  out.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  return true;
#endif
}

} // namespace pinfer
