// The plan as a text table: what `pinferc plan` prints to the terminal.
#include "compiler/placement/Plan.h"

#include <cstdio>
#include <string>
#include <ostream>

namespace pinfer {

// Why layer `lp` got no GPU neuron, from what the plan records.
std::string noGpuNeuronReason(const Plan &plan, const LayerPlan &lp) {
  if (lp.attentionOnGPU)
    return "the budget went to what saves more CPU time per byte (other "
           "layers' neurons, attention, the output head)";
  // Another layer wholly on the GPU with its attention pays no round trip:
  // this one would have too, had the budget held all of it.
  bool wholeElsewhere = false;
  for (const LayerPlan &other : plan.layers)
    wholeElsewhere |= other.attentionOnGPU && other.nHot == plan.nFF;
  if (lp.minGranules > lp.nGranules && plan.budgetBytes > 0 && wholeElsewhere)
    return "a part of it would save the CPU less time than the layer's GPU "
           "round trip costs, and the budget had no room left for the whole "
           "layer with its attention, which pays none (a larger "
           "--vram-budget would place it)";
  if (lp.minGranules > lp.nGranules)
    return lp.minGranules == lp.nGranules + 1 && plan.budgetBytes == 0
               ? "the target has no GPU"
               : "even all " + std::to_string(plan.nFF) +
                     " of its neurons would save the CPU less time than the "
                     "layer's GPU round trip costs (the cost model's "
                     "per-layer overhead; --min-granules 1 splits it anyway)";
  return "the budget went to what saves more CPU time per byte (other "
         "layers' neurons, attention, the output head; at least " +
         std::to_string(lp.minGranules * plan.granuleSize) +
         " neurons would have to move for the layer to pay)";
}

double expectedSecondsPerToken(const Plan &plan, const Target &target) {
  double secs = 0;
  if (target.host.memBandwidthGBs > 0)
    secs += plan.cpuBytesPerToken / (target.host.memBandwidthGBs * 1e9);
  if (target.gpuBandwidthGBs > 0)
    secs += plan.gpuBytesPerToken / (target.gpuBandwidthGBs * 1e9);
  // Each layer with a GPU part but not wholly there: its kernels (two at
  // least), launched while the CPU waits, and one wait. A whole layer's
  // launches queue behind the GPU's work. The solver's objective charges
  // the same (LayerProblem::splitCost).
  for (const LayerPlan &lp : plan.layers)
    if ((lp.nHot || lp.attentionOnGPU) &&
        !(lp.attentionOnGPU && lp.nHot == plan.nFF))
      secs += (2 * target.launchUs + target.syncUs) * 1e-6;
  return secs;
}

void printPlanTable(std::ostream &os, const Plan &plan) {
  char line[256];
  os << "placement for target " << plan.target << ": budget "
     << formatBytes(plan.budgetBytes) << ", n_ctx " << plan.nCtx
     << ", granules of " << plan.granuleSize << " neurons\n";
  os << "status: " << plan.status << "\n";
  os << "  dp: " << plan.dpStatus << "\n";
  os << "  z3: " << plan.z3Status << "\n";
  std::snprintf(line, sizeof line, "%5s %15s %9s %8s %4s %10s %10s %10s\n",
                "layer", "hot/n_ff", "granules", "coverage", "attn", "VRAM",
                "GPU B/tok", "CPU B/tok");
  os << line;
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    const LayerPlan &lp = plan.layers[l];
    char hot[32], gran[32];
    std::snprintf(hot, sizeof hot, "%u/%u", lp.nHot, plan.nFF);
    std::snprintf(gran, sizeof gran, "%u/%u", lp.hotGranules, lp.nGranules);
    std::snprintf(line, sizeof line,
                  "%5zu %15s %9s %7.1f%% %4s %10s %10s %10s\n", l, hot, gran,
                  100 * lp.coverage, lp.attentionOnGPU ? "gpu" : "cpu",
                  formatBytes(lp.vramBytes).c_str(),
                  formatBytes(uint64_t(lp.gpuBytesPerToken)).c_str(),
                  formatBytes(uint64_t(lp.cpuBytesPerToken)).c_str());
    os << line;
  }
  for (size_t l = 0; l < plan.layers.size(); ++l)
    if (plan.layers[l].nHot == 0)
      os << "layer " << l << " has no GPU neuron: "
         << noGpuNeuronReason(plan, plan.layers[l]) << "\n";
  double all = plan.gpuBytesPerToken + plan.cpuBytesPerToken;
  std::snprintf(line, sizeof line, " (%.1f%% on the GPU)\n",
                all > 0 ? 100 * plan.gpuBytesPerToken / all : 0.0);
  os << "expected weight bytes read per token: GPU "
     << formatBytes(uint64_t(plan.gpuBytesPerToken)) << ", CPU "
     << formatBytes(uint64_t(plan.cpuBytesPerToken)) << line;
  os << "output head: " << (plan.outputOnGPU ? "GPU" : "CPU") << "\n";
  std::string unknown;
  if (const Target *t = findTarget(plan.target, unknown)) {
    double secs = expectedSecondsPerToken(plan, *t);
    if (secs > 0) {
      std::snprintf(line, sizeof line,
                    "expected speed: about %.1f tokens/s on %s (weight bytes "
                    "at the target table's bandwidths; an estimate)\n",
                    1.0 / secs, t->name.c_str());
      os << line;
    }
  }
  os << "VRAM bill:\n";
  for (const BillLine &b : plan.bill) {
    std::snprintf(line, sizeof line, "  %-44s %12s\n", b.what.c_str(),
                  formatBytes(b.bytes).c_str());
    os << line;
  }
  std::snprintf(line, sizeof line, "  %-44s %12s of %s\n", "total",
                formatBytes(plan.billBytes).c_str(),
                formatBytes(plan.budgetBytes).c_str());
  os << line;
}

} // namespace pinfer
