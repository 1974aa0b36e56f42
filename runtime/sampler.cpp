// Token sampling; see sampler.h.
//
// The order of the steps follows llama.cpp's default chain: repetition
// penalty, top-k, top-p (on the probabilities at temperature 1), min-p,
// then the temperature, then a draw. A draw uses one 32-bit output of mt19937 turned
// into a double by hand, so that a seed gives the same tokens with any
// standard library.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <chrono>
#include <cmath>

namespace pinfer {

namespace {

uint32_t clockSeed() {
  uint64_t t = static_cast<uint64_t>(
      std::chrono::high_resolution_clock::now().time_since_epoch().count());
  uint32_t s = static_cast<uint32_t>(t ^ (t >> 32));
  return s == SamplerOptions::kRandomSeed ? 0 : s;
}

// Normalises cand[0..n).p from the logits (max-subtracted), with temperature.
template <typename C> void softmaxCandidates(C *cand, size_t n, float temp) {
  float mx = cand[0].logit;
  for (size_t i = 1; i < n; ++i)
    mx = std::max(mx, cand[i].logit);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    cand[i].p = std::exp((cand[i].logit - mx) / temp);
    sum += cand[i].p;
  }
  for (size_t i = 0; i < n; ++i)
    cand[i].p = float(cand[i].p / sum);
}

} // namespace

Sampler::Sampler(const SamplerOptions &opts, int nVocab)
    : opts_(opts), nVocab_(nVocab) {
  penalised_.resize(nVocab_);
  cand_.resize(nVocab_);
  seen_.assign(nVocab_, 0);
  recent_.reserve(std::max(opts_.repeatLastN, 0));
  seed_ = opts_.seed == SamplerOptions::kRandomSeed ? clockSeed() : opts_.seed;
  rng_.seed(seed_);
}

void Sampler::reset() {
  recent_.clear();
  recentNext_ = 0;
  rng_.seed(seed_);
}

void Sampler::accept(int32_t token) {
  if (opts_.repeatLastN <= 0)
    return;
  if (recent_.size() < size_t(opts_.repeatLastN)) {
    recent_.push_back(token);
  } else {
    recent_[recentNext_] = token;
    recentNext_ = (recentNext_ + 1) % recent_.size();
  }
}

int32_t Sampler::sample(const float *logits) {
  std::copy_n(logits, nVocab_, penalised_.data());

  // llama.cpp's penalty: a logit of a recent token is divided by the penalty
  // when positive and multiplied by it when not, once per distinct token.
  if (opts_.repeatPenalty != 1.0f && !recent_.empty()) {
    for (int32_t t : recent_) {
      if (t < 0 || t >= nVocab_ || seen_[t])
        continue;
      seen_[t] = 1;
      penalise(penalised_[t]);
    }
    for (int32_t t : recent_)
      if (t >= 0 && t < nVocab_)
        seen_[t] = 0;
  }

  for (int32_t t : opts_.banned)
    if (t >= 0 && t < nVocab_)
      penalised_[t] = -std::numeric_limits<float>::infinity();

  if (opts_.temperature <= 0.f) {
    // Greedy; the lowest id wins a tie (choose()'s order, without building
    // the candidates).
    return int32_t(std::max_element(penalised_.begin(), penalised_.end()) -
                   penalised_.begin());
  }
  for (int i = 0; i < nVocab_; ++i)
    cand_[i] = {i, penalised_[i], 0.f};
  return choose(size_t(nVocab_));
}

int Sampler::candidatesNeeded() const {
  const int k = opts_.temperature <= 0.f ? 1 : opts_.topK;
  if (k <= 0 || k >= nVocab_)
    return 0;
  const size_t moved = penalised().size() + opts_.banned.size();
  return int(std::min<size_t>(size_t(nVocab_), size_t(k) + moved));
}

std::vector<int32_t> Sampler::penalised() const {
  std::vector<int32_t> ids;
  if (opts_.repeatPenalty == 1.0f)
    return ids;
  for (int32_t t : recent_)
    if (t >= 0 && t < nVocab_)
      ids.push_back(t);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

int32_t Sampler::sampleFrom(const int32_t *ids, const float *logits, int n) {
  // The candidates once each (flag 1 in seen_ while gathering), then
  // sample()'s penalty (flag 2) and bans (flag 4) on them.
  size_t m = 0;
  for (int i = 0; i < n; ++i) {
    const int32_t t = ids[i];
    if (t < 0 || t >= nVocab_ || seen_[t])
      continue;
    seen_[t] = 1;
    cand_[m++] = {t, logits[i], 0.f};
  }
  const std::vector<int32_t> pen = penalised();
  for (int32_t t : pen)
    seen_[t] |= 2;
  for (int32_t t : opts_.banned)
    if (t >= 0 && t < nVocab_)
      seen_[t] |= 4;
  for (size_t i = 0; i < m; ++i) {
    const uint8_t f = seen_[cand_[i].id];
    if (f & 2)
      penalise(cand_[i].logit);
    if (f & 4)
      cand_[i].logit = -std::numeric_limits<float>::infinity();
  }
  for (size_t i = 0; i < m; ++i)
    seen_[cand_[i].id] = 0;
  for (int32_t t : pen)
    seen_[t] = 0;
  for (int32_t t : opts_.banned)
    if (t >= 0 && t < nVocab_)
      seen_[t] = 0;
  return m ? choose(m) : 0;
}

int32_t Sampler::choose(size_t n) {
  auto byLogit = [](const Candidate &a, const Candidate &b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  if (opts_.temperature <= 0.f) {
    // Greedy; the lowest id wins a tie.
    return std::min_element(cand_.begin(), cand_.begin() + n, byLogit)->id;
  }
  if (opts_.topK > 0 && size_t(opts_.topK) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + opts_.topK,
                      cand_.begin() + n, byLogit);
    n = opts_.topK;
  } else {
    std::sort(cand_.begin(), cand_.begin() + n, byLogit);
  }

  if (opts_.topP < 1.f) {
    // Keep the smallest prefix whose probability reaches top-p (at least one).
    softmaxCandidates(cand_.data(), n, 1.f);
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += cand_[i].p;
      if (cum >= opts_.topP) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }

  if (opts_.minP > 0.f && n > 1) {
    // Candidates are sorted: keep those whose logit is within log(min-p)
    // of the best (p_i >= min_p * p_max at temperature 1).
    const float floor = cand_[0].logit + std::log(opts_.minP);
    size_t keep = 1;
    while (keep < n && cand_[keep].logit >= floor)
      ++keep;
    n = keep;
  }

  softmaxCandidates(cand_.data(), n, opts_.temperature);
  double u = double(rng_()) / 4294967296.0; // [0, 1)
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += cand_[i].p;
    if (u < cum)
      return cand_[i].id;
  }
  return cand_[n - 1].id; // rounding left u above the last partial sum
}

} // namespace pinfer
