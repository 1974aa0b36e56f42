// Tests the CUDA-as-host-C++ header (test/cuda_host/cuda_host_shim.h) that
// the kernel checks rely on: warp shuffles and block barriers move values
// as on a GPU, and the mistakes a GPU leaves undefined are reported with
// the kernel, block and thread: a shuffle with an exited lane, lanes that
// disagree on the mask, a barrier that a thread returned without reaching,
// deadlock; out-of-bounds reads are AddressSanitizer's, in the sanitised
// build.
#include "host_kernels.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include "temp_dir.h"
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

using namespace pinfer::testutil;

namespace {

using LaunchFn = int (*)(const char *, const unsigned *, const unsigned *,
                         void **, char *, size_t);

// Kernels in the style of the emitted source (declared with
// __launch_bounds__ so that build-host-kernels.sh finds them).
const char *kSource = R"(
__device__ __forceinline__ float warp_sum(float s) {
  for (int o = 16; o > 0; o >>= 1)
    s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}
// y[block] = sum of x over the block: warps, then shared memory.
extern "C" __global__ void __launch_bounds__(256) block_sum(const float *x, float *y) {
  __shared__ float part[8];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float s = warp_sum(x[i]);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int w = 0; w < (int)blockDim.x / 32; ++w) t += part[w];
    y[blockIdx.x] = t;
  }
}
// y[i] = x of the lane 3 below (wrapping within the warp is not done).
extern "C" __global__ void __launch_bounds__(64) shift_down(const float *x, float *y) {
  const int i = threadIdx.x;
  y[i] = __shfl_down_sync(0xffffffffu, x[i], 3);
}
extern "C" __global__ void __launch_bounds__(64) early_return(const float *x, float *y) {
  if (threadIdx.x == 5) return;
  float s = warp_sum(x[threadIdx.x]);
  if (threadIdx.x == 0) y[0] = s;
}
extern "C" __global__ void __launch_bounds__(64) skipped_barrier(const float *x, float *y) {
  if (threadIdx.x == 7) return;
  __syncthreads();
  y[threadIdx.x] = x[threadIdx.x];
}
extern "C" __global__ void __launch_bounds__(64) mixed_masks(const float *x, float *y) {
  const unsigned mask = threadIdx.x < 16 ? 0x0000ffffu : 0xffffffffu;
  y[threadIdx.x] = __shfl_xor_sync(mask, x[threadIdx.x], 1);
}
extern "C" __global__ void __launch_bounds__(64) deadlock(const float *x, float *y) {
  if (threadIdx.x == 0) __syncthreads();
  else y[threadIdx.x] = warp_sum(x[threadIdx.x]);
}
// y[i] = __byte_perm(a, b, selector) for the (a, b, selector) triples of x.
extern "C" __global__ void __launch_bounds__(32) byte_perm(const float *x, float *y) {
  const unsigned *in = reinterpret_cast<const unsigned *>(x);
  const int i = threadIdx.x;
  reinterpret_cast<unsigned *>(y)[i] = __byte_perm(in[3 * i], in[3 * i + 1], in[3 * i + 2]);
}
// y[i] = the ballot of lanes with x > 0 in thread i's warp (as bits), then
// its count below lane i.
extern "C" __global__ void __launch_bounds__(64) ballot(const float *x, float *y) {
  const unsigned b = __ballot_sync(0xffffffffu, x[threadIdx.x] > 0.f);
  reinterpret_cast<unsigned *>(y)[threadIdx.x] = b;
  y[64 + threadIdx.x] = (float)__popc(b & ((1u << (threadIdx.x & 31)) - 1u));
}
// Each warp writes a value to shared memory, then reads the other warp's:
// with barriers between (ordered) and without (racing). The warp
// rendezvous between keep warps that take turns at each one in step, so
// that only a schedule that lets one warp run ahead shows the race.
extern "C" __global__ void __launch_bounds__(64) neighbour(const float *x, float *y) {
  __shared__ float slot[2];
  const int w = threadIdx.x >> 5;
  for (int round = 0; round < 2; ++round) {
    if ((threadIdx.x & 31) == 0) slot[w] = x[0] + (float)(w + 2 * round);
    if (x[1] != 0.f) __syncthreads();
    __syncwarp();
    const float v = slot[1 - w];
    if ((threadIdx.x & 31) == 0) y[2 * round + w] = v;
    if (x[1] != 0.f) __syncthreads();
    __syncwarp();
  }
}
extern "C" __global__ void __launch_bounds__(32) read_past_end(const float *x, float *y) {
  y[threadIdx.x] = x[threadIdx.x + 1];
}
)";

class CudaHostShim : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-shim-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    ASSERT_EQ(buildHostKernels(kSource, dir_, "shim"), "");
    so_ = dlopen((dir_ + "/shim.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_TRUE(so_) << dlerror();
    launch_ = reinterpret_cast<LaunchFn>(dlsym(so_, "pf_shim_launch"));
    ASSERT_TRUE(launch_);
  }
  static void TearDownTestSuite() {
    if (so_)
      dlclose(so_);
    std::system(("rm -rf " + dir_).c_str());
  }
  // Launches `name` on grid x block with x and y; "" or the error.
  static std::string launch(const char *name, unsigned grid, unsigned block,
                            const float *x, float *y) {
    unsigned g[3] = {grid, 1, 1}, b[3] = {block, 1, 1};
    void *args[] = {&x, &y};
    char error[512] = {};
    launch_(name, g, b, args, error, sizeof error);
    return error;
  }
  static std::string dir_;
  static void *so_;
  static LaunchFn launch_;
};
std::string CudaHostShim::dir_;
void *CudaHostShim::so_ = nullptr;
LaunchFn CudaHostShim::launch_ = nullptr;

// Tests that shuffles and barriers give the values a GPU gives.
TEST_F(CudaHostShim, ShufflesAndBarriersMoveValues) {
  std::vector<float> x(3 * 256), y(3, -1.f);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i % 7);
  ASSERT_EQ(launch("block_sum", 3, 256, x.data(), y.data()), "");
  for (int b = 0; b < 3; ++b) {
    float want = 0;
    for (int i = 0; i < 256; ++i)
      want += x[b * 256 + i];
    EXPECT_EQ(y[b], want) << b;
  }
  std::vector<float> in(64), out(64);
  for (int i = 0; i < 64; ++i)
    in[i] = float(i);
  ASSERT_EQ(launch("shift_down", 1, 64, in.data(), out.data()), "");
  for (int i = 0; i < 64; ++i)
    EXPECT_EQ(out[i], float((i & 31) + 3 < 32 ? i + 3 : i)) << i;
}

// Tests __ballot_sync and __popc: each warp's bits of the lanes whose
// predicate holds, and the count below a lane (a list's rank).
TEST_F(CudaHostShim, BallotGathersEachWarpsPredicates) {
  std::vector<float> x(64), y(128);
  for (int i = 0; i < 64; ++i)
    x[i] = i % 3 == 0 || i == 40 ? 1.f : -1.f;
  ASSERT_EQ(launch("ballot", 1, 64, x.data(), y.data()), "");
  for (int i = 0; i < 64; ++i) {
    unsigned want = 0, below = 0;
    for (int j = 0; j < 32; ++j)
      if (x[(i & ~31) + j] > 0.f) {
        want |= 1u << j;
        below += j < (i & 31);
      }
    unsigned got;
    std::memcpy(&got, &y[i], 4);
    EXPECT_EQ(got, want) << i;
    EXPECT_EQ(y[64 + i], float(below)) << i;
  }
}

// Tests that warps run apart as far as the barriers allow: with them each
// warp reads what the other wrote that round; without them, what the
// other wrote in another round, or before it wrote at all.
TEST_F(CudaHostShim, WarpsRaceWithoutBarriers) {
  const float ordered[2] = {10.f, 1.f}, racing[2] = {10.f, 0.f};
  std::vector<float> y(4, -1.f);
  ASSERT_EQ(launch("neighbour", 1, 64, ordered, y.data()), "");
  EXPECT_EQ(y, (std::vector<float>{11.f, 10.f, 13.f, 12.f}));
  ASSERT_EQ(launch("neighbour", 1, 64, racing, y.data()), "");
  EXPECT_NE(y, (std::vector<float>{11.f, 10.f, 13.f, 12.f}));
}

// Tests the byte permute against its documented examples (the selector's
// nibble n, bits 2:0, picks result byte n of the eight bytes of b:a; bit 3
// and the upper half are ignored) and the use the dot products make of it:
// a byte into the low mantissa of 2^23.
TEST_F(CudaHostShim, BytePermuteSelectsAsDocumented) {
  const unsigned cases[][4] = {
      {0x03020100u, 0x07060504u, 0x7531u, 0x07050301u},
      {0x03020100u, 0x07060504u, 0x3210u, 0x03020100u},
      {0x03020100u, 0x07060504u, 0xfedcu, 0x07060504u},
      {0x03020100u, 0x07060504u, 0xffff0123u, 0x00010203u},
      {0x12345678u, 0x4B000000u, 0x7652u, 0x4B000034u},
  };
  constexpr int kN = sizeof cases / sizeof cases[0];
  std::vector<unsigned> in(3 * 32, 0), out(32, 0);
  for (int i = 0; i < kN; ++i)
    for (int k = 0; k < 3; ++k)
      in[3 * i + k] = cases[i][k];
  ASSERT_EQ(launch("byte_perm", 1, 32, reinterpret_cast<float *>(in.data()),
                   reinterpret_cast<float *>(out.data())),
            "");
  for (int i = 0; i < kN; ++i)
    EXPECT_EQ(out[i], cases[i][3]) << "case " << i;
}

// Tests that undefined uses of shuffles and barriers stop the launch with
// the kernel, block and thread named.
TEST_F(CudaHostShim, ReportsWhatTheGpuLeavesUndefined) {
  std::vector<float> x(64, 1.f), y(64);
  std::string e = launch("early_return", 1, 64, x.data(), y.data());
  EXPECT_NE(e.find("includes lane 5, which has exited"), std::string::npos)
      << e;
  EXPECT_NE(e.find("kernel early_return, block (0,0,0)"), std::string::npos)
      << e;
  e = launch("skipped_barrier", 1, 64, x.data(), y.data());
  EXPECT_NE(e.find("thread 7 of the block returned without reaching it"),
            std::string::npos)
      << e;
  e = launch("mixed_masks", 1, 64, x.data(), y.data());
  EXPECT_NE(e.find("disagree on the mask"), std::string::npos) << e;
  e = launch("deadlock", 1, 64, x.data(), y.data());
  EXPECT_NE(e.find("deadlock"), std::string::npos) << e;
  // A launch after a failed one runs normally.
  std::vector<float> big(256, 2.f), sum(1);
  EXPECT_EQ(launch("block_sum", 1, 256, big.data(), sum.data()), "");
  EXPECT_EQ(sum[0], 512.f);
}

// Tests that a read past the end of a buffer is caught (AddressSanitizer:
// the kernels are built with the test build's compiler and flags).
TEST_F(CudaHostShim, OutOfBoundsReadIsCaught) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> y(32);
  EXPECT_DEATH(
      {
        float *x = new float[32];
        launch("read_past_end", 1, 32, x, y.data());
        delete[] x;
      },
      "heap-buffer-overflow");
#else
  GTEST_SKIP() << "needs the sanitised build (scripts/test.sh --sanitize)";
#endif
}

} // namespace
