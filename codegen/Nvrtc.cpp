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

// One NVRTC compilation of `source` with `-arch=<arch>`. On success `prog`
// holds the result for the caller to read and destroy.
bool compileProgram(const std::string &source, const std::string &name,
                    const std::string &smArch, const std::string &arch,
                    nvrtcProgram &prog, std::string &log, std::string &error) {
  auto create = [&] {
    if (nvrtcCreateProgram(&prog, source.c_str(), name.c_str(), 0, nullptr,
                           nullptr) == NVRTC_SUCCESS)
      return true;
    error = "cannot compile " + name + ": NVRTC could not create a program";
    return false;
  };
  if (!create())
    return false;
  std::string archFlag = "-arch=" + arch;
  // --split-compile=0: NVRTC's optimisation passes on every hardware thread
  // (Gemma 3 270M's kernels: 20 s -> 12 s on 2 cores; the same code, its
  // functions in another order, the same from run to run). A toolkit that
  // does not know the option compiles without it.
  const char *opts[] = {archFlag.c_str(), "--std=c++17", "-default-device",
                        "--split-compile=0"};
  nvrtcResult rc = nvrtcCompileProgram(prog, 4, opts);
  if (rc == NVRTC_ERROR_INVALID_OPTION) {
    nvrtcDestroyProgram(&prog);
    if (!create())
      return false;
    rc = nvrtcCompileProgram(prog, 3, opts);
  }
  size_t logSize = 0;
  nvrtcGetProgramLogSize(prog, &logSize);
  log.assign(logSize, '\0');
  if (logSize)
    nvrtcGetProgramLog(prog, &log[0]);
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n'))
    log.pop_back();
  if (rc != NVRTC_SUCCESS) {
    std::string kernel = kernelAtLine(source, firstErrorLine(log, name));
    error = "NVRTC failed to compile " +
            (kernel.empty() ? name : "kernel " + kernel + " of " + name) +
            " for " + smArch + ": " + nvrtcGetErrorString(rc) + "\n" + log;
    nvrtcDestroyProgram(&prog);
    return false;
  }
  return true;
}

// The PTX (with its NUL) or the CUBIN of a compiled program; false when
// NVRTC has none (a CUBIN asked of a compute_XX compilation is empty).
bool readImage(nvrtcProgram prog, GpuImageKind kind,
               std::vector<uint8_t> &image) {
  size_t size = 0;
  nvrtcResult got;
  if (kind == GpuImageKind::CUBIN) {
    got = nvrtcGetCUBINSize(prog, &size);
    image.resize(got == NVRTC_SUCCESS ? size : 0);
    if (got == NVRTC_SUCCESS && size)
      got = nvrtcGetCUBIN(prog, reinterpret_cast<char *>(image.data()));
  } else {
    got = nvrtcGetPTXSize(prog, &size); // includes the NUL
    image.resize(got == NVRTC_SUCCESS ? size : 0);
    if (got == NVRTC_SUCCESS && size)
      got = nvrtcGetPTX(prog, reinterpret_cast<char *>(image.data()));
  }
  if (got != NVRTC_SUCCESS)
    image.clear();
  return !image.empty();
}

bool checkArch(const std::string &smArch, const std::string &name,
               std::string &error) {
  if (smArch.rfind("sm_", 0) != 0 || smArch.size() < 5) {
    error = "cannot compile " + name + ": architecture '" + smArch +
            "', expected sm_XX";
    return false;
  }
  return true;
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
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
  if (!checkArch(smArch, name, error))
    return false;
  auto t0 = std::chrono::steady_clock::now();
  // CUBIN needs the real architecture; PTX the virtual one.
  std::string arch =
      kind == GpuImageKind::CUBIN ? smArch : "compute_" + smArch.substr(3);
  nvrtcProgram prog;
  if (!compileProgram(source, name, smArch, arch, prog, out.log, error))
    return false;
  bool got = readImage(prog, kind, out.image);
  nvrtcDestroyProgram(&prog);
  if (!got) {
    error = "NVRTC produced no " +
            std::string(kind == GpuImageKind::CUBIN ? "CUBIN" : "PTX") +
            " for " + name + " (" + smArch + ")";
    return false;
  }
  out.seconds = secondsSince(t0);
  return true;
#endif
}

bool compileCudaImages(const std::string &source, const std::string &name,
                       const std::string &smArch, NvrtcImages &out,
                       std::string &error) {
#ifndef PINFER_HAVE_NVRTC
  NvrtcOutput unused;
  return compileCuda(source, name, smArch, GpuImageKind::PTX, unused, error);
#else
  if (!checkArch(smArch, name, error))
    return false;
  auto t0 = std::chrono::steady_clock::now();
  out = NvrtcImages();
  nvrtcProgram prog;
  std::string realError;
  if (compileProgram(source, name, smArch, smArch, prog, out.log, realError)) {
    bool ptx = readImage(prog, GpuImageKind::PTX, out.ptx);
    if (!readImage(prog, GpuImageKind::CUBIN, out.cubin))
      out.cubinNote =
          "NVRTC " + nvrtcVersion() + " returned no CUBIN for " + smArch;
    nvrtcDestroyProgram(&prog);
    if (ptx) {
      out.seconds = secondsSince(t0);
      return true;
    }
    // No PTX kept beside the CUBIN: the PTX is compiled alone below.
  } else {
    // A toolkit that does not know sm_XX as a target refuses the real
    // architecture; the source itself is judged by the PTX compilation.
    out.cubinNote = realError.substr(0, realError.find('\n'));
  }
  NvrtcOutput ptx;
  if (!compileCuda(source, name, smArch, GpuImageKind::PTX, ptx, error))
    return false;
  out.ptx = std::move(ptx.image);
  out.log = std::move(ptx.log);
  out.seconds = secondsSince(t0);
  return true;
#endif
}

} // namespace pinfer
