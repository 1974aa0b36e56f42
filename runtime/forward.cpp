// The dense reference forward pass; see forward.h.
//
// Per layer: x += Wo · attention(rope(Wq·n), rope(Wk·n), Wv·n) with
// n = rmsnorm(x) · attn_norm, then x += Wdown · act(Wgate·m, Wup·m) with
// m = rmsnorm(x) · ffn_norm; finally logits = Wout · (rmsnorm(x) · out_norm).
// A batch of tokens moves through each step together; attention of a token
// sees the cache up to its own position only, so batching changes the order
// of the work but not a single result.
#include "runtime/forward.h"

#include "runtime/kernels.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <unistd.h>

namespace pinfer {

void setLayerAttention(const ModelParams &p, int l, const LayerExtras &e,
                       const float *invFreqGlobal, const float *invFreqLocal,
                       AttentionBlock &b) {
  const bool sliding = p.isSlidingLayer(l);
  b.invFreq = sliding && invFreqLocal ? invFreqLocal : invFreqGlobal;
  b.window = sliding ? p.slidingWindow : 0;
  auto ptr = [](const std::vector<float> &v) {
    return v.empty() ? nullptr : v.data();
  };
  b.qNorm = ptr(e.qNorm);
  b.kNorm = ptr(e.kNorm);
  b.postNorm = ptr(e.postAttnNorm);
  b.bq = ptr(e.bq);
  b.bk = ptr(e.bk);
  b.bv = ptr(e.bv);
}

void scaleEmbeddings(const ModelParams &p, float *x, int n) {
  if (!p.scaleEmbedding)
    return;
  const float scale = std::sqrt(float(p.nEmbd));
  for (size_t i = 0; i < size_t(n) * p.nEmbd; ++i)
    x[i] *= scale;
}

void addFfnOutput(const ModelParams &p, const std::vector<float> &postNorm,
                  float *x, float *y) {
  if (!postNorm.empty())
    rmsNorm(y, y, postNorm.data(), p.nEmbd, p.normEps);
  for (int i = 0; i < p.nEmbd; ++i)
    x[i] += y[i];
}

void attentionBlock(const ModelParams &p, const AttentionBlock &b, float *x,
                    int n, int pos0, ThreadPool &pool) {
  const int nEmbd = p.nEmbd;
  rmsNormRows(b.xb, x, b.norm, n, nEmbd, p.normEps);
  attentionCore(p, b, n, pos0, pool);
  if (b.postNorm)
    rmsNormRows(b.xb2, b.xb2, b.postNorm, n, nEmbd, p.normEps);
  for (size_t i = 0; i < size_t(n) * nEmbd; ++i)
    x[i] += b.xb2[i];
}

void attentionCore(const ModelParams &p, const AttentionBlock &b, int n,
                   int pos0, ThreadPool &pool) {
  const int headDim = p.headDim, kvDim = p.kvDim();
  const int qDim = p.nHead * headDim;
  const int groupSize = p.nHead / p.nKvHead;         // query heads per KV head
  float *kRows = b.kNew, *vRows = b.vNew; // [n][kvDim], then to the cache
  MatvecJob qkv[3] = {
      {b.wq, b.xb, b.q}, {b.wk, b.xb, kRows}, {b.wv, b.xb, vRows}};
  matvecs(qkv, 3, pool, n);
  for (int t = 0; t < n; ++t) {
    float *qt = b.q + size_t(t) * qDim, *kt = kRows + size_t(t) * kvDim;
    float *vt = vRows + size_t(t) * kvDim;
    if (b.bq)
      for (int i = 0; i < qDim; ++i)
        qt[i] += b.bq[i];
    if (b.bk)
      for (int i = 0; i < kvDim; ++i)
        kt[i] += b.bk[i];
    if (b.bv)
      for (int i = 0; i < kvDim; ++i)
        vt[i] += b.bv[i];
    if (b.qNorm)
      for (int h = 0; h < p.nHead; ++h)
        rmsNorm(qt + h * headDim, qt + h * headDim, b.qNorm, headDim,
                p.normEps);
    if (b.kNorm)
      for (int h = 0; h < p.nKvHead; ++h)
        rmsNorm(kt + h * headDim, kt + h * headDim, b.kNorm, headDim,
                p.normEps);
    rope(qt, p.nHead, headDim, p.nRot, pos0 + t, b.invFreq, p.ropeStyle);
    rope(kt, p.nKvHead, headDim, p.nRot, pos0 + t, b.invFreq, p.ropeStyle);
    // Into the cache in f16 (rounded to nearest even, as the GPU's cvt.rn).
    storeF16(kt, b.layerKeys + size_t(pos0 + t) * kvDim, kvDim);
    storeF16(vt, b.layerValues + size_t(pos0 + t) * kvDim, kvDim);
  }
  // Each item: `per` query heads of one KV head (the whole group where
  // there are enough groups to share among the threads; one head at a time
  // for a decoded token of a model with one KV head) over a range of the
  // chunk's tokens, converting each key and value row it reads once.
  // Ranges of early and late tokens alternate, so that a thread's run of
  // items mixes short and long causal windows. Every head of every token
  // gets the same bits whatever the items (attendChunk).
  const int per =
      int64_t(n) * p.nKvHead >= 2 * int64_t(pool.size()) ? groupSize : 1;
  const int headItems = p.nHead / per, span = 16;
  const int ranges = (n + span - 1) / span;
  pool.parallelFor(int64_t(headItems) * ranges, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int r = int(i % ranges);
      const int range = r % 2 == 0 ? r / 2 : ranges - 1 - r / 2;
      const int h = int(i / ranges) * per;
      const int64_t kvOff = int64_t(h / groupSize) * headDim;
      AttendChunk c;
      c.q = b.q + h * headDim;
      c.qStride = qDim;
      c.nHeads = per;
      c.keys = b.layerKeys + kvOff;
      c.values = b.layerValues + kvOff;
      c.stride = kvDim;
      c.headDim = headDim;
      c.pos0 = pos0;
      c.t0 = range * span;
      c.t1 = std::min(n, c.t0 + span);
      c.window = b.window; // the last `window` positions, its own included
      c.scores = b.scores + int64_t(h) * b.nCtx;
      c.scoreTokStride = int64_t(p.nHead) * b.nCtx;
      c.scoreHeadStride = b.nCtx;
      c.out = b.attnOut + h * headDim;
      c.outStride = qDim;
      attendChunk(c);
    }
  });
  MatvecJob wo{b.wo, b.attnOut, b.xb2};
  matvecs(&wo, 1, pool, n);
}

namespace {

// One chunk of at most state.nBatch tokens; checks are done by the caller.
void forwardChunk(const Model &model, ForwardState &s, ThreadPool &pool,
                  const int32_t *tokens, int n, int pos0) {
  const ModelParams &p = model.params();
  const int nEmbd = p.nEmbd, kvDim = p.kvDim(), nFF = p.nFF;
  const bool instrument = s.firingCounts || s.ffnHook;

  const Weight &embd = model.tokenEmbedding();
  for (int t = 0; t < n; ++t)
    rowToF32(embd.type, embd.row(tokens[t]), s.x.data() + size_t(t) * nEmbd,
             nEmbd);
  scaleEmbeddings(p, s.x.data(), n);

  for (int l = 0; l < p.nLayer; ++l) {
    const LayerWeights &w = model.layer(l);
    uint16_t *layerKeys = s.keyCache.data() + size_t(l) * s.nCtx * kvDim;
    uint16_t *layerValues = s.valueCache.data() + size_t(l) * s.nCtx * kvDim;
    AttentionBlock ab{w.attnNorm.data(),
                      &w.wq,
                      &w.wk,
                      &w.wv,
                      &w.wo,
                      layerKeys,
                      layerValues,
                      s.xb.data(),
                      s.xb2.data(),
                      s.q.data(),
                      s.attnOut.data(),
                      s.scores.data(),
                      s.invFreq.data(),
                      s.nCtx};
    setLayerAttention(p, l, w, s.invFreq.data(),
                      s.invFreqLocal.empty() ? nullptr : s.invFreqLocal.data(),
                      ab);
    ab.kNew = s.kNew.data();
    ab.vNew = s.vNew.data();
    attentionBlock(p, ab, s.x.data(), n, pos0, pool);

    // FFN block.
    rmsNormRows(s.xb.data(), s.x.data(), w.ffnNorm.data(), n, nEmbd,
                p.normEps);
    MatvecJob gateUp[2] = {{&w.gate, s.xb.data(), s.hGate.data()},
                           {&w.up, s.xb.data(), s.hUp.data()}};
    matvecs(gateUp, 2, pool, n);
    float *h = s.hGate.data();
    const float *u = s.hUp.data();
    const size_t nh = size_t(n) * nFF;
    switch (p.activation) {
    case FfnActivation::SiLU:
      for (size_t i = 0; i < nh; ++i)
        h[i] = ffnProduct<FfnActivation::SiLU>(h[i], u[i]);
      break;
    case FfnActivation::ReLU:
      for (size_t i = 0; i < nh; ++i)
        h[i] = ffnProduct<FfnActivation::ReLU>(h[i], u[i]);
      break;
    case FfnActivation::DReLU:
      for (size_t i = 0; i < nh; ++i)
        h[i] = ffnProduct<FfnActivation::DReLU>(h[i], u[i]);
      break;
    case FfnActivation::GeluTanh:
      for (size_t i = 0; i < nh; ++i)
        h[i] = ffnProduct<FfnActivation::GeluTanh>(h[i], u[i]);
      break;
    }
    if (instrument) {
      for (int t = 0; t < n; ++t) {
        const float *ht = h + size_t(t) * nFF;
        for (int i = 0; i < nFF; ++i)
          s.fired[i] = ht[i] != 0.f;
        if (s.firingCounts) {
          uint64_t *counts = s.firingCounts + size_t(l) * nFF;
          for (int i = 0; i < nFF; ++i)
            counts[i] += s.fired[i];
        }
        if (s.ffnHook) {
          s.hookProduct = ht;
          s.hookUp = u + size_t(t) * nFF;
          s.ffnHook(l, pos0 + t, s.xb.data() + size_t(t) * nEmbd,
                    s.fired.data());
        }
      }
    }
    MatvecJob down{&w.down, h, s.xb2.data()};
    down.f32Act = size_t(l) < s.f32DownLayers.size() && s.f32DownLayers[l];
    matvecs(&down, 1, pool, n);
    for (int t = 0; t < n; ++t)
      addFfnOutput(p, w.postFfnNorm, s.x.data() + size_t(t) * nEmbd,
                   s.xb2.data() + size_t(t) * nEmbd);
    if (s.layerDone)
      s.layerDone(l);
  }
  s.nPast = pos0 + n;
}

} // namespace

uint64_t contextBytes(const ModelParams &p, int nCtx, int nBatch) {
  const uint64_t ctx = uint64_t(nCtx > 0 ? nCtx : 0);
  // Keys and values in f16; the scores in f32.
  const uint64_t cache = 2ull * p.nLayer * ctx * uint64_t(p.kvDim());
  const uint64_t scores = (uint64_t(nBatch) + 1) * uint64_t(p.nHead) * ctx;
  return sizeof(uint16_t) * cache + sizeof(float) * scores;
}

namespace {

// Memory a new allocation can have without swapping or the OOM killer:
// MemAvailable, else the physical memory.
uint64_t availableMemory() {
  if (FILE *f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f))
      found = std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
    std::fclose(f);
    if (found)
      return uint64_t(kb) * 1024;
  }
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? uint64_t(pages) * uint64_t(size) : 0;
}

} // namespace

bool checkContextSize(const ModelParams &p, int nCtx, int nBatch,
                      std::string &error) {
  if (nCtx < 1 || nCtx > (1 << 24)) {
    error = "context size " + std::to_string(nCtx) +
            " is out of range, expected 1..16777216 (-c)";
    return false;
  }
  const uint64_t need = contextBytes(p, nCtx, nBatch);
  const uint64_t have = availableMemory();
  if (have > 0 && need > have) {
    char buf[200];
    std::snprintf(buf, sizeof(buf),
                  "a context of %d tokens needs %.2f GiB (KV cache and "
                  "attention scores), more than the %.2f GiB of memory "
                  "available; use a smaller -c",
                  nCtx, double(need) / (1u << 30), double(have) / (1u << 30));
    error = buf;
    return false;
  }
  return true;
}

bool ForwardState::init(const Model &model, int nCtxIn, std::string &error,
                        int nBatchIn) {
  const ModelParams &p = model.params();
  if (nBatchIn < 1 || nBatchIn > 4096) {
    error = "batch size " + std::to_string(nBatchIn) +
            " is out of range, expected 1..4096";
    return false;
  }
  if (!checkContextSize(p, nCtxIn, nBatchIn, error))
    return false;
  nCtx = nCtxIn;
  nBatch = nBatchIn;
  nPast = 0;
  const size_t b = size_t(nBatch);
  x.assign(b * p.nEmbd, 0.f);
  xb.assign(b * p.nEmbd, 0.f);
  xb2.assign(b * p.nEmbd, 0.f);
  q.assign(b * p.nHead * p.headDim, 0.f);
  attnOut.assign(b * p.nHead * p.headDim, 0.f);
  scores.assign(b * p.nHead * nCtx, 0.f);
  hGate.assign(b * p.nFF, 0.f);
  hUp.assign(b * p.nFF, 0.f);
  fired.assign(p.nFF, 0);
  logits.assign(p.nVocab, 0.f);
  size_t cache = size_t(p.nLayer) * nCtx * p.kvDim();
  keyCache.assign(cache, 0);
  valueCache.assign(cache, 0);
  kNew.assign(b * p.kvDim(), 0.f);
  vNew.assign(b * p.kvDim(), 0.f);
  invFreq.resize(p.nRot / 2);
  ropeInvFreq(invFreq.data(), p.nRot, p.ropeBase);
  invFreqLocal.clear();
  if (p.slidingWindow > 0) {
    invFreqLocal.resize(p.nRot / 2);
    ropeInvFreq(invFreqLocal.data(), p.nRot, p.ropeBaseLocal);
  }
  return true;
}

bool checkBatch(const int32_t *tokens, int n, int pos, int nPast, int nCtx,
                int nVocab, std::string &error) {
  for (int t = 0; t < n; ++t)
    if (tokens[t] < 0 || tokens[t] >= nVocab) {
      error = "token " + std::to_string(tokens[t]) +
              " is outside the vocabulary of " + std::to_string(nVocab) +
              " tokens";
      return false;
    }
  if (n < 1 || pos != nPast || int64_t(pos) + n > nCtx) {
    error = "positions " + std::to_string(pos) + ".." +
            std::to_string(int64_t(pos) + n - 1) + " cannot be evaluated: " +
            std::to_string(nPast) + " positions are cached and the context is " +
            std::to_string(nCtx) + " (-c)";
    return false;
  }
  return true;
}

bool forwardBatch(const Model &model, ForwardState &s, ThreadPool &pool,
                  const int32_t *tokens, int n, int pos, bool wantLogits,
                  std::string &error) {
  const ModelParams &p = model.params();
  if (s.nBatch == 0) {
    error = "the forward state was not initialised";
    return false;
  }
  if (!checkBatch(tokens, n, pos, s.nPast, s.nCtx, p.nVocab, error))
    return false;
  int m = 0;
  for (int done = 0; done < n; done += m) {
    m = nextChunk(n - done, s.nBatch);
    forwardChunk(model, s, pool, tokens + done, m, pos + done);
  }

  if (wantLogits) {
    // The last token's hidden state is the last chunk's last row.
    const float *last = s.x.data() + size_t(m - 1) * p.nEmbd;
    rmsNorm(s.xb.data(), last, model.outputNorm().data(), p.nEmbd, p.normEps);
    matvec(model.output(), s.xb.data(), s.logits.data(), pool);
  }
  return true;
}

} // namespace pinfer
