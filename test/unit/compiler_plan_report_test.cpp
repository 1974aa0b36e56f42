// Tests of the plan's outputs: JSON round trip and malformed JSON, the text
// table, and the SVG (well-formed XML, checked by Python's parser).
#include "compiler/placement/Plan.h"

#include "compiler/Trace.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

using namespace pinfer;

namespace {

std::string tempPath(const std::string &leaf) {
  return testing::TempDir() + "/pinfer_plan_" + std::to_string(getpid()) + "_" + leaf;
}

// 4 layers x 512 neurons under a budget that fits only part of them.
Plan smallPlan() {
  Trace t;
  t.nLayer = 4;
  t.nFF = 512;
  t.nTokens = 1000;
  t.modelIdentity = "00000000deadbeef";
  std::mt19937 rng(4);
  t.fired.resize(4);
  for (auto &layer : t.fired)
    for (uint32_t i = 0; i < t.nFF; ++i)
      layer.push_back(rng() % 3 ? rng() % 20 : 200 + rng() % 800);
  ModelShape s = syntheticShape(4, 512, 256, 256, 1000, GGMLType::F16);
  PlacementOptions o;
  o.minGranules = 1;
  o.vramBudget = 409ull << 20; // 405.7 MiB mandatory, 3.3 MiB of neurons
  std::string err;
  const Target *target = findTarget("rtx4090", err);
  Plan plan;
  EXPECT_TRUE(planPlacement(t, s, *target, o, plan, err)) << err;
  return plan;
}

std::string readFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void expectSamePlan(const Plan &a, const Plan &b) {
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.modelIdentity, b.modelIdentity);
  EXPECT_EQ(a.nLayer, b.nLayer);
  EXPECT_EQ(a.nFF, b.nFF);
  EXPECT_EQ(a.nCtx, b.nCtx);
  EXPECT_EQ(a.granuleSize, b.granuleSize);
  EXPECT_EQ(a.budgetBytes, b.budgetBytes);
  EXPECT_EQ(a.billBytes, b.billBytes);
  EXPECT_EQ(a.outputOnGPU, b.outputOnGPU);
  EXPECT_EQ(a.gpuBytesPerToken, b.gpuBytesPerToken);
  EXPECT_EQ(a.cpuBytesPerToken, b.cpuBytesPerToken);
  EXPECT_EQ(a.objective, b.objective);
  EXPECT_EQ(a.upperBound, b.upperBound);
  EXPECT_EQ(a.gap, b.gap);
  EXPECT_EQ(a.provenOptimal, b.provenOptimal);
  EXPECT_EQ(a.solver, b.solver);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.dpStatus, b.dpStatus);
  EXPECT_EQ(a.z3Status, b.z3Status);
  EXPECT_EQ(a.dpSeconds, b.dpSeconds);
  EXPECT_EQ(a.z3Seconds, b.z3Seconds);
  ASSERT_EQ(a.bill.size(), b.bill.size());
  for (size_t i = 0; i < a.bill.size(); ++i) {
    EXPECT_EQ(a.bill[i].what, b.bill[i].what);
    EXPECT_EQ(a.bill[i].bytes, b.bill[i].bytes);
  }
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    const LayerPlan &x = a.layers[l], &y = b.layers[l];
    EXPECT_EQ(x.nHot, y.nHot);
    EXPECT_EQ(x.hotGranules, y.hotGranules);
    EXPECT_EQ(x.nGranules, y.nGranules);
    EXPECT_EQ(x.minGranules, y.minGranules);
    EXPECT_EQ(x.coverage, y.coverage);
    EXPECT_EQ(x.attentionOnGPU, y.attentionOnGPU);
    EXPECT_EQ(x.vramBytes, y.vramBytes);
    EXPECT_EQ(x.gpuBytesPerToken, y.gpuBytesPerToken);
    EXPECT_EQ(x.cpuBytesPerToken, y.cpuBytesPerToken);
    EXPECT_EQ(x.order, y.order);
    EXPECT_EQ(x.curve, y.curve);
  }
}

std::string parseError(const std::string &text) {
  Plan p;
  std::string err;
  EXPECT_FALSE(planFromJson(text, "bad.json", p, err));
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  EXPECT_EQ(err.rfind("bad.json: ", 0), 0u) << err;
  return err;
}

std::string replaceOnce(std::string s, const std::string &from,
                        const std::string &to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos)
    s.replace(at, from.size(), to);
  return s;
}

} // namespace

TEST(PlanJson, RoundTrip) {
  Plan plan = smallPlan();
  // The budget fits part of the model: some layers hot, some not all.
  uint32_t hot = 0;
  for (const LayerPlan &l : plan.layers)
    hot += l.nHot;
  EXPECT_GT(hot, 0u);
  EXPECT_LT(hot, 4u * 512);
  plan.status += " \"quoted\" \\ and\ttab"; // escapes survive
  std::string path = tempPath("rt.json"), err;
  ASSERT_TRUE(writePlanJson(path, plan, err)) << err;
  Plan back;
  ASSERT_TRUE(readPlanJson(path, back, err)) << err;
  expectSamePlan(plan, back);
  // Writing the read plan gives the same text.
  EXPECT_EQ(planToJson(back), readFile(path));
}

TEST(PlanJson, UnknownKeysAreSkipped) {
  std::string text = planToJson(smallPlan());
  text = replaceOnce(text, "\"target\"",
                     "\"future\": {\"a\": [1, 2.5e3, null, true, \"x\"]},\n  "
                     "\"target\"");
  Plan p;
  std::string err;
  EXPECT_TRUE(planFromJson(text, "ok.json", p, err)) << err;
}

TEST(PlanJson, MalformedInputs) {
  std::string good = planToJson(smallPlan());
  // Every truncation fails with one line naming the file.
  for (size_t n = 0; n + 1 < good.size(); n += 97)
    parseError(good.substr(0, n));
  EXPECT_NE(parseError(replaceOnce(good, "\"pinferc-plan\"", "\"other\""))
                .find("key format: found 'other'"),
            std::string::npos);
  EXPECT_NE(parseError(replaceOnce(good, "\"version\":1", "\"version\":2"))
                .find("key version: found 2, expected 1"),
            std::string::npos);
  EXPECT_NE(parseError(replaceOnce(good, "\"n_layer\":4", "\"n_layer\":5"))
                .find("4 entries, expected n_layer = 5"),
            std::string::npos);
  EXPECT_NE(parseError(replaceOnce(good, "\"n_layer\":4", "\"n_layer\":-4"))
                .find("expected a non-negative integer"),
            std::string::npos);
  EXPECT_NE(
      parseError(replaceOnce(good, "\"n_layer\":4",
                             "\"n_layer\":99999999999999999999999"))
          .find("key n_layer: found number, expected a non-negative integer"),
      std::string::npos);
  EXPECT_NE(parseError(replaceOnce(good, "\"output_on_gpu\":",
                                   "\"output_on_gpu\":7, \"x\":"))
                .find("expected true or false"),
            std::string::npos);
  EXPECT_NE(parseError(replaceOnce(good, "\"bill_bytes\":", "\"bill_bytes\":1"))
                .find("expected the sum of the bill lines"),
            std::string::npos);
  EXPECT_NE(parseError(good + "x").find("expected end of input"),
            std::string::npos);
  // A repeated neuron breaks the permutation.
  size_t order = good.find("\"order\":[");
  ASSERT_NE(order, std::string::npos);
  size_t first = order + 9;
  size_t comma = good.find(',', first);
  std::string firstId = good.substr(first, comma - first);
  size_t second = comma + 1;
  size_t comma2 = good.find(',', second);
  std::string broken = good;
  broken.replace(second, comma2 - second, firstId);
  EXPECT_NE(parseError(broken).find("out of range or repeated"),
            std::string::npos);
  EXPECT_NE(parseError("[1, 2]").find("found array, expected a plan object"),
            std::string::npos);
  EXPECT_NE(parseError("[[").find("unexpected end of input"),
            std::string::npos);
  std::string deep =
      replaceOnce(good, "\"target\"",
                  "\"deep\": " + std::string(100000, '[') +
                      std::string(100000, ']') + ",\n  \"target\"");
  EXPECT_NE(parseError(deep).find("nesting deeper than 64"),
            std::string::npos);
  EXPECT_NE(parseError(replaceOnce(good, "\"bill\":[", "\"bill\":[7,"))
                .find("key bill: found number, expected"),
            std::string::npos);
  EXPECT_NE(parseError(replaceOnce(good, "\"order\":[", "\"order\":[-1,"))
                .find("layers[0]: key order: found number -1, expected a "
                      "neuron id"),
            std::string::npos);
}

TEST(PlanReport, TableShowsLayersAndBill) {
  Plan plan = smallPlan();
  std::ostringstream os;
  printPlanTable(os, plan);
  std::string text = os.str();
  EXPECT_NE(text.find("placement for target rtx4090"), std::string::npos);
  EXPECT_NE(text.find("status: " + plan.status), std::string::npos);
  EXPECT_NE(text.find("hot/n_ff"), std::string::npos);
  char row[64];
  std::snprintf(row, sizeof row, "%u/512", plan.layers[3].nHot);
  EXPECT_NE(text.find(row), std::string::npos) << text;
  EXPECT_NE(text.find("CUDA context reserve"), std::string::npos);
  EXPECT_NE(text.find("total"), std::string::npos);
  EXPECT_NE(text.find(formatBytes(plan.billBytes)), std::string::npos);
  std::printf("%s", text.c_str());
}

// Tests that a layer without GPU neurons is named with the reason: the
// budget went elsewhere, or even the whole layer would not pay for its
// round trip (a tiny model under the cost model's own minimum).
TEST(PlanReport, SaysWhyALayerHasNoGpuNeuron) {
  Plan plan = smallPlan();
  plan.layers[1].nHot = 0;
  plan.layers[1].minGranules = 2;
  plan.layers[2].nHot = 0;
  plan.layers[2].minGranules = plan.layers[2].nGranules + 1;
  std::ostringstream os;
  printPlanTable(os, plan);
  const std::string text = os.str();
  EXPECT_NE(text.find("layer 1 has no GPU neuron: the budget went to what "
                      "saves more CPU time per byte (other layers' neurons, "
                      "attention, the output head; at least " +
                      std::to_string(2 * plan.granuleSize) + " neurons"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("layer 2 has no GPU neuron: even all 512 of its "
                      "neurons would save the CPU less time than the layer's "
                      "GPU round trip costs"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("layer 0 has no GPU neuron"), std::string::npos)
      << text;
  // Where another layer is wholly on the GPU with its attention (no round
  // trip), the reason is the budget, not the layer.
  plan.layers[0].nHot = plan.nFF;
  plan.layers[0].attentionOnGPU = true;
  std::ostringstream whole;
  printPlanTable(whole, plan);
  EXPECT_NE(whole.str().find("layer 2 has no GPU neuron: a part of it would "
                             "save the CPU less time than the layer's GPU "
                             "round trip costs, and the budget had no room "
                             "left for the whole layer"),
            std::string::npos)
      << whole.str();
}

TEST(PlanReport, SvgIsWellFormedXml) {
  Plan plan = smallPlan();
  plan.bill.push_back({"odd <name> & \"quotes\"", 0}); // must be escaped
  std::string path = tempPath("plan.svg"), err;
  ASSERT_TRUE(writePlanSvg(path, plan, err)) << err;
  std::string svg = readFile(path);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("odd &lt;name&gt; &amp; &quot;quotes&quot;"),
            std::string::npos);
  // One curve per layer.
  size_t curves = 0;
  for (size_t at = 0; (at = svg.find("<polyline", at)) != std::string::npos;
       ++at)
    ++curves;
  EXPECT_EQ(curves, plan.layers.size());
  if (std::system("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 not available to parse the SVG";
  std::string cmd = "python3 -c 'import sys, xml.dom.minidom as m; "
                    "d = m.parse(sys.argv[1]); "
                    "assert d.documentElement.tagName == \"svg\"' " +
                    path;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << svg.substr(0, 400);
  // and a deliberately broken copy is rejected, so the check can fail
  std::string broken = tempPath("broken.svg");
  std::ofstream(broken) << svg.substr(0, svg.size() / 2);
  std::string cmd2 = "python3 -c 'import sys, xml.dom.minidom as m; "
                     "m.parse(sys.argv[1])' " + broken + " 2>/dev/null";
  EXPECT_NE(std::system(cmd2.c_str()), 0);
}

// Tests that the picture says what it shows (axes with units, where
// attention, the KV cache and the head run, bytes and tokens/s, the unused
// budget), draws the CUDA context's fixed reserve apart when to scale it
// would crush the neurons, and renders (rsvg-convert, librsvg2-bin).
TEST(PlanReport, SvgSaysWhatItShowsAndRenders) {
  Plan plan = smallPlan();
  std::string svg = planToSvg(plan);
  for (const char *said :
       {"neuron rank", "firings per token", "serving ", " of firings",
        "attention+KV on ", "output head on the ", "tokens/s at 1008 GB/s GPU",
        "the GPU reads ", "the CPU reads ", "unused: ",
        "CUDA context reserve: 400.0 MiB (fixed; drawn not to scale)"})
    EXPECT_NE(svg.find(said), std::string::npos) << said;
  // 400 MiB of a 405 MiB budget: to scale the neurons would be slivers.
  Plan roomy = plan;
  roomy.budgetBytes = 24ull << 30;
  EXPECT_EQ(planToSvg(roomy).find("not to scale"), std::string::npos);

  if (std::system("command -v rsvg-convert >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "rsvg-convert not installed (librsvg2-bin): not rendered";
  const std::string path = tempPath("render.svg"), png = tempPath("render.png");
  std::string err;
  ASSERT_TRUE(writePlanSvg(path, plan, err)) << err;
  ASSERT_EQ(std::system(("rsvg-convert " + path + " -o " + png).c_str()), 0);
  std::string image = readFile(png);
  ASSERT_GT(image.size(), 24u);
  EXPECT_EQ(image.compare(0, 8, "\x89PNG\r\n\x1a\n"), 0);
  // The IHDR's width and height, big-endian at bytes 16 and 20.
  auto be32 = [&](size_t at) {
    return uint32_t(uint8_t(image[at])) << 24 |
           uint32_t(uint8_t(image[at + 1])) << 16 |
           uint32_t(uint8_t(image[at + 2])) << 8 | uint8_t(image[at + 3]);
  };
  EXPECT_GE(be32(16), 640u);
  EXPECT_GE(be32(20), 300u);
  // A broken document does not render: the check can fail.
  std::ofstream(path) << svg.substr(0, svg.size() / 2);
  EXPECT_NE(
      std::system(
          ("rsvg-convert " + path + " -o " + png + " 2>/dev/null").c_str()),
      0);
  std::remove(path.c_str());
  std::remove(png.c_str());
}
