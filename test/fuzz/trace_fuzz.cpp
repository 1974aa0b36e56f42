// libFuzzer target for the trace reader (compiler/Trace.h,
// readTraceFromMemory, which readTrace runs over the mapped file). Built with
// clang's -fsanitize=fuzzer,address,undefined: any out-of-bounds read,
// overflow, oversized allocation or undefined behaviour while parsing an
// arbitrary buffer is a crash. A refusal must be one line naming the input;
// an accepted trace must hold what the format promises (every vector sized
// by the header, every count at most n_tokens), every byte of it is touched,
// and it must survive writeTrace and a second read unchanged.
#include "compiler/Trace.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

using namespace pinfer;

namespace {

volatile uint64_t gSink; // keeps the walk from being optimised away

std::string gDir; // private directory for the write-back check

bool sameTrace(const Trace &a, const Trace &b) {
  // n_embd is only stored meaningfully with samples: the writer records 0
  // when there are none.
  bool embdMatters = !a.samples.empty();
  if (a.version != b.version || a.modelIdentity != b.modelIdentity ||
      a.nLayer != b.nLayer || a.nFF != b.nFF ||
      (embdMatters && a.nEmbd != b.nEmbd) || a.nTokens != b.nTokens ||
      a.fired != b.fired || a.activation != b.activation ||
      std::memcmp(&a.targetSparsity, &b.targetSparsity, 4) != 0 ||
      a.thresholds.size() != b.thresholds.size() ||
      a.samples.size() != b.samples.size())
    return false;
  // Bitwise, so that NaN thresholds and inputs compare equal to themselves.
  if (!a.thresholds.empty() &&
      std::memcmp(a.thresholds.data(), b.thresholds.data(),
                  a.thresholds.size() * 4) != 0)
    return false;
  for (size_t l = 0; l < a.samples.size(); ++l) {
    if (a.samples[l].size() != b.samples[l].size())
      return false;
    for (size_t k = 0; k < a.samples[l].size(); ++k) {
      const TraceSample &x = a.samples[l][k], &y = b.samples[l][k];
      if (x.mask != y.mask || x.input.size() != y.input.size() ||
          std::memcmp(x.input.data(), y.input.data(), x.input.size() * 4) != 0)
        return false;
    }
  }
  return true;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") +
                      "/pinfer-trace-fuzz-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    std::perror("trace_fuzz: mkdtemp");
    std::abort();
  }
  gDir = buf.data();
  std::atexit([] { rmdir(gDir.c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string err;
  Trace t;
  if (!readTraceFromMemory(data, size, "fuzz.trace", t, err)) {
    if (err.empty() || err.find('\n') != std::string::npos ||
        err.compare(0, 12, "fuzz.trace: ") != 0)
      __builtin_trap();
    return 0;
  }
  if (t.version != Trace::kVersion || t.nLayer == 0 || t.nFF == 0 ||
      t.fired.size() != t.nLayer ||
      !(t.targetSparsity >= 0 && t.targetSparsity < 1) ||
      (!t.thresholds.empty() && t.thresholds.size() != t.nLayer) ||
      (!t.samples.empty() && t.samples.size() != t.nLayer))
    __builtin_trap();
  uint64_t h = t.activation.size() + t.modelIdentity.size();
  for (uint32_t l = 0; l < t.nLayer; ++l) {
    if (t.fired[l].size() != t.nFF)
      __builtin_trap();
    for (uint32_t i = 0; i < t.nFF; ++i) {
      if (t.fired[l][i] > t.nTokens)
        __builtin_trap();
      double f = t.frequency(l, i);
      if (!(f >= 0 && f <= 1))
        __builtin_trap();
    }
  }
  for (float x : t.thresholds)
    h += x == x;
  for (const auto &layer : t.samples)
    for (const TraceSample &s : layer) {
      if (s.input.size() != t.nEmbd || s.mask.size() != (t.nFF + 7) / 8)
        __builtin_trap();
      for (uint32_t i = 0; i < t.nFF; ++i)
        h += s.fired(i);
      for (float x : s.input)
        h += x == x;
    }

  // What the reader accepted, the writer must write and the reader read
  // back the same.
  std::string path = gDir + "/t.trace";
  if (!writeTrace(path, t, err)) {
    std::fprintf(stderr, "accepted trace not writable: %s\n", err.c_str());
    __builtin_trap();
  }
  Trace back;
  bool ok = readTrace(path, back, err);
  std::remove(path.c_str());
  if (!ok) {
    std::fprintf(stderr, "written trace not readable: %s\n", err.c_str());
    __builtin_trap();
  }
  if (!sameTrace(t, back))
    __builtin_trap();
  std::string why;
  if (!checkTraceMatchesModel(t, t.modelIdentity, t.nLayer, t.nFF, why))
    __builtin_trap();
  gSink = h;
  return 0;
}
