// Exact dynamic programme over the separable core of the placement problem:
// a multiple-choice knapsack whose groups are each layer's granule prefix
// with its attention (together, as the granule minimum depends on where the
// attention runs) and each global optional tensor. VRAM is counted in
// units; when a unit divides every size (the common case in tests, and
// whenever the gcd is coarse enough) the answer is exact, otherwise sizes are
// rounded up (the answer always fits) and a second pass with sizes rounded
// down bounds the optimum from above.
#include "compiler/placement/PlacementProblem.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace pinfer {

namespace {

// A layer's FFN bill (hotLayerBytes) with k granules whose bytes sum to
// `granules`, for callers that keep the prefix sums.
uint64_t hotBytesOf(const LayerProblem &lp, uint32_t k, uint64_t granules) {
  if (k == 0)
    return 0;
  uint64_t total = lp.hotFixedBytes + granules;
  if (k == lp.granules.size())
    total -= std::min(total, lp.wholeSavingBytes);
  return total;
}

// A layer's utility (layerUtility) with k granules whose utilities sum to
// `granules`.
double utilityOf(const LayerProblem &lp, uint32_t k, bool attention,
                 double granules) {
  attention = attention && lp.hasAttention;
  double u = granules;
  if (attention)
    u += lp.attention.utility;
  if ((k > 0 || attention) && !(attention && k == lp.granules.size()))
    u -= lp.splitCost;
  if (k > 0)
    u -= lp.sourceReadBytes;
  if (k > 0 && k < lp.granules.size())
    u -= lp.splitReadCost;
  return u;
}

} // namespace

uint64_t hotLayerBytes(const LayerProblem &lp, uint32_t k) {
  k = std::min<uint32_t>(k, uint32_t(lp.granules.size()));
  uint64_t granules = 0;
  for (uint32_t g = 0; g < k; ++g)
    granules += lp.granules[g].bytes;
  return hotBytesOf(lp, k, granules);
}

uint64_t assignmentBytes(const PlacementProblem &p, const Assignment &a) {
  uint64_t total = p.mandatoryBytes();
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const LayerProblem &lp = p.layers[l];
    total += hotLayerBytes(lp, a.hotGranules[l]);
    if (lp.hasAttention && a.attention[l])
      total += lp.attention.bytes;
  }
  for (size_t j = 0; j < p.globals.size(); ++j)
    if (a.globals[j])
      total += p.globals[j].bytes;
  return total;
}

double layerUtility(const LayerProblem &lp, uint32_t k, bool attention) {
  k = std::min<uint32_t>(k, uint32_t(lp.granules.size()));
  double granules = 0;
  for (uint32_t g = 0; g < k; ++g)
    granules += lp.granules[g].utility;
  return utilityOf(lp, k, attention, granules);
}

double assignmentUtility(const PlacementProblem &p, const Assignment &a) {
  double u = 0;
  for (size_t l = 0; l < p.layers.size(); ++l)
    u += layerUtility(p.layers[l], a.hotGranules[l], a.attention[l]);
  for (size_t j = 0; j < p.globals.size(); ++j)
    if (a.globals[j])
      u += p.globals[j].utility;
  return u;
}

uint32_t minHotGranules(const LayerProblem &lp, bool attentionOnGpu) {
  return lp.hasAttention && attentionOnGpu
             ? 1
             : std::max<uint32_t>(1, lp.minGranules);
}

bool assignmentFeasible(const PlacementProblem &p, const Assignment &a,
                        std::string &why) {
  if (a.hotGranules.size() != p.layers.size() ||
      a.attention.size() != p.layers.size() ||
      a.globals.size() != p.globals.size()) {
    why = "assignment does not match the problem's shape";
    return false;
  }
  uint32_t gpuLayers = 0;
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const LayerProblem &lp = p.layers[l];
    uint32_t k = a.hotGranules[l];
    if (k > lp.granules.size()) {
      why = "layer " + std::to_string(l) + " has " + std::to_string(k) +
            " hot granules of " + std::to_string(lp.granules.size());
      return false;
    }
    if (k > 0 && k < minHotGranules(lp, a.attention[l])) {
      why = "layer " + std::to_string(l) + " has " + std::to_string(k) +
            " hot granules, below its minimum " +
            std::to_string(lp.minGranules) + " with its attention on the CPU";
      return false;
    }
    if (a.attention[l] && !lp.hasAttention) {
      why = "layer " + std::to_string(l) + " has no optional attention";
      return false;
    }
    gpuLayers += k > 0;
  }
  if (p.maxGpuLayers && gpuLayers > p.maxGpuLayers) {
    why = std::to_string(gpuLayers) + " layers use the GPU, more than " +
          std::to_string(p.maxGpuLayers);
    return false;
  }
  uint64_t bytes = assignmentBytes(p, a);
  if (bytes > p.budget) {
    why = "bill " + std::to_string(bytes) + " bytes exceeds the budget " +
          std::to_string(p.budget);
    return false;
  }
  return true;
}

namespace {

// One group of the multiple-choice knapsack: option 0 costs and yields
// nothing; option i > 0 has an exact size and a value; options are sorted
// by size.
struct Group {
  size_t layer;  // owning layer, or the global index for globals
  int kind;      // 0 = FFN prefix, 1 = FFN prefix and attention, 2 = global
  std::vector<uint32_t> choice; // option -> granules (FFN, layer) or 1
  std::vector<uint64_t> bytes;
  std::vector<double> value;
  std::vector<bool> attention; // kind 1: option -> attention on the GPU
};

// A layer's FFN prefixes (kind 0), or with optional attention both
// together (kind 1): the granule minimum holds only while the attention
// stays on the CPU, which couples the two.
Group layerGroup(size_t l, const LayerProblem &lp) {
  struct Option {
    uint32_t k;
    bool attn;
    uint64_t bytes;
    double value;
  };
  std::vector<Option> opts;
  for (int attn = 0; attn <= int(lp.hasAttention); ++attn) {
    const uint64_t bytes = attn ? lp.attention.bytes : 0;
    if (attn)
      opts.push_back({0, true, bytes, utilityOf(lp, 0, true, 0)});
    uint64_t granuleBytes = 0;
    double granuleUtility = 0;
    for (uint32_t k = 1; k <= lp.granules.size(); ++k) {
      granuleBytes += lp.granules[k - 1].bytes;
      granuleUtility += lp.granules[k - 1].utility;
      if (k >= minHotGranules(lp, attn))
        opts.push_back({k, bool(attn), bytes + hotBytesOf(lp, k, granuleBytes),
                        utilityOf(lp, k, attn, granuleUtility)});
    }
  }
  std::stable_sort(
      opts.begin(), opts.end(),
      [](const Option &a, const Option &b) { return a.bytes < b.bytes; });
  Group g{l, lp.hasAttention ? 1 : 0, {0}, {0}, {0}, {false}};
  for (const Option &o : opts) {
    g.choice.push_back(o.k);
    g.bytes.push_back(o.bytes);
    g.value.push_back(o.value);
    g.attention.push_back(o.attn);
  }
  return g;
}

std::vector<Group> makeGroups(const PlacementProblem &p) {
  std::vector<Group> groups;
  for (size_t l = 0; l < p.layers.size(); ++l) {
    Group g = layerGroup(l, p.layers[l]);
    if (g.choice.size() > 1)
      groups.push_back(std::move(g));
  }
  for (size_t j = 0; j < p.globals.size(); ++j)
    groups.push_back(
        {j, 2, {0, 1}, {0, p.globals[j].bytes}, {0, p.globals[j].utility}});
  return groups;
}

// Runs the programme with option sizes converted to units by `toUnits`;
// fills `pick` (per group, the chosen option) and returns the value.
template <typename ToUnits>
double runDP(const std::vector<Group> &groups, uint64_t capUnits,
             ToUnits toUnits, std::vector<uint32_t> &pick) {
  size_t C = size_t(capUnits) + 1;
  std::vector<double> cur(C, 0.0), next(C);
  // [group][capacity] -> option, for the walk back
  std::vector<std::vector<uint16_t>> choice(groups.size(),
                                            std::vector<uint16_t>(C, 0));
  std::vector<uint64_t> units;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const Group &g = groups[gi];
    units.resize(g.bytes.size());
    for (size_t o = 0; o < g.bytes.size(); ++o)
      units[o] = toUnits(g.bytes[o]);
    std::vector<uint16_t> &ch = choice[gi];
    for (size_t c = 0; c < C; ++c) {
      double best = cur[c];
      uint16_t bo = 0;
      for (size_t o = 1; o < units.size(); ++o) {
        if (units[o] > c)
          break; // sizes grow with the option index
        double v = cur[c - units[o]] + g.value[o];
        if (v > best) {
          best = v;
          bo = uint16_t(o);
        }
      }
      next[c] = best;
      ch[c] = bo;
    }
    cur.swap(next);
  }
  pick.assign(groups.size(), 0);
  size_t c = C - 1;
  for (size_t gi = groups.size(); gi-- > 0;) {
    uint16_t o = choice[gi][c];
    pick[gi] = o;
    c -= size_t(toUnits(groups[gi].bytes[o]));
  }
  return cur[C - 1];
}

Assignment toAssignment(const PlacementProblem &p,
                        const std::vector<Group> &groups,
                        const std::vector<uint32_t> &pick) {
  Assignment a;
  a.hotGranules.assign(p.layers.size(), 0);
  a.attention.assign(p.layers.size(), false);
  a.globals.assign(p.globals.size(), false);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const Group &g = groups[gi];
    uint32_t v = g.choice[pick[gi]];
    if (g.kind == 2)
      a.globals[g.layer] = v != 0;
    else
      a.hotGranules[g.layer] = v;
    if (g.kind == 1)
      a.attention[g.layer] = g.attention[pick[gi]];
  }
  return a;
}

// Spends what rounding left over: adds the step with the best utility per
// byte that still fits, exactly in bytes, until none does. Never starts a
// new GPU layer beyond maxGpuLayers.
void greedyFill(const PlacementProblem &p, Assignment &a) {
  uint64_t used = assignmentBytes(p, a);
  uint32_t gpuLayers = 0;
  for (uint32_t k : a.hotGranules)
    gpuLayers += k > 0;
  // Per layer the sums of its granules on the GPU, kept as steps are taken
  // (each step then costs the same whatever the layer's granule count).
  const size_t nLayer = p.layers.size();
  std::vector<uint64_t> sumBytes(nLayer, 0);
  std::vector<double> sumUtility(nLayer, 0);
  for (size_t l = 0; l < nLayer; ++l)
    for (uint32_t g = 0; g < a.hotGranules[l]; ++g) {
      sumBytes[l] += p.layers[l].granules[g].bytes;
      sumUtility[l] += p.layers[l].granules[g].utility;
    }
  // What the next step of layer l would make k and its sums.
  struct Step {
    uint32_t k = 0;
    uint64_t bytes = 0;
    double utility = 0;
  };
  auto nextStep = [&](size_t l) {
    const LayerProblem &lp = p.layers[l];
    Step s{a.hotGranules[l], sumBytes[l], sumUtility[l]};
    const uint32_t to =
        s.k ? s.k + 1 : minHotGranules(lp, a.attention[l]);
    for (; s.k < to && s.k < lp.granules.size(); ++s.k) {
      s.bytes += lp.granules[s.k].bytes;
      s.utility += lp.granules[s.k].utility;
    }
    if (s.k < to)
      s.k = uint32_t(lp.granules.size()) + 1; // no such step
    return s;
  };
  for (;;) {
    double bestRatio = -1;
    int bestKind = -1;
    size_t bestIndex = 0;
    uint64_t bestBytes = 0;
    auto consider = [&](int kind, size_t index, uint64_t bytes, double util) {
      if (bytes > p.budget - used || util <= 0)
        return;
      double ratio = util / double(std::max<uint64_t>(bytes, 1));
      if (ratio > bestRatio) {
        bestRatio = ratio;
        bestKind = kind;
        bestIndex = index;
        bestBytes = bytes;
      }
    };
    for (size_t l = 0; l < nLayer; ++l) {
      const LayerProblem &lp = p.layers[l];
      const uint32_t k = a.hotGranules[l];
      const bool attn = a.attention[l];
      // Each step's bytes and utility as the layer's before and after: the
      // last granule brings the whole layer's saving (which may leave it
      // smaller than before) and, with its attention there, spares its
      // round trip; the first part there costs it.
      const double now = utilityOf(lp, k, attn, sumUtility[l]);
      const uint64_t nowBytes = hotBytesOf(lp, k, sumBytes[l]);
      const bool capped =
          k == 0 && p.maxGpuLayers && gpuLayers >= p.maxGpuLayers;
      const Step next = nextStep(l);
      if (!capped && next.k <= lp.granules.size()) {
        const uint64_t bytes = hotBytesOf(lp, next.k, next.bytes);
        consider(0, l, bytes > nowBytes ? bytes - nowBytes : 0,
                 utilityOf(lp, next.k, attn, next.utility) - now);
      }
      if (lp.hasAttention && !attn)
        consider(1, l, lp.attention.bytes,
                 utilityOf(lp, k, true, sumUtility[l]) - now);
    }
    for (size_t j = 0; j < p.globals.size(); ++j)
      if (!a.globals[j])
        consider(2, j, p.globals[j].bytes, p.globals[j].utility);
    if (bestKind < 0)
      return;
    if (bestKind == 0) {
      const LayerProblem &lp = p.layers[bestIndex];
      uint32_t &k = a.hotGranules[bestIndex];
      const uint64_t before = hotBytesOf(lp, k, sumBytes[bestIndex]);
      const Step next = nextStep(bestIndex);
      gpuLayers += k == 0;
      k = next.k;
      sumBytes[bestIndex] = next.bytes;
      sumUtility[bestIndex] = next.utility;
      // The saving of a whole layer may make the step shrink the bill.
      used = used - before + hotBytesOf(lp, k, next.bytes);
    } else {
      if (bestKind == 1)
        a.attention[bestIndex] = true;
      else
        a.globals[bestIndex] = true;
      used += bestBytes;
    }
  }
}

// Bisects a penalty per GPU layer until the DP's answer uses at most
// maxGpuLayers layers. The bisection runs on a table 8x coarser (it only
// looks for the penalty); the final answer is solved at full resolution.
bool lagrangianLayerLimit(const PlacementProblem &p,
                          const std::vector<Group> &groups, uint64_t capUnits,
                          uint64_t unit, Assignment &out) {
  uint64_t free = capUnits * unit;
  uint64_t coarseUnit = capUnits > 8192 ? unit * 8 : unit;
  uint64_t coarseCap = free / coarseUnit;
  auto solve = [&](double penalty, uint64_t u, uint64_t cap, Assignment &a) {
    std::vector<Group> pen = groups;
    for (Group &g : pen)
      if (g.kind != 2)
        for (size_t o = 1; o < g.value.size(); ++o)
          if (g.choice[o] > 0)
            g.value[o] -= penalty;
    std::vector<uint32_t> pick;
    runDP(pen, cap, [u](uint64_t b) { return (b + u - 1) / u; }, pick);
    a = toAssignment(p, groups, pick);
    uint32_t n = 0;
    for (uint32_t k : a.hotGranules)
      n += k > 0;
    return n;
  };
  double hi = 0;
  for (const Group &g : groups)
    if (g.kind != 2)
      hi = std::max(hi, *std::max_element(g.value.begin(), g.value.end()));
  hi = hi * 1.01 + 1; // above every layer's value: no GPU layer is worth it
  double lo = 0;
  Assignment a;
  for (int it = 0; it < 16; ++it) {
    double mid = 0.5 * (lo + hi);
    if (solve(mid, coarseUnit, coarseCap, a) <= p.maxGpuLayers)
      hi = mid;
    else
      lo = mid;
  }
  // Full resolution may pick a layer or two more at the same penalty.
  for (int it = 0; it < 8; ++it, hi = hi * 1.1 + 1)
    if (solve(hi, unit, capUnits, a) <= p.maxGpuLayers) {
      out = a;
      return true;
    }
  return false;
}

} // namespace

bool solveDP(const PlacementProblem &p, DPResult &out, std::string &error) {
  auto start = std::chrono::steady_clock::now();
  uint64_t fixed = p.mandatoryBytes();
  if (fixed > p.budget) {
    error = "mandatory VRAM parts (" + std::to_string(fixed) +
            " bytes) exceed the budget (" + std::to_string(p.budget) +
            " bytes)";
    return false;
  }
  uint64_t free = p.budget - fixed;
  std::vector<Group> groups = makeGroups(p);

  // The unit: the gcd of every size when that keeps the table small enough,
  // else the smallest unit keeping the work near kWork cell updates.
  constexpr double kWork = 4e8;
  constexpr uint64_t kMaxCells = 1ull << 24;
  uint64_t g = 0;
  double options = 0;
  for (const Group &gr : groups) {
    for (uint64_t b : gr.bytes)
      g = std::gcd(g, b);
    options += double(gr.bytes.size());
  }
  if (g == 0)
    g = 1;
  // Work grows with cells x options, the walk-back table with cells x groups
  // (2 bytes each, kept under ~200 MB).
  double byWork = kWork / std::max(1.0, options);
  double byMemory = 1e8 / double(std::max<size_t>(1, groups.size()));
  uint64_t maxCells = uint64_t(std::max(
      1024.0, std::min({double(kMaxCells), byWork, byMemory})));
  uint64_t unit = g;
  bool exact = true;
  if (free / unit > maxCells) {
    unit = (free + maxCells - 1) / maxCells;
    exact = false;
  }
  uint64_t capUnits = free / unit;

  std::vector<uint32_t> pick;
  runDP(groups, capUnits,
        [unit](uint64_t b) { return (b + unit - 1) / unit; }, pick);
  Assignment a = toAssignment(p, groups, pick);
  if (assignmentBytes(p, a) > p.budget) {
    error = "internal: the DP answer does not fit the budget";
    return false;
  }
  double upper;
  if (exact) {
    upper = assignmentUtility(p, a);
  } else {
    std::vector<uint32_t> relaxed;
    upper = runDP(groups, capUnits, [unit](uint64_t b) { return b / unit; },
                  relaxed);
  }

  // maxGpuLayers is not separable. Two answers that respect it: the DP's
  // answer without its least useful GPU layers, and a Lagrangian one (every
  // GPU layer pays a penalty, raised by bisection until few enough layers
  // remain). The better of the two, once refilled, is kept.
  bool repaired = false;
  uint32_t gpuLayers = 0;
  for (uint32_t k : a.hotGranules)
    gpuLayers += k > 0;
  if (p.maxGpuLayers && gpuLayers > p.maxGpuLayers) {
    repaired = true;
    Assignment dropped = a;
    std::vector<std::pair<double, size_t>> used;
    for (size_t l = 0; l < p.layers.size(); ++l)
      if (a.hotGranules[l]) {
        double u = 0;
        for (uint32_t k = 0; k < a.hotGranules[l]; ++k)
          u += p.layers[l].granules[k].utility;
        used.push_back({u, l});
      }
    std::sort(used.begin(), used.end());
    for (size_t i = 0; used.size() - i > p.maxGpuLayers; ++i)
      dropped.hotGranules[used[i].second] = 0;
    greedyFill(p, dropped);
    a = dropped;

    Assignment penalised;
    if (lagrangianLayerLimit(p, groups, capUnits, unit, penalised)) {
      greedyFill(p, penalised);
      if (assignmentUtility(p, penalised) > assignmentUtility(p, a))
        a = penalised;
    }
  }
  greedyFill(p, a);
  std::string why;
  if (!assignmentFeasible(p, a, why)) {
    error = "internal: the DP answer is infeasible: " + why;
    return false;
  }
  out.best = a;
  out.value = assignmentUtility(p, a);
  out.upperBound = std::max(upper, out.value);
  out.unitBytes = unit;
  out.exact = exact;
  out.optimal = !repaired && out.value >= out.upperBound * (1 - 1e-12);
  out.seconds = std::chrono::duration<double>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  return true;
}

} // namespace pinfer
