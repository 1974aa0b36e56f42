// Tests of the architecture table (runtime/arch.h): its names and keys, that
// a generated model holds exactly the table's tensors, that the loader binds
// them by the table's names and no others, and that an architecture missing
// from the table is refused by name by the loader, by `pinferc inspect` and
// by the compiler.
#include "compile_test_util.h"

#include "compiler/Inspect.h"
#include "compiler/ModelSpec.h"
#include "compiler/placement/CostModel.h"
#include "runtime/arch.h"
#include "runtime/gguf.h"
#include "runtime/model.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <algorithm>
#include <climits>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

const char *const kUnknown =
    "architecture 'rwkv6' is not supported, expected one of: llama, qwen2, "
    "gemma3";

class ArchTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-arch-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    model_ = dir_ + "/tiny.gguf";
    pwri_ = dir_ + "/tiny-pwri.gguf";
    std::string out, err;
    ASSERT_EQ(run(kGenmodel + " --preset tiny -o " + model_, out, err, dir_), 0)
        << err;
    ASSERT_EQ(run(kGenmodel + " --preset tiny --powerinfer -o " + pwri_, out,
                  err, dir_),
              0)
        << err;
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + dir_).c_str()); }

  // Writes a copy of model_ to `path` without tensor `skip` and with `kv`
  // applied to its metadata.
  static std::string
  rewrite(const std::string &name, const std::string &skip,
          const std::function<void(GGUFWriter &)> &kv = nullptr) {
    std::string path = dir_ + "/" + name, error;
    auto src = GGUFFile::open(model_, error);
    EXPECT_TRUE(src) << error;
    if (!src)
      return path;
    GGUFWriter w;
    for (const GGUFKV &e : src->metadata())
      if (e.key != "general.alignment")
        w.set(e.key, e.value);
    if (kv)
      kv(w);
    for (const GGUFTensor &t : src->tensors()) {
      if (t.name == skip)
        continue;
      std::vector<int64_t> ne(t.ne, t.ne + t.nDims);
      const uint8_t *data = t.data;
      w.addTensor(t.name, t.type, ne, [data](uint8_t *dst, size_t n) {
        std::memcpy(dst, data, n);
      });
    }
    EXPECT_TRUE(w.write(path, error)) << error;
    return path;
  }

  static std::string dir_, model_, pwri_;
};
std::string ArchTest::dir_, ArchTest::model_, ArchTest::pwri_;

// Every tensor of `arch` for `nLayer` layers, by the table's names.
std::set<std::string> tableNames(const ArchInfo &arch, int nLayer,
                                 bool powerInfer) {
  std::set<std::string> names;
  for (size_t k = 0; k < arch.nGlobalTensors; ++k)
    names.insert(tensorName(arch.globalTensors[k]));
  for (int l = 0; l < nLayer; ++l) {
    for (size_t k = 0; k < arch.nLayerTensors; ++k)
      names.insert(tensorName(arch.layerTensors[k], l));
    if (!powerInfer)
      continue;
    // PowerInfer's layout holds the down projection only transposed.
    names.erase(tensorName(TensorKind::FfnDown, l));
    for (TensorKind kind :
         {TensorKind::PredFc1, TensorKind::PredFc2, TensorKind::FfnDownT})
      names.insert(tensorName(kind, l));
  }
  return names;
}

std::set<std::string> fileNames(const GGUFFile &f) {
  std::set<std::string> names;
  for (const GGUFTensor &t : f.tensors())
    names.insert(t.name);
  return names;
}

// Tests that the tensor table has one row per kind, in the enum's order,
// and that names and kinds convert both ways.
TEST(ArchTable, TensorNamesRoundTrip) {
  for (int k = 0; k < kTensorKindCount; ++k) {
    const TensorKind kind = static_cast<TensorKind>(k);
    ASSERT_EQ(tensorInfo(kind).kind, kind) << k;
    for (int layer : {0, 7, 4095}) {
      std::string name = tensorName(kind, layer);
      TensorKind back;
      int l = -2;
      ASSERT_TRUE(parseTensorName(name, back, l)) << name;
      EXPECT_EQ(back, kind) << name;
      EXPECT_EQ(l, tensorInfo(kind).perLayer ? layer : -1) << name;
    }
  }
  EXPECT_EQ(tensorName(TensorKind::AttnQ, 12), "blk.12.attn_q.weight");
  EXPECT_EQ(tensorName(TensorKind::TokenEmbd), "token_embd.weight");
  EXPECT_EQ(tensorName(TensorKind::PredFc1, 3), "blk.3.fc1.weight");
  EXPECT_EQ(layerName(5), "blk.5");
  TensorKind kind;
  int layer;
  for (const char *bad :
       {"blk.0.attn_output.bias", "blk.x.attn_q.weight", "blk..ffn_up.weight",
        "blk.0", "token_embd", "rope_freqs.weight", "attn_q.weight",
        "blk.0.token_embd.weight"})
    EXPECT_FALSE(parseTensorName(bad, kind, layer)) << bad;
  int l = 0;
  std::string rest;
  ASSERT_TRUE(splitLayerName("blk.99999999999.ffn_up.weight", l, rest));
  EXPECT_EQ(l, INT_MAX);
  EXPECT_EQ(rest, "ffn_up.weight");
}

// Tests the llama row: keys, default activation, styles, tied head, and that
// an architecture missing from the table is named in one line.
TEST(ArchTable, LlamaRowAndUnknownNames) {
  const ArchInfo *llama = findArch("llama");
  ASSERT_TRUE(llama);
  EXPECT_EQ(llama->key(ArchKey::EmbeddingLength), "llama.embedding_length");
  EXPECT_EQ(llama->key(ArchKey::RmsEps),
            "llama.attention.layer_norm_rms_epsilon");
  EXPECT_EQ(llama->key(ArchKey::RopeFreqBase), "llama.rope.freq_base");
  EXPECT_EQ(llama->activation, FfnActivation::SiLU);
  EXPECT_EQ(llama->norm, NormStyle::RMSNorm);
  EXPECT_EQ(llama->rope, RopeStyle::Normal);
  EXPECT_TRUE(llama->tiedOutput);
  size_t n = 0;
  const ArchInfo *rows = archTable(n);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(&rows[0], llama);
  const ArchInfo *qwen2 = findArch("qwen2");
  ASSERT_NE(qwen2, nullptr);
  EXPECT_EQ(qwen2->activation, FfnActivation::SiLU);
  EXPECT_EQ(qwen2->rope, RopeStyle::Neox);
  EXPECT_FALSE(qwen2->scaleEmbedding);
  const ArchInfo *gemma3 = findArch("gemma3");
  ASSERT_NE(gemma3, nullptr);
  EXPECT_EQ(gemma3->activation, FfnActivation::GeluTanh);
  EXPECT_EQ(gemma3->rope, RopeStyle::Neox);
  EXPECT_TRUE(gemma3->scaleEmbedding);
  EXPECT_EQ(gemma3->slidingWindowPattern, 6);
  EXPECT_EQ(findArch("rwkv6"), nullptr);
  EXPECT_EQ(findArch(""), nullptr);
  EXPECT_EQ(unsupportedArchMessage("rwkv6"), kUnknown);
}

// Tests that the tiny generated model holds exactly the table's tensors for
// its layer count (and, as a PowerInfer file, the table's predictor
// tensors), and every hyperparameter key of the row.
TEST_F(ArchTest, GeneratedModelHasExactlyTheTableNames) {
  for (const auto &[path, pwri] :
       {std::make_pair(model_, false), std::make_pair(pwri_, true)}) {
    std::string error;
    auto f = GGUFFile::open(path, error);
    ASSERT_TRUE(f) << error;
    const ArchInfo *arch = archOf(*f, error);
    ASSERT_TRUE(arch) << error;
    uint32_t nLayer = 0;
    ASSERT_TRUE(f->getU32(arch->key(ArchKey::BlockCount), nLayer, error));
    EXPECT_EQ(fileNames(*f), tableNames(*arch, int(nLayer), pwri)) << path;
    for (ArchKey k :
         {ArchKey::ContextLength, ArchKey::EmbeddingLength, ArchKey::BlockCount,
          ArchKey::FeedForwardLength, ArchKey::HeadCount, ArchKey::HeadCountKv,
          ArchKey::RmsEps, ArchKey::RopeFreqBase, ArchKey::RopeDimensionCount,
          ArchKey::VocabSize})
      EXPECT_TRUE(f->find(arch->key(k))) << arch->key(k);
  }
}

// Tests that every tensor the loader binds is named by the table: the bound
// matrices carry the table's names, and a copy without any one of the
// table's tensors is refused naming it (but for the output head, which the
// llama row lets the embedding stand in for). makeModelSpec and
// readModelSpec list the same names.
TEST_F(ArchTest, LoaderBindsTheTableNames) {
  std::string error;
  auto model = Model::open(model_, error);
  ASSERT_TRUE(model) << error;
  const ArchInfo &arch = model->arch();
  const int nLayer = model->params().nLayer;
  EXPECT_STREQ(model->tokenEmbedding().name,
               tensorName(TensorKind::TokenEmbd).c_str());
  EXPECT_STREQ(model->output().name, tensorName(TensorKind::Output).c_str());
  for (int l = 0; l < nLayer; ++l) {
    const LayerWeights &w = model->layer(l);
    using K = TensorKind;
    for (const auto &[kind, weight] :
         {std::make_pair(K::AttnQ, &w.wq), std::make_pair(K::AttnK, &w.wk),
          std::make_pair(K::AttnV, &w.wv), std::make_pair(K::AttnOutput, &w.wo),
          std::make_pair(K::FfnGate, &w.gate), std::make_pair(K::FfnUp, &w.up),
          std::make_pair(K::FfnDown, &w.down)})
      EXPECT_STREQ(weight->name, tensorName(kind, l).c_str());
  }

  for (const std::string &name : tableNames(arch, nLayer, false)) {
    std::string path = rewrite("without-" + name + ".gguf", name);
    auto m = Model::open(path, error);
    if (name == tensorName(TensorKind::Output)) {
      ASSERT_TRUE(m) << error;
      EXPECT_TRUE(m->outputTied());
      continue;
    }
    EXPECT_FALSE(m) << name;
    EXPECT_NE(error.find("tensor " + name + " is missing"), std::string::npos)
        << error;
  }

  ModelSpec spec;
  ASSERT_TRUE(readModelSpec(model->file(), spec, error)) << error;
  std::set<std::string> specNames;
  for (const auto &[name, t] : spec.tensors)
    specNames.insert(name);
  EXPECT_EQ(specNames, tableNames(arch, nLayer, false));
  ModelSpec made = makeModelSpec(model->params(), GGMLType::F16);
  specNames.clear();
  for (const auto &[name, t] : made.tensors) {
    specNames.insert(name);
    EXPECT_EQ(t.ne, spec.tensors[name].ne) << name;
  }
  EXPECT_EQ(specNames, tableNames(arch, nLayer, false));
}

// Tests that a model of an architecture the table does not know is refused
// by name, in one line, by the loader, the activation rule, the compiler's
// spec and cost model, `pinferc inspect` (which says so first and prints no
// activation) and the main job.
TEST_F(ArchTest, UnknownArchitectureIsRefusedByName) {
  std::string path = rewrite("rwkv6.gguf", "", [](GGUFWriter &w) {
    w.setString("general.architecture", "rwkv6");
  });
  std::string error;
  auto f = GGUFFile::open(path, error);
  ASSERT_TRUE(f) << error;
  auto expectRefusal = [&](const std::string &who) {
    EXPECT_NE(error.find(kUnknown), std::string::npos) << who << ": " << error;
    EXPECT_NE(error.find(path), std::string::npos) << who << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << who << ": " << error;
    error.clear();
  };
  EXPECT_FALSE(Model::load(*f, error));
  expectRefusal("loader");
  FfnActivation act;
  EXPECT_FALSE(modelActivation(*f, act, nullptr, error));
  expectRefusal("modelActivation");
  ModelSpec spec;
  EXPECT_FALSE(readModelSpec(*f, spec, error));
  expectRefusal("readModelSpec");
  ModelShape shape;
  EXPECT_FALSE(modelShapeFromGGUF(*f, shape, error));
  expectRefusal("modelShapeFromGGUF");

  std::ostringstream text, json;
  ASSERT_TRUE(inspectModel(*f, false, text, error)) << error;
  std::string report = text.str();
  // The first line says it cannot run, and why.
  EXPECT_EQ(report.substr(0, report.find('\n')),
            "runs:          no: " + std::string(kUnknown))
      << report;
  EXPECT_NE(report.find("ffn:           unknown"), std::string::npos) << report;
  EXPECT_EQ(report.find("silu"), std::string::npos) << report;
  ASSERT_TRUE(inspectModel(*f, true, json, error)) << error;
  EXPECT_NE(json.str().find("\"supported\": false"), std::string::npos)
      << json.str();
  EXPECT_NE(json.str().find("\"runs\": false"), std::string::npos)
      << json.str();
  EXPECT_NE(json.str().find("\"activation\": null"), std::string::npos)
      << json.str();

  std::string out, err;
  int rc = run(kPinferc + " " + path + " --target cpu -q -o " + dir_ + "/exe",
               out, err, dir_);
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find(kUnknown), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  rc = run(kPinferc + " inspect " + path, out, err, dir_);
  EXPECT_EQ(rc, 0) << err;
  EXPECT_EQ(out.substr(0, out.find('\n')),
            "runs:          no: " + std::string(kUnknown))
      << out;
}

} // namespace
