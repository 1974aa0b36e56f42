// Tests that the bad inputs and flag values a user may give get one clear
// line and a non-zero exit (or, where the value works but not as hoped, a
// warning), never a crash or silence: sizes, budgets, thread counts and
// contexts out of range, models whose metadata contradicts their tensors,
// NaN weights, invalid UTF-8 in metadata, a directory or a source model
// where a file of another kind is expected, and Ctrl-C during generation.
// Runs the built tools as a user would.
#include "compile_test_util.h"

#include "runtime/gguf.h"
#include "runtime/json.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

class BadInputTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-bad-input-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    model_ = dir_ + "/m.gguf";
    trace_ = dir_ + "/m.trace";
    exe_ = dir_ + "/exe";
    std::string out, err;
    ASSERT_EQ(run(kGenmodel + " --preset tiny -o " + model_, out, err, dir_), 0)
        << err;
    ASSERT_EQ(run(kPinferc + " profile " + model_ + " --tokens 64 -o " +
                      trace_,
                  out, err, dir_),
              0)
        << err;
    ASSERT_EQ(run(kPinferc + " " + model_ + " --trace " + trace_ +
                      " --target cpu -q -o " + exe_,
                  out, err, dir_),
              0)
        << err;
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + dir_).c_str());
  }

  // Runs `cmd`; expects a non-zero exit and exactly one stderr line
  // holding `what`.
  void expectError(const std::string &cmd, const std::string &what) {
    std::string out, err;
    int rc = run(cmd, out, err, dir_);
    EXPECT_NE(rc, 0) << cmd;
    EXPECT_NE(rc, -1) << cmd << ": died of a signal";
    EXPECT_NE(err.find(what), std::string::npos) << cmd << "\n" << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << cmd << "\n"
                                                           << err;
  }

  // Writes a copy of model_ to `path` with `kv` applied to its metadata and
  // `tensor` to each tensor's bytes.
  static void rewrite(
      const std::string &path, const std::function<void(GGUFWriter &)> &kv,
      const std::function<void(const std::string &, std::vector<uint8_t> &)>
          &tensor = nullptr) {
    std::string error;
    auto src = GGUFFile::open(model_, error);
    ASSERT_TRUE(src) << error;
    GGUFWriter w;
    for (const GGUFKV &e : src->metadata())
      if (e.key != "general.alignment")
        w.set(e.key, e.value);
    kv(w);
    // The writer reads tensor data when it writes: kept alive until then.
    std::vector<std::vector<uint8_t>> data;
    data.reserve(src->tensors().size());
    for (const GGUFTensor &t : src->tensors()) {
      std::vector<uint8_t> &bytes = data.emplace_back(t.data, t.data + t.nbytes);
      if (tensor)
        tensor(t.name, bytes);
      w.addTensorData(t.name, t.type,
                      std::vector<int64_t>(t.ne, t.ne + t.nDims),
                      bytes.data(), bytes.size());
    }
    ASSERT_TRUE(w.write(path, error)) << error;
  }

  static std::string dir_, model_, trace_, exe_;
};
std::string BadInputTest::dir_, BadInputTest::model_, BadInputTest::trace_,
    BadInputTest::exe_;

// Tests the flag values that were accepted silently.
TEST_F(BadInputTest, FlagValuesOutOfRange) {
  const std::string job = kPinferc + " " + model_ + " --trace " + trace_ +
                          " -o " + dir_ + "/never ";
  expectError(job + "--target rtx4090 --vram-budget 0",
              "--vram-budget: 0 leaves nothing to place");
  expectError(job + "--target rtx4090 --vram-budget 30GiB",
              "--vram-budget: 30.00 GiB exceeds the 24.00 GiB of rtx4090");
  // A bare number is GiB, as PowerInfer's; under the CUDA context's own
  // reserve is said before any work.
  expectError(job + "--target rtx4090 --vram-budget 30",
              "--vram-budget: 30.00 GiB exceeds the 24.00 GiB of rtx4090");
  expectError(job + "--target rtx4090 --vram-budget 0.3",
              "--vram-budget: 307.2 MiB is no more than the 400.0 MiB the "
              "CUDA context itself takes on rtx4090");
  expectError(job + "--target cpu --vram-budget 1GiB",
              "--vram-budget: target cpu has no GPU");
  expectError(job + "--target cpu -c 100000000", "-c");
  expectError(job + "--target rtx4090 --z3-timeout -1", "--z3-timeout");
  expectError(job + "--target rtx4090 --min-granules -5", "--min-granules");
  const std::string plan = kPinferc + " plan " + model_ + " --trace " + trace_;
  expectError(plan + " --vram-budget 0", "--vram-budget: 0");
  expectError(plan + " --vram-budget 1TiB", "exceeds the 24.00 GiB");
  const std::string profile =
      kPinferc + " profile " + model_ + " -o " + dir_ + "/never.trace ";
  expectError(profile + "-c 0", "-c");
  expectError(profile + "-t 0", "-t");
  expectError(profile + "--tokens 0", "--tokens");
  expectError(kPinferc + " run " + model_ + " -p hi --repeat-penalty 0",
              "--repeat-penalty: '0' is not above 0");
  expectError(exe_ + " -p hi --repeat-penalty 0", "not above 0");
  struct stat st;
  EXPECT_NE(::stat((dir_ + "/never").c_str(), &st), 0);
  EXPECT_NE(::stat((dir_ + "/never.trace").c_str(), &st), 0);
}

// Tests that a context too large for the machine's memory is refused with
// what it would need, in the reference and in executables (it aborted in
// std::bad_alloc), and that one beyond the trained context and more
// threads than the machine has are warned about.
TEST_F(BadInputTest, ContextsAndThreads) {
  expectError(kPinferc + " run " + model_ + " -p hi -n 1 -c 16777216",
              "a context of 16777216 tokens needs");
  expectError(exe_ + " -p hi -n 1 -c 16777216",
              "a context of 16777216 tokens needs");
  std::string out, err;
  ASSERT_NE(run(exe_ + " -p hi -n 1 -c 1024 -t 4096", out, err, dir_), 0);
  ASSERT_EQ(run(exe_ + " -p hi -n 1 -c 1024 -t 1000", out, err, dir_), 0)
      << err;
  EXPECT_NE(err.find("warning: the context of 1024 tokens (-c) exceeds the "
                     "model's trained context of 256"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("warning: -t 1000 is more than the"), std::string::npos)
      << err;
  // perplexity too: chunks past the trained context.
  ASSERT_EQ(run(kPinferc + " perplexity " + model_ + " -c 512 --chunks 1", out,
                err, dir_),
            0)
      << err;
  EXPECT_NE(err.find("warning: the context of 512 tokens (-c) exceeds the "
                     "model's trained context of 256"),
            std::string::npos)
      << err;
}

// Tests models whose metadata contradicts their tensors, and NaN weights.
TEST_F(BadInputTest, ModelsThatContradictThemselves) {
  const std::string fewer = dir_ + "/fewer-blocks.gguf";
  rewrite(fewer, [](GGUFWriter &w) { w.setU32("llama.block_count", 1); });
  expectError(kPinferc + " run " + fewer + " -p hi -n 1",
              "tensor blk.1.attn_norm.weight: layer 1 is beyond key "
              "llama.block_count 1");
  const std::string narrow = dir_ + "/narrow.gguf";
  rewrite(narrow,
          [](GGUFWriter &w) { w.setU32("llama.embedding_length", 64); });
  expectError(kPinferc + " run " + narrow + " -p hi -n 1",
              "key llama.embedding_length: 64, but tensor token_embd.weight "
              "has rows of");
  const std::string nan = dir_ + "/nan.gguf";
  rewrite(nan, [](GGUFWriter &) {},
          [](const std::string &name, std::vector<uint8_t> &bytes) {
            if (name != "output_norm.weight")
              return;
            const float q = std::nanf("");
            for (size_t i = 0; i + 4 <= bytes.size(); i += 4)
              std::memcpy(&bytes[i], &q, 4);
          });
  expectError(kPinferc + " run " + nan + " -p hi -n 4",
              "the model computed a non-finite logit");
}

// Tests token ids: 0xFFFFFFFF is "none" (as in llama.cpp), any other id
// beyond int32 is named as written.
TEST_F(BadInputTest, TokenIds) {
  const std::string none = dir_ + "/eos-none.gguf";
  rewrite(none, [](GGUFWriter &w) {
    w.setU32("tokenizer.ggml.eos_token_id", 0xFFFFFFFFu);
  });
  std::string out, err;
  EXPECT_EQ(run(kPinferc + " run " + none + " -p hi -n 2", out, err, dir_), 0)
      << err;
  const std::string bad = dir_ + "/eos-bad.gguf";
  rewrite(bad, [](GGUFWriter &w) {
    w.setU32("tokenizer.ggml.eos_token_id", 0xFFFFFFFEu);
  });
  expectError(kPinferc + " run " + bad + " -p hi -n 2",
              "key tokenizer.ggml.eos_token_id: token id 4294967294 is out of "
              "range");
}

// Tests that inspect --json writes valid UTF-8 whatever the metadata holds.
TEST_F(BadInputTest, InspectJsonIsValidUtf8) {
  const std::string odd = dir_ + "/odd-name.gguf";
  rewrite(odd, [](GGUFWriter &w) {
    w.setString("general.name", std::string("bad \xff\xfe\xc0\x80 name\x01"));
  });
  std::string out, err;
  ASSERT_EQ(run(kPinferc + " inspect --json " + odd, out, err, dir_), 0)
      << err;
  EXPECT_EQ(sanitizeUtf8(out), out);
  EXPECT_NE(out.find("bad \xEF\xBF\xBD\xEF\xBF\xBD"), std::string::npos);
  EXPECT_NE(out.find("name\\u0001"), std::string::npos);
}

// Tests files of the wrong kind: a directory as trace or plan, the source
// model as an executable's --weights.
TEST_F(BadInputTest, WrongKindOfFile) {
  const std::string job = kPinferc + " " + model_ + " -o " + dir_ + "/never ";
  expectError(job + "--target cpu --trace " + dir_,
              dir_ + ": not a regular file, expected a pinferc trace");
  expectError(job + "--target rtx4090 --plan " + dir_,
              dir_ + ": not a regular file, expected a plan JSON file");
  expectError(exe_ + " -p hi --weights " + model_,
              "this is a source model, not the packed weights");
}

// Tests that Ctrl-C during generation stops it, still prints the JSON (and
// the timing lines without --json) and exits 130. The executable is started
// directly (a shell's background job would ignore SIGINT) and interrupted
// until it stops, so that a slow start-up cannot miss the signal.
TEST_F(BadInputTest, InterruptedGenerationStillReports) {
  for (bool json : {true, false}) {
    const std::string out = dir_ + "/gen.out", err = dir_ + "/gen.err";
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::freopen(out.c_str(), "w", stdout);
      std::freopen(err.c_str(), "w", stderr);
      ::execl(exe_.c_str(), exe_.c_str(), "-p", "hi", "-n", "-1", "-c",
              "200000", "--temp", "0", "-t", "1", json ? "--json" : "--cpu",
              (char *)nullptr);
      ::_exit(127);
    }
    // Ready when generation has begun: the prompt is echoed (text mode), or
    // the warning about -c printed just before generation (JSON mode).
    int status = 0;
    bool exited = false;
    for (int i = 0; i < 400 && !exited; ++i) {
      ::usleep(50000);
      exited = ::waitpid(pid, &status, WNOHANG) == pid;
      if (!(json ? readFile(err) : readFile(out)).empty())
        break;
    }
    ASSERT_FALSE(exited);
    ::usleep(300000);
    ::kill(pid, SIGINT);
    for (int i = 0; i < 600 && !exited; ++i) {
      exited = ::waitpid(pid, &status, WNOHANG) == pid;
      if (!exited)
        ::usleep(50000);
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 130);
    const std::string o = readFile(out), e = readFile(err);
    if (json) {
      EXPECT_NE(o.find("\"stop\":\"interrupted\""), std::string::npos) << o;
      ASSERT_GE(o.size(), 2u);
      EXPECT_EQ(o.back(), '\n');
      EXPECT_EQ(o[o.size() - 2], '}');
    } else {
      EXPECT_NE(e.find("eval time ="), std::string::npos) << e;
    }
  }
}

} // namespace

// Tests that -o replaces neither a device, a pipe nor a file that is not an
// executable (a slip of the user's: a model, notes), each refused in one
// line and left as it was; and that --emit writes to -o, never onto an
// input.
TEST_F(BadInputTest, OutputsReplaceOnlyWhatTheyMayReplace) {
  const std::string job =
      kPinferc + " " + model_ + " --trace " + trace_ + " --target cpu -q -o ";
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expectError(job + fifo, "exists and is not a regular file");
  struct stat st;
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  expectError(kPinferc + " plan " + model_ + " --trace " + trace_ +
                  " --target rtx4090 --json " + fifo,
              "exists and is not a regular file");
  const std::string notes = dir_ + "/notes.txt";
  std::ofstream(notes) << "my notes\n";
  expectError(job + notes, "exists and is not an executable");
  EXPECT_EQ(readFile(notes), "my notes\n");
  // An empty file (mktemp's) holds nothing to lose.
  const std::string empty = dir_ + "/empty";
  std::ofstream(empty).close();
  std::string out, err;
  EXPECT_EQ(run(job + empty, out, err, dir_), 0) << err;
  EXPECT_EQ(readFile(empty).rfind("\x7f"
                                  "ELF",
                                  0),
            0u);
  ASSERT_EQ(run(job + dir_ + "/steps.txt --emit steps", out, err, dir_), 0)
      << err;
  EXPECT_TRUE(out.empty()) << out;
  EXPECT_EQ(readFile(dir_ + "/steps.txt").rfind("steps layer 0:", 0), 0u);
  expectError(job + model_ + " --emit steps", "is the model");
}

// Tests that an executable compiled for CPU features this CPU lacks says
// so in one line instead of dying of SIGILL at the first such instruction.
TEST_F(BadInputTest, ExecutableForAnotherCpuSaysWhatItLacks) {
  __builtin_cpu_init();
  const char *march = !__builtin_cpu_supports("avx512f")      ? "skylake-avx512"
                      : !__builtin_cpu_supports("avx512bf16") ? "cooperlake"
                                                              : nullptr;
  if (!march)
    GTEST_SKIP() << "this CPU has every feature the test's --march uses";
  std::string out, err;
  const std::string exe = dir_ + "/other-cpu";
  ASSERT_EQ(run(kPinferc + " " + model_ + " --trace " + trace_ +
                    " --target cpu -q --march " + march + " -o " + exe,
                out, err, dir_),
            0)
      << err;
  expectError(exe + " -p hi -n 2", "which this CPU lacks");
}

// Tests that flags the job would have dropped without a word are refused
// in one line: a plan with a CPU target, another budget or another
// context; predictors in a mode that has none, or absent; a threshold
// mode's share without that mode; and that llama.cpp's generation flags
// and a mistyped verb get a line that says what pinferc does.
TEST_F(BadInputTest, FlagsThatWouldBeIgnoredAreRefused) {
  const std::string plan = dir_ + "/p.json";
  std::string out, err;
  ASSERT_EQ(run(kPinferc + " plan " + model_ + " --trace " + trace_ +
                    " --target rtx4090 --json " + plan,
                out, err, dir_),
            0)
      << err;
  const std::string job =
      kPinferc + " " + model_ + " -q -o " + dir_ + "/never ";
  expectError(job + "--plan " + plan + " --target cpu",
              "--plan: a plan places the model on a GPU, and target cpu has "
              "none");
  expectError(job + "--plan " + plan + " --vram-budget 10",
              "--plan: the plan fixes the VRAM budget");
  expectError(job + "--plan " + plan + " -c 8192",
              "reserves the KV cache for -c 4096, and -c 8192 disagrees");
  expectError(job + "--trace " + trace_ + " --sparsity exact --predictors " +
                  model_,
              "--predictors: used in predicted mode only");
  expectError(job + "--trace " + trace_ + " --predictors " + dir_ +
                  "/absent.gguf",
              "predictor file not found");
  expectError(job + "--trace " + trace_ +
                  " --sparsity exact "
                  "--target-sparsity 0.5",
              "--target-sparsity: used by --sparsity threshold only");
  expectError(kPinferc + " " + model_ + " -p hi -n 8",
              "whose executable generates (./OUT -p TEXT -n N)");
  expectError(kPinferc + " profil " + model_,
              "'profil' is neither a file nor a verb");
  // plan's --json takes a path: a flag after it is no file name, and one
  // file cannot be both outputs.
  const std::string planJob =
      kPinferc + " plan " + model_ + " --trace " + trace_ + " ";
  expectError(planJob + "--json -q", "--json: expected a file path, got '-q'");
  expectError(planJob + "--json " + dir_ + "/a --svg " + dir_ + "/a",
              "is also --svg; expected two different files");
}
