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

// A step of `kind` on the GPU, which the emitter reads to place kernels.
void addGpuStep(LayerDesc &l, StepKind kind) {
  ProgramStep step;
  step.kind = kind;
  step.device = StepDevice::Gpu;
  l.steps.push_back(step);
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
      addGpuStep(l, StepKind::Predict);
    }
    if (mode == SparsityMode::Dense)
      addGpuStep(l, StepKind::AttnNorm);
    d.layers.push_back(l);
  }
  d.params.nLayer = int(d.layers.size());
  return d;
}

// Compiles `d` for `arch` and checks every kernel's resources; the
// number of kernels checked.
int checkWithinLimits(const ProgramDesc &d, const char *arch,
                      const std::string &what, const std::string &ptxas,
                      const std::string &dir) {
  CudaModule m = emitCuda(d);
  NvrtcOutput ptx;
  std::string error;
  if (!compileCuda(m.source, "program.cu", arch, GpuImageKind::PTX, ptx,
                   error)) {
    ADD_FAILURE() << what << ": " << error;
    return 0;
  }
  const std::string ptxPath = dir + "/k.ptx", logPath = dir + "/log";
  {
    std::ofstream f(ptxPath, std::ios::binary);
    f.write(reinterpret_cast<const char *>(ptx.image.data()),
            std::streamsize(ptx.image.size() - 1)); // without the NUL
  }
  const std::string cmd = ptxas + " -arch=" + arch + " -v -o " + dir +
                          "/k.cubin " + ptxPath + " > " + logPath + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << what << ": " << cmd;
    return 0;
  }
  std::ifstream lf(logPath);
  std::stringstream log;
  log << lf.rdbuf();
  std::map<std::string, Resources> res = parsePtxas(log.str());
  size_t kernels = 0;
  for (size_t at = m.source.find("__global__"); at != std::string::npos;
       at = m.source.find("__global__", at + 1))
    ++kernels;
  EXPECT_EQ(res.size(), kernels) << what << "\n" << log.str();
  int checked = 0;
  for (const auto &[name, r] : res) {
    SCOPED_TRACE(what + " " + name);
    EXPECT_GE(r.registers, 1);
    EXPECT_LE(r.registers, kMaxRegisters);
    EXPECT_EQ(r.spillStores, 0);
    EXPECT_EQ(r.spillLoads, 0);
    EXPECT_EQ(r.stack, 0);
    ++checked;
  }
  return checked;
}

// The toolkit's ptxas and a temporary directory, or why the test skips.
struct PtxasRun {
  std::string ptxas = PINFER_PTXAS, dir, skip;
  PtxasRun() {
    if (!nvrtcAvailable())
      skip = "built without NVRTC";
    else if (ptxas.empty() || access(ptxas.c_str(), X_OK) != 0)
      skip = "no ptxas in the CUDA toolkit";
    if (!skip.empty())
      return;
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-ptxas-test");
    char *tmpl = tmplBuf.data();
    if (::mkdtemp(tmpl))
      dir = tmpl;
    else
      skip = "no temporary directory";
  }
  ~PtxasRun() {
    if (!dir.empty())
      std::system(("rm -rf " + dir).c_str());
  }
};

constexpr const char *kArchs[] = {"sm_80", "sm_86", "sm_89", "sm_90"};

TEST(PtxasResources, EveryKernelWithinLimits) {
  PtxasRun run;
  if (!run.skip.empty())
    GTEST_SKIP() << run.skip;
  int checked = 0;
  for (const char *arch : kArchs) {
    for (SparsityMode mode :
         {SparsityMode::Dense, SparsityMode::Exact, SparsityMode::Threshold,
          SparsityMode::Predicted}) {
      ProgramDesc d = everyType(
          mode, mode == SparsityMode::Threshold   ? FfnActivation::GeluTanh
                : mode == SparsityMode::Predicted ? FfnActivation::ReLU
                                                  : FfnActivation::SiLU);
      d.smArch = arch;
      checked += checkWithinLimits(
          d, arch, std::string(arch) + " " + sparsityModeName(mode), run.ptxas,
          run.dir);
    }
  }
  std::cerr << "ptxas: " << checked << " kernels within limits\n";
}

// Tests the sparse modes' hot kernels at a 1B model's shape (n_embd 2048,
// n_ff 5632, every neuron hot), where the down kernel's chunks hold 88
// neurons and the predictor's rank is 257: ptxas spilled a down kernel
// there that the small shape above did not.
TEST(PtxasResources, HotKernelsAtAModelsShape) {
  PtxasRun run;
  if (!run.skip.empty())
    GTEST_SKIP() << run.skip;
  int checked = 0;
  for (const char *arch : kArchs)
    for (SparsityMode mode : {SparsityMode::Exact, SparsityMode::Predicted}) {
      ProgramDesc d;
      d.params.nEmbd = 2048;
      d.params.nFF = 5632;
      d.params.activation = FfnActivation::ReLU;
      d.mode = mode;
      d.smArch = arch;
      for (GGMLType t : {GGMLType::Q4_0, GGMLType::Q8_0, GGMLType::Q4_K,
                         GGMLType::Q6_K, GGMLType::F16}) {
        LayerDesc l;
        l.gateType = l.upType = l.downType = t;
        l.downTType = transposedDownType(t);
        for (uint32_t i = 0; i < 5632; ++i)
          l.hot.push_back(i);
        if (mode == SparsityMode::Predicted) {
          l.predictorRank = 257;
          l.fc1Type = l.fc2Type = GGMLType::F16;
          addGpuStep(l, StepKind::Predict);
        }
        d.layers.push_back(l);
      }
      d.params.nLayer = int(d.layers.size());
      checked += checkWithinLimits(
          d, arch, std::string(arch) + " " + sparsityModeName(mode) + " 1B",
          run.ptxas, run.dir);
    }
  std::cerr << "ptxas: " << checked << " kernels within limits\n";
}

} // namespace
