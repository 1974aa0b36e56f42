// Tests that kernels of the same code are compiled once: dedupeKernels on
// hand-written source (braces in comments and literals, a kernel that
// differs in one character kept), and on a two-layer program whose layers
// have one shape and type: the second layer's kernels become aliases of
// the first's, every alias names a kernel the source defines and none it
// defines twice, and the host code hands the aliases to the runtime.
#include "codegen/CudaEmitter.h"
#include "codegen/HostEmitter.h"
#include "codegen/KernelDedupe.h"

#include <gtest/gtest.h>

#include <set>

using namespace pinfer;

namespace {

// Names after "__launch_bounds__(...) " up to "(" in `source`.
std::set<std::string> definedKernels(const std::string &source) {
  std::set<std::string> names;
  const std::string marker = "__global__ void __launch_bounds__(";
  for (size_t at = source.find(marker); at != std::string::npos;
       at = source.find(marker, at + 1)) {
    const size_t name = source.find(") ", at + marker.size()) + 2;
    const std::string n = source.substr(name, source.find('(', name) - name);
    EXPECT_TRUE(names.insert(n).second) << n << " defined twice";
  }
  return names;
}

} // namespace

TEST(KernelDedupe, SameCodeOnceUnderTheFirstName) {
  const std::string kernel =
      "extern \"C\" __global__ void __launch_bounds__(128) NAME(float *y) {\n"
      "  // a brace in a comment: {\n"
      "  if (threadIdx.x == 0) { y[0] = '}'; }\n"
      "}\n";
  auto named = [&](const std::string &name, const std::string &body) {
    std::string k = body;
    k.replace(k.find("NAME"), 4, name);
    return k;
  };
  std::string other = kernel;
  other.replace(other.find("y[0]"), 4, "y[1]");
  const std::string source = "// prelude\n" + named("k_l0_a", kernel) +
                             "\n// layer 1\n" + named("k_l1_a", kernel) +
                             named("k_l1_b", other) + named("k_l2_a", kernel) +
                             "// end\n";
  std::vector<KernelAlias> aliases;
  const std::string out = dedupeKernels(source, aliases);
  EXPECT_EQ(definedKernels(out), (std::set<std::string>{"k_l0_a", "k_l1_b"}));
  ASSERT_EQ(aliases.size(), 2u);
  EXPECT_EQ(aliases[0], KernelAlias("k_l1_a", "k_l0_a"));
  EXPECT_EQ(aliases[1], KernelAlias("k_l2_a", "k_l0_a"));
  EXPECT_NE(out.find("// k_l1_a: the same code as k_l0_a"), std::string::npos);
  EXPECT_NE(out.find("// prelude\n"), std::string::npos);
  EXPECT_NE(out.find("// end\n"), std::string::npos);
  // The kept kernels' text is untouched.
  EXPECT_NE(out.find(named("k_l0_a", kernel)), std::string::npos);
  EXPECT_NE(out.find(named("k_l1_b", other)), std::string::npos);
  // Nothing to merge: the source as it was.
  std::vector<KernelAlias> none;
  const std::string one = named("k_l0_a", kernel) + named("k_l1_b", other);
  EXPECT_EQ(dedupeKernels(one, none), one);
  EXPECT_TRUE(none.empty());
}

TEST(KernelDedupe, LayersOfOneShapeShareTheirKernels) {
  ProgramDesc d;
  d.params.arch = "llama";
  d.params.nEmbd = 64;
  d.params.nFF = 128;
  d.params.nLayer = 2;
  d.params.nHead = 4;
  d.params.nKvHead = 4;
  d.params.headDim = 16;
  d.params.nRot = 16;
  d.params.nVocab = 100;
  d.params.activation = FfnActivation::ReLU;
  d.modelName = "dedupe-test";
  d.target = "rtx4090";
  d.smArch = "sm_89";
  d.layers.resize(2);
  for (LayerDesc &l : d.layers) {
    for (uint32_t i = 0; i < 128; ++i)
      (i < 96 ? l.hot : l.cold).push_back(i);
  }
  const CudaModule m = emitCuda(d);
  const std::set<std::string> defined = definedKernels(m.source);
  EXPECT_TRUE(defined.count("ffn_hot_l0_gate_up") &&
              defined.count("ffn_hot_l0_down"))
      << m.source;
  std::set<std::string> aliased;
  for (const KernelAlias &a : m.aliases) {
    EXPECT_TRUE(defined.count(a.second)) << a.second;
    EXPECT_FALSE(defined.count(a.first)) << a.first;
    aliased.insert(a.first);
  }
  EXPECT_TRUE(aliased.count("ffn_hot_l1_gate_up") &&
              aliased.count("ffn_hot_l1_down"));
  ASSERT_EQ(m.kernels.size(), 2u);
  EXPECT_EQ(m.kernels[1].gateUp, "ffn_hot_l1_gate_up"); // the runtime's name

  HostInputs in;
  in.cuda = &m;
  in.gpuImage = {'.', 'v', 0};
  const std::string cpp = emitHostCpp(d, in);
  EXPECT_NE(cpp.find("\"ffn_hot_l1_gate_up\", \"ffn_hot_l0_gate_up\","),
            std::string::npos);
  EXPECT_NE(cpp.find("p.kernelAliases = kKernelAliases;"), std::string::npos);
  EXPECT_NE(
      cpp.find("p.nKernelAliases = " + std::to_string(m.aliases.size()) + ";"),
      std::string::npos);
}
