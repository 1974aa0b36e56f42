// The table of machines pinferc can compile for. A target fixes what the
// placement solver may assume: VRAM size, GPU/CPU/PCIe bandwidths, the cost of
// a kernel launch and of a CPU/GPU synchronisation, and how much VRAM the CUDA
// context itself takes. Figures are typical published numbers, not
// measurements of the user's machine; `--vram-budget` overrides the VRAM.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace pinfer {

// The host the GPU sits in. Memory bandwidth is what a CPU FFN kernel can
// stream cold weights at, which is the cost the GPU part saves.
struct HostCPU {
  std::string description; // "16-core desktop, dual-channel DDR5-5600"
  unsigned cores = 0;
  double memBandwidthGBs = 0; // achievable, GB/s (1e9 bytes)
};

struct Target {
  std::string name;        // "rtx4090"
  std::string description; // "NVIDIA GeForce RTX 4090 (Ada, 24 GiB GDDR6X)"
  std::string smArch;      // "sm_89"; empty for the CPU-only target
  uint64_t vramBytes = 0;
  double gpuBandwidthGBs = 0;  // device memory, GB/s
  double pcieGBs = 0;          // host<->device, GB/s, one direction
  double launchUs = 0;         // one kernel launch, microseconds
  double syncUs = 0;           // one CPU/GPU event round trip, microseconds
  uint64_t contextReserveBytes = 0; // VRAM the CUDA context and cuBLAS-free
                                    // runtime take before any weight
  HostCPU host;
  // The VRAM a plan may bill without --vram-budget; 0: vramBytes.
  uint64_t defaultBudgetBytes = 0;

  bool hasGPU() const { return vramBytes != 0; }
  uint64_t defaultBudget() const {
    return defaultBudgetBytes ? defaultBudgetBytes : vramBytes;
  }
};

// Every known target, in table order.
const std::vector<Target> &allTargets();

// The table's target called `name` (case-insensitive). On failure returns
// null and sets `error` to one line listing the known names.
const Target *findTarget(const std::string &name, std::string &error);
// The same, and "native": this machine's GPU as its CUDA driver reports it
// (nativeTarget, compiler/NativeTarget.cpp), measured once per process.
const Target *resolveTarget(const std::string &name, std::string &error);

// "native": the table's row for this machine's first CUDA device (its
// name, else the row of its architecture, or the nearest older one whose
// PTX it runs), with the VRAM the device has and, as the default budget,
// what is free now plus the row's CUDA context reserve (the executable
// checks its bill, which leaves the context out, against the free memory
// it finds with its own context made), at most the whole card. The CPU
// row where there is no CUDA device. `note` says what was found, for the
// compile's log. False with one line for a device older than any row.
bool nativeTarget(Target &out, std::string &note, std::string &error);
// What the native target's measurement found ("" before one was made).
const std::string &nativeTargetNote();

// Parses a size as given to --vram-budget: "123" (bytes), "6GiB"/"512MiB"/
// "64KiB" (binary), "6G"/"512M"/"64K" (binary, as ulimit and docker read
// them), "6GB"/"6000MB"/"64kB" (decimal), "5.5GiB" (fractions allowed).
bool parseSize(const std::string &text, uint64_t &out, std::string &error);

// `s` in lower case (ASCII), as target names and size units are compared.
std::string lower(const std::string &s);

// "7.20 GiB", "300 MiB", "12 KiB", "17 B": for reports and errors.
std::string formatBytes(uint64_t bytes);

// The target table as `pinferc targets` prints it.
void printTargets(std::ostream &os);

} // namespace pinfer
