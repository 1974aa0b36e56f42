// The architecture table and its tensor-name table; see arch.h.
#include "runtime/arch.h"

#include "runtime/gguf.h"
#include "runtime/model.h"

#include <climits>
#include <cstring>

namespace pinfer {

namespace {

// One row per TensorKind, in the enum's order (checked by tensorInfo).
constexpr TensorInfo kTensors[] = {
    {TensorKind::TokenEmbd, "token_embd.weight", false, false, Dim::Embd,
     Dim::Vocab},
    {TensorKind::OutputNorm, "output_norm.weight", false, true, Dim::Embd,
     Dim::One},
    {TensorKind::Output, "output.weight", false, false, Dim::Embd, Dim::Vocab},
    {TensorKind::AttnNorm, "blk.%d.attn_norm.weight", true, true, Dim::Embd,
     Dim::One},
    {TensorKind::AttnQ, "blk.%d.attn_q.weight", true, false, Dim::Embd,
     Dim::QDim},
    {TensorKind::AttnK, "blk.%d.attn_k.weight", true, false, Dim::Embd,
     Dim::KvDim},
    {TensorKind::AttnV, "blk.%d.attn_v.weight", true, false, Dim::Embd,
     Dim::KvDim},
    {TensorKind::AttnOutput, "blk.%d.attn_output.weight", true, false,
     Dim::QDim, Dim::Embd},
    {TensorKind::FfnNorm, "blk.%d.ffn_norm.weight", true, true, Dim::Embd,
     Dim::One},
    {TensorKind::FfnGate, "blk.%d.ffn_gate.weight", true, false, Dim::Embd,
     Dim::FF},
    {TensorKind::FfnUp, "blk.%d.ffn_up.weight", true, false, Dim::Embd,
     Dim::FF},
    {TensorKind::FfnDown, "blk.%d.ffn_down.weight", true, false, Dim::FF,
     Dim::Embd},
    {TensorKind::AttnQNorm, "blk.%d.attn_q_norm.weight", true, true, Dim::Head,
     Dim::One},
    {TensorKind::AttnKNorm, "blk.%d.attn_k_norm.weight", true, true, Dim::Head,
     Dim::One},
    {TensorKind::PostAttnNorm, "blk.%d.post_attention_norm.weight", true, true,
     Dim::Embd, Dim::One},
    {TensorKind::PostFfnNorm, "blk.%d.post_ffw_norm.weight", true, true,
     Dim::Embd, Dim::One},
    {TensorKind::AttnQBias, "blk.%d.attn_q.bias", true, true, Dim::QDim,
     Dim::One},
    {TensorKind::AttnKBias, "blk.%d.attn_k.bias", true, true, Dim::KvDim,
     Dim::One},
    {TensorKind::AttnVBias, "blk.%d.attn_v.bias", true, true, Dim::KvDim,
     Dim::One},
    {TensorKind::PredFc1, "blk.%d.fc1.weight", true, false, Dim::Embd,
     Dim::Rank},
    {TensorKind::PredFc1Bias, "blk.%d.fc1.bias", true, true, Dim::Rank,
     Dim::One},
    {TensorKind::PredFc2, "blk.%d.fc2.weight", true, false, Dim::Rank, Dim::FF},
    {TensorKind::PredFc2Bias, "blk.%d.fc2.bias", true, true, Dim::FF, Dim::One},
    {TensorKind::FfnDownT, "blk.%d.ffn_down_t.weight", true, false, Dim::Embd,
     Dim::FF},
    {TensorKind::FfnDownS, "blk.%d.ffn_down_s.weight", true, false, Dim::None,
     Dim::None},
    {TensorKind::FfnDownM, "blk.%d.ffn_down_m.weight", true, false, Dim::None,
     Dim::None},
    {TensorKind::FfnDownD, "blk.%d.ffn_down_d.weight", true, false, Dim::None,
     Dim::None},
    {TensorKind::FfnDownDm, "blk.%d.ffn_down_dm.weight", true, false, Dim::None,
     Dim::None},
};
static_assert(sizeof(kTensors) / sizeof(kTensors[0]) == kTensorKindCount,
              "one kTensors row per TensorKind");

constexpr const char *kLayerPrefix = "blk.";

constexpr TensorKind kLlamaGlobal[] = {
    TensorKind::TokenEmbd, TensorKind::OutputNorm, TensorKind::Output};
constexpr TensorKind kLlamaLayer[] = {
    TensorKind::AttnNorm, TensorKind::AttnQ,      TensorKind::AttnK,
    TensorKind::AttnV,    TensorKind::AttnOutput, TensorKind::FfnNorm,
    TensorKind::FfnGate,  TensorKind::FfnUp,      TensorKind::FfnDown};

constexpr TensorKind kGemma3Global[] = {TensorKind::TokenEmbd,
                                        TensorKind::OutputNorm,
                                        TensorKind::Output};
constexpr TensorKind kGemma3Layer[] = {
    TensorKind::AttnNorm,    TensorKind::AttnQ,        TensorKind::AttnK,
    TensorKind::AttnV,       TensorKind::AttnQNorm,    TensorKind::AttnKNorm,
    TensorKind::AttnOutput,  TensorKind::PostAttnNorm, TensorKind::FfnNorm,
    TensorKind::FfnGate,     TensorKind::FfnUp,        TensorKind::FfnDown,
    TensorKind::PostFfnNorm};

constexpr TensorKind kQwen2Layer[] = {
    TensorKind::AttnNorm,  TensorKind::AttnQ,     TensorKind::AttnQBias,
    TensorKind::AttnK,     TensorKind::AttnKBias, TensorKind::AttnV,
    TensorKind::AttnVBias, TensorKind::AttnOutput, TensorKind::FfnNorm,
    TensorKind::FfnGate,   TensorKind::FfnUp,     TensorKind::FfnDown};

template <size_t N> constexpr size_t countOf(const TensorKind (&)[N]) {
  return N;
}

// The table. A row's styles and tensors must be ones the forward pass
// computes (runtime/forward.cpp); Model::load refuses any other.
const ArchInfo kArchs[] = {
    {"llama", FfnActivation::SiLU, NormStyle::RMSNorm, RopeStyle::Normal,
     /*tiedOutput=*/true, /*scaleEmbedding=*/false,
     /*slidingWindowPattern=*/0, /*ropeBaseLocal=*/0.f, kLlamaGlobal,
     countOf(kLlamaGlobal), kLlamaLayer, countOf(kLlamaLayer)},
    // Qwen2: LLaMA with Q/K/V biases and NeoX rope.
    {"qwen2", FfnActivation::SiLU, NormStyle::RMSNorm, RopeStyle::Neox,
     /*tiedOutput=*/true, /*scaleEmbedding=*/false,
     /*slidingWindowPattern=*/0, /*ropeBaseLocal=*/0.f, kLlamaGlobal,
     countOf(kLlamaGlobal), kQwen2Layer, countOf(kQwen2Layer)},
    // Gemma 3: every sixth layer global, the others over a sliding window
    // rotated with base 10000 (the GGUF files store neither; llama.cpp
    // fixes both too).
    {"gemma3", FfnActivation::GeluTanh, NormStyle::RMSNorm, RopeStyle::Neox,
     /*tiedOutput=*/true, /*scaleEmbedding=*/true,
     /*slidingWindowPattern=*/6, /*ropeBaseLocal=*/10000.f, kGemma3Global,
     countOf(kGemma3Global), kGemma3Layer, countOf(kGemma3Layer)},
};

const char *keySuffix(ArchKey k) {
  switch (k) {
  case ArchKey::ContextLength:
    return "context_length";
  case ArchKey::EmbeddingLength:
    return "embedding_length";
  case ArchKey::BlockCount:
    return "block_count";
  case ArchKey::FeedForwardLength:
    return "feed_forward_length";
  case ArchKey::HeadCount:
    return "attention.head_count";
  case ArchKey::HeadCountKv:
    return "attention.head_count_kv";
  case ArchKey::RmsEps:
    return "attention.layer_norm_rms_epsilon";
  case ArchKey::RopeFreqBase:
    return "rope.freq_base";
  case ArchKey::RopeDimensionCount:
    return "rope.dimension_count";
  case ArchKey::VocabSize:
    return "vocab_size";
  case ArchKey::KeyLength:
    return "attention.key_length";
  case ArchKey::SlidingWindow:
    return "attention.sliding_window";
  }
  return "?";
}

} // namespace

const char *activationName(FfnActivation act) {
  switch (act) {
  case FfnActivation::SiLU:
    return "silu";
  case FfnActivation::ReLU:
    return "relu";
  case FfnActivation::DReLU:
    return "drelu";
  case FfnActivation::GeluTanh:
    return "gelu";
  }
  return "?";
}

bool parseActivation(const std::string &name, FfnActivation &out) {
  if (name == "silu")
    out = FfnActivation::SiLU;
  else if (name == "relu")
    out = FfnActivation::ReLU;
  else if (name == "drelu")
    out = FfnActivation::DReLU;
  else if (name == "gelu")
    out = FfnActivation::GeluTanh;
  else
    return false;
  return true;
}

const char *normStyleName(NormStyle s) {
  switch (s) {
  case NormStyle::RMSNorm:
    return "rmsnorm";
  }
  return "?";
}

const char *ropeStyleName(RopeStyle s) {
  switch (s) {
  case RopeStyle::Normal:
    return "normal";
  case RopeStyle::Neox:
    return "neox";
  }
  return "?";
}

const TensorInfo &tensorInfo(TensorKind kind) {
  return kTensors[static_cast<int>(kind)];
}

std::string tensorName(TensorKind kind, int layer) {
  const TensorInfo &t = tensorInfo(kind);
  std::string name = t.name;
  if (t.perLayer)
    name.replace(name.find("%d"), 2, std::to_string(layer));
  return name;
}

std::string layerName(int layer) {
  return kLayerPrefix + std::to_string(layer);
}

bool splitLayerName(const std::string &name, int &layer, std::string &rest) {
  const size_t start = std::char_traits<char>::length(kLayerPrefix);
  if (name.compare(0, start, kLayerPrefix) != 0)
    return false;
  size_t dot = name.find('.', start);
  if (dot == std::string::npos || dot == start)
    return false;
  long long v = 0;
  for (size_t i = start; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9')
      return false;
    v = v * 10 + (name[i] - '0');
    if (v > INT_MAX)
      v = INT_MAX;
  }
  layer = int(v);
  rest = name.substr(dot + 1);
  return true;
}

bool parseTensorName(const std::string &name, TensorKind &kind, int &layer) {
  std::string rest;
  int l = -1;
  const bool inLayer = splitLayerName(name, l, rest);
  for (const TensorInfo &t : kTensors) {
    if (t.perLayer != inLayer)
      continue;
    // Per-layer patterns are "blk.%d." followed by the rest.
    const char *pattern = t.perLayer ? std::strstr(t.name, "%d.") + 3 : t.name;
    if ((inLayer ? rest : name) == pattern) {
      kind = t.kind;
      layer = inLayer ? l : -1;
      return true;
    }
  }
  return false;
}

int64_t dimValue(Dim d, const ModelParams &p) {
  switch (d) {
  case Dim::One:
    return 1;
  case Dim::Embd:
    return p.nEmbd;
  case Dim::QDim:
    return p.qDim();
  case Dim::KvDim:
    return p.kvDim();
  case Dim::FF:
    return p.nFF;
  case Dim::Vocab:
    return p.nVocab;
  case Dim::Head:
    return p.headDim;
  case Dim::None:
  case Dim::Rank:
    break;
  }
  return -1;
}

std::string ArchInfo::key(ArchKey k) const {
  return std::string(name) + "." + keySuffix(k);
}

const ArchInfo *archTable(size_t &count) {
  count = sizeof(kArchs) / sizeof(kArchs[0]);
  return kArchs;
}

const ArchInfo *findArch(const std::string &name) {
  for (const ArchInfo &a : kArchs)
    if (name == a.name)
      return &a;
  return nullptr;
}

std::string supportedArchNames() {
  std::string s;
  for (const ArchInfo &a : kArchs)
    s += (s.empty() ? "" : ", ") + std::string(a.name);
  return s;
}

std::string unsupportedArchMessage(const std::string &name) {
  return "architecture '" + name +
         "' is not supported, expected one of: " + supportedArchNames();
}

const ArchInfo *archOf(const GGUFFile &file, std::string &error) {
  std::string name;
  if (!file.getString(kArchitectureKey, name, error))
    return nullptr;
  const ArchInfo *arch = findArch(name);
  if (!arch)
    error = file.path() + ": key " + kArchitectureKey + ": " +
            unsupportedArchMessage(name);
  return arch;
}

bool hasStoredPredictors(const GGUFFile &file) {
  return file.tensor(tensorName(TensorKind::PredFc1, 0)) != nullptr;
}

bool modelActivation(const GGUFFile &file, FfnActivation &out,
                     std::string *source, std::string &error) {
  const ArchInfo *arch = archOf(file, error);
  if (!arch)
    return false;
  std::string act;
  if (!file.getOptString(kFfnActivationKey, act, error))
    return false;
  if (!act.empty()) {
    if (!parseActivation(act, out)) {
      error = file.path() + ": key " + kFfnActivationKey + ": activation '" +
              act + "' is not supported, expected silu, relu, drelu or gelu";
      return false;
    }
    if (source)
      *source = std::string("key ") + kFfnActivationKey;
    return true;
  }
  if (file.isPowerInfer()) {
    out = FfnActivation::ReLU;
    if (source)
      *source =
          std::string("PowerInfer file (PWRI) without ") + kFfnActivationKey;
    return true;
  }
  out = arch->activation;
  if (source)
    *source = std::string("default for architecture '") + arch->name +
              "' (no " + kFfnActivationKey + " key)";
  return true;
}

} // namespace pinfer
