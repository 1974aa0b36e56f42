// The dense reference forward pass: one token at a time through every layer
// of a LLaMA-family model, with an f16 KV cache. This is the oracle the
// specialised (placed, sparse, GPU) paths are tested against, and the engine
// of `pinferc run` and `pinferc profile`: straightforward before fast.
#pragma once

#include "runtime/aligned_vector.h"

#include "runtime/model.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pinfer {

class ThreadPool;

// Called once per layer per token when set, after the FFN activation:
// `ffnInput` is the layer's FFN input after ffn_norm [n_embd], `fired` the
// neurons whose activation product is nonzero [n_ff] (1 = fired). Within a
// batch the calls come layer by layer, tokens in order within each layer.
using FfnHook = std::function<void(int layer, int pos, const float *ffnInput,
                                   const uint8_t *fired)>;

// The bytes of the buffers whose size the context decides: the KV cache
// and the attention scores of `nBatch` tokens (a chunk) plus one.
uint64_t contextBytes(const ModelParams &p, int nCtx, int nBatch);

// Checks -c before anything is allocated: in 1..16777216, and its buffers
// (contextBytes) within the memory this machine has available. False with
// one line saying what the context would need.
bool checkContextSize(const ModelParams &p, int nCtx, int nBatch,
                      std::string &error);

// The size of the next chunk of a prompt with `left` tokens to go: the
// fewest chunks of at most nBatch tokens, of sizes that differ by one at
// most (129 tokens in chunks of 128 go as 65 + 64: a chunk of one token
// would read every weight for that token alone).
inline int nextChunk(int left, int nBatch) {
  const int chunks = (left + nBatch - 1) / nBatch;
  return (left + chunks - 1) / chunks;
}

// Everything one sequence needs between tokens: the KV cache and scratch
// buffers, all sized once by init() so that a token allocates nothing.
struct ForwardState {
  // Prompt tokens per chunk: 128 evaluated 8-17 % faster than 32 and
  // 0-4 % faster than 64 on 1B-shaped f16, q8_0, q4_0 and q6_K models
  // (docs/performance.md); the attention scores it sizes grow with it.
  static constexpr int kDefaultBatch = 128;
  // Sizes the buffers for `model`, `nCtx` positions and batches of up to
  // `nBatch` tokens. False (and `error`) when a size is out of range.
  bool init(const Model &model, int nCtx, std::string &error,
            int nBatch = kDefaultBatch);
  // Forgets the cached positions (the buffers stay).
  void reset() { nPast = 0; }

  int nCtx = 0;
  int nBatch = 0;
  int nPast = 0; // positions held in the KV cache

  AlignedVector<float> x;  // [n_batch][n_embd] residual stream
  AlignedVector<float> xb; // [n_batch][n_embd] normed input of a block
  AlignedVector<float>
      xb2; // [n_batch][n_embd] block output before the residual add
  AlignedVector<float> q;       // [n_batch][n_head*head_dim]
  AlignedVector<float> attnOut; // [n_batch][n_head*head_dim]
  std::vector<float> scores;   // [n_batch][n_head][n_ctx] attention weights
  AlignedVector<float>
      hGate; // [n_batch][n_ff] gate projection, then activation product
  AlignedVector<float> hUp;    // [n_batch][n_ff]
  std::vector<uint8_t> fired;  // [n_ff] firing mask of one token in one layer
  std::vector<float> logits;   // [n_vocab] of the last token evaluated with wantLogits
  // The KV cache in f16, as llama.cpp keeps it (half the bytes a token's
  // attention reads); the GPU's holds the same values.
  std::vector<uint16_t> keyCache;   // [n_layer][n_ctx][n_kv_head*head_dim]
  std::vector<uint16_t> valueCache; // [n_layer][n_ctx][n_kv_head*head_dim]
  AlignedVector<float> kNew, vNew;  // [n_batch][n_kv_head*head_dim]
  std::vector<float> invFreq;    // [n_rot/2] rotary frequencies
  std::vector<float> invFreqLocal; // [n_rot/2] of sliding layers; empty: none

  // Optional instrumentation for profiling; both off by default.
  uint64_t *firingCounts = nullptr; // [n_layer][n_ff], caller-owned, += per token
  FfnHook ffnHook;
  // During an ffnHook call: the token's rows of hGate (activation product)
  // and hUp (up projection), [n_ff] each; row 0 when one token is evaluated.
  const float *hookProduct = nullptr;
  const float *hookUp = nullptr;
  // Called with each layer's index once a chunk is through it (the
  // profiler lets the layer's weight pages go).
  std::function<void(int layer)> layerDone;

  // Layers whose down projection multiplies its f32 input, [n_layer] (empty:
  // none). Elsewhere the input is quantised to 8 bits per 32 values for
  // block types, as for every other product (and as llama.cpp does). A
  // compiled program keeps f32 where a layer's neurons are split across
  // devices (a block's scale would need activations from both); this makes
  // the reference such a program's oracle.
  std::vector<uint8_t> f32DownLayers;
};

// Runs `n` tokens at positions pos..pos+n-1 (pos must equal state.nPast:
// positions are evaluated in order) and appends their keys and values to the
// cache. Tokens go through the layers together, state.nBatch at a time, so
// that each weight row is read once per batch; the result for every token is
// bitwise what one-token calls give. With `wantLogits` the next-token logits
// after the last token are left in state.logits (prompt evaluation skips the
// large output product for the others). False, with one line in `error`, for
// a token outside the vocabulary or positions beyond the context; the state
// is then unchanged.
bool forwardBatch(const Model &model, ForwardState &state, ThreadPool &pool,
                  const int32_t *tokens, int n, int pos, bool wantLogits,
                  std::string &error);

// The attention block of one layer for `n` tokens at positions pos0..:
// RMS norm, Q/K/V, rope, attention over the cache, output projection, and
// the residual add into `x`. K and V rows are written into the layer's
// cache. The dense reference and the compiled executor both call this, so
// that they compute attention exactly alike.
struct AttentionBlock {
  const float *norm; // [n_embd]
  const Weight *wq, *wk, *wv, *wo;
  uint16_t *layerKeys;   // [n_ctx][n_kv_head*head_dim], f16
  uint16_t *layerValues; // [n_ctx][n_kv_head*head_dim], f16
  float *xb, *xb2;      // [n][n_embd] scratch
  float *q, *attnOut;   // [n][n_head*head_dim] scratch
  float *scores;        // [n][n_head][n_ctx] scratch
  const float *invFreq; // [n_rot/2] of this layer's rope base
  int nCtx;
  // Gemma 3 (null/0 elsewhere): per-head query and key norms [head_dim],
  // the norm of the block's output [n_embd], and the sliding window (the
  // positions a token sees, itself included; 0: all).
  const float *qNorm = nullptr, *kNorm = nullptr, *postNorm = nullptr;
  int window = 0;
  // Qwen2 (null elsewhere): biases of the Q, K and V projections.
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;
  // [n][n_kv_head*head_dim] scratch: the new positions' keys and values in
  // f32 until they are biased, normed, rotated and stored in f16.
  float *kNew = nullptr, *vNew = nullptr;
};
// The attention block of layer `l`: its window, its rope table (the local
// one on sliding layers) and the layer's extras where it has them (empty
// vectors: none), filled in around the caller's buffers.
void setLayerAttention(const ModelParams &p, int l, const LayerExtras &e,
                       const float *invFreqGlobal, const float *invFreqLocal,
                       AttentionBlock &b);

// The steps around the layers that some architectures add, shared by the
// reference and the executors: embeddings of n tokens scaled by
// sqrt(n_embd) where the architecture says so; and the FFN output y [n_embd]
// normed by `postNorm` (when not empty, in place) and added to x.
void scaleEmbeddings(const ModelParams &p, float *x, int n);
void addFfnOutput(const ModelParams &p, const std::vector<float> &postNorm,
                  float *x, float *y);
void attentionBlock(const ModelParams &p, const AttentionBlock &b, float *x,
                    int n, int pos0, ThreadPool &pool);
// The block without its norm and residual add, which the compiled program
// runs as steps of their own: from the normalised input in b.xb to the
// output projection in b.xb2 (K and V rows into the cache).
void attentionCore(const ModelParams &p, const AttentionBlock &b, int n,
                   int pos0, ThreadPool &pool);

// Whether tokens[0..n) can be evaluated at pos..pos+n-1 next: every token
// in the vocabulary, pos == nPast (the positions already cached) and the
// batch within the context nCtx. False with one line in `error`. Shared by
// the reference and the executors' batched evaluation.
bool checkBatch(const int32_t *tokens, int n, int pos, int nPast, int nCtx,
                int nVocab, std::string &error);

// One token: forwardBatch with n = 1.
inline bool forward(const Model &model, ForwardState &state, ThreadPool &pool,
                    int32_t token, int pos, bool wantLogits,
                    std::string &error) {
  return forwardBatch(model, state, pool, &token, 1, pos, wantLogits, error);
}

} // namespace pinfer
