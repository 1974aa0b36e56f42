// Chooses the next token from the logits: greedy, or temperature sampling
// restricted by top-k and top-p, after llama.cpp's repetition penalty. A
// seeded std::mt19937 makes every run reproducible given --seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace pinfer {

struct SamplerOptions {
  float temperature = 0.8f;   // <= 0: greedy (argmax)
  int topK = 40;              // <= 0 or >= n_vocab: no limit
  float topP = 0.95f;         // >= 1: no limit
  float repeatPenalty = 1.0f; // 1: off; llama.cpp's --repeat-penalty
  int repeatLastN = 64;       // tokens the penalty looks back over
  // llama.cpp's min-p: keep tokens whose probability is at least this
  // share of the likeliest one's; 0: off. Its default, as llama.cpp's.
  float minP = 0.05f;
  // Tokens never sampled (--ignore-eos: the end-of-generation tokens).
  std::vector<int32_t> banned;
  // The RNG seed; kRandomSeed draws one from the clock (see Sampler::seed()).
  static constexpr uint32_t kRandomSeed = 0xFFFFFFFFu;
  uint32_t seed = kRandomSeed;
};

class Sampler {
public:
  Sampler(const SamplerOptions &opts, int nVocab);

  // Picks a token from `logits` [n_vocab], which are left untouched. Does not
  // record the token: call accept() with what was actually used.
  int32_t sample(const float *logits);

  // How many of the best logits (by logit, then lowest id) sample() reads
  // to choose, counted before the penalty and the bans: top-k (1 when
  // greedy), plus one for each token the penalty or a ban may move out of
  // them. 0 where it reads them all (no top-k limit). A decoder that
  // computes the logits elsewhere (the output head on a GPU) brings back
  // those and the penalised tokens' (penalised()), and sampleFrom() then
  // chooses exactly what sample() would from all of them.
  int candidatesNeeded() const;
  // The distinct tokens the penalty will move (none when it is off).
  std::vector<int32_t> penalised() const;
  // sample() from ids[0..n) and their logits: at least the
  // candidatesNeeded() best of the full logits and every penalised() token
  // (ids may repeat, with the same logit).
  int32_t sampleFrom(const int32_t *ids, const float *logits, int n);
  // Appends a token (prompt or generated) to the penalty window.
  void accept(int32_t token);
  // Clears the penalty window and reseeds the RNG.
  void reset();

  uint32_t seed() const { return seed_; } // the seed in use, drawn or given
  const SamplerOptions &options() const { return opts_; }

private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  // llama.cpp's penalty on one logit: divided by it when positive,
  // multiplied by it when not.
  void penalise(float &l) const {
    l = l <= 0.f ? l * opts_.repeatPenalty : l / opts_.repeatPenalty;
  }
  // Top-k, top-p, min-p, the temperature and the draw over cand_[0..n),
  // the penalty and the bans already in their logits.
  int32_t choose(size_t n);

  SamplerOptions opts_;
  int nVocab_;
  uint32_t seed_;
  std::mt19937 rng_;
  std::vector<int32_t> recent_;     // [<= repeatLastN] ring of recent tokens
  size_t recentNext_ = 0;           // ring write position once full
  std::vector<float> penalised_;    // [n_vocab] logits after the penalty
  std::vector<Candidate> cand_;     // [n_vocab]
  std::vector<uint8_t> seen_;       // [n_vocab] penalty applied once per id
};

} // namespace pinfer
