// Writes synthetic LLaMA-architecture GGUF models with planted power-law
// activation sparsity; see model_generator.h and docs/test-models.md.
//
// How a neuron is made to fire with probability p: residual dimensions
// [0, kBiasChannelDims) hold the same value e in every token embedding and no
// layer writes to them. RMSNorm only rescales, so neuron i of a layer fires
// (gate_i . x > 0) exactly when
//     beta_i * B * e  +  sum_{j >= B} g_ij * w_j * h_j  >  0,
// where beta_i is the gate weight on the bias block, g_ij the rest of the gate
// row, w the ffn_norm weights and h the residual stream. The second term is a
// sum over many roughly independent dimensions of known variance v (the
// residual's per-dimension variance, kept on a planned schedule by scaling
// every layer's output), hence about N(0, v * |g_i w|^2) (g_i w being the
// elementwise product), and choosing
//     beta_i = (Phi^-1(p_i) * sqrt(v) * |g_i w|  -  mean shift) / (B * e)
// gives P(fire) = p_i. Every element is a function of (seed, tensor, layer,
// index) only, so the output does not depend on the thread count or order.
#include "tools/genmodel/model_generator.h"

#include "runtime/gguf.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <sys/stat.h>

namespace pinfer {
namespace {

constexpr int64_t kB = kBiasChannelDims;
constexpr double kEmbdStd = 1.0;   // per-dimension std of the embedding rest
constexpr double kBiasRatio = 0.5; // |bias channel| / |embedding rest|
// Variance added to each residual dimension over the whole depth, relative
// to the embedding's, by all attention blocks (at full attention on one
// token) and by all FFN blocks. Small enough that every layer sees inputs of
// nearly the same statistics, large enough that context and depth matter.
constexpr double kAttnShare = 0.1;
constexpr double kFfnShare = 0.6;
// Planned mean of the attention-averaging factor (1 at the first position,
// about 1/T for a uniform mix of T unrelated tokens).
constexpr double kAttnMix = 0.5;
constexpr double kQKVar = 1.5;       // variance of q and k elements
constexpr double kLogitStd = 3.0;    // logit spread over the vocabulary
constexpr double kNormJitter = 0.15; // std of norm weights around 1

enum class Stream : uint64_t {
  Embd = 1,
  AttnNorm,
  Wq,
  Wk,
  Wv,
  Wo,
  FfnNorm,
  GateLowRankP,
  GateLowRankU,
  GateNoise,
  Up,
  Down,
  OutputNorm,
  Output,
  Permutation,
  AttnBias,
};

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// Counter-based generator: value `idx` of stream (seed, kind, layer).
struct Rng {
  uint64_t key;
  Rng(uint64_t seed, Stream kind, int64_t layer) {
    key = mix64(mix64(seed + 0x9e3779b97f4a7c15ull) ^
                (static_cast<uint64_t>(kind) << 40) ^
                mix64(static_cast<uint64_t>(layer + 1)));
  }
  uint64_t bits(uint64_t idx) const {
    return mix64(key + (idx + 1) * 0x9e3779b97f4a7c15ull);
  }
  // Zero mean, unit variance, bell-shaped (sum of four 16-bit uniforms):
  // one hash per value, which keeps a 7B-sized file cheap to generate.
  float gauss(uint64_t idx) const {
    uint64_t h = bits(idx);
    double s = double(h & 0xffff) + double((h >> 16) & 0xffff) +
               double((h >> 32) & 0xffff) + double(h >> 48);
    return float((s - 2.0 * 65535.0) * (1.7320508075688772 / 65536.0));
  }
};

double normalCdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
double normalPdf(double z) {
  return std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI);
}

// E[relu(X)] and E[relu(X)^2] for X ~ N(z*s, s^2).
void reluMoments(double z, double s, double &m1, double &m2) {
  double P = normalCdf(z), f = normalPdf(z);
  m1 = s * (z * P + f);
  m2 = s * s * ((z * z + 1) * P + z * f);
}

// E[silu(X)] and E[silu(X)^2] for X ~ N(z*s, s^2), by quadrature.
void siluMoments(double z, double s, double &m1, double &m2) {
  constexpr int kSteps = 256;
  constexpr double kLo = -8.0, kHi = 8.0, kH = (kHi - kLo) / kSteps;
  double a = 0, b = 0, wsum = 0;
  for (int k = 0; k <= kSteps; ++k) {
    double t = kLo + k * kH;
    double w = normalPdf(t);
    double xv = s * (z + t);
    double y = xv / (1.0 + std::exp(-xv));
    a += w * y;
    b += w * y * y;
    wsum += w;
  }
  m1 = a / wsum;
  m2 = b / wsum;
}

// Models can be generated in every computable type (runtime/type_table.h).
bool isGeneratable(GGMLType t) { return isComputable(t); }

// llama_ftype of a model whose matrices are all `t`: its row's.
uint32_t fileTypeOf(GGMLType t) {
  const TypeTraits *row = typeTraits(t);
  return row && row->computable ? row->fileType : 0;
}

// Replaces `row` by what it becomes once stored as `type` and read back.
void roundTrip(GGMLType type, float *row, int64_t n,
               std::vector<uint8_t> &tmp) {
  if (type == GGMLType::F32)
    return;
  tmp.resize(rowBytes(type, n));
  quantizeRow(type, row, tmp.data(), n);
  dequantizeRow(type, tmp.data(), row, n);
}

struct TensorSpec {
  std::string name;
  GGMLType type;
  std::vector<int64_t> ne;
};

uint64_t tensorBytes(const TensorSpec &t) {
  uint64_t rows = 1;
  for (size_t i = 1; i < t.ne.size(); ++i)
    rows *= uint64_t(t.ne[i]);
  return rowBytes(t.type, t.ne[0]) * rows;
}

GGMLType predictorType(const GenModelConfig &cfg) {
  return cfg.type == GGMLType::F32 ? GGMLType::F32 : GGMLType::F16;
}

// Whether the architecture's layer has Qwen2's Q/K/V biases.
bool hasAttnBiases(const GenModelConfig &cfg) {
  const ArchInfo *a = findArch(cfg.arch);
  if (!a)
    return false;
  for (size_t k = 0; k < a->nLayerTensors; ++k)
    if (a->layerTensors[k] == TensorKind::AttnQBias)
      return true;
  return false;
}

std::vector<TensorSpec> tensorList(const GenModelConfig &cfg, int64_t nVocab) {
  const int64_t n = cfg.nEmbd, kv = cfg.nKVHead * (cfg.nEmbd / cfg.nHead);
  const GGMLType t = cfg.type;
  std::vector<TensorSpec> out;
  using K = TensorKind;
  out.push_back({tensorName(K::TokenEmbd), t, {n, nVocab}});
  for (int l = 0; l < int(cfg.nLayer); ++l) {
    out.push_back({tensorName(K::AttnNorm, l), GGMLType::F32, {n}});
    out.push_back({tensorName(K::AttnQ, l), t, {n, n}});
    out.push_back({tensorName(K::AttnK, l), t, {n, kv}});
    out.push_back({tensorName(K::AttnV, l), t, {n, kv}});
    if (hasAttnBiases(cfg)) {
      out.push_back({tensorName(K::AttnQBias, l), GGMLType::F32, {n}});
      out.push_back({tensorName(K::AttnKBias, l), GGMLType::F32, {kv}});
      out.push_back({tensorName(K::AttnVBias, l), GGMLType::F32, {kv}});
    }
    out.push_back({tensorName(K::AttnOutput, l), t, {n, n}});
    out.push_back({tensorName(K::FfnNorm, l), GGMLType::F32, {n}});
    out.push_back({tensorName(K::FfnGate, l), t, {n, cfg.nFF}});
    out.push_back({tensorName(K::FfnUp, l), t, {n, cfg.nFF}});
    // PowerInfer's own files hold the down projection only transposed
    // (ffn_down_t): its loader refuses a file holding a tensor it does not
    // create, ffn_down included. --with-ffn-down keeps it for pinferc, which
    // then packs a quantised model's down projection at its own size
    // (codegen/PackedWeights.cpp) rather than in f32.
    if (!cfg.powerInfer || cfg.withFfnDown)
      out.push_back({tensorName(K::FfnDown, l), t, {cfg.nFF, n}});
    if (!cfg.powerInfer)
      continue;
    int64_t r = effectivePredictorRank(cfg);
    out.push_back({tensorName(K::PredFc1, l), predictorType(cfg), {n, r}});
    out.push_back(
        {tensorName(K::PredFc2, l), predictorType(cfg), {r, cfg.nFF}});
    out.push_back({tensorName(K::FfnDownT, l), t, {n, cfg.nFF}});
  }
  out.push_back({tensorName(K::OutputNorm), GGMLType::F32, {n}});
  if (!cfg.tiedOutput)
    out.push_back({tensorName(K::Output), t, {n, nVocab}});
  return out;
}

// Everything about one layer that the fill callbacks need and that can be
// decided before any weight is written.
struct LayerPlan {
  double vFfn = 0; // residual noise variance per dimension at the FFN input
  double sigmaQK = 0, sigmaV = 0, sigmaO = 0;
  double sigmaGate = 0, sigmaUp = 0, sigmaDown = 0, sigmaU = 0;
  std::vector<float> attnNorm, ffnNorm; // [n_embd]
  std::vector<float> rate;              // [n_ff] planted firing probability
  std::vector<float> zGate;   // [n_ff] Phi^-1 of the gate's firing probability
  std::vector<float> zUp;     // [n_ff] drelu only
  std::vector<float> meanAct; // [n_ff] E[activation product], drelu only
};

class Generator {
public:
  Generator(const GenModelConfig &cfg, int64_t nVocab)
      : cfg_(cfg), nVocab_(nVocab), n_(cfg.nEmbd),
        pool_(cfg.threads > 0 ? cfg.threads : ThreadPool::hardwareThreads()) {}

  void plan();
  void addTensors(GGUFWriter &w);
  const LayerPlan &layer(int64_t l) const { return layers_[l]; }
  const PowerLawFit &fit() const { return fit_; }

private:
  template <typename RowFn>
  void fillRows(uint8_t *dst, GGMLType type, int64_t cols, int64_t rows,
                const RowFn &rowFn);
  void normWeights(Stream kind, int64_t layer, float *out) const;
  void embdRow(int64_t t, float *out) const;
  void plainRow(Stream kind, int64_t layer, int64_t row, double sigma,
                float *out) const;
  void gateRow(int64_t l, int64_t i, float *out, std::vector<uint8_t> &tmp,
               float *betaOut);
  void upRow(int64_t l, int64_t i, float *out, std::vector<uint8_t> &tmp);
  void downElems(int64_t l, int64_t j, float *out) const; // ffn_down row j
  const std::vector<float> &lowRankP(int64_t l);
  const std::vector<float> &meanShift(int64_t l); // at layer l's FFN input
  const std::vector<float> &gateBias(int64_t l);
  double biasShift(const float *row, int64_t l, const std::vector<float> &w);

  const GenModelConfig &cfg_;
  const int64_t nVocab_;
  const int64_t n_;
  ThreadPool pool_;
  PowerLawFit fit_;
  double e_ = 0, eEff_ = 0; // bias channel value, and as stored
  int64_t gateRank_ = 0, predRank_ = 0;
  double sigmaOut_ = 0;
  std::vector<float> outputNorm_;
  std::vector<LayerPlan> layers_;
  std::mutex cacheMutex_;
  std::map<int64_t, std::vector<float>> p_, mean_, beta_;
};

template <typename RowFn>
void Generator::fillRows(uint8_t *dst, GGMLType type, int64_t cols,
                         int64_t rows, const RowFn &rowFn) {
  const size_t rb = rowBytes(type, cols);
  pool_.parallelFor(rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(cols);
    std::vector<uint8_t> tmp;
    for (int64_t r = r0; r < r1; ++r) {
      std::fill(row.begin(), row.end(), 0.f);
      rowFn(r, row.data(), tmp);
      quantizeRow(type, row.data(), dst + r * rb, cols);
    }
  });
}

void Generator::normWeights(Stream kind, int64_t layer, float *out) const {
  Rng rng(cfg_.seed, kind, layer);
  for (int64_t j = 0; j < n_; ++j)
    out[j] = j < kB ? 1.f : float(1.0 + kNormJitter * rng.gauss(j));
}

void Generator::embdRow(int64_t t, float *out) const {
  // The rest of each row is scaled to exactly the planned norm so that every
  // token presents the same ratio of bias channel to signal.
  Rng rng(cfg_.seed, Stream::Embd, 0);
  double ss = 0;
  for (int64_t j = kB; j < n_; ++j) {
    out[j] = rng.gauss(uint64_t(t) * n_ + j);
    ss += double(out[j]) * out[j];
  }
  double scale = kEmbdStd * std::sqrt(double(n_ - kB) / std::max(ss, 1e-30));
  for (int64_t j = kB; j < n_; ++j)
    out[j] = float(out[j] * scale);
  for (int64_t j = 0; j < kB; ++j)
    out[j] = float(e_);
}

// A random row that ignores the bias channel (zero on [0, B)).
void Generator::plainRow(Stream kind, int64_t layer, int64_t row, double sigma,
                         float *out) const {
  Rng rng(cfg_.seed, kind, layer);
  for (int64_t j = kB; j < n_; ++j)
    out[j] = float(sigma * rng.gauss(uint64_t(row) * n_ + j));
}

const std::vector<float> &Generator::lowRankP(int64_t l) {
  std::lock_guard<std::mutex> lock(cacheMutex_);
  auto it = p_.find(l);
  if (it != p_.end())
    return it->second;
  // [gate_rank][n_embd], zero on the bias channel, rows of about unit norm.
  std::vector<float> p(size_t(gateRank_) * n_, 0.f);
  Rng rng(cfg_.seed, Stream::GateLowRankP, l);
  double s = 1.0 / std::sqrt(double(n_ - kB));
  for (int64_t k = 0; k < gateRank_; ++k)
    for (int64_t j = kB; j < n_; ++j)
      p[k * n_ + j] = float(s * rng.gauss(uint64_t(k) * n_ + j));
  p_.clear(); // one layer at a time bounds memory on deep models
  return p_[l] = std::move(p);
}

// sum_j row_j * w_j * M_j: what the accumulated mean of the residual stream
// adds to this row's pre-activation, in the units of the firing condition.
double Generator::biasShift(const float *row, int64_t l,
                            const std::vector<float> &w) {
  if (cfg_.activation != FfnActivation::DReLU || l == 0)
    return 0;
  const std::vector<float> &m = meanShift(l);
  double s = 0;
  for (int64_t j = kB; j < n_; ++j)
    s += double(row[j]) * w[j] * m[j];
  return s;
}

void Generator::gateRow(int64_t l, int64_t i, float *out,
                        std::vector<uint8_t> &tmp, float *betaOut) {
  const LayerPlan &lp = layers_[l];
  const std::vector<float> &p = lowRankP(l);
  // Low-rank part sqrt(rho) * U_i P (what the predictor sees) plus
  // independent noise sqrt(1 - rho) * N_i; both of element variance
  // sigmaGate^2.
  double rho = cfg_.predictorFidelity;
  Rng ru(cfg_.seed, Stream::GateLowRankU, l),
      rn(cfg_.seed, Stream::GateNoise, l);
  double a = std::sqrt(rho), b = std::sqrt(1 - rho) * lp.sigmaGate;
  for (int64_t j = kB; j < n_; ++j)
    out[j] = float(b * rn.gauss(uint64_t(i) * n_ + j));
  for (int64_t k = 0; k < gateRank_; ++k) {
    float u = float(a * lp.sigmaU * ru.gauss(uint64_t(i) * gateRank_ + k));
    const float *pk = p.data() + k * n_;
    for (int64_t j = kB; j < n_; ++j)
      out[j] += u * pk[j];
  }
  // The spread is measured on the row as it will be stored.
  roundTrip(cfg_.type, out, n_, tmp);
  double ss = 0;
  for (int64_t j = kB; j < n_; ++j) {
    double gw = double(out[j]) * lp.ffnNorm[j];
    ss += gw * gw;
  }
  double sigma = std::sqrt(lp.vFfn * ss);
  double beta = (lp.zGate[i] * sigma - biasShift(out, l, lp.ffnNorm)) /
                (double(kB) * eEff_);
  for (int64_t j = 0; j < kB; ++j)
    out[j] = float(beta);
  if (betaOut) {
    roundTrip(cfg_.type, out, kB, tmp);
    *betaOut = out[0];
  }
}

void Generator::upRow(int64_t l, int64_t i, float *out,
                      std::vector<uint8_t> &tmp) {
  const LayerPlan &lp = layers_[l];
  plainRow(Stream::Up, l, i, lp.sigmaUp, out);
  if (cfg_.activation != FfnActivation::DReLU)
    return;
  // dReLU: the up projection is gated by a ReLU too, biased the same way.
  roundTrip(cfg_.type, out, n_, tmp);
  double ss = 0;
  for (int64_t j = kB; j < n_; ++j) {
    double uw = double(out[j]) * lp.ffnNorm[j];
    ss += uw * uw;
  }
  double beta =
      (lp.zUp[i] * std::sqrt(lp.vFfn * ss) - biasShift(out, l, lp.ffnNorm)) /
      (double(kB) * eEff_);
  for (int64_t j = 0; j < kB; ++j)
    out[j] = float(beta);
}

// Row j (output dimension) of ffn_down: element i is neuron i's weight.
// Indexed neuron-major so that ffn_down_t (row i = neuron i) holds the same
// values transposed.
void Generator::downElems(int64_t l, int64_t j, float *out) const {
  if (j < kB)
    return; // no layer writes to the bias channel
  Rng rng(cfg_.seed, Stream::Down, l);
  double s = layers_[l].sigmaDown;
  for (int64_t i = 0; i < cfg_.nFF; ++i)
    out[i] = float(s * rng.gauss(uint64_t(i) * n_ + j));
}

// Mean of the residual stream at layer l's FFN input: zero except for dReLU,
// whose activation products are non-negative and so push a fixed vector
// (down . E[a]) into the stream at every layer. Later gates compensate it.
const std::vector<float> &Generator::meanShift(int64_t l) {
  {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    auto it = mean_.find(l);
    if (it != mean_.end())
      return it->second;
  }
  std::vector<float> m(n_, 0.f);
  if (l > 0 && cfg_.activation == FfnActivation::DReLU) {
    m = meanShift(l - 1);
    const LayerPlan &prev = layers_[l - 1];
    pool_.parallelFor(n_ - kB, [&](int64_t r0, int64_t r1) {
      std::vector<float> row(cfg_.nFF);
      std::vector<uint8_t> tmp;
      for (int64_t j = kB + r0; j < kB + r1; ++j) {
        downElems(l - 1, j, row.data());
        roundTrip(cfg_.type, row.data(), cfg_.nFF, tmp);
        double s = 0;
        for (int64_t i = 0; i < cfg_.nFF; ++i)
          s += double(row[i]) * prev.meanAct[i];
        m[j] += float(s);
      }
    });
  }
  std::lock_guard<std::mutex> lock(cacheMutex_);
  return mean_[l] = std::move(m);
}

// Effective bias-block weight of every gate row of layer l (for fc2), from
// the gate fill when it ran first, otherwise recomputed.
const std::vector<float> &Generator::gateBias(int64_t l) {
  {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    auto it = beta_.find(l);
    if (it != beta_.end())
      return it->second;
  }
  meanShift(l);
  std::vector<float> beta(cfg_.nFF);
  pool_.parallelFor(cfg_.nFF, [&](int64_t i0, int64_t i1) {
    std::vector<float> row(n_);
    std::vector<uint8_t> tmp;
    for (int64_t i = i0; i < i1; ++i)
      gateRow(l, i, row.data(), tmp, &beta[i]);
  });
  std::lock_guard<std::mutex> lock(cacheMutex_);
  return beta_[l] = std::move(beta);
}

void Generator::plan() {
  const int64_t n = n_, nff = cfg_.nFF;
  gateRank_ = plantedGateRank(cfg_);
  predRank_ = effectivePredictorRank(cfg_);
  fit_ = fitPowerLaw(nff, cfg_.activeFraction, cfg_.hotShare, cfg_.alpha,
                     cfg_.maxRate);
  std::vector<double> zByRank(nff), zSqrtByRank(nff);
  for (int64_t r = 0; r < nff; ++r) {
    zByRank[r] = inverseNormalCdf(fit_.byRank[r]);
    zSqrtByRank[r] = inverseNormalCdf(std::sqrt(double(fit_.byRank[r])));
  }

  const double s2 = kEmbdStd * kEmbdStd;
  e_ = kBiasRatio * kEmbdStd * std::sqrt(double(n - kB) / kB);
  {
    std::vector<float> blk(kB, float(e_));
    std::vector<uint8_t> tmp;
    roundTrip(cfg_.type, blk.data(), kB, tmp);
    eEff_ = blk[0];
  }
  const double epsA = kAttnShare / cfg_.nLayer, epsF = kFfnShare / cfg_.nLayer;
  auto meanSqInfo = [&](const std::vector<float> &w) {
    double s = 0;
    for (int64_t j = kB; j < n; ++j)
      s += double(w[j]) * w[j];
    return s / double(n - kB);
  };
  // Squared RMS of a residual vector with noise variance v and mean square
  // mu2 per information dimension.
  auto rms2 = [&](double v, double mu2) {
    return (kB * eEff_ * eEff_ + (n - kB) * (v + mu2)) / n;
  };

  double v = s2, mu2 = 0;
  layers_.assign(cfg_.nLayer, LayerPlan());
  for (int64_t l = 0; l < cfg_.nLayer; ++l) {
    LayerPlan &lp = layers_[l];
    lp.attnNorm.resize(n);
    lp.ffnNorm.resize(n);
    normWeights(Stream::AttnNorm, l, lp.attnNorm.data());
    normWeights(Stream::FfnNorm, l, lp.ffnNorm.data());

    // Attention: unit-variance values, q.k scores of std kQKVar, and an
    // output projection that adds epsA * s^2 at full attention on one token.
    double inA = (n - kB) * meanSqInfo(lp.attnNorm) * (v + mu2) / rms2(v, mu2);
    lp.sigmaV = std::sqrt(1.0 / inA);
    lp.sigmaQK = std::sqrt(kQKVar / inA);
    lp.sigmaO = std::sqrt(epsA * s2 / n);
    v += epsA * kAttnMix * s2;

    // FFN.
    lp.vFfn = v;
    lp.sigmaGate = lp.sigmaUp = 1.0 / std::sqrt(double(n));
    lp.sigmaU = lp.sigmaGate * std::sqrt(double(n - kB) / gateRank_);
    double r2 = rms2(v, mu2), w2 = meanSqInfo(lp.ffnNorm);
    double sg = std::sqrt(v * (n - kB) * lp.sigmaGate * lp.sigmaGate * w2 / r2);
    double su = std::sqrt(v * (n - kB) * lp.sigmaUp * lp.sigmaUp * w2 / r2);
    double upSecond = (v + mu2) * (n - kB) * lp.sigmaUp * lp.sigmaUp * w2 / r2;

    std::vector<int64_t> order(nff);
    for (int64_t i = 0; i < nff; ++i)
      order[i] = i;
    Rng perm(cfg_.seed, Stream::Permutation, l);
    for (int64_t i = nff - 1; i > 0; --i)
      std::swap(order[i], order[perm.bits(i) % uint64_t(i + 1)]);
    lp.rate.resize(nff);
    lp.zGate.resize(nff);
    bool drelu = cfg_.activation == FfnActivation::DReLU;
    if (drelu) {
      lp.zUp.resize(nff);
      lp.meanAct.resize(nff);
    }
    double sumVar = 0, sumMean2 = 0;
    for (int64_t r = 0; r < nff; ++r) {
      int64_t i = order[r]; // neuron i has rank r
      lp.rate[i] = fit_.byRank[r];
      double zg = drelu ? zSqrtByRank[r] : zByRank[r];
      lp.zGate[i] = float(zg);
      double g1, g2, u1 = 0, u2 = upSecond;
      if (cfg_.activation == FfnActivation::SiLU)
        siluMoments(zg, sg, g1, g2);
      else
        reluMoments(zg, sg, g1, g2);
      if (drelu) {
        lp.zUp[i] = float(zg);
        reluMoments(zg, su, u1, u2);
        lp.meanAct[i] = float(g1 * u1);
      }
      double m = g1 * u1;
      sumVar += g2 * u2 - m * m;
      sumMean2 += m * m;
    }
    lp.sigmaDown = std::sqrt(epsF * s2 / std::max(sumVar, 1e-30));
    v += epsF * s2;
    mu2 += lp.sigmaDown * lp.sigmaDown * sumMean2;
  }
  outputNorm_.resize(n);
  normWeights(Stream::OutputNorm, 0, outputNorm_.data());
  double inO = (n - kB) * meanSqInfo(outputNorm_) * (v + mu2) / rms2(v, mu2);
  sigmaOut_ = kLogitStd / std::sqrt(inO);
}

void Generator::addTensors(GGUFWriter &w) {
  const int64_t n = n_, nff = cfg_.nFF, nv = nVocab_;
  const GGMLType t = cfg_.type;
  const int64_t kvDim = cfg_.nKVHead * (cfg_.nEmbd / cfg_.nHead);
  using Tmp = std::vector<uint8_t>;

  using K = TensorKind;
  w.addTensor(tensorName(K::TokenEmbd), t, {n, nv}, [=](uint8_t *dst, size_t) {
    fillRows(dst, t, n, nv,
             [&](int64_t r, float *row, Tmp &) { embdRow(r, row); });
  });
  for (int64_t l = 0; l < cfg_.nLayer; ++l) {
    auto name = [l](TensorKind kind) { return tensorName(kind, int(l)); };
    const LayerPlan *lp = &layers_[l];
    w.addTensorData(name(K::AttnNorm), GGMLType::F32, {n}, lp->attnNorm.data(),
                    n * sizeof(float));
    struct Proj {
      TensorKind tensor;
      Stream kind;
      int64_t rows;
      double sigma;
    };
    const Proj projs[] = {{K::AttnQ, Stream::Wq, n, lp->sigmaQK},
                          {K::AttnK, Stream::Wk, kvDim, lp->sigmaQK},
                          {K::AttnV, Stream::Wv, kvDim, lp->sigmaV}};
    for (const Proj &p : projs)
      w.addTensor(name(p.tensor), t, {n, p.rows}, [=](uint8_t *dst, size_t) {
        fillRows(dst, t, n, p.rows, [&](int64_t r, float *row, Tmp &) {
          plainRow(p.kind, l, r, p.sigma, row);
        });
      });
    if (hasAttnBiases(cfg_)) {
      // Small biases, the size of a projection's typical output.
      const TensorKind biases[] = {K::AttnQBias, K::AttnKBias, K::AttnVBias};
      for (int i = 0; i < 3; ++i) {
        const int64_t rows = i == 0 ? n : kvDim;
        // Written when the file is, like the matrices.
        w.addTensor(name(biases[i]), GGMLType::F32, {rows},
                    [=](uint8_t *dst, size_t) {
                      Rng rng(cfg_.seed, Stream::AttnBias, uint64_t(l) * 3 + i);
                      float *b = reinterpret_cast<float *>(dst);
                      for (int64_t r = 0; r < rows; ++r)
                        b[r] = float(0.1 * rng.gauss(uint64_t(r)));
                    });
      }
    }
    // Output dimensions on the bias channel stay zero.
    w.addTensor(name(K::AttnOutput), t, {n, n}, [=](uint8_t *dst, size_t) {
      fillRows(dst, t, n, n, [&](int64_t r, float *row, Tmp &) {
        if (r < kB)
          return;
        Rng rng(cfg_.seed, Stream::Wo, l);
        for (int64_t j = 0; j < n; ++j)
          row[j] = float(lp->sigmaO * rng.gauss(uint64_t(r) * n + j));
      });
    });
    w.addTensorData(name(K::FfnNorm), GGMLType::F32, {n}, lp->ffnNorm.data(),
                    n * sizeof(float));
    w.addTensor(name(K::FfnGate), t, {n, nff}, [=](uint8_t *dst, size_t) {
      meanShift(l); // computed here: the pool is not reentrant
      lowRankP(l);
      std::vector<float> beta(nff);
      fillRows(dst, t, n, nff, [&](int64_t r, float *row, Tmp &tmp) {
        gateRow(l, r, row, tmp, &beta[r]);
      });
      std::lock_guard<std::mutex> lock(cacheMutex_);
      beta_[l] = std::move(beta);
    });
    w.addTensor(name(K::FfnUp), t, {n, nff}, [=](uint8_t *dst, size_t) {
      meanShift(l);
      fillRows(dst, t, n, nff,
               [&](int64_t r, float *row, Tmp &tmp) { upRow(l, r, row, tmp); });
    });
    // PowerInfer's layout has ffn_down_t instead (see tensorList).
    if (!cfg_.powerInfer || cfg_.withFfnDown)
      w.addTensor(name(K::FfnDown), t, {nff, n}, [=](uint8_t *dst, size_t) {
        fillRows(dst, t, nff, n,
                 [&](int64_t r, float *row, Tmp &) { downElems(l, r, row); });
      });
    if (!cfg_.powerInfer)
      continue;
    // Predictor: hidden unit 0 reads the bias channel, units 1..K and
    // K+1..2K read the planted projections P with both signs so that
    // relu(Px) - relu(-Px) = Px passes through; fc2 recombines them with the
    // gate's own coefficients, so a logit is the gate pre-activation minus
    // its unpredictable noise part.
    const int64_t R = predRank_, K = std::min(gateRank_, (R - 1) / 2);
    const GGMLType pt = predictorType(cfg_);
    w.addTensor(name(K::PredFc1), pt, {n, R}, [=](uint8_t *dst, size_t) {
      const std::vector<float> &p = lowRankP(l);
      fillRows(dst, pt, n, R, [&](int64_t r, float *row, Tmp &) {
        if (r == 0) {
          for (int64_t j = 0; j < kB; ++j)
            row[j] = 1.f / kB;
        } else if (r <= 2 * K) {
          int64_t k = (r - 1) % K;
          float sign = r <= K ? 1.f : -1.f;
          for (int64_t j = kB; j < n; ++j)
            row[j] = sign * p[k * n + j];
        }
      });
    });
    w.addTensor(name(K::PredFc2), pt, {R, nff}, [=](uint8_t *dst, size_t) {
      const std::vector<float> &beta = gateBias(l);
      double a = std::sqrt(cfg_.predictorFidelity);
      fillRows(dst, pt, R, nff, [&](int64_t i, float *row, Tmp &) {
        Rng ru(cfg_.seed, Stream::GateLowRankU, l);
        row[0] = beta[i] * float(kB);
        for (int64_t k = 0; k < K; ++k) {
          float u =
              float(a * lp->sigmaU * ru.gauss(uint64_t(i) * gateRank_ + k));
          row[1 + k] = u;
          row[1 + K + k] = -u;
        }
      });
    });
    w.addTensor(
        name(K::FfnDownT), t, {n, nff}, [=](uint8_t *dst, size_t) {
          fillRows(dst, t, n, nff, [&](int64_t i, float *row, Tmp &) {
            Rng rng(cfg_.seed, Stream::Down, l);
            for (int64_t j = kB; j < n; ++j)
              row[j] = float(lp->sigmaDown * rng.gauss(uint64_t(i) * n + j));
          });
        });
  }
  w.addTensorData(tensorName(K::OutputNorm), GGMLType::F32, {n},
                  outputNorm_.data(), n * sizeof(float));
  if (cfg_.tiedOutput)
    return;
  w.addTensor(tensorName(K::Output), t, {n, nv}, [=](uint8_t *dst, size_t) {
    fillRows(dst, t, n, nv, [&](int64_t r, float *row, Tmp &) {
      plainRow(Stream::Output, 0, r, sigmaOut_, row);
    });
  });
}

struct Preset {
  const char *name;
  int64_t nEmbd, nFF, nLayer, nHead, nKVHead, nCtx;
};
// tiny/small: unit and end-to-end tests; medium: the walkthrough (big
// enough that the planner splits FFNs between GPU and CPU, small enough to
// generate and profile in seconds); 1b: benchmarks (TinyLlama's dims);
// 7b: LLaMA-2-7B's dims; 70b: LLaMA-2-70B's dims, for planning.
constexpr Preset kPresets[] = {
    {"tiny", 128, 512, 2, 4, 2, 256},
    {"small", 512, 1536, 8, 8, 8, 1024},
    {"medium", 1024, 5632, 8, 16, 16, 1024},
    {"1b", 2048, 5632, 22, 32, 4, 2048},
    {"7b", 4096, 11008, 32, 32, 32, 4096},
    {"70b", 8192, 28672, 80, 64, 8, 4096},
};

bool loadVocab(const GenModelConfig &cfg, std::vector<GGUFKV> &kvs,
               int64_t &nVocab, std::string &error) {
  if (cfg.vocabPath.empty()) {
    error = "no vocabulary file given, expected a GGUF with tokenizer.* keys "
            "(--vocab)";
    return false;
  }
  std::unique_ptr<GGUFFile> f = GGUFFile::open(cfg.vocabPath, error);
  if (!f)
    return false;
  const GGUFValue *tokens = f->find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != GGUFValueType::ARRAY ||
      tokens->elemType != GGUFValueType::STRING || tokens->arr.empty()) {
    error = cfg.vocabPath +
            ": key tokenizer.ggml.tokens: missing or not a "
            "non-empty string array, expected a tokenizer vocabulary";
    return false;
  }
  nVocab = int64_t(tokens->arr.size());
  kvs.clear();
  for (const GGUFKV &kv : f->metadata())
    if (kv.key.compare(0, 10, "tokenizer.") == 0)
      kvs.push_back(kv);
  return true;
}

} // namespace

double inverseNormalCdf(double p) {
  if (p <= 0)
    return -INFINITY;
  if (p >= 1)
    return INFINITY;
  // Bisection to locate, Newton to polish: plenty fast for n_ff values.
  double lo = -40, hi = 40;
  for (int k = 0; k < 80; ++k) {
    double mid = 0.5 * (lo + hi);
    (normalCdf(mid) < p ? lo : hi) = mid;
  }
  double z = 0.5 * (lo + hi);
  for (int k = 0; k < 2; ++k) {
    double f = normalPdf(z);
    if (f <= 0)
      break;
    z -= (normalCdf(z) - p) / f;
  }
  return z;
}

PowerLawFit fitPowerLaw(int64_t n, double activeFraction, double hotShare,
                        double alpha, double maxRate) {
  PowerLawFit fit;
  fit.byRank.resize(n);
  std::vector<double> base(n); // (rank + 1)^-a for the current exponent
  auto setExponent = [&](double a) {
    for (int64_t r = 0; r < n; ++r)
      base[r] = std::exp(-a * std::log(double(r + 1)));
  };
  auto fill = [&](double scale) {
    double sum = 0;
    for (int64_t r = 0; r < n; ++r) {
      fit.byRank[r] = float(std::min(maxRate, scale * base[r]));
      sum += fit.byRank[r];
    }
    return sum / n;
  };
  // Scale giving the wanted mean for exponent a (the mean rises with it).
  auto solveScale = [&](double a) {
    setExponent(a);
    double lo = std::log(1e-12), hi = std::log(maxRate) + a * std::log(n) + 1;
    for (int k = 0; k < 100; ++k) {
      double mid = 0.5 * (lo + hi);
      (fill(std::exp(mid)) < activeFraction ? lo : hi) = mid;
    }
    return std::exp(0.5 * (lo + hi));
  };
  auto share = [&](double frac) {
    int64_t top = std::max<int64_t>(1, int64_t(std::llround(frac * n)));
    double s = 0, all = 0;
    for (int64_t r = 0; r < n; ++r) {
      all += fit.byRank[r];
      if (r < top)
        s += fit.byRank[r];
    }
    return all > 0 ? s / all : 0;
  };
  double a = alpha;
  if (!(alpha > 0)) {
    // The top-10 % share grows with the exponent; bisect for the target.
    double lo = 0, hi = 8;
    fill(solveScale(hi));
    if (share(0.1) < hotShare) {
      a = hi;
      fit.hotShareReached = false;
    } else {
      for (int k = 0; k < 50; ++k) {
        double mid = 0.5 * (lo + hi);
        fill(solveScale(mid));
        (share(0.1) < hotShare ? lo : hi) = mid;
      }
      a = 0.5 * (lo + hi);
    }
  }
  fit.alpha = a;
  fit.scale = solveScale(a);
  fit.meanRate = fill(fit.scale);
  fit.top1Share = share(0.01);
  fit.top10Share = share(0.10);
  fit.top20Share = share(0.20);
  return fit;
}

std::vector<std::string> presetNames() {
  std::vector<std::string> out;
  for (const Preset &p : kPresets)
    out.push_back(p.name);
  return out;
}

bool applyPreset(const std::string &name, GenModelConfig &cfg,
                 std::string &error) {
  for (const Preset &p : kPresets) {
    if (name != p.name)
      continue;
    cfg.nEmbd = p.nEmbd;
    cfg.nFF = p.nFF;
    cfg.nLayer = p.nLayer;
    cfg.nHead = p.nHead;
    cfg.nKVHead = p.nKVHead;
    cfg.nCtx = p.nCtx;
    return true;
  }
  error = "unknown preset '" + name + "', expected one of:";
  for (const Preset &p : kPresets)
    error += std::string(" ") + p.name;
  return false;
}

int64_t plantedGateRank(const GenModelConfig &cfg) {
  return std::max<int64_t>(4, cfg.nEmbd / 16);
}

int64_t effectivePredictorRank(const GenModelConfig &cfg) {
  return cfg.predictorRank > 0 ? cfg.predictorRank
                               : 2 * plantedGateRank(cfg) + 1;
}

bool validateConfig(const GenModelConfig &cfg, std::string &error) {
  auto fail = [&](const std::string &m) {
    error = m;
    return false;
  };
  auto s = [](double v) { return std::to_string(v); };
  if (cfg.nEmbd < 2 * kB || cfg.nEmbd % 32 != 0)
    return fail("--n-embd " + std::to_string(cfg.nEmbd) +
                ": expected a multiple of 32 of at least 64");
  if (cfg.nFF < 32 || cfg.nFF % 32 != 0)
    return fail("--n-ff " + std::to_string(cfg.nFF) +
                ": expected a positive multiple of 32");
  if (cfg.withFfnDown && !cfg.powerInfer)
    return fail("--with-ffn-down: expected --powerinfer too");
  if (cfg.nLayer < 1)
    return fail("--n-layer " + std::to_string(cfg.nLayer) + ": expected >= 1");
  if (cfg.nHead < 1 || cfg.nEmbd % cfg.nHead != 0 ||
      (cfg.nEmbd / cfg.nHead) % 2 != 0)
    return fail("--n-head " + std::to_string(cfg.nHead) +
                ": expected a divisor of n_embd giving an even head size");
  if (cfg.nKVHead < 1 || cfg.nHead % cfg.nKVHead != 0)
    return fail("--n-kv-head " + std::to_string(cfg.nKVHead) +
                ": expected a divisor of n_head");
  if (cfg.nCtx < 1)
    return fail("--n-ctx " + std::to_string(cfg.nCtx) + ": expected >= 1");
  if (cfg.arch != "llama" && cfg.arch != "qwen2")
    return fail("--arch " + cfg.arch + ": expected llama or qwen2");
  if (!isGeneratable(cfg.type))
    return fail(std::string("--type ") + typeName(cfg.type) + ": expected " +
                computableTypeNames());
  // Matrix rows are n_embd (attention, gate, up) or n_ff (down) long.
  if (const uint32_t block = typeTraits(cfg.type)->blockSize;
      cfg.nEmbd % block != 0 || cfg.nFF % block != 0)
    return fail(std::string("--type ") + typeName(cfg.type) +
                ": expected n_embd and n_ff multiples of its block of " +
                std::to_string(block) + " (n_embd " +
                std::to_string(cfg.nEmbd) + ", n_ff " +
                std::to_string(cfg.nFF) + ")");
  if (!(cfg.maxRate > 0 && cfg.maxRate < 1))
    return fail("maximum firing rate " + s(cfg.maxRate) + ": expected (0, 1)");
  if (!(cfg.activeFraction > 0 && cfg.activeFraction < cfg.maxRate))
    return fail("--active-fraction " + s(cfg.activeFraction) +
                ": expected (0, " + s(cfg.maxRate) + ")");
  if (!(cfg.hotShare > 0 && cfg.hotShare <= 1))
    return fail("--hot-share " + s(cfg.hotShare) + ": expected (0, 1]");
  if (!(cfg.alpha >= 0 && cfg.alpha <= 16))
    return fail("--alpha " + s(cfg.alpha) + ": expected [0, 16] (0: solve)");
  if (!(cfg.predictorFidelity >= 0 && cfg.predictorFidelity <= 1))
    return fail("--predictor-fidelity " + s(cfg.predictorFidelity) +
                ": expected [0, 1]");
  if (cfg.predictorRank != 0 && cfg.predictorRank < 3)
    return fail("--predictor-rank " + std::to_string(cfg.predictorRank) +
                ": expected >= 3 (one bias unit and a signed pair)");
  if (!(cfg.rmsEps >= 0 && cfg.rmsEps < 1))
    return fail("--rms-eps " + s(cfg.rmsEps) + ": expected [0, 1)");
  if (!(cfg.ropeFreqBase > 0))
    return fail("--rope-freq-base " + s(cfg.ropeFreqBase) + ": expected > 0");
  if (cfg.threads < 0)
    return fail("--threads " + std::to_string(cfg.threads) + ": expected >= 0");
  return true;
}

std::vector<float> plantedFiringRates(const GenModelConfig &cfg,
                                      int64_t layer) {
  // Recomputes the plan's rank order; cheap next to generating weights.
  PowerLawFit fit = fitPowerLaw(cfg.nFF, cfg.activeFraction, cfg.hotShare,
                                cfg.alpha, cfg.maxRate);
  std::vector<int64_t> order(cfg.nFF);
  for (int64_t i = 0; i < cfg.nFF; ++i)
    order[i] = i;
  Rng perm(cfg.seed, Stream::Permutation, layer);
  for (int64_t i = cfg.nFF - 1; i > 0; --i)
    std::swap(order[i], order[perm.bits(i) % uint64_t(i + 1)]);
  std::vector<float> rate(cfg.nFF);
  for (int64_t r = 0; r < cfg.nFF; ++r)
    rate[order[r]] = fit.byRank[r];
  return rate;
}

namespace {

bool planWithVocab(const GenModelConfig &cfg, GenModelReport &report,
                   std::vector<GGUFKV> &vocab, std::string &error) {
  if (!validateConfig(cfg, error))
    return false;
  if (!loadVocab(cfg, vocab, report.nVocab, error))
    return false;
  report.tensorBytes = 0;
  report.nParams = 0;
  for (const TensorSpec &t : tensorList(cfg, report.nVocab)) {
    report.tensorBytes += tensorBytes(t);
    int64_t el = 1;
    for (int64_t d : t.ne)
      el *= d;
    report.nParams += el;
  }
  report.fit = fitPowerLaw(cfg.nFF, cfg.activeFraction, cfg.hotShare, cfg.alpha,
                           cfg.maxRate);
  return true;
}

} // namespace

bool planModel(const GenModelConfig &cfg, GenModelReport &report,
               std::string &error) {
  std::vector<GGUFKV> vocab;
  return planWithVocab(cfg, report, vocab, error);
}

bool generateModel(const GenModelConfig &cfg, const std::string &path,
                   GenModelReport &report, std::string &error) {
  auto start = std::chrono::steady_clock::now();
  std::vector<GGUFKV> vocab;
  if (!planWithVocab(cfg, report, vocab, error))
    return false;
  const int64_t nVocab = report.nVocab;

  Generator gen(cfg, nVocab);
  gen.plan();

  GGUFWriter w;
  w.setPowerInfer(cfg.powerInfer);
  // The generator's planted weights are LLaMA's; the architectures it
  // writes differ only by the extras it fills (validateConfig).
  const ArchInfo &arch = *findArch(cfg.arch);
  using Key = ArchKey;
  w.setString(kArchitectureKey, arch.name);
  w.setString("general.name", cfg.name);
  w.setU32("general.file_type", fileTypeOf(cfg.type));
  w.setU32(arch.key(Key::ContextLength), uint32_t(cfg.nCtx));
  w.setU32(arch.key(Key::EmbeddingLength), uint32_t(cfg.nEmbd));
  w.setU32(arch.key(Key::BlockCount), uint32_t(cfg.nLayer));
  w.setU32(arch.key(Key::FeedForwardLength), uint32_t(cfg.nFF));
  w.setU32(arch.key(Key::HeadCount), uint32_t(cfg.nHead));
  w.setU32(arch.key(Key::HeadCountKv), uint32_t(cfg.nKVHead));
  w.setF32(arch.key(Key::RmsEps), cfg.rmsEps);
  w.setU32(arch.key(Key::RopeDimensionCount), uint32_t(cfg.nEmbd / cfg.nHead));
  w.setF32(arch.key(Key::RopeFreqBase), cfg.ropeFreqBase);
  w.setU32(arch.key(Key::VocabSize), uint32_t(nVocab));
  w.setString(kFfnActivationKey, activationName(cfg.activation));
  if (cfg.powerInfer)
    w.setF32(kSparseThresholdKey, cfg.sparseThreshold);

  // What was planted, so that profiles can be checked against it.
  const PowerLawFit &fit = gen.fit();
  w.set("pinfer.generator.seed", GGUFValue::ofU64(cfg.seed));
  w.setU32("pinfer.planted.bias_channel_dims", uint32_t(kBiasChannelDims));
  w.setF32("pinfer.planted.active_fraction", float(fit.meanRate));
  w.setF32("pinfer.planted.alpha", float(fit.alpha));
  w.setF32("pinfer.planted.top10_share", float(fit.top10Share));
  w.setF32("pinfer.planted.predictor_fidelity", float(cfg.predictorFidelity));
  std::vector<float> rates;
  rates.reserve(size_t(cfg.nLayer) * cfg.nFF);
  for (int64_t l = 0; l < cfg.nLayer; ++l)
    rates.insert(rates.end(), gen.layer(l).rate.begin(),
                 gen.layer(l).rate.end());
  w.set("pinfer.planted.firing_rate", GGUFValue::ofF32s(rates));
  for (const GGUFKV &kv : vocab)
    w.set(kv.key, kv.value);

  gen.addTensors(w);
  if (!w.write(path, error))
    return false;
  struct stat st;
  report.fileBytes = ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  report.fit = fit;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return true;
}

} // namespace pinfer
