// The placement plan: what the solver decided, what it costs and how sure it
// is. Written as JSON for later pipeline stages and for people (`pinferc
// plan`), printed as a table, drawn as an SVG.
#pragma once

#include "compiler/placement/CostModel.h"

#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace pinfer {

struct LayerPlan {
  uint32_t nHot = 0;        // neurons on the GPU: order[0, nHot)
  uint32_t hotGranules = 0;
  uint32_t nGranules = 0;
  uint32_t minGranules = 0; // the "zero or at least" rule in force
  double coverage = 0;      // share of the layer's firings the GPU serves
  bool attentionOnGPU = false;
  uint64_t vramBytes = 0;   // hot rows + index + predictor (+ attention, KV)
  double gpuBytesPerToken = 0; // expected FFN/attention bytes read per token
  double cpuBytesPerToken = 0;
  std::vector<uint32_t> order; // neuron ids, hottest first
  // Sorted firing-frequency curve, at most ~64 (rank, frequency) points,
  // kept so a report can be drawn from the plan alone.
  std::vector<std::pair<uint32_t, double>> curve;
};

struct Plan {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  std::string target;
  std::string modelIdentity;
  uint32_t nLayer = 0;
  uint32_t nFF = 0;
  uint32_t nCtx = 0;
  uint32_t granuleSize = 0;
  uint64_t budgetBytes = 0;
  std::vector<LayerPlan> layers;
  bool outputOnGPU = false;
  std::vector<BillLine> bill; // everything on the GPU, line by line
  uint64_t billBytes = 0;
  double gpuBytesPerToken = 0; // expected, whole model
  double cpuBytesPerToken = 0;
  double objective = 0;  // expected GPU bytes per token from optional parts
  double upperBound = 0; // no plan can exceed this
  double gap = 0;        // (upperBound - objective) / upperBound
  bool provenOptimal = false;
  std::string solver;    // "dp" or "z3": whose answer this is
  std::string dpStatus;  // one line each
  std::string z3Status;
  std::string status;    // the summary line
  double dpSeconds = 0;
  double z3Seconds = 0;
};

// Builds the problem, runs the DP, then (if enabled and the target has a
// GPU) Z3 seeded with the DP answer, and keeps the better answer.
bool planPlacement(const Trace &trace, const ModelShape &shape,
                   const Target &target, const PlacementOptions &opts,
                   Plan &plan, std::string &error);

// Turns a solved assignment into a Plan (used by planPlacement; public so
// tests can build plans from chosen assignments).
Plan makePlan(const PlacementInput &in, const Assignment &a,
              const std::string &target);

// The plan of a target without a GPU, or of a budget that holds no neuron:
// every layer's neurons in id order, all on the CPU, attention and the head
// too.
Plan coldPlan(uint32_t nLayer, uint32_t nFF, const std::string &target,
              const std::string &modelIdentity);

std::string planToJson(const Plan &plan);
bool planFromJson(const std::string &text, const std::string &name, Plan &plan,
                  std::string &error);
bool writePlanJson(const std::string &path, const Plan &plan,
                   std::string &error);
bool readPlanJson(const std::string &path, Plan &plan, std::string &error);

// Seconds a token is expected to take under `plan` on `target`: its weight
// bytes per token at the target table's bandwidths, plus the launches and
// the wait of each layer split between the devices. A memory-bound estimate
// from published figures, not a measurement. The solver's objective charges
// the same launches and waits (LayerProblem::splitCost), so that the plan it
// picks is the one this rates fastest.
double expectedSecondsPerToken(const Plan &plan, const Target &target);

// Layers x (hot neurons, granules, coverage, attention), then the bill.
void printPlanTable(std::ostream &os, const Plan &plan);
// Why a layer of `plan` got no GPU neuron (its nHot is 0), in one clause.
std::string noGpuNeuronReason(const Plan &plan, const LayerPlan &lp);

// Standalone SVG: per layer the sorted firing frequency on a log scale with
// the GPU/CPU cut, and a stacked bar of the VRAM bill.
std::string planToSvg(const Plan &plan);
bool writePlanSvg(const std::string &path, const Plan &plan,
                  std::string &error);

} // namespace pinfer
