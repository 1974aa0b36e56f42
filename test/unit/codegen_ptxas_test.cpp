// Resource checks of the emitted kernels by the toolkit's ptxas, for the
// architectures of the targets (sm_80, sm_86, sm_89, sm_90): every kernel
// kind for every computable weight type, split down layouts included, in
// every sparsity mode (predicted: with each layer's predictor on the GPU).
// Limits (what a kernel may use):
//   - no spills and no stack frame: a spill is a local-memory round trip
//     per use, on kernels that are bound by memory bandwidth already;
//   - at most 64 registers per thread: at the kernels' block sizes (256
//     and 128 threads) that keeps at least half of an SM's warp slots
//     resident (65,536 registers / (64 x 32) = 32 warps of 48 or 64), the
//     occupancy these latency-bound loops need to hide their loads.
// Skipped without NVRTC or ptxas.
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"
#include "runtime/ggml_types.h"
#include "runtime/kernels.h"
#include "runtime/vram_bill.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <unistd.h>

using namespace pinfer;

namespace {

constexpr int kMaxRegisters = 64;

struct Resources {
  int registers = -1, stack = -1, spillStores = -1, spillLoads = -1;
};

// ptxas -v's report, per kernel.
std::map<std::string, Resources> parsePtxas(const std::string &log) {
  std::map<std::string, Resources> out;
  std::regex props(R"(Function properties for (\w+))");
  std::regex frame(
      R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)");
  std::regex used(R"(Compiling entry function '(\w+)'|Used (\d+) registers)");
  std::istringstream in(log);
  std::string line, current, compiling;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, props))
      current = m[1];
    else if (std::regex_search(line, m, frame) && !current.empty()) {
      out[current].stack = std::stoi(m[1]);
      out[current].spillStores = std::stoi(m[2]);
      out[current].spillLoads = std::stoi(m[3]);
    } else if (std::regex_search(line, m, used)) {
      if (m[1].matched)
        compiling = m[1];
      else if (!compiling.empty())
        out[compiling].registers = std::stoi(m[2]);
    }
  }
  return out;
}

// A program with one layer per computable type (gate, up and down of that
// type; Q8_0/Q4_0 also in their split down layouts, SplitK types in dense
// mode as the source's rows), each layer's
// attention on the GPU in that type too (biases, Q/K norms and a sliding
// window taking turns), the output head, the embedding gather and the
// residual stream's kernels in dense mode.
ProgramDesc everyType(SparsityMode mode, FfnActivation act) {
  ProgramDesc d;
  d.params.nEmbd = 512;
  d.params.nFF = 1024;
  d.params.activation = act;
  d.params.nHead = 8;
  d.params.nKvHead = 2;
  d.params.headDim = 64;
  d.params.nRot = 64;
  d.params.nVocab = 1000;
  d.mode = mode;
  d.headOnGPU = mode == SparsityMode::Dense;
  d.headType = GGMLType::Q6_K;
  d.embedOnGPU = d.headOnGPU; // tied: the head's rows are the embeddings
  for (uint32_t t = 0; t < 64; ++t) {
    const TypeTraits *row = typeTraits(t);
    if (!row || !row->computable)
      continue;
    LayerDesc l;
    l.gateType = l.upType = l.downType = GGMLType(t);
    l.downTType = transposedDownType(GGMLType(t));
    l.actThreshold = 0.01f;
    const int turn = int(d.layers.size());
    // Attention does not depend on the mode: once per architecture.
    l.attentionOnGPU = mode == SparsityMode::Dense;
    l.attention = AttentionDesc{GGMLType(t), GGMLType(t), GGMLType(t),
                                GGMLType(t),  turn % 3 == 0, turn % 3 == 1,
                                turn % 3 == 2 ? 4 : 0};
    // Dense layers wholly on the GPU keep SplitK types' source down rows
    // (a matvec, and its tiles), every neuron hot in source order.
    l.sourceDown =
        mode == SparsityMode::Dense && denseGpuKeepsSourceDown(GGMLType(t));
    for (uint32_t i = 0; i < (l.sourceDown ? 1024u : 300u); ++i)
      l.hot.push_back(l.sourceDown ? i : i * 3);
    if (mode == SparsityMode::Predicted) {
      // The predictor's types taking turns (fc1 8-bit beside 8-bit gate
      // and up inputs, as the packed weights store it).
      l.predictorRank = turn % 2 ? 128 : 96;
      l.fc1Type =
          usesQ8Act(GGMLType(t)) || turn % 2 ? GGMLType::Q8_0 : GGMLType::F16;
      l.fc2Type = turn % 3 == 0   ? GGMLType::Q8_0
                  : turn % 3 == 1 ? GGMLType::F16
                                  : GGMLType::F32;
      ProgramStep predict;
      predict.kind = StepKind::Predict;
      predict.device = StepDevice::Gpu;
      l.steps.push_back(predict);
    }
    if (mode == SparsityMode::Dense) {
      ProgramStep norm;
      norm.kind = StepKind::AttnNorm;
      norm.device = StepDevice::Gpu;
      l.steps.push_back(norm);
    }
    d.layers.push_back(l);
  }
  d.params.nLayer = int(d.layers.size());
  return d;
}

TEST(PtxasResources, EveryKernelWithinLimits) {
  if (!nvrtcAvailable())
    GTEST_SKIP() << "built without NVRTC";
  const std::string ptxas = PINFER_PTXAS;
  if (ptxas.empty() || access(ptxas.c_str(), X_OK) != 0)
    GTEST_SKIP() << "no ptxas in the CUDA toolkit";
  std::string tmplBuf = pinfer::test::tempTemplate("pinfer-ptxas-test");
  char *tmpl = tmplBuf.data();
  ASSERT_TRUE(::mkdtemp(tmpl));
  const std::string dir = tmpl;
  int checked = 0;
  for (const char *arch : {"sm_80", "sm_86", "sm_89", "sm_90"}) {
    for (SparsityMode mode :
         {SparsityMode::Dense, SparsityMode::Exact, SparsityMode::Threshold,
          SparsityMode::Predicted}) {
      ProgramDesc d = everyType(
          mode, mode == SparsityMode::Threshold   ? FfnActivation::GeluTanh
                : mode == SparsityMode::Predicted ? FfnActivation::ReLU
                                                  : FfnActivation::SiLU);
      d.smArch = arch;
      CudaModule m = emitCuda(d);
      NvrtcOutput ptx;
      std::string error;
      ASSERT_TRUE(
          compileCuda(m.source, "every-type.cu", arch, GpuImageKind::PTX, ptx,
                      error))
          << error;
      const std::string ptxPath = dir + "/k.ptx", logPath = dir + "/log";
      {
        std::ofstream f(ptxPath, std::ios::binary);
        f.write(reinterpret_cast<const char *>(ptx.image.data()),
                std::streamsize(ptx.image.size() - 1)); // without the NUL
      }
      const std::string cmd = ptxas + " -arch=" + arch + " -v -o " + dir +
                              "/k.cubin " + ptxPath + " > " + logPath +
                              " 2>&1";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      std::ifstream lf(logPath);
      std::stringstream log;
      log << lf.rdbuf();
      std::map<std::string, Resources> res = parsePtxas(log.str());
      size_t kernels = 0;
      for (size_t at = m.source.find("__global__"); at != std::string::npos;
           at = m.source.find("__global__", at + 1))
        ++kernels;
      ASSERT_EQ(res.size(), kernels) << log.str();
      for (const auto &[name, r] : res) {
        SCOPED_TRACE(std::string(arch) + " " + sparsityModeName(mode) + " " +
                     name);
        EXPECT_GE(r.registers, 1);
        EXPECT_LE(r.registers, kMaxRegisters);
        EXPECT_EQ(r.spillStores, 0);
        EXPECT_EQ(r.spillLoads, 0);
        EXPECT_EQ(r.stack, 0);
        ++checked;
      }
    }
  }
  std::system(("rm -rf " + dir).c_str());
  std::cerr << "ptxas: " << checked << " kernels within limits\n";
}

} // namespace
