// The main compile job; see Compile.h.
#include "compiler/Compile.h"

#include "codegen/CudaEmitter.h"
#include "codegen/HostEmitter.h"
#include "codegen/Nvrtc.h"
#include "codegen/PackedWeights.h"
#include "codegen/ProgramDesc.h"
#include "compiler/Calibration.h"
#include "compiler/LowerToProgram.h"
#include "compiler/ModelSpec.h"
#include "compiler/Pipeline.h"
#include "compiler/Profile.h"
#include "compiler/Progress.h"
#include "compiler/RuntimeInstall.h"
#include "compiler/Targets.h"
#include "compiler/Trace.h"
#include "compiler/placement/Plan.h"
#include "compiler/predictor/PredictorAttach.h"
#include "compiler/predictor/PredictorFile.h"
#include "runtime/executor.h"
#include "runtime/gguf.h"
#include "runtime/output_files.h"
#include "runtime/tokenizer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace pinfer {

namespace {

int fail(const std::string &msg) {
  std::cerr << "pinferc: error: " << msg << "\n";
  return 1;
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string baseName(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Runs argv[0] with the arguments; its standard output and error go to
// `logPath` (our own when empty). Returns the exit status, or -1 (with
// `error`) when it could not be started.
int runProgram(const std::vector<std::string> &argv, std::string &error,
               const std::string &logPath = "") {
  std::vector<char *> args;
  for (const std::string &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    error = "cannot create a pipe";
    return -1;
  }
  // The cleanup signals wait until the child is registered (ChildGroup),
  // so that none can end pinferc with the child not yet known to it.
  sigset_t cleanup, before;
  sigemptyset(&cleanup);
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    sigaddset(&cleanup, sig);
  ::sigprocmask(SIG_BLOCK, &cleanup, &before);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::sigprocmask(SIG_SETMASK, &before, nullptr);
    error = "cannot fork";
    return -1;
  }
  if (pid == 0) {
    // Its own process group, so that pinferc's cleanup can end it with
    // whatever it started (the compiler proper, the assembler).
    ::setpgid(0, 0);
    // Not pinferc's cleanup (its temporaries are the parent's) until exec.
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
      ::signal(sig, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &before, nullptr);
    ::close(pipefd[0]);
    if (!logPath.empty()) {
      int log = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
    }
    ::execvp(args[0], args.data());
    // Tell the parent that exec failed.
    char c = 1;
    (void)!::write(pipefd[1], &c, 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid); // also here: whichever runs first
  ChildGroup child(pid);
  ::sigprocmask(SIG_SETMASK, &before, nullptr);
  ::close(pipefd[1]);
  char c;
  bool execFailed = ::read(pipefd[0], &c, 1) == 1;
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (execFailed) {
    error = "host compiler '" + argv[0] +
            "' not found (set CXX to a C++17 compiler)";
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Why the host compiler failed, from its log: a full disk is named as such;
// otherwise its first error line.
std::string hostCompilerFailure(const std::string &logPath) {
  std::ifstream in(logPath);
  std::string line, first;
  while (std::getline(in, line)) {
    if (line.find("No space left on device") != std::string::npos)
      return "no space left on device";
    if (first.empty() && line.find("error") != std::string::npos)
      first = line;
  }
  return first;
}

// A packed weights file that pinferc may replace: absent, or one it wrote.
bool mayReplaceWeights(const std::string &path, std::string &error) {
  if (!exists(path))
    return true;
  std::string ignored;
  std::unique_ptr<GGUFFile> f = GGUFFile::open(path, ignored);
  if (f && f->find(kPackedVersionKey))
    return true;
  error = path + ": exists and is not a packed weights file written by "
                 "pinferc; not overwriting it (choose another -o)";
  return false;
}

// An executable pinferc may replace: absent, or an executable (ELF) file.
// Anything else at -o (a model, a text) is more likely a slip of the
// user's than an output to replace.
bool mayReplaceExecutable(const std::string &path, std::string &error) {
  // Only a regular file is read (a link to a pipe would block); an empty
  // one (mktemp's) holds nothing to lose.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
    return true;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return true;
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic,
                                      "\x7f"
                                      "ELF",
                                      4) == 0)
    return true;
  error = path + ": exists and is not an executable; not overwriting it "
                 "(choose another -o, or remove it first)";
  return false;
}

// The mode the program runs: --sparsity, or for auto predicted when
// predictors are stored, given or trainable from the profile's samples (a
// user's trace made with --samples, or for a ReLU-family model without
// --trace the built-in text's profile, which then keeps samples: predicted
// mode is the fastest there, PowerInfer's default), else exact for the
// ReLU family and dense for SiLU and GELU models: their
// activations are (almost) never exactly zero, so exact mode would test
// every neuron and skip none, and dense lets an all-CPU layer keep the
// source's down matrix (DownLayout::Source). Threshold mode, their
// sparsity, changes the results and is the user's choice. (--sparsity was
// validated before this is asked.)
SparsityMode resolvedMode(const CompileArgs &args, const Model &model,
                          const Trace &profile) {
  SparsityMode mode = SparsityMode::Exact;
  const FfnActivation act = model.params().activation;
  if (args.sparsity != "auto")
    parseSparsityMode(args.sparsity.c_str(), mode);
  else if (hasStoredPredictors(model.file()) || !args.predictors.empty() ||
           !profile.samples.empty() ||
           (args.trace.empty() && args.plan.empty() && isReluFamily(act)))
    mode = SparsityMode::Predicted;
  else if (act == FfnActivation::SiLU || act == FfnActivation::GeluTanh)
    mode = SparsityMode::Dense;
  return mode;
}

// Solves a placement from `trace` under args.vramBudget / args.nCtx for a
// program running in `mode`; with `predictors`, a predictor file whose
// fc1/fc2 the program will carry (the model has none of its own).
bool planFromTrace(const CompileArgs &args, const Model &model,
                   const Target &target, const Trace &trace, SparsityMode mode,
                   Plan &plan, std::string &error,
                   const GGUFFile *predictors = nullptr) {
  ModelShape shape;
  if (!modelShapeFromGGUF(model.file(), shape, error, predictors))
    return false;
  PlacementOptions opts;
  if (!parseVramBudget(args.vramBudget, target, opts.vramBudget, error))
    return false;
  opts.nCtx = uint32_t(args.nCtx);
  opts.useZ3 = !args.noZ3;
  opts.z3Seconds = args.z3Seconds;
  opts.minGranules = args.minGranules;
  // What a CPU neuron costs per token in the mode the program will run:
  // predicted reads a neuron's rows only when predicted.
  opts.reads = mode == SparsityMode::Predicted ? NeuronReads::WhenFiring
               : mode == SparsityMode::Dense   ? NeuronReads::Always
                                               : NeuronReads::GateAlways;
  // Each layer's attention (weights and KV cache) competes for VRAM with
  // its FFN neurons, and so does the output head.
  opts.attention = AttentionPolicy::Optional;
  opts.outputMayUseGPU = true;
  return planPlacement(trace, shape, target, opts, plan, error);
}

// The placement when the whole model fits the GPU, solved without a
// profile: one in which every neuron fires on every token. If that plan
// puts every neuron on the GPU, any profile's would (a neuron that ever
// fires is worth its bytes there), so the job needs none for placement
// (under --sparsity auto the program is then exact: the reference's
// results without training predictors). False (and `plan` untouched)
// otherwise.
bool wholeModelPlan(const CompileArgs &args, const Model &model,
                    const Target &target, SparsityMode mode, Plan &plan) {
  const ModelParams &p = model.params();
  Trace all;
  all.modelIdentity = modelIdentity(model.file());
  all.nLayer = uint32_t(p.nLayer);
  all.nFF = uint32_t(p.nFF);
  all.nTokens = 1;
  all.activation = activationName(p.activation);
  all.fired.assign(all.nLayer, std::vector<uint64_t>(all.nFF, 1));
  Plan whole;
  std::string ignored; // a budget that cannot hold it fails later, the same
  CompileArgs dpOnly = args; // the exact DP settles whether all of it fits
  dpOnly.noZ3 = true;
  if (!planFromTrace(dpOnly, model, target, all, mode, whole, ignored))
    return false;
  for (const LayerPlan &lp : whole.layers)
    if (lp.nHot != all.nFF || !lp.attentionOnGPU)
      return false;
  if (!whole.outputOnGPU)
    return false;
  plan = std::move(whole);
  return true;
}

// Reads the user's trace and checks it against the model the user gave
// (never against a view of it made later in the job).
bool readUserTrace(const CompileArgs &args, const Model &model, Trace &trace,
                   std::string &error) {
  const ModelParams &p = model.params();
  return readTrace(args.trace, trace, error) &&
         checkTraceMatchesModel(trace, modelIdentity(model.file()), p.nLayer,
                                p.nFF, error, args.trace, args.model);
}

// Profiles the built-in calibration text, keeping `samples` (input, mask)
// pairs per layer and setting SiLU thresholds at --target-sparsity when
// given. `why` names the progress step.
bool profileCalibration(const CompileArgs &args, const Model &model,
                        uint32_t samples, const char *why, Trace &trace,
                        Progress &progress, std::string &error) {
  auto tok = Tokenizer::fromGGUF(model.file(), error);
  if (!tok)
    return false;
  ProfileOptions popts;
  popts.nThreads = args.nThreads;
  popts.samplesPerLayer = samples;
  if (args.targetSparsity >= 0.f)
    popts.targetSparsity = args.targetSparsity;
  popts.progress = progress.reporter();
  progress.beginOnUpdate("profile", why, Progress::Unit::Items, "tokens");
  bool ok = profileModel(model, *tok, modelIdentity(model.file()),
                         calibrationText(), popts, trace, error);
  progress.end();
  return ok;
}

// Threshold mode is for SiLU and GELU models: ReLU-family activations are
// already exactly zero where they do not fire, which exact mode skips at no
// cost.
bool thresholdModeFits(const CompileArgs &args, const Model &model,
                       std::string &error) {
  FfnActivation act = model.params().activation;
  if (!isReluFamily(act))
    return true;
  error = "--sparsity threshold: " + args.model + " has activation " +
          activationName(act) +
          ", expected a SiLU or GELU model (ReLU-family models skip exactly: "
          "use --sparsity exact or predicted)";
  return false;
}

// The per-layer thresholds on |silu(gate x)|: those of `profile` when it
// was calibrated at the asked target sparsity (or none was asked), else
// those of a profile of the built-in text at that target.
bool thresholdsFor(const CompileArgs &args, const Model &model,
                   const Trace *profile, std::vector<float> &out,
                   Progress &progress, std::string &error) {
  if (!thresholdModeFits(args, model, error))
    return false;
  const size_t nLayer = size_t(model.params().nLayer);
  if (profile && (args.targetSparsity < 0.f ||
                  std::fabs(args.targetSparsity - profile->targetSparsity) <=
                      1e-6f)) {
    if (profile->thresholds.size() != nLayer) {
      error = args.trace + ": has no activation thresholds, expected a "
                           "trace profiled from a SiLU model";
      return false;
    }
    out = profile->thresholds;
    return true;
  }
  Trace calibrated;
  if (!profileCalibration(args, model, 0,
                          "calibrating activation thresholds on the built-in "
                          "text",
                          calibrated, progress, error))
    return false;
  if (calibrated.thresholds.size() != nLayer) {
    error = "the calibration profile has no activation thresholds";
    return false;
  }
  out = calibrated.thresholds;
  return true;
}

} // namespace

bool loadPlan(const CompileArgs &args, const Model &model,
              const std::string &identity, const Target &target, Plan &plan,
              std::string &error) {
  if (!args.plan.empty()) {
    if (!readPlanJson(args.plan, plan, error) ||
        !checkPlanFits(plan, args.plan, identity, model.params(), target,
                       error))
      return false;
    if (args.nCtxGiven && plan.nCtx && plan.nCtx != uint32_t(args.nCtx)) {
      error = args.plan + ": reserves the KV cache for -c " +
              std::to_string(plan.nCtx) + ", and -c " +
              std::to_string(args.nCtx) +
              " disagrees (make the plan again with pinferc plan -c " +
              std::to_string(args.nCtx) + ")";
      return false;
    }
    return true;
  }
  Trace trace;
  Progress progress(Progress::styleFor(args.quiet));
  if (!args.trace.empty()
          ? !readUserTrace(args, model, trace, error)
          : !profileCalibration(args, model, 0,
                                "no --trace given; profiling the built-in "
                                "calibration text",
                                trace, progress, error))
    return false;
  return planFromTrace(args, model, target, trace,
                       resolvedMode(args, model, trace), plan, error);
}

std::string weightsPathFor(const std::string &output) {
  return output + ".weights.gguf";
}

std::string predictorsPathFor(const std::string &output) {
  return output + ".predictors.gguf";
}

bool parseVramBudget(const std::string &text, const Target &target,
                     uint64_t &bytes, std::string &error) {
  bytes = 0;
  if (text.empty())
    return true;
  if (!target.hasGPU()) {
    error = "--vram-budget: target " + target.name +
            " has no GPU, expected no budget (or a GPU target)";
    return false;
  }
  // A bare number is GiB, as PowerInfer's --vram-budget reads it.
  const bool bare = text.find_first_not_of("0123456789.") == std::string::npos;
  if (!parseSize(bare ? text + "GiB" : text, bytes, error)) {
    error = "--vram-budget: " + error;
    return false;
  }
  if (bytes == 0) {
    error = "--vram-budget: 0 leaves nothing to place, expected a positive "
            "size (default: " +
            formatBytes(target.defaultBudget()) + " for " + target.name + ")";
    return false;
  }
  if (bytes > target.vramBytes) {
    error = "--vram-budget: " + formatBytes(bytes) + " exceeds the " +
            formatBytes(target.vramBytes) + " of " + target.name +
            ", expected at most that";
    return false;
  }
  // Said before any profiling: nothing fits under the context itself.
  if (bytes <= target.contextReserveBytes) {
    error = "--vram-budget: " + formatBytes(bytes) + " is no more than the " +
            formatBytes(target.contextReserveBytes) +
            " the CUDA context itself takes on " + target.name +
            ", expected more";
    return false;
  }
  return true;
}

bool checkPlanFits(const Plan &plan, const std::string &planPath,
                   const std::string &identity, const ModelParams &p,
                   const Target &target, std::string &error) {
  if (plan.target != target.name) {
    error = planPath + ": was made for target '" + plan.target +
            "', expected one for " + target.name +
            " (pinferc plan --target " + target.name + ")";
    return false;
  }
  if (plan.nLayer != uint32_t(p.nLayer) || plan.nFF != uint32_t(p.nFF)) {
    error = planPath + ": was made for a model of " +
            std::to_string(plan.nLayer) + " layers x n_ff " +
            std::to_string(plan.nFF) + ", expected " +
            std::to_string(p.nLayer) + " x " + std::to_string(p.nFF);
    return false;
  }
  if (plan.modelIdentity != identity) {
    error = planPath + ": was made for model '" + plan.modelIdentity +
            "', expected one for this model (" + identity +
            "): make the plan again with pinferc plan";
    return false;
  }
  if (plan.budgetBytes > target.vramBytes) {
    error = planPath + ": budget " + formatBytes(plan.budgetBytes) +
            " exceeds the " + formatBytes(target.vramBytes) + " of " +
            target.name;
    return false;
  }
  return true;
}

namespace {

// The predictors a predicted-mode job gives a model that stores none:
// those of --predictors, or ones trained from the samples of `profile`.
// Trained ones are left in `kept`: with -o a temporary beside
// OUT.predictors.gguf, put in place with the other outputs (so that a
// failed compile leaves the previous ones); else in `trained`, a temporary.
bool loadPredictors(const CompileArgs &args, const Model &model,
                    const Trace &profile, TempPath &kept, TempPath &trained,
                    LoadedPredictors &loaded, Progress &progress,
                    std::string &error) {
  const ModelParams &p = model.params();
  std::string predPath = args.predictors;
  if (predPath.empty()) {
    if (profile.samples.empty()) {
      error = args.trace + ": holds no samples to train predictors from "
              "(profile with --samples N, or pass --predictors FILE, or "
              "use --sparsity exact)";
      return false;
    }
    TempPath &into = args.output.empty() ? trained : kept;
    if (!makeTempBeside(args.output.empty()
                            ? tempDirectory() + "/pinferc-predictors.gguf"
                            : predictorsPathFor(args.output),
                        into, error))
      return false;
    predPath = into.path();
    if (!trainPredictorFile(profile, predPath, args.nThreads, progress,
                            !args.quiet, error))
      return false;
  }
  return readPredictorFile(predPath, modelIdentity(model.file()), p.nLayer,
                           p.nEmbd, p.nFF, loaded, error);
}

// `model` with its predictors (loadPredictors): a view of its file that
// holds them too (modelWithPredictors), nothing written.
bool attachPredictors(const CompileArgs &args, std::unique_ptr<Model> &model,
                      const Trace &profile, TempPath &kept, TempPath &trained,
                      Progress &progress, std::string &error) {
  LoadedPredictors loaded;
  if (!loadPredictors(args, *model, profile, kept, trained, loaded, progress,
                      error))
    return false;
  std::unique_ptr<GGUFFile> file = Model::release(std::move(model));
  if (!file) {
    error = args.model + ": the model's file is not held by the job";
    return false;
  }
  std::unique_ptr<GGUFFile> view =
      modelWithPredictors(std::move(file), std::move(loaded.file), error);
  if (!view)
    return false;
  model = Model::load(std::move(view), error);
  return model != nullptr;
}

} // namespace

// Everything the job decides before code generation, decided once from the
// flags and used by the main job and every --emit.
struct CompileJob {
  // The user's, or a view of it that holds predictors (attachPredictors).
  std::unique_ptr<Model> model;
  TempPath trainedPredictors;   // to become OUT.predictors.gguf, or empty
  TempPath predictorsTemp;      // trained without -o, removed with the job
  ModelSpec spec;               // of `model`
  std::string modelName;        // its general.name
  Trace profile;                // the trace, or the built-in text's profile
  SparsityMode mode = SparsityMode::Exact; // auto resolved
  Plan plan;                    // all cold without a GPU
  PipelineOptions pipeline;     // the pass options, budget and thresholds
  Progress progress;            // the job's steps on stderr
  // Only the plan is wanted (pinferc plan): predictors a predicted-mode
  // job trains are billed from their own file, the model left as it is.
  bool planOnly = false;
  LoadedPredictors planPredictors;

  explicit CompileJob(Progress::Style style) : progress(style) {}
};

bool prepareJob(const CompileArgs &args, const Target &target,
                CompileJob &job, std::string &error) {
  const Target *tp = &target;
  job.model = Model::open(args.model, error);
  if (!job.model)
    return false;
  std::unique_ptr<Model> &model = job.model;
  // The model the user gave, by content: plans are checked against it.
  const std::string identity = modelIdentity(model->file());
  // The packed Q8_0/Q4_0 down projection keeps each neuron's quants in
  // 32-output chunks (runtime/ggml_types.h, DownLayout); SplitK's take any
  // n_embd.
  for (int l = 0; l < model->params().nLayer; ++l)
    if ((downLayoutFor(model->layer(l).down.type) == DownLayout::SplitQ8 ||
         downLayoutFor(model->layer(l).down.type) == DownLayout::SplitQ4) &&
        model->params().nEmbd % 32 != 0) {
      error = args.model + ": tensor " + tensorName(TensorKind::FfnDown, l) +
              ": " + typeName(model->layer(l).down.type) + " with n_embd " +
              std::to_string(model->params().nEmbd) +
              ", expected n_embd a multiple of 32 for the packed layout";
      return false;
    }
  const bool storedPredictors = hasStoredPredictors(model->file());
  if (storedPredictors && !args.predictors.empty()) {
    error = "--predictors: " + args.model +
            " stores its own predictors (a PowerInfer file), which are used; "
            "drop --predictors";
    return false;
  }

  // The profile every decision below reads, obtained once: the user's trace,
  // checked against the model the user gave (before predictors may be
  // added to a view of it), or one profile of the built-in text made with
  // what the job needs.
  Trace &profile = job.profile;
  if (!args.trace.empty() && !readUserTrace(args, *model, profile, error))
    return false;
  // Without a trace or plan, a model the GPU holds whole is placed at once
  // and, under --sparsity auto, runs exact (ReLU family) or dense: no
  // profile of the built-in text and no predictor training.
  Plan &plan = job.plan;
  const bool whole =
      args.trace.empty() && args.plan.empty() && tp->hasGPU() &&
      (args.sparsity == "auto" || args.sparsity == "exact" ||
       args.sparsity == "dense") &&
      wholeModelPlan(args, *model, *tp,
                     args.sparsity == "dense" ? SparsityMode::Dense
                                              : SparsityMode::Exact,
                     plan);
  SparsityMode mode = resolvedMode(args, *model, profile);
  // A user's trace without samples gives up predicted mode, which the
  // built-in text's profile would have given: said, not silent.
  if (args.sparsity == "auto" && !args.trace.empty() &&
      mode != SparsityMode::Predicted && !storedPredictors &&
      isReluFamily(model->params().activation) && !args.quiet)
    std::cerr << "pinferc: note: " << args.trace
              << " holds no samples to train predictors from, so the "
                 "executable runs exact, not predicted, sparsity (pinferc "
                 "profile --samples N makes a trace that has them)\n";
  if (whole && args.sparsity == "auto")
    mode = isReluFamily(model->params().activation) ? SparsityMode::Exact
                                                    : SparsityMode::Dense;
  if (whole) {
    job.progress.begin("place", "the whole model fits the GPU: every neuron "
                                "goes there, no profile needed (sparsity " +
                                    std::string(sparsityModeName(mode)) + ")");
    job.progress.end();
  }
  job.mode = mode;
  if (mode == SparsityMode::Threshold &&
      !thresholdModeFits(args, *model, error))
    return false;
  const bool train = mode == SparsityMode::Predicted && !storedPredictors &&
                     args.predictors.empty();
  const bool place = tp->hasGPU() && args.plan.empty() && !whole;
  if (args.trace.empty() &&
      (train || place || mode == SparsityMode::Threshold) &&
      !profileCalibration(
          args, *model, train ? 4000 : 0,
          mode == SparsityMode::Threshold
              ? "calibrating activation thresholds on the built-in text"
          : train && args.sparsity == "auto"
              ? "profiling the built-in calibration text for predictor "
                "training samples (--sparsity auto on a ReLU-family model: "
                "predicted; exact gives the dense reference's results)"
          : train ? "profiling the built-in calibration text for predictor "
                    "training samples"
                  : "no --trace given; profiling the built-in calibration "
                    "text",
          profile, job.progress, error))
    return false;

  // Threshold mode: per-layer thresholds on |silu(gate x)| calibrated at the
  // target sparsity.
  if (mode == SparsityMode::Threshold &&
      !thresholdsFor(args, *model, &profile, job.pipeline.actThresholds,
                     job.progress, error))
    return false;

  // Predicted mode for a model that stores no predictors: compile from a
  // view of the model that carries trained (or given) ones.
  if (mode == SparsityMode::Predicted && !storedPredictors) {
    if (job.planOnly
            ? !loadPredictors(args, *model, profile, job.trainedPredictors,
                              job.predictorsTemp, job.planPredictors,
                              job.progress, error)
            : !attachPredictors(args, model, profile, job.trainedPredictors,
                                job.predictorsTemp, job.progress, error))
      return false;
  }

  // Placement. A target without a GPU puts every neuron on the CPU: the
  // same IR with an all-cold plan.
  if (whole)
    ; // placed above
  else if (!tp->hasGPU())
    plan = coldPlan(uint32_t(model->params().nLayer),
                    uint32_t(model->params().nFF), tp->name, identity);
  else if (!args.plan.empty()) {
    // Checked against the model the user gave, not its view with the
    // predictors attached above.
    if (!loadPlan(args, *model, identity, *tp, plan, error))
      return false;
  } else {
    job.progress.begin("place", "placing neurons under the VRAM budget");
    bool placed = planFromTrace(args, *model, *tp, profile, mode, plan, error,
                                job.planPredictors.file.get());
    job.progress.end();
    if (!placed)
      return false;
  }
  if (job.planOnly)
    return true;
  // pinfer-plan-memory's bill excludes the CUDA context, which the
  // executable finds already taken when it measures free VRAM.
  PipelineOptions &popts = job.pipeline;
  popts.sparsity = sparsityModeName(mode);
  // A plan's own context where -c was not given: its KV cache is billed.
  popts.contextLength = !args.plan.empty() && !args.nCtxGiven && plan.nCtx
                            ? int(plan.nCtx)
                            : args.nCtx;
  popts.vramBudget = plan.budgetBytes > tp->contextReserveBytes
                         ? int64_t(plan.budgetBytes - tp->contextReserveBytes)
                         : 0;
  float threshold = 0.f;
  if (!model->file().getOptF32(kSparseThresholdKey, threshold, error))
    return false;
  popts.threshold = threshold;
  return modelSpecOf(*model, job.spec, job.modelName, error);
}

bool planAsTheJobWould(const CompileArgs &args, const Target &target,
                       Plan &plan, std::string &error) {
  CompileJob job(Progress::styleFor(args.quiet));
  job.planOnly = true;
  if (!prepareJob(args, target, job, error))
    return false;
  plan = std::move(job.plan);
  return true;
}

namespace {
int compileOrEmit(const CompileArgs &args);

// The files the job reads, which none of its outputs may be.
std::vector<std::pair<std::string, std::string>>
jobInputs(const CompileArgs &args) {
  return {{args.model, "the model"},
          {args.trace, "the --trace file"},
          {args.plan, "the --plan file"},
          {args.predictors, "the --predictors file"}};
}
} // namespace

int compileModel(const CompileArgs &args) {
  if (args.emit.empty() || args.output.empty())
    return compileOrEmit(args);
  // --emit with -o: what would be printed goes to the file, written as
  // every output is (whole or not at all, never onto an input).
  std::string error;
  if (!checkOutputsAreNotInputs({{args.output, "-o"}}, jobInputs(args), error))
    return fail(error);
  std::ostringstream text;
  // Put back however the compile ends (an exception too).
  struct Redirect {
    std::streambuf *saved;
    ~Redirect() { std::cout.rdbuf(saved); }
  } redirect{std::cout.rdbuf(text.rdbuf())};
  CompileArgs emitOnly = args;
  emitOnly.output.clear();
  const int rc = compileOrEmit(emitOnly);
  std::cout.rdbuf(redirect.saved);
  if (rc != 0)
    return rc;
  if (!writeTextFile(args.output, text.str(), error))
    return fail(error);
  return 0;
}

namespace {

int compileOrEmit(const CompileArgs &args) {
  std::string error;
  auto t0 = std::chrono::steady_clock::now();
  const Target *target = resolveTarget(args.target, error);
  if (!target)
    return fail(error);
  if (target->name == "native" && !args.quiet)
    std::cerr << "pinferc: " << nativeTargetNote() << "\n";
  SparsityMode parsed = SparsityMode::Exact;
  if (args.sparsity != "auto" &&
      !parseSparsityMode(args.sparsity.c_str(), parsed))
    return fail("--sparsity: '" + args.sparsity +
                "' is not a mode, expected dense, exact, predicted, threshold "
                "or auto");
  if (args.targetSparsity >= 1.f)
    return fail("--target-sparsity: " + std::to_string(args.targetSparsity) +
                " is not a share, expected a value in [0, 1)");
  if (args.emit != "" && args.emit != "mlir" && args.emit != "mlir-placed" &&
      args.emit != "mlir-scheduled" && args.emit != "steps" &&
      args.emit != "cuda" && args.emit != "cpp")
    return fail("--emit: '" + args.emit +
                "' is not a stage, expected mlir, mlir-placed, mlir-scheduled, "
                "steps, cuda or cpp");
  if (args.emit.empty() && args.output.empty())
    return fail("no output named, expected -o PATH");
  // Flags that the job would otherwise drop without a word.
  if (!args.plan.empty() && !target->hasGPU())
    return fail("--plan: a plan places the model on a GPU, and target " +
                target->name + " has none; drop --plan, or name its target");
  if (!args.plan.empty() && !args.vramBudget.empty())
    return fail("--plan: the plan fixes the VRAM budget, so --vram-budget "
                "would be ignored; drop one of them");
  if (args.targetSparsity >= 0.f && args.sparsity != "threshold")
    return fail("--target-sparsity: used by --sparsity threshold only");
  if (!args.predictors.empty() && args.sparsity != "auto" &&
      args.sparsity != "predicted")
    return fail("--predictors: used in predicted mode only (--sparsity "
                "predicted or auto), not " +
                args.sparsity);
  if (!args.predictors.empty() && !exists(args.predictors))
    return fail(args.predictors + ": predictor file not found (--predictors)");
  if (args.nCtx < 1)
    return fail("-c must be at least 1");
  uint64_t budget = 0;
  if (!parseVramBudget(args.vramBudget, *target, budget, error))
    return fail(error);
  // Checked early: it reaches the host compiler's command line.
  if (args.march.empty() ||
      args.march.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
          std::string::npos)
    return fail("--march: '" + args.march +
                "' is not a CPU name, expected e.g. native, x86-64-v3, "
                "znver3 or skylake-avx512");
  if (!exists(args.model))
    return fail(args.model + ": model file not found");
  // What the job writes, checked before any work: never one of its inputs,
  // never a directory, in a directory that takes new files.
  const std::string weightsPath =
      args.emit.empty() ? weightsPathFor(args.output) : "";
  if (args.emit.empty()) {
    const std::string trainedPath = args.predictors.empty() && args.plan.empty()
                                        ? predictorsPathFor(args.output)
                                        : "";
    if (!checkOutputsAreNotInputs({{args.output, "-o"},
                                   {weightsPath, "the packed weights"},
                                   {trainedPath, "the trained predictors"}},
                                  jobInputs(args), error))
      return fail(error);
    if (!mayReplaceExecutable(args.output, error))
      return fail(error);
    TempPath probe;
    if (!makeTempBeside(args.output, probe, error))
      return fail(error);
  }
  if (args.emit == "mlir") {
    // The model as imported: nothing the job decides shows in it.
    std::unique_ptr<Model> model = Model::open(args.model, error);
    ModelSpec spec;
    std::string name;
    if (!model || !modelSpecOf(*model, spec, name, error) ||
        !emitMLIR(spec, nullptr, EmitStage::Dense, std::cout, error))
      return fail(error);
    return 0;
  }
  CompileJob job(Progress::styleFor(args.quiet));
  if (!prepareJob(args, *target, job, error))
    return fail(error);
  if (args.emit == "mlir-placed") {
    if (!emitMLIR(job.spec, &job.plan, EmitStage::Placed, std::cout, error,
                  job.pipeline))
      return fail(error);
    return 0;
  }
  // The program is what the scheduled, memory-planned IR says.
  Progress &progress = job.progress;
  if (args.emit.empty())
    progress.begin("lower", "lowering the model through the pinfer pipeline");
  ProgramDesc program;
  bool lowered = compileToProgram(
      job.spec, job.modelName, job.plan, job.mode, target->name, target->smArch,
      job.pipeline, program, error,
      args.emit == "mlir-scheduled" ? &std::cout : args.loweredIr);
  progress.end();
  if (!lowered)
    return fail(error);
  if (args.emit == "mlir-scheduled")
    return 0;
  if (std::ostream *steps =
          args.emit == "steps" ? &std::cout : args.loweredSteps)
    for (size_t l = 0; l < program.layers.size(); ++l)
      *steps << stepsLine(l, program.layers[l].steps.data(),
                          program.layers[l].steps.size());
  if (args.emit == "steps")
    return 0;
  program.target = target->name;
  const std::unique_ptr<Model> &model = job.model;
  const SparsityMode mode = job.mode;

  // Predicted mode on a SiLU model: the profile's firing thresholds, so that
  // the executable's recall measurement counts what the predictors were
  // trained to find (not every neuron, as "non-zero" would for SiLU).
  if (mode == SparsityMode::Predicted &&
      !isReluFamily(model->params().activation) &&
      job.profile.thresholds.size() == program.layers.size())
    for (size_t l = 0; l < program.layers.size(); ++l)
      program.layers[l].actThreshold = job.profile.thresholds[l];

  // The GPU part.
  CudaModule cuda;
  NvrtcImages gpuImages;
  const bool gpuPart = program.hasGpuPart();
  if (gpuPart) {
    cuda = emitCuda(program);
    if (args.emit == "cuda") {
      std::cout << cuda.source;
      return 0;
    }
    // Both images from one NVRTC run: the CUBIN for the target's
    // architecture, which the executable loads without a JIT where the
    // device runs it, and the PTX, which the driver compiles for any newer
    // architecture.
    std::string unit =
        (args.output.empty() ? std::string("program") : baseName(args.output)) +
        ".cu";
    if (args.emit.empty())
      progress.begin("nvrtc", "compiling the GPU kernels with NVRTC for " +
                                  target->smArch);
    bool compiled =
        compileCudaImages(cuda.source, unit, target->smArch, gpuImages, error);
    progress.end();
    if (!compiled)
      return fail(error);
    if (!gpuImages.cubinNote.empty())
      std::cerr << "pinferc: note: " << gpuImages.cubinNote
                << "; embedding the PTX only\n";
  } else if (args.emit == "cuda") {
    return fail("target " + target->name +
                " has no GPU part to emit CUDA for (every neuron is on the "
                "CPU)");
  }

  HostInputs host;
  host.cuda = gpuPart ? &cuda : nullptr;
  host.gpuImage = gpuImages.ptx;
  host.gpuCubin = gpuImages.cubin;
  if (args.emit == "cpp") {
    // The hash is only known once the weights are written.
    host.weightsFile = "OUT.weights.gguf";
    std::cout << emitHostCpp(program, host);
    return 0;
  }

  // The runtime the executable is linked with, looked up before the
  // weights are written so that a broken install fails at once.
  RuntimeLocation runtime;
  if (!findRuntime(runtime, error))
    return fail(error);
  // Likewise the host compiler and the CPU it is asked to compile for.
  const char *cxxEnv = std::getenv("CXX");
  const std::string cxx = cxxEnv && *cxxEnv ? cxxEnv : "c++";
  const std::string march = "-march=" + args.march;
  int probe = runProgram(
      {cxx, march, "-x", "c++", "-fsyntax-only", "/dev/null"}, error,
      "/dev/null");
  if (probe == -1)
    return fail(error);
  if (probe != 0)
    return fail("--march: host compiler '" + cxx + "' does not accept " +
                march + ", expected a CPU it knows (e.g. native, x86-64-v3)");

  // Packed weights and the executable are made under temporary names
  // beside their destinations and put in place together at the end, so that
  // a failure or an interruption leaves the previous pair as it was.
  if (!mayReplaceWeights(weightsPath, error))
    return fail(error);
  TempPath weightsTmp;
  if (!makeTempBeside(weightsPath, weightsTmp, error))
    return fail(error);
  PackedWeightsInfo packed;
  progress.begin("pack", "packing the weights into " + weightsPath,
                 Progress::Unit::Bytes);
  bool packedOk = writePackedWeights(*model, program, weightsTmp.path(), packed,
                                     error, progress.reporter());
  progress.end();
  if (!packedOk)
    return fail(error);
  host.weightsHash = packed.hash;
  host.weightsFile = baseName(weightsPath);

  // Host code in a private temporary directory.
  TempPath dir, cpp, log;
  if (!makeTempDir("pinferc", dir, error))
    return fail(error);
  cpp.adopt(dir.path() + "/main.cpp");
  log.adopt(dir.path() + "/compile.log");
  // The GPU images go to the assembler as files (HostInputs::imagesAsFiles)
  // unless the directory's name has a comma, which -Wa,-I,DIR would split.
  TempPath imageFile, cubinFile;
  if (!host.gpuImage.empty() && dir.path().find(',') == std::string::npos) {
    auto write = [&](TempPath &file, const char *name,
                     const std::vector<uint8_t> &bytes) {
      file.adopt(dir.path() + "/" + name);
      std::ofstream out(file.path(), std::ios::binary);
      out.write(reinterpret_cast<const char *>(bytes.data()),
                std::streamsize(bytes.size()));
      return bool(out.flush());
    };
    if (!write(imageFile, kGpuImageFile, host.gpuImage) ||
        (!host.gpuCubin.empty() &&
         !write(cubinFile, kGpuCubinFile, host.gpuCubin)))
      return fail(dir.path() + ": cannot write the GPU images");
    host.imagesAsFiles = true;
  }
  {
    std::ofstream out(cpp.path());
    out << emitHostCpp(program, host);
    if (!out)
      return fail(cpp.path() + ": cannot write the host code");
  }
  TempPath exe;
  if (!makeTempBeside(args.output, exe, error))
    return fail(error);
  // The host code instantiates the CPU half's kernels with the program's
  // constants (runtime/ffn_cpu.h): compiled for the target CPU, at -O3 as
  // the runtime is (at -O2 its copies of the K-quant kernels ran 13-23 %
  // slower than the runtime's own). -ffp-contract=off as the runtime is
  // built (CMakeLists.txt): the inlined kernels multiply bitwise as the
  // runtime's.
  std::vector<std::string> cmd = {cxx,         "-std=c++17",
                                  "-O3",       march,
                                  "-ffp-contract=off",
                                  "-I" + runtime.includeDir,
                                  cpp.path(),  runtime.library,
                                  // runtime/server.cpp's HTTP library
                                  "-lcpp-httplib",
                                  "-lpthread", "-ldl",
                                  "-o",        exe.path()};
  if (host.imagesAsFiles)
    cmd.push_back("-Wa,-I," + dir.path());
  progress.begin("host compile",
                 "compiling the host code (" + cxx + " " + march + ")");
  int rc = runProgram(cmd, error, log.path());
  progress.end();
  if (rc == -1)
    return fail(error);
  if (rc != 0) {
    std::string why = hostCompilerFailure(log.path());
    if (why == "no space left on device")
      return fail(args.output + ": no space left on device while the host "
                                "compiler wrote it");
    // Kept for inspection.
    cpp.release();
    log.release();
    const std::string kept = dir.release();
    return fail("host compiler '" + cxx + " " + march +
                "' failed with status " + std::to_string(rc) +
                (why.empty() ? "" : ": " + why) + " (" + kept +
                "/main.cpp and compile.log kept)");
  }
  if (::chmod(exe.path().c_str(), 0755) != 0)
    return fail(args.output + ": cannot make it executable: " +
                std::strerror(errno));
  std::vector<std::pair<TempPath *, std::string>> outputs = {
      {&weightsTmp, weightsPath}, {&exe, args.output}};
  const bool trained = !job.trainedPredictors.empty();
  if (trained)
    outputs.push_back({&job.trainedPredictors, predictorsPathFor(args.output)});
  if (!commitOutputs(outputs, error))
    return fail(error);

  if (!args.quiet) {
    uint64_t hot = 0;
    for (const LayerDesc &l : program.layers)
      hot += l.hot.size();
    double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    std::cerr << "pinferc: wrote " << args.output << (trained ? ", " : " and ")
              << weightsPath << " (" << formatBytes(packed.fileBytes) << ")"
              << (trained ? " and " + predictorsPathFor(args.output) : "")
              << " for " << target->name << ": " << hot << " of "
              << uint64_t(program.params.nFF) * program.params.nLayer
              << " FFN neurons on the GPU, sparsity " << sparsityModeName(mode)
              << ", " << std::fixed << std::setprecision(1) << secs << " s ("
              << progress.times() << ")\n";
  }
  return 0;
}

} // namespace

} // namespace pinfer
