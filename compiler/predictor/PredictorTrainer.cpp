//===- PredictorTrainer.cpp - activation predictors from traces -----------===//
//
// Training of per-layer activation predictors (see PredictorTrainer.h).
// Every product is a dot or an axpy over contiguous rows, split over the
// thread pool along an axis that each thread owns (output rows or batch
// samples), so results are the same for any thread count.
//
//===----------------------------------------------------------------------===//
#include "compiler/predictor/PredictorTrainer.h"

#include "runtime/kernels.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ostream>
#include <random>

namespace pinfer {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// std::normal_distribution and std::shuffle differ between standard
// libraries; these depend only on mt19937_64, whose output is specified.
struct Rng {
  explicit Rng(uint64_t seed) : gen(seed) {}
  double uniform() { return double(gen() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300)
      u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  void shuffle(std::vector<uint32_t> &v) {
    for (size_t i = v.size(); i > 1; --i)
      std::swap(v[i - 1], v[size_t(gen() % i)]);
  }
  std::mt19937_64 gen;
};

inline float dot(const float *a, const float *b, int64_t n) {
  return dotRow(GGMLType::F32, a, b, n);
}

inline void axpy(float *y, float a, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += a * x[i];
}

// The three shapes every training product reduces to, four samples at a
// time so that a weight row is loaded once per four samples. Built for AVX2
// and for the baseline, the CPU picking at load time; the loops are written
// with eight independent partial sums so that they vectorise without
// reassociating (results are the same whatever the thread count).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define PINFER_CLONES                                                          \
  __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define PINFER_CLONES
#endif

// Eight floats as one value (GCC's vector extension): each operation is
// the same lane by lane in every clone, so the result does not depend on
// which one the CPU runs (the compiler's own vectorisation of the loops
// below shuffled more than it multiplied).
typedef float Vec8 __attribute__((vector_size(32), aligned(4)));
// A block of 16 output neurons' lanes (kBlock), one value: the same
// operations lane by lane as two Vec8, one instruction where the CPU has
// 512-bit vectors.
typedef float Vec16 __attribute__((vector_size(64), aligned(4)));

inline Vec8 load8(const float *p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// out[j] = dot(w, x[j]) for j < 4: lane k of each partial sum takes the
// elements i = k mod 8, the lanes summed in order at the end.
PINFER_CLONES void dot4(const float *w, const float *const x[4], int64_t n,
                        float out[4]) {
  Vec8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const Vec8 wv = load8(w + i);
    a0 += wv * load8(x0 + i);
    a1 += wv * load8(x1 + i);
    a2 += wv * load8(x2 + i);
    a3 += wv * load8(x3 + i);
  }
  float s[4] = {};
  for (int k = 0; k < 8; ++k) {
    s[0] += a0[k];
    s[1] += a1[k];
    s[2] += a2[k];
    s[3] += a3[k];
  }
  for (; i < n; ++i) {
    s[0] += w[i] * x0[i];
    s[1] += w[i] * x1[i];
    s[2] += w[i] * x2[i];
    s[3] += w[i] * x3[i];
  }
  for (int j = 0; j < 4; ++j)
    out[j] = s[j];
}

// y += sum_j c[j] * x[j] over four rows x[j].
PINFER_CLONES void gather4(float *y, const float c[4],
                           const float *const x[4], int64_t n) {
  const float c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  for (int64_t i = 0; i < n; ++i)
    y[i] += c0 * x0[i] + c1 * x1[i] + c2 * x2[i] + c3 * x3[i];
}

// y[j][i] += sum_f c[j][f] * w[f][i] for four rows y[j] of n values, over
// the F rows w[f] (n apart) in order: each element takes the products one
// by one as a row-by-row scatter would, but 64 elements of the four rows
// stay in registers over all F rows instead of going through memory for
// each.
PINFER_CLONES void scatterRows4(float *const y[4], const float *const c[4],
                                const float *w, int64_t F, int64_t n) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    Vec16 a[4][4];
    for (int j = 0; j < 4; ++j)
      for (int q = 0; q < 4; ++q)
        std::memcpy(&a[j][q], y[j] + i + 16 * q, sizeof(Vec16));
    for (int64_t f = 0; f < F; ++f) {
      Vec16 v[4];
      std::memcpy(v, w + f * n + i, sizeof v);
      for (int j = 0; j < 4; ++j) {
        const float cj = c[j][f];
        for (int q = 0; q < 4; ++q)
          a[j][q] += cj * v[q];
      }
    }
    for (int j = 0; j < 4; ++j)
      for (int q = 0; q < 4; ++q)
        std::memcpy(y[j] + i + 16 * q, &a[j][q], sizeof(Vec16));
  }
  for (int64_t f = 0; f < F; ++f)
    for (int j = 0; j < 4; ++j)
      for (int64_t k = i; k < n; ++k)
        y[j][k] += c[j][f] * w[f * n + k];
}

// The output layer goes by blocks of kBlock neurons: with R as short as 64,
// a dot product per (neuron, sample) spends as much on its final sums as on
// its products. A block's weights transposed to [R][kBlock] let each sample
// broadcast its hidden units against kBlock neurons at once, every sum
// running over r in order, and the same for the block's weight gradients.
constexpr int kBlock = 16;

static_assert(kBlock == 16, "a block is one Vec16");

// z[j][k] = sum_r h_j[r] * wt[r][k] for the Bp samples h_j (a multiple of
// four). Four samples at a time: four sums in flight, where one would wait
// for each addition.
PINFER_CLONES void blockLogits(const float *wt, const float *const *h, int Bp,
                               int64_t R, float *z) {
  for (int j = 0; j < Bp; j += 4) {
    Vec16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    const float *h0 = h[j], *h1 = h[j + 1], *h2 = h[j + 2], *h3 = h[j + 3];
    for (int64_t r = 0; r < R; ++r) {
      const Vec16 w = *reinterpret_cast<const Vec16 *>(wt + r * kBlock);
      a0 += h0[r] * w;
      a1 += h1[r] * w;
      a2 += h2[r] * w;
      a3 += h3[r] * w;
    }
    Vec16 *out = reinterpret_cast<Vec16 *>(z + size_t(j) * kBlock);
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
  }
}

// gwt[r][k] += sum_j g[j][k] * h_j[r], over the samples in order; four r
// at a time, each sum in a register over the samples.
PINFER_CLONES void blockGradients(float *gwt, const float *g,
                                  const float *const *h, int Bp, int64_t R) {
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    Vec16 *gw = reinterpret_cast<Vec16 *>(gwt + r * kBlock);
    Vec16 a0 = gw[0], a1 = gw[1], a2 = gw[2], a3 = gw[3];
    for (int j = 0; j < Bp; ++j) {
      const Vec16 gj = *reinterpret_cast<const Vec16 *>(g + size_t(j) * kBlock);
      const float *hj = h[j] + r;
      a0 += gj * hj[0];
      a1 += gj * hj[1];
      a2 += gj * hj[2];
      a3 += gj * hj[3];
    }
    gw[0] = a0;
    gw[1] = a1;
    gw[2] = a2;
    gw[3] = a3;
  }
  for (; r < R; ++r)
    for (int j = 0; j < Bp; ++j)
      *reinterpret_cast<Vec16 *>(gwt + r * kBlock) +=
          *reinterpret_cast<const Vec16 *>(g + size_t(j) * kBlock) * h[j][r];
}

// One Adam step over n parameters (m, v: their moments; c1, c2: the bias
// corrections), element by element.
PINFER_CLONES void adamStep(float *p, const float *g, float *m, float *v,
                            int64_t n, float lr, float beta1, float beta2,
                            float eps, float c1, float c2) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    p[i] -= lr * (m[i] * c1) / (std::sqrt(v[i] * c2) + eps);
  }
}

// A batch is padded to a multiple of four with rows whose coefficients are
// zero, so the kernels above need no tail.
constexpr int kLanes = 4;

inline float sigmoid(float z) { return 1.f / (1.f + std::exp(-z)); }

// One layer's training state. Inputs are standardised per dimension (the FFN
// norm scales dimensions very differently); the scaling is folded into fc1
// and b1 when the layer is finished.
class LayerTrainer {
public:
  LayerTrainer(const std::vector<TraceSample> &samples, uint32_t nEmbd,
               uint32_t nFF, const PredictorOptions &opts, ThreadPool &pool,
               uint64_t seed)
      : samples_(samples), E_(nEmbd), F_(nFF), opts_(opts), pool_(pool),
        rng_(seed) {}

  void prepare();
  void initRank(uint32_t rank);   // fresh weights
  void growRank(uint32_t rank);   // keeps the trained units
  void trainEpochs(int epochs, const std::function<void(int)> &onEpoch);
  // Sets the threshold on the held-out samples and measures there.
  void evaluate(LayerPredictor &out);
  void exportTo(LayerPredictor &out) const;
  uint32_t rank() const { return R_; }

private:
  void step(const uint32_t *batch, int B);
  void firingSubspace(int64_t k, std::vector<float> &v); // v: [k][E]
  void logits(const float *x, float *hidden, float *z) const;

  const std::vector<TraceSample> &samples_;
  int64_t E_, F_;
  const PredictorOptions &opts_;
  ThreadPool &pool_;
  Rng rng_;

  std::vector<uint32_t> train_, eval_; // sample indices
  std::vector<float> mean_, invStd_;   // [E]
  std::vector<float> xs_;              // [n_samples][E] standardised
  float posWeight_ = 1;

  int64_t R_ = 0;
  // Parameters and their Adam moments, one flat array each:
  // W1 [R][E], b1 [R], W2 [F][R], b2 [F].
  std::vector<float> w1_, b1_, w2_, b2_;
  std::vector<float> gw1_, gb1_, gw2_, gb2_;
  std::vector<float> m_, v_; // [all parameters] in the order above
  int64_t t_ = 0;            // Adam step

  // Batch scratch.
  std::vector<float> h_;  // [B][R] hidden after relu
  std::vector<float> g_;  // [B][F] dLoss/dlogit
  std::vector<float> dh_; // [B][R]
};

void LayerTrainer::prepare() {
  uint32_t n = uint32_t(samples_.size());
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; ++i)
    order[i] = i;
  rng_.shuffle(order);
  uint32_t nEval = uint32_t(std::lround(double(n) * opts_.holdout));
  nEval = std::min(std::max<uint32_t>(nEval, 1), n - 1);
  eval_.assign(order.begin(), order.begin() + nEval);
  train_.assign(order.begin() + nEval, order.end());
  std::sort(eval_.begin(), eval_.end());

  std::vector<double> sum(E_, 0.0), sq(E_, 0.0);
  for (uint32_t s : train_)
    for (int64_t e = 0; e < E_; ++e) {
      double x = samples_[s].input[e];
      sum[e] += x;
      sq[e] += x * x;
    }
  mean_.resize(E_);
  invStd_.resize(E_);
  for (int64_t e = 0; e < E_; ++e) {
    double m = sum[e] / double(train_.size());
    double var = sq[e] / double(train_.size()) - m * m;
    mean_[e] = float(m);
    invStd_[e] = var > 1e-12 ? float(1.0 / std::sqrt(var)) : 0.f;
  }
  xs_.resize(size_t(n) * E_);
  pool_.parallelFor(n, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t e = 0; e < E_; ++e)
        xs_[s * E_ + e] = (samples_[s].input[e] - mean_[e]) * invStd_[e];
  });

  // Firing rates of the training samples give the starting output biases
  // (so the network starts from "each neuron at its base rate") and the
  // positive weight.
  std::vector<uint32_t> fired(F_, 0);
  uint64_t on = 0;
  for (uint32_t s : train_)
    for (int64_t f = 0; f < F_; ++f)
      if (samples_[s].fired(uint32_t(f))) {
        ++fired[f];
        ++on;
      }
  uint64_t total = uint64_t(train_.size()) * uint64_t(F_);
  posWeight_ = opts_.positiveWeight;
  if (posWeight_ <= 0) {
    double ratio = on ? double(total - on) / double(on) : 1.0;
    posWeight_ = float(std::min(16.0, std::max(1.0, std::sqrt(ratio))));
  }
  b2_.resize(F_);
  for (int64_t f = 0; f < F_; ++f) {
    double p = (fired[f] + 0.5) / (double(train_.size()) + 1.0);
    b2_[f] = float(std::log(p / (1 - p)));
  }
}

// Orthonormal directions spanning most of the "where does each neuron
// fire" structure: the dominant right singular subspace of D, the [n_ff][E]
// matrix of per-neuron mean inputs over the samples where the neuron fired
// (inputs are standardised, so a row of D points from the mean input toward
// the neuron's firing region). Found by subspace iteration on D^T D, each
// product through the samples: D^T D V = Xs^T Y N^-2 Y^T Xs V, Y the masks.
void LayerTrainer::firingSubspace(int64_t k, std::vector<float> &v) {
  const int64_t S = int64_t(train_.size());
  std::vector<float> invN(F_, 0.f);
  for (uint32_t s : train_)
    for (int64_t f = 0; f < F_; ++f)
      invN[f] += samples_[s].fired(uint32_t(f)) ? 1.f : 0.f;
  for (float &n : invN)
    n = n > 0 ? 1.f / n : 0.f;
  std::vector<float> vt(size_t(E_) * k); // [E][k]
  for (float &x : vt)
    x = float(rng_.normal());
  std::vector<float> p(size_t(S) * k), q(size_t(F_) * k);
  auto xrow = [&](int64_t i) { return &xs_[size_t(train_[i]) * E_]; };
  for (int iter = 0; iter < 3; ++iter) {
    // P = Xs V: [S][k]
    pool_.parallelFor(S, [&](int64_t s0, int64_t s1) {
      for (int64_t i = s0; i < s1; ++i) {
        float *pr = &p[size_t(i) * k];
        std::fill(pr, pr + k, 0.f);
        const float *x = xrow(i);
        for (int64_t e = 0; e < E_; ++e)
          axpy(pr, x[e], &vt[size_t(e) * k], k);
      }
    });
    // Q = N^-2 Y^T P: [n_ff][k]
    pool_.parallelFor(F_, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f) {
        float *qr = &q[size_t(f) * k];
        std::fill(qr, qr + k, 0.f);
        for (int64_t i = 0; i < S; ++i)
          if (samples_[train_[i]].fired(uint32_t(f)))
            axpy(qr, 1.f, &p[size_t(i) * k], k);
        float w = invN[f] * invN[f];
        for (int64_t j = 0; j < k; ++j)
          qr[j] *= w;
      }
    });
    // P = Y Q
    pool_.parallelFor(S, [&](int64_t s0, int64_t s1) {
      for (int64_t i = s0; i < s1; ++i) {
        float *pr = &p[size_t(i) * k];
        std::fill(pr, pr + k, 0.f);
        const TraceSample &t = samples_[train_[i]];
        for (int64_t f = 0; f < F_; ++f)
          if (t.fired(uint32_t(f)))
            axpy(pr, 1.f, &q[size_t(f) * k], k);
      }
    });
    // V = Xs^T P, then orthonormal columns (modified Gram-Schmidt).
    pool_.parallelFor(E_, [&](int64_t e0, int64_t e1) {
      std::fill(&vt[size_t(e0) * k], &vt[size_t(e1) * k], 0.f);
      for (int64_t i = 0; i < S; ++i) {
        const float *x = xrow(i);
        for (int64_t e = e0; e < e1; ++e)
          axpy(&vt[size_t(e) * k], x[e], &p[size_t(i) * k], k);
      }
    });
    v.assign(size_t(k) * E_, 0.f);
    for (int64_t e = 0; e < E_; ++e)
      for (int64_t j = 0; j < k; ++j)
        v[size_t(j) * E_ + e] = vt[size_t(e) * k + j];
    for (int64_t j = 0; j < k; ++j) {
      float *vj = &v[size_t(j) * E_];
      float n = 0;
      // A direction lost to rank deficiency (k above the rank of the
      // samples) is replaced by a random one, orthogonalised the same way.
      for (int attempt = 0; attempt < 4 && !(n > 1e-6f); ++attempt) {
        if (attempt > 0)
          for (int64_t e = 0; e < E_; ++e)
            vj[e] = float(rng_.normal());
        for (int64_t i = 0; i < j; ++i) {
          const float *vi = &v[size_t(i) * E_];
          axpy(vj, -dot(vi, vj, E_), vi, E_);
        }
        n = std::sqrt(dot(vj, vj, E_));
      }
      for (int64_t e = 0; e < E_; ++e)
        vj[e] = n > 0 ? vj[e] / n : 0.f;
    }
    for (int64_t e = 0; e < E_; ++e)
      for (int64_t j = 0; j < k; ++j)
        vt[size_t(e) * k + j] = v[size_t(j) * E_ + e];
  }
}

void LayerTrainer::initRank(uint32_t rank) {
  R_ = rank;
  w1_.resize(size_t(R_ * E_));
  b1_.assign(R_, 0.f);
  w2_.resize(size_t(F_ * R_));
  // Hidden units start in pairs +v, -v along the firing subspace, so that
  // relu(v.x) - relu(-v.x) = v.x: the network starts able to express any
  // linear rule on that subspace and training bends it from there. Unit
  // directions on standardised inputs give unit-variance pre-activations.
  int64_t pairs = std::min<int64_t>(R_ / 2, E_);
  float s1 = float(1.0 / std::sqrt(double(E_)));
  for (float &w : w1_)
    w = float(rng_.normal()) * s1;
  if (pairs > 0) {
    std::vector<float> v;
    firingSubspace(pairs, v);
    for (int64_t j = 0; j < pairs; ++j)
      for (int64_t e = 0; e < E_; ++e) {
        w1_[size_t(2 * j) * E_ + e] = v[size_t(j) * E_ + e];
        w1_[size_t(2 * j + 1) * E_ + e] = -v[size_t(j) * E_ + e];
      }
  }
  // The output layer starts small so the base-rate biases dominate at first.
  float s2 = float(0.1 / std::sqrt(double(R_)));
  for (float &w : w2_)
    w = float(rng_.normal()) * s2;
  size_t nParams = w1_.size() + b1_.size() + w2_.size() + b2_.size();
  m_.assign(nParams, 0.f);
  v_.assign(nParams, 0.f);
  t_ = 0;
}

void LayerTrainer::growRank(uint32_t rank) {
  int64_t oldR = R_;
  std::vector<float> oldW2 = w2_;
  R_ = rank;
  float s1 = float(1.0 / std::sqrt(double(E_)));
  w1_.resize(size_t(R_ * E_));
  for (size_t i = size_t(oldR * E_); i < w1_.size(); ++i)
    w1_[i] = float(rng_.normal()) * s1;
  b1_.resize(R_, 0.f);
  // New hidden units start with zero output weights: the grown network
  // computes exactly what the trained one did and learns from there.
  w2_.assign(size_t(F_ * R_), 0.f);
  for (int64_t f = 0; f < F_; ++f)
    std::copy(oldW2.begin() + f * oldR, oldW2.begin() + (f + 1) * oldR,
              w2_.begin() + f * R_);
  size_t nParams = w1_.size() + b1_.size() + w2_.size() + b2_.size();
  m_.assign(nParams, 0.f);
  v_.assign(nParams, 0.f);
  t_ = 0;
}

void LayerTrainer::step(const uint32_t *batch, int B) {
  gw1_.assign(w1_.size(), 0.f);
  gb1_.assign(b1_.size(), 0.f);
  gw2_.assign(w2_.size(), 0.f);
  gb2_.assign(b2_.size(), 0.f);
  const float invB = 1.f / float(B);

  // Rows of the (padded) batch: padding repeats the last sample with a
  // zero loss gradient.
  const int Bp = (B + kLanes - 1) / kLanes * kLanes;
  std::vector<const float *> xrow(Bp);
  for (int b = 0; b < Bp; ++b)
    xrow[b] = &xs_[size_t(batch[std::min(b, B - 1)]) * E_];
  h_.resize(size_t(Bp) * R_);
  g_.assign(size_t(Bp) * F_, 0.f);
  dh_.assign(size_t(Bp) * R_, 0.f);

  // Hidden layer, split over hidden units.
  pool_.parallelFor(R_, [&](int64_t r0, int64_t r1) {
    float z[kLanes];
    for (int64_t r = r0; r < r1; ++r)
      for (int b = 0; b < Bp; b += kLanes) {
        dot4(&w1_[r * E_], &xrow[b], E_, z);
        for (int j = 0; j < kLanes; ++j)
          h_[size_t(b + j) * R_ + r] = relu(z[j] + b1_[r]);
      }
  });
  // Output layer, loss gradient and output-layer gradients, split over
  // blocks of neurons (a last block of fewer neurons has zero weights in
  // its other lanes, and they are not written back).
  std::vector<const float *> hrow(Bp);
  for (int b = 0; b < Bp; ++b)
    hrow[b] = &h_[size_t(b) * R_];
  const int64_t nBlocks = (F_ + kBlock - 1) / kBlock;
  pool_.parallelFor(nBlocks, [&](int64_t q0, int64_t q1) {
    std::vector<float> wt(size_t(R_) * kBlock), gwt(size_t(R_) * kBlock),
        z(size_t(Bp) * kBlock), g(size_t(Bp) * kBlock);
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t f0 = q * kBlock;
      const int nf = int(std::min<int64_t>(kBlock, F_ - f0));
      std::fill(wt.begin(), wt.end(), 0.f);
      for (int k = 0; k < nf; ++k)
        for (int64_t r = 0; r < R_; ++r)
          wt[size_t(r) * kBlock + k] = w2_[(f0 + k) * R_ + r];
      blockLogits(wt.data(), hrow.data(), Bp, R_, z.data());
      std::fill(g.begin(), g.end(), 0.f);
      // Sample by sample, so that each writes its block's 16 gradients
      // into one stretch of g_; each neuron's bias gradient still sums its
      // samples in order.
      float gb[kBlock] = {};
      for (int j = 0; j < B; ++j) {
        const TraceSample &sample = samples_[batch[j]];
        float *gRow = &g_[size_t(j) * F_ + f0];
        for (int k = 0; k < nf; ++k) {
          const int64_t f = f0 + k;
          const float zz = z[size_t(j) * kBlock + k] + b2_[f];
          const bool y = sample.fired(uint32_t(f));
          // d/dz of -[pw*y*log s(z) + (1-y)*log(1-s(z))]
          const float gj =
              (y ? posWeight_ * (sigmoid(zz) - 1.f) : sigmoid(zz)) * invB;
          g[size_t(j) * kBlock + k] = gj;
          gRow[k] = gj;
          gb[k] += gj;
        }
      }
      for (int k = 0; k < nf; ++k)
        gb2_[f0 + k] = gb[k];
      std::fill(gwt.begin(), gwt.end(), 0.f);
      blockGradients(gwt.data(), g.data(), hrow.data(), Bp, R_);
      for (int k = 0; k < nf; ++k)
        for (int64_t r = 0; r < R_; ++r)
          gw2_[(f0 + k) * R_ + r] = gwt[size_t(r) * kBlock + k];
    }
  });
  // Back into the hidden layer, split over groups of samples.
  pool_.parallelFor(Bp / kLanes, [&](int64_t q0, int64_t q1) {
    const float *c[kLanes];
    float *dh[kLanes];
    for (int64_t q = q0; q < q1; ++q) {
      int64_t b = q * kLanes;
      for (int j = 0; j < kLanes; ++j) {
        dh[j] = &dh_[size_t(b + j) * R_];
        c[j] = &g_[size_t(b + j) * F_];
      }
      scatterRows4(dh, c, w2_.data(), F_, R_);
      for (int j = 0; j < kLanes; ++j) {
        const float *h = &h_[size_t(b + j) * R_];
        for (int64_t r = 0; r < R_; ++r)
          if (h[r] <= 0.f)
            dh[j][r] = 0.f;
      }
    }
  });
  pool_.parallelFor(R_, [&](int64_t r0, int64_t r1) {
    float c[kLanes];
    for (int64_t r = r0; r < r1; ++r) {
      float *gw = &gw1_[r * E_];
      float gb = 0;
      for (int b = 0; b < Bp; b += kLanes) {
        bool any = false;
        for (int j = 0; j < kLanes; ++j) {
          c[j] = dh_[size_t(b + j) * R_ + r];
          gb += c[j];
          any |= c[j] != 0.f;
        }
        if (any)
          gather4(gw, c, &xrow[b], E_);
      }
      gb1_[r] = gb;
    }
  });

  // Adam over all parameters, split evenly.
  ++t_;
  const float lr = opts_.learningRate, beta1 = 0.9f, beta2 = 0.999f,
              eps = 1e-8f;
  const float c1 = 1.f / (1.f - std::pow(beta1, float(t_)));
  const float c2 = 1.f / (1.f - std::pow(beta2, float(t_)));
  struct Part {
    float *p;
    const float *g;
    size_t n;
  } parts[4] = {{w1_.data(), gw1_.data(), w1_.size()},
                {b1_.data(), gb1_.data(), b1_.size()},
                {w2_.data(), gw2_.data(), w2_.size()},
                {b2_.data(), gb2_.data(), b2_.size()}};
  size_t offset = 0;
  for (const Part &part : parts) {
    float *m = &m_[offset], *v = &v_[offset];
    pool_.parallelFor(int64_t(part.n), [&](int64_t i0, int64_t i1) {
      adamStep(part.p + i0, part.g + i0, m + i0, v + i0, i1 - i0, lr, beta1,
               beta2, eps, c1, c2);
    });
    offset += part.n;
  }
}

void LayerTrainer::trainEpochs(int epochs,
                               const std::function<void(int)> &onEpoch) {
  std::vector<uint32_t> order = train_;
  int B = std::max(1, opts_.batchSize);
  for (int ep = 0; ep < epochs; ++ep) {
    rng_.shuffle(order);
    for (size_t i = 0; i < order.size(); i += size_t(B)) {
      int n = int(std::min(order.size() - i, size_t(B)));
      step(&order[i], n);
    }
    if (onEpoch)
      onEpoch(ep + 1);
  }
}

void LayerTrainer::logits(const float *x, float *hidden, float *z) const {
  for (int64_t r = 0; r < R_; ++r)
    hidden[r] = relu(dot(&w1_[r * E_], x, E_) + b1_[r]);
  for (int64_t f = 0; f < F_; ++f)
    z[f] = dot(&w2_[f * R_], hidden, R_) + b2_[f];
}

void LayerTrainer::evaluate(LayerPredictor &out) {
  size_t n = eval_.size();
  std::vector<float> z(n * size_t(F_));
  pool_.parallelFor(int64_t(n), [&](int64_t i0, int64_t i1) {
    std::vector<float> hidden(R_);
    for (int64_t i = i0; i < i1; ++i)
      logits(&xs_[size_t(eval_[i]) * E_], hidden.data(), &z[size_t(i) * F_]);
  });
  // The largest threshold that keeps the target share of firing neurons:
  // just below the (1 - target) quantile of their logits.
  std::vector<float> pos;
  for (size_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < F_; ++f)
      if (samples_[eval_[i]].fired(uint32_t(f)))
        pos.push_back(z[i * F_ + f]);
  float threshold = 0;
  if (!pos.empty()) {
    size_t k = size_t(std::floor((1.0 - opts_.targetRecall) *
                                 double(pos.size())));
    k = std::min(k, pos.size() - 1);
    std::nth_element(pos.begin(), pos.begin() + k, pos.end());
    threshold = std::nextafter(pos[k], -INFINITY);
  }
  uint64_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < F_; ++f) {
      bool p = z[i * F_ + f] > threshold;
      bool a = samples_[eval_[i]].fired(uint32_t(f));
      tp += p && a;
      fp += p && !a;
      fn += !p && a;
    }
  uint64_t total = uint64_t(n) * uint64_t(F_);
  out.threshold = threshold;
  out.recall = tp + fn ? double(tp) / double(tp + fn) : 1.0;
  out.predictedSparsity = 1.0 - double(tp + fp) / double(total);
  out.trueSparsity = 1.0 - double(tp + fn) / double(total);
  out.trainSamples = uint32_t(train_.size());
  out.evalSamples = uint32_t(n);
}

void LayerTrainer::exportTo(LayerPredictor &out) const {
  // fc1 (x - mean) * invStd + b1 = (fc1 * invStd) x + (b1 - fc1 (mean * invStd))
  out.rank = uint32_t(R_);
  out.fc1.resize(size_t(R_ * E_));
  out.b1.resize(R_);
  for (int64_t r = 0; r < R_; ++r) {
    double shift = 0;
    for (int64_t e = 0; e < E_; ++e) {
      float w = w1_[r * E_ + e] * invStd_[e];
      out.fc1[r * E_ + e] = w;
      shift += double(w) * mean_[e];
    }
    out.b1[r] = float(b1_[r] - shift);
  }
  out.fc2 = w2_;
  out.b2 = b2_;
}

bool checkTrace(const Trace &trace, const PredictorOptions &opts,
                std::string &error) {
  if (trace.samples.size() != trace.nLayer || trace.nEmbd == 0) {
    error = "the trace holds no predictor samples (profile with --samples N)";
    return false;
  }
  for (uint32_t l = 0; l < trace.nLayer; ++l) {
    const auto &s = trace.samples[l];
    if (s.size() < 10) {
      error = "the trace holds " + std::to_string(s.size()) +
              " samples for layer " + std::to_string(l) +
              ", expected at least 10 (profile with --samples N)";
      return false;
    }
    for (const TraceSample &t : s)
      if (t.input.size() != trace.nEmbd ||
          t.mask.size() != (trace.nFF + 7) / 8) {
        error = "a trace sample of layer " + std::to_string(l) +
                " has " + std::to_string(t.input.size()) + " inputs and " +
                std::to_string(t.mask.size()) + " mask bytes, expected " +
                std::to_string(trace.nEmbd) + " and " +
                std::to_string((trace.nFF + 7) / 8);
        return false;
      }
  }
  if (opts.type != GGMLType::F16 && opts.type != GGMLType::F32) {
    error = std::string("predictor type ") + typeName(opts.type) +
            ", expected f16 or f32";
    return false;
  }
  if (opts.initialRank == 0 || opts.maxRank < opts.initialRank) {
    error = "predictor ranks: initial " + std::to_string(opts.initialRank) +
            ", max " + std::to_string(opts.maxRank) +
            "; expected 0 < initial <= max";
    return false;
  }
  if (!(opts.targetRecall > 0 && opts.targetRecall <= 1) ||
      !(opts.holdout > 0 && opts.holdout < 1)) {
    error = "target recall and holdout must lie in (0, 1]";
    return false;
  }
  return true;
}

} // namespace

uint64_t predictorBytes(uint32_t rank, uint32_t nEmbd, uint32_t nFF,
                        GGMLType type) {
  uint64_t elem = type == GGMLType::F32 ? 4 : 2;
  return uint64_t(rank) * (uint64_t(nEmbd) + nFF) * elem +
         (uint64_t(rank) + nFF) * 4;
}

uint64_t PredictorSet::bytes() const {
  uint64_t b = 0;
  for (const LayerPredictor &l : layers)
    b += l.bytes;
  return b;
}

bool trainPredictors(const Trace &trace, const PredictorOptions &opts,
                     PredictorSet &out, std::string &error) {
  if (!checkTrace(trace, opts, error))
    return false;
  Clock::time_point t0 = Clock::now();
  ThreadPool pool(opts.nThreads < 1 ? ThreadPool::hardwareThreads()
                                    : opts.nThreads);
  const uint32_t L = trace.nLayer, E = trace.nEmbd, F = trace.nFF;
  uint32_t r0 = std::min(opts.initialRank, std::max<uint32_t>(1, F));
  if (opts.sizeBudget &&
      uint64_t(L) * predictorBytes(r0, E, F, opts.type) > opts.sizeBudget) {
    error = "predictor size budget of " + std::to_string(opts.sizeBudget) +
            " bytes is below " +
            std::to_string(uint64_t(L) * predictorBytes(r0, E, F, opts.type)) +
            " bytes, the size of " + std::to_string(L) +
            " predictors of the initial rank " + std::to_string(r0);
    return false;
  }
  PredictorSet set;
  set.modelIdentity = trace.modelIdentity;
  set.activation = trace.activation;
  set.nLayer = L;
  set.nEmbd = E;
  set.nFF = F;
  set.type = opts.type;
  set.targetRecall = opts.targetRecall;
  set.layers.resize(L);

  // Bytes committed so far: finished layers at their rank, the others at
  // the initial rank. A layer grows only while this stays in the budget, so
  // early layers cannot starve later ones of their initial rank.
  uint64_t committed = uint64_t(L) * predictorBytes(r0, E, F, opts.type);
  for (uint32_t l = 0; l < L; ++l) {
    Clock::time_point tl = Clock::now();
    LayerTrainer lt(trace.samples[l], E, F, opts, pool,
                    opts.seed * 0x9E3779B97F4A7C15ull + l);
    lt.prepare();
    LayerPredictor &lp = set.layers[l];
    uint32_t rank = r0;
    lt.initRank(rank);
    int epochs = opts.epochs;
    double lastSparsity = -1;
    for (;;) {
      PredictorProgress p;
      p.layer = l;
      p.nLayer = L;
      p.rank = rank;
      p.epochs = epochs;
      auto onEpoch = [&](int ep) {
        if (opts.progress) {
          p.epoch = ep;
          p.seconds = secondsSince(t0);
          opts.progress(p);
        }
      };
      lt.trainEpochs(epochs, onEpoch);
      lp.epochs += epochs;
      lt.evaluate(lp);
      if (opts.progress) {
        p.evaluated = true;
        p.predictedSparsity = lp.predictedSparsity;
        p.trueSparsity = lp.trueSparsity;
        p.seconds = secondsSince(t0);
        opts.progress(p);
      }
      if (lp.predictedSparsity >= lp.trueSparsity - opts.sparsityGap)
        break;
      if (lastSparsity >= 0 &&
          lp.predictedSparsity - lastSparsity < opts.minGain)
        break;
      lastSparsity = lp.predictedSparsity;
      uint32_t next = std::min<uint64_t>(uint64_t(rank) * 2, opts.maxRank);
      next = std::min(next, std::max<uint32_t>(F, 1));
      // A predictor must cost well under the gate it saves reading: at most
      // half the gate matrix (rank x (n_embd + n_ff) <= n_embd x n_ff / 2).
      next = std::min<uint64_t>(
          next, std::max<uint64_t>(1, uint64_t(E) * F / (2 * (uint64_t(E) + F))));
      if (next <= rank)
        break;
      uint64_t extra = predictorBytes(next, E, F, opts.type) -
                       predictorBytes(rank, E, F, opts.type);
      if (opts.sizeBudget && committed + extra > opts.sizeBudget)
        break;
      committed += extra;
      rank = next;
      lt.growRank(rank);
      epochs = opts.growEpochs;
    }
    lt.exportTo(lp);
    lp.bytes = predictorBytes(lp.rank, E, F, opts.type);
    lp.seconds = secondsSince(tl);
  }
  set.seconds = secondsSince(t0);
  out = std::move(set);
  return true;
}

void printPredictorReport(const PredictorSet &set, std::ostream &os) {
  os << "layer  rank      bytes  recall  pred-sparsity  true-sparsity  "
        "epochs  seconds\n";
  double rec = 0, ps = 0, ts = 0;
  for (size_t l = 0; l < set.layers.size(); ++l) {
    const LayerPredictor &p = set.layers[l];
    char line[160];
    std::snprintf(line, sizeof line,
                  "%5zu %5u %10llu  %6.4f  %13.4f  %13.4f  %6d  %7.1f\n", l,
                  p.rank, (unsigned long long)p.bytes, p.recall,
                  p.predictedSparsity, p.trueSparsity, p.epochs, p.seconds);
    os << line;
    rec += p.recall;
    ps += p.predictedSparsity;
    ts += p.trueSparsity;
  }
  double n = set.layers.empty() ? 1.0 : double(set.layers.size());
  char line[200];
  std::snprintf(line, sizeof line,
                "total: %zu layers, %.1f MiB (%s), mean recall %.4f, mean "
                "predicted sparsity %.4f (true %.4f), %.1f s\n",
                set.layers.size(), double(set.bytes()) / (1024.0 * 1024.0),
                typeName(set.type), rec / n, ps / n, ts / n, set.seconds);
  os << line;
}

} // namespace pinfer
