// Reads LLaMA-family hyperparameters from GGUF metadata and binds the weight
// tensors; see model.h. Every check here exists so that the forward pass can
// index weights without bounds checks.
#include "runtime/model.h"

#include "runtime/gguf.h"

#include <cstdlib>

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
};

} // namespace

const char *activationName(FfnActivation act) {
  switch (act) {
  case FfnActivation::SiLU:
    return "silu";
  case FfnActivation::ReLU:
    return "relu";
  case FfnActivation::DReLU:
    return "drelu";
  }
  return "?";
}

bool parseActivation(const std::string &name, FfnActivation &out) {
  if (name == "silu")
    out = FfnActivation::SiLU;
  else if (name == "relu")
    out = FfnActivation::ReLU;
  else if (name == "drelu")
    out = FfnActivation::DReLU;
  else
    return false;
  return true;
}

bool modelActivation(const GGUFFile &file, FfnActivation &out,
                     std::string *source, std::string &error) {
  std::string act;
  if (!file.getOptString("pinfer.ffn_activation", act, error))
    return false;
  if (!act.empty()) {
    if (!parseActivation(act, out)) {
      error = file.path() + ": key pinfer.ffn_activation: activation '" + act +
              "' is not supported, expected silu, relu or drelu";
      return false;
    }
    if (source)
      *source = "key pinfer.ffn_activation";
    return true;
  }
  if (file.isPowerInfer()) {
    out = FfnActivation::ReLU;
    if (source)
      *source = "PowerInfer file (PWRI) without pinfer.ffn_activation";
    return true;
  }
  out = FfnActivation::SiLU;
  if (source) {
    std::string arch;
    file.getOptString("general.architecture", arch, error);
    *source = "default for architecture '" + arch +
              "' (no pinfer.ffn_activation key)";
  }
  return true;
}

Model::~Model() = default;

std::unique_ptr<Model> Model::open(const std::string &path,
                                   std::string &error) {
  std::unique_ptr<GGUFFile> file = GGUFFile::open(path, error);
  if (!file)
    return nullptr;
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

  if (!file.getString("general.architecture", p.arch, error))
    return nullptr;
  if (p.arch != "llama") {
    ld.fail("key general.architecture: architecture '" + p.arch +
            "' is not supported, expected 'llama'");
    return nullptr;
  }
  const std::string a = p.arch + ".";
  if (!ld.getDim(a + "embedding_length", p.nEmbd, kMaxDim) ||
      !ld.getDim(a + "feed_forward_length", p.nFF, kMaxDim) ||
      !ld.getDim(a + "block_count", p.nLayer, kMaxLayers) ||
      !ld.getDim(a + "attention.head_count", p.nHead, kMaxDim) ||
      !ld.getDim(a + "context_length", p.nCtxTrain, kMaxDim * 16))
    return nullptr;
  p.nKvHead = p.nHead;
  if (!ld.getOptDim(a + "attention.head_count_kv", p.nKvHead, kMaxDim))
    return nullptr;
  if (!file.getF32(a + "attention.layer_norm_rms_epsilon", p.normEps, error) ||
      !file.getOptF32(a + "rope.freq_base", p.ropeBase, error))
    return nullptr;
  if (!(p.normEps >= 0.f && p.normEps < 1.f)) {
    ld.fail("key " + a + "attention.layer_norm_rms_epsilon: value " +
            std::to_string(p.normEps) + " is out of range, expected [0, 1)");
    return nullptr;
  }
  if (!(p.ropeBase > 0.f)) {
    ld.fail("key " + a + "rope.freq_base: value " +
            std::to_string(p.ropeBase) + " is out of range, expected > 0");
    return nullptr;
  }
  // The width every other check is derived from: checked against the
  // embedding matrix first, so that a wrong key is named as such.
  if (const GGUFTensor *e = file.tensor("token_embd.weight");
      e && e->ne[0] != p.nEmbd) {
    ld.fail("key " + a + "embedding_length: " + std::to_string(p.nEmbd) +
            ", but tensor token_embd.weight has rows of " +
            std::to_string(e->ne[0]) + ", expected the two to agree");
    return nullptr;
  }
  if (p.nEmbd % p.nHead != 0) {
    ld.fail("key " + a + "attention.head_count: " + std::to_string(p.nHead) +
            " heads do not divide embedding_length " + std::to_string(p.nEmbd));
    return nullptr;
  }
  if (p.nHead % p.nKvHead != 0) {
    ld.fail("key " + a + "attention.head_count_kv: " +
            std::to_string(p.nKvHead) + " KV heads do not divide the " +
            std::to_string(p.nHead) + " query heads");
    return nullptr;
  }
  p.headDim = p.nEmbd / p.nHead;
  if (p.headDim % 2 != 0) {
    ld.fail("key " + a + "attention.head_count: head size " +
            std::to_string(p.headDim) + " is odd, expected an even size");
    return nullptr;
  }
  p.nRot = p.headDim;
  if (!ld.getOptDim(a + "rope.dimension_count", p.nRot, p.headDim))
    return nullptr;
  if (p.nRot % 2 != 0) {
    ld.fail("key " + a + "rope.dimension_count: " + std::to_string(p.nRot) +
            " is odd, expected an even number of rotated dimensions");
    return nullptr;
  }

  if (!modelActivation(file, p.activation, nullptr, error))
    return nullptr;

  // The vocabulary size: the explicit key, else the tokenizer's token list,
  // else the embedding matrix. All present ones must agree.
  const GGUFTensor *embd = file.tensor("token_embd.weight");
  if (!embd) {
    ld.fail("tensor token_embd.weight is missing");
    return nullptr;
  }
  p.nVocab = 0;
  if (file.find(a + "vocab_size")) {
    if (!ld.getDim(a + "vocab_size", p.nVocab, kMaxDim * 16))
      return nullptr;
  } else if (const GGUFValue *toks = file.find("tokenizer.ggml.tokens")) {
    if (toks->type == GGUFValueType::ARRAY && !toks->arr.empty() &&
        toks->arr.size() <= size_t(kMaxDim * 16))
      p.nVocab = static_cast<int>(toks->arr.size());
  }
  if (p.nVocab == 0) {
    if (embd->ne[1] < 1 || embd->ne[1] > kMaxDim * 16) {
      ld.fail("tensor token_embd.weight has shape " + embd->shapeString() +
              ", expected [" + std::to_string(p.nEmbd) + ", n_vocab]");
      return nullptr;
    }
    p.nVocab = static_cast<int>(embd->ne[1]);
  }

  if (!ld.bindMatrix("token_embd.weight", p.nEmbd, p.nVocab, m->tokEmbd_) ||
      !ld.bindVector("output_norm.weight", p.nEmbd, m->outputNorm_))
    return nullptr;
  if (file.tensor("output.weight")) {
    if (!ld.bindMatrix("output.weight", p.nEmbd, p.nVocab, m->output_))
      return nullptr;
  } else {
    m->output_ = m->tokEmbd_;
    m->outputTied_ = true;
  }

  m->layers_.resize(p.nLayer);
  for (int i = 0; i < p.nLayer; ++i) {
    LayerWeights &l = m->layers_[i];
    std::string b = "blk." + std::to_string(i) + ".";
    if (!ld.bindVector(b + "attn_norm.weight", p.nEmbd, l.attnNorm) ||
        !ld.bindMatrix(b + "attn_q.weight", p.nEmbd, p.nEmbd, l.wq) ||
        !ld.bindMatrix(b + "attn_k.weight", p.nEmbd, p.kvDim(), l.wk) ||
        !ld.bindMatrix(b + "attn_v.weight", p.nEmbd, p.kvDim(), l.wv) ||
        !ld.bindMatrix(b + "attn_output.weight", p.nEmbd, p.nEmbd, l.wo) ||
        !ld.bindVector(b + "ffn_norm.weight", p.nEmbd, l.ffnNorm) ||
        !ld.bindMatrix(b + "ffn_gate.weight", p.nEmbd, p.nFF, l.gate) ||
        !ld.bindMatrix(b + "ffn_up.weight", p.nEmbd, p.nFF, l.up) ||
        !ld.bindMatrix(b + "ffn_down.weight", p.nFF, p.nEmbd, l.down))
      return nullptr;
  }
  // Layers the file holds beyond block_count would be ignored silently.
  for (const GGUFTensor &t : file.tensors()) {
    if (t.name.compare(0, 4, "blk.") != 0)
      continue;
    long long layer = std::strtoll(t.name.c_str() + 4, nullptr, 10);
    if (layer >= p.nLayer) {
      ld.fail("tensor " + t.name + ": layer " + std::to_string(layer) +
              " is beyond key " + a + "block_count " +
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
             (l.attnNorm.size() + l.ffnNorm.size()) * sizeof(float);
  return total;
}

} // namespace pinfer
