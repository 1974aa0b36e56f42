// The architecture table, after llama.cpp's llama-arch: for every model
// architecture pinferc computes, the GGUF hyperparameter keys, the tensors it
// binds (by kind, named by one table), the FFN activation it has when the
// file does not say, and its norm and rope style. The loader, the compiler's
// import and cost model, the packed-weights writer and the executable's
// binding read names and keys from here; an architecture missing from the
// table is refused by name, never guessed. Adding an architecture is adding
// a row (docs/architectures.md says what else a new computation needs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pinfer {

class GGUFFile;
struct ModelParams;

// The FFN non-linearity. Neurons of the ReLU families are exactly zero when
// they do not fire, which is what sparse execution exploits.
enum class FfnActivation {
  SiLU,  // down(silu(gate x) * up x)
  ReLU,  // down(relu(gate x) * up x)
  DReLU, // down(relu(gate x) * relu(up x)), TurboSparse
  GeluTanh, // down(gelu(gate x) * up x), GELU's tanh approximation (Gemma)
};
const char *activationName(FfnActivation act);
// ReLU and DReLU: a neuron that does not fire is exactly zero. The others
// (SiLU, GELU) are sparse only under a threshold on |act(gate x)|.
inline bool isReluFamily(FfnActivation a) {
  return a == FfnActivation::ReLU || a == FfnActivation::DReLU;
}
// Parses "silu" | "relu" | "drelu" | "gelu".
bool parseActivation(const std::string &name, FfnActivation &out);

enum class NormStyle {
  RMSNorm, // x / sqrt(mean(x^2) + eps) * w, no bias
};
enum class RopeStyle {
  Normal, // pairs (2i, 2i+1) rotated, GGML rope mode 0 (LLaMA)
  Neox,   // pairs (i, i + n_rot/2) rotated, GGML rope mode 2 (Gemma, Qwen)
};
const char *normStyleName(NormStyle s);
const char *ropeStyleName(RopeStyle s);

// Keys that are not per architecture.
inline constexpr const char *kArchitectureKey = "general.architecture";
inline constexpr const char *kFfnActivationKey = "pinfer.ffn_activation";
inline constexpr const char *kSparseThresholdKey =
    "powerinfer.sparse_threshold";

// Hyperparameter keys, each "<arch>.<suffix>" in GGUF.
enum class ArchKey {
  ContextLength,      // context_length
  EmbeddingLength,    // embedding_length
  BlockCount,         // block_count
  FeedForwardLength,  // feed_forward_length
  HeadCount,          // attention.head_count
  HeadCountKv,        // attention.head_count_kv
  RmsEps,             // attention.layer_norm_rms_epsilon
  RopeFreqBase,       // rope.freq_base
  RopeDimensionCount, // rope.dimension_count
  VocabSize,          // vocab_size
  KeyLength,          // attention.key_length: the head size, when given
  SlidingWindow,      // attention.sliding_window
};

// Every tensor pinferc reads or writes, by kind. The name of each is in one
// table (tensorInfo); per-layer names hold the layer index.
enum class TensorKind {
  // global
  TokenEmbd,  // token_embd.weight
  OutputNorm, // output_norm.weight
  Output,     // output.weight
  // per layer
  AttnNorm,   // blk.N.attn_norm.weight
  AttnQ,      // blk.N.attn_q.weight
  AttnK,      // blk.N.attn_k.weight
  AttnV,      // blk.N.attn_v.weight
  AttnOutput, // blk.N.attn_output.weight
  FfnNorm,    // blk.N.ffn_norm.weight
  FfnGate,    // blk.N.ffn_gate.weight
  FfnUp,      // blk.N.ffn_up.weight
  FfnDown,    // blk.N.ffn_down.weight
  // Gemma 3's extra norms: of each head's query and key (before rope), and
  // of the attention and FFN outputs (before the residual add).
  AttnQNorm,    // blk.N.attn_q_norm.weight [head_dim]
  AttnKNorm,    // blk.N.attn_k_norm.weight [head_dim]
  PostAttnNorm, // blk.N.post_attention_norm.weight [n_embd]
  PostFfnNorm,  // blk.N.post_ffw_norm.weight [n_embd]
  // Qwen2's attention biases, added to the Q, K and V projections.
  AttnQBias, // blk.N.attn_q.bias [n_head*head_dim]
  AttnKBias, // blk.N.attn_k.bias [n_kv_head*head_dim]
  AttnVBias, // blk.N.attn_v.bias [n_kv_head*head_dim]
  // PowerInfer activation predictors (PWRI files, and pinferc's own)
  PredFc1,     // blk.N.fc1.weight {n_embd, R}
  PredFc1Bias, // blk.N.fc1.bias [R]
  PredFc2,     // blk.N.fc2.weight {R, n_ff}
  PredFc2Bias, // blk.N.fc2.bias [n_ff]
  // The down projection transposed, one row per neuron: PowerInfer's, and
  // the packed weights' (runtime/program.h, DownLayout); the packed split
  // layouts keep its block scales beside it.
  FfnDownT,  // blk.N.ffn_down_t.weight
  FfnDownS,  // blk.N.ffn_down_s.weight
  FfnDownM,  // blk.N.ffn_down_m.weight (DownLayout::SplitK)
  FfnDownD,  // blk.N.ffn_down_d.weight (DownLayout::SplitK)
  FfnDownDm, // blk.N.ffn_down_dm.weight (DownLayout::SplitK)
};
inline constexpr int kTensorKindCount = int(TensorKind::FfnDownDm) + 1;

// A tensor dimension in terms of the hyperparameters.
enum class Dim {
  None,  // not given by the table (layout- or file-dependent)
  One,   // vectors: ne1 == 1
  Embd,  // n_embd
  QDim,  // n_head * head_dim
  KvDim, // n_kv_head * head_dim
  FF,    // n_ff
  Vocab, // n_vocab
  Rank,  // a predictor's rank R, the file's own
  Head,  // head_dim
};

struct TensorInfo {
  TensorKind kind;
  const char *name; // "token_embd.weight", "blk.%d.attn_q.weight"
  bool perLayer;    // the name holds the layer index
  bool isVector;    // a norm or bias: bound as f32 values
  Dim ne0, ne1;     // ggml order: ne0 is the row length
};
const TensorInfo &tensorInfo(TensorKind kind);

// The GGUF name of a tensor; `layer` is ignored for global tensors.
std::string tensorName(TensorKind kind, int layer = -1);
// "blk.N" for layer N: the prefix of its tensors, also used to name the
// layer in IR locations and neuron tables.
std::string layerName(int layer);
// "blk.12.attn_q.weight" -> layer 12, rest "attn_q.weight". False for a name
// outside a layer; a layer index too large for an int comes back as INT_MAX.
bool splitLayerName(const std::string &name, int &layer, std::string &rest);
// The kind and layer (-1 for global tensors) of a name of the table; false
// for any other name.
bool parseTensorName(const std::string &name, TensorKind &kind, int &layer);
// A dimension's value for a model; -1 for Dim::None and Dim::Rank.
int64_t dimValue(Dim d, const ModelParams &p);

struct ArchInfo {
  const char *name; // general.architecture, and the hyperparameter keys' prefix
  // The FFN activation when the file states none (pinfer.ffn_activation)
  // and is not a PowerInfer file (those hold ReLU-family models).
  FfnActivation activation;
  NormStyle norm;
  RopeStyle rope;
  // Whether output.weight may be absent, the head then reusing token_embd.
  bool tiedOutput;
  // Token embeddings are multiplied by sqrt(n_embd) (Gemma).
  bool scaleEmbedding;
  // Sliding-window attention: with a pattern N > 0, layer l attends to the
  // last attention.sliding_window positions only, unless l % N == N - 1
  // (a global layer); sliding layers rotate with ropeBaseLocal instead of
  // rope.freq_base. 0: every layer global.
  int slidingWindowPattern;
  float ropeBaseLocal;
  // The tensors the forward pass binds, in the loader's order: global ones
  // first (Output optional when tiedOutput), then those of every layer.
  const TensorKind *globalTensors;
  size_t nGlobalTensors;
  const TensorKind *layerTensors;
  size_t nLayerTensors;

  // "llama.embedding_length"
  std::string key(ArchKey k) const;
};

// The rows of the table, for listings and tests.
const ArchInfo *archTable(size_t &count);
// The row for `name`, null when the table has none.
const ArchInfo *findArch(const std::string &name);
// "llama" or "llama, gemma3": the names of the table's rows.
std::string supportedArchNames();
// "architecture 'X' is not supported, expected one of: llama"
std::string unsupportedArchMessage(const std::string &name);
// The row for the file's general.architecture. On failure returns null with
// one line in `error` naming the file, the key and the value.
const ArchInfo *archOf(const GGUFFile &file, std::string &error);

// Whether the file stores PowerInfer activation predictors (layer 0's fc1).
bool hasStoredPredictors(const GGUFFile &file);

// The FFN activation of a model file: key pinfer.ffn_activation, else ReLU
// for PowerInfer (PWRI) files, which hold only ReLU-family models, else the
// architecture's default. An architecture the table does not know is
// refused by name first. `source`, when given, says which rule decided. A
// value pinferc does not know is one error line naming the key.
bool modelActivation(const GGUFFile &file, FfnActivation &out,
                     std::string *source, std::string &error);

} // namespace pinfer
