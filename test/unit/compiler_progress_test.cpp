// Tests of the main job's progress lines (compiler/Progress.h): one line
// per step in a log, a bar redrawn in place on a terminal, nothing with -q,
// and the main job's steps in order.
#include "compile_test_util.h"
#include "compiler/Progress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <thread>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

// What `body` wrote through a Progress of `style`.
template <typename F> std::string written(Progress::Style style, F body) {
  char *buf = nullptr;
  size_t size = 0;
  std::FILE *f = ::open_memstream(&buf, &size);
  {
    Progress p(style, f);
    body(p);
  }
  std::fclose(f);
  std::string s(buf, size);
  std::free(buf);
  return s;
}

size_t lines(const std::string &s) {
  return size_t(std::count(s.begin(), s.end(), '\n'));
}

} // namespace

// Tests that a log gets one line per step as it starts, and nothing for
// updates or for a step that never started.
TEST(Progress, LinesAreOnePerStep) {
  std::string times;
  std::string s = written(Progress::Style::Lines, [&](Progress &p) {
    p.begin("profile", "profiling the text", Progress::Unit::Items, "tokens");
    for (uint64_t i = 0; i <= 100; ++i)
      p.update(i, 100);
    p.begin("pack", "packing", Progress::Unit::Bytes); // ends profiling
    p.update(1 << 20, 2 << 20);
    p.end();
    p.beginOnUpdate("never", "a step that fails before it starts");
    p.end();
    times = p.times();
  });
  EXPECT_EQ(s, "pinferc: profiling the text\npinferc: packing\n");
  EXPECT_EQ(times.find("profile "), 0u) << times;
  EXPECT_NE(times.find(", pack "), std::string::npos) << times;
  EXPECT_EQ(times.find("never"), std::string::npos) << times;
}

// Tests that a step begun on update shows once its work reports.
TEST(Progress, StepBegunOnUpdateShowsWithItsWork) {
  std::string s = written(Progress::Style::Lines, [](Progress &p) {
    p.beginOnUpdate("profile", "profiling");
    p.update(0, 10);
    p.update(5, 10);
  });
  EXPECT_EQ(s, "pinferc: profiling\n");
}

TEST(Progress, QuietWritesNothing) {
  std::string times = "x";
  std::string s = written(Progress::Style::Quiet, [&](Progress &p) {
    p.begin("pack", "packing");
    p.update(1, 2);
    p.end();
    times = p.times();
  });
  EXPECT_EQ(s, "");
  EXPECT_EQ(times, "");
}

// Tests that a terminal gets one line per step redrawn in place, finished
// with a newline (so that an error after a failed step starts its own line),
// at 100 % with the step's time once it ends.
TEST(Progress, BarRedrawsOneLinePerStep) {
  std::string s = written(Progress::Style::Bar, [](Progress &p) {
    p.begin("profile", "profiling", Progress::Unit::Items, "tokens");
    for (uint64_t i = 0; i <= 40; ++i) {
      p.update(i, 40);
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
    }
    p.end();
    p.begin("host compile", "compiling the host code");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  });
  EXPECT_EQ(lines(s), 2u) << s;
  EXPECT_GT(std::count(s.begin(), s.end(), '\r'), 3) << s;
  std::string first = s.substr(0, s.find('\n'));
  std::string last = first.substr(first.rfind('\r') + 1);
  EXPECT_EQ(last.find("pinferc: profiling [########################] 100% "
                      "40/40 tokens, "),
            0u)
      << last;
  // A step of unknown size shows the time it has taken.
  std::string second = s.substr(s.rfind('\r') + 1);
  EXPECT_EQ(second.find("pinferc: compiling the host code  "), 0u) << second;
  EXPECT_EQ(second.substr(second.size() - 3), " s\n") << second;
  EXPECT_EQ(s.back(), '\n');
}

// Tests the bar's numbers: the ETA from the rate so far, bytes in units,
// and a name shortened to keep the line within the terminal.
TEST(Progress, BarLineSaysHowFarAndHowLong) {
  EXPECT_EQ(Progress::barLine("packing", Progress::Unit::Bytes, "", 1 << 20,
                              4 << 20, 2.0),
            "pinferc: packing [######..................]  25% 1.0 MiB/4.0 MiB, "
            "ETA 6.0 s");
  // No ETA before half a second of work: the first rate is noise.
  EXPECT_EQ(Progress::barLine("profiling", Progress::Unit::Items, "tokens", 1,
                              10, 0.1),
            "pinferc: profiling [##......................]  10% 1/10 tokens");
  std::string narrow = Progress::barLine(
      std::string(100, 'w'), Progress::Unit::Items, "tokens", 5, 10, 1.0, 80);
  EXPECT_LT(narrow.size(), 80u) << narrow;
  EXPECT_EQ(narrow.find("pinferc: www"), 0u) << narrow;
  EXPECT_NE(narrow.find("w... ["), std::string::npos) << narrow;
  EXPECT_NE(narrow.find("50% 5/10 tokens, ETA 1.0 s"), std::string::npos)
      << narrow;
}

// Tests the main job's steps in a log: profiling (no --trace), placing,
// lowering, NVRTC, packing and host compiling, one line each, in order,
// then the summary with each step's time, for a budget that splits the
// model; with the whole card, no profile, and the line that says why; -q
// leaves only errors. (Exact mode: auto would train predictors for this
// ReLU model when it is split, which prints its own table.)
TEST(Progress, MainJobSaysEachStep) {
  const std::string dir = ::testing::TempDir() + "/pinfer-progress";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  std::string out, err;
  ASSERT_EQ(
      run(kGenmodel + " --preset tiny -o " + dir + "/m.gguf", out, err, dir), 0)
      << err;
  ASSERT_EQ(run(kPinferc + " " + dir +
                    "/m.gguf --target rtx4090 --sparsity exact "
                    "--vram-budget 411MiB -o " +
                    dir + "/e",
                out, err, dir),
            0)
      << err;
  const char *steps[] = {
      "pinferc: no --trace given; profiling the built-in calibration text\n",
      "pinferc: placing neurons under the VRAM budget\n",
      "pinferc: lowering the model through the pinfer pipeline\n",
      "pinferc: compiling the GPU kernels with NVRTC for sm_89\n",
      "pinferc: packing the weights into " /* path */,
      "pinferc: compiling the host code (",
      "pinferc: wrote "};
  size_t at = 0;
  for (const char *step : steps) {
    size_t next = err.find(step, at);
    ASSERT_NE(next, std::string::npos) << step << "\n" << err;
    at = next + 1;
  }
  EXPECT_EQ(lines(err), 7u) << err;
  EXPECT_NE(err.find("(profile "), std::string::npos) << err;
  EXPECT_NE(err.find(", host compile "), std::string::npos) << err;
  EXPECT_EQ(err.find('\r'), std::string::npos) << err;

  ASSERT_EQ(
      run(kPinferc + " " + dir + "/m.gguf --target rtx4090 -o " + dir + "/e",
          out, err, dir),
      0)
      << err;
  EXPECT_NE(err.find("pinferc: the whole model fits the GPU: every neuron "
                     "goes there, no profile needed (sparsity exact)\n"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("profiling"), std::string::npos) << err;
  EXPECT_EQ(err.find("(profile "), std::string::npos) << err;
  EXPECT_EQ(err.find("train"), std::string::npos) << err;
  EXPECT_NE(err.find("1024 of 1024 FFN neurons on the GPU"), std::string::npos)
      << err;

  ASSERT_EQ(
      run(kPinferc + " " + dir + "/m.gguf --target rtx4090 -q -o " + dir + "/e",
          out, err, dir),
      0)
      << err;
  EXPECT_EQ(err, "");
  std::system(("rm -rf " + dir).c_str());
}
