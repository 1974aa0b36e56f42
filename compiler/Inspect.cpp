//===- Inspect.cpp - `pinferc inspect` ------------------------------------===//

#include "compiler/Inspect.h"

#include "runtime/arch.h"
#include "runtime/gguf.h"
#include "runtime/json.h"
#include "runtime/model.h"

#include <cstdio>
#include <iomanip>
#include <map>
#include <sstream>

namespace pinfer {

bool ffnActivation(const GGUFFile &file, ActivationInfo &out,
                   std::string &error) {
  FfnActivation act;
  if (!modelActivation(file, act, &out.source, error))
    return false;
  out.name = activationName(act);
  return true;
}

static std::string humanBytes(uint64_t b) {
  char buf[32];
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

// Scalars print as their value; arrays as "[type; n]" since vocabularies
// hold tens of thousands of entries.
static std::string valueSummary(const GGUFValue &v) {
  std::ostringstream os;
  switch (v.type) {
  case GGUFValueType::STRING:
    os << '"' << v.s << '"';
    break;
  case GGUFValueType::ARRAY:
    os << "[" << valueTypeName(v.elemType) << "; " << v.arr.size() << "]";
    break;
  case GGUFValueType::BOOL:
    os << (v.u ? "true" : "false");
    break;
  case GGUFValueType::FLOAT32:
  case GGUFValueType::FLOAT64:
    os << v.f;
    break;
  default: {
    int64_t i;
    if (v.asInt(i))
      os << i;
    else
      os << v.u;
  }
  }
  return os.str();
}

static void jsonValue(JsonWriter &w, const GGUFValue &v) {
  switch (v.type) {
  case GGUFValueType::STRING:
    w.value(v.s);
    return;
  case GGUFValueType::BOOL:
    w.value(v.u != 0);
    return;
  case GGUFValueType::FLOAT32:
  case GGUFValueType::FLOAT64:
    w.value(v.f);
    return;
  case GGUFValueType::ARRAY:
    w.beginObject().field("type", valueTypeName(v.elemType))
        .field("length", static_cast<uint64_t>(v.arr.size()))
        .endObject();
    return;
  default: {
    int64_t i;
    if (v.type == GGUFValueType::UINT64 || !v.asInt(i))
      w.value(v.u);
    else
      w.value(i);
  }
  }
}

namespace {
struct Summary {
  std::string arch, tokenizer;
  // Why pinferc cannot compute the model: its architecture is not in the
  // table (runtime/arch.h). Empty when it is.
  std::string unsupported;
  // Why the model cannot run (the loader's one line: architecture, key,
  // tensor, type or shape); empty when it can.
  std::string whyNot;
  uint64_t nVocab = 0;
  ActivationInfo act;
  bool predictors = false;
  std::map<std::string, std::pair<uint64_t, uint64_t>> byType; // count, bytes
  uint64_t totalBytes = 0;
  uint64_t params = 0;
};
} // namespace

static bool summarise(const GGUFFile &file, Summary &s, std::string &error) {
  if (!file.getOptString(kArchitectureKey, s.arch, error) ||
      !file.getOptString("tokenizer.ggml.model", s.tokenizer, error))
    return false;
  if (const GGUFValue *tokens = file.find("tokenizer.ggml.tokens"))
    s.nVocab = tokens->arr.size();
  // An architecture the table does not know has no activation to report:
  // say so instead of guessing one.
  if (!findArch(s.arch))
    s.unsupported =
        s.arch.empty()
            ? std::string("key ") + kArchitectureKey +
                  " is missing, expected one of: " + supportedArchNames()
            : unsupportedArchMessage(s.arch);
  else if (!ffnActivation(file, s.act, error))
    return false;
  // Whether it runs is whatever the loader says: the same checks as every
  // command that computes with it.
  if (!s.unsupported.empty()) {
    s.whyNot = s.unsupported;
  } else {
    std::string loadError;
    if (!Model::load(file, loadError)) {
      const std::string prefix = file.path() + ": ";
      s.whyNot = loadError.rfind(prefix, 0) == 0
                     ? loadError.substr(prefix.size())
                     : loadError;
    }
  }
  for (const GGUFTensor &t : file.tensors()) {
    auto &entry = s.byType[typeName(t.type)];
    entry.first += 1;
    entry.second += t.nbytes;
    s.totalBytes += t.nbytes;
    s.params += static_cast<uint64_t>(t.nelements());
    TensorKind kind;
    int layer;
    if (parseTensorName(t.name, kind, layer) && kind == TensorKind::PredFc1)
      s.predictors = true;
  }
  return true;
}

bool inspectModel(const GGUFFile &file, bool json, std::ostream &os,
                  std::string &error) {
  Summary s;
  if (!summarise(file, s, error))
    return false;
  std::string prefix = s.arch + ".";

  if (json) {
    JsonWriter w(os);
    w.beginObject();
    // What this object is (docs/json.md), then the facts.
    w.field("format", "pinferc-inspect").field("version", uint64_t(1));
    w.field("runs", s.whyNot.empty());
    if (!s.whyNot.empty())
      w.field("why_not", s.whyNot);
    w.field("supported", s.unsupported.empty());
    if (!s.unsupported.empty())
      w.field("unsupported", s.unsupported);
    w.field("file", file.path());
    w.field("file_format", file.isPowerInfer() ? "PWRI" : "GGUF");
    w.field("file_version", static_cast<uint64_t>(file.version()));
    w.field("alignment", file.alignment());
    w.field("architecture", s.arch);
    w.key("hyperparameters").beginObject();
    for (const GGUFKV &kv : file.metadata())
      if (!s.arch.empty() && kv.key.rfind(prefix, 0) == 0) {
        w.key(kv.key.substr(prefix.size()));
        jsonValue(w, kv.value);
      }
    w.endObject();
    w.key("tokenizer").beginObject();
    w.field("model", s.tokenizer).field("tokens", s.nVocab).endObject();
    w.key("ffn").beginObject();
    if (s.unsupported.empty()) {
      w.field("activation", s.act.name).field("source", s.act.source);
      w.field("relu_family", s.act.reluFamily());
    } else {
      w.key("activation").null();
      w.field("source", s.unsupported);
    }
    w.field("predictors", s.predictors).endObject();
    w.key("metadata").beginObject();
    for (const GGUFKV &kv : file.metadata()) {
      w.key(kv.key);
      jsonValue(w, kv.value);
    }
    w.endObject();
    w.key("tensors").beginArray();
    for (const GGUFTensor &t : file.tensors()) {
      w.beginObject().field("name", t.name).field("type", typeName(t.type));
      w.key("shape").beginArray();
      for (uint32_t d = 0; d < t.nDims; ++d)
        w.value(t.ne[d]);
      w.endArray();
      w.field("bytes", t.nbytes).field("offset", t.offset).endObject();
    }
    w.endArray();
    w.key("bytes_by_type").beginObject();
    for (auto &[type, cb] : s.byType)
      w.key(type).beginObject().field("tensors", cb.first)
          .field("bytes", cb.second).endObject();
    w.endObject();
    w.field("total_bytes", s.totalBytes).field("parameters", s.params);
    w.endObject();
    return true;
  }

  os << "runs:          "
     << (s.whyNot.empty() ? std::string("yes") : "no: " + s.whyNot) << "\n";
  os << "file:          " << file.path() << "\n";
  os << "format:        " << (file.isPowerInfer() ? "PWRI (PowerInfer)" : "GGUF")
     << " v" << file.version() << ", alignment " << file.alignment() << "\n";
  os << "architecture:  " << (s.arch.empty() ? "(none)" : s.arch) << "\n";
  if (!s.arch.empty()) {
    os << "hyperparameters:\n";
    for (const GGUFKV &kv : file.metadata())
      if (kv.key.rfind(prefix, 0) == 0)
        os << "  " << std::left << std::setw(34) << kv.key.substr(prefix.size())
           << valueSummary(kv.value) << "\n";
  }
  os << "tokenizer:     "
     << (s.tokenizer.empty() ? "(none)" : s.tokenizer) << ", " << s.nVocab
     << " tokens\n";
  if (!s.unsupported.empty())
    os << "ffn:           unknown; " << s.unsupported << "\n";
  else
    os << "ffn:           " << s.act.name
       << (s.act.reluFamily() ? " (ReLU family: activation-sparse)"
                              : " (SiLU/GELU family: needs thresholds for "
                                "sparsity)")
       << "; " << s.act.source << "\n";
  os << "predictors:    " << (s.predictors ? "present" : "none") << "\n";
  os << "tensors:       " << file.tensors().size() << ", "
     << humanBytes(s.totalBytes) << ", " << s.params << " parameters\n";
  if (!file.tensors().empty()) {
    os << "\n  " << std::left << std::setw(36) << "name" << std::setw(8)
       << "type" << std::setw(24) << "shape (ne0 first)" << "bytes\n";
    for (const GGUFTensor &t : file.tensors())
      os << "  " << std::left << std::setw(36) << t.name << std::setw(8)
         << typeName(t.type) << std::setw(24) << t.shapeString()
         << humanBytes(t.nbytes) << "\n";
    os << "\n  bytes by type:\n";
    for (auto &[type, cb] : s.byType)
      os << "    " << std::left << std::setw(8) << type << std::setw(6)
         << cb.first << humanBytes(cb.second) << "\n";
  }
  return true;
}

} // namespace pinfer
