// The plan drawn as a standalone SVG: one small panel per layer with its
// sorted firing-frequency curve on a log scale and the GPU/CPU cut, and a
// stacked bar of the VRAM bill against the budget.
#include "compiler/placement/Plan.h"
#include "runtime/output_files.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

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

} // namespace

std::string planToSvg(const Plan &plan) {
  const double panelW = 150, panelH = 90, gap = 14, left = 20, top = 50;
  const double minLog = -4; // frequencies below 1e-4 are drawn at the floor
  size_t n = plan.layers.size();
  size_t cols = std::min<size_t>(8, std::max<size_t>(1, n));
  size_t rows = (n + cols - 1) / cols;
  double width = left * 2 + cols * (panelW + gap);
  double barTop = top + rows * (panelH + gap + 12) + 20;
  double height = barTop + 60 + 16.0 * double(plan.bill.size() + 1);

  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) +
       "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) + " " +
       num(height) + "\" font-family=\"sans-serif\" font-size=\"10\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(left) + "\" y=\"20\" font-size=\"14\">" +
       xmlEscape("pinferc placement: " + plan.target + ", budget " +
                 formatBytes(plan.budgetBytes)) +
       "</text>\n";
  s += "<text x=\"" + num(left) + "\" y=\"36\">" +
       xmlEscape(plan.status + "; firing frequency by rank, log scale "
                               "1e-4..1; shaded = GPU") +
       "</text>\n";

  for (size_t l = 0; l < n; ++l) {
    const LayerPlan &lp = plan.layers[l];
    double x0 = left + double(l % cols) * (panelW + gap);
    double y0 = top + double(l / cols) * (panelH + gap + 12) + 12;
    char title[128];
    std::snprintf(title, sizeof title, "layer %zu: %u hot, %.1f%%", l,
                  lp.nHot, 100 * lp.coverage);
    s += "<text x=\"" + num(x0) + "\" y=\"" + num(y0 - 3) + "\">" + title +
         "</text>\n";
    double nff = std::max<double>(1, plan.nFF);
    double cut = x0 + panelW * double(lp.nHot) / nff;
    if (lp.nHot)
      s += "<rect x=\"" + num(x0) + "\" y=\"" + num(y0) + "\" width=\"" +
           num(cut - x0) + "\" height=\"" + num(panelH) +
           "\" fill=\"#fde0c5\"/>\n";
    s += "<rect x=\"" + num(x0) + "\" y=\"" + num(y0) + "\" width=\"" +
         num(panelW) + "\" height=\"" + num(panelH) +
         "\" fill=\"none\" stroke=\"#888\"/>\n";
    std::string pts;
    for (const auto &pt : lp.curve) {
      double f = pt.second > 0 ? std::log10(pt.second) : minLog;
      f = std::min(0.0, std::max(minLog, f));
      double x = x0 + panelW * double(pt.first) / nff;
      double y = y0 + panelH * (f / minLog);
      pts += num(x) + "," + num(y) + " ";
    }
    if (!pts.empty())
      s += "<polyline points=\"" + pts +
           "\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\"/>\n";
    if (lp.nHot)
      s += "<line x1=\"" + num(cut) + "\" y1=\"" + num(y0) + "\" x2=\"" +
           num(cut) + "\" y2=\"" + num(y0 + panelH) +
           "\" stroke=\"#d9480f\" stroke-width=\"1.5\"/>\n";
  }

  // The VRAM bill as one stacked bar against the budget.
  static const char *colors[] = {"#4c6ef5", "#12b886", "#fab005", "#e64980",
                                 "#7950f2", "#fd7e14", "#15aabf", "#82c91e"};
  double barW = width - 2 * left;
  double total = double(std::max(plan.budgetBytes, plan.billBytes));
  s += "<text x=\"" + num(left) + "\" y=\"" + num(barTop - 6) + "\">" +
       xmlEscape("VRAM bill " + formatBytes(plan.billBytes) + " of " +
                 formatBytes(plan.budgetBytes)) +
       "</text>\n";
  s += "<rect x=\"" + num(left) + "\" y=\"" + num(barTop) + "\" width=\"" +
       num(barW) + "\" height=\"24\" fill=\"#f1f3f5\" stroke=\"#888\"/>\n";
  double x = left;
  for (size_t i = 0; i < plan.bill.size(); ++i) {
    double w = total > 0 ? barW * double(plan.bill[i].bytes) / total : 0;
    const char *c = colors[i % 8];
    s += "<rect x=\"" + num(x) + "\" y=\"" + num(barTop) + "\" width=\"" +
         num(w) + "\" height=\"24\" fill=\"" + c + "\"/>\n";
    x += w;
    double ly = barTop + 40 + 16.0 * double(i);
    s += "<rect x=\"" + num(left) + "\" y=\"" + num(ly - 9) +
         "\" width=\"10\" height=\"10\" fill=\"" + c + "\"/>\n";
    s += "<text x=\"" + num(left + 16) + "\" y=\"" + num(ly) + "\">" +
         xmlEscape(plan.bill[i].what + ": " + formatBytes(plan.bill[i].bytes)) +
         "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

bool writePlanSvg(const std::string &path, const Plan &plan,
                  std::string &error) {
  return writeTextFile(path, planToSvg(plan), error);
}

} // namespace pinfer
