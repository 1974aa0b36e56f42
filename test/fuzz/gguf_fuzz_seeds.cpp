// Writes the seed corpus for the GGUF fuzzer: small valid files that between
// them use every metadata type, nested and empty arrays, every computable
// tensor type, custom alignment, the PowerInfer magic and a version 2
// header. Seeds are generated at test time rather than committed, and each
// one is read back before the fuzzer starts so that a broken writer cannot
// silently starve the fuzzer of valid inputs.
//
// Usage: gguf_fuzz_seeds DIR   (DIR/seeds, DIR/corpus and DIR/crashes are
// created; seeds go to DIR/seeds)
#include "fuzz_data_dir.h"
#include "runtime/gguf.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace pinfer;

namespace {

GGUFValue array(GGUFValueType et, std::vector<GGUFValue> elems) {
  GGUFValue v;
  v.type = GGUFValueType::ARRAY;
  v.elemType = et;
  v.arr = std::move(elems);
  return v;
}

GGUFValue scalar(GGUFValueType t, uint64_t u, int64_t i, double f) {
  GGUFValue v;
  v.type = t;
  v.u = u;
  v.i = i;
  v.f = f;
  return v;
}

void addTensor(GGUFWriter &w, const std::string &name, GGMLType type,
               std::vector<int64_t> ne) {
  w.addTensor(name, type, ne, [type, ne](uint8_t *dst, size_t n) {
    int64_t rows = 1;
    for (size_t k = 1; k < ne.size(); ++k)
      rows *= ne[k];
    std::vector<float> x(static_cast<size_t>(ne[0]));
    size_t rb = rowBytes(type, ne[0]);
    for (int64_t r = 0; r < rows; ++r) {
      for (size_t k = 0; k < x.size(); ++k)
        x[k] = static_cast<float>((static_cast<int64_t>(k) * 7 + r * 3) % 17) -
               8.0f;
      quantizeRow(type, x.data(), dst + r * rb, ne[0]);
    }
  });
}

bool writeSeed(const GGUFWriter &w, const std::string &path) {
  std::string err;
  if (!w.write(path, err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return false;
  }
  if (!GGUFFile::open(path, err)) {
    std::fprintf(stderr, "seed does not read back: %s\n", err.c_str());
    return false;
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  if (!fuzz::makeFuzzDataDir(dir))
    return 1;
  std::string seeds = dir + "/seeds/";
  bool ok = true;

  // Empty file: header only.
  ok &= writeSeed(GGUFWriter(), seeds + "empty.gguf");

  // Every metadata type, arrays of each, nested and empty arrays.
  {
    GGUFWriter w;
    w.setString("general.architecture", "llama");
    w.set("u8", scalar(GGUFValueType::UINT8, 200, 0, 0));
    w.set("i8", scalar(GGUFValueType::INT8, 0, -5, 0));
    w.set("u16", scalar(GGUFValueType::UINT16, 60000, 0, 0));
    w.set("i16", scalar(GGUFValueType::INT16, 0, -30000, 0));
    w.setU32("u32", 4000000000u);
    w.set("i32", GGUFValue::ofI32(-7));
    w.setF32("f32", 1.5f);
    w.setBool("bool", true);
    w.set("u64", GGUFValue::ofU64(1ull << 40));
    w.set("i64", scalar(GGUFValueType::INT64, 0, -(1ll << 40), 0));
    w.set("f64", scalar(GGUFValueType::FLOAT64, 0, 0, 1e300));
    for (uint32_t t = 0; t <= 12; ++t) {
      GGUFValueType et = static_cast<GGUFValueType>(t);
      if (et == GGUFValueType::ARRAY)
        continue;
      std::vector<GGUFValue> e;
      for (int k = 0; k < 3; ++k) {
        GGUFValue v = scalar(et, static_cast<uint64_t>(k & 1), -k, k * 0.5);
        v.s = std::string(static_cast<size_t>(k), 'a');
        e.push_back(v);
      }
      w.set(std::string("arr.") + valueTypeName(et), array(et, e));
    }
    w.set("nested", array(GGUFValueType::ARRAY,
                          {array(GGUFValueType::UINT8, {}),
                           array(GGUFValueType::ARRAY,
                                 {array(GGUFValueType::STRING,
                                        {GGUFValue::ofString("x")})})}));
    ok &= writeSeed(w, seeds + "metadata.gguf");
  }

  // A tiny vocabulary.
  {
    GGUFWriter w;
    w.setString("general.architecture", "llama");
    w.setString("tokenizer.ggml.model", "llama");
    std::vector<std::string> toks;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (int k = 0; k < 40; ++k) {
      toks.push_back(k < 3 ? (k == 0   ? "<unk>"
                              : k == 1 ? "<s>"
                                       : "</s>")
                           : "\xe2\x96\x81t" + std::to_string(k));
      scores.push_back(-static_cast<float>(k));
      types.push_back(k < 3 ? 3 : 1);
    }
    w.set("tokenizer.ggml.tokens", GGUFValue::ofStrings(toks));
    w.set("tokenizer.ggml.scores", GGUFValue::ofF32s(scores));
    w.set("tokenizer.ggml.token_type", GGUFValue::ofI32s(types));
    w.setU32("tokenizer.ggml.bos_token_id", 1);
    w.setU32("tokenizer.ggml.eos_token_id", 2);
    ok &= writeSeed(w, seeds + "vocab.gguf");
  }

  // Every computable tensor type, default alignment.
  {
    GGUFWriter w;
    w.setString("general.architecture", "llama");
    w.setU32("llama.block_count", 1);
    addTensor(w, "f32", GGMLType::F32, {3, 2});
    addTensor(w, "f16", GGMLType::F16, {5});
    addTensor(w, "bf16", GGMLType::BF16, {4, 1, 2});
    addTensor(w, "q8_0", GGMLType::Q8_0, {32, 2});
    addTensor(w, "q4_0", GGMLType::Q4_0, {64, 1, 1, 1});
    ok &= writeSeed(w, seeds + "tensors.gguf");
  }

  // PowerInfer magic, custom alignment, predictor-shaped tensors.
  {
    GGUFWriter w;
    w.setPowerInfer(true);
    w.setAlignment(64);
    w.setString("general.architecture", "llama");
    w.setF32("powerinfer.sparse_threshold", 0.0f);
    addTensor(w, "blk.0.fc1.weight", GGMLType::F16, {8, 4});
    addTensor(w, "blk.0.fc2.weight", GGMLType::F16, {4, 16});
    addTensor(w, "blk.0.ffn_down_t.weight", GGMLType::Q8_0, {32, 8});
    ok &= writeSeed(w, seeds + "powerinfer.gguf");
  }

  // Version 2: same layout, so the version field of a v3 file is patched.
  {
    GGUFWriter w;
    w.setString("general.name", "v2");
    addTensor(w, "t", GGMLType::F32, {4});
    std::string p = seeds + "v2.gguf";
    ok &= writeSeed(w, p);
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4);
    const char v2[4] = {2, 0, 0, 0};
    f.write(v2, 4);
    ok &= static_cast<bool>(f);
  }

  if (!ok)
    return 1;
  std::printf("wrote seeds to %s\n", seeds.c_str());
  return 0;
}
