// Builds a ModelSpec from a GGUF file or from a bare shape.

#include "compiler/ModelSpec.h"

#include "runtime/gguf.h"

namespace pinfer {

namespace {

std::string shapeOf(const std::vector<int64_t> &ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i)
    s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Copies one tensor's type and shape into `out`, checking what the
// compiler (not only the reference) can handle.
bool takeTensor(const GGUFFile &file, const std::string &name, bool isNorm,
                TensorSpec &out, std::string &error) {
  const GGUFTensor *t = file.tensor(name);
  if (!t) {
    error = file.path() + ": tensor " + name + " is missing";
    return false;
  }
  out.ne.assign(t->ne, t->ne + (t->nDims ? t->nDims : 1));
  if (isNorm) {
    out.type = GGMLType::F32;
    return true;
  }
  if (!isComputable(t->type)) {
    const TypeTraits *info = typeTraits(t->type);
    error = file.path() + ": tensor " + name + ": type " +
            (info ? info->name : "unknown") +
            " is not supported by the compiler, expected " +
            computableTypeNames();
    return false;
  }
  out.type = t->type;
  return true;
}

} // namespace

bool readModelSpec(const GGUFFile &file, ModelSpec &spec, std::string &error) {
  std::unique_ptr<Model> model = Model::load(file, error);
  if (!model)
    return false;
  spec = ModelSpec();
  spec.params = model->params();
  spec.tiedOutput = model->outputTied();
  std::vector<std::pair<std::string, bool>> names = {
      {"token_embd.weight", false}, {"output_norm.weight", true}};
  if (!spec.tiedOutput)
    names.push_back({"output.weight", false});
  for (int l = 0; l < spec.params.nLayer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    for (const char *n : {"attn_norm", "ffn_norm"})
      names.push_back({b + n + ".weight", true});
    for (const char *n : {"attn_q", "attn_k", "attn_v", "attn_output",
                          "ffn_gate", "ffn_up", "ffn_down"})
      names.push_back({b + n + ".weight", false});
  }
  for (const auto &[name, isNorm] : names)
    if (!takeTensor(file, name, isNorm, spec.tensors[name], error))
      return false;

  if (!file.tensor("blk.0.fc1.weight"))
    return true;
  const ModelParams &p = spec.params;
  for (int l = 0; l < p.nLayer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    TensorSpec fc1, fc2;
    if (!takeTensor(file, b + "fc1.weight", false, fc1, error) ||
        !takeTensor(file, b + "fc2.weight", false, fc2, error))
      return false;
    bool shapes = fc1.ne.size() == 2 && fc1.ne[0] == p.nEmbd &&
                  fc2.ne.size() == 2 && fc2.ne[0] == fc1.ne[1] &&
                  fc2.ne[1] == p.nFF;
    if (!shapes) {
      error = file.path() + ": tensors " + b + "fc1.weight " + shapeOf(fc1.ne) +
              " and " + b + "fc2.weight " + shapeOf(fc2.ne) + ": expected [" +
              std::to_string(p.nEmbd) + ", R] and [R, " +
              std::to_string(p.nFF) + "]";
      return false;
    }
    if (l == 0) {
      spec.fc1 = fc1;
      spec.fc2 = fc2;
    } else if (fc1.type != spec.fc1.type || fc2.type != spec.fc2.type ||
               fc1.ne != spec.fc1.ne) {
      error = file.path() + ": tensor " + b +
              "fc1.weight: predictors differ from layer 0 in type or rank, "
              "expected the same in every layer";
      return false;
    }
  }
  spec.hasPredictors = true;
  return true;
}

ModelSpec makeModelSpec(ModelParams p, GGMLType matrixType, bool tiedOutput) {
  if (p.headDim == 0 && p.nHead > 0)
    p.headDim = p.nEmbd / p.nHead;
  if (p.nRot == 0)
    p.nRot = p.headDim;
  if (p.nKvHead == 0)
    p.nKvHead = p.nHead;
  if (p.arch.empty())
    p.arch = "llama";
  ModelSpec spec;
  spec.params = p;
  spec.tiedOutput = tiedOutput;
  auto matrix = [&](const std::string &name, int64_t cols, int64_t rows) {
    spec.tensors[name] = TensorSpec{matrixType, {cols, rows}};
  };
  auto vec = [&](const std::string &name) {
    spec.tensors[name] = TensorSpec{GGMLType::F32, {p.nEmbd}};
  };
  matrix("token_embd.weight", p.nEmbd, p.nVocab);
  vec("output_norm.weight");
  if (!tiedOutput)
    matrix("output.weight", p.nEmbd, p.nVocab);
  int64_t qDim = int64_t(p.nHead) * p.headDim;
  int64_t kvDim = int64_t(p.nKvHead) * p.headDim;
  for (int l = 0; l < p.nLayer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    vec(b + "attn_norm.weight");
    vec(b + "ffn_norm.weight");
    matrix(b + "attn_q.weight", p.nEmbd, qDim);
    matrix(b + "attn_k.weight", p.nEmbd, kvDim);
    matrix(b + "attn_v.weight", p.nEmbd, kvDim);
    matrix(b + "attn_output.weight", qDim, p.nEmbd);
    matrix(b + "ffn_gate.weight", p.nEmbd, p.nFF);
    matrix(b + "ffn_up.weight", p.nEmbd, p.nFF);
    matrix(b + "ffn_down.weight", p.nFF, p.nEmbd);
  }
  return spec;
}

} // namespace pinfer
