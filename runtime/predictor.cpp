// Run-time evaluation of activation predictors (see predictor.h).
#include "runtime/predictor.h"

#include "runtime/arch.h"
#include "runtime/gguf.h"
#include "runtime/kernels.h"
#include "runtime/thread_pool.h"

#include <algorithm>

namespace pinfer {

namespace {

bool bindWeight(const GGUFFile &file, const std::string &name, Weight &w,
                std::string &error) {
  const GGUFTensor *t = file.tensor(name);
  if (!t) {
    error = file.path() + ": tensor " + name + " is missing";
    return false;
  }
  const TypeTraits *info = typeTraits(t->type);
  if (!info || !info->computable) {
    error = file.path() + ": tensor " + name + " has type " +
            (info ? info->name : "unknown") + ", expected one of " +
            computableTypeNames();
    return false;
  }
  if (t->nDims != 2 || t->ne[0] % info->blockSize != 0) {
    error = file.path() + ": tensor " + name + " has shape " +
            t->shapeString() + ", expected 2 dimensions with a row length "
            "that is a multiple of " + std::to_string(info->blockSize);
    return false;
  }
  w.name = t->name.c_str();
  w.type = t->type;
  w.cols = t->ne[0];
  w.rows = t->ne[1];
  w.rowBytes = rowBytes(t->type, t->ne[0]);
  w.data = t->data;
  return true;
}

// An optional f32 vector of `n` values; null when the tensor is absent.
bool bindBias(const GGUFFile &file, const std::string &name, int64_t n,
              const float *&out, std::string &error) {
  out = nullptr;
  const GGUFTensor *t = file.tensor(name);
  if (!t)
    return true;
  if (t->type != GGMLType::F32 || t->nelements() != n) {
    error = file.path() + ": tensor " + name + " is " + typeName(t->type) +
            " " + t->shapeString() + ", expected f32 [" + std::to_string(n) +
            "]";
    return false;
  }
  out = reinterpret_cast<const float *>(t->data);
  return true;
}

} // namespace

bool bindPredictor(const GGUFFile &file, uint32_t layer, float threshold,
                   PredictorWeights &out, std::string &error) {
  const int l = int(layer);
  const std::string fc1 = tensorName(TensorKind::PredFc1, l),
                    fc2 = tensorName(TensorKind::PredFc2, l);
  PredictorWeights p;
  if (!bindWeight(file, fc1, p.fc1, error) ||
      !bindWeight(file, fc2, p.fc2, error))
    return false;
  if (p.fc2.cols != p.fc1.rows) {
    error = file.path() + ": tensor " + fc2 + " has rows of " +
            std::to_string(p.fc2.cols) + " values, expected " +
            std::to_string(p.fc1.rows) + " (the rank of " + fc1 + ")";
    return false;
  }
  if (!bindBias(file, tensorName(TensorKind::PredFc1Bias, l), p.fc1.rows, p.b1,
                error) ||
      !bindBias(file, tensorName(TensorKind::PredFc2Bias, l), p.fc2.rows, p.b2,
                error))
    return false;
  p.threshold = threshold;
  out = p;
  return true;
}

void predictorLogits(const PredictorWeights &p, const float *x,
                     PredictorScratch &s, ThreadPool *pool) {
  predictorLogits(p, x, s, pool, 0, p.nFF());
}

void predictorLogits(const PredictorWeights &p, const float *x,
                     PredictorScratch &s, ThreadPool *pool, int64_t first,
                     int64_t end, bool hiddenReady) {
  s.logits.resize(size_t(p.nFF()));
  if (!hiddenReady || s.hidden.size() != size_t(p.rank())) {
    s.hidden.resize(size_t(p.rank()));
    if (pool) {
      matvec(p.fc1, x, s.hidden.data(), *pool);
    } else {
      matvecRows(p.fc1, x, s.hidden.data(), 0, p.rank());
    }
    for (int64_t r = 0; r < p.rank(); ++r)
      s.hidden[r] = relu(s.hidden[r] + (p.b1 ? p.b1[r] : 0.f));
  }
  if (end <= first)
    return;
  // fc2's rows [first, end) as a matrix of their own: each row's product is
  // the one the whole matrix gives it.
  Weight rows = p.fc2;
  rows.data = p.fc2.row(first);
  rows.rows = end - first;
  rows.scalesFirstFrom = std::max<int64_t>(0, p.fc2.scalesFirstFrom - first);
  float *out = s.logits.data() + first;
  if (pool)
    matvec(rows, s.hidden.data(), out, *pool);
  else
    matvecRows(rows, s.hidden.data(), out, 0, rows.rows);
  if (p.b2)
    for (int64_t i = first; i < end; ++i)
      s.logits[i] += p.b2[i];
}

size_t predictActive(const PredictorWeights &p, const float *x,
                     PredictorScratch &s, std::vector<int32_t> &active,
                     ThreadPool *pool) {
  predictorLogits(p, x, s, pool);
  active.clear();
  for (int64_t i = 0; i < p.nFF(); ++i)
    if (s.logits[i] > p.threshold)
      active.push_back(int32_t(i));
  return active.size();
}

size_t predictMask(const PredictorWeights &p, const float *x,
                   PredictorScratch &s, std::vector<uint8_t> &mask,
                   ThreadPool *pool) {
  predictorLogits(p, x, s, pool);
  mask.assign(size_t((p.nFF() + 7) / 8), 0);
  size_t n = 0;
  for (int64_t i = 0; i < p.nFF(); ++i)
    if (s.logits[i] > p.threshold) {
      mask[i >> 3] |= uint8_t(1u << (i & 7));
      ++n;
    }
  return n;
}

void PredictionCounts::add(const uint8_t *predicted, const uint8_t *actual,
                           int64_t nFF) {
  for (int64_t i = 0; i < nFF; ++i) {
    bool p = (predicted[i >> 3] >> (i & 7)) & 1;
    bool a = (actual[i >> 3] >> (i & 7)) & 1;
    truePositive += p && a;
    falsePositive += p && !a;
    falseNegative += !p && a;
  }
  total += uint64_t(nFF);
}

double PredictionCounts::recall() const {
  uint64_t pos = truePositive + falseNegative;
  return pos ? double(truePositive) / double(pos) : 1.0;
}

double PredictionCounts::predictedSparsity() const {
  return total ? 1.0 - double(truePositive + falsePositive) / double(total)
               : 0.0;
}

double PredictionCounts::trueSparsity() const {
  return total ? 1.0 - double(truePositive + falseNegative) / double(total)
               : 0.0;
}

} // namespace pinfer
