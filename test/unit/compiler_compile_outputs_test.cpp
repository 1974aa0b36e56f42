// Tests that no command's output replaces one of its inputs (by path, hard
// link or symlink), that the main job replaces the executable and its
// packed weights together or not at all (a failing host compiler, an
// interruption), that no temporary is left behind, and that a plan made for
// another model or target is refused. Runs the built tools as a user would.
#include "compile_test_util.h"

#include "compiler/Trace.h"
#include "runtime/gguf.h"
#include "tools/genmodel/model_generator.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <dirent.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

std::set<std::string> listDir(const std::string &dir) {
  std::set<std::string> names;
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        names.insert(e->d_name);
    ::closedir(d);
  }
  return names;
}

class OutputsTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-outputs-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    // Where the job's private temporary directories go, to see that none
    // is left.
    tmp_ = dir_ + "/tmpdir";
    ASSERT_EQ(::mkdir(tmp_.c_str(), 0700), 0);
    model_ = dir_ + "/m.gguf";
    trace_ = dir_ + "/m.trace";
    std::string out, err;
    ASSERT_EQ(run(kGenmodel + " --preset tiny -o " + model_, out, err, dir_),
              0)
        << err;
    ASSERT_EQ(run(kPinferc + " profile " + model_ + " --tokens 64 -o " + trace_,
                  out, err, dir_),
              0)
        << err;
    modelBytes_ = readFile(model_);
    traceBytes_ = readFile(trace_);
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + dir_).c_str());
  }
  void TearDown() override {
    // Every case leaves the inputs as they were.
    EXPECT_EQ(readFile(model_), modelBytes_);
    EXPECT_EQ(readFile(trace_), traceBytes_);
    EXPECT_TRUE(listDir(tmp_).empty());
  }

  // Runs pinferc with TMPDIR pointing at tmp_; the exit status.
  int pinferc(const std::string &args, std::string &err,
              const std::string &env = "") {
    std::string out;
    return run("TMPDIR=" + tmp_ + " " + env + " " + kPinferc + " " + args, out,
               err, dir_);
  }

  static std::string dir_, tmp_, model_, trace_, modelBytes_, traceBytes_;
};
std::string OutputsTest::dir_, OutputsTest::tmp_, OutputsTest::model_,
    OutputsTest::trace_, OutputsTest::modelBytes_, OutputsTest::traceBytes_;

// One line on stderr naming the output and the input it would replace.
void expectRefused(int rc, const std::string &err, const std::string &what) {
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("error: " + what), std::string::npos) << err;
  EXPECT_NE(err.find("no output replaces an input"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

// Tests that plan, profile and the main job refuse every output that is an
// input, by the same name, a hard link or a symlink, --force or not.
TEST_F(OutputsTest, OutputsNeverReplaceInputs) {
  std::string err;
  const std::string plan = "plan " + model_ + " --trace " + trace_ +
                           " --target rtx4090 --no-z3 ";
  expectRefused(pinferc(plan + "--json " + model_, err), err, "--json");
  expectRefused(pinferc(plan + "--svg " + trace_, err), err, "--svg");
  expectRefused(pinferc("profile " + model_ + " --tokens 8 -o " + model_ +
                            " --force",
                        err),
                err, "-o");
  expectRefused(pinferc(model_ + " --trace " + trace_ + " --target cpu -o " +
                            trace_,
                        err),
                err, "-o");
  const std::string hard = dir_ + "/hard.gguf", soft = dir_ + "/soft.gguf";
  ASSERT_EQ(::link(model_.c_str(), hard.c_str()), 0);
  ASSERT_EQ(::symlink(model_.c_str(), soft.c_str()), 0);
  for (const std::string &alias : {hard, soft}) {
    expectRefused(pinferc(model_ + " --target cpu -o " + alias, err), err,
                  "-o");
    expectRefused(pinferc(plan + "--json " + alias, err), err, "--json");
  }
  // The packed weights beside the executable count as an output too.
  const std::string stem = dir_ + "/w";
  ASSERT_EQ(::symlink(trace_.c_str(), (stem + ".weights.gguf").c_str()), 0);
  expectRefused(pinferc(model_ + " --trace " + trace_ + " --target cpu -o " +
                            stem,
                        err),
                err, "the packed weights");
  std::remove(hard.c_str());
  std::remove(soft.c_str());
  std::remove((stem + ".weights.gguf").c_str());
}

// Tests that outputs get the permissions of any new file of the user's
// (temporaries are made private), and that an interrupted model generator
// leaves no temporary behind.
TEST_F(OutputsTest, OutputsHaveUsualPermissions) {
  struct stat st;
  ASSERT_EQ(::stat(model_.c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
  ASSERT_EQ(::stat(trace_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);

  const auto before = listDir(dir_);
  std::system(("sh -c '" + kGenmodel + " --preset small -o " + dir_ +
               "/big.gguf >/dev/null & pid=$!; sleep 0.3; kill -INT $pid; "
               "wait $pid'")
                  .c_str());
  auto after = listDir(dir_);
  after.erase("big.gguf"); // finished before the signal: fine
  EXPECT_EQ(after, before);
  std::remove((dir_ + "/big.gguf").c_str());
}

// Tests that -o naming a directory or a missing directory is one line and
// writes nothing.
TEST_F(OutputsTest, UnusableOutputPathWritesNothing) {
  const std::string sub = dir_ + "/adir";
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  const auto before = listDir(dir_);
  std::string err;
  EXPECT_NE(pinferc(model_ + " --target cpu -o " + sub, err), 0);
  EXPECT_NE(err.find("is a directory"), std::string::npos) << err;
  EXPECT_NE(pinferc(model_ + " --target cpu -o " + dir_ + "/no/such/exe", err),
            0);
  EXPECT_NE(err.find("cannot create a file in " + dir_ + "/no/such"),
            std::string::npos)
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(listDir(dir_), before);
  ::rmdir(sub.c_str());
}

// Tests that a failing host compiler, and an interruption while it runs,
// leave the previous executable and its weights as they were (it still
// runs), and no temporary anywhere.
TEST_F(OutputsTest, FailedCompileKeepsThePreviousPair) {
  const std::string exe = dir_ + "/exe";
  const std::string compile =
      model_ + " --trace " + trace_ + " --target cpu -q -o " + exe;
  std::string err, out;
  ASSERT_EQ(pinferc(compile, err), 0) << err;
  const std::string exeBytes = readFile(exe);
  const std::string weightsBytes = readFile(exe + ".weights.gguf");
  // The compiles below would write other weights: those of another model.
  const std::string other = dir_ + "/other.gguf";
  ASSERT_EQ(run(kGenmodel + " --preset tiny --seed 7 -o " + other, out, err,
                dir_),
            0)
      << err;
  const std::string recompile = other + " --target cpu -q -o " + exe;
  auto before = listDir(dir_);

  // A host compiler that fails: the job says so in one line and keeps its
  // sources for inspection (named in the line); the pair is untouched.
  const std::string failing = dir_ + "/failing-cxx";
  {
    std::ofstream f(failing);
    f << "#!/bin/sh\n"
         "case \"$*\" in *-fsyntax-only*) exit 0;; esac\n"
         "echo 'main.cpp:1:1: error: something went wrong' >&2\nexit 1\n";
  }
  ::chmod(failing.c_str(), 0755);
  EXPECT_NE(pinferc(recompile, err, "CXX=" + failing), 0);
  EXPECT_NE(err.find("failed with status 1: main.cpp:1:1: error: something "
                     "went wrong"),
            std::string::npos)
      << err;
  std::system(("rm -rf " + tmp_ + "/*").c_str()); // the kept sources
  EXPECT_EQ(readFile(exe), exeBytes);
  EXPECT_EQ(readFile(exe + ".weights.gguf"), weightsBytes);

  // A write that fails (past the file-size limit, as a full disk fails
  // it): one line that says so, the pair untouched, no temporary left.
  EXPECT_NE(
      run("ulimit -f 1024; TMPDIR=" + tmp_ + " " + kPinferc + " " + recompile,
          out, err, dir_),
      0);
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(readFile(exe), exeBytes);
  EXPECT_EQ(readFile(exe + ".weights.gguf"), weightsBytes);
  EXPECT_TRUE(listDir(tmp_).empty());

  // A host compiler during which pinferc alone gets SIGINT (kill -INT, not
  // a terminal's Ctrl-C to the whole group): pinferc dies of SIGINT, ends
  // the compiler with what it started (its process group), and removes the
  // new weights, the half-linked executable and its temporary directory.
  const std::string interrupted = dir_ + "/interrupted-cxx";
  const std::string ended = tmp_ + "-cxx-ended";
  {
    std::ofstream f(interrupted);
    f << "#!/bin/sh\n"
         "case \"$*\" in *-fsyntax-only*) exit 0;; esac\n"
         "trap 'echo ended > "
      << ended
      << "; exit 1' TERM\n"
         "kill -INT $PPID\nsleep 5 &\nwait\nexit 1\n";
  }
  ::chmod(interrupted.c_str(), 0755);
  int rc = std::system(("TMPDIR=" + tmp_ + " CXX=" + interrupted + " " +
                        kPinferc + " " + recompile + " 2>/dev/null")
                           .c_str());
  EXPECT_TRUE(WIFSIGNALED(rc) ? WTERMSIG(rc) == SIGINT
                              : WEXITSTATUS(rc) == 128 + SIGINT)
      << rc;
  for (int i = 0; i < 40 && readFile(ended).empty(); ++i)
    ::usleep(50000);
  EXPECT_EQ(readFile(ended), "ended\n") << "the host compiler kept running";
  std::remove(ended.c_str());
  EXPECT_EQ(readFile(exe), exeBytes);
  EXPECT_EQ(readFile(exe + ".weights.gguf"), weightsBytes);
  std::remove(failing.c_str());
  std::remove(interrupted.c_str());
  std::remove(other.c_str());
  before.erase("other.gguf");
  auto after = listDir(dir_);
  EXPECT_EQ(after, before);
  ASSERT_EQ(run(exe + " -p hi -n 2 --temp 0", out, err, dir_), 0) << err;
}

// Tests that the main job without --trace compiles a ReLU model in predicted
// mode (--sparsity auto) with predictors trained on the built-in text, that
// the trained predictors are an output like the pair (OUT.predictors.gguf,
// named in the summary line) and that a failed recompile keeps all three.
TEST_F(OutputsTest, TrainedPredictorsAreReplacedWithThePair) {
  const std::string exe = dir_ + "/auto";
  std::string err, out;
  ASSERT_EQ(pinferc(model_ + " --target cpu -o " + exe, err), 0) << err;
  EXPECT_NE(err.find("sparsity predicted"), std::string::npos) << err;
  EXPECT_NE(err.find(" and " + exe + ".predictors.gguf for cpu"),
            std::string::npos)
      << err;
  const std::string files[] = {exe, exe + ".weights.gguf",
                               exe + ".predictors.gguf"};
  std::vector<std::string> bytes;
  for (const std::string &f : files) {
    bytes.push_back(readFile(f));
    EXPECT_FALSE(bytes.back().empty()) << f;
  }
  const std::string other = dir_ + "/other-auto.gguf";
  ASSERT_EQ(
      run(kGenmodel + " --preset tiny --seed 9 -o " + other, out, err, dir_), 0)
      << err;
  auto before = listDir(dir_);
  const std::string failing = dir_ + "/failing-cxx-auto";
  {
    std::ofstream f(failing);
    f << "#!/bin/sh\n"
         "case \"$*\" in *-fsyntax-only*) exit 0;; esac\nexit 1\n";
  }
  ::chmod(failing.c_str(), 0755);
  before.insert("failing-cxx-auto");
  EXPECT_NE(
      pinferc(other + " --target cpu -q -o " + exe, err, "CXX=" + failing), 0);
  std::system(("rm -rf " + tmp_ + "/*").c_str()); // the kept sources
  for (size_t i = 0; i < bytes.size(); ++i)
    EXPECT_EQ(readFile(files[i]), bytes[i]) << files[i];
  EXPECT_EQ(listDir(dir_), before);
  ASSERT_EQ(run(exe + " -p hi -n 2 --temp 0", out, err, dir_), 0) << err;
  std::remove(failing.c_str());
  std::remove(other.c_str());
  for (const std::string &f : files)
    std::remove(f.c_str());
}

// Tests that a plan is used only for the model and target it was made for.
TEST_F(OutputsTest, PlanMustMatchModelAndTarget) {
  const std::string plan = dir_ + "/m.plan.json";
  std::string err;
  ASSERT_EQ(pinferc("plan " + model_ + " --trace " + trace_ +
                        " --target rtx4090 --no-z3 --json " + plan,
                    err),
            0)
      << err;
  const std::string other = dir_ + "/other.gguf";
  std::string out;
  ASSERT_EQ(run(kGenmodel + " --preset tiny --seed 7 -o " + other, out, err,
                dir_),
            0)
      << err;
  const std::string exe = dir_ + "/plan-exe";
  EXPECT_NE(pinferc(other + " --target rtx4090 --plan " + plan + " -o " + exe,
                    err),
            0);
  EXPECT_NE(err.find("was made for model"), std::string::npos) << err;
  EXPECT_NE(pinferc(model_ + " --target h100 --plan " + plan + " -o " + exe,
                    err),
            0);
  EXPECT_NE(err.find("was made for target 'rtx4090', expected one for h100"),
            std::string::npos)
      << err;
  EXPECT_FALSE(listDir(dir_).count("plan-exe"));
  std::remove(other.c_str());
  std::remove(plan.c_str());
}

} // namespace
