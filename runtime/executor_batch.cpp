// Batched prompt evaluation of the specialised decoder (Executor::evalBatch,
// executor.h). A prompt's tokens move through each layer together in chunks
// of up to batchSize() tokens, so that a weight row is read from memory once
// per chunk instead of once per token. Each layer runs its program steps in
// their order: the attention steps for all tokens at once (the dense
// reference's routines take n tokens), then the FFN steps as one group —
// token by token through eval()'s steps when the hot half is on the GPU,
// else with rows outer and tokens inner for both halves together. A program
// whose steps do not split that way runs token by token (checkSteps). Every
// per-token number is computed by the
// same kernels, from the same inputs, accumulated in the same order as
// eval() computes it, so logits, the KV cache and the LayerStats are bitwise
// those of evaluating the prompt token by token.
#include "runtime/executor.h"

#include "runtime/amx_tiles.h"

#include "runtime/kernels.h"
#include "runtime/sparse_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pinfer {

namespace {

// Source blocks (32 neurons each) of a split down layout that one pass of
// the down accumulation covers for every token of the chunk before moving
// on: the slices of those neurons' rows in a thread's columns stay in cache
// while the chunk's tokens use them.
constexpr uint32_t kWindowBlocks = 4;
// The smallest group of a split layout (SplitK's G of 16): the stride of
// the per-token group arrays.
constexpr size_t kMinGroup = 16;
// Packed rows per pass of the Rows layout's down accumulation, likewise.
constexpr int64_t kRowBlock = 32;

uint32_t windowCount(int64_t nFF) {
  const uint32_t nBlocks = uint32_t(nFF / QK8_0);
  return (nBlocks + kWindowBlocks - 1) / kWindowBlocks;
}

} // namespace

void Executor::sizeBatch() {
  const ModelParams &p = params_;
  const size_t nb = size_t(nBatch_), nEmbd = size_t(p.nEmbd),
               nFF = size_t(p.nFF), qDim = size_t(p.nHead) * p.headDim;
  bX_.assign(nb * nEmbd, 0.f);
  bXb_.assign(nb * nEmbd, 0.f);
  bXb2_.assign(nb * nEmbd, 0.f);
  bQ_.assign(nb * qDim, 0.f);
  bAttnOut_.assign(nb * qDim, 0.f);
  bScores_.assign(nb * p.nHead * size_t(nCtx_), 0.f);
  kNew_.assign(std::max<size_t>(nb, 1) * size_t(p.kvDim()), 0.f);
  vNew_.assign(std::max<size_t>(nb, 1) * size_t(p.kvDim()), 0.f);
  bXq_.resize(nb * (nEmbd / QK8_0));
  bH_.assign(nb * nFF, 0.f);
  bHDown_.assign(nb * nFF, 0.f);
  bChosen_.assign(nb * nFF, 0);
  bYHot_.assign(nb * nEmbd, 0.f);
  bYCold_.assign(nb * nEmbd, 0.f);
  bFired_.assign(nb * 2, 0);
  int64_t maxRank = 0;
  for (const LayerBinding &b : layers_)
    if (b.predictor.fc1.data)
      maxRank = std::max(maxRank, b.predictor.rank());
  if (maxRank > 0) {
    bPredHidden_.assign(nb * size_t(maxRank), 0.f);
    bPredLogits_.assign(nb * nFF, 0.f);
  }
  bool split = false;
  for (const LayerBinding &b : layers_)
    split |= isSplitDown(b.downLayout);
  if (!split)
    return;
  const size_t nBlocks = nFF / kMinGroup;
  bFiredRows_.assign(nb * nFF, 0);
  bFiredCoef_.assign(nb * nFF, 0.f);
  bFiredStart_.assign(nb * 2 * (nBlocks + 1), 0);
  bFiredBlock_.assign(nb * 2 * nBlocks, 0);
  bWindowStart_.assign(nb * 2 * (windowCount(p.nFF) + 1), 0);
}

bool Executor::evalBatch(const int32_t *tokens, int n, int pos, bool wantLogits,
                         std::string &error) {
  // Measuring recall evaluates the neurons the predictor skipped, only to
  // count misses; that diagnostic runs token by token. So does a program
  // whose steps this path cannot take in its order (see checkSteps).
  const bool recall =
      measureRecall_ && program_.mode == SparsityMode::Predicted;
  // --gpu-profile's table keeps a prompt's kernels apart from a generated
  // token's, whichever way the prompt goes.
  struct Phase {
    CudaDriver *gpu;
    explicit Phase(CudaDriver *g) : gpu(g) {
      if (gpu)
        gpu->setProfilePhase("prompt");
    }
    ~Phase() {
      if (gpu)
        gpu->setProfilePhase("decode");
    }
  } phase{gpu_.get()};
  if (residentOn_ && gpuChunk_ > 0 && !recall)
    return evalResidentBatch(tokens, n, pos, wantLogits, error);
  if (recall || !batchable_)
    return Decoder::evalBatch(tokens, n, pos, wantLogits, error);
  const ModelParams &p = params_;
  if (!checkBatch(tokens, n, pos, nPast_, nCtx_, p.nVocab, error))
    return false;
  int last = 0; // the last token's row in the last chunk
  for (int done = 0, m = 0; done < n; done += m) {
    m = nextChunk(n - done, nBatch_);
    if (!evalChunk(tokens + done, m, pos + done, error))
      return false;
    last = m - 1;
  }
  if (!wantLogits)
    return true;
  // The last token's residual, through the head as eval() runs it.
  std::copy(bX_.data() + size_t(last) * p.nEmbd,
            bX_.data() + size_t(last + 1) * p.nEmbd, x_.data());
  return computeLogits(error);
}

bool Executor::evalChunk(const int32_t *tokens, int n, int pos0,
                         std::string &error) {
  const ModelParams &p = params_;
  const int nEmbd = p.nEmbd;
  for (int t = 0; t < n; ++t)
    rowToF32(tokEmbd_.type, tokEmbd_.row(tokens[t]),
             bX_.data() + size_t(t) * nEmbd, nEmbd);
  scaleEmbeddings(p, bX_.data(), n);
  // The layer's steps in the program's order, each for the whole chunk;
  // the FFN steps (from the first after ffn_norm to ffn_add) as one group.
  for (int l = 0; l < p.nLayer; ++l) {
    const LayerBinding &b = layers_[l];
    const ProgramLayer &pl = program_.layers[l];
    for (uint32_t k = 0; k < pl.nSteps; ++k) {
      switch (pl.steps[k].kind) {
      case StepKind::AttnNorm:
        rmsNormRows(bXb_.data(), bX_.data(), b.attnNorm.data(), n, nEmbd,
                    p.normEps);
        break;
      case StepKind::Attention:
        if (b.attnOnGpu) {
          if (!attentionGpuChunk(l, n, pos0, error))
            return false;
          break;
        }
        attentionCore(p,
                      attentionFor(l, bXb_.data(), bXb2_.data(), bQ_.data(),
                                   bAttnOut_.data(), bScores_.data()),
                      n, pos0, pool_);
        break;
      case StepKind::AttnPostNorm:
        rmsNormRows(bXb2_.data(), bXb2_.data(), b.postAttnNorm.data(), n, nEmbd,
                    p.normEps);
        break;
      case StepKind::AttnAdd:
        for (size_t i = 0; i < size_t(n) * nEmbd; ++i)
          bX_[i] += bXb2_[i];
        break;
      case StepKind::FfnNorm:
        rmsNormRows(bXb_.data(), bX_.data(), b.ffnNorm.data(), n, nEmbd,
                    p.normEps);
        break;
      default: // checkSteps: the FFN group starts here
        if (!ffnBatch(l, n, pos0, ffnFirst_[l], ffnLast_[l], error))
          return false;
        k = ffnLast_[l];
        break;
      }
    }
  }
  nPast_ = pos0 + n;
  return true;
}

// The predictor's choice for rows [first, n_ff) of every token of
// the chunk into bChosen_: predictorLogits' two products for all tokens at
// once (matvecs gives each token bitwise what matvec gives it alone), its
// bias and ReLU steps per token in its order.
void Executor::predictBatch(const PredictorWeights &pw, int n, int64_t first) {
  const int64_t nEmbd = params_.nEmbd, nFF = params_.nFF, rank = pw.rank();
  float *hidden = bPredHidden_.data(), *logits = bPredLogits_.data();
  MatvecJob fc1{&pw.fc1, bXb_.data(), hidden, nEmbd, rank};
  matvecs(&fc1, 1, pool_, n);
  for (size_t i = 0; i < size_t(n) * rank; ++i)
    hidden[i] = relu(hidden[i] + (pw.b1 ? pw.b1[i % rank] : 0.f));
  MatvecJob fc2{&pw.fc2, hidden, logits, rank, nFF};
  matvecs(&fc2, 1, pool_, n);
  for (int t = 0; t < n; ++t) {
    float *lt = logits + size_t(t) * nFF;
    uint8_t *ct = bChosen_.data() + size_t(t) * nFF;
    if (pw.b2)
      for (int64_t i = 0; i < nFF; ++i)
        lt[i] += pw.b2[i];
    for (int64_t k = first; k < nFF; ++k)
      ct[k] = lt[k] > pw.threshold;
  }
}

bool Executor::ffnBatch(int l, int n, int pos0, uint32_t first, uint32_t last,
                        std::string &error) {
  const ProgramLayer &pl = program_.layers[l];
  const LayerBinding &b = layers_[l];
  const int64_t nEmbd = params_.nEmbd, nFF = params_.nFF;
  const bool gpuHot = gpu_ && pl.nHot > 0 && hotChunk_ >= n;
  if (gpu_ && pl.nHot > 0 && !gpuHot) {
    // Without room for a chunk on the GPU the FFN steps run token by
    // token, exactly as eval() runs them.
    for (int t = 0; t < n; ++t) {
      float *xt = bX_.data() + size_t(t) * nEmbd;
      std::copy(bXb_.data() + size_t(t) * nEmbd,
                bXb_.data() + size_t(t + 1) * nEmbd, xb_.data());
      xqReady_ = false;
      std::copy(xt, xt + nEmbd, x_.data());
      LayerRun run;
      run.onGpu = true;
      for (uint32_t k = first; k <= last; ++k)
        if (!runStep(l, pl.steps[k], pos0 + t, run, error))
          return false;
      countFfn(l, run);
      std::copy(x_.data(), x_.data() + nEmbd, xt);
    }
    return true;
  }
  // Without a GPU the group's steps are one computation: both halves' gate
  // and up rows for the whole chunk, row by row (the transfers, record and
  // wait have nothing to move or wait for), the predictor where the steps
  // have one, the down products, their sum and the residual add.
  const bool exact = program_.mode != SparsityMode::Dense;
  // As cpuHalf: exact mode skips |a| <= 0, threshold mode |a| <= the layer's
  // threshold.
  const float skipAtOrBelow =
      program_.mode == SparsityMode::Threshold ? pl.actThreshold : 0.f;
  const FfnActivation act = params_.activation;
  const int64_t nHot = pl.nHot, nCold = pl.nCold, nBlk = nEmbd / QK8_0;

  // The quantised input of Q8_0/Q4_0 rows, per token, as ffn() makes it.
  const bool quantised = usesQ8Act(b.gate.type) || usesQ8Act(b.up.type);
  if (quantised)
    for (int t = 0; t < n; ++t)
      quantizeActQ8(bXb_.data() + size_t(t) * nEmbd,
                    bXq_.data() + size_t(t) * nBlk, nEmbd);
  // The predictor chooses the cold half's rows, and the hot half's where
  // that half has its own (a predict@gpu step) and runs here (from
  // predFirst on); a layer without one runs its
  // cold half as exact mode does.
  const int64_t predFirst = b.gpuPredicts && !gpuHot ? 0 : nHot;
  const bool predict = hasPredict_[l] && predFirst < nFF;
  uint8_t *chosen = bChosen_.data();
  // The hot half on the GPU for the whole chunk (the kernels compute each
  // token as alone), while the cold half runs here.
  if (gpuHot && !hotChunkGpu(l, n, error))
    return false;
  if (predict)
    predictBatch(b.predictor, n, predFirst);

  // Gate for every (chosen) neuron and token, up only for the pairs whose
  // activation passes the mode's test: rows outer, tokens inner, so each
  // row is read once per chunk.
  const RowDot gateDot = rowDot(b.gate.type), upDot = rowDot(b.up.type);
  const float *xb = bXb_.data();
  const BlockQ8Act *xq = bXq_.data();
  // Rows stored scales first (the cold rows of Q4_0 gate and up): for
  // fewer than kTokensAtOnce tokens one by one with each token's input
  // prepared once, as cpuHalf; for more, each row (or group of
  // kRowsAtOnce) back in blocks once for the chunk, through the rows x
  // tokens kernels below, which outrun the scales-first product there.
  // The pairs the sparse modes still take one by one (predicted rows, the
  // tokens after the last group) come from the scales-first rows as they
  // are, each token's input prepared once.
  const bool sfBlocks = b.gate.scalesFirst && n >= kTokensAtOnce;
  const bool sf = b.gate.scalesFirst && !sfBlocks;
  const bool sfOne = b.gate.scalesFirst && (sf || exact);
  const int64_t sfPairs = q4SfActCount(nEmbd);
  const Q4SfAct *sfAct = sfOne ? prepQ4SfActs(xq, nEmbd, n, bSfAct_) : nullptr;
  // One token's product of row k of w (`row`: that row in blocks where it
  // is stored scales first and sfOne does not hold).
  auto rowDotAt = [&](const RowDot &dot, const Weight &w, const uint8_t *row,
                      int64_t k, int t) {
    const BlockQ8Act *xqt = xq + size_t(t) * nBlk;
    return sfOne && w.rowScalesFirst(k)
               ? dotQ4Sf(w.row(k), xqt, sfAct ? sfAct + t * sfPairs : nullptr,
                         nEmbd)
               : dot(row, xb + size_t(t) * nEmbd, xqt, nEmbd);
  };
  float *h = bH_.data();
  // Unpredicted rows take kTokensAtOnce tokens at a time where the types
  // have such kernels (bitwise the one-token products): the gates of all,
  // the ups of all when all pass the test, else one by one.
  const bool several = !sf && gateDot.hasX4() && upDot.hasX4();
  // Their rows unpacked once for the chunk's tokens where the types can
  // (RowDot::prepared, the same products): the gates of the unpredicted
  // rows, and in dense mode the ups.
  const RowDot gatePrepared = gateDot.prepared(), upPrepared = upDot.prepared();
  // Dense mode computes every pair: kRowsAtOnce rows at a time where the
  // types have such kernels (bitwise the same products), as matvecRows.
  // Where both types have them (the K-quants), from the chunk's quantised
  // input laid out in pairs of blocks once for every thread's rows.
  const bool pairsRows =
      gateDot.q8 && upDot.q8 && gateDot.q8PairsRows && upDot.q8PairsRows;
  const bool rowsAtOnce = !sf && !exact && !predict &&
                          ((gateDot.hasRows() && upDot.hasRows()) || pairsRows);
  const int n4 = n - n % kTokensAtOnce;
  const bool pairs = rowsAtOnce && pairsRows && n4 > 0;
  if (pairs)
    pairActivations(xq, nBlk, n4, bXPairs_, bXPairScales_);
  // Sixteen rows by sixteen tokens per AMX tile multiply where the CPU has
  // them (runtime/amx_tiles.h, bitwise the same products), the chunk's
  // input laid out once for every thread's rows; the tokens after the last
  // sixteen as above.
  // Sparse modes take the gates of their unpredicted rows (every row, or
  // the hot ones in predicted mode) the same way, and the ups of a group
  // of rows too where enough of its pairs pass the mode's test; the pairs
  // that do not pass are set to zero as below.
  const bool amxTypes = gateDot.q8 && upDot.q8 && n >= kAmxPadFrom &&
                        amxReads(b.gate.type) && amxReads(b.up.type) &&
                        tilesActive();
  const bool amx = amxTypes && (rowsAtOnce || (exact && !sf));
  if (amx)
    amxPrepare(xq, nBlk, n, bAmx_);
  const int tiled = amx ? bAmx_.tokens : 0;
  const int64_t tiledRowsEnd = predict ? predFirst : nFF;
  // Rows [kFirst, n_ff): the hot ones are the GPU's where it has them.
  const int64_t kFirst = gpuHot ? nHot : 0;
  pool_.parallelFor(nFF - kFirst, [&](int64_t a0, int64_t a1) {
    const int64_t k0 = a0 + kFirst, k1 = a1 + kFirst;
    float g4[kTokensAtOnce], u4[kTokensAtOnce];
    // Rows k .. k + count - 1 of w as blocks: the packed rows, or their
    // scales-first rows converted into `buf`.
    static thread_local std::vector<uint8_t> gateBuf, upBuf;
    auto blocksAt = [&](const Weight &w, int64_t k, int64_t count,
                        std::vector<uint8_t> &buf) -> const uint8_t * {
      if (!sfBlocks || !w.rowScalesFirst(k + count - 1))
        return w.row(k);
      buf.resize(size_t(count) * w.rowBytes);
      for (int64_t i = 0; i < count; ++i)
        if (w.rowScalesFirst(k + i))
          scalesFirstToQ4_0(w.row(k + i), buf.data() + i * w.rowBytes, nBlk);
        else
          std::memcpy(buf.data() + i * w.rowBytes, w.row(k + i), w.rowBytes);
      return buf.data();
    };
    auto put = [&](int t, int64_t k, float g, float u) {
      h[size_t(t) * nFF + k] = ffnActivate(act, g) * ffnUpFactor(act, u);
    };
    // Rows k .. k + kRowsAtOnce - 1 for tokens tBegin .. n - 1: in fours,
    // then one by one.
    auto rowGroup = [&](int64_t k, int tBegin) {
      float gr[kRowsAtOnce * kTokensAtOnce], ur[kRowsAtOnce * kTokensAtOnce];
      const uint8_t *gateRows = blocksAt(b.gate, k, kRowsAtOnce, gateBuf),
                    *upRows = blocksAt(b.up, k, kRowsAtOnce, upBuf);
      int t0 = tBegin;
      for (; t0 + kTokensAtOnce <= n; t0 += kTokensAtOnce) {
        const float *x = xb + size_t(t0) * nEmbd;
        const BlockQ8Act *xqt = xq + size_t(t0) * nBlk;
        if (pairs) {
          const ActPairQ8 *xp = bXPairs_.data() + size_t(t0) * (nBlk / 2);
          const float *f = bXPairScales_.data() + size_t(t0) * 2 * nBlk;
          gateDot.q8PairsRows(gateRows, int64_t(b.gate.rowBytes), xp, f,
                              nBlk / 2, nEmbd, gr);
          upDot.q8PairsRows(upRows, int64_t(b.up.rowBytes), xp, f, nBlk / 2,
                            nEmbd, ur);
        } else {
          gateDot.rows(gateRows, int64_t(b.gate.rowBytes), x, nEmbd, xqt, nBlk,
                       nEmbd, gr);
          upDot.rows(upRows, int64_t(b.up.rowBytes), x, nEmbd, xqt, nBlk, nEmbd,
                     ur);
        }
        for (int i = 0; i < kRowsAtOnce * kTokensAtOnce; ++i)
          put(t0 + i / kRowsAtOnce, k + i % kRowsAtOnce, gr[i], ur[i]);
      }
      // The tokens after the last four, one by one.
      for (int t = t0; t < n; ++t)
        for (int64_t j = k; j < k + kRowsAtOnce; ++j) {
          const float *x = xb + size_t(t) * nEmbd;
          const BlockQ8Act *xqt = xq + size_t(t) * nBlk;
          put(t, j,
              gateDot(gateRows + (j - k) * b.gate.rowBytes, x, xqt, nEmbd),
              upDot(upRows + (j - k) * b.up.rowBytes, x, xqt, nEmbd));
        }
    };
    // Row k for tokens tBegin .. n - 1 as the sparse modes run it (and the
    // rows dense mode cannot take in groups).
    auto sparseRow = [&](int64_t k, int tBegin) {
      const bool predicted = predict && k >= predFirst;
      // A predicted row no token chose is not read (nor converted).
      bool chosenBySome = !predicted;
      for (int t = tBegin; t < n && !chosenBySome; ++t)
        chosenBySome = chosen[size_t(t) * nFF + k];
      if (!chosenBySome) {
        for (int t = tBegin; t < n; ++t)
          h[size_t(t) * nFF + k] = 0.f;
        return;
      }
      // (Predicted rows go one pair at a time: from the rows as stored.)
      const bool asStored = predicted && sfOne;
      const uint8_t *gateRow = asStored ? b.gate.row(k)
                                        : blocksAt(b.gate, k, 1, gateBuf),
                    *upRow =
                        asStored ? b.up.row(k) : blocksAt(b.up, k, 1, upBuf);
      const bool prepGate =
          several && !predicted && gateDot.preparesFor(n - tBegin);
      const bool prepUp = prepGate && !exact && upDot.preparesFor(n - tBegin);
      static thread_local std::vector<PreparedBlock> gatePrep, upPrep;
      if (prepGate) {
        gatePrep.resize(size_t(nBlk));
        gateDot.prepare(gateRow, nEmbd, gatePrep.data());
        gateRow = reinterpret_cast<const uint8_t *>(gatePrep.data());
      }
      if (prepUp) {
        upPrep.resize(size_t(nBlk));
        upDot.prepare(upRow, nEmbd, upPrep.data());
        upRow = reinterpret_cast<const uint8_t *>(upPrep.data());
      }
      const RowDot &gd = prepGate ? gatePrepared : gateDot;
      const RowDot &ud = prepUp ? upPrepared : upDot;
      int t0 = tBegin;
      for (; several && !predicted && t0 + kTokensAtOnce <= n;
           t0 += kTokensAtOnce) {
        const float *x = xb + size_t(t0) * nEmbd;
        const BlockQ8Act *xqt = xq + size_t(t0) * nBlk;
        gd.x4(gateRow, x, nEmbd, xqt, nBlk, nEmbd, g4);
        bool all = true;
        for (int j = 0; j < kTokensAtOnce; ++j) {
          g4[j] = ffnActivate(act, g4[j]);
          all = all && !(exact && std::fabs(g4[j]) <= skipAtOrBelow);
        }
        if (all)
          ud.x4(upRow, x, nEmbd, xqt, nBlk, nEmbd, u4);
        for (int j = 0; j < kTokensAtOnce; ++j) {
          float &ht = h[size_t(t0 + j) * nFF + k];
          const float a = g4[j];
          if (exact && std::fabs(a) <= skipAtOrBelow) {
            ht = 0.f;
            continue;
          }
          const float u = all ? u4[j]
                              : ud(upRow, x + size_t(j) * nEmbd,
                                   xqt + size_t(j) * nBlk, nEmbd);
          ht = a * ffnUpFactor(act, u);
        }
      }
      for (int t = t0; t < n; ++t) {
        float &ht = h[size_t(t) * nFF + k];
        if (predicted && !chosen[size_t(t) * nFF + k]) {
          ht = 0.f;
          continue;
        }
        float g = rowDotAt(gd, b.gate, gateRow, k, t);
        float a = ffnActivate(act, g);
        if (exact && std::fabs(a) <= skipAtOrBelow) {
          ht = 0.f;
          continue;
        }
        float u = rowDotAt(ud, b.up, upRow, k, t);
        ht = a * ffnUpFactor(act, u);
      }
    };
    int64_t kRest = k0;
    static thread_local std::vector<float> gTile, uTile;
    for (; tiled > 0 && !rowsAtOnce && kRest + kAmxRows <= k1 &&
           kRest + kAmxRows <= tiledRowsEnd;
         kRest += kAmxRows) {
      gTile.resize(size_t(tiled) * kAmxRows);
      uTile.resize(size_t(tiled) * kAmxRows);
      amxRows(b.gate.type, blocksAt(b.gate, kRest, kAmxRows, gateBuf),
              int64_t(b.gate.rowBytes), kAmxRows, bAmx_, nEmbd, gTile.data(),
              kAmxRows);
      int passing = 0;
      for (float &g : gTile) {
        g = ffnActivate(act, g);
        passing += !(std::fabs(g) <= skipAtOrBelow);
      }
      // The up rows are read (and converted, where stored scales first)
      // only where some pair passes.
      const uint8_t *upRows =
          passing > 0 ? blocksAt(b.up, kRest, kAmxRows, upBuf) : nullptr;
      // The tiles multiply every pair for about the time a quarter of
      // them take one by one (AVX-512, in cache).
      const bool upTiles = 4 * passing >= tiled * kAmxRows;
      if (upTiles)
        amxRows(b.up.type, upRows, int64_t(b.up.rowBytes), kAmxRows, bAmx_,
                nEmbd, uTile.data(), kAmxRows);
      for (int t = 0; t < tiled; ++t)
        for (int m = 0; m < kAmxRows; ++m) {
          const float a = gTile[size_t(t) * kAmxRows + m];
          float &ht = h[size_t(t) * nFF + kRest + m];
          if (std::fabs(a) <= skipAtOrBelow) {
            ht = 0.f;
            continue;
          }
          const float u = upTiles ? uTile[size_t(t) * kAmxRows + m]
                                  : upDot(upRows + m * b.up.rowBytes,
                                          xb + size_t(t) * nEmbd,
                                          xq + size_t(t) * nBlk, nEmbd);
          ht = a * ffnUpFactor(act, u);
        }
      for (int64_t k = kRest; tiled < n && k < kRest + kAmxRows; ++k)
        sparseRow(k, tiled);
    }
    for (; tiled > 0 && rowsAtOnce && kRest + kAmxRows <= k1;
         kRest += kAmxRows) {
      gTile.resize(size_t(tiled) * kAmxRows);
      uTile.resize(size_t(tiled) * kAmxRows);
      amxRows(b.gate.type, blocksAt(b.gate, kRest, kAmxRows, gateBuf),
              int64_t(b.gate.rowBytes), kAmxRows, bAmx_, nEmbd, gTile.data(),
              kAmxRows);
      amxRows(b.up.type, blocksAt(b.up, kRest, kAmxRows, upBuf),
              int64_t(b.up.rowBytes), kAmxRows, bAmx_, nEmbd, uTile.data(),
              kAmxRows);
      for (int t = 0; t < tiled; ++t)
        for (int m = 0; m < kAmxRows; ++m)
          put(t, kRest + m, gTile[size_t(t) * kAmxRows + m],
              uTile[size_t(t) * kAmxRows + m]);
      // (Only where tokens are left: rowGroup converts scales-first rows.)
      for (int m = 0; tiled < n && m < kAmxRows; m += kRowsAtOnce)
        rowGroup(kRest + m, tiled);
    }
    for (; rowsAtOnce && kRest + kRowsAtOnce <= k1; kRest += kRowsAtOnce)
      rowGroup(kRest, 0);
    for (int64_t k = kRest; k < k1; ++k)
      sparseRow(k, 0);
  });

  downBatch(l, n, gpuHot);
  if (gpuHot && !hotChunkDone(l, n, error))
    return false;

  // The ffn_add step: the merge's sum, or the layer's one half, as eval()
  // adds it.
  const StepDevice from = pl.steps[last].from;
  for (int t = 0; t < n; ++t) {
    float *yh = bYHot_.data() + size_t(t) * nEmbd;
    float *yc = bYCold_.data() + size_t(t) * nEmbd;
    float *y = from == StepDevice::Cpu ? yc : yh;
    if (from == StepDevice::None)
      for (int64_t i = 0; i < nEmbd; ++i)
        yh[i] += yc[i];
    addFfnOutput(params_, b.postFfnNorm, bX_.data() + size_t(t) * nEmbd, y);
  }
  // The counters ffn() keeps, token by token.
  LayerStats &st = stats_[l];
  for (int t = 0; t < n; ++t) {
    const uint64_t firedHot = bFired_[2 * t], firedCold = bFired_[2 * t + 1];
    const uint64_t hotRun = exact ? firedHot : uint64_t(nHot);
    st.tokens += 1;
    st.fired += firedHot + firedCold;
    st.cpuNeurons +=
        (exact ? firedCold : uint64_t(nCold)) + (gpuHot ? 0 : hotRun);
    st.gpuNeurons += gpuHot ? hotRun : 0;
    if (predict) {
      const uint8_t *ct = chosen + size_t(t) * nFF;
      for (int64_t k = predFirst; k < nFF; ++k)
        st.predicted += ct[k];
      // The neurons that fired among those predicted here (the hot ones
      // too where their half's predictor ran here).
      st.coldFired += firedCold + (predFirst < nHot ? firedHot : 0);
    }
  }
  return true;
}

// The down projections of a chunk into bYHot_ / bYCold_, and each token's
// fired counts into bFired_. Columns are split over threads as cpuDown splits
// them; a thread takes a few rows (or source blocks) at a time and applies
// them to every token before the next few, which keeps each token's
// accumulation order that of cpuDown.
void Executor::downBatch(int l, int n, bool gpuHot) {
  static const BlockGroups kNoGroups;
  const ProgramLayer &pl = program_.layers[l];
  const LayerBinding &b = layers_[l];
  const int64_t nEmbd = params_.nEmbd, nFF = params_.nFF;
  const int64_t nHot = pl.nHot;
  const bool skipZero = program_.mode != SparsityMode::Dense;
  const bool split = isSplitDown(b.downLayout);
  // Fired counts read the activations; the down products their quantised
  // copies where the layer has them (as cpuHalf).
  const float *hAct = bH_.data();
  const float *h = hAct;
  if (b.quantDown && b.downLayout != DownLayout::Source) {
    for (int t = 0; t < n; ++t)
      downInput(l, hAct + size_t(t) * nFF, bHDown_.data() + size_t(t) * nFF);
    h = bHDown_.data();
  }
  std::fill(bYHot_.begin(), bYHot_.begin() + size_t(n) * nEmbd, 0.f);
  std::fill(bYCold_.begin(), bYCold_.begin() + size_t(n) * nEmbd, 0.f);

  const uint32_t nBlocks = uint32_t(nFF / kMinGroup),
                 nWindows = windowCount(nFF);
  const uint32_t groupSize = uint32_t(b.split.group);
  // Split layouts: the neurons that fired, grouped by source block exactly
  // as cpuDown groups them, per token and half; plus where each window of
  // kWindowBlocks source blocks starts in those groups.
  auto group = [&](int64_t t, int half, const BlockGroups &all, int64_t first) {
    const float *ht = h + size_t(t) * nFF;
    uint32_t *rows = bFiredRows_.data() + size_t(t) * nFF + first;
    float *coef = bFiredCoef_.data() + size_t(t) * nFF + first;
    uint32_t *start =
        bFiredStart_.data() + size_t(2 * t + half) * (nBlocks + 1);
    uint32_t *block = bFiredBlock_.data() + size_t(2 * t + half) * nBlocks;
    uint32_t *window =
        bWindowStart_.data() + size_t(2 * t + half) * (nWindows + 1);
    uint32_t nRows = 0, nGroups = 0;
    for (size_t gi = 0; gi + 1 < all.start.size(); ++gi) {
      const uint32_t before = nRows;
      for (uint32_t i = all.start[gi]; i < all.start[gi + 1]; ++i) {
        const uint32_t k = all.rows[i];
        if (skipZero && ht[first + k] == 0.f)
          continue;
        rows[nRows] = uint32_t(first + k);
        coef[nRows] = ht[first + k];
        ++nRows;
      }
      if (nRows > before) {
        start[nGroups] = before;
        block[nGroups] = all.block[gi];
        ++nGroups;
      }
    }
    start[nGroups] = nRows;
    // Groups come in ascending source block order (groupByBlock).
    for (uint32_t w = 0, g = 0; w <= nWindows; ++w) {
      while (g < nGroups && block[g] * groupSize < w * kWindowBlocks * QK8_0)
        ++g;
      window[w] = g;
    }
  };
  pool_.parallelFor(n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float *ht = hAct + size_t(t) * nFF;
      uint64_t firedHot = 0, firedCold = 0;
      for (int64_t k = 0; k < nHot && !gpuHot; ++k)
        firedHot += ht[k] != 0.f;
      for (int64_t k = nHot; k < nFF; ++k)
        firedCold += ht[k] != 0.f;
      bFired_[2 * t] = firedHot;
      bFired_[2 * t + 1] = firedCold;
      if (split) {
        group(t, 0, gpuHot ? kNoGroups : b.hotGroups, 0);
        group(t, 1, b.coldGroups, nHot);
      }
    }
  });

  if (b.downLayout == DownLayout::Source) {
    // The whole layer, on one device: its half's output (as cpuDown), or
    // nothing here when the GPU computes it.
    if (!(gpuHot && nHot > 0))
      sourceDown(b, hAct, n, (nHot > 0 ? bYHot_ : bYCold_).data());
    return;
  }
  if (!split) {
    // Output columns split over threads in whole blocks, as cpuDown does.
    const int64_t unit = typeTraits(b.downT.type)->blockSize;
    pool_.parallelFor(nEmbd / unit, [&](int64_t u0, int64_t u1) {
      const int64_t c0 = u0 * unit, c1 = u1 * unit;
      for (int64_t r0 = 0; r0 < nFF; r0 += kRowBlock) {
        const int64_t r1 = std::min(r0 + kRowBlock, nFF);
        const int64_t hot1 = gpuHot ? 0 : std::min(r1, nHot),
                      cold0 = std::max(r0, nHot);
        for (int t = 0; t < n; ++t) {
          const float *ht = h + size_t(t) * nFF;
          if (r0 < hot1)
            sparseDownAxpy(b.downT, nullptr, r0, hot1 - r0, ht + r0,
                           bYHot_.data() + size_t(t) * nEmbd, c0, c1, skipZero);
          if (cold0 < r1)
            sparseDownAxpy(b.downT, nullptr, cold0, r1 - cold0, ht + cold0,
                           bYCold_.data() + size_t(t) * nEmbd, c0, c1,
                           skipZero);
        }
      }
    });
    return;
  }
  // Output columns split over threads in chunks of 32, as cpuDown does
  // (a SplitK layer's last n_embd % 32 after them); splitDownAxpy applies
  // group after group, so running a window's groups at a time keeps each
  // token's result.
  auto columns = [&](int64_t c0, int64_t c1) {
    for (uint32_t w = 0; w < nWindows; ++w)
      for (int t = 0; t < n; ++t)
        for (int half = 0; half < 2; ++half) {
          const size_t idx = size_t(2 * t + half);
          const uint32_t *window = bWindowStart_.data() + idx * (nWindows + 1);
          const uint32_t g0 = window[w], g1 = window[w + 1];
          if (g0 == g1)
            continue;
          const size_t first = size_t(t) * nFF + (half ? size_t(nHot) : 0);
          const DownGroups groups{
              bFiredRows_.data() + first, bFiredCoef_.data() + first,
              bFiredStart_.data() + idx * (nBlocks + 1) + g0,
              bFiredBlock_.data() + idx * nBlocks + g0, int64_t(g1 - g0)};
          float *y = (half ? bYCold_ : bYHot_).data() + size_t(t) * nEmbd;
          splitDownAxpy(b.split, groups, y, c0, c1);
        }
  };
  pool_.parallelFor(nEmbd / 32,
                    [&](int64_t u0, int64_t u1) { columns(u0 * 32, u1 * 32); });
  if (nEmbd % 32)
    columns(nEmbd / 32 * 32, nEmbd);
}

} // namespace pinfer
