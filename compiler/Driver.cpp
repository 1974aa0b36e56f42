//===- Driver.cpp - the verbs of pinferc ----------------------------------===//

#include "compiler/Driver.h"

#include "compiler/Calibration.h"
#include "compiler/Compile.h"
#include "compiler/Inspect.h"
#include "compiler/ModelSpec.h"
#include "compiler/Pipeline.h"
#include "compiler/Profile.h"
#include "compiler/Progress.h"
#include "compiler/Targets.h"
#include "compiler/Trace.h"
#include "compiler/placement/CostModel.h"
#include "compiler/placement/Plan.h"
#include "compiler/predictor/PredictorAttach.h"
#include "runtime/cli_args.h"
#include "runtime/generate.h"
#include "runtime/gguf.h"
#include "runtime/json.h"
#include "runtime/model.h"
#include "runtime/output_files.h"
#include "runtime/perplexity.h"
#include "runtime/tokenizer.h"

#include <chrono>
#include <iostream>
#include <sys/stat.h>
#include <unistd.h>

namespace pinfer {

static int fail(const std::string &error) {
  std::cerr << "pinferc: error: " << error << "\n";
  return 1;
}

static bool fileExists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

int runInspect(const InspectArgs &args) {
  std::string error;
  auto file = GGUFFile::open(args.model, error);
  if (!file)
    return fail(error);
  if (!inspectModel(*file, args.json, std::cout, error))
    return fail(error);
  return 0;
}

int runTokenize(const TokenizeArgs &args) {
  std::string error;
  auto file = GGUFFile::open(args.model, error);
  if (!file)
    return fail(error);
  auto tok = Tokenizer::fromGGUF(*file, error);
  if (!tok)
    return fail(error);
  bool addBos = !args.noBos && tok->addBosByDefault() && tok->bos() >= 0;
  std::vector<int32_t> ids = tok->encode(args.prompt, addBos, args.parseSpecial);
  if (args.idsOnly) {
    std::cout << "[";
    for (size_t i = 0; i < ids.size(); ++i)
      std::cout << (i ? ", " : "") << ids[i];
    std::cout << "]\n";
    return 0;
  }
  for (int32_t id : ids)
    std::cout << id << " -> '" << tok->tokenToPiece(id) << "'\n";
  return 0;
}

int runRun(RunArgs args) {
  std::string error;
  const auto loadStart = std::chrono::steady_clock::now();
  if (!args.promptFile.empty() &&
      !readPromptFile(args.promptFile, args.gen.prompt, error))
    return fail(error);
  if (!args.promptFile.empty() && args.escape)
    args.gen.prompt = processEscapes(args.gen.prompt);
  auto model = Model::open(args.model, error);
  if (!model)
    return fail(error);
  // Every weight is read: mapped in at load, as llama.cpp's warm-up does,
  // not by page faults during the prompt.
  model->file().prefault();
  auto tok = Tokenizer::fromGGUF(model->file(), error);
  if (!tok)
    return fail(error);
  args.gen.program = "pinferc";
  args.gen.loadMs = std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now() - loadStart)
                        .count();
  return generate(*model, *tok, args.gen);
}

int runTargets() {
  printTargets(std::cout);
  // What native is on this machine.
  std::string error;
  if (resolveTarget("native", error))
    std::cout << "\nhere, " << nativeTargetNote() << "\n";
  else
    std::cout << "\nhere, " << error << "\n";
  return 0;
}

// Loads the model and profiles `corpus` (or the calibration text).
static bool profileToTrace(const std::string &modelPath,
                           const std::string &corpusPath,
                           const ProfileOptions &opts, Trace &trace,
                           std::string &error) {
  auto model = Model::open(modelPath, error);
  if (!model)
    return false;
  auto tok = Tokenizer::fromGGUF(model->file(), error);
  if (!tok)
    return false;
  std::string text;
  if (corpusPath.empty()) {
    text = calibrationText();
  } else if (!readTextInput(corpusPath, text, error, "the corpus")) {
    return false;
  }
  return profileModel(*model, *tok, modelIdentity(model->file()), text, opts,
                      trace, error);
}

int runProfile(const ProfileArgs &args) {
  std::string error;
  if (!checkOutputsAreNotInputs({{args.output, "-o"}},
                                {{args.model, "the model"},
                                 {args.corpus, "the --corpus file"}},
                                error))
    return fail(error);
  if (fileExists(args.output) && !args.force)
    return fail(args.output + ": already exists (pass --force to overwrite)");
  ProfileOptions opts;
  opts.maxTokens = args.maxTokens;
  opts.nThreads = args.nThreads;
  opts.nCtx = args.nCtx;
  opts.samplesPerLayer = args.samples;
  opts.targetSparsity = args.targetSparsity;
  Progress progress(Progress::styleFor(false));
  opts.progress = progress.reporter();
  progress.beginOnUpdate("profile",
                         args.corpus.empty()
                             ? "no --corpus given; profiling the built-in "
                               "calibration text"
                             : "profiling " + args.corpus,
                         Progress::Unit::Items, "tokens");
  Trace trace;
  bool profiled = profileToTrace(args.model, args.corpus, opts, trace, error);
  progress.end();
  if (!profiled)
    return fail(error);
  if (!writeTrace(args.output, trace, error))
    return fail(error);
  uint64_t fired = 0;
  for (const auto &layer : trace.fired)
    for (uint64_t c : layer)
      fired += c;
  double rate = trace.nTokens && trace.nFF && trace.nLayer
                    ? double(fired) / (double(trace.nTokens) * trace.nFF *
                                       trace.nLayer)
                    : 0.0;
  std::cerr << "pinferc: profiled " << trace.nTokens << " tokens over "
            << trace.nLayer << " layers x " << trace.nFF
            << " neurons; mean firing rate " << rate << " (" << trace.activation
            << "); wrote " << args.output << "\n";
  return 0;
}

int runPlan(const PlanArgs &args) {
  std::string error;
  if (!checkOutputsAreNotInputs({{args.jsonOut, "--json"}, {args.svgOut, "--svg"}},
                                {{args.model, "the model"},
                                 {args.trace, "the --trace file"}},
                                error))
    return fail(error);
  const Target *target = resolveTarget(args.target, error);
  if (!target)
    return fail(error);
  if (target->name == "native")
    std::cerr << "pinferc: " << nativeTargetNote() << "\n";
  uint64_t budget = 0;
  if (!parseVramBudget(args.vramBudget, *target, budget, error))
    return fail(error);
  auto model = Model::open(args.model, error);
  if (!model)
    return fail(error);
  // The same trace-or-profile and solver settings as the main job.
  CompileArgs c;
  c.model = args.model;
  c.trace = args.trace;
  c.vramBudget = args.vramBudget;
  c.nCtx = args.nCtx;
  c.nThreads = args.nThreads;
  c.z3Seconds = args.z3Seconds;
  c.noZ3 = args.noZ3;
  c.minGranules = args.minGranules;
  c.sparsity = args.sparsity;
  if (args.nCtx < 1)
    return fail("-c must be at least 1");
  // On a GPU target, the plan the compile with these flags would make: in
  // predicted mode that trains the predictors the compile would train, so
  // that their VRAM is billed here as there.
  Plan plan;
  if (target->hasGPU() ? !planAsTheJobWould(c, *target, plan, error)
                       : !loadPlan(c, *model, modelIdentity(model->file()),
                                   *target, plan, error))
    return fail(error);
  printPlanTable(std::cout, plan);
  // Both files or neither.
  std::vector<std::pair<std::string, std::string>> files;
  if (!args.jsonOut.empty())
    files.push_back({args.jsonOut, planToJson(plan)});
  if (!args.svgOut.empty())
    files.push_back({args.svgOut, planToSvg(plan)});
  if (!writeTextFiles(files, error))
    return fail(error);
  return 0;
}

int runPerplexity(const PerplexityArgs &args) {
  std::string error;
  auto model = Model::open(args.model, error);
  if (!model)
    return fail(error);
  model->file().prefault(); // every weight is read (runRun)
  auto tok = Tokenizer::fromGGUF(model->file(), error);
  if (!tok)
    return fail(error);
  std::string text;
  if (args.textFile.empty())
    text = calibrationText();
  else if (!readTextInput(args.textFile, text, error))
    return fail(error);
  ReferenceDecoder decoder(*model, args.nThreads);
  if (!decoder.init(args.nCtx, error))
    return fail(error);
  // As generation warns (warnAboutFlags): chunks past the trained context
  // score a model outside what it learned.
  GenerateOptions flags;
  flags.nThreads = args.nThreads;
  warnAboutFlags(flags, args.nCtx, model->params().nCtxTrain, std::cerr);
  PerplexityResult r;
  if (!perplexity(decoder, *tok, text, args.maxChunks, r, error))
    return fail(error);
  std::function<void(JsonWriter &)> extra;
  if (args.argmax)
    extra = [&r](JsonWriter &w) { w.array("argmax", r.argmax); };
  printPerplexity(std::cout, r, args.nCtx, args.json, "", extra);
  return 0;
}

int runTrainPredictors(const TrainPredictorsArgs &args) {
  std::string error;
  if (!checkOutputsAreNotInputs({{args.output, "-o"}},
                                {{args.model, "the model"},
                                 {args.trace, "the --trace file"}},
                                error))
    return fail(error);
  if (fileExists(args.output) && !args.force)
    return fail(args.output + ": already exists (pass --force to overwrite)");
  auto file = GGUFFile::open(args.model, error);
  if (!file)
    return fail(error);
  ModelShape shape;
  if (!modelShapeFromGGUF(*file, shape, error))
    return fail(error);
  Trace trace;
  if (!readTrace(args.trace, trace, error) ||
      !checkTraceMatchesModel(trace, modelIdentity(*file), shape.nLayer,
                              shape.nFF, error, args.trace, args.model))
    return fail(error);
  Progress progress(Progress::styleFor(false));
  if (!trainPredictorFile(trace, args.output, args.nThreads, progress,
                          /*report=*/true, error))
    return fail(args.trace + ": " + error);
  std::cerr << "pinferc: wrote " << args.output << "\n";
  return 0;
}

} // namespace pinfer
