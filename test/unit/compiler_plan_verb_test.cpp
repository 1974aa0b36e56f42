// Tests `pinferc plan` against the main job: the plan it prints is the one
// the compile with the same flags makes, predictors included (trained and
// billed where the compile would train them), and its sparsity mode is the
// compile's --sparsity.
#include "compile_test_util.h"

#include "compiler/placement/Plan.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "temp_dir.h"
#include <cstdlib>
#include <sys/stat.h>
#include <unistd.h>

using namespace pinfer;
using namespace pinfer::testutil;

namespace {

class PlanVerbTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-plan-verb-test");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    model_ = dir_ + "/m.gguf";
    std::string out, err;
    // The tiny preset: a ReLU model without stored predictors.
    ASSERT_EQ(run(kGenmodel + " --preset tiny -o " + model_, out, err, dir_), 0)
        << err;
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + dir_).c_str()); }

  // `pinferc plan` with `flags`, its JSON read back.
  static void plan(const std::string &flags, Plan &p) {
    const std::string json = dir_ + "/p.json";
    std::string out, err;
    ASSERT_EQ(run(kPinferc + " plan " + model_ +
                      " --target rtx4090 --vram-budget 411MiB --json " + json +
                      " " + flags,
                  out, err, dir_),
              0)
        << err;
    std::string error;
    ASSERT_TRUE(readPlanJson(json, p, error)) << error;
  }
  static bool billNames(const Plan &p, const std::string &what) {
    for (const BillLine &b : p.bill)
      if (b.what.find(what) != std::string::npos)
        return true;
    return false;
  }

  static std::string dir_, model_;
};
std::string PlanVerbTest::dir_, PlanVerbTest::model_;

// Tests that under --sparsity auto a ReLU model's plan is predicted mode's,
// as the compile's: the predictors the compile trains sit beside each GPU
// half and are billed; --sparsity exact bills none. The plan compiles
// under its own budget (pinfer-plan-memory bills the same and refuses a
// byte more).
TEST_F(PlanVerbTest, BillsThePredictorsTheCompileTrains) {
  Plan predicted, exact;
  ASSERT_NO_FATAL_FAILURE(plan("", predicted));
  ASSERT_NO_FATAL_FAILURE(plan("--sparsity exact", exact));
  uint32_t hot = 0;
  for (const LayerPlan &l : predicted.layers)
    hot += l.nHot;
  ASSERT_GT(hot, 0u);
  EXPECT_TRUE(billNames(predicted, "predictors")) << planToJson(predicted);
  EXPECT_FALSE(billNames(exact, "predictors")) << planToJson(exact);
  EXPECT_GT(predicted.billBytes, exact.billBytes);
  EXPECT_LE(predicted.billBytes, predicted.budgetBytes);
  // The compile with that plan trains the same predictors and fits.
  const std::string json = dir_ + "/predicted.json";
  std::string error, out, err;
  ASSERT_TRUE(writePlanJson(json, predicted, error)) << error;
  EXPECT_EQ(run(kPinferc + " " + model_ + " --plan " + json +
                    " --sparsity predicted -q --emit=steps",
                out, err, dir_),
            0)
      << err;
  EXPECT_NE(out.find("predict@gpu"), std::string::npos) << out;

  // Neither the plan nor the compile writes a copy of the model with the
  // trained predictors attached (for a 7B, gigabytes): both are made under
  // a file-size limit a tenth of the model's (the compile's --emit writes
  // no packed weights), with the same bill and the predictors on the GPU.
  struct stat st;
  ASSERT_EQ(::stat(model_.c_str(), &st), 0);
  const std::string limited =
      "ulimit -f " + std::to_string(st.st_size / 1024 / 10) + "; ";
  ASSERT_EQ(run(limited + kPinferc + " plan " + model_ +
                    " --target rtx4090 --vram-budget 411MiB --json " + json,
                out, err, dir_),
            0)
      << err;
  Plan again;
  ASSERT_TRUE(readPlanJson(json, again, error)) << error;
  EXPECT_EQ(again.billBytes, predicted.billBytes);
  ASSERT_EQ(run(limited + kPinferc + " " + model_ + " --plan " + json +
                    " --sparsity predicted -q --emit=steps",
                out, err, dir_),
            0)
      << err;
  EXPECT_NE(out.find("predict@gpu"), std::string::npos) << out;
}

// Tests --target native: the device the CUDA driver reports (the stand-in
// here, given a name, a compute capability and its memory) picks the
// table's row by name, else by architecture; the card's VRAM is the
// target's and what is free, plus the context reserve, the default budget;
// a device older than every row is one line; no driver means the CPU.
TEST_F(PlanVerbTest, NativeTargetIsTheMachinesGpu) {
  const std::string json = dir_ + "/native.json";
  auto native = [&](const std::string &env, Plan &p, std::string &err) {
    std::string out, error;
    const int rc = run("env LD_LIBRARY_PATH=" PINFER_CUDA_STANDIN_DIR " " +
                           env + " " + kPinferc + " plan " + model_ +
                           " --target native --sparsity exact --json " + json,
                       out, err, dir_);
    if (rc == 0)
      EXPECT_TRUE(readPlanJson(json, p, error)) << error;
    return rc;
  };
  constexpr uint64_t MiB = uint64_t(1) << 20;
  Plan p;
  std::string err;
  // A 4090 by its name, with 600 MiB: the tiny model whole.
  ASSERT_EQ(native("PINFER_CUDA_STANDIN_VRAM_MIB=600 "
                   "PINFER_CUDA_STANDIN_NAME='NVIDIA GeForce RTX 4090'",
                   p, err),
            0)
      << err;
  EXPECT_EQ(p.target, "native");
  EXPECT_EQ(p.budgetBytes, 600 * MiB);
  EXPECT_NE(err.find("--target native: NVIDIA GeForce RTX 4090 (compute "
                     "capability 8.9), 600.0 MiB with 600.0 MiB free: the "
                     "rtx4090 row by its name, budget 600.0 MiB"),
            std::string::npos)
      << err;
  uint32_t hot = 0;
  for (const LayerPlan &l : p.layers)
    hot += l.nHot;
  EXPECT_EQ(hot, p.nLayer * p.nFF);
  // pinferc targets says what native is here.
  std::string out;
  ASSERT_EQ(run("env LD_LIBRARY_PATH=" PINFER_CUDA_STANDIN_DIR
                " PINFER_CUDA_STANDIN_VRAM_MIB=600 " +
                    kPinferc + " targets",
                out, err, dir_),
            0)
      << err;
  EXPECT_NE(out.find("\nhere, --target native: pinfer host stand-in (test "
                     "only) (compute capability 8.9), 600.0 MiB"),
            std::string::npos)
      << out;
  // An unknown name: the row of its architecture (8.6: the first sm_86
  // row); a smaller card: the plan splits under its memory.
  ASSERT_EQ(native("PINFER_CUDA_STANDIN_VRAM_MIB=408 PINFER_CUDA_STANDIN_CC=86",
                   p, err),
            0)
      << err;
  EXPECT_EQ(p.budgetBytes, 408 * MiB);
  EXPECT_NE(err.find("the rtx3090 row by its architecture"), std::string::npos)
      << err;
  EXPECT_LE(p.billBytes, p.budgetBytes);
  hot = 0;
  for (const LayerPlan &l : p.layers)
    hot += l.nHot;
  EXPECT_LT(hot, p.nLayer * p.nFF);
  // Older than every row: one line.
  EXPECT_NE(native("PINFER_CUDA_STANDIN_CC=70", p, err), 0);
  EXPECT_NE(err.find("pinferc: error: --target native: pinfer host stand-in "
                     "(test only) is compute capability 7.0, older than "
                     "every target's (the oldest is sm_75"),
            std::string::npos)
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  // No driver: the CPU (where this machine has a real one, not tested).
  ASSERT_EQ(run("env LD_LIBRARY_PATH= " + kPinferc + " plan " + model_ +
                    " --target native --sparsity exact --json " + json,
                out, err, dir_),
            0)
      << err;
  if (err.find("compiling for the CPU") == std::string::npos)
    return;
  std::string error;
  ASSERT_TRUE(readPlanJson(json, p, error)) << error;
  EXPECT_EQ(p.budgetBytes, 0u);
  EXPECT_NE(err.find("--target native: no CUDA driver"), std::string::npos)
      << err;
}

} // namespace
