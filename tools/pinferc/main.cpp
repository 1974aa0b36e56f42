//===- main.cpp - the pinferc command line --------------------------------===//
//
// Parses flags (CLI11, kept to this one file because it compiles slowly) and
// calls the verbs in compiler/Driver.h. `pinferc run` takes exactly the
// generation flags of a generated executable, so it is parsed by the
// runtime's own parser.
//
//===----------------------------------------------------------------------===//

#include "compiler/Compile.h"
#include "compiler/Driver.h"
#include "runtime/version.h"
#include "runtime/cli_args.h"
#include "runtime/output_files.h"

#include <CLI/CLI.hpp>

#include <cstring>
#include <iostream>
#include <new>
#include <sys/stat.h>

static int runVerb(int argc, char **argv) {
  std::vector<std::string> args(argv + 2, argv + argc);
  pinfer::GenerateFlags flags;
  std::string error;
  if (!pinfer::parseGenerateFlags(args, flags, error)) {
    std::cerr << "pinferc run: error: " << error << "\n";
    return 2;
  }
  for (const std::string &note : flags.notes)
    std::cerr << "pinferc run: note: " << note << "\n";
  if (flags.version) {
    std::cout << "pinferc " << pinfer::pinferVersion() << "\n";
    return 0;
  }
  if (flags.help) {
    std::cout << "usage: pinferc run MODEL.gguf [flags]\n\n"
                 "Generates text with the dense reference (no compilation).\n\n"
              << pinfer::generateFlagsHelp();
    return 0;
  }
  if (flags.positional.size() != 1) {
    std::cerr << "pinferc run: error: expected one model file, got "
              << flags.positional.size() << " (see pinferc run --help)\n";
    return 2;
  }
  pinfer::RunArgs run;
  run.model = flags.positional[0];
  run.gen = flags.gen;
  run.promptFile = flags.promptFile;
  run.escape = flags.escape;
  return pinfer::runRun(run);
}

// The main job: pinferc MODEL.gguf --target T -o OUT.
static std::string compileHint(int argc, char **argv);

static int compileVerb(int argc, char **argv) {
  CLI::App app{"pinferc: compiles a GGUF language model and its activation "
               "profile into one executable split between GPU and CPU.\n"
               "Verbs: inspect, tokenize, run, profile, plan, train-predictors, "
               "perplexity, "
               "targets (pinferc VERB --help)."};
  pinfer::CompileArgs c;
  app.set_version_flag("--version",
                       std::string("pinferc ") + pinfer::pinferVersion());
  app.add_option("model", c.model, "GGUF model file")->required();
  app.add_option("-o,--output", c.output, "Executable to write");
  app.add_option("--target", c.target, "Target (see pinferc targets)")
      ->capture_default_str();
  app.add_option("--trace", c.trace,
                 "Trace from pinferc profile (default: profile the built-in "
                 "calibration text)");
  app.add_option("--plan", c.plan, "Use this plan JSON instead of solving");
  app.add_option("--sparsity", c.sparsity,
                 "dense: compute every neuron; exact: skip neurons whose "
                 "activation is exactly zero; predicted: skip neurons the "
                 "predictors call off; threshold: skip neurons whose "
                 "|activation| is at most the layer's calibrated threshold "
                 "(SiLU models); auto: predicted when predictors are "
                 "stored, given or trainable from the trace (or, without "
                 "--trace, for ReLU models: trained on the built-in text), "
                 "else exact for ReLU models and dense for SiLU and GELU "
                 "models; without --trace, a model the GPU holds whole runs "
                 "exact or dense (nothing left on the CPU to predict) and "
                 "needs no profile")
      ->check(
          CLI::IsMember({"dense", "exact", "predicted", "threshold", "auto"}))
      ->capture_default_str();
  app.add_option("--target-sparsity", c.targetSparsity,
                 "Threshold mode: share of activations to skip, in [0, 1) "
                 "(default: the trace's, or 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--predictors", c.predictors,
                 "Predictor file from pinferc train-predictors");
  app.add_option("--emit", c.emit,
                 "Print an intermediate form and stop: mlir, mlir-placed, "
                 "mlir-scheduled, steps, cuda, cpp")
      ->check(CLI::IsMember(
          {"mlir", "mlir-placed", "mlir-scheduled", "steps", "cuda", "cpp"}));
  app.add_option("--vram-budget", c.vramBudget,
                 "VRAM to plan for: GiB as a bare number, as PowerInfer's "
                 "(6), or with a unit (6GiB, 7500MiB; default: the "
                 "target's)");
  app.add_option("-c,--ctx-size", c.nCtx, "Context length the plan reserves")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("-t,--threads", c.nThreads, "Profiling threads")
      ->check(CLI::Range(1, 1024));
  app.add_option("--z3-timeout", c.z3Seconds,
                 "Hard wall-clock limit of the Z3 solve, seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_flag("--no-z3", c.noZ3, "Use the exact DP only");
  app.add_option("--min-granules", c.minGranules,
                 "A layer gets no GPU neurons or at least N granules, "
                 "whatever its round trip costs (default: the target's "
                 "launch and sync costs decide)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--march", c.march,
                 "CPU the executable's host code is compiled for (the host "
                 "compiler's -march; native: this machine)")
      ->capture_default_str();
  app.add_flag("-q,--quiet", c.quiet, "No progress lines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0)
      return app.exit(e);
    std::cerr << "pinferc: error: " << e.what() << compileHint(argc, argv)
              << " (see pinferc --help)\n";
    return 2;
  }
  c.nCtxGiven = app.count("-c") > 0;
  return pinfer::compileModel(c);
}

static bool isVerb(const char *arg);

// What a command line that did not parse as a compile was likely meant to
// be: a mistyped verb, or llama.cpp's generation flags given to the
// compiler.
static std::string compileHint(int argc, char **argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  struct stat st;
  if (!first.empty() && first[0] != '-' &&
      first.find_first_of("./") == std::string::npos &&
      ::stat(first.c_str(), &st) != 0)
    return "; '" + first +
           "' is neither a file nor a verb (inspect, tokenize, targets, "
           "profile, plan, perplexity, train-predictors, run)";
  for (int i = 1; i < argc; ++i)
    for (const char *gen :
         {"-p", "--prompt", "-n", "--n-predict", "-m", "--model"})
      if (std::strcmp(argv[i], gen) == 0)
        return "; pinferc compiles MODEL.gguf -o OUT, whose executable "
               "generates (./OUT -p TEXT -n N), as does pinferc run MODEL "
               "-p TEXT";
  return "";
}

static bool isVerb(const char *arg) {
  for (const char *verb : {"inspect", "tokenize", "targets", "profile", "plan",
                           "perplexity", "train-predictors"})
    if (std::strcmp(arg, verb) == 0)
      return true;
  return false;
}

static int pinfercMain(int argc, char **argv);

int main(int argc, char **argv) {
  // Allocations that flags or files decide are sized and checked before
  // they are made; this turns what is left into one line, not an abort.
  try {
    return pinfercMain(argc, argv);
  } catch (const std::bad_alloc &) {
    std::cerr << "pinferc: error: out of memory\n";
    return 1;
  }
}

static int pinfercMain(int argc, char **argv) {
  // Every verb that writes files writes them through temporaries
  // (runtime/output_files.h); none is left behind on Ctrl-C.
  pinfer::installTempCleanup();
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0)
    return runVerb(argc, argv);
  if (argc < 2 || !isVerb(argv[1]))
    return compileVerb(argc, argv);
  // `pinferc VERB --version` too, whatever else the line holds (as
  // llama.cpp's tools answer it): the verbs' own parsers would first ask
  // for their required arguments.
  for (int i = 2; i < argc; ++i)
    if (std::strcmp(argv[i], "--version") == 0) {
      std::cout << "pinferc " << pinfer::pinferVersion() << "\n";
      return 0;
    }

  CLI::App app{"pinferc: compiles a GGUF language model and its activation "
               "profile into an executable split between GPU and CPU"};
  app.require_subcommand(1, 1);
  app.set_version_flag("--version",
                       std::string("pinferc ") + pinfer::pinferVersion());
  app.footer("Also: pinferc run MODEL.gguf -p TEXT [-n N ...] runs the dense "
             "reference (see pinferc run --help).");

  pinfer::InspectArgs inspect;
  CLI::App *inspectCmd = app.add_subcommand(
      "inspect", "Print a model's metadata, tensors and sparsity facts");
  inspectCmd->add_option("model", inspect.model, "GGUF model file")
      ->required();
  inspectCmd->add_flag("--json", inspect.json, "Print JSON");

  pinfer::TokenizeArgs tokenize;
  CLI::App *tokenizeCmd = app.add_subcommand(
      "tokenize", "Print the tokens of a text (works on vocabulary-only files)");
  tokenizeCmd->add_option("model", tokenize.model, "GGUF model or vocabulary")
      ->required();
  tokenizeCmd->add_option("-p,--prompt", tokenize.prompt, "Text to tokenize")
      ->required();
  tokenizeCmd->add_flag("--ids", tokenize.idsOnly,
                        "Print only the ids, as [1, 2, 3]");
  tokenizeCmd->add_flag("--no-bos", tokenize.noBos, "Do not add BOS");
  // Callbacks, not a negated flag bound to the bool, whose help showed the
  // flag's stored value ("{false}") as if it were a default.
  tokenizeCmd->add_flag_callback(
      "--no-parse-special", [&tokenize] { tokenize.parseSpecial = false; },
      "Keep special-token text as text (by default it becomes the special "
      "token, as in llama-tokenize)");
  // The old opt-in, now the default; accepted so that scripts keep working.
  tokenizeCmd->add_flag_callback(
      "--parse-special", [] {},
      "Turn special-token text into special tokens (the default)");

  app.add_subcommand("run", "Generate with the dense reference (see pinferc "
                            "run --help)");
  CLI::App *targetsCmd =
      app.add_subcommand("targets", "Print the table of compilation targets");

  pinfer::ProfileArgs profile;
  CLI::App *profileCmd = app.add_subcommand(
      "profile", "Record per-neuron firing counts over a corpus");
  profileCmd->add_option("model", profile.model, "GGUF model file")
      ->required();
  profileCmd->add_option("--corpus", profile.corpus,
                         "Text file (default: built-in calibration text)");
  profileCmd->add_option("-o,--output", profile.output, "Trace file to write")
      ->required();
  profileCmd->add_option("--tokens", profile.maxTokens,
                         "Stop after N tokens (default: whole corpus)")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
  profileCmd->add_option("-t,--threads", profile.nThreads, "CPU threads")
      ->check(CLI::Range(1, 1024));
  profileCmd->add_option("-c,--ctx-size", profile.nCtx,
                         "Chunk length (default: min(512, model context))")
      ->check(CLI::Range(2, 1 << 24));
  profileCmd->add_option("--samples", profile.samples,
                         "(input, firing mask) samples kept per layer for "
                         "predictor training");
  profileCmd->add_option("--target-sparsity", profile.targetSparsity,
                         "SiLU models: share of neurons counted as off")
      ->check(CLI::Range(0.0, 0.999));
  profileCmd->add_flag("--force", profile.force, "Overwrite the output");

  pinfer::PlanArgs plan;
  CLI::App *planCmd = app.add_subcommand(
      "plan", "Decide which FFN neurons go to the GPU; print the plan");
  planCmd->add_option("model", plan.model, "GGUF model file")->required();
  planCmd->add_option("--trace", plan.trace,
                      "Trace from pinferc profile (default: profile the "
                      "built-in calibration text)");
  planCmd->add_option("--target", plan.target, "Target (see pinferc targets)")
      ->capture_default_str();
  planCmd->add_option("--vram-budget", plan.vramBudget,
                      "VRAM to plan for: GiB as a bare number (6), or with a "
                      "unit (6GiB, 7500MiB; default: the target's)");
  planCmd->add_option("-c,--ctx-size", plan.nCtx, "Context length (KV cache)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  planCmd->add_option("--json", plan.jsonOut, "Write the plan as JSON");
  planCmd->add_option("--svg", plan.svgOut, "Write a plot of the plan");
  planCmd->add_option("--z3-timeout", plan.z3Seconds,
                      "Hard wall-clock limit of the Z3 solve, seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  planCmd->add_flag("--no-z3", plan.noZ3, "Use the exact DP only");
  planCmd
      ->add_option("--min-granules", plan.minGranules,
                   "A layer gets no GPU neurons or at least N granules, "
                   "whatever its round trip costs (default: the "
                   "target's launch and sync costs decide)")
      ->check(CLI::Range(0, 1 << 20));
  planCmd->add_option("-t,--threads", plan.nThreads, "CPU threads")
      ->check(CLI::Range(1, 1024));
  planCmd
      ->add_option("--sparsity", plan.sparsity,
                   "The mode the compile will run (as pinferc's "
                   "--sparsity): what a CPU neuron costs, and in "
                   "predicted mode the predictors billed")
      ->check(
          CLI::IsMember({"dense", "exact", "predicted", "threshold", "auto"}))
      ->capture_default_str();

  pinfer::PerplexityArgs ppl;
  CLI::App *pplCmd = app.add_subcommand(
      "perplexity", "Perplexity of a text under the dense reference");
  pplCmd->add_option("model", ppl.model, "GGUF model file")->required();
  pplCmd->add_option("-f,--file", ppl.textFile,
                     "Text file (default: built-in calibration text)");
  pplCmd->add_option("-c,--ctx-size", ppl.nCtx, "Chunk length")
      ->capture_default_str()
      ->check(CLI::Range(8, 1 << 20));
  pplCmd->add_option("-t,--threads", ppl.nThreads, "CPU threads")
      ->check(CLI::Range(1, 1024));
  pplCmd->add_option("--chunks", ppl.maxChunks, "Score at most N chunks")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
  pplCmd->add_flag("--argmax", ppl.argmax,
                   "With --json: list the most likely next token at each "
                   "scored position");
  pplCmd->add_flag("--json", ppl.json, "Print JSON");

  pinfer::TrainPredictorsArgs train;
  CLI::App *trainCmd = app.add_subcommand(
      "train-predictors",
      "Train per-layer activation predictors from a trace's samples");
  trainCmd->add_option("model", train.model, "GGUF model file")->required();
  trainCmd->add_option("--trace", train.trace,
                       "Trace from pinferc profile --samples N")
      ->required();
  trainCmd->add_option("-o,--output", train.output, "Predictor file to write")
      ->required();
  trainCmd->add_option("-t,--threads", train.nThreads, "CPU threads")
      ->check(CLI::Range(1, 1024));
  trainCmd->add_flag("--force", train.force, "Overwrite the output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    // --help prints the usage and exits 0; errors are one line.
    if (e.get_exit_code() == 0)
      return app.exit(e);
    std::cerr << "pinferc: error: " << e.what() << " (see pinferc --help)\n";
    return 2;
  }

  if (*inspectCmd)
    return pinfer::runInspect(inspect);
  if (*tokenizeCmd)
    return pinfer::runTokenize(tokenize);
  if (*targetsCmd)
    return pinfer::runTargets();
  if (*profileCmd)
    return pinfer::runProfile(profile);
  if (*planCmd)
    return pinfer::runPlan(plan);
  if (*pplCmd)
    return pinfer::runPerplexity(ppl);
  if (*trainCmd)
    return pinfer::runTrainPredictors(train);
  return 0;
}
