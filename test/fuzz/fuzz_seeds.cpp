// Writes the seed corpora of the trace, plan and tokenizer fuzzers from real
// data made at test time, never from committed binaries:
//
//   trace      traces `pinferc profile` writes: small generated ReLU and SiLU
//              models profiled on the calibration text, with and without
//              predictor samples and thresholds;
//   plan       plans `pinferc plan` writes for those traces: every neuron on
//              the GPU, split under tighter budgets, the CPU target;
//   tokenizer  llama.cpp's tokenizer test strings (fixtures/vocab/*.inp),
//              each behind a selector byte for each vocabulary and flag set,
//              and small vocabulary-only GGUF files (selector 0x80).
//
// Each seed is read back with the reader under test before the fuzzer
// starts, so a broken writer cannot starve the fuzzer of valid inputs.
//
// Usage: fuzz_seeds trace|plan|tokenizer DIR  (DIR/seeds, DIR/corpus and
// DIR/crashes are created; seeds go to DIR/seeds)
#include "compiler/Calibration.h"
#include "compiler/Profile.h"
#include "compiler/Targets.h"
#include "compiler/Trace.h"
#include "compiler/placement/Plan.h"
#include "fuzz_data_dir.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"
#include "tools/genmodel/model_generator.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace pinfer;

namespace {

const std::string kVocabDir = std::string(PINFER_FIXTURES_DIR) + "/vocab/";

bool readFile(const std::string &path, std::string &out) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return static_cast<bool>(f);
}

bool writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f)
    std::fprintf(stderr, "%s: cannot write\n", path.c_str());
  return static_cast<bool>(f);
}

bool fail(const std::string &what) {
  std::fprintf(stderr, "fuzz_seeds: %s\n", what.c_str());
  return false;
}

// A small generated model (two layers, n_ff 96) and its profile on the
// first tokens of the calibration text.
struct Profiled {
  std::unique_ptr<Model> model;
  Trace trace;
};

bool profile(const std::string &dir, FfnActivation act, uint32_t samples,
             Profiled &out) {
  GenModelConfig cfg;
  cfg.nEmbd = 64;
  cfg.nFF = 96;
  cfg.nLayer = 2;
  cfg.nHead = 2;
  cfg.nKVHead = 1;
  cfg.nCtx = 64;
  cfg.activation = act;
  cfg.type = GGMLType::F16;
  cfg.vocabPath = kVocabDir + "ggml-vocab-llama-spm.gguf";
  cfg.seed = 3;
  cfg.threads = 2;
  std::string path =
      dir + "/model-" + activationName(act) + "-" + std::to_string(getpid()) +
      ".gguf";
  std::string err;
  GenModelReport report;
  if (!generateModel(cfg, path, report, err))
    return fail(err);
  out.model = Model::open(path, err);
  std::remove(path.c_str()); // the model keeps the mapping
  if (!out.model)
    return fail(err);
  auto tok = Tokenizer::fromGGUF(out.model->file(), err);
  if (!tok)
    return fail(err);
  ProfileOptions opts;
  opts.maxTokens = 96;
  opts.nCtx = 32;
  opts.nThreads = 2;
  opts.samplesPerLayer = samples;
  opts.calibrationTokens = 16;
  return profileModel(*out.model, *tok, modelIdentity(out.model->file()),
                      calibrationText(), opts, out.trace, err) ||
         fail(err);
}

bool traceSeeds(const std::string &dir, const std::string &seeds) {
  struct Case {
    const char *name;
    FfnActivation act;
    uint32_t samples;
  };
  for (const Case &c : {Case{"relu.trace", FfnActivation::ReLU, 0},
                        Case{"relu-samples.trace", FfnActivation::ReLU, 3},
                        Case{"silu-samples.trace", FfnActivation::SiLU, 2},
                        Case{"drelu.trace", FfnActivation::DReLU, 1}}) {
    Profiled p;
    std::string err, path = seeds + c.name;
    Trace back;
    if (!profile(dir, c.act, c.samples, p) ||
        !writeTrace(path, p.trace, err) || !readTrace(path, back, err))
      return fail(err.empty() ? c.name : err);
  }
  return true;
}

bool planSeeds(const std::string &dir, const std::string &seeds) {
  int n = 0;
  for (FfnActivation act : {FfnActivation::ReLU, FfnActivation::SiLU}) {
    Profiled p;
    ModelShape shape;
    std::string err;
    if (!profile(dir, act, 0, p) ||
        !modelShapeFromGGUF(p.model->file(), shape, err))
      return fail(err);
    for (const char *target : {"rtx4090", "cpu"}) {
      const Target *t = findTarget(target, err);
      if (!t)
        return fail(err);
      PlacementOptions opts;
      opts.minGranules = 1; // this model's rows are too small to pay a sync
      opts.nCtx = 64;
      opts.z3Seconds = 5;
      opts.reads = act == FfnActivation::SiLU ? NeuronReads::GateAlways
                                              : NeuronReads::WhenFiring;
      Plan whole;
      if (!planPlacement(p.trace, shape, *t, opts, whole, err))
        return fail(err);
      std::vector<Plan> plans = {whole};
      // Tighter budgets leave the output head on the CPU and split the
      // layers' neurons.
      if (t->hasGPU())
        for (uint64_t less : {30000, 4096000 + 20000, 4096000 + 50000}) {
          opts.vramBudget = whole.billBytes - less;
          Plan split;
          if (planPlacement(p.trace, shape, *t, opts, split, err))
            plans.push_back(split);
        }
      for (const Plan &plan : plans) {
        std::string path = seeds + "plan" + std::to_string(n++) + ".json";
        Plan back;
        if (!writePlanJson(path, plan, err) || !readPlanJson(path, back, err))
          return fail(err);
      }
    }
  }
  return true;
}

// llama.cpp's test strings, separated by lines "__ggml_vocab_test__".
std::vector<std::string> testStrings(const std::string &inp) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  std::string text;
  if (!readFile(inp, text))
    return out;
  text = "\n" + text;
  size_t at = 0;
  for (;;) {
    size_t next = text.find(sep, at);
    if (next == std::string::npos)
      break;
    if (next > at)
      out.push_back(text.substr(at + 1, next - at - 1));
    at = next + sep.size() - 1;
  }
  return out;
}

GGUFWriter vocabFile(const std::string &model, const std::string &pre,
                     std::vector<std::string> tokens, std::vector<int32_t> types,
                     std::vector<std::string> merges) {
  GGUFWriter w;
  w.setString("general.architecture", "llama");
  w.setString("tokenizer.ggml.model", model);
  if (!pre.empty())
    w.setString("tokenizer.ggml.pre", pre);
  std::vector<float> scores;
  for (size_t i = 0; i < tokens.size(); ++i)
    scores.push_back(-static_cast<float>(i));
  w.set("tokenizer.ggml.tokens", GGUFValue::ofStrings(tokens));
  w.set("tokenizer.ggml.scores", GGUFValue::ofF32s(scores));
  w.set("tokenizer.ggml.token_type", GGUFValue::ofI32s(types));
  if (!merges.empty())
    w.set("tokenizer.ggml.merges", GGUFValue::ofStrings(merges));
  w.setU32("tokenizer.ggml.bos_token_id", 1);
  w.setU32("tokenizer.ggml.eos_token_id", 2);
  return w;
}

bool tokenizerSeeds(const std::string &dir, const std::string &seeds) {
  const char *vocabs[4] = {"llama-spm", "phi-3", "gpt-2", "falcon"};
  int n = 0;
  for (int v = 0; v < 4; ++v) {
    std::vector<std::string> texts =
        testStrings(kVocabDir + "ggml-vocab-" + vocabs[v] + ".gguf.inp");
    if (texts.size() < 10)
      return fail(std::string("too few test strings for ") + vocabs[v]);
    texts.push_back("<s>Hi</s> <|endoftext|><|end|><unk> <|user|>x");
    // Plain (as llama.cpp's vectors were made), and with every flag set.
    for (uint8_t flags : {0, 4 | 8 | 16})
      for (const std::string &t : texts)
        if (!writeFile(seeds + "text" + std::to_string(n++),
                       std::string(1, char(v | flags)) + t))
          return false;
  }

  // Vocabulary files: SentencePiece with byte tokens and specials, byte-level
  // BPE under each pre-tokenizer.
  std::vector<std::string> spmTokens = {"<unk>", "<s>", "</s>", "<0x41>",
                                        "<0xE2>", "\xe2\x96\x81", "a", "b",
                                        "ab", "\xe2\x96\x81" "ab"};
  std::vector<int32_t> spmTypes = {2, 3, 3, 6, 6, 1, 1, 1, 1, 1};
  std::vector<std::string> bpeTokens = {"<unk>", "<|bos|>", "<|eos|>",
                                        "a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "a",
                                        "<|user|>"};
  std::vector<int32_t> bpeTypes = {2, 3, 3, 1, 1, 1, 1, 1, 4};
  std::vector<std::string> merges = {"a b", "\xc4\xa0 a"};
  struct File {
    const char *name;
    GGUFWriter w;
  };
  std::vector<File> files;
  files.push_back({"spm", vocabFile("llama", "", spmTokens, spmTypes, {})});
  for (const char *pre : {"default", "gpt-2", "falcon"})
    files.push_back(
        {pre, vocabFile("gpt2", pre, bpeTokens, bpeTypes, merges)});
  for (File &f : files) {
    std::string path = dir + "/vocab-" + f.name + ".gguf", err, bytes;
    if (!f.w.write(path, err))
      return fail(err);
    auto g = GGUFFile::open(path, err);
    if (!g || !Tokenizer::fromGGUF(*g, err))
      return fail(err);
    bool ok = readFile(path, bytes);
    std::remove(path.c_str());
    if (!ok || !writeFile(seeds + "vocab-" + f.name, "\x80" + bytes))
      return false;
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  std::string kind = argc == 3 ? argv[1] : "";
  if (kind != "trace" && kind != "plan" && kind != "tokenizer") {
    std::fprintf(stderr, "usage: %s trace|plan|tokenizer DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[2];
  if (!fuzz::makeFuzzDataDir(dir))
    return 1;
  std::string seeds = dir + "/seeds/";
  bool ok = kind == "trace"  ? traceSeeds(dir, seeds)
            : kind == "plan" ? planSeeds(dir, seeds)
                             : tokenizerSeeds(dir, seeds);
  if (!ok)
    return 1;
  std::printf("wrote %s seeds to %s\n", kind.c_str(), seeds.c_str());
  return 0;
}
