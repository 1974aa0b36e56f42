// Tests the sampler: greedy choice, seeded determinism, the top-k and top-p
// cut-offs, temperature, llama.cpp's repetition penalty, and sampling from
// the best candidates alone; the log-probabilities the server reports.
#include "runtime/generate.h"
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

SamplerOptions greedy() {
  SamplerOptions o;
  o.temperature = 0.f;
  o.seed = 1;
  return o;
}

// Draws `n` tokens and returns how often each id came out.
std::map<int32_t, int> histogram(Sampler &s, const std::vector<float> &logits,
                                 int n) {
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i)
    h[s.sample(logits.data())]++;
  return h;
}

} // namespace

// Tests that greedy picks the largest logit and the lowest id on a tie.
TEST(Sampler, GreedyPicksArgmaxLowestIdOnTie) {
  Sampler s(greedy(), 6);
  std::vector<float> l = {0.1f, 2.f, -1.f, 3.f, 3.f, 0.f};
  EXPECT_EQ(s.sample(l.data()), 3);
  l[3] = -5.f;
  EXPECT_EQ(s.sample(l.data()), 4);
}

// Tests that one seed gives one sequence and another seed another one.
TEST(Sampler, SeededSamplingIsDeterministic) {
  SamplerOptions o;
  o.temperature = 1.f;
  o.topK = 0;
  o.topP = 1.f;
  o.seed = 1234;
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i)
    l[i] = std::sin(i * 0.7f);
  Sampler a(o, 50), b(o, 50);
  o.seed = 4321;
  Sampler c(o, 50);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 200; ++i) {
    sa.push_back(a.sample(l.data()));
    sb.push_back(b.sample(l.data()));
    sc.push_back(c.sample(l.data()));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_EQ(a.seed(), 1234u);
  // reset() restarts the same sequence.
  a.reset();
  std::vector<int32_t> again;
  for (int i = 0; i < 200; ++i)
    again.push_back(a.sample(l.data()));
  EXPECT_EQ(again, sa);
}

// Tests that top-k = 1 is greedy at any temperature and that top-k = 3 only
// returns the three best ids, with frequencies following their softmax
// (20000 draws; each frequency within 0.02 of its probability).
TEST(Sampler, TopKRestrictsAndFollowsSoftmax) {
  std::vector<float> l = {1.f, 0.5f, 3.f, 2.f, 2.5f, -1.f};
  SamplerOptions o;
  o.temperature = 5.f;
  o.topK = 1;
  o.topP = 1.f;
  o.seed = 7;
  Sampler one(o, 6);
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(one.sample(l.data()), 2);

  o.temperature = 1.f;
  o.topK = 3;
  Sampler three(o, 6);
  const int n = 20000;
  std::map<int32_t, int> h = histogram(three, l, n);
  EXPECT_EQ(h.size(), 3u);
  double z = std::exp(3.0) + std::exp(2.5) + std::exp(2.0);
  EXPECT_NEAR(h[2] / double(n), std::exp(3.0) / z, 0.02);
  EXPECT_NEAR(h[4] / double(n), std::exp(2.5) / z, 0.02);
  EXPECT_NEAR(h[3] / double(n), std::exp(2.0) / z, 0.02);
}

// Tests that top-p keeps the smallest prefix reaching p: with probabilities
// 0.5, 0.3, 0.15, 0.05 and p = 0.7 only the first two remain, renormalised
// to 0.625 / 0.375.
TEST(Sampler, TopPKeepsSmallestPrefix) {
  std::vector<float> l = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                          std::log(0.3f)};
  SamplerOptions o;
  o.temperature = 1.f;
  o.topK = 0;
  o.topP = 0.7f;
  o.seed = 99;
  Sampler s(o, 4);
  const int n = 20000;
  std::map<int32_t, int> h = histogram(s, l, n);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[1] / double(n), 0.625, 0.02);
  EXPECT_NEAR(h[3] / double(n), 0.375, 0.02);
}

// Tests llama.cpp's min-p: tokens under min_p x the likeliest's probability
// are never drawn; the rest keep their ratios.
TEST(Sampler, MinPDropsTheUnlikely) {
  std::vector<float> l = {std::log(0.5f), std::log(0.04f), std::log(0.3f),
                          std::log(0.16f)};
  SamplerOptions o;
  o.temperature = 1.f;
  o.topK = 0;
  o.topP = 1.f;
  o.minP = 0.1f; // keeps p >= 0.05: ids 0, 2, 3
  o.seed = 7;
  Sampler s(o, 4);
  const int n = 20000;
  std::map<int32_t, int> h = histogram(s, l, n);
  EXPECT_EQ(h.count(1), 0u);
  EXPECT_NEAR(h[0] / double(n), 0.5 / 0.96, 0.02);
  EXPECT_NEAR(h[3] / double(n), 0.16 / 0.96, 0.02);
}

// Tests that banned tokens (--ignore-eos) are never chosen, greedy or not.
TEST(Sampler, BannedTokensAreNeverChosen) {
  SamplerOptions o = greedy();
  o.banned = {3};
  Sampler g(o, 4);
  std::vector<float> l = {0.f, 1.f, 0.5f, 9.f};
  EXPECT_EQ(g.sample(l.data()), 1);
  o.temperature = 1.f;
  o.topK = 0;
  Sampler s(o, 4);
  EXPECT_EQ(histogram(s, l, 2000).count(3), 0u);
}

// Tests that the temperature divides the logits: at T = 2 two tokens whose
// logits differ by 2 are drawn in the ratio e : 1.
TEST(Sampler, TemperatureScalesLogits) {
  std::vector<float> l = {2.f, 0.f};
  SamplerOptions o;
  o.temperature = 2.f;
  o.topK = 0;
  o.topP = 1.f;
  o.seed = 5;
  Sampler s(o, 2);
  const int n = 20000;
  std::map<int32_t, int> h = histogram(s, l, n);
  double p0 = std::exp(1.0) / (std::exp(1.0) + 1.0);
  EXPECT_NEAR(h[0] / double(n), p0, 0.02);
}

// Tests llama.cpp's penalty: a positive logit is divided, a negative one
// multiplied, each distinct recent token once, and only within the last
// repeatLastN accepted tokens.
TEST(Sampler, RepetitionPenalty) {
  SamplerOptions o = greedy();
  o.repeatPenalty = 2.f;
  o.repeatLastN = 3;
  // Token 0 at 3.0 beats token 1 at 2.0 until 0 is penalised to 1.5.
  std::vector<float> l = {3.f, 2.f, -1.f, -0.6f};
  Sampler s(o, 4);
  EXPECT_EQ(s.sample(l.data()), 0);
  s.accept(0);
  EXPECT_EQ(s.sample(l.data()), 1);
  // Repeats do not compound: 0 stays at 1.5, 1 becomes 1.0.
  s.accept(0);
  s.accept(1);
  EXPECT_EQ(s.sample(l.data()), 0);
  // Negative logits are multiplied: -1 becomes -2 and loses to -1.1.
  std::vector<float> neg = {-1.f, -1.1f};
  Sampler t(o, 2);
  t.accept(0);
  EXPECT_EQ(t.sample(neg.data()), 1); // -2.0 < -1.1
  // The window slides: after three other tokens, 0 is no longer penalised.
  Sampler u(o, 4);
  u.accept(0);
  u.accept(2);
  u.accept(3);
  EXPECT_EQ(u.sample(l.data()), 1);
  u.accept(2);
  EXPECT_EQ(u.sample(l.data()), 0);
}

// Tests that sampling from the best candidatesNeeded() logits and the
// penalised tokens' (what a GPU head brings back) chooses what sampling
// from all of them does, token after token: greedy and temperature
// sampling with top-k, top-p and min-p, penalties above and below 1, banned
// tokens, logits with many ties (the cut falls inside a run of equal
// values), and candidate lists in any order, with repeats and more than
// needed.
TEST(Sampler, BestCandidatesChooseAsAllLogits) {
  constexpr int kVocab = 500;
  std::mt19937 rng(7);
  int checked = 0;
  for (int c = 0; c < 96; ++c) {
    SamplerOptions o;
    o.seed = 100 + c;
    o.temperature = c % 4 == 0 ? 0.f : 0.7f + 0.1f * (c % 3);
    o.topK = std::array<int, 4>{1, 5, 40, 60}[c % 4];
    o.topP = c % 3 == 0 ? 1.f : 0.9f;
    o.minP = c % 5 == 0 ? 0.05f : 0.f;
    o.repeatPenalty = std::array<float, 3>{1.f, 1.3f, 0.8f}[c % 3];
    o.repeatLastN = 16;
    if (c % 2)
      o.banned = {3, int32_t(c), 77};
    Sampler all(o, kVocab), some(o, kVocab);
    ASSERT_GT(some.candidatesNeeded(), 0);
    std::vector<float> logits(kVocab);
    for (int step = 0; step < 24; ++step) {
      // Few distinct values (ties), some of them the largest.
      for (float &l : logits)
        l = float(int(rng() % 12)) * 0.5f - 2.f;
      const int need = some.candidatesNeeded();
      std::vector<int32_t> order(kVocab);
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
      // The best `need` (sometimes a few more), the penalised tokens, a
      // repeat, shuffled.
      std::vector<int32_t> ids(order.begin(),
                               order.begin() + need + int(rng() % 3));
      for (int32_t t : some.penalised())
        ids.push_back(t);
      ids.push_back(ids[0]);
      std::shuffle(ids.begin(), ids.end(), rng);
      std::vector<float> values;
      for (int32_t t : ids)
        values.push_back(logits[t]);
      const int32_t want = all.sample(logits.data());
      const int32_t got =
          some.sampleFrom(ids.data(), values.data(), int(ids.size()));
      ASSERT_EQ(got, want) << "case " << c << " step " << step;
      all.accept(want);
      some.accept(got);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 96 * 24);
  // No top-k limit: every logit is needed.
  SamplerOptions o;
  o.topK = 0;
  EXPECT_EQ(Sampler(o, kVocab).candidatesNeeded(), 0);
}

// Tests logprobsOf against the log-softmax in long double and a full sort:
// the chosen token's value, the k likeliest (ties to the lower id), their
// values, and counts of 0 and beyond the vocabulary.
TEST(Logprobs, AreTheLogSoftmaxAndItsLikeliest) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.f, 4.f);
  std::vector<float> logits(1000);
  for (float &l : logits)
    l = dist(rng);
  logits[10] = logits[900] = logits[500] = 30.f; // a three-way tie at the top
  logits[11] = logits[12] = 20.f;
  long double z = 0;
  for (float l : logits)
    z += std::exp((long double)l - 30.L);
  const long double logZ = 30.L + std::log(z);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)];
  });
  for (int32_t chosen : {0, 11, 900}) {
    const TokenLogprobs t = logprobsOf(logits.data(), 1000, chosen, 5);
    EXPECT_EQ(t.id, chosen);
    EXPECT_NEAR(t.logprob, double(logits[size_t(chosen)] - logZ), 1e-5);
    ASSERT_EQ(t.top.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(t.top[i].first, order[i]) << i;
      EXPECT_NEAR(t.top[i].second, double(logits[size_t(order[i])] - logZ),
                  1e-5);
    }
  }
  EXPECT_TRUE(logprobsOf(logits.data(), 1000, 3, 0).top.empty());
  const TokenLogprobs all = logprobsOf(logits.data(), 3, 1, 10);
  ASSERT_EQ(all.top.size(), 3u);
  long double sum = 0;
  for (const auto &[id, lp] : all.top)
    sum += std::exp((long double)lp);
  EXPECT_NEAR(double(sum), 1.0, 1e-6);
}
