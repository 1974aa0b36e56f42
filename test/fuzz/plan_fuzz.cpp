// libFuzzer target for the plan reader (compiler/placement/Plan.h,
// planFromJson, which readPlanJson runs over the file and `pinferc --plan`
// trusts after checkPlanFits). Built with clang's
// -fsanitize=fuzzer,address,undefined: any out-of-bounds read, overflow,
// oversized allocation, unbounded recursion or undefined behaviour on
// arbitrary text is a crash. A refusal must be one line naming the input; an
// accepted plan must hold what the reader promises (n_layer layers, each
// order a permutation of 0..n_ff-1), print as a table and an SVG, and
// survive planToJson and a second read: the JSON of the second read equals
// that of the first.
#include "compiler/placement/Plan.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

using namespace pinfer;

namespace {

volatile uint64_t gSink; // keeps the walk from being optimised away

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  std::string err;
  Plan plan;
  if (!planFromJson(text, "fuzz.plan", plan, err)) {
    if (err.empty() || err.find('\n') != std::string::npos ||
        err.compare(0, 11, "fuzz.plan: ") != 0)
      __builtin_trap();
    return 0;
  }
  if (plan.version != Plan::kVersion || plan.layers.size() != plan.nLayer)
    __builtin_trap();
  std::vector<uint8_t> seen;
  for (const LayerPlan &lp : plan.layers) {
    if (lp.order.size() != plan.nFF || lp.nHot > plan.nFF ||
        lp.hotGranules > lp.nGranules)
      __builtin_trap();
    seen.assign(plan.nFF, 0);
    for (uint32_t v : lp.order) {
      if (v >= plan.nFF || seen[v])
        __builtin_trap();
      seen[v] = 1;
    }
  }

  // The readers of an accepted plan: the table, the SVG and the writer.
  std::ostringstream table;
  printPlanTable(table, plan);
  uint64_t h = table.str().size() + planToSvg(plan).size();
  std::string json = planToJson(plan);
  Plan back;
  if (!planFromJson(json, "fuzz.plan (written back)", back, err)) {
    std::fprintf(stderr, "written plan not readable: %s\n", err.c_str());
    __builtin_trap();
  }
  if (planToJson(back) != json) {
    std::fprintf(stderr, "plan changes when written and read back\n");
    __builtin_trap();
  }
  gSink = h;
  return 0;
}
