// pinfer-genmodel: writes a synthetic LLaMA-architecture GGUF model with
// planted power-law activation sparsity (see docs/test-models.md). Flags are
// parsed by hand to keep this tool quick to build; the work is done by the
// pinfer_genmodel library.
#include "runtime/version.h"
#include "tools/genmodel/model_generator.h"
#include "runtime/output_files.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace pinfer;

namespace {

void usage(FILE *out) {
  std::fprintf(out, R"(usage: pinfer-genmodel -o OUT.gguf [options]

Shape (a preset, then any field overridden):
  --preset NAME          tiny | small | 1b | 7b | 70b           (default tiny)
  --n-embd N  --n-ff N  --n-layer N  --n-head N  --n-kv-head N  --n-ctx N
Weights:
  --type T               f32 | f16 | bf16 | q8_0 | q4_0 (norms stay f32)
                                                               (default f16)
  --activation A         relu | drelu | silu | gelu           (default relu)
  --arch A               llama | qwen2 (Q/K/V biases)         (default llama)
  --tied-output          no output.weight: the head reuses token_embd
  --seed N               same seed, same bytes                   (default 1)
  --vocab PATH           GGUF whose tokenizer.* keys are copied
                         (default: the LLaMA SentencePiece fixture)
  --name NAME            general.name
  --rms-eps X  --rope-freq-base X
Planted sparsity:
  --active-fraction F    mean firing rate                     (default 0.10)
  --hot-share S          share of firings on the top 10 %% of neurons
                                                               (default 0.80)
  --alpha A              fix the power-law exponent instead of --hot-share
PowerInfer layout:
  --powerinfer           PWRI magic, predictors fc1/fc2, ffn_down_t for ffn_down
  --with-ffn-down        keep ffn_down too (for pinferc: a quantised model's
                         packed down then keeps its type; PowerInfer refuses it)
  --predictor-rank R     predictor hidden size (default 2*n_embd/16+1)
  --predictor-fidelity F share of gate variance the predictor can see
                                                               (default 0.9)
  --sparse-threshold T   powerinfer.sparse_threshold           (default 0)
Other:
  --threads N            worker threads (default: all; output unaffected)
  --dry-run              print sizes and the power-law fit, write nothing
  --force                allow files over 64 GiB
  -h, --help
)");
}

bool parseInt(const char *flag, const char *v, int64_t &out, std::string &err) {
  char *end = nullptr;
  errno = 0;
  long long x = std::strtoll(v, &end, 10);
  if (errno || end == v || *end) {
    err = std::string(flag) + " '" + v + "': expected an integer";
    return false;
  }
  out = x;
  return true;
}

bool parseDouble(const char *flag, const char *v, double &out,
                 std::string &err) {
  char *end = nullptr;
  errno = 0;
  double x = std::strtod(v, &end);
  if (errno || end == v || *end) {
    err = std::string(flag) + " '" + v + "': expected a number";
    return false;
  }
  out = x;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  GenModelConfig cfg;
  cfg.vocabPath = PINFER_DEFAULT_VOCAB;
  std::string out, err, preset = "tiny";
  bool dryRun = false, force = false;

  // The preset is applied first so that explicit dimensions override it
  // wherever they appear on the command line.
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--preset"))
      preset = argv[i + 1];
  if (!applyPreset(preset, cfg, err)) {
    std::fprintf(stderr, "pinfer-genmodel: --preset: %s\n", err.c_str());
    return 1;
  }

  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!std::strcmp(a, "--version")) {
      std::printf("pinfer-genmodel (pinferc %s)\n", pinfer::pinferVersion());
      return 0;
    }
    if (!std::strcmp(a, "--powerinfer")) {
      cfg.powerInfer = true;
      continue;
    }
    if (!std::strcmp(a, "--with-ffn-down")) {
      cfg.withFfnDown = true;
      continue;
    }
    if (!std::strcmp(a, "--tied-output")) {
      cfg.tiedOutput = true;
      continue;
    }
    if (!std::strcmp(a, "--dry-run")) {
      dryRun = true;
      continue;
    }
    if (!std::strcmp(a, "--force")) {
      force = true;
      continue;
    }
    if (a[0] != '-') {
      std::fprintf(stderr, "pinfer-genmodel: unexpected argument '%s'\n", a);
      return 1;
    }
    static const char *const kValued[] = {"-o",
                                          "--output",
                                          "--preset",
                                          "--n-embd",
                                          "--n-ff",
                                          "--n-layer",
                                          "--n-head",
                                          "--n-kv-head",
                                          "--n-ctx",
                                          "--type",
                                          "--activation",
                                          "--seed",
                                          "--vocab",
                                          "--arch",
                                          "--name",
                                          "--rms-eps",
                                          "--rope-freq-base",
                                          "--active-fraction",
                                          "--hot-share",
                                          "--alpha",
                                          "--predictor-rank",
                                          "--predictor-fidelity",
                                          "--sparse-threshold",
                                          "--threads"};
    bool known = false;
    for (const char *k : kValued)
      known = known || !std::strcmp(a, k);
    if (!known) {
      std::fprintf(stderr, "pinfer-genmodel: unknown option '%s' (--help)\n",
                   a);
      return 1;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "pinfer-genmodel: %s: missing value\n", a);
      return 1;
    }
    const char *v = argv[++i];
    int64_t iv = 0;
    double dv = 0;
    bool ok = true;
    std::string f = a;
    if (f == "-o" || f == "--output")
      out = v;
    else if (f == "--preset")
      ; // applied above
    else if (f == "--n-embd")
      ok = parseInt(a, v, cfg.nEmbd, err);
    else if (f == "--n-ff")
      ok = parseInt(a, v, cfg.nFF, err);
    else if (f == "--n-layer")
      ok = parseInt(a, v, cfg.nLayer, err);
    else if (f == "--n-head")
      ok = parseInt(a, v, cfg.nHead, err);
    else if (f == "--n-kv-head")
      ok = parseInt(a, v, cfg.nKVHead, err);
    else if (f == "--n-ctx")
      ok = parseInt(a, v, cfg.nCtx, err);
    else if (f == "--predictor-rank")
      ok = parseInt(a, v, cfg.predictorRank, err);
    else if (f == "--threads") {
      ok = parseInt(a, v, iv, err);
      cfg.threads = int(iv);
    } else if (f == "--seed") {
      ok = parseInt(a, v, iv, err);
      cfg.seed = uint64_t(iv);
    } else if (f == "--type") {
      ok = parseTypeName(v, cfg.type);
      if (!ok)
        err = std::string("--type '") + v + "': expected " +
              computableTypeNames();
    } else if (f == "--activation") {
      ok = parseActivation(v, cfg.activation);
      if (!ok)
        err = std::string("--activation '") + v +
              "': expected relu, drelu, silu or gelu";
    } else if (f == "--vocab")
      cfg.vocabPath = v;
    else if (f == "--arch")
      cfg.arch = v;
    else if (f == "--name")
      cfg.name = v;
    else if (f == "--active-fraction")
      ok = parseDouble(a, v, cfg.activeFraction, err);
    else if (f == "--hot-share")
      ok = parseDouble(a, v, cfg.hotShare, err);
    else if (f == "--alpha")
      ok = parseDouble(a, v, cfg.alpha, err);
    else if (f == "--predictor-fidelity")
      ok = parseDouble(a, v, cfg.predictorFidelity, err);
    else if (f == "--sparse-threshold") {
      ok = parseDouble(a, v, dv, err);
      cfg.sparseThreshold = float(dv);
    } else if (f == "--rms-eps") {
      ok = parseDouble(a, v, dv, err);
      cfg.rmsEps = float(dv);
    } else if (f == "--rope-freq-base") {
      ok = parseDouble(a, v, dv, err);
      cfg.ropeFreqBase = float(dv);
    } else {
      std::fprintf(stderr, "pinfer-genmodel: unknown option '%s' (--help)\n",
                   a);
      return 1;
    }
    if (!ok) {
      std::fprintf(stderr, "pinfer-genmodel: %s\n", err.c_str());
      return 1;
    }
  }
  if (out.empty() && !dryRun) {
    std::fprintf(stderr, "pinfer-genmodel: no output file, expected -o PATH\n");
    return 1;
  }

  GenModelReport rep;
  if (!planModel(cfg, rep, err)) {
    std::fprintf(stderr, "pinfer-genmodel: %s\n", err.c_str());
    return 1;
  }
  const double gib = double(rep.tensorBytes) / (1ull << 30);
  std::printf("model: %s, %lld layers, n_embd %lld, n_ff %lld, %lld/%lld "
              "heads, vocab %lld, %s, %s%s\n",
              preset.c_str(), (long long)cfg.nLayer, (long long)cfg.nEmbd,
              (long long)cfg.nFF, (long long)cfg.nHead, (long long)cfg.nKVHead,
              (long long)rep.nVocab, typeName(cfg.type),
              activationName(cfg.activation),
              cfg.powerInfer ? ", PowerInfer layout" : "");
  std::printf("size: %.2f B parameters, %.3f GiB of tensor data\n",
              double(rep.nParams) / 1e9, gib);
  std::printf("planted: alpha %.4f, mean rate %.4f, top 1%% / 10%% / 20%% of "
              "neurons carry %.1f%% / %.1f%% / %.1f%% of firings%s\n",
              rep.fit.alpha, rep.fit.meanRate, 100 * rep.fit.top1Share,
              100 * rep.fit.top10Share, 100 * rep.fit.top20Share,
              rep.fit.hotShareReached ? "" : " (--hot-share out of reach)");
  if (dryRun)
    return 0;
  if (!checkOutputsAreNotInputs({{out, "-o"}}, {{cfg.vocabPath, "--vocab"}},
                                err)) {
    std::fprintf(stderr, "pinfer-genmodel: %s\n", err.c_str());
    return 1;
  }
  if (gib > 64 && !force) {
    std::fprintf(stderr,
                 "pinfer-genmodel: %s would hold %.1f GiB, expected at most "
                 "64 GiB without --force\n",
                 out.c_str(), gib);
    return 1;
  }
  installTempCleanup(); // no temporary left behind on Ctrl-C
  if (!generateModel(cfg, out, rep, err)) {
    std::fprintf(stderr, "pinfer-genmodel: %s\n", err.c_str());
    return 1;
  }
  std::printf("wrote %s: %llu bytes in %.1f s\n", out.c_str(),
              (unsigned long long)rep.fileBytes, rep.seconds);
  return 0;
}
