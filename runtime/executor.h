// The specialised decoder of generated executables: the Decoder of
// runtime/generate.h over the packed weights and the program's tables. Per
// layer it runs the program's steps (runtime/program.h), in their order:
// attention on the CPU (as the dense reference computes it), then the FFN
// split in two halves — the hot neurons on the GPU (the embedded kernels,
// launched through runtime/cuda_driver.h, their weights uploaded once) or,
// without a GPU, on the CPU; the cold neurons on the CPU with the sparse
// kernels — and the two partial down projections summed. The packed
// weights' format (keys, content hash) is runtime/packed_format.h.
#pragma once

#include "runtime/aligned_vector.h"
#include "runtime/amx_tiles.h"

#include "runtime/cuda_driver.h"
#include "runtime/generate.h"
#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/packed_format.h"
#include "runtime/predictor.h"
#include "runtime/program.h"
#include "runtime/sparse_kernels.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;

// Split down layouts: one half's neurons grouped by the source block (32
// neurons of the original order) they come from. rows: packed rows relative
// to the half's first, group after group; start: [groups + 1] into rows;
// block: each group's source block.
struct BlockGroups {
  std::vector<uint32_t> rows, start, block;
};

// Per-layer counters since the last reset of the statistics.
struct LayerStats {
  uint64_t tokens = 0;
  uint64_t gpuNeurons = 0; // neurons whose up and down ran in the hot half
  uint64_t cpuNeurons = 0; // ... in the cold half
  uint64_t fired = 0;      // neurons with a non-zero activation, both halves
  // Predicted mode, the halves predicted on the CPU.
  uint64_t predicted = 0; // neurons the predictor chose
  uint64_t coldFired = 0; // of those, the ones that fired
  uint64_t missed = 0;    // fired but not chosen (with measureRecall only)
};

class Executor : public Decoder {
public:
  // `weights` must outlive the executor. nThreads < 1: all hardware threads.
  Executor(const Program &program, const GGUFFile &weights, int nThreads);
  ~Executor() override;

  // Binds the packed tensors (shapes checked against the program), sizes the
  // KV cache and, when `useGpu` and the program has a GPU part, opens the
  // GPU and uploads the hot weights. Without a GPU the hot half is computed
  // on the CPU and `gpuNote()` says why. False with one line in `error`.
  bool init(int nCtx, bool useGpu, std::string &error);
  // Before init: synchronise after every GPU launch, so that a kernel fault
  // names its kernel and layer (--gpu-sync-debug).
  void setGpuSyncDebug(bool on) { gpuSyncDebug_ = on; }
  // Before init: time every GPU kernel (--gpu-profile; cuda_driver.h).
  void setGpuProfile(bool on) { gpuProfile_ = on; }
  // The kernel times so far, prompt chunks and generated tokens apart; an
  // empty table without a GPU.
  bool gpuKernelTimes(std::vector<CudaDriver::KernelTime> &out,
                      std::string &error);
  // Before init: prompt chunks of `n` tokens (-b/-ub; default 32).
  void setBatchSize(int n) { nBatch_ = n; }

  int nCtx() const override { return nCtx_; }
  int nVocab() const override { return int(program_.nVocab); }
  bool eval(int32_t token, int pos, bool wantLogits,
            std::string &error) override;
  // A prompt in chunks of up to batchSize() tokens that move through each
  // layer together, each weight row read once per chunk; every token's
  // results (logits, KV cache, LayerStats) are bitwise those of eval()
  // (runtime/executor_batch.cpp).
  bool evalBatch(const int32_t *tokens, int n, int pos, bool wantLogits,
                 std::string &error) override;
  int batchSize() const { return nBatch_; }
  const float *logits() const override { return logits_.data(); }
  // The head on the GPU chooses the best logits there (head_hist, head_cut,
  // head_pick): a generated token brings back a few hundred where it
  // brought back n_vocab.
  bool selects() const override { return headOnGpu_ && fnHeadPick_; }
  bool evalSelect(int32_t token, int pos, int k,
                  const std::vector<int32_t> &extra, HeadSelection &out,
                  std::string &error) override;
  int nPast() const override { return nPast_; }
  void truncate(int nKeep) override {
    nPast_ = std::max(0, std::min(nPast_, nKeep));
  }

  // Predicted mode: also compute the neurons the predictor skipped, only to
  // count those that would have fired (recall). Costs what exact mode does.
  void setMeasureRecall(bool on) { measureRecall_ = on; }
  bool measureRecall() const { return measureRecall_; }

  // See GenerateOptions::pollMicros.
  void setPollMicros(int us) { pool_.setSpinMicros(us); }

  bool gpuActive() const { return gpu_ != nullptr; }
  // The VRAM bill at this run's -c (VramBill::at), what the start checked
  // is free and reserved; 0 without a GPU.
  uint64_t vramBill() const { return gpu_ ? vramBill_ : 0; }
  // Free VRAM at the start less free VRAM now, as the driver reports it:
  // the reservation in the driver's pages, the GPU code, any buffer beyond
  // the bill (and whatever another process took meanwhile); 0 without a
  // GPU. What the bill is checked against on a real card.
  uint64_t vramTaken() const;
  // The device buffers carved from it, and those it did not hold.
  size_t gpuBuffers() const { return gpu_ ? gpu_->buffers() : 0; }
  size_t gpuBuffersBeyondBill() const {
    return gpu_ ? gpu_->buffersBeyondReserve() : 0;
  }
  // Buffer guards --gpu-sync-debug has checked after launches.
  size_t gpuGuardChecks() const { return gpu_ ? gpu_->guardChecks() : 0; }
  bool headOnGpu() const { return headOnGpu_; }
  // The GPU image the hot half runs from: "cubin", "ptx"; "" without a GPU.
  const char *gpuImageKind() const { return gpu_ ? gpu_->moduleKind() : ""; }
  // Decoded tokens that ran as one CUDA graph launch (the residual stream
  // on the GPU; cuda_driver.h), and the graphs captured for them.
  long gpuGraphLaunches() const { return gpu_ ? gpu_->graphLaunches() : 0; }
  long gpuGraphCaptures() const { return gpu_ ? gpu_->graphCaptures() : 0; }
  const std::string &gpuNote() const { return gpuNote_; }
  std::string deviceName() const;
  const std::vector<LayerStats> &stats() const { return stats_; }
  // The steps eval() ran for each layer of the last token it evaluated,
  // recorded as it ran them; empty before any.
  const std::vector<std::vector<ProgramStep>> &ranSteps() const {
    return ranSteps_;
  }
  // Weight bytes read per token by the CPU and by the GPU, averaged over the
  // tokens evaluated one at a time (generation; a batched prompt is not
  // counted) since the last resetStats(); 0 before any.
  double cpuBytesPerToken() const {
    return tokenEvals_ ? double(cpuBytes_) / double(tokenEvals_) : 0.0;
  }
  double gpuBytesPerToken() const {
    return tokenEvals_ ? double(gpuBytes_) / double(tokenEvals_) : 0.0;
  }
  void resetStats();

private:
  struct LayerBinding : LayerExtras {
    std::vector<float> attnNorm, ffnNorm; // [n_embd]
    Weight wq, wk, wv, wo;
    Weight gate, up; // {n_embd, n_ff}, rows in packed order
    Weight downT;    // {n_embd, n_ff}: row k is packed neuron k's down column
                     // (split layouts: its quants, I8 rows of rowBytes)
    DownLayout downLayout = DownLayout::Rows;
    SplitDown split; // split layouts: quants and block scales
    BlockGroups hotGroups, coldGroups; // split layouts
    // The down input quantised to 8 bits in source blocks of 32 neurons, as
    // the dense reference multiplies it: a block type's layer wholly on the
    // CPU (a layer split across devices keeps f32: a block's scale would
    // need activations from both).
    bool quantDown = false;
    PredictorWeights predictor; // fc2 rows and bias in packed order
    // The hot half runs its own predictor (a predict@gpu step): on the GPU
    // fc1 and b1 whole, fc2's and b2's hot rows (zeros for an absent bias)
    // and its kernels (runtime/gpu_attention.h, predictorKernelName).
    bool gpuPredicts = false;
    CudaDriver::DevPtr dFc1 = 0, dB1 = 0, dFc2 = 0, dB2 = 0;
    void *fnPredXq = nullptr, *fnPredFc1 = nullptr, *fnPredHq = nullptr,
         *fnPredPick = nullptr;
    CudaDriver::DevPtr dGate = 0, dUp = 0, dDownT = 0;
    CudaDriver::DevPtr dDownS = 0, dIds = 0; // split layouts: scales, hot ids
    void *fnGateUp = nullptr, *fnDown = nullptr;
    // The pair's and the source down rows' tensor-core forms for two
    // tokens or more (gpuattn::kTilesSuffix: block-type rows on sm_80 and
    // newer), or null.
    void *fnGateUpTiles = nullptr, *fnDownTiles = nullptr;
    void *fnDownQuant = nullptr; // gpuattn::downQuantKernelName's, or null
    void *outCopied = nullptr; // event: the hot half's output is on the host
    // Attention on the GPU (runtime/gpu_attention.h): weights, extras, the
    // layer's KV cache [n_ctx][kv_dim] and kernels.
    bool attnOnGpu = false;
    CudaDriver::DevPtr dWq = 0, dWk = 0, dWv = 0, dWo = 0;
    CudaDriver::DevPtr dBq = 0, dBk = 0, dBv = 0, dQNorm = 0, dKNorm = 0;
    CudaDriver::DevPtr dKeys = 0, dValues = 0;
    void *fnWq = nullptr, *fnWk = nullptr, *fnWv = nullptr, *fnRope = nullptr,
         *fnAttend = nullptr, *fnQuant = nullptr, *fnWo = nullptr;
    // The projections' tensor-core forms for two tokens or more (block
    // types on sm_80 and newer: gpuattn::kTilesSuffix), or null.
    void *fnWqTiles = nullptr, *fnWkTiles = nullptr, *fnWvTiles = nullptr,
         *fnWoTiles = nullptr;
    // The residual stream on the GPU: the layer's norm weights.
    CudaDriver::DevPtr dAttnNorm = 0, dFfnNorm = 0, dPostAttnNorm = 0,
                       dPostFfnNorm = 0;
  };

  bool bind(std::string &error);
  // Layer l's attention over its KV cache with the given scratch buffers
  // (one token's, or a chunk's).
  AttentionBlock attentionFor(int l, float *xb, float *xb2, float *q,
                              float *attnOut, float *scores);
  bool bindDown(const GGUFFile &f, int layer, int64_t nEmbd, int64_t nFF,
                LayerBinding &b, std::string &error);
  bool bindSplitK(const GGUFFile &f, int layer, int64_t nEmbd, int64_t nFF,
                  LayerBinding &b, std::string &error);
  bool openGpu(std::string &error);
  // executor_attention.cpp: uploads layer l's attention (weights, extras,
  // an empty KV cache) and finds its kernels; runs it for the token at pos
  // from xb_ (normalised) into xb2_ (the output projection).
  bool uploadAttention(int l, std::string &error);
  bool attentionGpu(int l, int pos, std::string &error);
  // executor_resident.cpp: the residual stream on the GPU (resident_): its
  // kernels, buffers and norm weights; a token's upload (the embedding or,
  // with Program::embedOnGPU, the token's id; the position's RoPE tables,
  // zeroed counters); a norm/add step on the GPU; the token's end (final norm,
  // head, the logits and counters down, one wait).
  bool uploadResident(std::string &error);
  bool beginResidentToken(int token, int pos, bool wantLogits,
                          std::string &error);
  bool residentStep(int l, const ProgramStep &s, std::string &error);
  bool endResidentToken(bool wantLogits, std::string &error);
  // executor_resident_batch.cpp: a prompt on a whole-GPU program, in
  // chunks of up to gpuChunk_ tokens (0: token by token; no room for the
  // chunk's buffers, or -b 1).
  void allocResidentBatch();
  bool evalResidentBatch(const int32_t *tokens, int n, int pos, bool wantLogits,
                         std::string &error);
  bool residentChunk(const int32_t *tokens, int m, int pos0, bool wantLogits,
                     std::string &error);
  bool residentBatchStep(int l, const ProgramStep &s, int m,
                         std::string &error);
  bool attentionGpuBatch(int l, int m, std::string &error);
  // A chunk's attention on the GPU for a program whose residual stream is
  // on the host: bXb_ rows up, the batched attention kernels, the output
  // projections down into bXb2_ (one wait).
  bool attentionGpuChunk(int l, int n, int pos0, std::string &error);
  // Tokens [first, first + n) of the chunk, n <= gpuChunk_.
  bool attentionGpuPart(int l, int first, int n, int pos0, std::string &error);
  // Where the chunk's RoPE tables (the sliding layers' with `local`) and
  // positions start in dBTok_, in floats.
  size_t batchCsOffset(bool local) const;
  size_t batchPosOffset() const;
  // The RoPE tables and positions of tokens pos0 .. pos0 + n - 1 into
  // hostBTok_.
  void stageChunkTables(int pos0, int n);
  // Layer l's count of hot neurons that fired, in dTok_; the launch that
  // adds the non-zero h[0..nHot) to it. Then, for a layer whose GPU half
  // predicts, the count of neurons its predictor chose.
  CudaDriver::DevPtr firedCounter(int l) const;
  CudaDriver::DevPtr chosenCounter(int l) const;
  // Where the token's position is on the GPU (an int in dTok_).
  CudaDriver::DevPtr tokenPosition() const;
  // Adds the non-zero h[0..n) to the counter at `counter`.
  bool countHotFired(int l, CudaDriver::DevPtr h, int n,
                     CudaDriver::DevPtr counter, std::string &error);
  // *c = the number of non-zero h[0..n) (kHotCount, one block): a hot half
  // whose output comes down to the CPU.
  bool countHotInto(int l, CudaDriver::DevPtr h, int64_t n,
                    CudaDriver::DevPtr c, std::string &error);
  // The counts after y in the hot halves' output buffers (dOut_, dHOut_):
  // the predictor's chosen neurons, the hot neurons that fired.
  static constexpr size_t kOutCounts = 2;
  // For nTok tokens (rows of n_embd): resid_norm (x -> y, weights w), then
  // resid_quant of y into yq (y itself allowed; 0: none).
  bool residentNorm(CudaDriver::DevPtr x, CudaDriver::DevPtr w,
                    CudaDriver::DevPtr y, CudaDriver::DevPtr yq, int nTok,
                    int l, std::string &error);
  // The final norm of the residual row x and the head, enqueued.
  bool residentHead(CudaDriver::DevPtr x, std::string &error);
  // x += y over nTok rows of n_embd.
  bool residentAdd(CudaDriver::DevPtr x, CudaDriver::DevPtr y, int nTok, int l,
                   std::string &error);
  // Layer l's predictor for its hot half, nTok tokens of its input x:
  // the hidden values into dPredH_ (the input's 8-bit copy in dPredX_
  // where fc1 needs one), read by the layer's gate/up kernel.
  bool launchPredictor(int l, CudaDriver::DevPtr x, int nTok,
                       std::string &error);
  // Uploads layer l's predictor for its hot half and finds its kernels.
  bool uploadPredictor(int l, CudaDriver &gpu, std::string &error);
  // A kernel's tensor-core form (KERNEL + gpuattn::kTilesSuffix) where the
  // rows have one (`has`), the module holds it and PINFER_GPU_TILES does
  // not turn it off; else null (the rows' kernel takes every launch).
  static void *tilesOf(CudaDriver &gpu, const std::string &kernel, bool has);
  // `tiles` (over tileGrid(tileRows) blocks) for two tokens or more where
  // there is one, else `rows` over grid x block: one launch of `kernel`.
  static bool launchTilesOr(CudaDriver &gpu, int nTok, void *tiles,
                            int64_t tileRows, void *rows, unsigned grid,
                            unsigned block, void **args, std::string &error,
                            const std::string &kernel, int layer,
                            uint64_t bytes);
  // Layer l's hot half for nTok tokens: gate/up from x into h (where the
  // layer's GPU half predicts, first its pick kernel: each neuron scored
  // from dPredH_, the chosen ones listed in dPick_, and gate/up and down
  // over that list, the tokens' choices summed into the u32 at `chosen`),
  // down from h into y (the down kernel's partial sums in `part`).
  bool launchHotHalf(int l, CudaDriver::DevPtr x, CudaDriver::DevPtr h,
                     CudaDriver::DevPtr y, CudaDriver::DevPtr part, int nTok,
                     CudaDriver::DevPtr chosen, std::string &error);
  // Writes xb_ to `host` [n_embd], then, `withQ8`, the 8-bit values the
  // CPU's matvecs multiply for Q8_0/Q4_0/Q5_0 rows [n_embd] after it: the
  // input a GPU matvec reads (attention, the head).
  void stageInput(float *host, bool withQ8);
  // The logits from x_: the final norm, then the head's matvec on the GPU
  // (Program::headOnGPU, a GPU open) or on the CPU.
  bool computeLogits(std::string &error);
  // The head on the GPU: its matvec over dHeadX_ (f32, then the 8-bit
  // values of Q8_0/Q4_0/Q5_0 rows) and the logits' copy down, enqueued;
  // after the wait, those logits into logits_ (and the head's bytes).
  bool enqueueHead(std::string &error);
  void takeLogits();
  // After the wait: the logits, or with a selection asked for (selOut_),
  // the candidates into it (the rest of them, or all the logits where there
  // were too many, copied down first).
  bool takeHead(std::string &error);
  // Computes neurons [first, first+count) of layer `l` on the CPU: their
  // activations into h [count] and their down projection into y [n_embd].
  // Returns the number of neurons that fired. With `predict`, only the
  // neurons whose predictor score passes the threshold run.
  uint64_t cpuHalf(int l, uint32_t first, uint32_t count, const float *x,
                   float *h, float *y, bool predict);
  // y = the down projection of neurons [first, first+count) with
  // activations h (skipping zeros unless dense).
  void cpuDown(const LayerBinding &b, const BlockGroups &groups,
               uint32_t first, uint32_t count, const float *h, float *y,
               bool skipZero);
  // Bytes of a split layout's tables (SplitDown::tables).
  size_t splitTableBytes(const LayerBinding &b) const;
  // A split layout's groups into y, every output column.
  void splitDownColumns(const SplitDown &d, const DownGroups &groups, float *y);
  // The down projection of DownLayout::Source for `n` tokens, as the dense
  // reference multiplies it (matvecRows): y_t[e] = row e . h_t, h
  // [n][n_ff] in source order, y [n][n_embd] (the caller's zeroed output,
  // which only this half writes).
  void sourceDown(const LayerBinding &b, const float *h, int n, float *y);
  // Layer l's activations h [n_ff] (packed order) as its down projection
  // multiplies them where LayerBinding::quantDown: quantised in source
  // blocks (quantizeActQ8) and scaled back, into out [n_ff].
  void downInput(int l, const float *h, float *out);
  // What one layer's steps hand each other within one token, beyond the
  // decoder's buffers.
  struct LayerRun {
    bool onGpu = false;        // the hot half runs on the GPU, not the CPU
    bool copyPending = false;  // its output is enqueued for the host ...
    bool copyRecorded = false; // ... and an event recorded after it
    bool hotReady = false;     // yHot_/hHot_ hold this token's hot half
    bool coldReady = false;    // yCold_/hCold_ the cold half's
    bool merged = false;       // yFfn_ holds their sum
    bool predicted = false;    // the cold half's scores are this token's
    bool hotPredicted = false; // the hot half's, made on the CPU
    bool predHidden = false;   // predScratch_.hidden is this token's fc1
    uint64_t firedHot = 0, firedCold = 0;
    // The neurons the hot half's GPU predictor chose (gpuPredicts).
    uint64_t chosenHot = 0;
  };
  // Runs step `s` of layer `l` for the token at `pos` (buffers x_, xb_...).
  // False with one line in `error`.
  bool runStep(int l, const ProgramStep &s, int pos, LayerRun &run,
               std::string &error);
  // The layer's FFN counters (LayerStats, bytes) once its steps have run.
  void countFfn(int l, const LayerRun &run, int tokens = 1);
  // The quantised FFN input of Q8_0/Q4_0 rows, made once per token from xb_.
  void quantiseFfnInput(int l);
  // Checks that every layer's steps are ones this runtime runs, and finds
  // where the batched prompt path can take a layer's FFN steps together.
  bool checkSteps(std::string &error);
  // Batched prompt evaluation (executor_batch.cpp): sizes the chunk
  // scratch (from init), runs one chunk, and one layer's FFN for a chunk.
  void sizeBatch();
  bool evalChunk(const int32_t *tokens, int n, int pos0, std::string &error);
  // Layer l's FFN steps [first, last] for a chunk of n tokens at pos0...
  bool ffnBatch(int l, int n, int pos0, uint32_t first, uint32_t last,
                std::string &error);
  // gpuHot: the hot half's down products are the GPU's (hotChunkGpu), so
  // only the cold half's are made here.
  void downBatch(int l, int n, bool gpuHot = false);
  // The hot half of layer l for a chunk of n tokens on the GPU: input up,
  // kernels, output down, enqueued (b.outCopied recorded after); then,
  // after the wait, its y into bYHot_ and fired counts into bFired_.
  bool hotChunkGpu(int l, int n, std::string &error);
  bool hotChunkDone(int l, int n, std::string &error);
  void predictBatch(const PredictorWeights &pw, int n, int64_t first);

  const Program &program_;
  const GGUFFile &weights_;
  ModelParams params_;
  ThreadPool pool_;
  std::vector<LayerBinding> layers_;
  Weight tokEmbd_, output_;
  std::vector<float> outputNorm_;
  std::unique_ptr<CudaDriver> gpu_;
  std::string gpuNote_;
  uint64_t vramBill_ = 0; // VramBill::at(nCtx_), reserved on the device
  size_t vramFreeAtStart_ = 0;
  bool gpuSyncDebug_ = false;
  bool gpuProfile_ = false;
  // The hot half's input x [n_embd] and output: y [n_embd], then the hot
  // activations h [max hot] (one copy back brings both).
  CudaDriver::DevPtr dX_ = 0, dOut_ = 0;
  // The down kernels' partial sums and per-tile counters (CudaEmitter.h).
  CudaDriver::DevPtr dPart_ = 0, dDone_ = 0;
  // Attention on the GPU: its input (f32, then 8-bit quantised values, then
  // the position's RoPE cos/sin pairs, then the position as an int) and
  // output, their page-locked twins, and scratch (dK_/dV_: the token's K
  // and V rows before the rope kernel puts them in the cache).
  CudaDriver::DevPtr dAttnX_ = 0, dAttnY_ = 0, dQ_ = 0, dK_ = 0, dV_ = 0,
                     dScores_ = 0, dAttnOut_ = 0, dAttnOutQ_ = 0;
  // The attend kernel's per-chunk results and per-head counters.
  CudaDriver::DevPtr dAttnPart_ = 0, dAttnDone_ = 0;
  float *hostAttnX_ = nullptr, *hostAttnY_ = nullptr;
  void *attnCopied_ = nullptr; // event: the output is on the host
  std::vector<BlockQ8Act> attnXq_;  // the input quantised, as matvecs do
  // The output head on the GPU: its matrix, input (f32, then 8-bit
  // values), logits, their page-locked twins.
  bool headOnGpu_ = false;
  void *fnHead_ = nullptr;
  CudaDriver::DevPtr dHeadW_ = 0, dHeadX_ = 0, dLogits_ = 0;
  float *hostHeadX_ = nullptr, *hostLogits_ = nullptr;
  // The selection kernels, their record (gpuattn::HeadSel), the request
  // uploaded and the result copied down (page-locked), and while a
  // selecting evaluation runs, where its result goes.
  void *fnHeadHist_ = nullptr, *fnHeadCut_ = nullptr, *fnHeadPick_ = nullptr;
  CudaDriver::DevPtr dSel_ = 0;
  gpuattn::HeadSel *hostSelReq_ = nullptr, *hostSel_ = nullptr;
  HeadSelection *selOut_ = nullptr;
  float *hostX_ = nullptr, *hostOut_ = nullptr; // page-locked twins
  // The hot halves of a prompt's chunk of up to hotChunk_ tokens (0: token
  // by token): x [T][n_embd]; y [T][n_embd], then h [T][max hot]; the down
  // kernels' partial sums; page-locked twins.
  int hotChunk_ = 0;
  // Tokens per GPU chunk at most (the -b batch size caps it too).
  static constexpr int kGpuChunk = gpuattn::kGpuChunk;
  CudaDriver::DevPtr dHX_ = 0, dHOut_ = 0, dHPart_ = 0;
  // The hot halves' predictors: the input's 8-bit copy [T][n_embd] (where
  // some layer's fc1 needs one) and the hidden values [T][max rank], T =
  // max(1, the chunk's tokens).
  CudaDriver::DevPtr dPredX_ = 0, dPredH_ = 0;
  // Their pick record (gpuattn::pickBytes for the most hot neurons of a
  // predicting layer and T tokens): the chosen neurons' list.
  CudaDriver::DevPtr dPick_ = 0;
  float *hostHX_ = nullptr, *hostHOut_ = nullptr;

  // The residual stream on the GPU: the steps say so (resident_), a GPU is
  // open (residentOn_). dTok_: the residual [n_embd], the position's RoPE
  // cos/sin pairs [n_rot] (then the sliding layers' [n_rot]), the position
  // (an int), each layer's count of hot neurons that fired [n_layer], each
  // layer's count of neurons its GPU predictor chose [n_layer], and the
  // token's id; hostTok_ its page-locked twin. With Program::embedOnGPU
  // (checkSteps: only where resident_) the id goes up and embed_gather
  // writes the residual from the head's copy of token_embd; without, the
  // residual goes up.
  bool resident_ = false, residentOn_ = false;
  void *fnResNorm_ = nullptr, *fnResAdd_ = nullptr, *fnResQuant_ = nullptr,
       *fnResCount_ = nullptr, *fnEmbed_ = nullptr;
  // gpuattn::kHotCount: a program whose residual stream stays on the CPU.
  void *fnHotCount_ = nullptr;
  CudaDriver::DevPtr dTok_ = 0, dOutNorm_ = 0;
  float *hostTok_ = nullptr;
  uint32_t *hostFired_ = nullptr;
  bool graphNoted_ = false; // the driver's graph note went to stderr
  // A prompt's chunk on a whole-GPU program: dBTok_ the residuals
  // [T][n_embd], RoPE tables [T][n_rot] (then the sliding layers'),
  // positions [T] and counters [n_layer]; the others the token-major twins
  // of the one-token buffers (dBAttnX_: f32 [T][n_embd], then 8-bit values;
  // the FFN's input and output: dHX_, dHOut_).
  int gpuChunk_ = 0;
  CudaDriver::DevPtr dBTok_ = 0, dBAttnX_ = 0, dBQ_ = 0, dBK_ = 0, dBV_ = 0,
                     dBAttnOut_ = 0, dBAttnOutQ_ = 0, dBAttnY_ = 0,
                     dBScores_ = 0, dBAttnPart_ = 0, dBAttnDone_ = 0;
  float *hostBTok_ = nullptr;
  float *hostBAttnX_ = nullptr, *hostBAttnY_ = nullptr; // attention's chunk

  bool measureRecall_ = false;
  int nCtx_ = 0;
  int nPast_ = 0;
  AlignedVector<float> x_, xb_, xb2_;        // [n_embd]
  AlignedVector<float> q_, attnOut_;         // [n_head*head_dim]
  std::vector<float> scores_;                // [n_head][n_ctx]
  AlignedVector<float> hHot_, hCold_;        // [n_ff] activations of each half
  std::vector<Q4SfAct> sfAct_;               // xq_ for scales-first rows
  std::vector<BlockQ8Act> xq_;               // quantised FFN input (Q8_0/Q4_0)
  // xq_ in pairs of blocks where gate or up reads them (K-quants at the
  // AVX-512 level), made with it; xPairsMade_: for this xq_.
  std::vector<ActPairQ8> xPairs_;
  std::vector<float> xPairScales_;
  bool xPairsMade_ = false;
  std::vector<float> hSource_;               // [n_ff] downInput's, source order
  std::vector<BlockQ8Act> hBlocks_;          // [n_ff/32] downInput's blocks
  AlignedVector<float> hDown_;               // [n_ff] cpuHalf's down input
  // Split layouts: the neurons that fired, grouped by source block.
  std::vector<uint32_t> firedRows_, firedStart_, firedBlock_;
  std::vector<float> firedCoef_;
  std::vector<float> yHot_, yCold_;          // [n_embd] partial down products
  std::vector<float> yFfn_;                  // [n_embd] their sum (merge)
  bool xqReady_ = false;                     // xq_ is xb_'s, quantised
  std::vector<float> logits_;                // [n_vocab]
  PredictorScratch predScratch_;             // logits of all n_ff neurons
  std::vector<uint8_t> chosen_;              // [n_ff] predictor's choice
  std::vector<uint8_t> wouldFire_;           // [n_ff] skipped but firing
  std::vector<uint16_t> keyCache_, valueCache_; // [n_layer][n_ctx][kv_dim] f16
  AlignedVector<float> kNew_, vNew_; // [max(nBatch, 1)][kv_dim] new K, V rows
  std::vector<float> invFreq_;               // [n_rot/2]
  std::vector<float> invFreqLocal_;          // [n_rot/2] of sliding layers; or empty
  std::vector<LayerStats> stats_;            // [n_layer]
  std::vector<std::vector<ProgramStep>> ranSteps_; // [n_layer][steps run]
  // Per layer, the batched prompt path: the index of its first FFN step and
  // of its ffn_add, which ends the FFN steps; batchable_ false when some
  // layer's steps do not have that shape (the prompt then runs token by
  // token through eval()).
  std::vector<uint32_t> ffnFirst_, ffnLast_;
  std::vector<uint8_t> hasPredict_; // [n_layer] a predict step
  bool batchable_ = true;
  bool countBytes_ = false; // inside eval(): reads are counted
  uint64_t cpuBytes_ = 0, gpuBytes_ = 0, tokenEvals_ = 0;

  // Batched prompt evaluation (executor_batch.cpp); sized by sizeBatch().
  int nBatch_ = ForwardState::kDefaultBatch; // tokens per chunk
  AlignedVector<float> bX_, bXb_, bXb2_;     // [nBatch][n_embd]
  AlignedVector<float> bQ_, bAttnOut_;       // [nBatch][n_head*head_dim]
  std::vector<float> bScores_;               // [nBatch][n_head][n_ctx]
  std::vector<Q4SfAct> bSfAct_;              // bXq_ for scales-first rows
  std::vector<BlockQ8Act> bXq_;              // [nBatch][n_embd/32]
  std::vector<ActPairQ8> bXPairs_;           // bXq_ in pairs (K-quant tiles)
  std::vector<float> bXPairScales_;          // their block scales and sums
  AmxActs bAmx_;                             // bXq_ for AMX tiles (K-quants)
  AlignedVector<float> bH_;                  // [nBatch][n_ff] packed order
  AlignedVector<float> bHDown_;              // [nBatch][n_ff] down input
  std::vector<uint8_t> bChosen_;             // [nBatch][n_ff] predictor's
  std::vector<float> bPredHidden_;           // [nBatch][predictor rank]
  std::vector<float> bPredLogits_;           // [nBatch][n_ff]
  std::vector<float> bYHot_, bYCold_;        // [nBatch][n_embd]
  std::vector<uint64_t>
      bFired_; // [nBatch][2] hot (a GPU chunk: its sum first), cold
  // Split layouts, per token and half (hot rows at 0, cold at n_hot): the
  // neurons that fired grouped by source block, as cpuDown groups them,
  // and where each window of source blocks starts in the groups.
  std::vector<uint32_t> bFiredRows_;         // [nBatch][n_ff]
  std::vector<float> bFiredCoef_;            // [nBatch][n_ff]
  std::vector<uint32_t> bFiredStart_;        // [nBatch][2][n_ff/16 + 1]
  std::vector<uint32_t> bFiredBlock_;        // [nBatch][2][n_ff/16]
  std::vector<uint32_t> bWindowStart_;       // [nBatch][2][nWindows + 1]
};

} // namespace pinfer
