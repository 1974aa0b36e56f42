// Reads LLaMA-family hyperparameters from GGUF metadata and binds the weight
// tensors, by the keys and names of the architecture table (arch.h); see
// model.h. Every check here exists so that the forward pass can
// index weights without bounds checks.
#include "runtime/model.h"

#include "runtime/gguf.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace pinfer {

namespace {

// Bounds on hyperparameters: generous for any real model, small enough that
// buffers sized from them cannot overflow.
constexpr int64_t kMaxDim = int64_t(1) << 20;
constexpr int64_t kMaxLayers = 4096;

std::string typeString(GGMLType type) {
  const TypeTraits *info = typeTraits(type);
  return info ? info->name
              : "#" + std::to_string(static_cast<uint32_t>(type));
}

struct Loader {
  const GGUFFile &file;
  std::string &error;

  bool fail(const std::string &what) {
    error = file.path() + ": " + what;
    return false;
  }

  // A required positive integer hyperparameter.
  bool getDim(const std::string &key, int &out, int64_t max) {
    uint32_t v = 0;
    if (!file.getU32(key, v, error))
      return false;
    if (v == 0 || v > max)
      return fail("key " + key + ": value " + std::to_string(v) +
                  " is out of range, expected 1.." + std::to_string(max));
    out = static_cast<int>(v);
    return true;
  }
  bool getOptDim(const std::string &key, int &out, int64_t max) {
    if (!file.find(key))
      return true;
    return getDim(key, out, max);
  }

  const GGUFTensor *find(const std::string &name, int64_t ne0, int64_t ne1) {
    const GGUFTensor *t = file.tensor(name);
    if (!t) {
      fail("tensor " + name + " is missing");
      return nullptr;
    }
    bool shapeOk = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 &&
                   t->ne[3] == 1;
    if (!shapeOk) {
      std::string expected = ne1 == 1 ? "[" + std::to_string(ne0) + "]"
                                      : "[" + std::to_string(ne0) + ", " +
                                            std::to_string(ne1) + "]";
      fail("tensor " + name + " has shape " + t->shapeString() +
           ", expected " + expected);
      return nullptr;
    }
    if (!isComputable(t->type)) {
      fail("tensor " + name + " has type " + typeString(t->type) +
           "; pinferc computes " + computableTypeNames("and"));
      return nullptr;
    }
    const TypeTraits *info = typeTraits(t->type);
    if (ne0 % info->blockSize != 0) {
      fail("tensor " + name + " has rows of " + std::to_string(ne0) +
           " elements, expected a multiple of " +
           std::to_string(info->blockSize) + " for type " + info->name);
      return nullptr;
    }
    if (!t->data || t->nbytes < rowBytes(t->type, ne0) * size_t(ne1)) {
      fail("tensor " + name + " has " + std::to_string(t->nbytes) +
           " bytes of data, expected " +
           std::to_string(rowBytes(t->type, ne0) * size_t(ne1)));
      return nullptr;
    }
    return t;
  }

  bool bindMatrix(const std::string &name, int64_t ne0, int64_t ne1,
                  Weight &out) {
    const GGUFTensor *t = find(name, ne0, ne1);
    if (!t)
      return false;
    out.name = t->name.c_str();
    out.type = t->type;
    out.cols = ne0;
    out.rows = ne1;
    out.rowBytes = rowBytes(t->type, ne0);
    out.data = t->data;
    return true;
  }

  // Norm weights are small: convert them to f32 once.
  bool bindVector(const std::string &name, int64_t n, std::vector<float> &out) {
    const GGUFTensor *t = find(name, n, 1);
    if (!t)
      return false;
    out.resize(n);
    if (!dequantizeRow(t->type, t->data, out.data(), n))
      return fail("tensor " + name + ": cannot convert type " +
                  typeString(t->type) + " to f32");
    return true;
  }

  // A layer's down projection {n_ff, n_embd}: ffn_down where the file has
  // it, else PowerInfer's ffn_down_t {n_embd, n_ff} transposed once into
  // `owned`. A copy rather than a second, neuron-major down projection in
  // the forward pass: the reference stays one matvec summing in the same
  // order as for the same model stored untransposed (f32/f16/bf16: the same
  // bits, so the same logits), and the other readers of LayerWeights::down
  // (the compiler's model spec and checks) need no second path. The cost is
  // the layer's down projection in memory (f32 for block types).
  bool bindDown(int layer, const ModelParams &p, Weight &out,
                std::vector<uint8_t> &owned) {
    const std::string name = tensorName(TensorKind::FfnDownT, layer);
    if (file.tensor(tensorName(TensorKind::FfnDown, layer)) ||
        !file.tensor(name))
      return bind(TensorKind::FfnDown, layer, p, out);
    const int64_t nEmbd = p.nEmbd, nFF = p.nFF;
    const GGUFTensor *t = find(name, nEmbd, nFF); // checks shape and bytes
    if (!t)
      return false;
    const GGMLType type = downTypeFromTransposed(t->type);
    const size_t elem = typeTraits(type)->typeSize,
                 inRow = rowBytes(t->type, nEmbd);
    // Bounded by the tensor's bytes in the file: at most 8 times them.
    owned.resize(size_t(nEmbd) * size_t(nFF) * elem);
    // Row i of ffn_down_t is neuron i. In tiles of neurons, so that each
    // write is a run of adjacent elements of an output row.
    constexpr int64_t kTile = 64;
    std::vector<float> rows(type == t->type ? 0 : size_t(kTile) * nEmbd);
    const uint8_t *src[kTile];
    for (int64_t i0 = 0; i0 < nFF; i0 += kTile) {
      const int64_t n = std::min(kTile, nFF - i0);
      for (int64_t j = 0; j < n; ++j) {
        src[j] = t->data + size_t(i0 + j) * inRow;
        if (rows.empty())
          continue;
        float *f = rows.data() + size_t(j) * nEmbd;
        dequantizeRow(t->type, src[j], f, nEmbd);
        src[j] = reinterpret_cast<const uint8_t *>(f);
      }
      for (int64_t e = 0; e < nEmbd; ++e) {
        uint8_t *dst = &owned[(size_t(e) * nFF + i0) * elem];
        for (int64_t j = 0; j < n; ++j)
          std::memcpy(dst + j * elem, src[j] + e * elem, elem);
      }
    }
    out.name = t->name.c_str();
    out.type = type;
    out.cols = nFF;
    out.rows = nEmbd;
    out.rowBytes = size_t(nFF) * elem;
    out.data = owned.data();
    return true;
  }

  // A tensor of the table, of the shape the table gives for these
  // hyperparameters.
  bool bind(TensorKind kind, int layer, const ModelParams &p, Weight &out) {
    const TensorInfo &t = tensorInfo(kind);
    return bindMatrix(tensorName(kind, layer), dimValue(t.ne0, p),
                      dimValue(t.ne1, p), out);
  }
  bool bind(TensorKind kind, int layer, const ModelParams &p,
            std::vector<float> &out) {
    return bindVector(tensorName(kind, layer),
                      dimValue(tensorInfo(kind).ne0, p), out);
  }
};

// Binds one tensor of layer `layer` to where the forward pass reads it.
bool bindLayerTensor(Loader &ld, TensorKind kind, int layer,
                     const ModelParams &p, LayerWeights &l,
                     std::vector<uint8_t> &ownedDown) {
  switch (kind) {
  case TensorKind::AttnNorm:
    return ld.bind(kind, layer, p, l.attnNorm);
  case TensorKind::AttnQ:
    return ld.bind(kind, layer, p, l.wq);
  case TensorKind::AttnK:
    return ld.bind(kind, layer, p, l.wk);
  case TensorKind::AttnV:
    return ld.bind(kind, layer, p, l.wv);
  case TensorKind::AttnOutput:
    return ld.bind(kind, layer, p, l.wo);
  case TensorKind::FfnNorm:
    return ld.bind(kind, layer, p, l.ffnNorm);
  case TensorKind::FfnGate:
    return ld.bind(kind, layer, p, l.gate);
  case TensorKind::FfnUp:
    return ld.bind(kind, layer, p, l.up);
  case TensorKind::FfnDown:
    return ld.bindDown(layer, p, l.down, ownedDown);
  case TensorKind::AttnQNorm:
    return ld.bind(kind, layer, p, l.qNorm);
  case TensorKind::AttnKNorm:
    return ld.bind(kind, layer, p, l.kNorm);
  case TensorKind::PostAttnNorm:
    return ld.bind(kind, layer, p, l.postAttnNorm);
  case TensorKind::PostFfnNorm:
    return ld.bind(kind, layer, p, l.postFfnNorm);
  case TensorKind::AttnQBias:
    return ld.bind(kind, layer, p, l.bq);
  case TensorKind::AttnKBias:
    return ld.bind(kind, layer, p, l.bk);
  case TensorKind::AttnVBias:
    return ld.bind(kind, layer, p, l.bv);
  default:
    break;
  }
  assert(false && "an architecture row lists a tensor the forward pass has "
                  "no place for");
  return ld.fail("tensor " + tensorName(kind, layer) +
                 ": the forward pass has no place for it");
}

// Whether the forward pass (runtime/forward.cpp) computes this row's norm
// and rope style and reads every tensor it needs from the row.
bool computable(const ArchInfo &a) {
  if (a.norm != NormStyle::RMSNorm)
    return false;
  uint32_t seen = 0;
  for (size_t i = 0; i < a.nLayerTensors; ++i)
    seen |= 1u << int(a.layerTensors[i]);
  for (TensorKind k :
       {TensorKind::AttnNorm, TensorKind::AttnQ, TensorKind::AttnK,
        TensorKind::AttnV, TensorKind::AttnOutput, TensorKind::FfnNorm,
        TensorKind::FfnGate, TensorKind::FfnUp, TensorKind::FfnDown})
    if (!(seen & (1u << int(k))))
      return false;
  return true;
}

} // namespace

Model::~Model() = default;

std::unique_ptr<Model> Model::open(const std::string &path,
                                   std::string &error) {
  std::unique_ptr<GGUFFile> file = GGUFFile::open(path, error);
  if (!file)
    return nullptr;
  return load(std::move(file), error);
}

std::unique_ptr<GGUFFile> Model::release(std::unique_ptr<Model> model) {
  return model ? std::move(model->owned_) : nullptr;
}

std::unique_ptr<Model> Model::load(std::unique_ptr<GGUFFile> file,
                                   std::string &error) {
  std::unique_ptr<Model> model = load(*file, error);
  if (model)
    model->owned_ = std::move(file);
  return model;
}

std::unique_ptr<Model> Model::load(const GGUFFile &file, std::string &error) {
  Loader ld{file, error};
  std::unique_ptr<Model> m(new Model());
  m->file_ = &file;
  ModelParams &p = m->params_;

  const ArchInfo *arch = archOf(file, error);
  if (!arch)
    return nullptr;
  // A row the forward pass cannot compute is a table error, not the file's.
  if (!computable(*arch)) {
    ld.fail(std::string("key ") + kArchitectureKey + ": architecture '" +
            arch->name + "' (norm " + normStyleName(arch->norm) + ", rope " +
            ropeStyleName(arch->rope) +
            ") is in the table but not computed by the forward pass");
    return nullptr;
  }
  m->arch_ = arch;
  p.arch = arch->name;
  auto key = [&](ArchKey k) { return arch->key(k); };
  if (!ld.getDim(key(ArchKey::EmbeddingLength), p.nEmbd, kMaxDim) ||
      !ld.getDim(key(ArchKey::FeedForwardLength), p.nFF, kMaxDim) ||
      !ld.getDim(key(ArchKey::BlockCount), p.nLayer, kMaxLayers) ||
      !ld.getDim(key(ArchKey::HeadCount), p.nHead, kMaxDim) ||
      !ld.getDim(key(ArchKey::ContextLength), p.nCtxTrain, kMaxDim * 16))
    return nullptr;
  p.nKvHead = p.nHead;
  if (!ld.getOptDim(key(ArchKey::HeadCountKv), p.nKvHead, kMaxDim))
    return nullptr;
  if (!file.getF32(key(ArchKey::RmsEps), p.normEps, error) ||
      !file.getOptF32(key(ArchKey::RopeFreqBase), p.ropeBase, error))
    return nullptr;
  if (!(p.normEps >= 0.f && p.normEps < 1.f)) {
    ld.fail("key " + key(ArchKey::RmsEps) + ": value " +
            std::to_string(p.normEps) + " is out of range, expected [0, 1)");
    return nullptr;
  }
  if (!(p.ropeBase > 0.f)) {
    ld.fail("key " + key(ArchKey::RopeFreqBase) + ": value " +
            std::to_string(p.ropeBase) + " is out of range, expected > 0");
    return nullptr;
  }
  // The width every other check is derived from: checked against the
  // embedding matrix first, so that a wrong key is named as such.
  const std::string embdName = tensorName(TensorKind::TokenEmbd);
  if (const GGUFTensor *e = file.tensor(embdName); e && e->ne[0] != p.nEmbd) {
    ld.fail("key " + key(ArchKey::EmbeddingLength) + ": " +
            std::to_string(p.nEmbd) + ", but tensor " + embdName +
            " has rows of " + std::to_string(e->ne[0]) +
            ", expected the two to agree");
    return nullptr;
  }
  // The head size: attention.key_length where the file gives it (Gemma's
  // heads are not n_embd / n_head wide), else n_embd / n_head.
  if (file.find(key(ArchKey::KeyLength))) {
    if (!ld.getDim(key(ArchKey::KeyLength), p.headDim, kMaxDim))
      return nullptr;
    int valueLength = p.headDim;
    const std::string vkey = std::string(arch->name) + ".attention.value_length";
    if (!ld.getOptDim(vkey, valueLength, kMaxDim))
      return nullptr;
    if (valueLength != p.headDim) {
      ld.fail("key " + vkey + ": " + std::to_string(valueLength) +
              ", expected the key length " + std::to_string(p.headDim));
      return nullptr;
    }
  } else if (p.nEmbd % p.nHead != 0) {
    ld.fail("key " + key(ArchKey::HeadCount) + ": " + std::to_string(p.nHead) +
            " heads do not divide embedding_length " + std::to_string(p.nEmbd));
    return nullptr;
  } else {
    p.headDim = p.nEmbd / p.nHead;
  }
  if (p.nHead % p.nKvHead != 0) {
    ld.fail("key " + key(ArchKey::HeadCountKv) + ": " +
            std::to_string(p.nKvHead) + " KV heads do not divide the " +
            std::to_string(p.nHead) + " query heads");
    return nullptr;
  }
  if (p.headDim % 2 != 0) {
    ld.fail("key " + key(ArchKey::HeadCount) + ": head size " +
            std::to_string(p.headDim) + " is odd, expected an even size");
    return nullptr;
  }
  p.nRot = p.headDim;
  if (!ld.getOptDim(key(ArchKey::RopeDimensionCount), p.nRot, p.headDim))
    return nullptr;
  if (p.nRot % 2 != 0) {
    ld.fail("key " + key(ArchKey::RopeDimensionCount) + ": " +
            std::to_string(p.nRot) +
            " is odd, expected an even number of rotated dimensions");
    return nullptr;
  }

  if (!modelActivation(file, p.activation, nullptr, error))
    return nullptr;
  p.ropeStyle = arch->rope;
  p.scaleEmbedding = arch->scaleEmbedding;
  p.slidingWindowPattern = arch->slidingWindowPattern;
  p.ropeBaseLocal = arch->ropeBaseLocal;
  if (arch->slidingWindowPattern > 0 &&
      !ld.getOptDim(key(ArchKey::SlidingWindow), p.slidingWindow,
                    kMaxDim * 16))
    return nullptr;

  // The vocabulary size: the explicit key, else the tokenizer's token list,
  // else the embedding matrix. All present ones must agree.
  const GGUFTensor *embd = file.tensor(embdName);
  if (!embd) {
    ld.fail("tensor " + embdName + " is missing");
    return nullptr;
  }
  p.nVocab = 0;
  if (file.find(key(ArchKey::VocabSize))) {
    if (!ld.getDim(key(ArchKey::VocabSize), p.nVocab, kMaxDim * 16))
      return nullptr;
  } else if (const GGUFValue *toks = file.find("tokenizer.ggml.tokens")) {
    if (toks->type == GGUFValueType::ARRAY && !toks->arr.empty() &&
        toks->arr.size() <= size_t(kMaxDim * 16))
      p.nVocab = static_cast<int>(toks->arr.size());
  }
  if (p.nVocab == 0) {
    if (embd->ne[1] < 1 || embd->ne[1] > kMaxDim * 16) {
      ld.fail("tensor " + embdName + " has shape " + embd->shapeString() +
              ", expected [" + std::to_string(p.nEmbd) + ", n_vocab]");
      return nullptr;
    }
    p.nVocab = static_cast<int>(embd->ne[1]);
  }

  if (!ld.bind(TensorKind::TokenEmbd, -1, p, m->tokEmbd_) ||
      !ld.bind(TensorKind::OutputNorm, -1, p, m->outputNorm_))
    return nullptr;
  if (file.tensor(tensorName(TensorKind::Output)) || !arch->tiedOutput) {
    if (!ld.bind(TensorKind::Output, -1, p, m->output_))
      return nullptr;
  } else {
    m->output_ = m->tokEmbd_;
    m->outputTied_ = true;
  }

  m->layers_.resize(p.nLayer);
  m->transposedDown_.resize(p.nLayer);
  for (int i = 0; i < p.nLayer; ++i)
    for (size_t k = 0; k < arch->nLayerTensors; ++k)
      if (!bindLayerTensor(ld, arch->layerTensors[k], i, p, m->layers_[i],
                           m->transposedDown_[i]))
        return nullptr;
  // Layers the file holds beyond block_count would be ignored silently.
  for (const GGUFTensor &t : file.tensors()) {
    int layer;
    std::string rest;
    if (!splitLayerName(t.name, layer, rest))
      continue;
    if (layer >= p.nLayer) {
      ld.fail("tensor " + t.name + ": layer " + std::to_string(layer) +
              " is beyond key " + key(ArchKey::BlockCount) + " " +
              std::to_string(p.nLayer) + ", expected layers 0.." +
              std::to_string(p.nLayer - 1));
      return nullptr;
    }
  }
  return m;
}

size_t Model::weightBytes() const {
  auto bytes = [](const Weight &w) { return w.rowBytes * size_t(w.rows); };
  size_t total = bytes(tokEmbd_) + (outputTied_ ? 0 : bytes(output_)) +
                 outputNorm_.size() * sizeof(float);
  for (const LayerWeights &l : layers_)
    total += bytes(l.wq) + bytes(l.wk) + bytes(l.wv) + bytes(l.wo) +
             bytes(l.gate) + bytes(l.up) + bytes(l.down) +
             (l.attnNorm.size() + l.ffnNorm.size() + l.qNorm.size() +
              l.kNorm.size() + l.postAttnNorm.size() + l.postFfnNorm.size() +
              l.bq.size() + l.bk.size() + l.bv.size()) *
                 sizeof(float);
  return total;
}

} // namespace pinfer
