// Builds a ModelSpec from a GGUF file or from a bare shape.

#include "compiler/ModelSpec.h"

#include "runtime/gguf.h"

#include <cassert>

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
  // The architecture row's tensors, as the loader bound them.
  const ArchInfo &arch = model->arch();
  for (size_t k = 0; k < arch.nGlobalTensors; ++k) {
    TensorKind kind = arch.globalTensors[k];
    if (kind == TensorKind::Output && spec.tiedOutput)
      continue;
    std::string name = tensorName(kind);
    if (!takeTensor(file, name, tensorInfo(kind).isVector, spec.tensors[name],
                    error))
      return false;
  }
  for (int l = 0; l < spec.params.nLayer; ++l)
    for (size_t k = 0; k < arch.nLayerTensors; ++k) {
      TensorKind kind = arch.layerTensors[k];
      std::string name = tensorName(kind, l);
      if (kind == TensorKind::FfnDown) {
        // As bound: a file with only PowerInfer's ffn_down_t has it
        // transposed at load (Model::load) into this {n_ff, n_embd} matrix,
        // which the packed weights are made from.
        const Weight &d = model->layer(l).down;
        spec.tensors[name] = TensorSpec{d.type, {d.cols, d.rows}};
        // Such a file's own transposed rows, which the packed weights keep
        // where their type allows (packedTypeOfTransposed).
        const std::string downT = tensorName(TensorKind::FfnDownT, l);
        const GGUFTensor *t = file.tensor(downT);
        if (t && !file.tensor(name))
          spec.tensors[downT] = TensorSpec{t->type, {t->ne[0], t->ne[1]}};
        continue;
      }
      if (!takeTensor(file, name, tensorInfo(kind).isVector, spec.tensors[name],
                      error))
        return false;
    }

  if (!hasStoredPredictors(file))
    return true;
  const ModelParams &p = spec.params;
  for (int l = 0; l < p.nLayer; ++l) {
    const std::string fc1Name = tensorName(TensorKind::PredFc1, l),
                      fc2Name = tensorName(TensorKind::PredFc2, l);
    TensorSpec fc1, fc2;
    if (!takeTensor(file, fc1Name, false, fc1, error) ||
        !takeTensor(file, fc2Name, false, fc2, error))
      return false;
    bool shapes = fc1.ne.size() == 2 && fc1.ne[0] == p.nEmbd &&
                  fc2.ne.size() == 2 && fc2.ne[0] == fc1.ne[1] &&
                  fc2.ne[1] == p.nFF;
    if (!shapes) {
      error = file.path() + ": tensors " + fc1Name + " " + shapeOf(fc1.ne) +
              " and " + fc2Name + " " + shapeOf(fc2.ne) + ": expected [" +
              std::to_string(p.nEmbd) + ", R] and [R, " +
              std::to_string(p.nFF) + "]";
      return false;
    }
    spec.fc1.push_back(fc1);
    spec.fc2.push_back(fc2);
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
  const ArchInfo *arch = findArch(p.arch);
  assert(arch && "makeModelSpec: an architecture of the table");
  ModelSpec spec;
  spec.params = p;
  spec.tiedOutput = tiedOutput && arch->tiedOutput;
  // Every tensor of the row, of the table's shape; norms f32.
  auto add = [&](TensorKind kind, int layer) {
    const TensorInfo &t = tensorInfo(kind);
    TensorSpec &out = spec.tensors[tensorName(kind, layer)];
    out.type = t.isVector ? GGMLType::F32 : matrixType;
    out.ne = {dimValue(t.ne0, p)};
    if (t.ne1 != Dim::One)
      out.ne.push_back(dimValue(t.ne1, p));
  };
  for (size_t k = 0; k < arch->nGlobalTensors; ++k)
    if (!(arch->globalTensors[k] == TensorKind::Output && spec.tiedOutput))
      add(arch->globalTensors[k], -1);
  for (int l = 0; l < p.nLayer; ++l)
    for (size_t k = 0; k < arch->nLayerTensors; ++k)
      add(arch->layerTensors[k], l);
  return spec;
}

} // namespace pinfer
