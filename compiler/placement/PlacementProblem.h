// The placement problem in solver terms, independent of models and traces:
// per layer a prefix of granules (hottest first) may go to the GPU, plus
// whole tensors that may go there, all under one exact VRAM byte budget. The
// cost model (CostModel.h) builds it; DPSolver.cpp and Z3Solver.cpp solve it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pinfer {

// G neurons of one layer, adjacent in the layer's hottest-first order.
struct Granule {
  uint32_t firstRank = 0; // index into the layer's sorted order
  uint32_t count = 0;     // neurons (the last granule may be partial)
  uint64_t bytes = 0;     // VRAM: gate+up+down rows + neuron index entries
  double utility = 0;     // expected bytes of these rows read per token
  double firings = 0;     // expected firings per token (sum of frequencies)
};

// A whole tensor (or group of tensors placed together) that may live on the
// GPU; utility is the bytes it makes the GPU read per token.
struct OptionalItem {
  std::string name;
  uint64_t bytes = 0;
  double utility = 0;
};

struct LayerProblem {
  std::vector<Granule> granules; // hottest first
  // "Zero or at least minGranules" while the layer's attention is on the
  // CPU: a thinner GPU slice costs more in launches and synchronisation than
  // it saves. A value above the granule count keeps such a layer's FFN on
  // the CPU. With the attention on the GPU the layer crosses to the GPU
  // anyway, so any count goes (and all of them leave it no CPU step).
  uint32_t minGranules = 1;
  // Charged once when at least one granule is on the GPU (the layer's
  // predictor, which must sit next to the GPU half it gates).
  uint64_t hotFixedBytes = 0;
  std::string hotFixedName;
  // Billed less when every granule is on the GPU: a dense layer wholly
  // there keeps the source's down matrix, smaller than the neurons' f32
  // down rows its granules are billed at (runtime/vram_bill.h,
  // denseGpuKeepsSourceDown). At most the granules' bytes.
  uint64_t wholeSavingBytes = 0;
  // The same layers read less per token where their FFN is wholly on one
  // device: the source's down matrix where the CPU or the GPU has every
  // neuron, the neurons' f32 down rows on both sides where the layer is
  // split. Granules' utilities count f32 rows, so a layer with any granule
  // on the GPU is charged `sourceReadBytes` (what a token's CPU read of
  // the whole layer was, less what it would have been at f32), and one
  // split between the devices `splitReadCost` more (the GPU reads its f32
  // rows: sourceReadBytes x cpu / (gpu - cpu) bandwidth in the utility's
  // unit). Both 0 where no layer keeps the source's rows.
  double sourceReadBytes = 0;
  double splitReadCost = 0;
  bool hasAttention = false; // attention is an optional item of this layer
  OptionalItem attention;
  // What a layer with a part on the GPU but not wholly there (its attention
  // and every granule) costs per token, in the utility's unit (the bytes
  // the GPU would read in that time instead of the CPU): the launches the
  // CPU waits on and the wait for the other device. Without it a layer
  // could take its attention to the GPU for less than its round trip
  // costs. (A whole layer's launches queue behind the GPU's work.)
  double splitCost = 0;
};

struct BillLine {
  std::string what;
  uint64_t bytes = 0;
};

// The bill line of the VRAM the CUDA context takes before any weight: a
// fixed reserve, drawn apart in the plan picture.
inline constexpr const char *kContextReserveBill = "CUDA context reserve";

struct PlacementProblem {
  std::vector<LayerProblem> layers;
  std::vector<OptionalItem> globals; // e.g. the output head
  std::vector<BillLine> mandatory;   // always on the GPU when it is used
  uint64_t budget = 0;               // VRAM bytes available in all
  // Constraint only Z3 carries (0 = none): at most this many layers may run
  // any FFN part on the GPU, bounding the CPU/GPU synchronisations per token.
  uint32_t maxGpuLayers = 0;

  uint64_t mandatoryBytes() const {
    uint64_t s = 0;
    for (const BillLine &b : mandatory)
      s += b.bytes;
    return s;
  }
};

// One choice: how many granules of each layer, which optional items.
struct Assignment {
  std::vector<uint32_t> hotGranules; // [n_layer]
  std::vector<bool> attention;       // [n_layer]
  std::vector<bool> globals;         // [globals]
};

// The VRAM of layer `lp`'s FFN with its first `k` granules on the GPU: the
// granules, what a layer with any pays once, less the saving of a whole
// layer.
uint64_t hotLayerBytes(const LayerProblem &lp, uint32_t k);
// The utility of layer `lp` with its first `k` granules and, if `attention`,
// its attention on the GPU, less what that costs it (splitCost).
double layerUtility(const LayerProblem &lp, uint32_t k, bool attention);
// Exact bill of an assignment in bytes, mandatory parts included.
uint64_t assignmentBytes(const PlacementProblem &p, const Assignment &a);
// Objective value of an assignment (expected GPU bytes read per token).
double assignmentUtility(const PlacementProblem &p, const Assignment &a);
// The fewest granules layer `l` may put on the GPU once it puts any: its
// minimum, or 1 when its attention is on the GPU in `a`.
uint32_t minHotGranules(const LayerProblem &lp, bool attentionOnGpu);
// True when `a` meets every constraint (budget, minimums, maxGpuLayers);
// otherwise `why` says which one fails.
bool assignmentFeasible(const PlacementProblem &p, const Assignment &a,
                        std::string &why);

struct DPResult {
  Assignment best;       // feasible, checked exactly in bytes
  double value = 0;      // its utility
  double upperBound = 0; // no feasible assignment of the separable core
                         // (maxGpuLayers ignored) is worth more
  uint64_t unitBytes = 1; // VRAM discretisation step
  bool exact = false;     // every size was a multiple of the unit
  bool optimal = false;   // value is proven optimal for the whole problem
  double seconds = 0;
};

// Exact dynamic programme over the separable core (everything but
// maxGpuLayers). Sizes are rounded up to a unit so the answer always fits;
// the same programme with sizes rounded down gives the upper bound. When
// maxGpuLayers is set and violated, the better of a greedy repair and a
// Lagrangian answer (a bisected penalty per GPU layer) is returned.
bool solveDP(const PlacementProblem &p, DPResult &out, std::string &error);

enum class Z3Outcome {
  Optimal,  // Z3 proved optimality (at the integer-scaled utility precision)
  Feasible, // Z3 stopped at its own timeout with a solution
  Timeout,  // killed at the hard deadline or no solution in time
  Failed,   // the child crashed or Z3 reported an error
};

struct Z3Result {
  Z3Outcome outcome = Z3Outcome::Failed;
  Assignment best; // valid for Optimal and Feasible
  double value = 0;
  double seconds = 0;
  std::string detail; // one line: why it failed, Z3's reason for unknown
};

// Solves with Z3's Optimize (chained-boolean MaxSAT encoding) in a forked
// child killed after `deadlineSeconds` of wall-clock time. `seed`, when
// feasible, is asserted as a lower bound on the objective.
bool solveZ3(const PlacementProblem &p, const Assignment *seed,
             double deadlineSeconds, Z3Result &out, std::string &error);

} // namespace pinfer
