// Parser for the generation flags shared by `pinferc run` and executables.
#include "runtime/cli_args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/stat.h>

namespace pinfer {

static bool parseInt(const std::string &flag, const std::string &s, long lo,
                     long hi, int &out, std::string &error) {
  errno = 0;
  char *end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || errno || v < lo || v > hi) {
    error = flag + ": expected an integer in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "], got '" + s + "'";
    return false;
  }
  out = int(v);
  return true;
}

static bool parseFloat(const std::string &flag, const std::string &s, float lo,
                       float hi, float &out, std::string &error) {
  errno = 0;
  char *end = nullptr;
  float v = std::strtof(s.c_str(), &end);
  if (s.empty() || *end || errno || !(v >= lo && v <= hi)) {
    // Shortest forms ("0.5", "100"); no lower bound: "at most".
    auto num = [](float x) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", double(x));
      return std::string(buf);
    };
    error = flag + ": expected a number " +
            (std::isinf(lo) ? "of at most " + num(hi)
                            : "in [" + num(lo) + ", " + num(hi) + "]") +
            ", got '" + s + "'";
    return false;
  }
  out = v;
  return true;
}

std::string processEscapes(const std::string &text) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\\' || i + 1 == text.size()) {
      out += c;
      continue;
    }
    const char e = text[i + 1];
    const char *simple = "n\nt\tr\r\\\\\"\"''";
    const char *at = nullptr;
    for (const char *k = simple; *k; k += 2)
      if (*k == e)
        at = k;
    if (at) {
      out += at[1];
      ++i;
    } else if (e == 'x' && i + 3 < text.size() && hex(text[i + 2]) >= 0 &&
               hex(text[i + 3]) >= 0) {
      out += char(hex(text[i + 2]) * 16 + hex(text[i + 3]));
      i += 3;
    } else {
      out += c; // kept, as llama.cpp keeps an unknown escape
    }
  }
  return out;
}

bool parseGenerateFlags(const std::vector<std::string> &args,
                        GenerateFlags &out, std::string &error) {
  GenerateOptions &g = out.gen;
  bool &escape = out.escape;
  // -b (llama.cpp's logical batch) and -ub (its physical one): a prompt
  // chunk is the smaller of the two given.
  int batch = 0, ubatch = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    bool hasInline = false;
    // Accept --flag=value as well as --flag value.
    if (flag.rfind("--", 0) == 0) {
      size_t eq = flag.find('=');
      if (eq != std::string::npos) {
        value = flag.substr(eq + 1);
        flag = flag.substr(0, eq);
        hasInline = true;
      }
    }
    auto next = [&](std::string &v) {
      if (hasInline) {
        v = value;
        return true;
      }
      if (i + 1 >= args.size()) {
        error = flag + ": expected a value";
        return false;
      }
      v = args[++i];
      return true;
    };
    std::string v;
    if (flag == "-h" || flag == "--help") {
      out.help = true;
    } else if (flag == "-p" || flag == "--prompt") {
      if (!next(g.prompt))
        return false;
    } else if (flag == "-f" || flag == "--file") {
      if (!next(out.promptFile))
        return false;
    } else if (flag == "-n" || flag == "--n-predict") {
      if (!next(v) || !parseInt(flag, v, -1, 1 << 24, g.nPredict, error))
        return false;
      out.nPredictGiven = true;
    } else if (flag == "-t" || flag == "--threads") {
      if (!next(v) || !parseInt(flag, v, 1, 1024, g.nThreads, error))
        return false;
    } else if (flag == "--poll") {
      if (!next(v) || !parseInt(flag, v, 0, 1000000, g.pollMicros, error))
        return false;
    } else if (flag == "-c" || flag == "--ctx-size") {
      // 0: the model's trained context, as llama.cpp's -c 0.
      if (!next(v) || !parseInt(flag, v, 0, 1 << 24, g.nCtx, error))
        return false;
    } else if (flag == "--temp") {
      // At or below 0: greedy, as llama.cpp takes any negative value.
      if (!next(v) ||
          !parseFloat(flag, v, -INFINITY, 100.f, g.sampling.temperature, error))
        return false;
      g.sampling.temperature = std::max(0.f, g.sampling.temperature);
    } else if (flag == "--top-k") {
      // At or below 0: no limit, as llama.cpp's.
      if (!next(v) ||
          !parseInt(flag, v, -(1 << 30), 1 << 30, g.sampling.topK, error))
        return false;
      g.sampling.topK = std::max(0, g.sampling.topK);
    } else if (flag == "--top-p") {
      if (!next(v) || !parseFloat(flag, v, 0.f, 1.f, g.sampling.topP, error))
        return false;
    } else if (flag == "--repeat-penalty") {
      if (!next(v) ||
          !parseFloat(flag, v, 0.f, 100.f, g.sampling.repeatPenalty, error))
        return false;
      // The penalty divides positive logits: 0 would make them infinite.
      if (!(g.sampling.repeatPenalty > 0.f)) {
        error = flag + ": '" + v + "' is not above 0, expected a value in "
                "(0, 100] (1 disables the penalty)";
        return false;
      }
    } else if (flag == "-b" || flag == "--batch-size") {
      if (!next(v) || !parseInt(flag, v, 1, 512, batch, error))
        return false;
    } else if (flag == "-ub" || flag == "--ubatch-size") {
      if (!next(v) || !parseInt(flag, v, 1, 512, ubatch, error))
        return false;
    } else if (flag == "--min-p") {
      if (!next(v) || !parseFloat(flag, v, 0.f, 1.f, g.sampling.minP, error))
        return false;
    } else if (flag == "--ignore-eos") {
      g.ignoreEos = true;
    } else if (flag == "-r" || flag == "--reverse-prompt") {
      if (!next(v))
        return false;
      if (v.empty()) {
        error = flag + ": expected a non-empty string";
        return false;
      }
      g.stopStrings.push_back(v);
    } else if (flag == "--version") {
      out.version = true;
    } else if (flag == "--repeat-last-n") {
      if (!next(v) ||
          !parseInt(flag, v, 0, 1 << 20, g.sampling.repeatLastN, error))
        return false;
    } else if (flag == "-s" || flag == "--seed") {
      // Any 32-bit seed, so that every seed a run reports replays; -1
      // (and 4294967295, as in llama.cpp) draws one from the clock.
      errno = 0;
      char *end = nullptr;
      if (!next(v))
        return false;
      const long long seed = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || seed < -1 || seed > 4294967295LL) {
        error =
            flag + ": expected an integer in [-1, 4294967295], got '" + v + "'";
        return false;
      }
      g.sampling.seed =
          seed < 0 ? SamplerOptions::kRandomSeed : uint32_t(seed);
    } else if (flag == "-e" || flag == "--escape") {
      escape = true;
    } else if (flag == "--no-escape") {
      escape = false;
    } else if (flag == "-no-cnv" || flag == "--no-conversation" ||
               flag == "--no-warmup") {
      // What these executables do anyway: no chat unless -cnv, no warm-up.
    } else if (flag == "-ngl" || flag == "--n-gpu-layers" ||
               flag == "--gpu-layers") {
      int layers = 0;
      if (!next(v) || !parseInt(flag, v, -1, 1 << 20, layers, error))
        return false;
      out.notes.push_back(flag + " has no effect: pinferc decides what runs "
                                 "on the GPU when it compiles "
                                 "(--vram-budget)");
    } else if (flag == "--json") {
      g.json = true;
    } else if (flag == "--no-bos") {
      g.addBos = false;
    } else if (flag == "--no-parse-special") {
      g.parseSpecial = false;
    } else if (flag == "--no-display-prompt") {
      g.echoPrompt = false;
    } else if (flag.size() > 1 && flag[0] == '-') {
      error = "unknown flag '" + flag + "' (see --help)";
      return false;
    } else {
      out.positional.push_back(flag);
    }
  }
  // As llama.cpp: the prompt and the stop strings (-f's text, read by the
  // caller, too).
  if (escape) {
    g.prompt = processEscapes(g.prompt);
    for (std::string &stop : g.stopStrings)
      stop = processEscapes(stop);
  }
  if (batch > 0 || ubatch > 0)
    g.nBatch = batch > 0 && ubatch > 0 ? std::min(batch, ubatch)
                                       : std::max(batch, ubatch);
  return true;
}

bool readTextInput(const std::string &path, std::string &text,
                   std::string &error, const char *what) {
  std::stringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
  } else {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      error = path + ": is a directory, expected " + what;
      return false;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      error = path + ": cannot read " + what;
      return false;
    }
    ss << in.rdbuf();
  }
  text = ss.str();
  return true;
}

bool readPromptFile(const std::string &path, std::string &prompt,
                    std::string &error) {
  if (!readTextInput(path, prompt, error, "the prompt file (-f)"))
    return false;
  if (!prompt.empty() && prompt.back() == '\n')
    prompt.pop_back();
  return true;
}

std::string generateFlagsHelp() {
  return "  -p, --prompt TEXT       prompt to start generation with\n"
         "  -f, --file FILE         read the prompt from FILE (- : standard "
         "input)\n"
         "  -e, --escape            turn \\n, \\t, \\\" ... in -p, -r, -f into "
         "characters (default)\n"
         "      --no-escape         take their backslashes literally\n"
         "  -r, --reverse-prompt S  stop once the generated text contains S "
         "(repeatable)\n"
         "      --ignore-eos        never sample end-of-generation tokens\n"
         "      --min-p P           min-p sampling; 0 disables (default 0.05)\n"
         "      --version           print the version and exit\n"
         "  -n, --n-predict N       tokens to generate (-1: until end of text "
         "or full context; default 128)\n"
         "  -t, --threads N         CPU threads (default: all cores)\n"
         "  -b, --batch-size N      prompt tokens that go through the layers "
         "together, 1-512 (default 128)\n"
         "  -ub, --ubatch-size N    the same (the smaller of -b and -ub "
         "counts)\n"
         "      --poll US           microseconds a waiting thread polls before "
         "it sleeps;\n"
         "                          0 on machines shared with other work "
         "(default 200)\n"
         "  -c, --ctx-size N        context length (default: the model's, at "
         "most 4096;\n"
         "                          0: the model's)\n"
         "      --temp X            temperature; 0 or less is greedy (default "
         "0.8)\n"
         "      --top-k K           top-k sampling; 0 or less disables "
         "(default 40)\n"
         "      --top-p P           top-p sampling; 1 disables (default 0.95)\n"
         "      --repeat-penalty X  penalise repeated tokens; 1 disables "
         "(default 1.0)\n"
         "      --repeat-last-n N   tokens the penalty looks back over "
         "(default 64)\n"
         "  -s, --seed S            RNG seed; -1 (or 4294967295) draws one "
         "(default -1)\n"
         "      --json              print one JSON object instead of text\n"
         "      --no-bos            do not add the BOS token\n"
         "      --no-parse-special  keep special-token text in the prompt as "
         "text\n"
         "      --no-display-prompt do not echo the prompt\n";
}

} // namespace pinfer
