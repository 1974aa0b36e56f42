// Test only: runs emitted kernels through the libcuda stand-in
// (driver_standin.cpp). Where ctest runs a test with the stand-in (its
// LD_LIBRARY_PATH names the stand-in's directory, PINFER_CUDA_STANDIN_DIR),
// the emitted source is built as host C++ (build-host-kernels.sh) and the
// stand-in is pointed at the result; on a real GPU nothing happens.
#pragma once

#include "codegen/Nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/ggml_types.h"
#include "runtime/kernels.h"
#include "runtime/model.h"

#include <gtest/gtest.h>

#include "../unit/temp_dir.h"
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace pinfer::testutil {

#ifndef PINFER_CUDA_STANDIN_DIR
#error "PINFER_CUDA_STANDIN_DIR: the directory of the test-only libcuda.so.1"
#endif

inline bool underCudaStandin() {
  const char *path = std::getenv("LD_LIBRARY_PATH");
  return path && std::string(path).find(PINFER_CUDA_STANDIN_DIR) !=
                     std::string::npos;
}

// Builds `source` into `dir`/NAME.so with the shim; "" on success, else the
// compiler's output.
inline std::string buildHostKernels(const std::string &source,
                                    const std::string &dir,
                                    const std::string &name) {
  const std::string cu = dir + "/" + name + ".cu", so = dir + "/" + name + ".so",
                    log = dir + "/" + name + ".log";
  FILE *f = std::fopen(cu.c_str(), "w");
  if (!f)
    return "cannot write " + cu;
  std::fwrite(source.data(), 1, source.size(), f);
  std::fclose(f);
  const std::string cmd = "bash " PINFER_SOURCE_DIR
                          "/test/cuda_host/build-host-kernels.sh " +
                          cu + " " + so + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    std::string out;
    if (FILE *l = std::fopen(log.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, l)) > 0)
        out.append(buf, n);
      std::fclose(l);
    }
    return "building host kernels failed: " + out;
  }
  return "";
}

// Under the stand-in: builds `source` and makes it the kernels of the next
// module load. "" on success (or when not under the stand-in).
inline std::string useHostKernels(const std::string &source,
                                  const std::string &name) {
  if (!underCudaStandin())
    return "";
  static std::string dir;
  if (dir.empty()) {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-host-kernels");
    char *tmpl = tmplBuf.data();
    if (!::mkdtemp(tmpl))
      return "cannot make a temporary directory";
    dir = tmpl;
    // Removed when the test program ends.
    static struct Cleanup {
      ~Cleanup() { std::system(("rm -rf " + dir).c_str()); }
    } cleanup;
  }
  std::string why = buildHostKernels(source, dir, name);
  if (!why.empty())
    return why;
  ::setenv("PINFER_CUDA_STANDIN_KERNELS", (dir + "/" + name + ".so").c_str(),
           1);
  return "";
}

// Why a GPU test cannot run here ("" when `gpu` opened): built without
// NVRTC, or no driver or device. Under the stand-in the driver must open:
// the test fails instead.
inline std::string gpuSkipReason(CudaDriver &gpu) {
  if (!nvrtcAvailable())
    return "built without NVRTC";
  std::string why;
  if (gpu.open(why))
    return "";
  if (underCudaStandin())
    ADD_FAILURE() << "the libcuda stand-in did not open: " << why;
  return why;
}

// sqrt(sum (got - want)^2 / sum want^2): the kernels' error against their
// CPU twins (absolute where `want` is all zero).
inline double normalisedError(const float *got, const float *want,
                              size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// x[0, n) as a block type's GPU products take it: quantised to 8 bits as
// the CPU's products quantise it, in the device layout (packActQ8) into
// `device`, and the same values back as floats into `values`, which a CPU
// twin multiplies (either may be x).
inline void quantisedInput(const float *x, int64_t n, float *device,
                           float *values) {
  std::vector<BlockQ8Act> q(size_t(n / QK8_0));
  quantizeActQ8(x, q.data(), n);
  for (int64_t i = 0; i < n; ++i)
    values[i] =
        q[size_t(i / QK8_0)].d * float(q[size_t(i / QK8_0)].qs[i % QK8_0]);
  packActQ8(q.data(), device, n);
}

// `rows` rows of `cols` elements of `type` (normal values of standard
// deviation `scale`, quantised), bound into `w`, which points into the
// returned bytes.
inline std::vector<uint8_t> randomRows(GGMLType type, int cols, int rows,
                                       uint32_t seed, Weight &w,
                                       float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  const size_t rb = rowBytes(type, cols);
  std::vector<uint8_t> bytes(rb * rows);
  std::vector<float> src(cols);
  for (int r = 0; r < rows; ++r) {
    for (float &v : src)
      v = dist(rng);
    quantizeRow(type, src.data(), bytes.data() + r * rb, cols);
  }
  w.type = type;
  w.cols = cols;
  w.rows = rows;
  w.rowBytes = rb;
  w.data = bytes.data();
  return bytes;
}

// A parameterised test of GPU code: skipped, with the reason, where no GPU
// (nor the stand-in) opens; gpu_ is open otherwise.
template <class Param>
class GpuTestWithParam : public ::testing::TestWithParam<Param> {
protected:
  void SetUp() override {
    const std::string why = gpuSkipReason(gpu_);
    if (!why.empty())
      GTEST_SKIP() << why;
  }
  CudaDriver gpu_;
};

} // namespace pinfer::testutil
