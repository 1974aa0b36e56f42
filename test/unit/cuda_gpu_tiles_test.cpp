// Tests the tensor-core form of a prompt's matvecs (every type whose
// products take 8-bit activations, f16 and bf16: gpuattn::kTilesSuffix,
// codegen/CudaAttention.cpp) against the exact
// product in double of the rows' and the tokens' 8-bit (f16, bf16: f32)
// values, against the one-row kernel, and for the same bits whatever chunk
// a token comes in. On a GPU of sm_80 or newer, and in ctest's ".standin"
// runs through the libcuda stand-in, whose host build multiplies the
// fragments as the PTX ISA lays them out (test/cuda_host/cuda_host_shim.h,
// pf_mma_s8, pf_mma_f16, pf_mma_bf16).
#include "codegen/CudaAttention.h"
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"

#include "host_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <sstream>
#include <vector>

using namespace pinfer;
using pinfer::testutil::normalisedError;
using pinfer::testutil::randomRows;
using pinfer::testutil::useHostKernels;

namespace {

struct Case {
  GGMLType type;
  bool bias;
  // The down kernels' parameters (w, x, y, part, done, nTok), bias-free: a
  // dense layer's source down rows on the GPU.
  bool down = false;
};

using CudaTiles = testutil::GpuTestWithParam<Case>;

// Rows past a whole tile of 64 (and of 16) and tokens past one round of 32
// (a last group of 5): every edge of the kernel's loops.
constexpr int kRows = 300, kCols = 256, kTokens = 37;

TEST_P(CudaTiles, MatchExactProductInAnyChunk) {
  const Case c = GetParam();
  const std::string arch = "sm_" + std::to_string(gpu_.computeCapability());
  if (!smHasIntMma(arch))
    GTEST_SKIP() << arch << " has no integer mma.m16n8k32";
  // The prelude (an empty program's source), then the one kernel pair.
  ProgramDesc empty;
  std::ostringstream src;
  src << emitCuda(empty).source;
  emitMatvec(src, "mv", c.type, kRows, kCols, c.bias, false, c.down, true);
  const std::string source = src.str();
  NvrtcOutput ptx;
  std::string error;
  ASSERT_TRUE(
      compileCuda(source, "tiles.cu", arch, GpuImageKind::PTX, ptx, error))
      << error;
  ASSERT_EQ(useHostKernels(source, std::string("tiles_") + typeName(c.type) +
                                       (c.bias ? "b" : "") +
                                       (c.down ? "d" : "")),
            "");
  ASSERT_TRUE(gpu_.loadModule(ptx.image.data(), error)) << error;
  void *rows = gpu_.function("mv", error);
  ASSERT_TRUE(rows) << error;
  void *tiles =
      gpu_.function((std::string("mv") + gpuattn::kTilesSuffix).c_str(), error);
  ASSERT_TRUE(tiles) << error;

  Weight w;
  const std::vector<uint8_t> bytes =
      randomRows(c.type, kCols, kRows, 7, w, 0.5f);
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> bias(kRows);
  for (float &b : bias)
    b = dist(rng);
  // Each token's 8-bit values in the device layout (kCols floats a token)
  // and as the exact values they stand for.
  std::vector<float> xs(size_t(kTokens) * kCols);
  std::vector<double> xv(xs.size());
  for (int t = 0; t < kTokens; ++t) {
    std::vector<float> x(kCols), v(kCols);
    // f16 rows also take a token past f16's range and one below its
    // normal values: the tiles' parts are scaled per token and 16 values.
    const bool halfRows = c.type == GGMLType::F16 || c.type == GGMLType::BF16;
    const float scale = halfRows && t == 5   ? 1e6f
                        : halfRows && t == 6 ? 1e-7f
                        : t % 3 == 0         ? 10.f
                                             : 0.1f;
    for (float &e : x)
      e = dist(rng) * scale;
    // f16 and bfloat16 rows multiply the f32 values themselves.
    if (halfRows) {
      v = x;
      std::copy(x.begin(), x.end(), xs.begin() + size_t(t) * kCols);
    } else {
      testutil::quantisedInput(x.data(), kCols, xs.data() + size_t(t) * kCols,
                               v.data());
    }
    for (int i = 0; i < kCols; ++i)
      xv[size_t(t) * kCols + i] = v[i];
  }
  // The exact product: each weight and activation is exact as a float, and
  // their products and sums exact enough in double.
  std::vector<float> want(size_t(kTokens) * kRows), row(kCols);
  for (int r = 0; r < kRows; ++r) {
    ASSERT_TRUE(dequantizeRow(c.type, bytes.data() + size_t(r) * w.rowBytes,
                              row.data(), kCols));
    for (int t = 0; t < kTokens; ++t) {
      double s = c.bias ? bias[r] : 0.0;
      for (int i = 0; i < kCols; ++i)
        s += double(row[i]) * xv[size_t(t) * kCols + i];
      want[size_t(t) * kRows + r] = float(s);
    }
  }

  using Ptr = CudaDriver::DevPtr;
  const size_t f = sizeof(float);
  Ptr dW, dB = 0, dX, dY, dYRows, dYPart;
  ASSERT_TRUE(gpu_.alloc(dW, bytes.size(), error) &&
              gpu_.upload(dW, bytes.data(), bytes.size(), error) &&
              gpu_.alloc(dX, f * xs.size(), error) &&
              gpu_.upload(dX, xs.data(), f * xs.size(), error) &&
              gpu_.alloc(dY, f * want.size(), error) &&
              gpu_.alloc(dYRows, f * want.size(), error) &&
              gpu_.alloc(dYPart, f * want.size(), error))
      << error;
  if (c.bias) {
    ASSERT_TRUE(gpu_.alloc(dB, f * kRows, error) &&
                gpu_.upload(dB, bias.data(), f * kRows, error))
        << error;
  }
  int n = kTokens;
  // The last 7 tokens alone: each at another place in its group of 8.
  constexpr int kLast = 7, kFrom = kTokens - kLast;
  int nPart = kLast;
  Ptr dXPart = dX + f * size_t(kFrom) * kCols;
  // The down kernels' partial sums and counters, which a matvec leaves
  // untouched.
  Ptr dUnused = 0;
  auto argsFor = [&](Ptr &x, Ptr &y, int &tokens) {
    return c.down
               ? std::vector<void *>{&dW, &x, &y, &dUnused, &dUnused, &tokens}
               : std::vector<void *>{&dW, &dB, &x, &y, &tokens};
  };
  std::vector<void *> args = argsFor(dX, dY, n),
                      rowArgs = argsFor(dX, dYRows, n),
                      partArgs = argsFor(dXPart, dYPart, nPart);
  ASSERT_TRUE(gpu_.launch(tiles, gpuattn::tileGrid(kRows), gpuattn::kTileBlock,
                          args.data(), error) &&
              gpu_.launch(rows, gpuattn::matvecGrid(kRows),
                          gpuattn::kMatvecBlock, rowArgs.data(), error) &&
              gpu_.launch(tiles, gpuattn::tileGrid(kRows), gpuattn::kTileBlock,
                          partArgs.data(), error))
      << error;
  std::vector<float> got(want.size()), gotRows(want.size()),
      gotPart(size_t(kLast) * kRows);
  ASSERT_TRUE(gpu_.download(got.data(), dY, f * got.size(), error) &&
              gpu_.download(gotRows.data(), dYRows, f * got.size(), error) &&
              gpu_.download(gotPart.data(), dYPart, f * gotPart.size(), error))
      << error;
  for (int t = 0; t < kTokens; ++t) {
    SCOPED_TRACE("token " + std::to_string(t));
    const size_t at = size_t(t) * kRows;
    // f32 sums of one term per block: a few ulps from the exact value.
    EXPECT_LT(normalisedError(got.data() + at, want.data() + at, kRows), 1e-6);
    EXPECT_LT(normalisedError(gotRows.data() + at, want.data() + at, kRows),
              1e-6);
  }
  EXPECT_EQ(std::memcmp(gotPart.data(), got.data() + size_t(kFrom) * kRows,
                        f * gotPart.size()),
            0);
}

INSTANTIATE_TEST_SUITE_P(
    Types, CudaTiles,
    ::testing::Values(Case{GGMLType::Q8_0, false}, Case{GGMLType::Q4_0, true},
                      Case{GGMLType::Q4_1, false}, Case{GGMLType::Q5_0, true},
                      Case{GGMLType::Q5_1, false}, Case{GGMLType::Q2_K, true},
                      Case{GGMLType::Q3_K, false}, Case{GGMLType::Q4_K, true},
                      Case{GGMLType::Q5_K, false}, Case{GGMLType::Q6_K, true},
                      Case{GGMLType::F16, false}, Case{GGMLType::F16, true},
                      Case{GGMLType::BF16, false}, Case{GGMLType::BF16, true},
                      // One type of each form in the down kernels' frame.
                      Case{GGMLType::Q8_0, false, true},
                      Case{GGMLType::Q4_1, false, true},
                      Case{GGMLType::Q4_K, false, true},
                      Case{GGMLType::Q6_K, false, true}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return std::string(typeName(info.param.type)) +
             (info.param.bias ? "_bias" : "") +
             (info.param.down ? "_down" : "");
    });

} // namespace
