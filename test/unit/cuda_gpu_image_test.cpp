// Tests the choice between an executable's two GPU images: cubinRunsOn,
// CUDA's binary compatibility rule (pure, runs everywhere), and, on a real
// GPU, CudaDriver::loadModuleFor loading the CUBIN where it runs and the PTX
// where it does not or where the driver refuses the CUBIN. The GPU tests
// skip where the CUDA driver finds no GPU or pinferc was built without NVRTC.
#include "codegen/CudaEmitter.h"
#include "codegen/Nvrtc.h"
#include "runtime/cuda_driver.h"

#include <gtest/gtest.h>

#include <string>

using namespace pinfer;

namespace {

// Tests that a CUBIN runs on the same major version from its own minor on,
// never on an older minor or another major.
TEST(CubinRunsOn, SameMajorNewerMinor) {
  EXPECT_TRUE(cubinRunsOn("sm_89", 89));
  EXPECT_TRUE(cubinRunsOn("sm_80", 86));
  EXPECT_TRUE(cubinRunsOn("sm_80", 89));
  EXPECT_TRUE(cubinRunsOn("sm_86", 87));
  EXPECT_FALSE(cubinRunsOn("sm_86", 80));
  EXPECT_FALSE(cubinRunsOn("sm_89", 86));
  EXPECT_FALSE(cubinRunsOn("sm_80", 90)); // Hopper: the PTX, JIT-compiled
  EXPECT_FALSE(cubinRunsOn("sm_90", 89));
  EXPECT_FALSE(cubinRunsOn("sm_75", 80));
  EXPECT_TRUE(cubinRunsOn("sm_75", 75));
  // Three-digit versions: the last digit is the minor.
  EXPECT_TRUE(cubinRunsOn("sm_100", 100));
  EXPECT_TRUE(cubinRunsOn("sm_100", 103));
  EXPECT_FALSE(cubinRunsOn("sm_103", 100));
  EXPECT_TRUE(cubinRunsOn("sm_120", 121));
  EXPECT_FALSE(cubinRunsOn("sm_100", 120));
  EXPECT_FALSE(cubinRunsOn("sm_90", 100));
}

// Tests the suffixed architectures: "a" runs only on its own compute
// capability, "f" on the later members of its family.
TEST(CubinRunsOn, ArchitectureAndFamilySpecific) {
  EXPECT_TRUE(cubinRunsOn("sm_90a", 90));
  EXPECT_FALSE(cubinRunsOn("sm_100a", 103));
  EXPECT_TRUE(cubinRunsOn("sm_100a", 100));
  EXPECT_TRUE(cubinRunsOn("sm_100f", 103));
  EXPECT_FALSE(cubinRunsOn("sm_103f", 100));
  EXPECT_FALSE(cubinRunsOn("sm_100f", 120));
}

// Tests that anything but sm_XY[a|f] and a plausible compute capability is
// refused, so that the executable falls back to the PTX.
TEST(CubinRunsOn, MalformedIsRefused) {
  for (const char *arch : {"", "sm_", "sm_8", "compute_89", "SM_89", "sm_89x",
                           "sm_89ab", "sm_8a", "89", "sm_-89"})
    EXPECT_FALSE(cubinRunsOn(arch, 89)) << arch;
  EXPECT_FALSE(cubinRunsOn(nullptr, 89));
  EXPECT_FALSE(cubinRunsOn("sm_89", 0));
  EXPECT_FALSE(cubinRunsOn("sm_89", -1));
}

class GpuImage : public ::testing::Test {
protected:
  void SetUp() override {
    if (!nvrtcAvailable())
      GTEST_SKIP() << "built without NVRTC";
    CudaDriver probe;
    std::string why;
    if (!probe.open(why))
      GTEST_SKIP() << why;
    cc_ = probe.computeCapability();
    smArch_ = "sm_" + std::to_string(cc_);
    ProgramDesc d;
    d.params.nEmbd = 64;
    d.params.nFF = 96;
    d.params.nLayer = 1;
    d.params.activation = FfnActivation::ReLU;
    d.smArch = smArch_;
    d.layers.resize(1);
    for (uint32_t i = 0; i < 96; ++i)
      d.layers[0].hot.push_back(i);
    module_ = emitCuda(d);
    std::string error;
    ASSERT_TRUE(
        compileCudaImages(module_.source, "test.cu", smArch_, images_, error))
        << error;
    ASSERT_FALSE(images_.cubin.empty()) << images_.cubinNote;
  }

  // Loads with the given CUBIN label and checks both kernels are there.
  std::string load(const std::vector<uint8_t> &cubin, const std::string &arch,
                   const uint8_t *ptx, std::string &note, std::string &error) {
    CudaDriver gpu;
    if (!gpu.open(error) || !gpu.loadModuleFor(cubin.data(), cubin.size(),
                                               arch.c_str(), ptx, error))
      return "";
    note = gpu.moduleNote();
    const CudaKernel &k = module_.kernels.at(0);
    if (!gpu.function(k.gateUp.c_str(), error) ||
        !gpu.function(k.down.c_str(), error))
      return "";
    return gpu.moduleKind();
  }

  int cc_ = 0;
  std::string smArch_;
  CudaModule module_;
  NvrtcImages images_;
};

// Tests that the device's own CUBIN is loaded, and that a CUBIN for another
// major version is passed over for the PTX.
TEST_F(GpuImage, CubinWhereItRunsElsePtx) {
  std::string note, error;
  EXPECT_EQ(load(images_.cubin, smArch_, images_.ptx.data(), note, error),
            "cubin")
      << error;
  EXPECT_EQ(note, "");
  const std::string otherMajor = "sm_" + std::to_string((cc_ / 10 + 1) * 10);
  EXPECT_EQ(load(images_.cubin, otherMajor, images_.ptx.data(), note, error),
            "ptx")
      << error;
  EXPECT_EQ(note, "");
  // Without a PTX, a CUBIN that cannot run is one error line.
  EXPECT_EQ(load(images_.cubin, otherMajor, nullptr, note, error), "");
  EXPECT_NE(error.find("no PTX to load"), std::string::npos) << error;
}

// Tests that a CUBIN the driver refuses (an ELF header over garbage) falls
// back to the PTX and says why.
TEST_F(GpuImage, RefusedCubinFallsBackToPtx) {
  std::vector<uint8_t> broken = images_.cubin;
  for (size_t i = 16; i < broken.size(); ++i)
    broken[i] = uint8_t(i * 131);
  std::string note, error;
  EXPECT_EQ(load(broken, smArch_, images_.ptx.data(), note, error), "ptx")
      << error;
  EXPECT_NE(note.find("CUBIN; loaded the PTX"), std::string::npos) << note;
}

} // namespace
