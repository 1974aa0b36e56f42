// Solving the placement (DP, then Z3 seeded with the DP's answer), turning
// the answer into a Plan, and the plan's JSON form. The JSON reader is
// schema-driven: it reads what the writer writes, checks every value's type
// and range, and skips keys it does not know so newer writers stay readable.
#include "compiler/placement/Plan.h"

#include "compiler/Trace.h"
#include "runtime/output_files.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <sys/stat.h>

namespace pinfer {

namespace {

std::string fmt(const char *f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::vector<std::pair<uint32_t, double>>
sampleCurve(const std::vector<double> &freq, uint32_t cut) {
  std::vector<uint32_t> ranks;
  uint32_t n = uint32_t(freq.size());
  if (n == 0)
    return {};
  // Log-spaced ranks show both the head and the tail of a power law.
  for (int i = 0; i < 64; ++i) {
    double r = std::pow(double(n), double(i) / 63.0) - 1.0;
    ranks.push_back(std::min(n - 1, uint32_t(std::llround(r))));
  }
  if (cut > 0)
    ranks.push_back(cut - 1);
  if (cut < n)
    ranks.push_back(cut);
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  std::vector<std::pair<uint32_t, double>> curve;
  for (uint32_t r : ranks)
    curve.push_back({r, freq[r]});
  return curve;
}

} // namespace

Plan makePlan(const PlacementInput &in, const Assignment &a,
              const std::string &target) {
  const PlacementProblem &p = in.problem;
  Plan plan;
  plan.target = target;
  plan.nLayer = uint32_t(p.layers.size());
  plan.nFF = in.order.empty() ? 0 : uint32_t(in.order[0].size());
  plan.granuleSize = in.granuleSize;
  plan.budgetBytes = p.budget;
  plan.bill = p.mandatory;
  uint64_t ffnBytes = 0, hotFixedBytes = 0, attnBytes = 0;
  uint32_t ffnLayers = 0, attnLayers = 0;
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const LayerProblem &lp = p.layers[l];
    LayerPlan lay;
    lay.hotGranules = a.hotGranules[l];
    lay.nGranules = uint32_t(lp.granules.size());
    lay.minGranules = lp.minGranules;
    lay.attentionOnGPU = lp.hasAttention && a.attention[l];
    double hotU = 0, allU = 0, hotF = 0, allF = 0;
    uint64_t hotBytes = 0;
    for (uint32_t g = 0; g < lp.granules.size(); ++g) {
      const Granule &gr = lp.granules[g];
      allU += gr.utility;
      allF += gr.firings;
      if (g < lay.hotGranules) {
        hotU += gr.utility;
        hotF += gr.firings;
        hotBytes += gr.bytes;
        lay.nHot += gr.count;
      }
    }
    lay.coverage = allF > 0 ? hotF / allF : 0;
    lay.vramBytes = hotBytes;
    if (lay.hotGranules) {
      lay.vramBytes += lp.hotFixedBytes;
      hotFixedBytes += lp.hotFixedBytes;
      ffnBytes += hotBytes;
      ++ffnLayers;
    }
    lay.gpuBytesPerToken = hotU;
    lay.cpuBytesPerToken = allU - hotU;
    if (lp.hasAttention) {
      if (lay.attentionOnGPU) {
        lay.vramBytes += lp.attention.bytes;
        lay.gpuBytesPerToken += lp.attention.utility;
        attnBytes += lp.attention.bytes;
        ++attnLayers;
      } else {
        lay.cpuBytesPerToken += lp.attention.utility;
      }
    }
    lay.order = in.order[l];
    lay.curve = sampleCurve(in.freq[l], lay.nHot);
    plan.gpuBytesPerToken += lay.gpuBytesPerToken;
    plan.cpuBytesPerToken += lay.cpuBytesPerToken;
    plan.layers.push_back(std::move(lay));
  }
  if (ffnLayers) {
    plan.bill.push_back({"hot FFN rows + neuron index (" +
                             std::to_string(ffnLayers) + " layers)",
                         ffnBytes});
    // Per layer with hot neurons: the down projection's block scales
    // (quantised models).
    if (hotFixedBytes)
      plan.bill.push_back({in.problem.layers.front().hotFixedName + " (" +
                               std::to_string(ffnLayers) + " layers)",
                           hotFixedBytes});
  }
  if (attnLayers)
    plan.bill.push_back({"attention + KV cache (" +
                             std::to_string(attnLayers) + " layers)",
                         attnBytes});
  plan.gpuBytesPerToken += in.fixedGpuBytesPerToken;
  plan.cpuBytesPerToken += in.fixedCpuBytesPerToken;
  for (size_t j = 0; j < p.globals.size(); ++j) {
    if (a.globals[j]) {
      plan.bill.push_back({p.globals[j].name, p.globals[j].bytes});
      plan.gpuBytesPerToken += p.globals[j].utility;
      if (p.globals[j].name == in.outputName)
        plan.outputOnGPU = true;
    } else {
      plan.cpuBytesPerToken += p.globals[j].utility;
    }
  }
  for (const BillLine &b : plan.bill)
    plan.billBytes += b.bytes;
  plan.objective = assignmentUtility(p, a);
  return plan;
}

bool planPlacement(const Trace &trace, const ModelShape &shape,
                   const Target &target, const PlacementOptions &opts,
                   Plan &plan, std::string &error) {
  PlacementInput in;
  if (!buildPlacementInput(trace, shape, target, opts, in, error))
    return false;
  DPResult dp;
  if (!solveDP(in.problem, dp, error))
    return false;
  Assignment best = dp.best;
  std::string solver = "dp";
  std::string dpStatus;
  if (dp.optimal)
    dpStatus = "optimal for the separable core (DP, " +
               std::string(dp.exact ? "exact sizes" : "bound met") + ", " +
               fmt("%.3f s)", dp.seconds);
  else
    dpStatus = "within " +
               fmt("%.3f%%", 100 * (dp.upperBound - dp.value) /
                                 std::max(dp.upperBound, 1e-300)) +
               " of the bound (DP, " + formatBytes(dp.unitBytes) + " units" +
               (in.problem.maxGpuLayers ? ", repaired for the layer limit"
                                        : "") +
               fmt(", %.3f s)", dp.seconds);

  bool anyChoice =
      target.hasGPU() && in.problem.budget > in.problem.mandatoryBytes();
  Z3Result z3;
  std::string z3Status = "not run";
  bool z3Proved = false;
  if (!anyChoice) {
    z3Status = "not run: nothing can go to the GPU";
  } else if (!opts.useZ3) {
    z3Status = "not run (disabled)";
  } else if (dp.optimal && !in.problem.maxGpuLayers && !opts.z3Always) {
    z3Status = "not needed: no constraint beyond the DP's separable core";
  } else {
    if (!solveZ3(in.problem, opts.z3SeedBound ? &dp.best : nullptr,
                 opts.z3Seconds, z3, error))
      return false;
    switch (z3.outcome) {
    case Z3Outcome::Optimal:
      z3Status = fmt("optimal (proved by Z3 in %.2f s)", z3.seconds);
      z3Proved = true;
      break;
    case Z3Outcome::Feasible:
      z3Status = fmt("Z3 stopped after %.2f s (", z3.seconds) + z3.detail +
                 "), best found " + formatBytes(uint64_t(z3.value)) +
                 "/token" +
                 fmt(" = %.3f%% of the DP's", dp.value > 0
                                                  ? 100 * z3.value / dp.value
                                                  : 100.0);
      break;
    case Z3Outcome::Timeout:
      z3Status = fmt("Z3 timed out at %.1f s", z3.seconds) +
                 (z3.detail.empty() ? "" : " (" + z3.detail + ")");
      break;
    case Z3Outcome::Failed:
      z3Status = "Z3 failed: " + z3.detail;
      break;
    }
    if ((z3.outcome == Z3Outcome::Optimal ||
         z3.outcome == Z3Outcome::Feasible) &&
        z3.value > dp.value) {
      best = z3.best;
      solver = "z3";
    }
  }

  plan = makePlan(in, best, target.name);
  plan.modelIdentity = trace.modelIdentity;
  plan.nCtx = opts.nCtx;
  plan.solver = solver;
  plan.dpStatus = dpStatus;
  plan.z3Status = z3Status;
  plan.dpSeconds = dp.seconds;
  plan.z3Seconds = z3.seconds;
  plan.upperBound = std::max(dp.upperBound, plan.objective);
  plan.gap = plan.upperBound > 0
                 ? (plan.upperBound - plan.objective) / plan.upperBound
                 : 0;
  plan.provenOptimal = z3Proved || dp.optimal || !anyChoice;
  if (!anyChoice)
    plan.status = target.hasGPU()
                      ? "no VRAM left after the mandatory parts: every layer "
                        "on the CPU"
                      : "no GPU: every layer on the CPU";
  else if (z3Proved)
    plan.status = "optimal (proved by Z3)";
  else if (dp.optimal)
    plan.status = "optimal for the separable core (DP); " + z3Status;
  else
    plan.status = "best found " + formatBytes(uint64_t(plan.objective)) +
                  "/token by " + solver + ", bound " +
                  formatBytes(uint64_t(plan.upperBound)) + fmt(", gap %.3f%%", 100 * plan.gap) +
                  "; " + z3Status;
  return true;
}

// ---------------------------------------------------------------- JSON out

namespace {

void jsonString(std::string &o, const std::string &s) {
  o += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += char(c);
    }
  }
  o += '"';
}

void jsonDouble(std::string &o, double v) {
  if (!std::isfinite(v))
    v = 0; // never produced; keeps the output valid JSON regardless
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  o += buf;
}

struct JsonOut {
  std::string o;
  bool first = true;
  void key(const char *k) {
    o += first ? "\n  " : ",\n  ";
    first = false;
    jsonString(o, k);
    o += ": ";
  }
  void str(const char *k, const std::string &v) { key(k); jsonString(o, v); }
  void u64(const char *k, uint64_t v) { key(k); o += std::to_string(v); }
  void dbl(const char *k, double v) { key(k); jsonDouble(o, v); }
  void boolean(const char *k, bool v) { key(k); o += v ? "true" : "false"; }
};

} // namespace

std::string planToJson(const Plan &plan) {
  JsonOut j;
  j.o = "{";
  j.str("format", "pinferc-plan");
  j.u64("version", plan.version);
  j.str("target", plan.target);
  j.str("model_identity", plan.modelIdentity);
  j.u64("n_layer", plan.nLayer);
  j.u64("n_ff", plan.nFF);
  j.u64("n_ctx", plan.nCtx);
  j.u64("granule_size", plan.granuleSize);
  j.u64("budget_bytes", plan.budgetBytes);
  j.u64("bill_bytes", plan.billBytes);
  j.boolean("output_on_gpu", plan.outputOnGPU);
  j.dbl("gpu_bytes_per_token", plan.gpuBytesPerToken);
  j.dbl("cpu_bytes_per_token", plan.cpuBytesPerToken);
  j.dbl("objective", plan.objective);
  j.dbl("upper_bound", plan.upperBound);
  j.dbl("gap", plan.gap);
  j.boolean("proven_optimal", plan.provenOptimal);
  j.str("solver", plan.solver);
  j.str("status", plan.status);
  j.str("dp_status", plan.dpStatus);
  j.str("z3_status", plan.z3Status);
  j.dbl("dp_seconds", plan.dpSeconds);
  j.dbl("z3_seconds", plan.z3Seconds);
  j.key("bill");
  j.o += "[";
  for (size_t i = 0; i < plan.bill.size(); ++i) {
    j.o += i ? ",\n    {\"what\": " : "\n    {\"what\": ";
    jsonString(j.o, plan.bill[i].what);
    j.o += ", \"bytes\": " + std::to_string(plan.bill[i].bytes) + "}";
  }
  j.o += plan.bill.empty() ? "]" : "\n  ]";
  j.key("layers");
  j.o += "[";
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const LayerPlan &lp = plan.layers[l];
    std::string &o = j.o;
    o += l ? ",\n    {" : "\n    {";
    o += "\"n_hot\": " + std::to_string(lp.nHot);
    o += ", \"hot_granules\": " + std::to_string(lp.hotGranules);
    o += ", \"n_granules\": " + std::to_string(lp.nGranules);
    o += ", \"min_granules\": " + std::to_string(lp.minGranules);
    o += ", \"coverage\": ";
    jsonDouble(o, lp.coverage);
    o += ", \"attention_on_gpu\": ";
    o += lp.attentionOnGPU ? "true" : "false";
    o += ", \"vram_bytes\": " + std::to_string(lp.vramBytes);
    o += ", \"gpu_bytes_per_token\": ";
    jsonDouble(o, lp.gpuBytesPerToken);
    o += ", \"cpu_bytes_per_token\": ";
    jsonDouble(o, lp.cpuBytesPerToken);
    o += ",\n     \"curve\": [";
    for (size_t i = 0; i < lp.curve.size(); ++i) {
      o += i ? ", [" : "[";
      o += std::to_string(lp.curve[i].first) + ", ";
      jsonDouble(o, lp.curve[i].second);
      o += "]";
    }
    o += "],\n     \"order\": [";
    for (size_t i = 0; i < lp.order.size(); ++i) {
      if (i)
        o += ',';
      o += std::to_string(lp.order[i]);
    }
    o += "]}";
  }
  j.o += plan.layers.empty() ? "]" : "\n  ]";
  j.o += "\n}\n";
  return j.o;
}

// ----------------------------------------------------------------- JSON in

namespace {

// Control characters of the input quoted in an error (a bad escape, a
// wrong key's value) as \xNN, so that the error stays one line.
std::string oneLine(const std::string &what) {
  std::string out;
  for (unsigned char c : what) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out;
}

class JsonIn {
public:
  JsonIn(const std::string &s, const std::string &name, std::string &error)
      : s_(s), name_(name), error_(error) {}

  bool fail(const std::string &what) {
    if (!failed_)
      error_ = name_ + ": at offset " + std::to_string(pos_) + ": " +
               oneLine(what);
    failed_ = true;
    return false;
  }
  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' ||
                                s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool peek(char c) {
    ws();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  bool expect(char c) {
    ws();
    if (pos_ >= s_.size())
      return fail(std::string("end of input, expected '") + c + "'");
    if (s_[pos_] != c)
      return fail(std::string("found '") + s_[pos_] + "', expected '" + c +
                  "'");
    ++pos_;
    return true;
  }
  bool str(std::string &out) {
    if (!expect('"'))
      return false;
    out.clear();
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size())
        break;
      char e = s_[pos_++];
      switch (e) {
      case '"': case '\\': case '/': out += e; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (s_.size() - pos_ < 4)
          return fail("truncated \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
          char h = s_[pos_++];
          v <<= 4;
          if (h >= '0' && h <= '9') v |= unsigned(h - '0');
          else if (h >= 'a' && h <= 'f') v |= unsigned(h - 'a' + 10);
          else if (h >= 'A' && h <= 'F') v |= unsigned(h - 'A' + 10);
          else return fail("bad \\u escape, expected 4 hex digits");
        }
        if (v < 0x80) {
          out += char(v);
        } else if (v < 0x800) {
          out += char(0xC0 | (v >> 6));
          out += char(0x80 | (v & 0x3F));
        } else {
          out += char(0xE0 | (v >> 12));
          out += char(0x80 | ((v >> 6) & 0x3F));
          out += char(0x80 | (v & 0x3F));
        }
        break;
      }
      default:
        --pos_;
        return fail(std::string("bad escape '\\") + e + "' in a string");
      }
    }
    if (pos_ >= s_.size())
      return fail("unterminated string");
    ++pos_;
    return true;
  }
  bool number(double &out) {
    ws();
    size_t start = pos_;
    while (pos_ < s_.size() && std::strchr("+-0123456789.eE", s_[pos_]) &&
           s_[pos_] != '\0')
      ++pos_;
    if (start == pos_)
      return fail("expected a number");
    std::string text = s_.substr(start, pos_ - start);
    char *end = nullptr;
    errno = 0;
    out = std::strtod(text.c_str(), &end);
    if (*end != '\0' || errno == ERANGE || !std::isfinite(out)) {
      pos_ = start;
      return fail("malformed number '" + text + "'");
    }
    return true;
  }
  bool u64(uint64_t &out, uint64_t max = UINT64_MAX) {
    ws();
    size_t start = pos_;
    out = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      uint64_t d = uint64_t(s_[pos_] - '0');
      if (out > (UINT64_MAX - d) / 10)
        return fail("integer overflows 64 bits");
      out = out * 10 + d;
      ++pos_;
    }
    if (start == pos_)
      return fail("expected a non-negative integer");
    if (out > max) {
      pos_ = start;
      return fail("integer " + std::to_string(out) + " above the maximum " +
                  std::to_string(max));
    }
    return true;
  }
  bool u32(uint32_t &out) {
    uint64_t v;
    if (!u64(v, UINT32_MAX))
      return false;
    out = uint32_t(v);
    return true;
  }
  bool boolean(bool &out) {
    ws();
    if (s_.compare(pos_, 4, "true") == 0) {
      pos_ += 4;
      out = true;
      return true;
    }
    if (s_.compare(pos_, 5, "false") == 0) {
      pos_ += 5;
      out = false;
      return true;
    }
    return fail("expected true or false");
  }
  // '{' ("key": value)* '}', calling `field` for each key at its value.
  bool object(const std::function<bool(const std::string &)> &field) {
    if (depth_ > 64)
      return fail("nesting deeper than 64");
    ++depth_;
    if (!expect('{'))
      return false;
    if (peek('}')) {
      ++pos_;
      --depth_;
      return true;
    }
    for (;;) {
      std::string key;
      if (!str(key) || !expect(':') || !field(key))
        return false;
      if (peek(',')) {
        ++pos_;
        continue;
      }
      if (!expect('}'))
        return false;
      --depth_;
      return true;
    }
  }
  bool array(const std::function<bool()> &elem) {
    if (depth_ > 64)
      return fail("nesting deeper than 64");
    ++depth_;
    if (!expect('['))
      return false;
    if (peek(']')) {
      ++pos_;
      --depth_;
      return true;
    }
    for (;;) {
      if (!elem())
        return false;
      if (peek(',')) {
        ++pos_;
        continue;
      }
      if (!expect(']'))
        return false;
      --depth_;
      return true;
    }
  }
  bool skip() {
    ws();
    if (pos_ >= s_.size())
      return fail("end of input, expected a value");
    char c = s_[pos_];
    if (c == '{')
      return object([&](const std::string &) { return skip(); });
    if (c == '[')
      return array([&] { return skip(); });
    if (c == '"') {
      std::string ignored;
      return str(ignored);
    }
    if (c == 't' || c == 'f') {
      bool ignored;
      return boolean(ignored);
    }
    if (s_.compare(pos_, 4, "null") == 0) {
      pos_ += 4;
      return true;
    }
    double ignored;
    return number(ignored);
  }
  bool atEnd() {
    ws();
    return pos_ == s_.size() || fail("trailing characters after the plan");
  }
  size_t pos() const { return pos_; }

private:
  const std::string &s_;
  const std::string &name_;
  std::string &error_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool failed_ = false;
};

bool readLayer(JsonIn &in, LayerPlan &lp) {
  return in.object([&](const std::string &k) -> bool {
    if (k == "n_hot") return in.u32(lp.nHot);
    if (k == "hot_granules") return in.u32(lp.hotGranules);
    if (k == "n_granules") return in.u32(lp.nGranules);
    if (k == "min_granules") return in.u32(lp.minGranules);
    if (k == "coverage") return in.number(lp.coverage);
    if (k == "attention_on_gpu") return in.boolean(lp.attentionOnGPU);
    if (k == "vram_bytes") return in.u64(lp.vramBytes);
    if (k == "gpu_bytes_per_token") return in.number(lp.gpuBytesPerToken);
    if (k == "cpu_bytes_per_token") return in.number(lp.cpuBytesPerToken);
    if (k == "curve")
      return in.array([&] {
        std::pair<uint32_t, double> pt;
        size_t n = 0;
        bool ok = in.array([&] {
          ++n;
          if (n == 1) return in.u32(pt.first);
          if (n == 2) return in.number(pt.second);
          return in.fail("a curve point has more than 2 numbers");
        });
        if (ok && n != 2)
          return in.fail("a curve point has " + std::to_string(n) +
                         " numbers, expected 2");
        lp.curve.push_back(pt);
        return ok;
      });
    if (k == "order")
      return in.array([&] {
        uint32_t v;
        if (!in.u32(v))
          return false;
        lp.order.push_back(v);
        return true;
      });
    return in.skip();
  });
}

} // namespace

bool planFromJson(const std::string &text, const std::string &name, Plan &plan,
                  std::string &error) {
  plan = Plan();
  JsonIn in(text, name, error);
  std::string format;
  bool haveVersion = false;
  bool ok = in.object([&](const std::string &k) -> bool {
    if (k == "format") return in.str(format);
    if (k == "version") {
      haveVersion = true;
      return in.u32(plan.version);
    }
    if (k == "target") return in.str(plan.target);
    if (k == "model_identity") return in.str(plan.modelIdentity);
    if (k == "n_layer") return in.u32(plan.nLayer);
    if (k == "n_ff") return in.u32(plan.nFF);
    if (k == "n_ctx") return in.u32(plan.nCtx);
    if (k == "granule_size") return in.u32(plan.granuleSize);
    if (k == "budget_bytes") return in.u64(plan.budgetBytes);
    if (k == "bill_bytes") return in.u64(plan.billBytes);
    if (k == "output_on_gpu") return in.boolean(plan.outputOnGPU);
    if (k == "gpu_bytes_per_token") return in.number(plan.gpuBytesPerToken);
    if (k == "cpu_bytes_per_token") return in.number(plan.cpuBytesPerToken);
    if (k == "objective") return in.number(plan.objective);
    if (k == "upper_bound") return in.number(plan.upperBound);
    if (k == "gap") return in.number(plan.gap);
    if (k == "proven_optimal") return in.boolean(plan.provenOptimal);
    if (k == "solver") return in.str(plan.solver);
    if (k == "status") return in.str(plan.status);
    if (k == "dp_status") return in.str(plan.dpStatus);
    if (k == "z3_status") return in.str(plan.z3Status);
    if (k == "dp_seconds") return in.number(plan.dpSeconds);
    if (k == "z3_seconds") return in.number(plan.z3Seconds);
    if (k == "bill")
      return in.array([&] {
        BillLine b;
        bool ok = in.object([&](const std::string &bk) -> bool {
          if (bk == "what") return in.str(b.what);
          if (bk == "bytes") return in.u64(b.bytes);
          return in.skip();
        });
        plan.bill.push_back(b);
        return ok;
      });
    if (k == "layers")
      return in.array([&] {
        if (plan.layers.size() >= 100000)
          return in.fail("more than 100000 layers");
        plan.layers.emplace_back();
        return readLayer(in, plan.layers.back());
      });
    return in.skip();
  });
  if (!ok || !in.atEnd())
    return false;
  auto fail = [&](const std::string &what) {
    error = name + ": " + oneLine(what);
    return false;
  };
  if (format != "pinferc-plan")
    return fail("key format: found '" + format +
                "', expected 'pinferc-plan'");
  if (!haveVersion || plan.version != Plan::kVersion)
    return fail("key version: found " + std::to_string(plan.version) +
                ", expected " + std::to_string(Plan::kVersion));
  if (plan.layers.size() != plan.nLayer)
    return fail("key layers: " + std::to_string(plan.layers.size()) +
                " entries, expected n_layer = " + std::to_string(plan.nLayer));
  uint64_t bill = 0;
  for (const BillLine &b : plan.bill) {
    if (b.bytes > UINT64_MAX - bill)
      return fail("key bill: the lines' bytes overflow 64 bits");
    bill += b.bytes;
  }
  if (bill != plan.billBytes)
    return fail("key bill_bytes: " + std::to_string(plan.billBytes) +
                ", expected the sum of the bill lines " + std::to_string(bill));
  // Shares in [0, 1]; byte counts non-negative and below 2^64 (the table
  // prints them as integers); times non-negative.
  auto inRange = [&](const std::string &key, double v, double hi) {
    return (v >= 0 && v <= hi) ||
           fail("key " + key + ": found " + fmt("%g", v) +
                ", expected a value in [0, " + fmt("%g", hi) + "]");
  };
  const double kBytes = 1.8e19;
  if (!inRange("gpu_bytes_per_token", plan.gpuBytesPerToken, kBytes) ||
      !inRange("cpu_bytes_per_token", plan.cpuBytesPerToken, kBytes) ||
      !inRange("objective", plan.objective, kBytes) ||
      !inRange("upper_bound", plan.upperBound, kBytes) ||
      !inRange("dp_seconds", plan.dpSeconds, HUGE_VAL) ||
      !inRange("z3_seconds", plan.z3Seconds, HUGE_VAL))
    return false;
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const LayerPlan &lp = plan.layers[l];
    std::string where = "layers[" + std::to_string(l) + "].";
    if (!inRange(where + "coverage", lp.coverage, 1) ||
        !inRange(where + "gpu_bytes_per_token", lp.gpuBytesPerToken, kBytes) ||
        !inRange(where + "cpu_bytes_per_token", lp.cpuBytesPerToken, kBytes))
      return false;
    for (const auto &pt : lp.curve)
      if (!inRange(where + "curve", pt.second, 1))
        return false;
  }
  // Sized only once an order of n_ff entries was read: n_ff itself is
  // untrusted and must not size an allocation.
  std::vector<uint8_t> seen;
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const LayerPlan &lp = plan.layers[l];
    std::string where = "layers[" + std::to_string(l) + "]";
    if (lp.order.size() != plan.nFF)
      return fail(where + ".order: " + std::to_string(lp.order.size()) +
                  " entries, expected n_ff = " + std::to_string(plan.nFF));
    seen.assign(plan.nFF, 0);
    for (uint32_t v : lp.order) {
      if (v >= plan.nFF || seen[v])
        return fail(where + ".order: neuron " + std::to_string(v) +
                    " out of range or repeated, expected a permutation of 0.." +
                    std::to_string(plan.nFF - 1));
      seen[v] = 1;
    }
    if (lp.nHot > plan.nFF || lp.hotGranules > lp.nGranules)
      return fail(where + ": n_hot " + std::to_string(lp.nHot) +
                  " / hot_granules " + std::to_string(lp.hotGranules) +
                  " exceed n_ff / n_granules");
  }
  return true;
}

Plan coldPlan(uint32_t nLayer, uint32_t nFF, const std::string &target,
              const std::string &modelIdentity) {
  Plan plan;
  plan.target = target;
  plan.modelIdentity = modelIdentity;
  plan.nLayer = nLayer;
  plan.nFF = nFF;
  plan.layers.resize(nLayer);
  for (LayerPlan &lp : plan.layers) {
    lp.order.resize(nFF);
    for (uint32_t i = 0; i < nFF; ++i)
      lp.order[i] = i;
  }
  plan.status = "no GPU: every neuron on the CPU";
  return plan;
}

bool writePlanJson(const std::string &path, const Plan &plan,
                   std::string &error) {
  return writeTextFile(path, planToJson(plan), error);
}

bool readPlanJson(const std::string &path, Plan &plan, std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    error = path + ": not a regular file, expected a plan JSON file";
    return false;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return planFromJson(ss.str(), path, plan, error);
}

} // namespace pinfer
