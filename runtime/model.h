// The LLaMA-family model as the dense reference sees it: hyperparameters read
// from GGUF metadata and every weight tensor bound, by pointer, to the mapped
// file. Model::load checks names, shapes and types once so that the forward
// pass can trust them.
#pragma once

#include "runtime/arch.h"
#include "runtime/ggml_types.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pinfer {

class GGUFFile;

struct ModelParams {
  std::string arch;       // general.architecture
  int nVocab = 0;
  int nEmbd = 0;          // width of the residual stream
  int nFF = 0;            // FFN neurons per layer
  int nLayer = 0;
  int nHead = 0;
  int nKvHead = 0;        // < nHead for grouped-query attention
  int headDim = 0;        // attention.key_length, else nEmbd / nHead
  int nRot = 0;           // leading dimensions of each head that are rotated
  int nCtxTrain = 0;      // context length the model was trained with
  float normEps = 1e-5f;
  float ropeBase = 10000.f;
  FfnActivation activation = FfnActivation::SiLU;
  // From the architecture's row (runtime/arch.h).
  RopeStyle ropeStyle = RopeStyle::Normal;
  bool scaleEmbedding = false;  // embeddings times sqrt(n_embd)
  int slidingWindow = 0;        // positions a sliding layer sees; 0: none
  int slidingWindowPattern = 0; // layer l slides unless l % N == N - 1
  float ropeBaseLocal = 10000.f; // rope base of the sliding layers

  bool isSlidingLayer(int l) const {
    return slidingWindow > 0 && slidingWindowPattern > 0 &&
           l % slidingWindowPattern != slidingWindowPattern - 1;
  }
  int qDim() const { return nHead * headDim; }
  int kvDim() const { return nKvHead * headDim; }
};

// A 2-D weight matrix in the mapped file: `rows` rows of `cols` elements of
// `type`, each row `rowBytes` bytes long and stored contiguously.
struct Weight {
  const char *name = nullptr; // owned by the GGUFFile
  GGMLType type = GGMLType::F32;
  int64_t cols = 0; // ne0, the row length (input width of a matvec)
  int64_t rows = 0; // ne1 (output width of a matvec)
  size_t rowBytes = 0;
  const uint8_t *data = nullptr;
  uint64_t bytes() const { return uint64_t(rows) * rowBytes; }
  // Q4_0 rows from row scalesFirstFrom on stored scales first (ggml_types.h,
  // q4_0ToScalesFirst), as the packed weights keep the rows only the CPU
  // multiplies (a split layer's gate and up: its cold rows, after the hot
  // ones the GPU reads as blocks); matvecRows and matvecs read them, with
  // the same results as the blocks.
  bool scalesFirst = false;
  int64_t scalesFirstFrom = 0;
  bool rowScalesFirst(int64_t r) const {
    return scalesFirst && r >= scalesFirstFrom;
  }

  const uint8_t *row(int64_t r) const { return data + r * rowBytes; }
};

// A layer's small tensors beyond LLaMA's, shared by the reference's
// LayerWeights and the executor's binding (empty where the architecture
// has none): Gemma 3's per-head query and key norms [head_dim] and the
// norms of the attention and FFN outputs [n_embd]; Qwen2's Q, K and V
// biases [n_head*head_dim], [n_kv_head*head_dim] x2.
struct LayerExtras {
  std::vector<float> qNorm, kNorm, postAttnNorm, postFfnNorm;
  std::vector<float> bq, bk, bv;
};

struct LayerWeights : LayerExtras {
  std::vector<float> attnNorm; // [n_embd]
  Weight wq;                   // {n_embd, n_embd}
  Weight wk;                   // {n_embd, n_kv_head*head_dim}
  Weight wv;                   // {n_embd, n_kv_head*head_dim}
  Weight wo;                   // {n_embd, n_embd}
  std::vector<float> ffnNorm;  // [n_embd]
  Weight gate;                 // {n_embd, n_ff}
  Weight up;                   // {n_embd, n_ff}
  Weight down;                 // {n_ff, n_embd}
};

class Model {
public:
  // Binds the weights of `file`, which must outlive the model. On failure
  // returns null and sets `error` to one line naming the file and the key or
  // tensor at fault.
  static std::unique_ptr<Model> load(const GGUFFile &file, std::string &error);
  // Opens `path` and loads it; the model keeps the file open.
  static std::unique_ptr<Model> open(const std::string &path,
                                     std::string &error);
  // Loads `file` (an opened file or a view of one) and keeps it.
  static std::unique_ptr<Model> load(std::unique_ptr<GGUFFile> file,
                                     std::string &error);
  // The file `model` kept (open(), load() of a file it owns), the model
  // gone; null for a model that did not own its file.
  static std::unique_ptr<GGUFFile> release(std::unique_ptr<Model> model);
  ~Model();

  const GGUFFile &file() const { return *file_; }
  const ArchInfo &arch() const { return *arch_; } // its row of runtime/arch.h
  const ModelParams &params() const { return params_; }
  const Weight &tokenEmbedding() const { return tokEmbd_; } // {n_embd, n_vocab}
  const std::vector<float> &outputNorm() const { return outputNorm_; }
  const Weight &output() const { return output_; } // {n_embd, n_vocab}, may be tied
  bool outputTied() const { return outputTied_; }
  const LayerWeights &layer(int i) const { return layers_[i]; }

  // Sum of the sizes of the bound tensors, in bytes.
  size_t weightBytes() const;

private:
  Model() = default;

  const GGUFFile *file_ = nullptr;
  std::unique_ptr<GGUFFile> owned_; // set by open()
  const ArchInfo *arch_ = nullptr;
  ModelParams params_;
  Weight tokEmbd_;
  std::vector<float> outputNorm_; // [n_embd]
  Weight output_;
  bool outputTied_ = false;
  std::vector<LayerWeights> layers_; // [n_layer]
  // [n_layer][n_embd*n_ff elements]: the down projections of layers stored
  // only as ffn_down_t, transposed at load; empty for the others.
  std::vector<std::vector<uint8_t>> transposedDown_;
};

} // namespace pinfer
