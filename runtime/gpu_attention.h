// The GPU kernels of a layer whose attention runs on the GPU: their names
// and launch geometry, shared by the CUDA emitter (codegen/CudaEmitter.cpp,
// which bakes the shapes into the kernels) and the executor (which launches
// them), so that the two cannot disagree.
//
// Per layer L, in launch order:
//   attn_L_wq, attn_L_wk, attn_L_wv  matvec(w, bias, x, y, nTok): one warp per
//                                     output row (+ bias)
//   attn_L_rope(q, kIn, vIn, keys, values, qNorm, kNorm, cs, pos, nTok):
//                                     one warp per head and token (q, kIn,
//                                     vIn, cs and pos token-major): the
//                                     per-head norms (Gemma 3), RoPE with
//                                     the cos/sin pairs the host made for
//                                     the position (ropeAngles), then the
//                                     K and V rows into the f16 cache at
//                                     *pos (kIn is rotated in place)
//   attn_L_attend(q, keys, values, scores, part, done, out, pos, nCtx,
//                                     nTok): attendGrid blocks per token
//                                     (q, out, pos, scores, part and done
//                                     token-major): per group of query
//                                     heads sharing a KV head
//                                     (attendHeads) and chunk of
//                                     kAttendChunk positions, the chunk's
//                                     scores, max, sum and weighted values
//                                     of each head into part; the group's
//                                     last block combines them (done: a
//                                     counter per group at its first head,
//                                     zero between launches)
// The position is read from device memory, so a token's launches take the
// same arguments at every position.
//   attn_L_quant(x, xq, nTok)        Q8_0/Q4_0/Q5_0 output projections: the
//                                     input quantised to 8 bits per 32 as
//                                     the CPU does (quantizeActQ8)
//   attn_L_wo(w, bias, x, y, nTok)   the output projection
// Matvecs, their quantisation and the FFN's kernels take nTok: that many
// tokens' rows (x and y: [nTok][their length]), each token's result the
// same as alone; decoding passes 1, a prompt's chunk more. Matvecs and
// gate/up take a chunk's tokens kTokenGroup at a time, loading and
// decoding a row's weights once for them.
#pragma once

#include "runtime/ggml_types.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace pinfer::gpuattn {

constexpr unsigned kMatvecBlock = 256; // 8 warps, one output row each
constexpr unsigned kRopeBlock = 32;    // one warp per head
constexpr unsigned kAttendBlock = 128; // per query head
constexpr unsigned kQuantBlock = 1024; // one block per token (emitQuant)
constexpr int kTokenGroup = 4;         // a chunk's tokens per pass on a row
// Blocks of 256 threads the matvec and gate/up kernels ask an SM to hold at
// once (__launch_bounds__'s second figure): 64 registers per thread, where
// a group's accumulators and loads would otherwise let the compiler take
// twice that and halve the warps resident to hide their loads.
constexpr unsigned kRowKernelMinBlocks = 4;
constexpr int kAttendChunk = 64;       // positions per attend block
// The hot FFN's down kernel: outputs per thread where n_embd is a multiple
// of it (else 1); its partial sums take downGrid * downBlock * kDownCols
// floats at most.
constexpr unsigned kDownCols = 4;
// Threads of a down kernel's block; a tile is kDownBlock x the columns per
// thread of outputs.
constexpr unsigned kDownBlock = 128;
// Blocks per SM the hot down kernel asks for (64 registers a thread at
// most): without it ptxas spilled the listing's kernels at 40 registers
// rather than take more.
constexpr unsigned kDownMinBlocks = 8;
// The down kernel's chunks of hot neurons for `tiles` column tiles: chunks
// of at least 32 hot neurons (each block's loop must outweigh its share of
// the reduction), and enough blocks to fill the largest targets' SMs a few
// times over: 512 blocks, or 64 chunks at most. Its grid is tiles x that,
// so never more than max(tiles, 512) blocks.
inline unsigned downSplits(unsigned nHot, unsigned tiles) {
  unsigned splits = std::max(1u, nHot / 32);
  splits = std::min(splits, std::max(1u, 512u / std::max(1u, tiles)));
  return std::min(splits, 64u);
}
inline unsigned downTiles(int64_t nEmbd) {
  const unsigned cols = nEmbd % kDownCols == 0 ? kDownCols : 1;
  return unsigned((nEmbd + int64_t(kDownBlock * cols) - 1) /
                  int64_t(kDownBlock * cols));
}
// A prompt's tokens the GPU takes at once (a chunk), whatever -b is.
constexpr int kGpuChunk = 32;

// The query heads one attend block takes: those sharing one KV head (GQA),
// which then reads the chunk's keys and values once for them; at most 8 (a
// divisor of the group), each head's sums held in registers.
inline int attendHeads(int nHead, int nKvHead) {
  const int group = nKvHead > 0 ? nHead / nKvHead : 1;
  int sub = 1;
  for (int d = 1; d <= 8 && d <= group; ++d)
    if (group % d == 0)
      sub = d;
  return sub;
}
// The attend kernel's blocks for a context of nCtx: every group of
// attendHeads query heads times the chunks of the context (those past the
// position find no work).
inline int attendSplits(int nCtx) {
  return (nCtx + kAttendChunk - 1) / kAttendChunk;
}
inline unsigned attendGrid(int nHead, int nKvHead, int nCtx) {
  return unsigned(nHead / attendHeads(nHead, nKvHead) * attendSplits(nCtx));
}
// Floats of the attend kernel's partial results (part).
inline size_t attendPartFloats(int nHead, int nCtx, int headDim) {
  return size_t(nHead) * size_t(attendSplits(nCtx)) * size_t(headDim + 2);
}

inline unsigned matvecGrid(int64_t rows) {
  return unsigned((rows * 32 + kMatvecBlock - 1) / kMatvecBlock);
}
inline unsigned quantGrid(int64_t nTok) { return unsigned(nTok); }
// A prompt's block-type matvecs on tensor cores (targets of sm_80 and
// newer): NAME + kTilesSuffix takes NAME's arguments, each warp 16 rows and
// each row's blocks once for 32 tokens, 8 at a time (mma.m16n8k32 on the
// tokens' 8-bit values); a token's sums are the same bits in any chunk,
// other bits than the one-token kernel's.
constexpr const char *kTilesSuffix = "_tiles";
constexpr unsigned kTileBlock = 128; // 4 warps of 16 rows
// PINFER_GPU_TILES=0 leaves the tiles unused (the one-row kernels take
// every launch): to measure what they gain, side by side.
inline bool tilesWanted() {
  const char *env = std::getenv("PINFER_GPU_TILES");
  return !(env && std::string(env) == "0");
}
// Blocks per SM the tile kernels ask for: 64 registers a thread at most,
// as the row kernels.
constexpr unsigned kTileMinBlocks = 8;
// The types with a tile form: every block type whose products take 8-bit
// activations (usesQ8Act; a new one needs its pf_tile_<suffix> in the
// emitted prelude, codegen/CudaEmitter.cpp).
inline bool hasTiles(GGMLType type) { return usesQ8Act(type); }
// The matvecs' and pairs' tiles also take f16 and bfloat16 rows whose
// length is a multiple of 16 (mma.m16n8k16 on parts of the f32
// activations in the rows' type, CudaAttention.cpp).
inline bool hasMatvecTiles(GGMLType type, int64_t cols) {
  return hasTiles(type) ||
         ((type == GGMLType::F16 || type == GGMLType::BF16) && cols % 16 == 0);
}
inline unsigned tileGrid(int64_t rows) { return unsigned((rows + 63) / 64); }
// The output head: matvec(w, bias, x, y, 1) over n_vocab rows, its input the
// final norm's output (f32, then 8-bit quantised for Q8_0/Q4_0/Q5_0 rows).
constexpr const char *kHeadKernel = "lm_head";
// A program whose output is tied to token_embd, with the head and the
// residual stream on the GPU, gathers its tokens' embedding rows there from
// the head's matrix, so that a token goes up as its id:
//   embed_gather(w, tok, x)  x [nTok][n_embd] = row tok[t] of w, decoded as
//                            the CPU's rowToF32 and scaled as its
//                            scaleEmbeddings; one block per token
constexpr const char *kEmbedGather = "embed_gather";
constexpr unsigned kEmbedBlock = 256;

// The head's best logits chosen on the device, so that a generated token
// brings back a few hundred (id, logit) pairs where it brought back n_vocab
// logits (1 MiB for Gemma 3's 262,144) and the host sorted them all. The
// sampler says how many it needs (runtime/sampler.h, candidatesNeeded:
// top-k plus the tokens a penalty or ban may move) and which tokens'
// logits the penalty reads (the extra ids). Order: a logit's 12 high bits
// of its order-preserving key (larger key, larger logit) are its bin.
//   head_hist(logits, sel)  counts each bin over n_vocab (sel->hist, zero
//                           before), and the lowest index of a NaN or
//                           infinite logit into sel->bad
//   head_cut(sel)           one block: the highest bin `cut` whose bins
//                           from it up hold at least sel->k logits; the
//                           histogram zeroed for the next launch
//   head_pick(logits, sel)  every logit of bin >= cut into sel->cand (up to
//                           kSelCap; sel->count counts them all), and the
//                           extra ids' logits into sel->extraLogits
// The candidates are a superset of the k best (every logit at least the
// k-th best shares its bin or one above), in no particular order; the
// sampler sorts them. More than kSelCap: the host takes all the logits.
constexpr const char *kHeadHist = "head_hist";
constexpr const char *kHeadCut = "head_cut";
constexpr const char *kHeadPick = "head_pick";
constexpr unsigned kSelBlock = 256;
constexpr unsigned kSelCutBlock = 1024; // four bins per thread
constexpr int kSelBins = 4096;
constexpr int kSelExtraMax = 256; // penalised tokens a request may name
constexpr int kSelFirst = 1024;   // candidates in the token's copy down
constexpr int kSelCap = 16384;    // candidates kept
inline unsigned selGrid(int64_t nVocab) {
  const int64_t blocks = (nVocab + 16 * kSelBlock - 1) / (16 * kSelBlock);
  return unsigned(std::min<int64_t>(std::max<int64_t>(blocks, 1), 128));
}
// The device's selection record. The host uploads the request (the first
// kSelRequestBytes: k, the extra ids, count 0, bad INT32_MAX) and copies
// down the first kSelResultBytes (request, extra logits, the first
// kSelFirst candidates), the rest of the candidates only when there are
// more.
struct HeadSelCand {
  int32_t id;
  float logit;
};
struct HeadSel {
  int32_t k, nExtra, cut;
  uint32_t count;
  int32_t bad, pad[3];
  int32_t extraIds[kSelExtraMax];
  float extraLogits[kSelExtraMax];
  HeadSelCand cand[kSelCap];
  uint32_t hist[kSelBins];
};
constexpr size_t kSelRequestBytes = offsetof(HeadSel, extraLogits);
constexpr size_t kSelResultBytes =
    offsetof(HeadSel, cand) + sizeof(HeadSelCand) * kSelFirst;

// The cos and sin of every rotated pair's angle at `pos` (cs: [nRot]),
// computed exactly as the CPU's rope() computes them, so that both devices
// rotate by the same floats.
inline void ropeAngles(const float *invFreq, int nRot, int pos, float *cs) {
  for (int i = 0; i < nRot / 2; ++i) {
    const double theta = double(pos) * invFreq[i];
    cs[2 * i] = float(std::cos(theta));
    cs[2 * i + 1] = float(std::sin(theta));
  }
}

// The residual stream on the GPU (a program whose norm and add steps run
// there): one of each for the whole program, shapes baked in.
//   resid_norm(x, w, y)      y = rmsNorm(x) * w over n_embd, one block per
//                            token (rows of n_embd),
//                            summed in double as the CPU's rmsNorm; y may
//                            be x
//   resid_add(x, y, nTok)    x += y over nTok rows of n_embd
//   resid_quant(x, xq, nTok) x quantised to 8 bits per 32 values as the CPU
//                            does (quantizeActQ8), in packActQ8's layout;
//                            one block per token; xq may be x
//   resid_count(h, n, c)     *c += the number of non-zero h[0..n) (the
//                            neurons of a hot half that fired)
constexpr const char *kResidNorm = "resid_norm";
constexpr const char *kResidAdd = "resid_add";
constexpr const char *kResidQuant = "resid_quant";
constexpr const char *kResidCount = "resid_count";

// A hot half's fired neurons where the residual stream stays on the CPU:
//   hot_count(h, n, c)       *c = the number of non-zero h[0..n), one block
//                            (a layer's hot activations of a token or a
//                            prompt's chunk), written, not added: the
//                            count comes down beside y instead of h.
constexpr const char *kHotCount = "hot_count";
constexpr unsigned kHotCountBlock = 1024;
constexpr unsigned kResidNormBlock = 1024;
constexpr unsigned kResidBlock = 256;
inline unsigned residGrid(int64_t n) {
  return unsigned((n + kResidBlock - 1) / kResidBlock);
}

// A hot half with its own predictor (predicted mode: the layer has a
// predict@gpu step), per layer L, in launch order:
//   ffn_pred_lL_xq(x, xq, nTok)   only where fc1's rows multiply 8-bit
//                                  activations and the hot half's input is
//                                  f32 (predictorQuantisesInput): that
//                                  input quantised as the CPU's
//                                  quantizeActQ8, into xq
//   ffn_pred_lL_fc1(w, bias, x, y, nTok)
//                                  hidden [nTok][R] = relu(fc1 . x + b1),
//                                  a matvec (one warp per row) whose x is
//                                  xq or the hot half's input
//   ffn_pred_lL_hq(x, xq, nTok)   only where fc2's rows multiply 8-bit
//                                  activations: the hidden values so
//                                  quantised, in place
//   ffn_pred_lL_pick(fc2, b2, hidden, h, pick, nChosen, nTok)
//                                  launched with the hot half, before its
//                                  gate/up kernel: pickGrid(nHot) blocks
//                                  of kPickBlock, the warp of hot neuron n
//                                  scoring it for every token (fc2 row n .
//                                  hidden + b2[n]) and choosing it when
//                                  the score is above the threshold, as
//                                  the CPU's predictor chooses; h [nTok]
//                                  [nHot] is zero where a token did not
//                                  choose the neuron. The last block to
//                                  finish lists the neurons some token
//                                  chose, in order, in the pick record,
//                                  and writes *nChosen: the choices
//                                  summed over the tokens (the layer's
//                                  predicted neurons, for the statistics,
//                                  and a token's gate rows read).
// The pick record (pickBytes): the list's length, a counter of finished
// blocks and the choices' running sum (both zero between launches), the
// list [nHot] (u32 each), a byte per
// hot neuron (1 where some token chose it: what the last block reads),
// then a byte per token and hot neuron, 1 where the token chose it. The layer's
// gate/up kernel takes the record after its own arguments and runs its
// warps over the list (warps past its length exit at once), so that the
// busy warps are packed into the first blocks whichever neurons were
// chosen; its down kernel splits the list, not every hot neuron, among
// its blocks.
constexpr unsigned kPickBlock = 256; // 8 warps, one hot neuron each
inline unsigned pickGrid(int64_t nHot) {
  return unsigned((nHot * 32 + kPickBlock - 1) / kPickBlock);
}
constexpr size_t kPickListAt = 3; // u32s before the list
// Byte offsets of the marks and of the tokens' choices, and the size.
inline size_t pickMarksAt(int64_t nHot) {
  return sizeof(uint32_t) * (kPickListAt + size_t(nHot));
}
inline size_t pickChoicesAt(int64_t nHot) {
  return pickMarksAt(nHot) + size_t(nHot);
}
inline size_t pickBytes(int64_t nHot, int64_t nTok) {
  return pickChoicesAt(nHot) + size_t(nTok) * size_t(nHot);
}
// A dense layer's source down rows of a block type (DownLayout::Source)
// take gate and up's products quantised by this kernel (quant(h, xq,
// nTok), emitQuant) into the down kernel's partial sums, which a matvec
// over source rows leaves unused.
inline std::string downQuantKernelName(int layer) {
  return "ffn_l" + std::to_string(layer) + "_down_quant";
}
inline std::string predictorKernelName(int layer, const char *what) {
  return "ffn_pred_l" + std::to_string(layer) + "_" + what;
}
inline bool predictorQuantisesInput(bool fc1Q8Act, bool hotInputQ8) {
  return fc1Q8Act && !hotInputQ8;
}

inline std::string kernelName(int layer, const char *what) {
  return "attn_l" + std::to_string(layer) + "_" + what;
}

} // namespace pinfer::gpuattn
