// The built-in target table and the small parsers that go with it.
#include "compiler/Targets.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>

namespace pinfer {

namespace {

constexpr uint64_t KiB = 1024ull;
constexpr uint64_t MiB = 1024ull * KiB;
constexpr uint64_t GiB = 1024ull * MiB;

std::vector<Target> makeTargets() {
  // Achievable PCIe figures are ~80 % of the link rate: 4.0 x16 = 32 GB/s
  // theoretical, ~25 measured; 3.0 x16 = 16, ~12; 5.0 x16 = 64, ~50.
  // Launch and sync costs are what a CUDA-graph-free driver API loop sees
  // per kernel and per cuEventSynchronize round trip on such cards.
  HostCPU desktopDDR5{"16-core desktop, dual-channel DDR5-5600", 16, 60};
  HostCPU desktopDDR4{"12-core desktop, dual-channel DDR4-3600", 12, 40};
  HostCPU olderDesktop{"8-core desktop, dual-channel DDR4-3200", 8, 35};
  HostCPU serverDDR4{"64-core server, 8-channel DDR4-3200", 64, 150};
  HostCPU serverDDR5{"64-core server, 12-channel DDR5-4800", 64, 300};
  std::vector<Target> t;
  t.push_back({"rtx4090", "NVIDIA GeForce RTX 4090 (Ada, 24 GiB GDDR6X)",
               "sm_89", 24 * GiB, 1008, 25, 4, 10, 400 * MiB, desktopDDR5});
  t.push_back({"rtx4080", "NVIDIA GeForce RTX 4080 (Ada, 16 GiB GDDR6X)",
               "sm_89", 16 * GiB, 717, 25, 4, 10, 400 * MiB, desktopDDR5});
  t.push_back({"rtx3090", "NVIDIA GeForce RTX 3090 (Ampere, 24 GiB GDDR6X)",
               "sm_86", 24 * GiB, 936, 25, 5, 12, 400 * MiB, desktopDDR4});
  t.push_back({"rtx3080", "NVIDIA GeForce RTX 3080 (Ampere, 10 GiB GDDR6X)",
               "sm_86", 10 * GiB, 760, 25, 5, 12, 400 * MiB, desktopDDR4});
  t.push_back({"rtx2080ti", "NVIDIA GeForce RTX 2080 Ti (Turing, 11 GiB GDDR6)",
               "sm_75", 11 * GiB, 616, 12, 5, 15, 350 * MiB, olderDesktop});
  t.push_back({"a100-40g", "NVIDIA A100 40GB (Ampere, HBM2)", "sm_80",
               40 * GiB, 1555, 25, 4, 10, 500 * MiB, serverDDR4});
  t.push_back({"a100-80g", "NVIDIA A100 80GB PCIe (Ampere, HBM2e)", "sm_80",
               80 * GiB, 1935, 25, 4, 10, 500 * MiB, serverDDR4});
  // Server Ada cards: GDDR6 on PCIe 4.0.
  t.push_back({"l40s", "NVIDIA L40S (Ada, 48 GiB GDDR6)", "sm_89", 48 * GiB,
               864, 25, 4, 10, 500 * MiB, serverDDR5});
  t.push_back({"rtx6000ada", "NVIDIA RTX 6000 Ada (48 GiB GDDR6)", "sm_89",
               48 * GiB, 960, 25, 4, 10, 500 * MiB, desktopDDR5});
  // The PCIe H100 (80 GB HBM2e, 2.0 TB/s), not the SXM part (3.35 TB/s):
  // pinferc's split runs over a PCIe link, and that card is the one found in
  // hosts with one.
  t.push_back({"h100", "NVIDIA H100 PCIe 80GB (Hopper, HBM2e)", "sm_90",
               80 * GiB, 2000, 50, 3, 8, 500 * MiB, serverDDR5});
  t.push_back({"h200", "NVIDIA H200 141GB (Hopper, HBM3e)", "sm_90",
               141000000000ull, 4800, 50, 3, 8, 500 * MiB, serverDDR5});
  t.push_back({"cpu", "no GPU: every layer runs on the host CPU", "", 0, 0, 0,
               0, 0, 0, desktopDDR4});
  return t;
}

} // namespace

std::string lower(const std::string &s) {
  std::string r = s;
  for (char &c : r)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

const std::vector<Target> &allTargets() {
  static const std::vector<Target> targets = makeTargets();
  return targets;
}

const Target *findTarget(const std::string &name, std::string &error) {
  std::string want = lower(name);
  std::string known;
  for (const Target &t : allTargets()) {
    if (t.name == want)
      return &t;
    known += known.empty() ? t.name : ", " + t.name;
  }
  error = "unknown target '" + name + "'; known targets: " + known +
          ", native (this machine's GPU)";
  return nullptr;
}

bool parseSize(const std::string &text, uint64_t &out, std::string &error) {
  size_t i = 0;
  while (i < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  std::string number = text.substr(0, i);
  std::string unit = lower(text.substr(i));
  auto fail = [&](const char *why) {
    error = "size '" + text + "': " + why +
            "; expected a number with an optional unit (e.g. 6GiB, 6G, "
            "6000MB, 123)";
    return false;
  };
  if (number.empty() || number == ".")
    return fail("no number");
  if (number.find('.') != number.rfind('.'))
    return fail("more than one decimal point");
  double mult = 0;
  struct Unit {
    const char *name;
    double mult;
  };
  static const Unit units[] = {
      {"", 1},          {"b", 1},           {"k", 1024.0},
      {"kib", 1024.0},  {"kb", 1e3},        {"m", 1024.0 * 1024},
      {"mib", 1024.0 * 1024}, {"mb", 1e6},  {"g", 1024.0 * 1024 * 1024},
      {"gib", 1024.0 * 1024 * 1024},        {"gb", 1e9},
      {"t", 1024.0 * 1024 * 1024 * 1024},   {"tib", 1024.0 * 1024 * 1024 * 1024},
      {"tb", 1e12}};
  for (const Unit &u : units)
    if (unit == u.name)
      mult = u.mult;
  if (mult == 0)
    return fail(("unknown unit '" + text.substr(i) + "'").c_str());
  double value = std::strtod(number.c_str(), nullptr) * mult;
  if (!(value < 1.8e19))
    return fail("too large");
  out = static_cast<uint64_t>(std::llround(value));
  return true;
}

std::string formatBytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= GiB)
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(GiB));
  else if (bytes >= MiB)
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(MiB));
  else if (bytes >= KiB)
    std::snprintf(buf, sizeof buf, "%.1f KiB", double(bytes) / double(KiB));
  else
    std::snprintf(buf, sizeof buf, "%llu B", (unsigned long long)bytes);
  return buf;
}

void printTargets(std::ostream &os) {
  char line[512];
  std::snprintf(line, sizeof line,
                "%-10s %-6s %10s %8s %6s %7s %6s %9s  %s\n", "target", "arch",
                "VRAM", "GPU GB/s", "PCIe", "launch", "sync", "reserve",
                "host CPU (cores, GB/s)");
  os << line;
  for (const Target &t : allTargets()) {
    std::string host = t.host.description + " (" +
                       std::to_string(t.host.cores) + ", " +
                       std::to_string(int(t.host.memBandwidthGBs)) + ")";
    if (!t.hasGPU()) {
      std::snprintf(line, sizeof line,
                    "%-10s %-6s %10s %8s %6s %7s %6s %9s  %s\n",
                    t.name.c_str(), "-", "-", "-", "-", "-", "-", "-",
                    host.c_str());
    } else {
      std::snprintf(line, sizeof line,
                    "%-10s %-6s %10s %8.0f %6.0f %5.0fus %4.0fus %9s  %s\n",
                    t.name.c_str(), t.smArch.c_str(),
                    formatBytes(t.vramBytes).c_str(), t.gpuBandwidthGBs,
                    t.pcieGBs, t.launchUs, t.syncUs,
                    formatBytes(t.contextReserveBytes).c_str(), host.c_str());
    }
    os << line;
  }
  os << "native     this machine's first CUDA GPU, as its driver reports it "
        "(the row of its name or\n"
        "           architecture, its VRAM, a budget of what is free), or "
        "cpu where there is none\n";
}

} // namespace pinfer
