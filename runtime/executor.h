// The specialised decoder of generated executables: the Decoder of
// runtime/generate.h over the packed weights and the program's tables. Per
// layer: attention on the CPU (as the dense reference computes it), then the
// FFN split in two halves — the hot neurons on the GPU (the embedded kernels,
// launched through runtime/cuda_driver.h, their weights uploaded once) or,
// without a GPU, on the CPU; the cold neurons on the CPU with the sparse
// kernels — and the two partial down projections summed. Also defines the
// packed weights layout (keys, content hash) shared with the writer.
#pragma once

#include "runtime/cuda_driver.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/predictor.h"
#include "runtime/program.h"
#include "runtime/thread_pool.h"

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;

// Packed weights metadata.
constexpr const char *kPackedVersionKey = "pinfer.packed.version";
constexpr const char *kPackedHashKey = "pinfer.packed.hash"; // 16 hex digits
constexpr const char *kPackedHotKey = "pinfer.packed.n_hot"; // i32 per layer
constexpr uint32_t kPackedVersion = 1;

// 64-bit content hash of the file's tensor data section (everything from
// dataOffset() to the end of the file).
uint64_t packedWeightsHash(const GGUFFile &file);
std::string formatPackedHash(uint64_t hash); // 16 lower-case hex digits
bool parsePackedHash(const std::string &text, uint64_t &out);

// Per-layer counters since the last reset of the statistics.
struct LayerStats {
  uint64_t tokens = 0;
  uint64_t gpuNeurons = 0; // neurons whose up and down ran in the hot half
  uint64_t cpuNeurons = 0; // ... in the cold half
  uint64_t fired = 0;      // neurons with a non-zero activation, both halves
  // Predicted mode, cold half only.
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

  int nCtx() const override { return nCtx_; }
  int nVocab() const override { return int(program_.nVocab); }
  bool eval(int32_t token, int pos, bool wantLogits,
            std::string &error) override;
  const float *logits() const override { return logits_.data(); }
  void reset() override { nPast_ = 0; }

  // Predicted mode: also compute the neurons the predictor skipped, only to
  // count those that would have fired (recall). Costs what exact mode does.
  void setMeasureRecall(bool on) { measureRecall_ = on; }
  bool measureRecall() const { return measureRecall_; }

  bool gpuActive() const { return gpu_ != nullptr; }
  const std::string &gpuNote() const { return gpuNote_; }
  std::string deviceName() const;
  const std::vector<LayerStats> &stats() const { return stats_; }
  void resetStats();

private:
  struct LayerBinding {
    std::vector<float> attnNorm, ffnNorm; // [n_embd]
    Weight wq, wk, wv, wo;
    Weight gate, up; // {n_embd, n_ff}, rows in packed order
    Weight downT;    // {n_embd, n_ff}: row k is packed neuron k's down column
    PredictorWeights predictor; // fc2 rows and bias in packed order
    CudaDriver::DevPtr dGate = 0, dUp = 0, dDownT = 0;
    void *fnGateUp = nullptr, *fnDown = nullptr;
  };

  bool bind(std::string &error);
  bool openGpu(std::string &error);
  // Computes neurons [first, first+count) of layer `l` on the CPU: their
  // activations into h [count] and their down projection into y [n_embd].
  // Returns the number of neurons that fired. With `predict`, only the
  // neurons whose predictor score passes the threshold run.
  uint64_t cpuHalf(int l, uint32_t first, uint32_t count, const float *x,
                   float *h, float *y, bool predict);
  bool ffn(int l, std::string &error);

  const Program &program_;
  const GGUFFile &weights_;
  ModelParams params_;
  ThreadPool pool_;
  std::vector<LayerBinding> layers_;
  Weight tokEmbd_, output_;
  std::vector<float> outputNorm_;
  std::unique_ptr<CudaDriver> gpu_;
  std::string gpuNote_;
  CudaDriver::DevPtr dX_ = 0, dH_ = 0, dY_ = 0;

  bool measureRecall_ = false;
  int nCtx_ = 0;
  int nPast_ = 0;
  std::vector<float> x_, xb_, xb2_;          // [n_embd]
  std::vector<float> q_, attnOut_;           // [n_head*head_dim]
  std::vector<float> scores_;                // [n_head][n_ctx]
  std::vector<float> hHot_, hCold_;          // [n_ff] activations of each half
  std::vector<float> yHot_, yCold_;          // [n_embd] partial down products
  std::vector<float> logits_;                // [n_vocab]
  PredictorScratch predScratch_;             // logits of all n_ff neurons
  std::vector<uint8_t> chosen_;              // [n_ff] predictor's choice
  std::vector<uint8_t> wouldFire_;           // [n_ff] skipped but firing
  std::vector<float> keyCache_, valueCache_; // [n_layer][n_ctx][kv_dim]
  std::vector<float> invFreq_;               // [n_rot/2]
  std::vector<LayerStats> stats_;            // [n_layer]
};

} // namespace pinfer
