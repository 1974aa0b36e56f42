// Tests the emitted head selection kernels (runtime/gpu_attention.h,
// head_hist, head_cut, head_pick) against the order the sampler sorts by
// (logit, then lowest id): the candidates hold every one of the k best,
// each at most once with its logit, and exactly the logits of the cut's
// bin and above; the extra ids' logits come back; a NaN or infinite logit
// is found; the histogram is zero again for the next launch. On a real
// GPU, and in ctest's ".standin" runs through the libcuda stand-in.
#include "codegen/CudaAttention.h"
#include "codegen/Nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/gpu_attention.h"

#include "host_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <vector>

using namespace pinfer;
using namespace pinfer::gpuattn;

namespace {

struct SelCase {
  const char *name;
  int k;
  int distinct; // distinct logit values (0: normal draws)
  bool nonFinite;
};

using CudaHeadSelect = testutil::GpuTestWithParam<SelCase>;

int binOf(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return int(((u & 0x80000000u) ? ~u : (u | 0x80000000u)) >> 20);
}

TEST_P(CudaHeadSelect, CandidatesHoldTheBest) {
  const SelCase &c = GetParam();
  constexpr int kVocab = 5003; // not a multiple of any block
  std::ostringstream os;
  emitHeadSelect(os, kVocab);
  const std::string source = os.str();
  NvrtcOutput ptx;
  std::string error;
  const std::string sm = "sm_" + std::to_string(gpu_.computeCapability());
  ASSERT_TRUE(
      compileCuda(source, "select.cu", sm, GpuImageKind::PTX, ptx, error))
      << error;
  ASSERT_EQ(testutil::useHostKernels(source, std::string("sel_") + c.name), "");
  ASSERT_TRUE(gpu_.loadModule(ptx.image.data(), error)) << error;
  void *fnHist = gpu_.function(kHeadHist, error),
       *fnCut = gpu_.function(kHeadCut, error),
       *fnPick = gpu_.function(kHeadPick, error);
  ASSERT_TRUE(fnHist && fnCut && fnPick) << error;

  CudaDriver::DevPtr dLogits, dSel;
  std::vector<unsigned char> zero(sizeof(HeadSel), 0);
  ASSERT_TRUE(gpu_.alloc(dLogits, sizeof(float) * kVocab, error) &&
              gpu_.alloc(dSel, sizeof(HeadSel), error) &&
              gpu_.upload(dSel, zero.data(), zero.size(), error))
      << error;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 3.f);
  // Two launches on the same record: the second finds the histogram zero.
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    std::vector<float> logits(kVocab);
    for (float &l : logits)
      l = c.distinct ? float(int(rng() % unsigned(c.distinct))) * 0.25f - 1.f
                     : normal(rng);
    int firstBad = -1;
    if (c.nonFinite) {
      logits[4000] = std::numeric_limits<float>::infinity();
      logits[1234 + round] = std::numeric_limits<float>::quiet_NaN();
      firstBad = 1234 + round;
    }
    HeadSel req{};
    req.k = c.k;
    req.bad = INT32_MAX;
    const int extra[] = {0, 17, 4999, 5002, 17};
    req.nExtra = int(std::size(extra));
    std::copy(std::begin(extra), std::end(extra), req.extraIds);
    ASSERT_TRUE(
        gpu_.upload(dLogits, logits.data(), sizeof(float) * kVocab, error) &&
        gpu_.upload(dSel, &req, kSelRequestBytes, error))
        << error;
    void *a2[] = {&dLogits, &dSel};
    void *a1[] = {&dSel};
    ASSERT_TRUE(gpu_.launch(fnHist, selGrid(kVocab), kSelBlock, a2, error) &&
                gpu_.launch(fnCut, 1, kSelCutBlock, a1, error) &&
                gpu_.launch(fnPick, selGrid(kVocab), kSelBlock, a2, error))
        << error;
    std::vector<unsigned char> back(sizeof(HeadSel));
    ASSERT_TRUE(gpu_.download(back.data(), dSel, back.size(), error)) << error;
    HeadSel got;
    std::memcpy(&got, back.data(), sizeof got);

    EXPECT_EQ(got.bad, c.nonFinite ? firstBad : INT32_MAX);
    for (int j = 0; j < req.nExtra; ++j)
      EXPECT_EQ(std::memcmp(&got.extraLogits[j], &logits[extra[j]], 4), 0)
          << "extra " << j;
    // Exactly the logits of the cut's bin and above, once each.
    std::set<int32_t> want, have;
    for (int i = 0; i < kVocab; ++i)
      if (binOf(logits[i]) >= got.cut)
        want.insert(i);
    ASSERT_EQ(got.count, want.size());
    ASSERT_LE(got.count, uint32_t(kSelCap));
    for (uint32_t s = 0; s < got.count; ++s) {
      const HeadSelCand &cand = got.cand[s];
      ASSERT_TRUE(cand.id >= 0 && cand.id < kVocab) << cand.id;
      EXPECT_TRUE(have.insert(cand.id).second) << "twice: " << cand.id;
      EXPECT_EQ(std::memcmp(&cand.logit, &logits[cand.id], 4), 0);
    }
    EXPECT_EQ(have, want);
    // The k best by the sampler's order (NaN aside) are among them, and the
    // cut is the highest that keeps them.
    std::vector<int32_t> order(kVocab);
    std::iota(order.begin(), order.end(), 0);
    auto key = [&](int32_t i) {
      return std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity()
                                   : logits[i];
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return key(a) > key(b); });
    for (int i = 0; i < c.k; ++i)
      EXPECT_TRUE(have.count(order[i]) || std::isnan(logits[order[i]]))
          << "best " << i << " id " << order[i];
    size_t above = 0;
    for (int i = 0; i < kVocab; ++i)
      above += binOf(logits[i]) > got.cut;
    EXPECT_LT(above, size_t(c.k));
    for (int b = 0; b < kSelBins; ++b)
      ASSERT_EQ(got.hist[b], 0u) << "bin " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaHeadSelect,
                         ::testing::Values(SelCase{"greedy", 1, 0, false},
                                           SelCase{"topk", 40, 0, false},
                                           SelCase{"many", 600, 0, false},
                                           SelCase{"ties", 40, 9, false},
                                           SelCase{"allEqual", 5, 1, false},
                                           SelCase{"nonFinite", 40, 0, true}),
                         [](const ::testing::TestParamInfo<SelCase> &i) {
                           return i.param.name;
                         });

} // namespace
