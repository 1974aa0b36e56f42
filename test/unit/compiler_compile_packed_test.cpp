// Tests the packed weights file directly: gate, up and predictor rows (and
// the predictor's bias) in the program's neuron order, the down projection
// transposed per neuron (exact for every source type, made from ffn_down or,
// in a source without it, from PowerInfer's ffn_down_t), other tensors
// byte for byte, and the content hash that the executable checks.
#include "codegen/PackedWeights.h"

#include "runtime/executor.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/packed_format.h"
#include "tools/genmodel/model_generator.h"

#include "program_desc_oracle.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <unistd.h>

using namespace pinfer;

namespace {

// The source type, and whether the source holds ffn_down beside
// PowerInfer's ffn_down_t (the packed down is then made from ffn_down; else
// from ffn_down_t's rows).
class PackedWeights
    : public ::testing::TestWithParam<std::tuple<GGMLType, bool>> {};

TEST_P(PackedWeights, LayoutAndHash) {
  std::string tmplBuf = pinfer::test::tempTemplate("pinfer-packed-test");
  char *tmpl = tmplBuf.data();
  ASSERT_TRUE(::mkdtemp(tmpl));
  const std::string dir = tmpl;
  GenModelConfig cfg;
  std::string error;
  ASSERT_TRUE(applyPreset("tiny", cfg, error)) << error;
  cfg.nLayer = 1;
  cfg.type = std::get<0>(GetParam());
  cfg.powerInfer = true;
  cfg.withFfnDown = std::get<1>(GetParam());
  cfg.predictorRank = 64; // rows of 64 and 128: both predictor matrices q8
  cfg.vocabPath = PINFER_FIXTURES_DIR "/vocab/ggml-vocab-llama-spm.gguf";
  GenModelReport report;
  const std::string src = dir + "/src.gguf", packed = dir + "/packed.gguf";
  const std::string gen = dir + "/gen.gguf";
  ASSERT_TRUE(generateModel(cfg, gen, report, error)) << error;
  {
    // The same model with a predictor output bias whose values are the
    // neuron ids, as pinferc-trained predictors carry one.
    auto g = GGUFFile::open(gen, error);
    ASSERT_TRUE(g) << error;
    GGUFWriter w;
    for (const GGUFKV &kv : g->metadata())
      if (kv.key != "general.alignment")
        w.set(kv.key, kv.value);
    for (const GGUFTensor &t : g->tensors())
      w.addTensorData(t.name, t.type,
                      std::vector<int64_t>(t.ne, t.ne + t.nDims), t.data,
                      t.nbytes);
    std::vector<float> bias(cfg.nFF);
    for (int64_t i = 0; i < cfg.nFF; ++i)
      bias[i] = float(i);
    w.addTensorData("blk.0.fc2.bias", GGMLType::F32, {cfg.nFF}, bias.data(),
                    bias.size() * sizeof(float));
    ASSERT_TRUE(w.write(src, error)) << error;
  }
  auto model = Model::open(src, error);
  ASSERT_TRUE(model) << error;
  const ModelParams &p = model->params();

  // A scrambled split: 100 hot neurons, the rest cold.
  ProgramDesc prog;
  ASSERT_TRUE(programAllCold(*model, SparsityMode::Predicted, prog, error))
      << error;
  std::vector<uint32_t> order;
  for (int i = 0; i < p.nFF; ++i)
    order.push_back(uint32_t((i * 97 + 5) % p.nFF));
  prog.layers[0].hot.assign(order.begin(), order.begin() + 100);
  prog.layers[0].cold.assign(order.begin() + 100, order.end());

  PackedWeightsInfo info;
  ASSERT_TRUE(writePackedWeights(*model, prog, packed, info, error)) << error;
  auto f = GGUFFile::open(packed, error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(packedWeightsHash(*f), info.hash);
  // Parallel hashing gives the same value whatever the thread count, also
  // when the data spans many chunks.
  EXPECT_EQ(packedWeightsHash(*f, 3), info.hash);
  uint64_t small = packedWeightsHash(*f, 1, 4096);
  EXPECT_NE(small, info.hash);
  for (int threads : {2, 3, 8})
    EXPECT_EQ(packedWeightsHash(*f, threads, 4096), small) << threads;
  std::string stored;
  ASSERT_TRUE(f->getString(kPackedHashKey, stored, error));
  EXPECT_EQ(stored, formatPackedHash(info.hash));
  EXPECT_FALSE(f->tensor("blk.0.ffn_down.weight"));

  const LayerWeights &w = model->layer(0);
  // From ffn_down: the model's type; from ffn_down_t: as Model::load binds
  // it (block types decoded to f32).
  EXPECT_EQ(w.down.type,
            cfg.withFfnDown ? cfg.type : downTypeFromTransposed(cfg.type));
  const GGUFTensor *gate = f->tensor("blk.0.ffn_gate.weight");
  const GGUFTensor *downT = f->tensor("blk.0.ffn_down_t.weight");
  const GGUFTensor *fc2 = f->tensor("blk.0.fc2.weight");
  const GGUFTensor *fc2Src = model->file().tensor("blk.0.fc2.weight");
  ASSERT_TRUE(gate && downT && fc2 && fc2Src);
  // From ffn_down: its transposed layout; from ffn_down_t: its own rows
  // where their type is kept (q8_0, q4_0, float types), else f32.
  EXPECT_EQ(downT->type, cfg.withFfnDown ? transposedDownType(w.down.type)
                                         : packedTypeOfTransposed(cfg.type));
  const size_t downRow =
      cfg.withFfnDown ? transposedDownRowBytes(w.down.type, p.nEmbd)
                      : rowBytes(downT->type, p.nEmbd);
  EXPECT_EQ(size_t(downT->ne[0]) * typeTraits(downT->type)->typeSize /
                typeTraits(downT->type)->blockSize,
            downRow);
  EXPECT_EQ(downT->ne[1], p.nFF);
  // Split layouts: the source's block scales, by source block.
  const DownLayout layout = downLayoutFor(w.down.type);
  const GGUFTensor *scales = f->tensor("blk.0.ffn_down_s.weight");
  EXPECT_EQ(scales != nullptr, layout != DownLayout::Rows);

  std::vector<float> down(size_t(p.nFF) * p.nEmbd), row(p.nEmbd);
  for (int e = 0; e < p.nEmbd; ++e)
    ASSERT_TRUE(dequantizeRow(w.down.type, w.down.row(e),
                              down.data() + size_t(e) * p.nFF, p.nFF));
  // Float predictor matrices are stored 8-bit, fc2's rows in packed order:
  // each value within one quantisation step of its row's source values.
  const GGUFTensor *fc1 = f->tensor("blk.0.fc1.weight");
  const GGUFTensor *fc1Src = model->file().tensor("blk.0.fc1.weight");
  ASSERT_TRUE(fc1 && fc1Src);
  const bool floatPredictor = fc2Src->type == GGMLType::F16 ||
                              fc2Src->type == GGMLType::F32 ||
                              fc2Src->type == GGMLType::BF16;
  EXPECT_EQ(fc1->type, floatPredictor ? GGMLType::Q8_0 : fc1Src->type);
  EXPECT_EQ(fc2->type, floatPredictor ? GGMLType::Q8_0 : fc2Src->type);
  auto closeRows = [](const GGUFTensor &got, int64_t gotRow,
                      const GGUFTensor &want, int64_t wantRow) {
    const int64_t n = want.ne[0];
    std::vector<float> a(n), b(n);
    dequantizeRow(got.type, got.data + gotRow * rowBytes(got.type, n),
                  a.data(), n);
    dequantizeRow(want.type, want.data + wantRow * rowBytes(want.type, n),
                  b.data(), n);
    float step = 0;
    for (float v : b)
      step = std::max(step, std::fabs(v) / 127.f);
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(a[i] - b[i]) > step * 1.001f)
        return false;
    return true;
  };
  for (int64_t r = 0; r < fc1->ne[1]; ++r)
    ASSERT_TRUE(closeRows(*fc1, r, *fc1Src, r)) << "fc1 row " << r;
  // Gate rows in packed order; Q4_0's cold rows (after the 100 hot ones,
  // which the GPU reads as blocks) scales first, the same bytes.
  std::vector<std::string> scalesFirst;
  ASSERT_TRUE(f->getStringArray(kPackedScalesFirstKey, scalesFirst, error))
      << error;
  const bool gateSf = std::find(scalesFirst.begin(), scalesFirst.end(),
                                "blk.0.ffn_gate.weight") != scalesFirst.end();
  EXPECT_EQ(gateSf, w.gate.type == GGMLType::Q4_0);
  std::vector<uint8_t> blocks(w.gate.rowBytes);
  for (int k = 0; k < p.nFF; ++k) {
    uint32_t n = order[k];
    const uint8_t *packedRow = gate->data + k * w.gate.rowBytes;
    if (gateSf && k >= 100) {
      scalesFirstToQ4_0(packedRow, blocks.data(), w.gate.cols / QK8_0);
      packedRow = blocks.data();
    }
    ASSERT_EQ(std::memcmp(packedRow, w.gate.row(n), w.gate.rowBytes), 0)
        << "gate row " << k;
    ASSERT_TRUE(closeRows(*fc2, k, *fc2Src, n)) << "fc2 row " << k;
    const uint8_t *dr = downT->data + k * downRow;
    if (layout == DownLayout::Rows) {
      ASSERT_TRUE(dequantizeRow(downT->type, dr, row.data(), p.nEmbd));
    } else {
      ASSERT_TRUE(scales && scales->type == GGMLType::F16 &&
                  scales->ne[0] == p.nEmbd && scales->ne[1] == p.nFF / 32);
      const uint16_t *sc = reinterpret_cast<const uint16_t *>(scales->data);
      for (int e = 0; e < p.nEmbd; ++e) {
        int q = layout == DownLayout::SplitQ8
                    ? int(int8_t(dr[e]))
                    : int((e % 32 < 16 ? dr[e / 32 * 16 + e % 16] & 15
                                       : dr[e / 32 * 16 + e % 16] >> 4)) -
                          8;
        row[e] = fp16ToF32(sc[(n / 32) * p.nEmbd + e]) * float(q);
      }
    }
    // Bit for bit the source's values: nothing is re-quantised.
    for (int e = 0; e < p.nEmbd; ++e)
      ASSERT_EQ(row[e], down[size_t(e) * p.nFF + n]) << k << "," << e;
  }
  const GGUFTensor *bias = f->tensor("blk.0.fc2.bias");
  ASSERT_TRUE(bias);
  for (int k = 0; k < p.nFF; ++k)
    ASSERT_EQ(reinterpret_cast<const float *>(bias->data)[k], float(order[k]))
        << "fc2 bias " << k;
  // Tensors outside the FFN are copied byte for byte, except that Q4_0
  // attention rows only the CPU multiplies go scales first (listed), with
  // the same bytes in each row.
  const GGUFTensor *q = f->tensor("blk.0.attn_q.weight");
  ASSERT_TRUE(q);
  const bool sf = std::find(scalesFirst.begin(), scalesFirst.end(),
                            "blk.0.attn_q.weight") != scalesFirst.end();
  EXPECT_EQ(sf, w.wq.type == GGMLType::Q4_0);
  if (sf) {
    std::vector<uint8_t> back(q->nbytes);
    for (int64_t r = 0; r < w.wq.rows; ++r)
      scalesFirstToQ4_0(q->data + r * w.wq.rowBytes,
                        back.data() + r * w.wq.rowBytes, w.wq.cols / QK8_0);
    EXPECT_EQ(std::memcmp(back.data(), w.wq.data, q->nbytes), 0);
    EXPECT_NE(std::memcmp(q->data, w.wq.data, q->nbytes), 0);
  } else {
    EXPECT_EQ(std::memcmp(q->data, w.wq.data, q->nbytes), 0);
  }

  // Any change to the data changes the hash.
  f.reset();
  {
    FILE *io = std::fopen(packed.c_str(), "r+b");
    ASSERT_TRUE(io);
    std::fseek(io, -1, SEEK_END);
    int c = std::fgetc(io);
    std::fseek(io, -1, SEEK_END);
    std::fputc(c ^ 1, io);
    std::fclose(io);
  }
  f = GGUFFile::open(packed, error);
  ASSERT_TRUE(f) << error;
  EXPECT_NE(packedWeightsHash(*f), info.hash);
  f.reset();
  model.reset();
  std::remove(gen.c_str());
  std::remove(src.c_str());
  std::remove(packed.c_str());
  ::rmdir(dir.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Types, PackedWeights,
    ::testing::Combine(::testing::Values(GGMLType::F32, GGMLType::F16,
                                         GGMLType::BF16, GGMLType::Q8_0,
                                         GGMLType::Q4_0),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<GGMLType, bool>> &info) {
      return std::string(typeName(std::get<0>(info.param))) +
             (std::get<1>(info.param) ? "_down" : "_downT");
    });

} // namespace
