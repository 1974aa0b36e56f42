// Tests the emitted GPU kernels against their CPU twins (runtime/
// sparse_kernels.h) by normalised error, for every weight type and every
// sparsity mode the hot half runs in: on a real GPU, and in ctest's
// ".standin" runs through the libcuda stand-in with the emitted source
// built as host C++ (test/cuda_host). Skipped where the CUDA driver finds no
// GPU (and no stand-in) or pinferc was built without NVRTC.
#include "codegen/CudaAttention.h"
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"
#include "codegen/PackedWeights.h"
#include "runtime/cuda_driver.h"
#include "runtime/forward.h"
#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"
#include "runtime/program.h"
#include "runtime/sparse_kernels.h"

#include "host_kernels.h"
#include "test/unit/split_down_pack.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

using namespace pinfer;
using pinfer::testutil::gpuSkipReason;
using pinfer::testutil::randomRows;
using pinfer::testutil::useHostKernels;

namespace {

// n_embd a multiple of the K-quants' 256-element blocks.
constexpr int kEmbd = 256, kHot = 300;

// The down kernel's partial sums and its tile counters, zeroed.
bool allocDownScratch(CudaDriver &gpu, const CudaKernel &k,
                      CudaDriver::DevPtr &part, CudaDriver::DevPtr &done,
                      std::string &error) {
  const std::vector<uint32_t> zeros(k.downGrid, 0);
  return gpu.alloc(part,
                   sizeof(float) * k.downGrid * k.downBlock *
                       gpuattn::kDownCols,
                   error) &&
         gpu.alloc(done, 4 * k.downGrid, error) &&
         gpu.upload(done, zeros.data(), 4 * k.downGrid, error);
}

double normalisedError(const std::vector<float> &got,
                       const std::vector<float> &want) {
  return pinfer::testutil::normalisedError(got.data(), want.data(),
                                           want.size());
}

struct Case {
  GGMLType type;     // gate and up
  GGMLType downType; // transposed down
  FfnActivation act;
  SparsityMode mode;
  // Rows of n_embd elements.
  int embd = kEmbd;
  // Up rows of f16 beside block-type gate rows: the pair's input is f32,
  // which the gate rows then multiply (and the head is the up rows).
  bool upF16 = false;
};

using CudaKernels = testutil::GpuTestWithParam<Case>;

// Tests that the hot-half kernels give the CPU twin's activations and down
// projection within 1e-4 normalised error, and that a prompt's chunk gives
// each token the bits it gets alone.
TEST_P(CudaKernels, MatchCpuTwin) {
  const Case &c = GetParam();
  const int kEmbd = c.embd;
  ProgramDesc d;
  d.params.nEmbd = kEmbd;
  d.params.nFF = kHot;
  d.params.nLayer = 1;
  d.params.activation = c.act;
  d.mode = c.mode;
  d.smArch = "sm_" + std::to_string(gpu_.computeCapability());
  d.layers.resize(1);
  const GGMLType upType = c.upF16 ? GGMLType::F16 : c.type;
  d.layers[0].gateType = c.type;
  d.layers[0].upType = upType;
  d.layers[0].downTType = c.downType;
  for (uint32_t i = 0; i < kHot; ++i)
    d.layers[0].hot.push_back(i);
  // An output head of the gate's type and rows: a matvec of every type;
  // tied to the token embedding, whose rows are gathered (scaled, as
  // Gemma's, in dense mode).
  d.headOnGPU = true;
  d.headType = upType;
  d.params.nVocab = kHot;
  d.embedOnGPU = true;
  d.params.scaleEmbedding = c.mode == SparsityMode::Dense;

  Weight gate, up, downT;
  auto gateBytes = randomRows(c.type, kEmbd, kHot, 1, gate);
  auto upBytes = randomRows(upType, kEmbd, kHot, 2, up);
  auto downBytes = randomRows(c.downType, kEmbd, kHot, 3, downT);
  // Block types multiply the input's 8-bit values on both devices: the
  // twin takes them back as floats, the kernels their device layout.
  const bool q8 = hotInputQ8(c.type, upType);
  std::vector<float> x(kEmbd);
  for (int i = 0; i < kEmbd; ++i)
    x[i] = 0.1f * std::cos(0.7f * float(i));
  std::vector<float> xDev = x;
  if (q8)
    testutil::quantisedInput(x.data(), kEmbd, xDev.data(), x.data());
  std::vector<float> act(kHot);
  for (int n = 0; n < kHot; ++n) {
    float g = dotRow(gate.type, gate.row(n), x.data(), kEmbd);
    act[n] = ffnActivate(c.act, g);
  }
  // Threshold mode: the middle of the widest gap between neighbouring
  // |activations| around the median, so that rounding differences between
  // the devices cannot move a neuron across it.
  float threshold = 0.f;
  if (c.mode == SparsityMode::Threshold) {
    std::vector<float> mag(kHot);
    for (int n = 0; n < kHot; ++n)
      mag[n] = std::fabs(act[n]);
    std::sort(mag.begin(), mag.end());
    float gap = -1.f;
    for (int n = kHot / 4; n < 3 * kHot / 4; ++n)
      if (mag[n + 1] - mag[n] > gap) {
        gap = mag[n + 1] - mag[n];
        threshold = 0.5f * (mag[n] + mag[n + 1]);
      }
    d.layers[0].actThreshold = threshold;
  }
  CudaModule m = emitCuda(d);
  NvrtcOutput ptx;
  std::string error;
  ASSERT_TRUE(
      compileCuda(m.source, "test.cu", d.smArch, GpuImageKind::PTX, ptx, error))
      << error;
  const std::string name = ::testing::UnitTest::GetInstance()
                               ->current_test_info()
                               ->name();
  ASSERT_EQ(useHostKernels(m.source, "k" + std::to_string(std::hash<std::string>()(name))), "");
  ASSERT_TRUE(gpu_.loadModule(ptx.image.data(), error)) << error;
  gpu_.setKernelAliases(m.aliases);
  const CudaKernel &k = m.kernels[0];
  void *fnGateUp = gpu_.function(k.gateUp.c_str(), error);
  void *fnDown = gpu_.function(k.down.c_str(), error);
  ASSERT_TRUE(fnGateUp && fnDown) << error;

  // The CPU twin.
  std::vector<float> hWant(kHot), yWant(kEmbd, 0.f);
  for (int n = 0; n < kHot; ++n) {
    float a = act[n];
    if (c.mode == SparsityMode::Threshold && std::fabs(a) <= threshold) {
      hWant[n] = 0.f;
      continue;
    }
    float u = dotRow(up.type, up.row(n), x.data(), kEmbd);
    hWant[n] = a * ffnUpFactor(c.act, u);
  }
  sparseDownAxpy(downT, nullptr, 0, kHot, hWant.data(), yWant.data(), 0, kEmbd);

  CudaDriver::DevPtr dGate, dUp, dDown, dX, dH, dY, dPart, dDone;
  ASSERT_TRUE(gpu_.alloc(dGate, gateBytes.size(), error) &&
              gpu_.upload(dGate, gateBytes.data(), gateBytes.size(), error) &&
              gpu_.alloc(dUp, upBytes.size(), error) &&
              gpu_.upload(dUp, upBytes.data(), upBytes.size(), error) &&
              gpu_.alloc(dDown, downBytes.size(), error) &&
              gpu_.upload(dDown, downBytes.data(), downBytes.size(), error) &&
              gpu_.alloc(dX, sizeof(float) * kEmbd, error))
      << error;
  ASSERT_TRUE(gpu_.upload(dX, xDev.data(), sizeof(float) * kEmbd, error) &&
              gpu_.alloc(dH, sizeof(float) * kHot, error) &&
              gpu_.alloc(dY, sizeof(float) * kEmbd, error) &&
              allocDownScratch(gpu_, k, dPart, dDone, error))
      << error;
  int one = 1;
  void *gateUpArgs[] = {&dGate, &dUp, &dX, &dH, &one};
  void *downArgs[] = {&dDown, &dH, &dY, &dPart, &dDone, &one};
  ASSERT_TRUE(
      gpu_.launch(fnGateUp, k.gateUpGrid, k.gateUpBlock, gateUpArgs, error) &&
      gpu_.launch(fnDown, k.downGrid, k.downBlock, downArgs, error) &&
      gpu_.synchronize(error))
      << error;
  std::vector<float> hGot(kHot), yGot(kEmbd);
  ASSERT_TRUE(gpu_.download(hGot.data(), dH, sizeof(float) * kHot, error) &&
              gpu_.download(yGot.data(), dY, sizeof(float) * kEmbd, error))
      << error;
  EXPECT_LT(normalisedError(hGot, hWant), 1e-4);
  EXPECT_LT(normalisedError(yGot, yWant), 1e-4);
  // Launched again (its tile counters reset by the first launch), the
  // down kernel gives the same bits: the chunks are added in one order.
  std::vector<float> yAgain(kEmbd);
  ASSERT_TRUE(
      gpu_.launch(fnDown, k.downGrid, k.downBlock, downArgs, error) &&
      gpu_.download(yAgain.data(), dY, sizeof(float) * kEmbd, error))
      << error;
  EXPECT_EQ(yAgain, yGot);
  // The same neurons fire: a zero activation is exactly zero on both.
  int mismatched = 0;
  for (int n = 0; n < kHot; ++n)
    mismatched += (hGot[n] == 0.f) != (hWant[n] == 0.f);
  EXPECT_LE(mismatched, 1);

  // A prompt's chunk (a group of kTokenGroup tokens, then two alone)
  // gives each token the bits it gets alone from gate/up, down and the
  // head's matvec (the gate rows).
  constexpr int kChunk = gpuattn::kTokenGroup + 2;
  void *fnHead = gpu_.function(gpuattn::kHeadKernel, error);
  ASSERT_TRUE(fnHead) << error;
  std::vector<float> xs(size_t(kChunk) * kEmbd);
  for (int t = 0; t < kChunk; ++t) {
    std::vector<float> v(kEmbd);
    for (int i = 0; i < kEmbd; ++i)
      v[i] = 0.1f * std::cos(0.7f * float(i) + 0.9f * float(t));
    std::copy(v.begin(), v.end(), xs.begin() + size_t(t) * kEmbd);
    if (q8)
      testutil::quantisedInput(v.data(), kEmbd, xs.data() + size_t(t) * kEmbd,
                               v.data());
  }
  const size_t f = sizeof(float);
  CudaDriver::DevPtr dXs, dHs, dYs, dLs, dL, dPs, noBias = 0;
  ASSERT_TRUE(
      gpu_.alloc(dXs, f * xs.size(), error) &&
      gpu_.upload(dXs, xs.data(), f * xs.size(), error) &&
      gpu_.alloc(dHs, f * kChunk * kHot, error) &&
      gpu_.alloc(dYs, f * kChunk * kEmbd, error) &&
      gpu_.alloc(dLs, f * kChunk * kHot, error) &&
      gpu_.alloc(dL, f * kHot, error) &&
      gpu_.alloc(dPs,
                 f * kChunk * k.downGrid * k.downBlock * gpuattn::kDownCols,
                 error))
      << error;
  int chunk = kChunk;
  void *chunkGateUp[] = {&dGate, &dUp, &dXs, &dHs, &chunk};
  void *chunkDown[] = {&dDown, &dHs, &dYs, &dPs, &dDone, &chunk};
  // The head's (and the embedding's) rows: the up rows, of the head's type.
  CudaDriver::DevPtr &dHead = c.upF16 ? dUp : dGate;
  void *chunkHead[] = {&dHead, &noBias, &dXs, &dLs, &chunk};
  void *oneHead[] = {&dHead, &noBias, &dX, &dL, &one};
  const unsigned headGrid = gpuattn::matvecGrid(kHot);
  ASSERT_TRUE(
      gpu_.launch(fnGateUp, k.gateUpGrid, k.gateUpBlock, chunkGateUp, error) &&
      gpu_.launch(fnDown, k.downGrid, k.downBlock, chunkDown, error) &&
      gpu_.launch(fnHead, headGrid, gpuattn::kMatvecBlock, chunkHead, error))
      << error;
  std::vector<float> hs(size_t(kChunk) * kHot), ys(size_t(kChunk) * kEmbd),
      ls(size_t(kChunk) * kHot), lOne(kHot);
  ASSERT_TRUE(gpu_.download(hs.data(), dHs, f * hs.size(), error) &&
              gpu_.download(ys.data(), dYs, f * ys.size(), error) &&
              gpu_.download(ls.data(), dLs, f * ls.size(), error))
      << error;
  for (int t = 0; t < kChunk; ++t) {
    SCOPED_TRACE("token " + std::to_string(t));
    ASSERT_TRUE(
        gpu_.upload(dX, xs.data() + size_t(t) * kEmbd, f * kEmbd, error) &&
        gpu_.launch(fnGateUp, k.gateUpGrid, k.gateUpBlock, gateUpArgs, error) &&
        gpu_.launch(fnDown, k.downGrid, k.downBlock, downArgs, error) &&
        gpu_.launch(fnHead, headGrid, gpuattn::kMatvecBlock, oneHead, error) &&
        gpu_.download(hGot.data(), dH, f * kHot, error) &&
        gpu_.download(yGot.data(), dY, f * kEmbd, error) &&
        gpu_.download(lOne.data(), dL, f * kHot, error))
        << error;
    EXPECT_EQ(std::memcmp(hGot.data(), hs.data() + size_t(t) * kHot, f * kHot),
              0);
    EXPECT_EQ(
        std::memcmp(yGot.data(), ys.data() + size_t(t) * kEmbd, f * kEmbd), 0);
    EXPECT_EQ(std::memcmp(lOne.data(), ls.data() + size_t(t) * kHot, f * kHot),
              0);
  }

  // The pair's tensor-core form (block-type rows of 8-bit input, or f16
  // or bf16 rows of a multiple of 16 values, on sm_80 and newer), which the
  // executor launches for two tokens or more: the rows' sums within
  // rounding, the same neurons firing but where a gate sum is a rounding
  // from zero, and a token's bits the same in any chunk.
  std::string absent;
  void *fnTiles =
      gpu_.function((k.gateUp + gpuattn::kTilesSuffix).c_str(), absent);
  const bool halfPair = (c.type == GGMLType::F16 || c.type == GGMLType::BF16) &&
                        upType == c.type && kEmbd % 16 == 0;
  EXPECT_EQ(fnTiles != nullptr,
            smHasIntMma(d.smArch) && ((q8 && gpuattn::hasTiles(c.type) &&
                                       gpuattn::hasTiles(upType)) ||
                                      halfPair));
  if (fnTiles) {
    constexpr int kLast = 3;
    CudaDriver::DevPtr dHt, dHtLast,
        dXsLast = dXs + f * size_t(kChunk - kLast) * kEmbd;
    int last = kLast;
    void *tileArgs[] = {&dGate, &dUp, &dXs, &dHt, &chunk};
    void *lastArgs[] = {&dGate, &dUp, &dXsLast, &dHtLast, &last};
    std::vector<float> ht(hs.size()), htLast(size_t(kLast) * kHot);
    ASSERT_TRUE(gpu_.alloc(dHt, f * ht.size(), error) &&
                gpu_.alloc(dHtLast, f * htLast.size(), error) &&
                gpu_.launch(fnTiles, gpuattn::tileGrid(kHot),
                            gpuattn::kTileBlock, tileArgs, error) &&
                gpu_.launch(fnTiles, gpuattn::tileGrid(kHot),
                            gpuattn::kTileBlock, lastArgs, error) &&
                gpu_.download(ht.data(), dHt, f * ht.size(), error) &&
                gpu_.download(htLast.data(), dHtLast, f * htLast.size(), error))
        << error;
    EXPECT_LT(normalisedError(ht, hs), 1e-5);
    int flipped = 0;
    for (size_t i = 0; i < hs.size(); ++i)
      flipped += (ht[i] == 0.f) != (hs[i] == 0.f);
    EXPECT_LE(flipped, kChunk);
    EXPECT_EQ(std::memcmp(htLast.data(),
                          ht.data() + size_t(kChunk - kLast) * kHot,
                          f * htLast.size()),
              0);
  }

  // The embedding gather: three tokens' rows of the head's matrix, decoded
  // as the CPU decodes them (and scaled as it scales them).
  void *fnEmbed = gpu_.function(gpuattn::kEmbedGather, error);
  ASSERT_TRUE(fnEmbed) << error;
  const int32_t ids[] = {kHot - 1, 0, 7};
  constexpr int kIds = 3;
  std::vector<float> embWant(size_t(kIds) * kEmbd), embGot(embWant.size());
  for (int t = 0; t < kIds; ++t)
    rowToF32(upType, (c.upF16 ? up : gate).row(ids[t]),
             embWant.data() + size_t(t) * kEmbd, kEmbd);
  scaleEmbeddings(d.params, embWant.data(), kIds);
  CudaDriver::DevPtr dIds;
  void *embedArgs[] = {&dHead, &dIds, &dXs};
  ASSERT_TRUE(
      gpu_.alloc(dIds, sizeof ids, error) &&
      gpu_.upload(dIds, ids, sizeof ids, error) &&
      gpu_.launch(fnEmbed, kIds, gpuattn::kEmbedBlock, embedArgs, error) &&
      gpu_.download(embGot.data(), dXs, f * embGot.size(), error))
      << error;
  EXPECT_LT(normalisedError(embGot, embWant), 1e-6);
}

// Every computable type as gate/up and as the transposed down rows, in
// every sparsity mode, the activations taking turns; and the mixes the
// packer makes (Q8_0/Q4_0 gate/up with f32 down rows).
std::vector<Case> allCases() {
  const FfnActivation acts[] = {FfnActivation::ReLU, FfnActivation::SiLU,
                                FfnActivation::DReLU, FfnActivation::GeluTanh};
  const SparsityMode modes[] = {SparsityMode::Exact, SparsityMode::Dense,
                                SparsityMode::Threshold};
  std::vector<Case> cases;
  int turn = 0;
  for (uint32_t t = 0; t < 64; ++t) {
    const TypeTraits *row = typeTraits(t);
    if (!row || !row->computable)
      continue;
    for (SparsityMode mode : modes)
      cases.push_back(
          Case{GGMLType(t), GGMLType(t), acts[turn++ % 4], mode});
  }
  cases.push_back(Case{GGMLType::Q4_0, GGMLType::F32, FfnActivation::SiLU,
                       SparsityMode::Exact});
  cases.push_back(Case{GGMLType::Q8_0, GGMLType::F32, FfnActivation::SiLU,
                       SparsityMode::Threshold});
  // Rows whose blocks do not fill the kernels' last step (11 blocks of 32:
  // eight lanes per Q8_0 block, four per Q4_0-like block, eight values per
  // f16 lane).
  for (GGMLType t :
       {GGMLType::F32, GGMLType::F16, GGMLType::BF16, GGMLType::Q8_0,
        GGMLType::Q4_0, GGMLType::Q4_1, GGMLType::Q5_0, GGMLType::Q5_1})
    cases.push_back(Case{t, GGMLType::F32, FfnActivation::GeluTanh,
                         SparsityMode::Dense, 352});
  // Block-type gate rows beside f16 up rows: f32 input for both.
  for (GGMLType t : {GGMLType::Q4_0, GGMLType::Q4_K})
    cases.push_back(Case{t, GGMLType::F32, FfnActivation::ReLU,
                         SparsityMode::Exact, t == GGMLType::Q4_K ? 512 : kEmbd,
                         true});
  // Rows of an odd length: element-wise loads, one output per down thread.
  cases.push_back(Case{GGMLType::F16, GGMLType::F16, FfnActivation::ReLU,
                       SparsityMode::Exact, 90});
  cases.push_back(Case{GGMLType::F32, GGMLType::BF16, FfnActivation::SiLU,
                       SparsityMode::Dense, 90});
  // K-quants over two super-blocks (Q2_K/Q3_K/Q6_K: their two groups of
  // lanes).
  for (GGMLType t : {GGMLType::Q2_K, GGMLType::Q3_K, GGMLType::Q4_K,
                     GGMLType::Q5_K, GGMLType::Q6_K})
    cases.push_back(
        Case{t, GGMLType::F32, FfnActivation::SiLU, SparsityMode::Dense, 512});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Kernels, CudaKernels, ::testing::ValuesIn(allCases()),
                         // Readable names, e.g. q4_0_f32_silu_exact.
                         [](const ::testing::TestParamInfo<Case> &info) {
                           std::string name =
                               std::string(typeName(info.param.type)) + "_" +
                               typeName(info.param.downType) + "_" +
                               activationName(info.param.act) + "_" +
                               sparsityModeName(info.param.mode);
                           if (info.param.embd != kEmbd)
                             name += "_" + std::to_string(info.param.embd);
                           if (info.param.upF16)
                             name += "_up_f16";
                           return name;
                         });

// A down type, an n_embd (one no multiple of 4 takes the kernel's
// column-by-column loads) and whether the hot neurons come in id order, as
// LowerToProgram lists them (or shuffled: each group's neurons apart).
struct SplitCase {
  GGMLType type;
  int embd;
  bool idOrder = true;
  // Dense mode: every hot neuron listed, its activation zero or not (a
  // split layer's GPU half in a dense program).
  bool dense = false;
};
using CudaSplitDown = testutil::GpuTestWithParam<SplitCase>;

// Tests the hot down kernel of the split layouts (block-type sources: each
// neuron's quants, the block scales (SplitK: its tables) apart, looked up
// through the hot neurons' original ids) against the CPU half's
// splitDownAxpy over the same packed data, with a third of the activations
// exactly zero; and, in id order, a prompt's chunk against each token
// alone. Shuffled, a group's neurons make many runs, each scaled apart.
TEST_P(CudaSplitDown, MatchesCpuTwin) {
  const auto [type, kEmbd, idOrder, dense] = GetParam();
  constexpr int kFF = 512; // two K-quant blocks
  ProgramDesc d;
  d.params.nEmbd = kEmbd;
  d.params.nFF = kFF;
  d.params.nLayer = 1;
  d.params.activation = FfnActivation::ReLU;
  d.mode = dense ? SparsityMode::Dense : SparsityMode::Exact;
  d.smArch = "sm_" + std::to_string(gpu_.computeCapability());
  d.layers.resize(1);
  d.layers[0].gateType = d.layers[0].upType = GGMLType::F32;
  d.layers[0].downType = type;
  d.layers[0].downTType = transposedDownType(type);
  // Six of every seven neurons hot: a block's chunk of the list spans
  // groups, parts of them.
  std::vector<uint32_t> ids;
  for (uint32_t n = 0; n < kFF; ++n)
    if (n % 7 != 3)
      ids.push_back(n);
  const int kHot = int(ids.size());
  if (!idOrder)
    std::shuffle(ids.begin(), ids.end(), std::mt19937(5));
  d.layers[0].hot = ids;

  // The source down {n_ff, n_embd}: kEmbd rows of kFF elements.
  Weight down;
  auto downBytes = randomRows(type, kFF, kEmbd, 9, down);
  // Packed as a program packs them: the hot rows first, then the rest.
  std::vector<uint32_t> order = ids;
  for (uint32_t n = 0; n < kFF; ++n)
    if (n % 7 == 3)
      order.push_back(n);
  const testutil::PackedSplitDown packed(down, order);
  const std::vector<uint8_t> &rows = packed.rows, &scales = packed.tables;
  std::vector<float> h(kHot);
  for (int k = 0; k < kHot; ++k)
    h[k] = k % 3 ? 0.05f * std::sin(0.3f * float(k)) : 0.f;

  // CPU twin: the packed rows grouped by source block, as the executor does.
  const testutil::FiredGroups fired(ids, h.data(), packed.group);
  std::vector<float> yWant(kEmbd, 0.f);
  splitDownAxpy(packed.split, fired.groups(), yWant.data(), 0, kEmbd);

  CudaModule m = emitCuda(d);
  NvrtcOutput ptx;
  std::string error;
  ASSERT_TRUE(
      compileCuda(m.source, "test.cu", d.smArch, GpuImageKind::PTX, ptx, error))
      << error;
  ASSERT_EQ(useHostKernels(m.source, std::string("split_") + typeName(type) +
                                         "_" + std::to_string(kEmbd) +
                                         (idOrder ? "" : "_shuffled") +
                                         (dense ? "_dense" : "")),
            "");
  ASSERT_TRUE(gpu_.loadModule(ptx.image.data(), error)) << error;
  gpu_.setKernelAliases(m.aliases);
  const CudaKernel &k = m.kernels[0];
  void *fnDown = gpu_.function(k.down.c_str(), error);
  ASSERT_TRUE(fnDown) << error;
  CudaDriver::DevPtr dRows, dScales, dIds, dH, dY, dPart, dDone;
  ASSERT_TRUE(gpu_.alloc(dRows, rows.size(), error) &&
              gpu_.upload(dRows, rows.data(), rows.size(), error) &&
              gpu_.alloc(dScales, scales.size(), error) &&
              gpu_.upload(dScales, scales.data(), scales.size(), error) &&
              gpu_.alloc(dIds, ids.size() * 4, error) &&
              gpu_.upload(dIds, ids.data(), ids.size() * 4, error) &&
              gpu_.alloc(dH, sizeof(float) * kHot, error) &&
              gpu_.upload(dH, h.data(), sizeof(float) * kHot, error) &&
              gpu_.alloc(dY, sizeof(float) * kEmbd, error) &&
              allocDownScratch(gpu_, k, dPart, dDone, error))
      << error;
  int one = 1;
  void *args[] = {&dRows, &dScales, &dIds, &dH, &dY, &dPart, &dDone, &one};
  ASSERT_TRUE(gpu_.launch(fnDown, k.downGrid, k.downBlock, args, error) &&
              gpu_.synchronize(error))
      << error;
  std::vector<float> yGot(kEmbd);
  ASSERT_TRUE(gpu_.download(yGot.data(), dY, sizeof(float) * kEmbd, error))
      << error;
  EXPECT_LT(normalisedError(yGot, yWant), 1e-5);
  // Shuffled, a token alone may join in one run neurons of a group that
  // a chunk's other tokens part: other sums, not the same bits.
  if (!idOrder)
    return;

  // A prompt's chunk (a group of kTokenGroup tokens, then two alone), each
  // token's zeros elsewhere: each token's outputs are the bits it gets
  // alone.
  constexpr int kChunk = gpuattn::kTokenGroup + 2;
  std::vector<float> hs(size_t(kChunk) * kHot);
  for (int t = 0; t < kChunk; ++t)
    for (int k = 0; k < kHot; ++k)
      hs[size_t(t) * kHot + k] =
          (k + t) % 3 ? 0.05f * std::sin(0.3f * float(k) + float(t)) : 0.f;
  const size_t f = sizeof(float);
  CudaDriver::DevPtr dHs, dYs, dPs;
  ASSERT_TRUE(
      gpu_.alloc(dHs, f * hs.size(), error) &&
      gpu_.upload(dHs, hs.data(), f * hs.size(), error) &&
      gpu_.alloc(dYs, f * kChunk * kEmbd, error) &&
      gpu_.alloc(dPs,
                 f * kChunk * k.downGrid * k.downBlock * gpuattn::kDownCols,
                 error))
      << error;
  int chunk = kChunk;
  void *chunkArgs[] = {&dRows, &dScales, &dIds,  &dHs,
                       &dYs,   &dPs,     &dDone, &chunk};
  std::vector<float> ys(size_t(kChunk) * kEmbd);
  ASSERT_TRUE(gpu_.launch(fnDown, k.downGrid, k.downBlock, chunkArgs, error) &&
              gpu_.download(ys.data(), dYs, f * ys.size(), error))
      << error;
  for (int t = 0; t < kChunk; ++t) {
    SCOPED_TRACE("token " + std::to_string(t));
    ASSERT_TRUE(
        gpu_.upload(dH, hs.data() + size_t(t) * kHot, f * kHot, error) &&
        gpu_.launch(fnDown, k.downGrid, k.downBlock, args, error) &&
        gpu_.download(yGot.data(), dY, f * kEmbd, error))
        << error;
    EXPECT_EQ(
        std::memcmp(yGot.data(), ys.data() + size_t(t) * kEmbd, f * kEmbd), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, CudaSplitDown,
    ::testing::Values(
        SplitCase{GGMLType::Q8_0, 256}, SplitCase{GGMLType::Q4_0, 256},
        SplitCase{GGMLType::Q4_1, 256}, SplitCase{GGMLType::Q5_0, 256},
        SplitCase{GGMLType::Q5_1, 256}, SplitCase{GGMLType::Q2_K, 256},
        SplitCase{GGMLType::Q3_K, 256}, SplitCase{GGMLType::Q4_K, 256},
        SplitCase{GGMLType::Q5_K, 256}, SplitCase{GGMLType::Q6_K, 256},
        SplitCase{GGMLType::Q4_K, 250}, SplitCase{GGMLType::Q4_0, 256, false},
        SplitCase{GGMLType::Q4_K, 256, false},
        SplitCase{GGMLType::Q6_K, 250, false},
        SplitCase{GGMLType::Q4_0, 256, true, true},
        SplitCase{GGMLType::Q4_K, 256, true, true}),
    [](const ::testing::TestParamInfo<SplitCase> &info) {
      return std::string(typeName(info.param.type)) + "_" +
             std::to_string(info.param.embd) +
             (info.param.idOrder ? "" : "_shuffled") +
             (info.param.dense ? "_dense" : "");
    });

// Tests that without a driver or device the driver says why instead of
// failing later (always runs).
TEST(CudaDriverProbe, OpenReportsReason) {
  CudaDriver gpu;
  std::string why;
  if (!gpu.open(why))
    EXPECT_FALSE(why.empty());
  else
    EXPECT_GT(gpu.computeCapability(), 0);
}

} // namespace

namespace {

// A kernel for the graph test: x[i] += v for i < n.
const char *kAddSource =
    "extern \"C\" __global__ void __launch_bounds__(32) add_to(float *x, "
    "float v, int n) {\n"
    "  const int i = threadIdx.x;\n"
    "  if (i < n) x[i] += v;\n"
    "}\n";

// Tests CudaDriver's graphs: the same held work replays the slot's graph
// (one capture, many launches), work whose arguments changed is captured
// again and does what it now says, held copies read and write the host
// buffers when the graph runs, and a wait between beginGraph and endGraph
// is refused.
TEST(CudaGraphs, ReplayTheSameWorkAndRecaptureChangedWork) {
  CudaDriver gpu;
  const std::string why = gpuSkipReason(gpu);
  if (!why.empty())
    GTEST_SKIP() << why;
  if (!gpu.graphsUsable())
    GTEST_SKIP() << "this CUDA driver has no graphs with parameter info";
  const std::string arch = "sm_" + std::to_string(gpu.computeCapability());
  NvrtcOutput ptx;
  std::string error;
  ASSERT_TRUE(
      compileCuda(kAddSource, "add.cu", arch, GpuImageKind::PTX, ptx, error))
      << error;
  ASSERT_EQ(useHostKernels(kAddSource, "graph_add"), "");
  ASSERT_TRUE(gpu.loadModule(ptx.image.data(), error)) << error;
  void *fn = gpu.function("add_to", error);
  ASSERT_TRUE(fn) << error;
  CudaDriver::DevPtr a = 0, b = 0;
  const std::vector<float> zeros(4, 0.f);
  ASSERT_TRUE(gpu.alloc(a, 16, error) &&
              gpu.upload(a, zeros.data(), 16, error) &&
              gpu.alloc(b, 16, error) && gpu.upload(b, zeros.data(), 16, error))
      << error;
  auto add = [&](CudaDriver::DevPtr x, float v, int n) {
    gpu.beginGraph(0);
    void *args[] = {&x, &v, &n};
    return gpu.launch(fn, 1, 32, args, error, "add_to") &&
           gpu.endGraph(error) && gpu.synchronize(error);
  };
  auto read = [&](CudaDriver::DevPtr x) {
    std::vector<float> v(4);
    EXPECT_TRUE(gpu.download(v.data(), x, 16, error)) << error;
    return v;
  };
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(add(a, 1.f, 4)) << error;
  EXPECT_EQ(read(a), std::vector<float>(4, 3.f));
  EXPECT_EQ(gpu.graphCaptures(), 1);
  EXPECT_EQ(gpu.graphLaunches(), 3);
  // Another pointer, value, count: each captured again, each as asked.
  ASSERT_TRUE(add(b, 1.f, 4)) << error;
  ASSERT_TRUE(add(b, 2.f, 4)) << error;
  ASSERT_TRUE(add(b, 4.f, 2)) << error;
  EXPECT_EQ(read(b), (std::vector<float>{7.f, 7.f, 3.f, 3.f}));
  EXPECT_EQ(gpu.graphCaptures(), 4);
  ASSERT_TRUE(add(b, 4.f, 2)) << error;
  EXPECT_EQ(gpu.graphCaptures(), 4);

  // Held copies: the graph reads the page-locked input when it runs.
  void *hin = nullptr, *hout = nullptr;
  ASSERT_TRUE(gpu.allocHost(hin, 16, error) && gpu.allocHost(hout, 16, error))
      << error;
  void *done = nullptr;
  ASSERT_TRUE(gpu.createEvent(done, error)) << error;
  for (float start : {5.f, 7.f}) {
    std::fill_n(static_cast<float *>(hin), 4, start);
    gpu.beginGraph(1);
    float v = 1.f;
    int n = 4;
    void *args[] = {&a, &v, &n};
    ASSERT_TRUE(gpu.uploadAsync(a, hin, 16, error) &&
                gpu.launch(fn, 1, 32, args, error, "add_to") &&
                gpu.downloadAsync(hout, a, 16, error) && gpu.endGraph(error) &&
                gpu.record(done, error) && gpu.wait(done, error))
        << error;
    EXPECT_EQ(static_cast<float *>(hout)[3], start + 1.f);
  }
  EXPECT_EQ(gpu.graphCaptures(), 5);

  // No waiting for held work.
  gpu.beginGraph(0);
  EXPECT_FALSE(gpu.synchronize(error));
  EXPECT_NE(error.find("between beginGraph and endGraph"), std::string::npos)
      << error;
  gpu.cancelGraph();
  EXPECT_TRUE(gpu.synchronize(error)) << error;
}

} // namespace
