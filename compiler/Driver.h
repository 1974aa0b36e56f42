//===- Driver.h - the verbs of pinferc --------------------------*- C++ -*-===//
//
// Each verb of the pinferc command line is one function here; tools/pinferc
// only parses flags into these structs. Every function prints its own
// one-line error ("pinferc: error: ...") and returns the process exit code.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/generate.h"

#include <cstdint>
#include <string>

namespace pinfer {

struct InspectArgs {
  std::string model;
  bool json = false;
};
int runInspect(const InspectArgs &args);

struct TokenizeArgs {
  std::string model;
  std::string prompt;
  bool idsOnly = false;
  bool noBos = false;
  bool parseSpecial = true; // --no-parse-special turns it off
};
int runTokenize(const TokenizeArgs &args);

struct RunArgs {
  std::string model;
  GenerateOptions gen;
  std::string promptFile; // -f: read the prompt from a file
  bool escape = true;     // llama.cpp's escapes in the file's text
};
int runRun(RunArgs args);

int runTargets();

struct ProfileArgs {
  std::string model;
  std::string corpus; // empty: the built-in calibration text
  std::string output;
  uint64_t maxTokens = 0;
  int nThreads = 0;
  int nCtx = 0;
  uint32_t samples = 0;
  float targetSparsity = 0.5f;
  bool force = false; // overwrite an existing output
};
int runProfile(const ProfileArgs &args);

struct PlanArgs {
  std::string model;
  std::string trace; // empty: profile the calibration text first
  std::string target = "rtx4090";
  std::string vramBudget; // "6GiB"; empty: the target's VRAM
  int nCtx = 4096;
  std::string jsonOut, svgOut;
  double z3Seconds = 10;
  bool noZ3 = false;
  int nThreads = 0;
  int minGranules = -1;
  std::string sparsity = "auto"; // the mode the compile would run
};
int runPlan(const PlanArgs &args);

struct PerplexityArgs {
  std::string model;
  std::string textFile; // empty: the built-in calibration text
  int nCtx = 256;
  int nThreads = 0;
  uint64_t maxChunks = 0;
  bool argmax = false; // --argmax: JSON lists each scored position's argmax
  bool json = false;
};
int runPerplexity(const PerplexityArgs &args);

struct TrainPredictorsArgs {
  std::string model, trace, output;
  int nThreads = 0;
  bool force = false;
};
int runTrainPredictors(const TrainPredictorsArgs &args);


} // namespace pinfer
