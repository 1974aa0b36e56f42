// Tests of the host C++ emitter's GPU images: the PTX and the CUBIN are
// each embedded byte for byte and handed to the Program, a program without
// a CUBIN embeds the PTX alone, and a CPU-only program embeds neither.
// Needs neither a GPU nor NVRTC: the images are plain bytes here.
#include "codegen/CudaEmitter.h"
#include "codegen/HostEmitter.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace pinfer;

namespace {

// One layer, 40 of 64 neurons hot.
ProgramDesc makeProgram(bool gpu) {
  ProgramDesc d;
  d.params.nEmbd = 32;
  d.params.nFF = 64;
  d.params.nLayer = 1;
  d.params.activation = FfnActivation::ReLU;
  d.modelName = "emitter-test";
  d.target = gpu ? "rtx4090" : "cpu";
  d.smArch = gpu ? "sm_89" : "";
  d.layers.resize(1);
  for (uint32_t i = 0; i < 64; ++i)
    (gpu && i < 40 ? d.layers[0].hot : d.layers[0].cold).push_back(i);
  return d;
}

// The numbers of the emitted array `name` ("const unsigned char name[] =
// {...};"); empty when the array is absent.
std::vector<uint8_t> arrayBytes(const std::string &cpp,
                                const std::string &name) {
  std::vector<uint8_t> out;
  size_t at = cpp.find(" " + name + "[] = {");
  if (at == std::string::npos)
    return out;
  at = cpp.find('{', at) + 1;
  const size_t end = cpp.find("};", at);
  while (at < end) {
    char *next = nullptr;
    unsigned long v = std::strtoul(cpp.c_str() + at, &next, 10);
    if (next == cpp.c_str() + at) {
      ++at;
      continue;
    }
    out.push_back(uint8_t(v));
    at = size_t(next - cpp.c_str());
  }
  return out;
}

// A stand-in PTX text and CUBIN header: the emitter copies bytes and never
// reads them.
const std::vector<uint8_t> kPtx = {'.', 'v', 'e', 'r', 's', 'i', 'o', 'n', 0};
std::vector<uint8_t> cubinBytes() {
  std::vector<uint8_t> c = {0x7f, 'E', 'L', 'F', 2, 1, 1, 65, 8};
  for (int i = 0; i < 300; ++i)
    c.push_back(uint8_t(i * 37));
  return c;
}

// The host code of a GPU program with both images, as byte arrays or as
// the assembler's files.
std::string emitWithImages(bool asFiles) {
  ProgramDesc d = makeProgram(true);
  CudaModule cuda = emitCuda(d);
  HostInputs in;
  in.cuda = &cuda;
  in.gpuImage = kPtx;
  in.gpuCubin = cubinBytes();
  in.weightsFile = "x.weights.gguf";
  in.imagesAsFiles = asFiles;
  return emitHostCpp(d, in);
}

// Tests that both images are embedded byte for byte, aligned, and set on
// the Program with their sizes.
TEST(HostEmitter, EmbedsPtxAndCubin) {
  std::string cpp = emitWithImages(false);
  EXPECT_EQ(arrayBytes(cpp, "kGpuImage"), kPtx);
  EXPECT_EQ(arrayBytes(cpp, "kGpuCubin"), cubinBytes());
  EXPECT_NE(cpp.find("alignas(64) const unsigned char kGpuCubin[]"),
            std::string::npos);
  EXPECT_NE(cpp.find("CUBIN for sm_89, 309 bytes"), std::string::npos) << cpp;
  EXPECT_NE(cpp.find("p.gpuImage = kGpuImage;"), std::string::npos);
  EXPECT_NE(cpp.find("p.gpuImageSize = sizeof kGpuImage;"), std::string::npos);
  EXPECT_NE(cpp.find("p.gpuCubin = kGpuCubin;"), std::string::npos);
  EXPECT_NE(cpp.find("p.gpuCubinSize = sizeof kGpuCubin;"), std::string::npos);
  EXPECT_NE(cpp.find("p.smArch = \"sm_89\";"), std::string::npos);
}

// Tests that images given as files are taken in by the assembler under
// their fixed names (no path in the source), 64-byte aligned, with their
// sizes, and that no byte array is left.
TEST(HostEmitter, ImagesAsFilesAreAssembledIn) {
  std::string cpp = emitWithImages(true);
  EXPECT_EQ(cpp.find("kGpuImage"), std::string::npos);
  EXPECT_EQ(cpp.find("kGpuCubin"), std::string::npos);
  for (const char *file : {kGpuImageFile, kGpuCubinFile})
    EXPECT_NE(cpp.find(std::string(".incbin \\\"") + file + "\\\""),
              std::string::npos)
        << cpp.substr(0, 2000);
  EXPECT_NE(cpp.find(".balign 64\\n.globl pinferGpuCubin"), std::string::npos);
  EXPECT_NE(cpp.find("p.gpuImage = pinferGpuImage;"), std::string::npos);
  EXPECT_NE(cpp.find("p.gpuImageSize = 9ull;"), std::string::npos);
  EXPECT_NE(cpp.find("p.gpuCubinSize = 309ull;"), std::string::npos);
}

// Tests that a toolkit that gave no CUBIN leaves the PTX alone in the
// executable, and that a CPU-only program embeds no GPU image at all.
TEST(HostEmitter, PtxOnlyAndCpuOnly) {
  ProgramDesc d = makeProgram(true);
  CudaModule cuda = emitCuda(d);
  HostInputs in;
  in.cuda = &cuda;
  in.gpuImage = kPtx;
  std::string cpp = emitHostCpp(d, in);
  EXPECT_EQ(arrayBytes(cpp, "kGpuImage"), kPtx);
  EXPECT_EQ(cpp.find("kGpuCubin"), std::string::npos);
  EXPECT_EQ(cpp.find("p.gpuCubin"), std::string::npos);

  std::string cpu = emitHostCpp(makeProgram(false), HostInputs());
  EXPECT_EQ(cpu.find("kGpuImage"), std::string::npos);
  EXPECT_EQ(cpu.find("kGpuCubin"), std::string::npos);
  EXPECT_NE(cpu.find("int main("), std::string::npos);
}

// Tests that each layer gets the gate/up loop instantiated with the
// program's width, weight types, activation and mode, and that the host
// code includes the template.
TEST(HostEmitter, InstantiatesSpecialisedGateUp) {
  ProgramDesc d = makeProgram(false);
  d.layers[0].gateType = GGMLType::Q8_0;
  d.layers[0].upType = GGMLType::Q4_0;
  std::string cpp = emitHostCpp(d, HostInputs());
  EXPECT_NE(cpp.find("#include \"runtime/ffn_cpu.h\""), std::string::npos);
  const std::string want =
      "l[0].cpuGateUp = &pinfer::gateUpRows<" + std::to_string(d.params.nEmbd) +
      ", pinfer::GGMLType::Q8_0, pinfer::GGMLType::Q4_0, "
      "pinfer::FfnActivation::ReLU, true>;";
  EXPECT_NE(cpp.find(want), std::string::npos) << cpp;
  d.mode = SparsityMode::Dense;
  d.params.activation = FfnActivation::SiLU;
  cpp = emitHostCpp(d, HostInputs());
  EXPECT_NE(cpp.find("pinfer::FfnActivation::SiLU, false>;"), std::string::npos)
      << cpp;
}

} // namespace
