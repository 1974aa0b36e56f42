// Tests that every CUDA source the emitter produces compiles with NVRTC for
// each supported architecture, as PTX and as CUBIN, for every weight type,
// activation and sparsity mode, and that the compile job's one NVRTC run
// gives both images for every architecture of the target table. Needs no
// GPU; skipped without NVRTC.
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"
#include "compiler/Targets.h"
#include "runtime/kernels.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace pinfer;

namespace {

// A two-layer program: layer 0 with hot neurons, layer 1 all cold.
ProgramDesc makeProgram(GGMLType type, FfnActivation act, SparsityMode mode) {
  ProgramDesc d;
  // K-quant rows are whole 256-element super-blocks.
  d.params.nEmbd = typeTraits(type)->blockSize > 32 ? 256 : 96;
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

// Checks that `image` is a CUDA ELF object (e_machine EM_CUDA, 190) for
// `smArch`: the SM version sits in e_flags, bits 8-15 in the ELF ABI of
// NVRTC 12.8 and later, bits 0-7 before.
void expectCubinFor(const std::vector<uint8_t> &image,
                    const std::string &smArch) {
  ASSERT_GE(image.size(), 64u) << smArch;
  EXPECT_EQ(image[0], 0x7f) << smArch;
  EXPECT_EQ(image[1], 'E') << smArch;
  EXPECT_EQ(image[2], 'L') << smArch;
  EXPECT_EQ(image[3], 'F') << smArch;
  ASSERT_EQ(image[4], 2) << smArch << ": not a 64-bit ELF";
  uint16_t machine = 0;
  uint32_t flags = 0;
  std::memcpy(&machine, &image[18], 2);
  std::memcpy(&flags, &image[48], 4);
  EXPECT_EQ(machine, 190) << smArch;
  const uint32_t sm = uint32_t(std::stoi(smArch.substr(3)));
  EXPECT_TRUE(((flags >> 8) & 0xff) == sm || (flags & 0xff) == sm)
      << smArch << ": e_flags 0x" << std::hex << flags;
}

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
  // q4_0 downs: the split layout's quants and per-block scales, a run of
  // a block's neurons (its group, through their ids) scaled once.
  EXPECT_NE(m.source.find("pfGroup[at] = (int)(ids[k] / kGroup)"),
            std::string::npos);
  EXPECT_NE(m.source.find("scales + (long)gi * kEmbd + c"), std::string::npos);
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
  for (const char *arch : kArchs) {
    // Emitted for the architecture, as the compiler does for its target
    // (sm_80 and newer get the tensor-core tiles).
    ProgramDesc program = makeProgram(c.type, c.act, c.mode);
    program.smArch = arch;
    CudaModule m = emitCuda(program);
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
        expectCubinFor(out.image, arch);
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
        Case{GGMLType::Q8_0, FfnActivation::SiLU, SparsityMode::Threshold},
        Case{GGMLType::Q4_1, FfnActivation::ReLU, SparsityMode::Exact},
        Case{GGMLType::Q5_0, FfnActivation::SiLU, SparsityMode::Threshold},
        Case{GGMLType::Q5_1, FfnActivation::ReLU, SparsityMode::Dense},
        Case{GGMLType::Q2_K, FfnActivation::ReLU, SparsityMode::Exact},
        Case{GGMLType::Q3_K, FfnActivation::SiLU, SparsityMode::Exact},
        Case{GGMLType::Q4_K, FfnActivation::ReLU, SparsityMode::Exact},
        Case{GGMLType::Q5_K, FfnActivation::SiLU, SparsityMode::Dense},
        Case{GGMLType::Q6_K, FfnActivation::DReLU, SparsityMode::Exact}));

// Tests that one compilation for each GPU target's architecture gives a
// CUBIN for that architecture and the same PTX as a compilation for the
// virtual architecture alone, so that the executable's PTX is unchanged by
// also embedding the CUBIN.
TEST(NvrtcImages, EveryTargetGetsCubinAndPtx) {
  if (!nvrtcAvailable())
    GTEST_SKIP() << "built without NVRTC";
  int gpuTargets = 0;
  for (const Target &t : allTargets()) {
    if (!t.hasGPU())
      continue;
    ++gpuTargets;
    // The source as the compiler emits it for the target (sm_80 and newer
    // get the tensor-core forms).
    ProgramDesc d =
        makeProgram(GGMLType::F16, FfnActivation::ReLU, SparsityMode::Exact);
    d.smArch = t.smArch;
    CudaModule m = emitCuda(d);
    NvrtcImages images;
    std::string error;
    ASSERT_TRUE(
        compileCudaImages(m.source, "program.cu", t.smArch, images, error))
        << t.name << ": " << error;
    EXPECT_EQ(images.cubinNote, "") << t.name;
    expectCubinFor(images.cubin, t.smArch);
    NvrtcOutput ptx;
    ASSERT_TRUE(compileCuda(m.source, "program.cu", t.smArch, GpuImageKind::PTX,
                            ptx, error))
        << t.name << ": " << error;
    EXPECT_EQ(images.ptx, ptx.image) << t.name;
    ASSERT_FALSE(images.ptx.empty());
    EXPECT_EQ(images.ptx.back(), 0) << "PTX without its NUL";
  }
  EXPECT_GE(gpuTargets, 5);
}

// Tests that a source error fails the two-image compilation with the same
// line as a PTX compilation: the kernel at fault and NVRTC's log.
TEST(NvrtcImages, ErrorNamesKernel) {
  if (!nvrtcAvailable())
    GTEST_SKIP() << "built without NVRTC";
  CudaModule m = emitCuda(
      makeProgram(GGMLType::F16, FfnActivation::SiLU, SparsityMode::Dense));
  std::string bad = m.source;
  size_t at = bad.find("  if (!last) return;");
  ASSERT_NE(at, std::string::npos);
  bad.insert(at, "  undefined_symbol_here();\n");
  NvrtcImages images;
  std::string error;
  EXPECT_FALSE(compileCudaImages(bad, "program.cu", "sm_89", images, error));
  EXPECT_EQ(error.rfind("NVRTC failed to compile kernel ffn_hot_l0_down", 0),
            0u)
      << error;
  EXPECT_NE(error.find("undefined_symbol_here"), std::string::npos) << error;
  EXPECT_FALSE(
      compileCudaImages(m.source, "program.cu", "compute_89", images, error));
  EXPECT_NE(error.find("expected sm_XX"), std::string::npos) << error;
}

// Tests that a compile error names the kernel it is in and carries the log.
TEST(Nvrtc, ErrorNamesKernel) {
  if (!nvrtcAvailable())
    GTEST_SKIP() << "built without NVRTC";
  CudaModule m = emitCuda(
      makeProgram(GGMLType::F32, FfnActivation::ReLU, SparsityMode::Exact));
  std::string bad = m.source;
  size_t at = bad.find("  if (!last) return;");
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

// Tests that the hot gate/up kernels read their rows and input with wide
// loads (16 bytes per lane for f32/f16 rows and their f32 input, 32 bits
// for Q4_K's nibbles, 16-bit pairs for the 2-aligned Q8_0 blocks) rather
// than element by element: the loads a warp issues per byte decide how
// near a bandwidth-bound matvec gets to the card's bandwidth. Block types
// multiply the input's 8-bit quants with dp4a, four to a 32-bit load.
TEST(Nvrtc, GateUpKernelsUseWideLoads) {
  if (!nvrtcAvailable())
    GTEST_SKIP() << "built without NVRTC";
  const struct {
    GGMLType type;
    const char *load;
  } cases[] = {{GGMLType::F32, "ld.global.nc.v4.f32"},
               {GGMLType::F16, "ld.global.nc.v4.u32"},
               {GGMLType::Q4_K, "ld.global.nc.u32"},
               {GGMLType::Q8_0, "ld.global.nc.u16"}};
  for (const auto &c : cases) {
    CudaModule m =
        emitCuda(makeProgram(c.type, FfnActivation::ReLU, SparsityMode::Dense));
    NvrtcOutput out;
    std::string error;
    ASSERT_TRUE(compileCuda(m.source, "program.cu", "sm_89", GpuImageKind::PTX,
                            out, error))
        << error;
    const std::string ptx(out.image.begin(), out.image.end());
    const size_t at = ptx.find(".entry ffn_hot_l0_gate_up(");
    ASSERT_NE(at, std::string::npos);
    const std::string kernel = ptx.substr(at, ptx.find(".entry", at + 1) - at);
    EXPECT_NE(kernel.find(c.load), std::string::npos) << typeName(c.type);
    if (usesQ8Act(c.type)) {
      EXPECT_NE(kernel.find("dp4a.s32.s32"), std::string::npos)
          << typeName(c.type);
      EXPECT_EQ(kernel.find("ld.global.nc.v4.f32"), std::string::npos)
          << typeName(c.type);
    } else {
      // The input as four floats per load.
      EXPECT_NE(kernel.find("ld.global.nc.v4.f32"), std::string::npos)
          << typeName(c.type);
    }
  }
}

} // namespace
