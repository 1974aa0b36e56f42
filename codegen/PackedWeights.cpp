// Writes the packed weights file; see PackedWeights.h. The layout keys and
// the hash are defined by the runtime (runtime/packed_format.h), which reads
// the file.
#include "codegen/PackedWeights.h"

#include "runtime/gguf.h"
#include "runtime/kernels.h"
#include "runtime/packed_format.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <vector>

namespace pinfer {

namespace {

std::vector<int64_t> dims(const GGUFTensor &t) {
  return std::vector<int64_t>(t.ne, t.ne + (t.nDims ? t.nDims : 1));
}

// Replaces the placeholder hash in the written file with the real one: the
// metadata precedes the data, so the hash can only be known afterwards.
bool patchHash(const std::string &path, uint64_t hash, std::string &error) {
  std::unique_ptr<GGUFFile> f = GGUFFile::open(path, error);
  if (!f)
    return false;
  const char *key = kPackedHashKey;
  size_t keyLen = std::strlen(key);
  const uint8_t *base = f->base();
  const uint8_t *end = base + f->dataOffset();
  const uint8_t *at = nullptr;
  for (const uint8_t *p = base; p + keyLen + 12 + 16 <= end; ++p)
    if (std::memcmp(p, key, keyLen) == 0) {
      at = p + keyLen + 4 + 8; // key, value type, string length
      break;
    }
  if (!at) {
    error = path + ": key " + key + " not found after writing";
    return false;
  }
  long offset = long(at - base);
  f.reset();
  std::string hex = formatPackedHash(hash);
  FILE *out = std::fopen(path.c_str(), "r+b");
  if (!out || std::fseek(out, offset, SEEK_SET) != 0 ||
      std::fwrite(hex.data(), 1, hex.size(), out) != hex.size()) {
    if (out)
      std::fclose(out);
    error = path + ": cannot write the content hash at offset " +
            std::to_string(offset);
    return false;
  }
  return std::fclose(out) == 0;
}

// The transposed down projection of one layer in the layout of
// runtime/ggml_types.h (DownLayout): one row per neuron in packed order.
void addPackedDown(GGUFWriter &w, const Weight &down, int layer,
                   const std::vector<uint32_t> &order) {
  const std::string downT = tensorName(TensorKind::FfnDownT, layer);
  const int64_t nEmbd = down.rows, nFF = down.cols; // down is {n_ff, n_embd}
  const DownLayout layout = downLayoutFor(down.type);
  const Weight *src = &down;
  const std::vector<uint32_t> *ord = &order;
  if (layout == DownLayout::Rows) {
    GGMLType tt = transposedDownType(down.type);
    w.addTensor(downT, tt, {nEmbd, nFF},
                [src, ord, tt, nEmbd, nFF](uint8_t *dst, size_t) {
                  // Dequantise the source once, then write one row per
                  // neuron in packed order (lossless: same type).
                  std::vector<float> full(size_t(nEmbd) * nFF);
                  for (int64_t r = 0; r < nEmbd; ++r)
                    dequantizeRow(src->type, src->row(r), full.data() + r * nFF,
                                  nFF);
                  std::vector<float> row(nEmbd);
                  size_t rb = rowBytes(tt, nEmbd);
                  for (size_t k = 0; k < ord->size(); ++k) {
                    uint32_t n = (*ord)[k];
                    for (int64_t e = 0; e < nEmbd; ++e)
                      row[e] = full[size_t(e) * nFF + n];
                    quantizeRow(tt, row.data(), dst + k * rb, nEmbd);
                  }
                });
    return;
  }
  if (layout == DownLayout::SplitK) {
    const SplitKTraits &k = typeTraits(down.type)->splitK;
    const int64_t nBlocks = nFF / typeTraits(down.type)->blockSize;
    w.addTensor(downT, GGMLType::I8, {nEmbd, nFF},
                [src, ord](uint8_t *dst, size_t) {
                  packSplitKRows(*src, *ord, reinterpret_cast<int8_t *>(dst));
                });
    const struct {
      TensorKind kind;
      SplitKTable table;
      bool present;
    } tables[] = {
        {TensorKind::FfnDownS, SplitKTable::Scales, true},
        {TensorKind::FfnDownM, SplitKTable::Mins, k.mins},
        {TensorKind::FfnDownD, SplitKTable::BlockScales, true},
        {TensorKind::FfnDownDm, SplitKTable::BlockMins, k.mins},
    };
    for (const auto &t : tables) {
      if (!t.present)
        continue;
      const bool perBlock = t.table == SplitKTable::BlockScales ||
                            t.table == SplitKTable::BlockMins;
      const SplitKTable table = t.table;
      w.addTensor(tensorName(t.kind, layer),
                  perBlock ? GGMLType::F32 : GGMLType::I8,
                  {nEmbd, perBlock ? nBlocks : nFF / k.group},
                  [src, table](uint8_t *dst, size_t) {
                    packSplitKTable(*src, table, dst);
                  });
    }
    return;
  }
  const size_t rb = transposedDownRowBytes(down.type, nEmbd);
  w.addTensor(
      downT, GGMLType::I8, {int64_t(rb), nFF},
      [src, ord](uint8_t *dst, size_t) { packSplitDownRows(*src, *ord, dst); });
  w.addTensor(tensorName(TensorKind::FfnDownS, layer), GGMLType::F16,
              {nEmbd, nFF / QK8_0}, [src](uint8_t *dst, size_t) {
                packSplitDownScales(*src, reinterpret_cast<uint16_t *>(dst));
              });
}

// The same from a source holding only PowerInfer's ffn_down_t {n_embd,
// n_ff} (`downT`): it is already one row per neuron, so its rows are
// copied in packed order where the program keeps their type (`tt`,
// packedTypeOfTransposed: float types, Q8_0, Q4_0), else decoded to f32.
void addPackedDownFromT(GGUFWriter &w, const GGUFTensor &downT, GGMLType tt,
                        int layer, const std::vector<uint32_t> &order) {
  const int64_t nEmbd = downT.ne[0], nFF = downT.ne[1];
  assert(tt == downT.type || tt == GGMLType::F32);
  const GGUFTensor *src = &downT;
  const std::vector<uint32_t> *ord = &order;
  w.addTensor(
      tensorName(TensorKind::FfnDownT, layer), tt, {nEmbd, nFF},
      [src, ord, tt, nEmbd](uint8_t *dst, size_t) {
        const size_t in = rowBytes(src->type, nEmbd), out = rowBytes(tt, nEmbd);
        for (size_t k = 0; k < ord->size(); ++k) {
          const uint8_t *row = src->data + (*ord)[k] * in;
          if (src->type == tt)
            std::memcpy(dst + k * out, row, out);
          else
            dequantizeRow(src->type, row,
                          reinterpret_cast<float *>(dst + k * out), nEmbd);
        }
      });
}

} // namespace

void packSplitDownRows(const Weight &down, const std::vector<uint32_t> &order,
                       uint8_t *dst) {
  const int64_t nEmbd = down.rows, nFF = down.cols; // down is {n_ff, n_embd}
  const bool q4 = downLayoutFor(down.type) == DownLayout::SplitQ4;
  const size_t rb = transposedDownRowBytes(down.type, nEmbd);
  std::memset(dst, 0, rb * order.size());
  std::vector<uint32_t> packedRow(nFF);
  for (size_t k = 0; k < order.size(); ++k)
    packedRow[order[k]] = uint32_t(k);
  // Source block by source block, so that reads are sequential and writes
  // go to 32 rows at a time.
  for (int64_t blk = 0; blk < nFF / QK8_0; ++blk) {
    uint8_t *out[QK8_0];
    for (int at = 0; at < QK8_0; ++at)
      out[at] = dst + size_t(packedRow[blk * QK8_0 + at]) * rb;
    for (int64_t e = 0; e < nEmbd; ++e) {
      const uint8_t *row = down.row(e);
      if (!q4) {
        const BlockQ8_0 &b = reinterpret_cast<const BlockQ8_0 *>(row)[blk];
        for (int at = 0; at < QK8_0; ++at)
          out[at][e] = uint8_t(b.qs[at]);
        continue;
      }
      const BlockQ4_0 &b = reinterpret_cast<const BlockQ4_0 *>(row)[blk];
      // Output e is element e % 32 of chunk e / 32, as in a Q4_0 block.
      const int64_t c = e / 32, m = e % 32;
      for (int at = 0; at < QK8_0; ++at) {
        uint8_t v = at < 16 ? b.qs[at] & 0x0F : b.qs[at - 16] >> 4;
        out[at][c * 16 + (m % 16)] |= uint8_t(m < 16 ? v : v << 4);
      }
    }
  }
}

void packSplitDownScales(const Weight &down, uint16_t *out) {
  const int64_t nEmbd = down.rows, nFF = down.cols;
  const bool q4 = downLayoutFor(down.type) == DownLayout::SplitQ4;
  for (int64_t e = 0; e < nEmbd; ++e) {
    const uint8_t *row = down.row(e);
    for (int64_t b = 0; b < nFF / QK8_0; ++b)
      out[b * nEmbd + e] = q4 ? reinterpret_cast<const BlockQ4_0 *>(row)[b].d
                              : reinterpret_cast<const BlockQ8_0 *>(row)[b].d;
  }
}

void packSplitKRows(const Weight &down, const std::vector<uint32_t> &order,
                    int8_t *dst) {
  const int64_t nEmbd = down.rows, nFF = down.cols; // down is {n_ff, n_embd}
  const TypeTraits &t = *typeTraits(down.type);
  const int64_t qk = t.blockSize;
  std::vector<uint32_t> packedRow(nFF);
  for (size_t k = 0; k < order.size(); ++k)
    packedRow[order[k]] = uint32_t(k);
  SplitKBlock b;
  for (int64_t blk = 0; blk < nFF / qk; ++blk)
    for (int64_t e = 0; e < nEmbd; ++e) {
      t.splitK.block(down.row(e) + blk * t.typeSize, b);
      for (int64_t i = 0; i < qk; ++i)
        dst[size_t(packedRow[blk * qk + i]) * nEmbd + e] = b.q[i];
    }
}

void packSplitKTable(const Weight &down, SplitKTable table, uint8_t *dst) {
  const int64_t nEmbd = down.rows, nFF = down.cols;
  const TypeTraits &t = *typeTraits(down.type);
  const int64_t qk = t.blockSize, groups = qk / t.splitK.group;
  float *f = reinterpret_cast<float *>(dst);
  int8_t *i8 = reinterpret_cast<int8_t *>(dst);
  SplitKBlock b;
  for (int64_t e = 0; e < nEmbd; ++e)
    for (int64_t blk = 0; blk < nFF / qk; ++blk) {
      t.splitK.block(down.row(e) + blk * t.typeSize, b);
      switch (table) {
      case SplitKTable::BlockScales:
        f[blk * nEmbd + e] = b.d;
        break;
      case SplitKTable::BlockMins:
        f[blk * nEmbd + e] = b.dm;
        break;
      case SplitKTable::Scales:
      case SplitKTable::Mins:
        for (int64_t g = 0; g < groups; ++g)
          i8[(blk * groups + g) * nEmbd + e] =
              table == SplitKTable::Scales ? b.sc[g] : b.m[g];
        break;
      }
    }
}

bool writePackedWeights(
    const Model &model, const ProgramDesc &program, const std::string &path,
    PackedWeightsInfo &info, std::string &error,
    const std::function<void(uint64_t, uint64_t)> &progress) {
  const GGUFFile &src = model.file();
  const ModelParams &p = model.params();
  GGUFWriter w;
  // The source's pages leave the resident set every 256 MiB written: read
  // once, they would otherwise count as the compiler's memory, as much as
  // the model again (the written bytes go through a buffer of one tensor).
  uint64_t released = 0;
  w.setProgress([&](uint64_t done, uint64_t total) {
    if (done - released >= (uint64_t(256) << 20) || done == total) {
      src.releasePages();
      released = done;
    }
    if (progress)
      progress(done, total);
  });
  w.setAlignment(uint32_t(src.alignment()));
  for (const GGUFKV &kv : src.metadata())
    if (kv.key != "general.alignment" &&
        kv.key.compare(0, 14, "pinfer.packed.") != 0)
      w.set(kv.key, kv.value);
  // Keys the executable relies on even when the source left them implicit.
  w.setString(kFfnActivationKey, activationName(p.activation));
  w.setU32(kPackedVersionKey, kPackedVersion);
  w.setString(kPackedHashKey, formatPackedHash(0));
  std::vector<int32_t> nHot;
  for (const LayerDesc &l : program.layers)
    nHot.push_back(int32_t(l.hot.size()));
  w.set(kPackedHotKey, GGUFValue::ofI32s(nHot));
  std::vector<int32_t> downQ8;
  for (int l = 0; l < p.nLayer; ++l)
    downQ8.push_back(usesQ8Act(model.layer(l).down.type) ? 1 : 0);
  w.set(kPackedDownQ8Key, GGUFValue::ofI32s(downQ8));

  // Q4_0 rows that only the CPU multiplies (the GPU and the host fallback
  // of a GPU part read the blocks) go scales first: the AVX-512 product
  // reads them 1.9x as fast. Attention of layers whose attention is not on
  // the GPU, a head on the CPU, and when both are Q4_0 the cold rows of
  // gate and up (those after the layer's hot rows; the tensor is listed
  // when it has any).
  std::vector<std::string> scalesFirst;
  for (const GGUFTensor &t : src.tensors()) {
    int layer = -1;
    TensorKind kind = TensorKind::TokenEmbd;
    if (t.type != GGMLType::Q4_0 || t.nDims != 2 ||
        !parseTensorName(t.name, kind, layer))
      continue;
    const bool inLayer = layer >= 0 && layer < p.nLayer;
    const bool attention =
        kind == TensorKind::AttnQ || kind == TensorKind::AttnK ||
        kind == TensorKind::AttnV || kind == TensorKind::AttnOutput;
    const bool gateUp =
        kind == TensorKind::FfnGate || kind == TensorKind::FfnUp;
    if ((attention && inLayer && !program.layers[layer].attentionOnGPU) ||
        (gateUp && inLayer && !program.layers[layer].cold.empty() &&
         model.layer(layer).gate.type == GGMLType::Q4_0 &&
         model.layer(layer).up.type == GGMLType::Q4_0) ||
        (kind == TensorKind::Output && !program.headOnGPU))
      scalesFirst.push_back(t.name);
  }
  auto isScalesFirst = [&](const std::string &name) {
    return std::find(scalesFirst.begin(), scalesFirst.end(), name) !=
           scalesFirst.end();
  };
  w.set(kPackedScalesFirstKey, GGUFValue::ofStrings(scalesFirst));

  std::vector<std::vector<uint32_t>> orders(p.nLayer);
  for (int l = 0; l < p.nLayer; ++l) {
    orders[l] = program.packedOrder(l);
    // The source's down matrix multiplies neurons in source order.
    const LayerDesc &d = program.layers[l];
    bool identity = true;
    for (size_t k = 0; k < orders[l].size(); ++k)
      identity = identity && orders[l][k] == k;
    if (d.sourceDown &&
        (!identity || !src.tensor(tensorName(TensorKind::FfnDown, l)))) {
      error = path + ": layer " + std::to_string(l) +
              " keeps the source's down projection, which needs ffn_down "
              "and the neurons in source order";
      return false;
    }
  }

  for (const GGUFTensor &t : src.tensors()) {
    int layer = -1;
    TensorKind kind = TensorKind::TokenEmbd;
    // Tensors of the table in a layer of the model; every other one (a
    // global tensor, or one pinferc does not know) is copied as it is.
    bool inLayer =
        parseTensorName(t.name, kind, layer) && layer >= 0 && layer < p.nLayer;
    if (inLayer && kind == TensorKind::FfnDownT) {
      // A PowerInfer source's own transpose is replaced by one made from
      // ffn_down, the matrix the reference computes with (for a quantised
      // model the two are quantised along different axes); without
      // ffn_down, it is that matrix.
      if (!src.tensor(tensorName(TensorKind::FfnDown, layer)))
        addPackedDownFromT(w, t, program.layers[layer].downTType, layer,
                           orders[layer]);
      continue;
    }
    // Tensors with one row (or element) per neuron are stored in packed
    // order: gate, up, and the predictor's output layer fc2 {R, n_ff} with
    // its bias [n_ff].
    bool perNeuronRow =
        inLayer && (kind == TensorKind::FfnGate || kind == TensorKind::FfnUp ||
                    (kind == TensorKind::PredFc2 && t.ne[1] == p.nFF));
    bool perNeuronElem = inLayer && kind == TensorKind::PredFc2Bias &&
                         t.nDims == 1 && t.ne[0] == p.nFF &&
                         typeTraits(t.type) &&
                         typeTraits(t.type)->blockSize == 1;
    // Predictor matrices go 8-bit where their rows allow
    // (packedPredictorType): a predicted-mode token reads every row of both
    // (on the benchmark's 1B shape, f16 predictors were 86 of the 466 MB a
    // token read), and the VRAM bill of a GPU half's predictor counts them
    // so.
    bool predictorMatrix =
        kind == TensorKind::PredFc1 || kind == TensorKind::PredFc2;
    if (inLayer && predictorMatrix && t.nDims == 2 &&
        packedPredictorType(t.type, t.ne[0]) != t.type) {
      const GGUFTensor *tp = &t;
      const std::vector<uint32_t> *order =
          perNeuronRow ? &orders[layer] : nullptr;
      w.addTensor(
          t.name, GGMLType::Q8_0, dims(t), [tp, order](uint8_t *dst, size_t) {
            const int64_t cols = tp->ne[0];
            const size_t src = rowBytes(tp->type, cols),
                         out = rowBytes(GGMLType::Q8_0, cols);
            std::vector<float> row(cols);
            for (int64_t r = 0; r < tp->ne[1]; ++r) {
              size_t from = order ? (*order)[r] : size_t(r);
              dequantizeRow(tp->type, tp->data + from * src, row.data(), cols);
              quantizeRow(GGMLType::Q8_0, row.data(), dst + r * out, cols);
            }
          });
      continue;
    }
    if (inLayer && (perNeuronRow || perNeuronElem)) {
      const GGUFTensor *tp = &t;
      const size_t rb = perNeuronRow ? rowBytes(t.type, t.ne[0])
                                     : size_t(typeTraits(t.type)->typeSize);
      const std::vector<uint32_t> *order = &orders[layer];
      // Gate and up: the cold rows, after the hot ones.
      const size_t sfFrom = isScalesFirst(t.name)
                                ? program.layers[layer].hot.size()
                                : order->size();
      w.addTensor(
          t.name, t.type, dims(t),
          [tp, rb, order, sfFrom](uint8_t *dst, size_t) {
            for (size_t r = 0; r < order->size(); ++r)
              if (r >= sfFrom)
                q4_0ToScalesFirst(tp->data + (*order)[r] * rb, dst + r * rb,
                                  tp->ne[0] / QK8_0);
              else
                std::memcpy(dst + r * rb, tp->data + (*order)[r] * rb, rb);
          });
      continue;
    }
    // DownLayout::Source: ffn_down copied as it is, below.
    if (inLayer && kind == TensorKind::FfnDown &&
        !program.layers[layer].sourceDown) {
      addPackedDown(w, model.layer(layer).down, layer, orders[layer]);
      continue;
    }
    const GGUFTensor *tp = &t;
    if (isScalesFirst(t.name)) {
      w.addTensor(t.name, t.type, dims(t), [tp](uint8_t *dst, size_t) {
        const size_t rb = rowBytes(tp->type, tp->ne[0]);
        for (int64_t r = 0; r < tp->ne[1]; ++r)
          q4_0ToScalesFirst(tp->data + r * rb, dst + r * rb, tp->ne[0] / QK8_0);
      });
      continue;
    }
    w.addTensor(t.name, t.type, dims(t), [tp](uint8_t *dst, size_t n) {
      std::memcpy(dst, tp->data, std::min<size_t>(n, tp->nbytes));
    });
  }
  if (!w.write(path, error))
    return false;

  std::unique_ptr<GGUFFile> written = GGUFFile::open(path, error);
  if (!written)
    return false;
  info.hash = packedWeightsHash(*written, 1, size_t(64) << 20, true);
  info.fileBytes = written->fileSize();
  written.reset();
  return patchHash(path, info.hash, error);
}

} // namespace pinfer
