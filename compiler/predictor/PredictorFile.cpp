//===- PredictorFile.cpp - trained predictors as a GGUF file --------------===//
//
// Writer and reader of predictor files (see PredictorFile.h).
//
//===----------------------------------------------------------------------===//
#include "compiler/predictor/PredictorFile.h"

#include "runtime/arch.h"
#include "runtime/gguf.h"

#include <cstring>

namespace pinfer {

namespace {

const char *const kArch = "pinfer-predictor";
const std::string kPrefix = "pinfer.predictor.";

std::string layerKey(const char *what, uint32_t l) {
  return kPrefix + what + "." + std::to_string(l);
}

// Adds a [rows][cols] f32 matrix as a {cols, rows} tensor of `type`.
void addMatrix(GGUFWriter &w, const std::string &name, GGMLType type,
               const std::vector<float> &m, int64_t cols, int64_t rows) {
  const std::vector<float> *src = &m;
  if (type == GGMLType::F32) {
    w.addTensorData(name, type, {cols, rows}, src->data(),
                    src->size() * sizeof(float));
    return;
  }
  w.addTensor(name, type, {cols, rows}, [src](uint8_t *dst, size_t nbytes) {
    uint16_t *out = reinterpret_cast<uint16_t *>(dst);
    for (size_t i = 0; i < nbytes / 2; ++i)
      out[i] = f32ToFp16((*src)[i]);
  });
}

} // namespace

LoadedPredictors::LoadedPredictors() = default;
LoadedPredictors::~LoadedPredictors() = default;
LoadedPredictors::LoadedPredictors(LoadedPredictors &&) = default;
LoadedPredictors &LoadedPredictors::operator=(LoadedPredictors &&) = default;

bool writePredictorFile(const std::string &path, const PredictorSet &set,
                        std::string &error) {
  if (set.type != GGMLType::F16 && set.type != GGMLType::F32) {
    error = path + ": predictor type " + typeName(set.type) +
            ", expected f16 or f32";
    return false;
  }
  if (set.layers.size() != set.nLayer) {
    error = path + ": predictor set has " + std::to_string(set.layers.size()) +
            " layers, expected " + std::to_string(set.nLayer);
    return false;
  }
  GGUFWriter w;
  w.setString(kArchitectureKey, kArch);
  w.setString(kPrefix + "model_identity", set.modelIdentity);
  w.setString(kPrefix + "activation", set.activation);
  w.setU32(kPrefix + "n_layer", set.nLayer);
  w.setU32(kPrefix + "n_embd", set.nEmbd);
  w.setU32(kPrefix + "n_ff", set.nFF);
  w.setF32(kPrefix + "target_recall", float(set.targetRecall));
  for (uint32_t l = 0; l < set.nLayer; ++l) {
    const LayerPredictor &p = set.layers[l];
    size_t R = p.rank;
    if (p.fc1.size() != R * set.nEmbd || p.b1.size() != R ||
        p.fc2.size() != R * set.nFF || p.b2.size() != set.nFF) {
      error = path + ": predictor of layer " + std::to_string(l) +
              " has inconsistent sizes for rank " + std::to_string(R);
      return false;
    }
    w.setU32(layerKey("rank", l), p.rank);
    w.setF32(layerKey("threshold", l), p.threshold);
    w.setF32(layerKey("recall", l), float(p.recall));
    w.setF32(layerKey("predicted_sparsity", l), float(p.predictedSparsity));
    const int layer = int(l);
    addMatrix(w, tensorName(TensorKind::PredFc1, layer), set.type, p.fc1,
              set.nEmbd, R);
    w.addTensorData(tensorName(TensorKind::PredFc1Bias, layer), GGMLType::F32,
                    {int64_t(R)}, p.b1.data(), R * sizeof(float));
    addMatrix(w, tensorName(TensorKind::PredFc2, layer), set.type, p.fc2, R,
              set.nFF);
    w.addTensorData(tensorName(TensorKind::PredFc2Bias, layer), GGMLType::F32,
                    {int64_t(set.nFF)}, p.b2.data(), set.nFF * sizeof(float));
  }
  return w.write(path, error);
}

bool readPredictorFile(const std::string &path,
                       const std::string &expectedIdentity, uint32_t nLayer,
                       uint32_t nEmbd, uint32_t nFF, LoadedPredictors &out,
                       std::string &error) {
  LoadedPredictors lp;
  lp.file = GGUFFile::open(path, error);
  if (!lp.file)
    return false;
  const GGUFFile &f = *lp.file;
  std::string arch;
  if (!f.getString(kArchitectureKey, arch, error))
    return false;
  if (arch != kArch) {
    error = path + ": key " + kArchitectureKey + " is '" + arch +
            "', expected '" + kArch + "'";
    return false;
  }
  float target = 0;
  if (!f.getString(kPrefix + "model_identity", lp.modelIdentity, error) ||
      !f.getOptString(kPrefix + "activation", lp.activation, error) ||
      !f.getU32(kPrefix + "n_layer", lp.nLayer, error) ||
      !f.getU32(kPrefix + "n_embd", lp.nEmbd, error) ||
      !f.getU32(kPrefix + "n_ff", lp.nFF, error) ||
      !f.getOptF32(kPrefix + "target_recall", target, error))
    return false;
  lp.targetRecall = target;
  if (!expectedIdentity.empty() && !lp.modelIdentity.empty() &&
      expectedIdentity != lp.modelIdentity) {
    error = path + ": predictors were trained for model " + lp.modelIdentity +
            ", expected " + expectedIdentity;
    return false;
  }
  auto checkDim = [&](const char *key, uint32_t have, uint32_t want) {
    if (want && have != want) {
      error = path + ": key " + kPrefix + key + " is " +
              std::to_string(have) + ", expected " + std::to_string(want);
      return false;
    }
    return true;
  };
  if (!checkDim("n_layer", lp.nLayer, nLayer) ||
      !checkDim("n_embd", lp.nEmbd, nEmbd) || !checkDim("n_ff", lp.nFF, nFF))
    return false;
  lp.layers.resize(lp.nLayer);
  lp.recall.assign(lp.nLayer, 0.f);
  lp.predictedSparsity.assign(lp.nLayer, 0.f);
  for (uint32_t l = 0; l < lp.nLayer; ++l) {
    float threshold = 0;
    uint32_t rank = 0;
    if (!f.getU32(layerKey("rank", l), rank, error) ||
        !f.getF32(layerKey("threshold", l), threshold, error) ||
        !f.getOptF32(layerKey("recall", l), lp.recall[l], error) ||
        !f.getOptF32(layerKey("predicted_sparsity", l),
                     lp.predictedSparsity[l], error) ||
        !bindPredictor(f, l, threshold, lp.layers[l], error))
      return false;
    const PredictorWeights &p = lp.layers[l];
    if (p.rank() != rank || p.nEmbd() != lp.nEmbd || p.nFF() != lp.nFF) {
      error = path + ": predictor of layer " + std::to_string(l) + " is {" +
              std::to_string(p.nEmbd()) + " -> " + std::to_string(p.rank()) +
              " -> " + std::to_string(p.nFF()) + "}, expected {" +
              std::to_string(lp.nEmbd) + " -> " + std::to_string(rank) +
              " -> " + std::to_string(lp.nFF) + "} from the metadata";
      return false;
    }
  }
  out = std::move(lp);
  return true;
}

} // namespace pinfer
