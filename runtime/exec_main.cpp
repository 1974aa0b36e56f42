// The main logic of generated executables; see exec_main.h.
#include "runtime/exec_main.h"
#include "runtime/chat_cli.h"
#include "runtime/chat_template.h"
#include "runtime/server.h"
#include "runtime/version.h"

#include "runtime/cli_args.h"
#include "runtime/executor.h"
#include "runtime/gguf.h"
#include "runtime/json.h"
#include "runtime/perplexity.h"
#include "runtime/tokenizer.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace pinfer {

namespace {

int fail(const std::string &prog, const std::string &msg) {
  std::cerr << prog << ": error: " << msg << "\n";
  return 1;
}

// The directory of the running executable (/proc/self/exe), else argv[0]'s.
std::string executableDir(const char *argv0) {
  std::string path;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0)
    path.assign(buf, size_t(n));
  else
    path = argv0;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string baseName(const char *argv0) {
  std::string s = argv0;
  size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

// Opens the packed weights and checks that they are the ones this program
// was compiled with.
std::unique_ptr<GGUFFile> openWeights(const std::string &path,
                                      const Program &program, int nThreads,
                                      std::string &error) {
  if (::access(path.c_str(), R_OK) != 0) {
    error = path + ": packed weights file not found (it is written beside "
                   "the executable by pinferc; or pass --weights PATH)";
    return nullptr;
  }
  std::unique_ptr<GGUFFile> f = GGUFFile::open(path, error);
  if (!f)
    return nullptr;
  if (!f->find(kPackedHashKey)) {
    error = path + ": has no key " + kPackedHashKey +
            (f->find(kArchitectureKey)
                 ? ": this is a source model, not the packed weights pinferc "
                   "wrote beside the executable (OUT.weights.gguf)"
                 : ", expected the packed weights pinferc wrote beside the "
                   "executable (OUT.weights.gguf)");
    return nullptr;
  }
  std::string stored;
  uint64_t storedHash = 0;
  if (!f->getString(kPackedHashKey, stored, error))
    return nullptr;
  if (!parsePackedHash(stored, storedHash)) {
    error = path + ": key " + kPackedHashKey + ": '" + stored +
            "' is not a 16-digit hex hash";
    return nullptr;
  }
  std::string want = formatPackedHash(program.weightsHash);
  if (storedHash != program.weightsHash) {
    error = path + ": key " + kPackedHashKey + ": weights " + stored +
            " were packed for another program, expected " + want +
            " (recompile with pinferc)";
    return nullptr;
  }
  uint64_t actual = packedWeightsHash(*f, nThreads);
  if (actual != program.weightsHash) {
    error = path + ": tensor data at offset " +
            std::to_string(f->dataOffset()) + " has content hash " +
            formatPackedHash(actual) + ", expected " + want +
            " (the file was changed after compilation)";
    return nullptr;
  }
  return f;
}

// --gpu-profile's table on `os`: each kind of kernel's launches and time,
// prompt and generated tokens apart, and the rate it read weights at where
// the launches name their bytes.
void printKernelTimes(std::ostream &os, const std::string &prog,
                      const std::vector<CudaDriver::KernelTime> &times) {
  double total = 0;
  long launches = 0;
  for (const CudaDriver::KernelTime &t : times) {
    total += t.ms;
    launches += t.launches;
  }
  char line[160];
  std::snprintf(line, sizeof line,
                "%s: GPU kernels: %ld launches, %.3f ms on the GPU\n",
                prog.c_str(), launches, total);
  os << line;
  std::snprintf(line, sizeof line, "  %-7s %-22s %9s %11s %7s %10s %9s\n",
                "phase", "kernel", "launches", "total ms", "share", "mean us",
                "GB/s");
  os << line;
  for (const CudaDriver::KernelTime &t : times) {
    char rate[32] = "-";
    if (t.bytes && t.ms > 0)
      std::snprintf(rate, sizeof rate, "%.1f", double(t.bytes) / t.ms * 1e-6);
    std::snprintf(line, sizeof line,
                  "  %-7s %-22s %9ld %11.3f %6.1f%% %10.2f %9s\n",
                  t.phase.c_str(), t.kernel.c_str(), t.launches, t.ms,
                  total > 0 ? 100.0 * t.ms / total : 0.0,
                  1e3 * t.ms / double(t.launches), rate);
    os << line;
  }
}

// With --gpu-profile and a GPU, the table on stderr; the exit status.
int printKernelTimesIf(bool profile, Executor &exec, const std::string &prog) {
  if (!profile || !exec.gpuActive())
    return 0;
  std::vector<CudaDriver::KernelTime> times;
  std::string error;
  if (!exec.gpuKernelTimes(times, error))
    return fail(prog, error);
  printKernelTimes(std::cerr, prog, times);
  return 0;
}

} // namespace

namespace {
int execMainUnguarded(int argc, char **argv, const Program &program);
} // namespace

int cpuLacks(const char *argv0, const char *feature) {
  std::cerr << baseName(argv0 ? argv0 : "pinfer")
            << ": error: this executable was compiled (pinferc --march) for "
               "a CPU with "
            << feature
            << ", which this CPU lacks; compile it again on this machine, or "
               "with --march naming this CPU\n";
  return 1;
}

// Every allocation a flag or a file decides is sized and checked before it
// is made; this catches what is left (memory taken by other programs in
// the meantime) as one line instead of an abort.
int execMain(int argc, char **argv, const Program &program) {
  try {
    return execMainUnguarded(argc, argv, program);
  } catch (const std::bad_alloc &) {
    return fail(argc > 0 ? argv[0] : "pinfer", "out of memory");
  }
}

namespace {
int execMainUnguarded(int argc, char **argv, const Program &program) {
  const std::string prog = baseName(argc > 0 ? argv[0] : "pinfer");
  std::vector<std::string> rest;
  std::string weightsPath;
  bool noGpu = false;
  bool gpuSyncDebug = false;
  bool gpuProfile = false;
  bool serve = false; // --server
  bool chat = false;  // -cnv
  std::string systemPrompt;
  ServerOptions server;
  bool measureRecall = false;
  bool verbose = false; // also print the steps run per layer
  std::string pplFile; // --perplexity FILE: score a text instead
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--weights" && i + 1 < argc)
      weightsPath = argv[++i];
    else if (a.rfind("--weights=", 0) == 0)
      weightsPath = a.substr(10);
    else if (a == "--weights")
      return fail(prog, "--weights: expected a value");
    else if (a == "--cpu")
      noGpu = true;
    else if (a == "--gpu-sync-debug")
      gpuSyncDebug = true;
    else if (a == "--gpu-profile")
      gpuProfile = true;
    else if (a == "--server")
      serve = true;
    else if (a == "-cnv" || a == "--conversation")
      chat = true;
    else if (a == "-no-cnv" || a == "--no-conversation")
      chat = false; // the last of the two counts, as in llama-cli
    else if ((a == "-sys" || a == "--system-prompt") && i + 1 < argc)
      systemPrompt = argv[++i];
    else if (a == "-sys" || a == "--system-prompt")
      return fail(prog, a + ": expected a value");
    else if ((a == "--host" || a == "--port" || a == "--chat-template") &&
             i + 1 >= argc)
      return fail(prog, a + ": expected a value");
    else if (a == "--host")
      server.host = argv[++i];
    else if (a == "--chat-template") {
      server.chatTemplate = argv[++i];
      bool known = false;
      for (const std::string &n : chatTemplateNames())
        known |= n == server.chatTemplate;
      if (!known)
        return fail(prog, "--chat-template: '" + server.chatTemplate +
                              "' is not one of chatml, llama3, gemma, phi3, "
                              "llama2, mistral");
    } else if (a == "--port") {
      char *end = nullptr;
      const long port = std::strtol(argv[++i], &end, 10);
      if (!*argv[i] || *end || port < 0 || port > 65535)
        return fail(prog, std::string("--port: expected 0..65535, got '") +
                              argv[i] + "'");
      server.port = int(port);
    }
    else if (a == "--perplexity" && i + 1 < argc)
      pplFile = argv[++i];
    else if (a == "--perplexity")
      return fail(prog, "--perplexity: expected a text file");
    else if (a == "--check-sparsity" || a == "--measure-recall")
      measureRecall = true;
    else if (a == "--verbose")
      verbose = true;
    else
      rest.push_back(a);
  }
  GenerateFlags flags;
  std::string error;
  if (!parseGenerateFlags(rest, flags, error))
    return fail(prog, error);
  for (const std::string &note : flags.notes)
    std::cerr << prog << ": note: " << note << "\n";
  if (flags.help) {
    std::cout
        << "usage: " << prog << " [flags]\n"
        << "A " << program.modelName << " executable compiled by pinferc "
        << "for target " << program.target << " (sparsity "
        << sparsityModeName(program.mode) << ").\n"
        << generateFlagsHelp()
        << "      --weights PATH      packed weights (default: "
        << program.weightsFile << " beside the executable)\n"
        << "      --cpu               compute the GPU part on the CPU\n"
        << "  -cnv, --conversation    chat in the terminal in the model's "
           "template\n"
        << "  -sys, --system-prompt T the chat's system message\n"
        << "      --server            serve an OpenAI-compatible HTTP API "
           "(docs/server.md)\n"
        << "      --host H, --port P  where it listens (default "
           "127.0.0.1:8080; "
           "port 0: any)\n"
        << "      --chat-template T   chatml, llama3, gemma, phi3, llama2 or "
           "mistral\n"
        << "                          (default: the model's)\n"
        << "      --gpu-sync-debug    wait for each GPU kernel, so that a "
           "fault names\n"
        << "                          its kernel and layer, and check that "
           "it wrote\n"
        << "                          nothing past its buffers (slower)\n"
        << "      --gpu-profile       time each GPU kernel and print a table "
           "at the end\n"
        << "                          (on stderr; --json: gpu_kernels)\n"
        << "      --perplexity FILE   print the perplexity of FILE (chunks of "
           "-c, default 256)\n"
        << "      --check-sparsity    predicted sparsity: also count the "
           "neurons the\n"
        << "                          predictor missed (--json: recall;\n"
        << "                          --measure-recall is the same)\n"
        << "      --verbose           print the program steps each layer ran "
           "for the\n"
        << "                          last generated token (on stderr)\n";
    return 0;
  }
  if (!flags.positional.empty())
    return fail(prog, "unexpected argument '" + flags.positional[0] +
                          "' (see --help)");
  if (flags.version) {
    std::cout << prog << ": " << program.modelName << " for "
              << program.target << " (sparsity "
              << sparsityModeName(program.mode) << "), compiled by pinferc "
              << pinferVersion() << "\n";
    return 0;
  }
  if (!flags.promptFile.empty() &&
      !readPromptFile(flags.promptFile, flags.gen.prompt, error))
    return fail(prog, error);
  if (!flags.promptFile.empty() && flags.escape)
    flags.gen.prompt = processEscapes(flags.gen.prompt);
  if (weightsPath.empty())
    weightsPath = executableDir(argv[0]) + "/" + program.weightsFile;
  const auto loadStart = std::chrono::steady_clock::now();
  // The content check reads the whole file: with the threads -t allows.
  std::unique_ptr<GGUFFile> weights = openWeights(
      weightsPath, program,
      flags.gen.nThreads > 0 ? flags.gen.nThreads
                             : int(std::thread::hardware_concurrency()),
      error);
  if (!weights)
    return fail(prog, error);
  std::unique_ptr<Tokenizer> tok = Tokenizer::fromGGUF(*weights, error);
  if (!tok)
    return fail(prog, error);

  GenerateOptions &g = flags.gen;
  int nCtx = g.nCtx;
  if (nCtx < 0 && !pplFile.empty())
    nCtx = 256; // as pinferc perplexity, so the two compare
  if (nCtx == GenerateOptions::kModelContext)
    nCtx = program.nCtxTrain ? int(program.nCtxTrain) : 4096;
  if (nCtx < 0)
    nCtx =
        std::min<int>(program.nCtxTrain ? int(program.nCtxTrain) : 4096, 4096);
  Executor exec(program, *weights, g.nThreads);
  exec.setPollMicros(g.pollMicros);
  exec.setGpuSyncDebug(gpuSyncDebug);
  if (gpuProfile && (chat || serve)) {
    std::cerr << prog << ": note: --gpu-profile has no effect with "
              << (serve ? "--server" : "-cnv") << "\n";
    gpuProfile = false;
  }
  exec.setGpuProfile(gpuProfile);
  if (g.nBatch > 0)
    exec.setBatchSize(g.nBatch);
  if (!exec.init(nCtx, !noGpu, error))
    return fail(prog, error);
  warnAboutFlags(g, nCtx, int(program.nCtxTrain), std::cerr);
  exec.setMeasureRecall(measureRecall);
  if (!exec.gpuNote().empty())
    std::cerr << prog << ": " << exec.gpuNote() << "\n";

  if (!pplFile.empty()) {
    std::ifstream in(pplFile, std::ios::binary);
    if (!in)
      return fail(prog, pplFile + ": cannot read the text file");
    std::stringstream ss;
    ss << in.rdbuf();
    PerplexityResult r;
    if (!perplexity(exec, *tok, ss.str(), 0, r, error))
      return fail(prog, pplFile + ": " + error);
    // The FFN sparsity measured over the scored text, so that a mode's
    // perplexity can be read against how much it skipped.
    uint64_t fired = 0, slots = 0;
    for (uint32_t l = 0; l < program.nLayer; ++l) {
      fired += exec.stats()[l].fired;
      slots += exec.stats()[l].tokens * program.nFF;
    }
    const double sparsity = slots ? 1.0 - double(fired) / double(slots) : 0.0;
    printPerplexity(std::cout, r, nCtx, g.json,
                    std::string(", sparsity ") + sparsityModeName(program.mode),
                    [&](JsonWriter &w) {
                      w.field("sparsity_mode", sparsityModeName(program.mode))
                          .field("sparsity", sparsity);
                    });
    return printKernelTimesIf(gpuProfile, exec, prog);
  }

  std::string arch, ignored;
  weights->getString("general.architecture", arch, ignored);
  if (chat) {
    std::string tmpl;
    weights->getString("tokenizer.chat_template", tmpl, ignored);
    std::string family = server.chatTemplate.empty()
                             ? detectChatTemplate(tmpl, arch)
                             : server.chatTemplate;
    if (family.empty())
      return fail(prog, "the model's chat template is none of chatml, llama3, "
                        "gemma, phi3, llama2, mistral: choose one with "
                        "--chat-template NAME");
    g.program = prog;
    if (!flags.nPredictGiven)
      g.nPredict = -1; // each answer to its end, as llama-cli
    if (g.json)
      std::cerr << prog << ": note: --json has no effect in a chat\n";
    // As llama-cli: -p is the first user turn (-sys the system message).
    return runChat(exec, *tok, family, systemPrompt, g.prompt, g, std::cin,
                   std::cout, std::cerr);
  }
  if (serve) {
    if (!g.prompt.empty() || g.json)
      std::cerr << prog << ": note: " << (g.json ? "--json" : "-p")
                << " has no effect with --server (requests bring their own)\n";
    std::string tmpl;
    weights->getString("tokenizer.chat_template", tmpl, ignored);
    server.modelName = program.modelName;
    server.architecture = arch;
    server.defaults = g;
    server.lengthGiven = flags.nPredictGiven;
    server.program = prog;
    return runServer(exec, *tok, tmpl, server, std::cerr);
  }
  if (g.json) {
    g.extraJson = [&](JsonWriter &w) {
      w.field("target", program.target);
      w.field("sparsity_mode", sparsityModeName(program.mode));
      w.field("device", exec.deviceName());
      w.field("gpu_active", exec.gpuActive());
      if (exec.gpuActive()) {
        w.field("gpu_image", exec.gpuImageKind());
        w.field("gpu_graph_launches", int64_t(exec.gpuGraphLaunches()));
        w.field("gpu_graph_captures", int64_t(exec.gpuGraphCaptures()));
        std::vector<CudaDriver::KernelTime> times;
        std::string timesError;
        if (gpuProfile && exec.gpuKernelTimes(times, timesError)) {
          w.key("gpu_kernels").beginArray();
          for (const CudaDriver::KernelTime &t : times) {
            w.beginObject();
            w.field("phase", t.phase).field("kernel", t.kernel);
            w.field("launches", int64_t(t.launches)).field("ms", t.ms);
            if (t.bytes)
              w.field("bytes", t.bytes);
            w.endObject();
          }
          w.endArray();
        }
      }
      w.field("output_head_device", exec.headOnGpu() ? "gpu" : "cpu");
      // The VRAM the plan bills at this -c (what the start checks is free
      // and reserves), what the driver says was taken, the buffers carved
      // from the bill and any it did not hold; 0 when the GPU part runs on
      // the CPU.
      w.field("vram_bill_bytes", exec.vramBill());
      w.field("vram_taken_bytes", exec.vramTaken());
      w.field("gpu_buffers", int64_t(exec.gpuBuffers()));
      w.field("gpu_buffers_beyond_bill", int64_t(exec.gpuBuffersBeyondBill()));
      if (gpuSyncDebug)
        w.field("gpu_guard_checks", int64_t(exec.gpuGuardChecks()));
      // What one generated token read, counted by the decoder as it ran.
      w.field("cpu_weight_bytes_per_token", exec.cpuBytesPerToken());
      w.field("gpu_weight_bytes_per_token", exec.gpuBytesPerToken());
      uint64_t fired = 0, slots = 0;
      w.key("layers").beginArray();
      for (uint32_t l = 0; l < program.nLayer; ++l) {
        const LayerStats &s = exec.stats()[l];
        const ProgramLayer &pl = program.layers[l];
        fired += s.fired;
        slots += s.tokens * program.nFF;
        w.beginObject();
        w.field("layer", l);
        w.field("hot_neurons", pl.nHot);
        w.field("cold_neurons", pl.nCold);
        w.field("ffn_hot_device", exec.gpuActive() && pl.nHot ? "gpu" : "cpu");
        w.field("neurons_computed_gpu", s.gpuNeurons);
        w.field("neurons_computed_cpu", s.cpuNeurons);
        w.field("tokens", s.tokens);
        if (program.mode == SparsityMode::Predicted) {
          w.field("predicted_neurons", s.predicted);
          // SiLU without the profile's firing threshold: every neuron is
          // non-zero, so recall would mean nothing and is left out.
          const bool siluUnknown =
              std::string(program.activation) == "silu" && pl.actThreshold <= 0.f;
          if (exec.measureRecall() && !siluUnknown)
            w.field("recall",
                    s.coldFired + s.missed
                        ? double(s.coldFired) / double(s.coldFired + s.missed)
                        : 1.0);
        }
        if (program.mode == SparsityMode::Threshold || pl.actThreshold > 0.f)
          w.field("act_threshold", double(pl.actThreshold));
        // The steps the decoder ran for the last token it evaluated alone.
        const std::vector<ProgramStep> &ran = exec.ranSteps()[l];
        if (!ran.empty())
          w.field("steps", stepsText(ran.data(), ran.size()));
        w.field("sparsity",
                s.tokens
                    ? 1.0 - double(s.fired) / (double(s.tokens) * program.nFF)
                    : 0.0);
        w.endObject();
      }
      w.endArray();
      w.field("sparsity", slots ? 1.0 - double(fired) / double(slots) : 0.0);
    };
  }
  g.program = prog;
  g.loadMs = std::chrono::duration<double, std::milli>(
                 std::chrono::steady_clock::now() - loadStart)
                 .count();
  const int rc = generate(exec, *tok, g);
  if (const int profiled = printKernelTimesIf(gpuProfile, exec, prog))
    return profiled;
  if (verbose)
    for (uint32_t l = 0; l < program.nLayer; ++l) {
      const std::vector<ProgramStep> &ran = exec.ranSteps()[l];
      if (!ran.empty())
        std::cerr << stepsLine(l, ran.data(), ran.size());
    }
  return rc;
}
} // namespace

} // namespace pinfer
