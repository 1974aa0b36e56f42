// Tests of the target table, target lookup errors, --vram-budget size
// parsing and byte formatting.
#include "compiler/Targets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

using namespace pinfer;

TEST(Targets, RequiredTargetsHaveTheirFigures) {
  std::string err;
  const Target *t = findTarget("rtx4090", err);
  ASSERT_NE(t, nullptr) << err;
  EXPECT_EQ(t->smArch, "sm_89");
  EXPECT_EQ(t->vramBytes, 24ull << 30);
  EXPECT_EQ(t->gpuBandwidthGBs, 1008);
  struct Want {
    const char *name, *sm;
    uint64_t vram;
    double bw;
  } wants[] = {{"rtx3090", "sm_86", 24ull << 30, 936},
               {"rtx2080ti", "sm_75", 11ull << 30, 616},
               {"a100-40g", "sm_80", 40ull << 30, 1555},
               {"a100-80g", "sm_80", 80ull << 30, 1935},
               {"rtx4080", "sm_89", 16ull << 30, 717},
               {"rtx3080", "sm_86", 10ull << 30, 760},
               {"l40s", "sm_89", 48ull << 30, 864},
               {"rtx6000ada", "sm_89", 48ull << 30, 960},
               {"h100", "sm_90", 80ull << 30, 2000},
               {"h200", "sm_90", 141000000000ull, 4800}};
  for (const Want &w : wants) {
    const Target *x = findTarget(w.name, err);
    ASSERT_NE(x, nullptr) << err;
    EXPECT_EQ(x->smArch, w.sm) << w.name;
    EXPECT_EQ(x->vramBytes, w.vram) << w.name;
    EXPECT_EQ(x->gpuBandwidthGBs, w.bw) << w.name;
  }
  for (const Target &x : allTargets()) {
    EXPECT_GT(x.host.cores, 0u) << x.name;
    EXPECT_GT(x.host.memBandwidthGBs, 0) << x.name;
    if (x.hasGPU()) {
      EXPECT_GT(x.pcieGBs, 0) << x.name;
      EXPECT_GT(x.launchUs, 0) << x.name;
      EXPECT_GT(x.syncUs, 0) << x.name;
      EXPECT_GE(x.contextReserveBytes, 300ull << 20) << x.name;
      EXPECT_LE(x.contextReserveBytes, 500ull << 20) << x.name;
    }
  }
  const Target *cpu = findTarget("cpu", err);
  ASSERT_NE(cpu, nullptr);
  EXPECT_FALSE(cpu->hasGPU());
  EXPECT_TRUE(cpu->smArch.empty());
}

TEST(Targets, LookupIsCaseInsensitive) {
  std::string err;
  const Target *t = findTarget("RTX4090", err);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->name, "rtx4090");
}

TEST(Targets, UnknownTargetListsKnownNames) {
  std::string err;
  EXPECT_EQ(findTarget("gtx480", err), nullptr);
  EXPECT_EQ(err.find('\n'), std::string::npos);
  EXPECT_NE(err.find("unknown target 'gtx480'"), std::string::npos) << err;
  for (const Target &t : allTargets())
    EXPECT_NE(err.find(t.name), std::string::npos) << err;
}

TEST(Targets, ParseSizeUnits) {
  struct Case {
    const char *text;
    uint64_t want;
  } cases[] = {{"123", 123},
               {"6GiB", 6ull << 30},
               {"6G", 6ull << 30},
               {"6g", 6ull << 30},
               {"6000MB", 6000000000ull},
               {"6GB", 6000000000ull},
               {"512MiB", 512ull << 20},
               {"512M", 512ull << 20},
               {"64KiB", 65536},
               {"64kB", 64000},
               {"5.5GiB", (11ull << 30) / 2},
               {"1TiB", 1ull << 40},
               {"7B", 7}};
  for (const Case &c : cases) {
    uint64_t v = 0;
    std::string err;
    EXPECT_TRUE(parseSize(c.text, v, err)) << c.text << ": " << err;
    EXPECT_EQ(v, c.want) << c.text;
  }
}

TEST(Targets, ParseSizeRejectsGarbage) {
  for (const char *bad : {"", "GiB", "6XB", "6 GiB", "1.2.3G", "-5G", ".",
                          "99999999999999999999TiB"}) {
    uint64_t v = 0;
    std::string err;
    EXPECT_FALSE(parseSize(bad, v, err)) << bad;
    EXPECT_NE(err.find("expected a number"), std::string::npos) << err;
  }
}

TEST(Targets, FormatBytes) {
  EXPECT_EQ(formatBytes(17), "17 B");
  EXPECT_EQ(formatBytes(12 * 1024), "12.0 KiB");
  EXPECT_EQ(formatBytes(300ull << 20), "300.0 MiB");
  EXPECT_EQ(formatBytes((72ull << 30) / 10), "7.20 GiB");
}

TEST(Targets, TableHasEveryTarget) {
  std::ostringstream os;
  printTargets(os);
  std::string text = os.str();
  for (const Target &t : allTargets())
    EXPECT_NE(text.find(t.name), std::string::npos) << t.name;
  EXPECT_NE(text.find("sm_89"), std::string::npos);
  EXPECT_NE(text.find("24.00 GiB"), std::string::npos);
  // header + one line per target + two saying what native is
  EXPECT_EQ(size_t(std::count(text.begin(), text.end(), '\n')),
            allTargets().size() + 3);
  EXPECT_NE(text.find("\nnative "), std::string::npos);
}
