// Solving the placement (DP, then Z3 seeded with the DP's answer), turning
// the answer into a Plan, and the plan's JSON form. The JSON reader is
// schema-driven: it reads what the writer writes, checks every value's type
// and range, and skips keys it does not know so newer writers stay readable.
#include "compiler/placement/Plan.h"

#include "compiler/Trace.h"
#include "runtime/output_files.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
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
    for (uint32_t g = 0; g < lp.granules.size(); ++g) {
      const Granule &gr = lp.granules[g];
      allU += gr.utility;
      allF += gr.firings;
      if (g < lay.hotGranules) {
        hotU += gr.utility;
        hotF += gr.firings;
        lay.nHot += gr.count;
      }
    }
    lay.coverage = allF > 0 ? hotF / allF : 0;
    lay.vramBytes = hotLayerBytes(lp, lay.hotGranules);
    if (lay.hotGranules) {
      hotFixedBytes += lp.hotFixedBytes;
      // A whole layer's saving comes off its rows.
      ffnBytes += lay.vramBytes - std::min(lay.vramBytes, lp.hotFixedBytes);
      ++ffnLayers;
    }
    lay.gpuBytesPerToken = hotU;
    lay.cpuBytesPerToken = allU - hotU;
    // Wholly on one device, a dense layer reads the source's down matrix,
    // not its neurons' f32 rows (LayerProblem::sourceReadBytes).
    if (lay.hotGranules == 0)
      lay.cpuBytesPerToken -=
          std::min(lay.cpuBytesPerToken, lp.sourceReadBytes);
    else if (lay.hotGranules == lp.granules.size())
      lay.gpuBytesPerToken -=
          std::min(lay.gpuBytesPerToken, lp.sourceReadBytes);
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

// ------------------------------------------------------------------- JSON

namespace {

using Json = nlohmann::ordered_json;

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

} // namespace

std::string planToJson(const Plan &plan) {
  Json j;
  j["format"] = "pinferc-plan";
  j["version"] = plan.version;
  j["target"] = plan.target;
  j["model_identity"] = plan.modelIdentity;
  j["n_layer"] = plan.nLayer;
  j["n_ff"] = plan.nFF;
  j["n_ctx"] = plan.nCtx;
  j["granule_size"] = plan.granuleSize;
  j["budget_bytes"] = plan.budgetBytes;
  j["bill_bytes"] = plan.billBytes;
  j["output_on_gpu"] = plan.outputOnGPU;
  j["gpu_bytes_per_token"] = plan.gpuBytesPerToken;
  j["cpu_bytes_per_token"] = plan.cpuBytesPerToken;
  j["objective"] = plan.objective;
  j["upper_bound"] = plan.upperBound;
  j["gap"] = plan.gap;
  j["proven_optimal"] = plan.provenOptimal;
  j["solver"] = plan.solver;
  j["status"] = plan.status;
  j["dp_status"] = plan.dpStatus;
  j["z3_status"] = plan.z3Status;
  j["dp_seconds"] = plan.dpSeconds;
  j["z3_seconds"] = plan.z3Seconds;
  Json &bill = j["bill"] = Json::array();
  for (const BillLine &b : plan.bill)
    bill.push_back({{"what", b.what}, {"bytes", b.bytes}});
  Json &layers = j["layers"] = Json::array();
  for (const LayerPlan &lp : plan.layers) {
    Json curve = Json::array();
    for (const auto &[rank, freq] : lp.curve)
      curve.push_back({rank, freq});
    layers.push_back({{"n_hot", lp.nHot},
                      {"hot_granules", lp.hotGranules},
                      {"n_granules", lp.nGranules},
                      {"min_granules", lp.minGranules},
                      {"coverage", lp.coverage},
                      {"attention_on_gpu", lp.attentionOnGPU},
                      {"vram_bytes", lp.vramBytes},
                      {"gpu_bytes_per_token", lp.gpuBytesPerToken},
                      {"cpu_bytes_per_token", lp.cpuBytesPerToken},
                      {"curve", std::move(curve)},
                      {"order", lp.order}});
  }
  // One line: the orders are n_layer x n_ff numbers. Doubles are written
  // in their shortest exact form, so a round trip is exact; strings from
  // the model (its name in the status) with invalid UTF-8 repaired.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

namespace {

// Reads the members of one JSON object into typed fields, each by name,
// with one error line naming the first member of the wrong type; members
// it is not asked for are ignored.
class Fields {
public:
  Fields(const Json &obj, std::string where, std::string &error)
      : obj_(obj), where_(std::move(where)), error_(error) {}

  bool str(const char *k, std::string &out) {
    return typed(k, out, &Json::is_string, "a string");
  }
  bool u64(const char *k, uint64_t &out, uint64_t max = UINT64_MAX) {
    if (!typed(k, out, &Json::is_number_unsigned, "a non-negative integer"))
      return false;
    if (out > max)
      return fail(std::string("key ") + k + ": integer " + std::to_string(out) +
                  " above the maximum " + std::to_string(max));
    return ok_;
  }
  bool u32(const char *k, uint32_t &out) {
    uint64_t v = out;
    if (!u64(k, v, UINT32_MAX))
      return false;
    out = uint32_t(v);
    return ok_;
  }
  bool number(const char *k, double &out) {
    return typed(k, out, &Json::is_number, "a number");
  }
  bool boolean(const char *k, bool &out) {
    return typed(k, out, &Json::is_boolean, "true or false");
  }
  // The member `k` when it is an array, else null (absent: an empty one).
  const Json *array(const char *k) {
    static const Json kEmpty = Json::array();
    const Json *v = find(k);
    if (!v)
      return ok_ ? &kEmpty : nullptr;
    if (!v->is_array()) {
      wrong(k, "an array");
      return nullptr;
    }
    return v;
  }
  bool fail(const std::string &what) {
    if (ok_)
      error_ = where_ + oneLine(what);
    ok_ = false;
    return false;
  }

private:
  // The member `k` into `out` when `is` says its type is right; absent, the
  // member leaves `out` as it was.
  template <class T>
  bool typed(const char *k, T &out, bool (Json::*is)() const noexcept,
             const char *expected) {
    const Json *v = find(k);
    if (!v)
      return ok_;
    if (!(v->*is)())
      return wrong(k, expected);
    out = v->get<T>();
    return ok_;
  }
  const Json *find(const char *k) {
    if (!ok_)
      return nullptr;
    auto it = obj_.find(k);
    return it == obj_.end() ? nullptr : &*it;
  }
  bool wrong(const char *k, const char *expected) {
    return fail(std::string("key ") + k + ": found " + obj_.at(k).type_name() +
                ", expected " + expected);
  }

  const Json &obj_;
  std::string where_;
  std::string &error_;
  bool ok_ = true;
};

bool readLayer(const Json &j, const std::string &where, LayerPlan &lp,
               std::string &error) {
  if (!j.is_object()) {
    error = where + "found " + j.type_name() + ", expected an object";
    return false;
  }
  Fields f(j, where, error);
  if (!f.u32("n_hot", lp.nHot) || !f.u32("hot_granules", lp.hotGranules) ||
      !f.u32("n_granules", lp.nGranules) ||
      !f.u32("min_granules", lp.minGranules) ||
      !f.number("coverage", lp.coverage) ||
      !f.boolean("attention_on_gpu", lp.attentionOnGPU) ||
      !f.u64("vram_bytes", lp.vramBytes) ||
      !f.number("gpu_bytes_per_token", lp.gpuBytesPerToken) ||
      !f.number("cpu_bytes_per_token", lp.cpuBytesPerToken))
    return false;
  const Json *curve = f.array("curve");
  const Json *order = f.array("order");
  if (!curve || !order)
    return false;
  for (const Json &pt : *curve) {
    if (!pt.is_array() || pt.size() != 2 || !pt[0].is_number_unsigned() ||
        pt[0].get<uint64_t>() > UINT32_MAX || !pt[1].is_number())
      return f.fail("key curve: a point is " +
                    pt.dump(-1, ' ', false, Json::error_handler_t::replace)
                        .substr(0, 40) +
                    ", expected [rank, frequency]");
    lp.curve.push_back({pt[0].get<uint32_t>(), pt[1].get<double>()});
  }
  lp.order.reserve(order->size());
  for (const Json &v : *order) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
      return f.fail(
          "key order: found " + std::string(v.type_name()) + " " +
          v.dump(-1, ' ', false, Json::error_handler_t::replace).substr(0, 40) +
          ", expected a neuron id");
    lp.order.push_back(v.get<uint32_t>());
  }
  return true;
}

} // namespace

bool planFromJson(const std::string &text, const std::string &name, Plan &plan,
                  std::string &error) {
  plan = Plan();
  Json j;
  try {
    // A plan nests four deep; deeper input is refused before it is built
    // (destroying a deeply nested value recurses).
    j = Json::parse(text, [](int depth, Json::parse_event_t, Json &) {
      if (depth > 64)
        throw std::length_error("nesting deeper than 64");
      return true;
    });
  } catch (const std::length_error &e) {
    error = name + ": " + e.what();
    return false;
  } catch (const Json::exception &e) {
    std::string why = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, ..."
    size_t at = why.find("] ");
    error = name + ": not a plan (invalid JSON): " +
            oneLine(at == std::string::npos ? why : why.substr(at + 2));
    return false;
  }
  if (!j.is_object()) {
    error = name + ": found " + j.type_name() + ", expected a plan object";
    return false;
  }
  std::string format;
  bool haveVersion = j.contains("version");
  Fields f(j, name + ": ", error);
  if (!f.str("format", format) || !f.u32("version", plan.version) ||
      !f.str("target", plan.target) ||
      !f.str("model_identity", plan.modelIdentity) ||
      !f.u32("n_layer", plan.nLayer) || !f.u32("n_ff", plan.nFF) ||
      !f.u32("n_ctx", plan.nCtx) || !f.u32("granule_size", plan.granuleSize) ||
      !f.u64("budget_bytes", plan.budgetBytes) ||
      !f.u64("bill_bytes", plan.billBytes) ||
      !f.boolean("output_on_gpu", plan.outputOnGPU) ||
      !f.number("gpu_bytes_per_token", plan.gpuBytesPerToken) ||
      !f.number("cpu_bytes_per_token", plan.cpuBytesPerToken) ||
      !f.number("objective", plan.objective) ||
      !f.number("upper_bound", plan.upperBound) || !f.number("gap", plan.gap) ||
      !f.boolean("proven_optimal", plan.provenOptimal) ||
      !f.str("solver", plan.solver) || !f.str("status", plan.status) ||
      !f.str("dp_status", plan.dpStatus) ||
      !f.str("z3_status", plan.z3Status) ||
      !f.number("dp_seconds", plan.dpSeconds) ||
      !f.number("z3_seconds", plan.z3Seconds))
    return false;
  const Json *billJson = f.array("bill");
  const Json *layersJson = f.array("layers");
  if (!billJson || !layersJson)
    return false;
  for (const Json &b : *billJson) {
    BillLine line;
    if (!b.is_object())
      return f.fail("key bill: found " + std::string(b.type_name()) +
                    ", expected {\"what\", \"bytes\"} objects");
    Fields bf(b, name + ": bill: ", error);
    if (!bf.str("what", line.what) || !bf.u64("bytes", line.bytes))
      return false;
    plan.bill.push_back(std::move(line));
  }
  if (layersJson->size() > 100000)
    return f.fail("key layers: more than 100000 layers");
  for (size_t l = 0; l < layersJson->size(); ++l) {
    plan.layers.emplace_back();
    if (!readLayer((*layersJson)[l],
                   name + ": layers[" + std::to_string(l) + "]: ",
                   plan.layers.back(), error))
      return false;
  }
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
