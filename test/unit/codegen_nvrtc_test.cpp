// Tests that every CUDA source the emitter produces compiles with NVRTC for
// each supported architecture, as PTX and as CUBIN, for every weight type,
// activation and sparsity mode. Needs no GPU; skipped without NVRTC.
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"

#include <gtest/gtest.h>

using namespace pinfer;

namespace {

// A two-layer program: layer 0 with hot neurons, layer 1 all cold.
ProgramDesc makeProgram(GGMLType type, FfnActivation act, SparsityMode mode) {
  ProgramDesc d;
  d.params.nEmbd = 96;
  d.params.nFF = 200;
  d.params.nLayer = 2;
  d.params.activation = act;
  d.mode = mode;
  d.smArch = "sm_89";
  d.layers.resize(2);
  for (LayerDesc &l : d.layers) {
    l.gateType = l.upType = l.downType = type;
    l.downTType = transposedDownType(type);
  }
  for (uint32_t i = 0; i < 200; ++i)
    (i < 70 ? d.layers[0].hot : d.layers[0].cold).push_back(i);
  for (uint32_t i = 0; i < 200; ++i)
    d.layers[1].cold.push_back(i);
  // Threshold mode's calibrated per-layer thresholds (ignored elsewhere).
  d.layers[0].actThreshold = 0.1234567f;
  d.layers[1].actThreshold = 0.25f;
  return d;
}

const char *kArchs[] = {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90"};

// Tests the kernel list: one gate/up and one down kernel per layer with
// hot neurons, launch shapes covering every hot row and output element.
TEST(CudaEmitter, KernelsPerHotLayer) {
  CudaModule m = emitCuda(
      makeProgram(GGMLType::Q4_0, FfnActivation::ReLU, SparsityMode::Exact));
  ASSERT_EQ(m.kernels.size(), 1u);
  const CudaKernel &k = m.kernels[0];
  EXPECT_EQ(k.layer, 0);
  EXPECT_GE(k.gateUpGrid * k.gateUpBlock / 32, 70u);
  EXPECT_GE(k.downGrid * k.downBlock, 96u);
  EXPECT_NE(m.source.find("kHot = 70"), std::string::npos);
  EXPECT_NE(m.source.find("pf_dot_q4_0<kEmbd>"), std::string::npos);
  EXPECT_NE(m.source.find("pf_at_f32(downT"), std::string::npos);
  EXPECT_EQ(m.source.find("ffn_hot_l1_"), std::string::npos);
}

// Tests that threshold mode's hot kernel compares |activation| with the
// layer's threshold, written so that it reads back to the same float, and
// that the other modes do not.
TEST(CudaEmitter, ThresholdModeCompilesLayerThreshold) {
  CudaModule m = emitCuda(
      makeProgram(GGMLType::F16, FfnActivation::SiLU, SparsityMode::Threshold));
  EXPECT_NE(m.source.find("if (fabsf(a) <= 0.123456702f)"), std::string::npos)
      << m.source;
  EXPECT_EQ(m.source.find("a == 0.f"), std::string::npos);
  CudaModule exact = emitCuda(
      makeProgram(GGMLType::F16, FfnActivation::SiLU, SparsityMode::Exact));
  EXPECT_EQ(exact.source.find("fabsf(a)"), std::string::npos);
  EXPECT_NE(exact.source.find("a == 0.f"), std::string::npos);
}

struct Case {
  GGMLType type;
  FfnActivation act;
  SparsityMode mode;
};

class NvrtcCompile : public ::testing::TestWithParam<Case> {};

// Tests that the source compiles to PTX for every architecture, and to a
// non-empty CUBIN for each real architecture.
TEST_P(NvrtcCompile, AllArchitectures) {
  if (!nvrtcAvailable())
    GTEST_SKIP() << "built without NVRTC";
  const Case &c = GetParam();
  CudaModule m = emitCuda(makeProgram(c.type, c.act, c.mode));
  for (const char *arch : kArchs) {
    for (GpuImageKind kind : {GpuImageKind::PTX, GpuImageKind::CUBIN}) {
      NvrtcOutput out;
      std::string error;
      ASSERT_TRUE(compileCuda(m.source, "program.cu", arch, kind, out, error))
          << arch << ": " << error;
      ASSERT_FALSE(out.image.empty()) << arch;
      if (kind == GpuImageKind::PTX) {
        std::string ptx(reinterpret_cast<const char *>(out.image.data()));
        EXPECT_NE(ptx.find(".entry ffn_hot_l0_gate_up"), std::string::npos);
        EXPECT_NE(ptx.find(".entry ffn_hot_l0_down"), std::string::npos);
        EXPECT_NE(ptx.find(".target " + std::string("sm_") + (arch + 3)),
                  std::string::npos)
            << arch;
      } else {
        // An ELF object.
        EXPECT_EQ(out.image[0], 0x7f);
        EXPECT_EQ(out.image[1], 'E');
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Emitted, NvrtcCompile,
    ::testing::Values(
        Case{GGMLType::F32, FfnActivation::ReLU, SparsityMode::Exact},
        Case{GGMLType::F16, FfnActivation::SiLU, SparsityMode::Dense},
        Case{GGMLType::BF16, FfnActivation::DReLU, SparsityMode::Exact},
        Case{GGMLType::Q8_0, FfnActivation::ReLU, SparsityMode::Dense},
        Case{GGMLType::Q4_0, FfnActivation::SiLU, SparsityMode::Exact},
        Case{GGMLType::F16, FfnActivation::SiLU, SparsityMode::Threshold},
        Case{GGMLType::Q8_0, FfnActivation::SiLU, SparsityMode::Threshold}));

// Tests that a compile error names the kernel it is in and carries the log.
TEST(Nvrtc, ErrorNamesKernel) {
  if (!nvrtcAvailable())
    GTEST_SKIP() << "built without NVRTC";
  CudaModule m = emitCuda(
      makeProgram(GGMLType::F32, FfnActivation::ReLU, SparsityMode::Exact));
  std::string bad = m.source;
  size_t at = bad.find("  y[c] = s;");
  ASSERT_NE(at, std::string::npos);
  bad.insert(at, "  undefined_symbol_here();\n");
  NvrtcOutput out;
  std::string error;
  EXPECT_FALSE(
      compileCuda(bad, "program.cu", "sm_89", GpuImageKind::PTX, out, error));
  EXPECT_NE(error.find("kernel ffn_hot_l0_down"), std::string::npos) << error;
  EXPECT_NE(error.find("undefined_symbol_here"), std::string::npos) << error;
}

// Tests that a malformed architecture is refused before NVRTC runs.
TEST(Nvrtc, RejectsBadArch) {
  NvrtcOutput out;
  std::string error;
  EXPECT_FALSE(
      compileCuda("", "x.cu", "gfx90a", GpuImageKind::PTX, out, error));
  EXPECT_FALSE(error.empty());
}

} // namespace
