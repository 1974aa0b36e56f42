// The plan drawn as a standalone SVG (`pinferc plan --svg`): a header with
// what a token costs on each device and the speed to expect, one panel per
// layer with its neurons' firing rates by rank and the GPU/CPU cut, and the
// VRAM bill as a bar against the budget.
#include "compiler/placement/Plan.h"
#include "runtime/output_files.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pinfer {

namespace {

std::string xmlEscape(const std::string &s) {
  std::string o;
  for (char c : s) {
    switch (c) {
    case '&': o += "&amp;"; break;
    case '<': o += "&lt;"; break;
    case '>': o += "&gt;"; break;
    case '"': o += "&quot;"; break;
    default:
      if (static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t')
        o += c;
    }
  }
  return o;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Builds the document element by element; every text goes through
// xmlEscape (model and plan strings are untrusted).
struct Svg {
  std::string s;

  void text(double x, double y, const std::string &t, const char *extra = "") {
    s += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + extra + ">" +
         xmlEscape(t) + "</text>\n";
  }
  void rect(double x, double y, double w, double h, const char *fill,
            const char *extra = "") {
    s += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" +
         num(std::max(0.0, w)) + "\" height=\"" + num(h) + "\" fill=\"" + fill +
         "\"" + extra + "/>\n";
  }
  void line(double x1, double y1, double x2, double y2, const char *stroke,
            double width = 1) {
    s += "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) +
         "\" y2=\"" + num(y2) + "\" stroke=\"" + stroke + "\" stroke-width=\"" +
         num(width) + "\"/>\n";
  }
};

std::string percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * share);
  return buf;
}

std::string rate(double perSecond) {
  char buf[32];
  std::snprintf(buf, sizeof buf, perSecond < 10 ? "%.1f" : "%.0f", perSecond);
  return buf;
}

const double kLeft = 20, kPanelW = 160, kPanelH = 80, kGapX = 60;
const double kRowH = kPanelH + 58;
const double kMinLog = -4; // rates below 1e-4 per token sit on the floor

// One layer: the sorted firing-rate curve (x: neuron rank, y: firings per
// token, log scale), shaded where the neurons are on the GPU.
void drawLayer(Svg &svg, const Plan &plan, size_t l, double x0, double y0) {
  const LayerPlan &lp = plan.layers[l];
  const double nff = std::max<double>(1, plan.nFF);
  svg.text(x0 - 30, y0 - 22,
           "layer " + std::to_string(l) + " \xc2\xb7 attention+KV on " +
               (lp.attentionOnGPU ? "GPU" : "CPU"),
           " font-weight=\"bold\"");
  svg.text(x0 - 30, y0 - 9,
           std::to_string(lp.nHot) + "/" + std::to_string(plan.nFF) +
               " on GPU, serving " + percent(lp.coverage) + " of firings",
           " font-size=\"9\"");
  double cut = x0 + kPanelW * double(lp.nHot) / nff;
  if (lp.nHot)
    svg.rect(x0, y0, cut - x0, kPanelH, "#fde0c5");
  svg.rect(x0, y0, kPanelW, kPanelH, "none", " stroke=\"#888\"");
  // Axes: firing rate per token (log), neuron rank.
  for (int e = 0; e >= int(kMinLog); e -= 2) {
    double y = y0 + kPanelH * (double(e) / kMinLog);
    svg.line(x0 - 3, y, x0, y, "#888");
    svg.text(x0 - 5, y + 3, e == 0 ? "1" : "1e" + std::to_string(e),
             " text-anchor=\"end\" font-size=\"8\"");
  }
  svg.text(x0, y0 + kPanelH + 10, "0", " font-size=\"8\"");
  svg.text(x0 + kPanelW, y0 + kPanelH + 10, std::to_string(plan.nFF),
           " text-anchor=\"end\" font-size=\"8\"");
  svg.text(x0 + kPanelW / 2, y0 + kPanelH + 10, "neuron rank",
           " text-anchor=\"middle\" font-size=\"8\" fill=\"#555\"");
  std::string pts;
  for (const auto &pt : lp.curve) {
    double f = pt.second > 0 ? std::log10(pt.second) : kMinLog;
    f = std::min(0.0, std::max(kMinLog, f));
    pts += num(x0 + kPanelW * double(pt.first) / nff) + "," +
           num(y0 + kPanelH * (f / kMinLog)) + " ";
  }
  if (!pts.empty())
    svg.s += "<polyline points=\"" + pts +
             "\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\"/>\n";
  if (lp.nHot)
    svg.line(cut, y0, cut, y0 + kPanelH, "#d9480f", 1.5);
}

// The VRAM bill as one bar against the budget. The CUDA context's fixed
// reserve is drawn at a fixed width with a break when to scale it would
// leave the neurons as slivers beside it (small models).
double drawBill(Svg &svg, const Plan &plan, double top, double barW) {
  static const char *colors[] = {"#4c6ef5", "#12b886", "#fab005", "#e64980",
                                 "#7950f2", "#fd7e14", "#15aabf", "#82c91e"};
  const double total = double(std::max(plan.budgetBytes, plan.billBytes));
  const uint64_t unused =
      plan.budgetBytes > plan.billBytes ? plan.budgetBytes - plan.billBytes : 0;
  svg.text(kLeft, top - 8,
           "VRAM: " + formatBytes(plan.billBytes) + " billed of the " +
               formatBytes(plan.budgetBytes) + " budget, " +
               formatBytes(unused) + " unused",
           " font-size=\"12\"");
  uint64_t reserve = 0;
  for (const BillLine &b : plan.bill)
    if (b.what == kContextReserveBill)
      reserve += b.bytes;
  const double reserveMax = 70; // px
  const bool broken =
      total > 0 && reserve > 0 && barW * double(reserve) / total > reserveMax;
  const double reserveW = broken ? reserveMax : 0;
  const double scaled = total - (broken ? double(reserve) : 0);
  auto width = [&](const BillLine &b) {
    if (broken && b.what == kContextReserveBill)
      return reserveW;
    return scaled > 0 ? (barW - reserveW) * double(b.bytes) / scaled : 0.0;
  };
  const double h = 24;
  svg.rect(kLeft, top, barW, h, "#f1f3f5", " stroke=\"#888\"");
  double x = kLeft;
  for (size_t i = 0; i < plan.bill.size(); ++i) {
    double w = width(plan.bill[i]);
    svg.rect(x, top, w, h, colors[i % 8]);
    if (broken && plan.bill[i].what == kContextReserveBill) {
      // Two slanted white strokes: the segment is not to scale.
      double mx = x + w / 2;
      svg.line(mx - 6, top + h + 2, mx, top - 2, "white", 3);
      svg.line(mx, top + h + 2, mx + 6, top - 2, "white", 3);
    }
    x += w;
  }
  if (unused && kLeft + barW - x > 90)
    svg.text(x + 6, top + 16, "unused", " fill=\"#555\"");
  double y = top + h + 20;
  for (size_t i = 0; i < plan.bill.size(); ++i, y += 16) {
    const BillLine &b = plan.bill[i];
    svg.rect(kLeft, y - 9, 10, 10, colors[i % 8]);
    svg.text(kLeft + 16, y,
             b.what + ": " + formatBytes(b.bytes) +
                 (broken && b.what == kContextReserveBill
                      ? " (fixed; drawn not to scale)"
                      : ""));
  }
  svg.rect(kLeft, y - 9, 10, 10, "#f1f3f5", " stroke=\"#888\"");
  svg.text(kLeft + 16, y, "unused: " + formatBytes(unused));
  return y + 16;
}

} // namespace

std::string planToSvg(const Plan &plan) {
  const size_t n = plan.layers.size();
  const size_t cols = std::min<size_t>(6, std::max<size_t>(1, n));
  const size_t rows = (n + cols - 1) / cols;
  const double width =
      std::max(640.0, kLeft + 34 + double(cols) * (kPanelW + kGapX));
  const double panelsTop = 196;
  const double barTop = panelsTop + double(rows) * kRowH + 16;
  const double height = barTop + 76 + 16.0 * double(plan.bill.size());

  Svg svg;
  svg.s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg.s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) +
           "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) +
           " " + num(height) +
           "\" font-family=\"sans-serif\" font-size=\"10\">\n";
  svg.rect(0, 0, width, height, "white");

  std::string unknown;
  const Target *target = findTarget(plan.target, unknown);
  svg.text(kLeft, 22,
           "pinferc placement for " + plan.target +
               (target ? " (" + target->description + ")" : "") + ", n_ctx " +
               std::to_string(plan.nCtx),
           " font-size=\"15\" font-weight=\"bold\"");
  svg.text(kLeft, 40, plan.status, " fill=\"#555\"");

  // What a token costs on each device, and what that makes of the speed.
  double all = plan.gpuBytesPerToken + plan.cpuBytesPerToken;
  std::string perToken =
      "Per token (expected): the GPU reads " +
      formatBytes(uint64_t(plan.gpuBytesPerToken)) + ", the CPU reads " +
      formatBytes(uint64_t(plan.cpuBytesPerToken)) + " (" +
      percent(all > 0 ? plan.gpuBytesPerToken / all : 0) + " on the GPU)";
  if (target) {
    double secs = expectedSecondsPerToken(plan, *target);
    if (secs > 0)
      perToken += "; about " + rate(1 / secs) + " tokens/s at " +
                  rate(target->gpuBandwidthGBs) + " GB/s GPU, " +
                  rate(target->host.memBandwidthGBs) +
                  " GB/s host memory (an estimate)";
  }
  svg.text(kLeft, 62, perToken, " font-size=\"12\"");
  size_t attnGpu = 0;
  for (const LayerPlan &lp : plan.layers)
    attnGpu += lp.attentionOnGPU;
  svg.text(kLeft, 80,
           "Attention + KV cache on the GPU in " + std::to_string(attnGpu) +
               " of " + std::to_string(n) +
               " layers (the CPU in the rest); "
               "output head on the " +
               (plan.outputOnGPU ? "GPU" : "CPU") +
               "; embeddings and sampling on the CPU",
           " font-size=\"12\"");

  // How to read a panel.
  const double ly = 104;
  svg.rect(kLeft, ly - 9, 12, 10, "#fde0c5", " stroke=\"#888\"");
  svg.text(kLeft + 18, ly,
           "Each panel is one layer's FFN neurons, sorted by how often they "
           "fire: x = neuron rank (0 = most often), y = firings per token "
           "(log scale, 1 to 1e-4).");
  svg.text(kLeft + 18, ly + 14,
           "Shaded, left of the red line: the neurons on the GPU. \"Serving "
           "N% of firings\": the share of the layer's profiled firings "
           "those neurons handle;");
  svg.text(kLeft + 18, ly + 28,
           "the CPU computes the rest. Budget " +
               formatBytes(plan.budgetBytes) + ", granules of " +
               std::to_string(plan.granuleSize) + " neurons.");

  for (size_t l = 0; l < n; ++l)
    drawLayer(svg, plan, l, kLeft + 34 + double(l % cols) * (kPanelW + kGapX),
              panelsTop + double(l / cols) * kRowH);
  drawBill(svg, plan, barTop, width - 2 * kLeft);
  svg.s += "</svg>\n";
  return svg.s;
}

bool writePlanSvg(const std::string &path, const Plan &plan,
                  std::string &error) {
  return writeTextFile(path, planToSvg(plan), error);
}

} // namespace pinfer
