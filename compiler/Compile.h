// The main job of pinferc, and every --emit of it: the flags become one
// job (model, profile, resolved sparsity mode, thresholds, plan — all cold
// without a GPU — and pass options), decided once; the job's plan goes
// through the pinfer pipeline to the scheduled IR, which is lowered to the
// program description -> CUDA C++ (compiled with NVRTC when the target has
// a GPU) + host C++ + packed weights -> the host compiler links the host
// code against libpinfer_runtime.a -> one executable, with its packed
// weights file beside it.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace pinfer {

class Model;
struct ModelParams;
struct Plan;
struct Target;

struct CompileArgs {
  std::string model;
  std::string target = "rtx4090";
  std::string output; // -o: the executable
  std::string trace;  // empty: profile the built-in calibration text
  std::string plan;   // a plan JSON to use instead of solving one
  // dense | exact | predicted | threshold | auto (predicted when the model
  // stores predictors, --predictors is given or the trace holds samples to
  // train them from; exact otherwise)
  std::string sparsity = "auto";
  // Threshold mode: the share of activations each layer's threshold skips.
  // Negative: the trace's (0.5 when the built-in text is profiled).
  float targetSparsity = -1.f;
  std::string predictors; // a predictor file from pinferc train-predictors
  // "" | "mlir" | "mlir-placed" | "mlir-scheduled" | "steps" | "cuda" |
  // "cpp": print that form of the job's program and stop ("steps": each
  // layer's lowered steps, one stepsLine each).
  std::string emit;
  std::string vramBudget; // "6GiB"; empty: the target's VRAM
  int nCtx = 4096;        // the context the plan reserves KV cache for
  bool nCtxGiven = false; // -c was given (else a --plan's is taken)
  int nThreads = 0;       // profiling threads
  double z3Seconds = 10;
  int minGranules = -1; // per-layer minimum GPU granules; -1: cost model
  // The CPU the host code is compiled for: the host compiler's -march.
  std::string march = "native";
  bool noZ3 = false;
  bool quiet = false; // no progress lines on stderr
  // Where the job prints the scheduled IR it lowers (--emit=mlir-scheduled
  // prints the same to stdout); null: nowhere.
  std::ostream *loweredIr = nullptr;
  // Where the job prints the steps it lowered that IR to (--emit=steps
  // prints the same to stdout); null: nowhere.
  std::ostream *loweredSteps = nullptr;
};

// The packed weights path for an executable path: OUT.weights.gguf.
std::string weightsPathFor(const std::string &output);
// Where trained predictors are kept beside an executable:
// OUT.predictors.gguf.
std::string predictorsPathFor(const std::string &output);

// --vram-budget for `target`: empty is 0 (the target's VRAM); refused when
// the target has no GPU, when zero, and above the target's VRAM. False with
// one line in `error`.
bool parseVramBudget(const std::string &text, const Target &target,
                     uint64_t &bytes, std::string &error);

// A plan given with --plan must have been made for this model (`identity`,
// its modelIdentity before any predictors are attached), its shape and this
// target, within the target's VRAM. False with one line in `error`.
bool checkPlanFits(const Plan &plan, const std::string &planPath,
                   const std::string &identity, const ModelParams &p,
                   const Target &target, std::string &error);

// The placement the main job with `args` would make on `target`: the same
// profile, sparsity mode, predictors (trained, where the job would train
// them, and billed) and solver, for `pinferc plan`. False with one line.
bool planAsTheJobWould(const CompileArgs &args, const Target &target,
                       Plan &plan, std::string &error);

// The placement the job uses for a GPU target: args.plan if given, else a
// plan solved from args.trace (or from a profile of the built-in calibration
// text) under args.vramBudget / args.nCtx. A given plan must be for the
// model whose identity (modelIdentity) is `identity`: the user's, which
// `model` may be a view of with predictors attached. False with one line in
// `error`.
bool loadPlan(const CompileArgs &args, const Model &model,
              const std::string &identity, const Target &target, Plan &plan,
              std::string &error);

// Runs the job. Returns the exit code after printing at most one error line
// "pinferc: error: ..." on stderr.
int compileModel(const CompileArgs &args);

} // namespace pinfer
