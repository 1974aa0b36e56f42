// --target native: this machine's GPU, as its CUDA driver reports it. Apart
// from the table (compiler/Targets.cpp) because it loads the driver, which
// the table's other users (the plan fuzzer) do not link.
#include "compiler/Targets.h"

#include "runtime/cuda_driver.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

namespace pinfer {

namespace {
// Letters and digits of `s`, lower case, without the vendor's words: "NVIDIA
// GeForce RTX 4090" -> "rtx4090", as the table's names are spelled.
std::string squeezed(const std::string &s) {
  std::string r;
  for (char c : lower(s))
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-')
      r += c;
  for (const char *word : {"nvidia", "geforce"})
    if (r.compare(0, std::strlen(word), word) == 0)
      r.erase(0, std::strlen(word));
  return r;
}

int ccOfArch(const std::string &smArch) {
  return smArch.size() > 3 ? std::atoi(smArch.c_str() + 3) : 0;
}

std::string nativeNote;
} // namespace

bool nativeTarget(Target &out, std::string &note, std::string &error) {
  const std::vector<Target> &table = allTargets();
  CudaDriver gpu;
  std::string why;
  if (!gpu.open(why)) {
    out = table.back(); // cpu
    out.name = "native";
    out.description = "this machine, without a CUDA GPU: " + why;
    note = "--target native: " + why + "; compiling for the CPU";
    return true;
  }
  size_t freeB = 0, totalB = 0;
  if (!gpu.memInfo(freeB, totalB, error)) {
    error = "--target native: " + error;
    return false;
  }
  const std::string device = gpu.deviceName(), name = squeezed(device);
  const int cc = gpu.computeCapability();
  // The row the device is, by name; else its architecture's first row;
  // else the newest older architecture (its PTX the driver compiles).
  const Target *row = nullptr;
  for (const Target &t : table)
    if (t.hasGPU() && name.compare(0, t.name.size(), t.name) == 0 &&
        (!row || t.name.size() > row->name.size()))
      row = &t;
  std::string how = "by its name";
  if (!row) {
    for (const Target &t : table)
      if (t.hasGPU() && ccOfArch(t.smArch) <= cc &&
          (!row || ccOfArch(t.smArch) > ccOfArch(row->smArch)))
        row = &t;
    how = "by its architecture";
  }
  const std::string ccText =
      std::to_string(cc / 10) + "." + std::to_string(cc % 10);
  if (!row) {
    std::string oldest;
    for (const Target &t : table)
      if (t.hasGPU() &&
          (oldest.empty() || ccOfArch(t.smArch) < ccOfArch(oldest)))
        oldest = t.smArch;
    error = "--target native: " + device + " is compute capability " + ccText +
            ", older than every target's (the oldest is " + oldest +
            "; see pinferc targets)";
    return false;
  }
  out = *row;
  out.name = "native";
  out.vramBytes = totalB;
  out.defaultBudgetBytes =
      std::min<uint64_t>(totalB, uint64_t(freeB) + row->contextReserveBytes);
  out.description = device + " (compute capability " + ccText + ", " +
                    formatBytes(totalB) + ", " + formatBytes(freeB) +
                    " free; speeds of " + row->name + ")";
  note = "--target native: " + device + " (compute capability " + ccText +
         "), " + formatBytes(totalB) + " with " + formatBytes(freeB) +
         " free: the " + row->name + " row " + how + ", budget " +
         formatBytes(out.defaultBudgetBytes) +
         " (the free VRAM and the CUDA context reserve)";
  return true;
}

const Target *resolveTarget(const std::string &name, std::string &error) {
  if (lower(name) != "native")
    return findTarget(name, error);
  static Target native;
  static bool measured = false, ok = false;
  static std::string failed;
  if (!measured) {
    measured = true;
    ok = nativeTarget(native, nativeNote, failed);
  }
  if (!ok)
    error = failed;
  return ok ? &native : nullptr;
}

const std::string &nativeTargetNote() { return nativeNote; }

} // namespace pinfer
