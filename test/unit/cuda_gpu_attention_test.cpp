// Tests the emitted attention kernels (runtime/gpu_attention.h) against
// their CPU twin, the dense reference's attentionCore, token after token
// over a growing KV cache: LLaMA-shaped (Q8_0, grouped-query), Qwen2-shaped
// (biases, NeoX RoPE) and Gemma-3-shaped (K-quant projections, per-head
// Q/K norms, head size unlike n_embd/n_head, one KV head, a sliding window,
// a Q5_0 output projection whose input the GPU quantises as the CPU does).
// On a real GPU, and in ctest's ".standin" runs through the libcuda
// stand-in (test/cuda_host).
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/forward.h"
#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"
#include "runtime/thread_pool.h"

#include "host_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace pinfer;
using pinfer::testutil::normalisedError;
using pinfer::testutil::useHostKernels;

namespace {

struct Shape {
  const char *name;
  GGMLType wq, wkv, wo;
  int nEmbd, nHead, nKvHead, headDim;
  RopeStyle rope;
  bool bias, qkNorm;
  int window;
  // Tokens run: past kAttendChunk, the attend kernel's chunks combine.
  int tokens = 7;
};

struct Matrix {
  Weight w;
  std::vector<uint8_t> bytes;
};

Matrix randomMatrix(GGMLType type, int cols, int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 0.3f);
  Matrix m;
  m.w.type = type;
  m.w.cols = cols;
  m.w.rows = rows;
  m.w.rowBytes = rowBytes(type, cols);
  m.bytes.resize(m.w.rowBytes * rows);
  std::vector<float> src(cols);
  for (int r = 0; r < rows; ++r) {
    for (float &v : src)
      v = dist(rng);
    quantizeRow(type, src.data(), m.bytes.data() + r * m.w.rowBytes, cols);
  }
  m.w.data = m.bytes.data();
  return m;
}

std::vector<float> randomVector(int n, uint32_t seed, float mean = 0.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, 0.5f);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

using CudaAttention = testutil::GpuTestWithParam<Shape>;

TEST_P(CudaAttention, MatchesAttentionCore) {
  const Shape &s = GetParam();
  const int kTokens = s.tokens, kCtx = s.tokens + 1;
  ModelParams p;
  p.nEmbd = s.nEmbd;
  p.nHead = s.nHead;
  p.nKvHead = s.nKvHead;
  p.headDim = s.headDim;
  p.nRot = s.headDim;
  p.nLayer = 1;
  p.nFF = 32;
  p.normEps = 1e-6f;
  p.ropeStyle = s.rope;
  const int qDim = p.qDim(), kvDim = p.kvDim();

  Matrix wq = randomMatrix(s.wq, s.nEmbd, qDim, 1),
         wk = randomMatrix(s.wkv, s.nEmbd, kvDim, 2),
         wv = randomMatrix(s.wkv, s.nEmbd, kvDim, 3),
         wo = randomMatrix(s.wo, qDim, s.nEmbd, 4);
  std::vector<float> bq, bk, bv, qNorm, kNorm;
  if (s.bias) {
    bq = randomVector(qDim, 5);
    bk = randomVector(kvDim, 6);
    bv = randomVector(kvDim, 7);
  }
  if (s.qkNorm) {
    qNorm = randomVector(s.headDim, 8, 1.f);
    kNorm = randomVector(s.headDim, 9, 1.f);
  }
  std::vector<float> invFreq(p.nRot / 2);
  ropeInvFreq(invFreq.data(), p.nRot, 10000.f);

  // The CPU twin's state.
  std::vector<uint16_t> keys(size_t(kCtx) * kvDim), values(keys.size());
  std::vector<float> kNew(kvDim), vNew(kvDim);
  std::vector<float> xb(s.nEmbd), xb2(s.nEmbd), q(qDim), attnOut(qDim),
      scores(size_t(p.nHead) * kCtx);
  AttentionBlock ab{nullptr,        &wq.w,          &wk.w,       &wv.w,
                    &wo.w,          keys.data(),    values.data(), xb.data(),
                    xb2.data(),     q.data(),       attnOut.data(),
                    scores.data(),  invFreq.data(), kCtx};
  ab.qNorm = s.qkNorm ? qNorm.data() : nullptr;
  ab.kNorm = s.qkNorm ? kNorm.data() : nullptr;
  ab.window = s.window;
  ab.bq = s.bias ? bq.data() : nullptr;
  ab.bk = s.bias ? bk.data() : nullptr;
  ab.bv = s.bias ? bv.data() : nullptr;
  ab.kNew = kNew.data();
  ab.vNew = vNew.data();
  ThreadPool pool(1);

  // The kernels, as the compiler emits them for this layer.
  ProgramDesc d;
  d.params = p;
  d.smArch = "sm_" + std::to_string(gpu_.computeCapability());
  d.layers.resize(1);
  d.layers[0].attentionOnGPU = true;
  d.layers[0].attention =
      AttentionDesc{s.wq, s.wkv, s.wkv, s.wo, s.bias, s.qkNorm, s.window};
  CudaModule m = emitCuda(d);
  NvrtcOutput ptx;
  std::string error;
  ASSERT_TRUE(
      compileCuda(m.source, "attn.cu", d.smArch, GpuImageKind::PTX, ptx, error))
      << error;
  ASSERT_EQ(useHostKernels(m.source, std::string("attn_") + s.name), "");
  ASSERT_TRUE(gpu_.loadModule(ptx.image.data(), error)) << error;
  gpu_.setKernelAliases(m.aliases);
  using namespace gpuattn;
  void *fn[7];
  const char *names[] = {"wq", "wk", "wv", "rope", "attend", "quant", "wo"};
  for (int k = 0; k < 7; ++k)
    ASSERT_TRUE(fn[k] = gpu_.function(kernelName(0, names[k]).c_str(), error))
        << error;

  using Ptr = CudaDriver::DevPtr;
  auto upload = [&](const void *src, size_t bytes, Ptr &dst) {
    return gpu_.alloc(dst, bytes, error) &&
           (!src || gpu_.upload(dst, src, bytes, error));
  };
  Ptr dWq, dWk, dWv, dWo, dBq = 0, dBk = 0, dBv = 0, dQn = 0, dKn = 0, dCs,
                          dPos, dKeys, dValues, dX, dQ, dK, dV, dScores, dPart,
                          dDone, dOut, dOutQ, dY;
  const std::vector<uint32_t> zeros(size_t(p.nHead), 0u);
  const size_t f = sizeof(float);
  ASSERT_TRUE(
      upload(wq.bytes.data(), wq.bytes.size(), dWq) &&
      upload(wk.bytes.data(), wk.bytes.size(), dWk) &&
      upload(wv.bytes.data(), wv.bytes.size(), dWv) &&
      upload(wo.bytes.data(), wo.bytes.size(), dWo) &&
      upload(nullptr, f * p.nRot, dCs) && upload(nullptr, sizeof(int), dPos) &&
      upload(nullptr, f * kvDim, dK) && upload(nullptr, f * kvDim, dV) &&
      upload(nullptr, 2 * keys.size(), dKeys) &&
      upload(nullptr, 2 * keys.size(), dValues) &&
      upload(nullptr, f * 2 * s.nEmbd, dX) && upload(nullptr, f * qDim, dQ) &&
      upload(nullptr, f * scores.size(), dScores) &&
      upload(nullptr, f * attendPartFloats(p.nHead, kCtx, p.headDim), dPart) &&
      upload(zeros.data(), 4 * zeros.size(), dDone) &&
      upload(nullptr, f * qDim, dOut) && upload(nullptr, f * qDim, dOutQ) &&
      upload(nullptr, f * s.nEmbd, dY))
      << error;
  if (s.bias)
    ASSERT_TRUE(upload(bq.data(), f * qDim, dBq) &&
                upload(bk.data(), f * kvDim, dBk) &&
                upload(bv.data(), f * kvDim, dBv))
        << error;
  if (s.qkNorm)
    ASSERT_TRUE(upload(qNorm.data(), f * s.headDim, dQn) &&
                upload(kNorm.data(), f * s.headDim, dKn))
        << error;

  std::vector<BlockQ8Act> xq(s.nEmbd / QK8_0);
  std::vector<float> hostX(2 * s.nEmbd), got(s.nEmbd);
  for (int pos = 0; pos < kTokens; ++pos) {
    SCOPED_TRACE("position " + std::to_string(pos));
    std::vector<float> x = randomVector(s.nEmbd, 100 + pos);
    std::copy(x.begin(), x.end(), xb.begin());
    attentionCore(p, ab, 1, pos, pool);

    // The executor's sequence (runtime/executor_attention.cpp).
    std::copy(x.begin(), x.end(), hostX.begin());
    quantizeActQ8(x.data(), xq.data(), s.nEmbd);
    packActQ8(xq.data(), hostX.data() + s.nEmbd, s.nEmbd);
    Ptr x32 = dX, x8 = dX + f * s.nEmbd;
    Ptr kRow = dKeys + 2 * size_t(pos) * kvDim, noBias = 0;
    Ptr woIn = usesQ8Act(s.wo) ? dOutQ : dOut;
    int position = pos, nCtx = kCtx, one = 1;
    void *aq[] = {&dWq, &dBq, usesQ8Act(s.wq) ? &x8 : &x32, &dQ, &one};
    void *ak[] = {&dWk, &dBk, usesQ8Act(s.wkv) ? &x8 : &x32, &dK, &one};
    void *av[] = {&dWv, &dBv, usesQ8Act(s.wkv) ? &x8 : &x32, &dV, &one};
    std::vector<float> cs(p.nRot);
    ropeAngles(invFreq.data(), p.nRot, pos, cs.data());
    void *ar[] = {&dQ,  &dK,  &dV,  &dKeys, &dValues,
                  &dQn, &dKn, &dCs, &dPos,  &one};
    void *aa[] = {&dQ,    &dKeys, &dValues, &dScores, &dPart,
                  &dDone, &dOut,  &dPos,    &nCtx,    &one};
    void *an[] = {&dOut, &dOutQ, &one};
    void *ao[] = {&dWo, &noBias, &woIn, &dY, &one};
    ASSERT_TRUE(
        gpu_.upload(dX, hostX.data(), f * hostX.size(), error) &&
        gpu_.upload(dCs, cs.data(), f * cs.size(), error) &&
        gpu_.upload(dPos, &position, sizeof position, error) &&
        gpu_.launch(fn[0], matvecGrid(qDim), kMatvecBlock, aq, error) &&
        gpu_.launch(fn[1], matvecGrid(kvDim), kMatvecBlock, ak, error) &&
        gpu_.launch(fn[2], matvecGrid(kvDim), kMatvecBlock, av, error) &&
        gpu_.launch(fn[3], unsigned(p.nHead + p.nKvHead), kRopeBlock, ar,
                    error) &&
        gpu_.launch(fn[4], attendGrid(p.nHead, p.nKvHead, kCtx), kAttendBlock,
                    aa, error) &&
        (!usesQ8Act(s.wo) ||
         gpu_.launch(fn[5], quantGrid(1), kQuantBlock, an, error)) &&
        gpu_.launch(fn[6], matvecGrid(s.nEmbd), kMatvecBlock, ao, error) &&
        gpu_.download(got.data(), dY, f * s.nEmbd, error))
        << error;
    // The attention's output, before the output projection: 1e-5 with an
    // f32 cache; the f16 caches may hold a few halves a step apart (the
    // rows are checked below), measured up to 2.5e-5.
    std::vector<float> outGot(qDim);
    ASSERT_TRUE(gpu_.download(outGot.data(), dOut, f * qDim, error)) << error;
    EXPECT_LT(normalisedError(outGot.data(), attnOut.data(), qDim), 1e-4);
    // The output projection of that output, as the CPU computes it: with
    // 8-bit inputs a value near a rounding boundary may round the other
    // way from the CPU's own attention output (errors ~1e-3), so the
    // projection is checked on the GPU's input.
    std::vector<float> yWant(s.nEmbd);
    matvec(wo.w, outGot.data(), yWant.data(), pool);
    EXPECT_LT(normalisedError(got.data(), yWant.data(), s.nEmbd), 1e-4);
    if (!usesQ8Act(s.wo)) {
      EXPECT_LT(normalisedError(got.data(), xb2.data(), s.nEmbd), 1e-4);
    }
    // The cache rows the GPU wrote (f16) are the CPU's: the same halves
    // but where the f32 values, a rounding apart, straddle a half's
    // rounding boundary.
    auto sameRow = [&](Ptr dRow, const uint16_t *want) {
      std::vector<uint16_t> h(kvDim);
      std::vector<float> a(kvDim), b(kvDim);
      if (!gpu_.download(h.data(), dRow, 2 * size_t(kvDim), error))
        return false;
      int differ = 0;
      for (int i = 0; i < kvDim; ++i) {
        a[i] = fp16ToF32(h[i]);
        b[i] = fp16ToF32(want[i]);
        differ += h[i] != want[i];
      }
      EXPECT_LE(differ, kvDim / 16);
      EXPECT_LT(normalisedError(a.data(), b.data(), kvDim), 1e-3);
      return true;
    };
    ASSERT_TRUE(sameRow(kRow, keys.data() + size_t(pos) * kvDim)) << error;
    ASSERT_TRUE(sameRow(dValues + 2 * size_t(pos) * kvDim,
                        values.data() + size_t(pos) * kvDim))
        << error;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttention,
    ::testing::Values(Shape{"llama", GGMLType::Q8_0, GGMLType::Q8_0,
                            GGMLType::Q8_0, 128, 4, 2, 32, RopeStyle::Normal,
                            false, false, 0, 2 * gpuattn::kAttendChunk + 5},
                      Shape{"qwen2", GGMLType::F16, GGMLType::F16,
                            GGMLType::F32, 128, 4, 4, 32, RopeStyle::Neox, true,
                            false, 0},
                      Shape{"gemma3", GGMLType::Q4_K, GGMLType::Q6_K,
                            GGMLType::Q5_0, 256, 2, 1, 64, RopeStyle::Neox,
                            false, true, 3},
                      // A sliding window across a chunk boundary.
                      Shape{"gemma3_window", GGMLType::F16, GGMLType::F16,
                            GGMLType::F16, 128, 2, 1, 64, RopeStyle::Neox,
                            false, true, 40, gpuattn::kAttendChunk + 20}),
    [](const ::testing::TestParamInfo<Shape> &info) {
      return std::string(info.param.name);
    });

} // namespace
