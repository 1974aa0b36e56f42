// Trace file reader and writer, the model identity hash, and the check that a
// trace belongs to the model it is used with.
#include "compiler/Trace.h"

#include "runtime/gguf.h"
#include "runtime/output_files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pinfer {

namespace {

constexpr char kMagic[8] = {'P', 'I', 'N', 'F', 'T', 'R', 'C', '\0'};
constexpr uint32_t kHeaderBytes = 16;  // magic, version, section count
constexpr uint32_t kEntryBytes = 24;   // id, flags, offset, size
constexpr uint32_t kMaxSections = 64;  // far more than any version writes
constexpr uint32_t kMaxString = 4096;  // activation names, identities

enum SectionId : uint32_t {
  kMeta = 1,
  kFired = 2,
  kThresholds = 3,
  kSamples = 4,
};

const char *sectionName(uint32_t id) {
  switch (id) {
  case kMeta: return "meta";
  case kFired: return "fired";
  case kThresholds: return "thresholds";
  case kSamples: return "samples";
  }
  return "unknown";
}

struct Fnv64 {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 1099511628211ull;
    }
  }
  template <typename T> void value(T v) { bytes(&v, sizeof v); }
};

// Little-endian append helpers; the format is little-endian everywhere and
// pinferc runs on little-endian hosts only (x86-64, aarch64).
struct Out {
  std::vector<uint8_t> buf;
  template <typename T> void put(T v) {
    size_t at = buf.size();
    buf.resize(at + sizeof v);
    std::memcpy(buf.data() + at, &v, sizeof v);
  }
  void putString(const std::string &s) {
    put<uint32_t>(uint32_t(s.size()));
    buf.insert(buf.end(), s.begin(), s.end());
  }
  void putBytes(const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    buf.insert(buf.end(), b, b + n);
  }
};

// Bounds-checked reader over one section. Offsets in errors are absolute.
struct Cursor {
  const uint8_t *base;
  uint64_t pos, end;
  const std::string &name;
  std::string &error;

  bool fail(const std::string &what) {
    error = name + ": at offset " + std::to_string(pos) + ": " + what;
    return false;
  }
  bool need(uint64_t n, const char *what) {
    if (end - pos < n)
      return fail(std::string("truncated ") + what + ": " +
                  std::to_string(end - pos) + " bytes left, expected " +
                  std::to_string(n));
    return true;
  }
  template <typename T> bool get(T &v, const char *what) {
    if (!need(sizeof v, what))
      return false;
    std::memcpy(&v, base + pos, sizeof v);
    pos += sizeof v;
    return true;
  }
  bool getString(std::string &s, const char *what) {
    uint32_t n;
    if (!get(n, what))
      return false;
    if (n > kMaxString) {
      pos -= 4;
      return fail(std::string(what) + " length " + std::to_string(n) +
                  ", expected at most " + std::to_string(kMaxString));
    }
    if (!need(n, what))
      return false;
    s.assign(reinterpret_cast<const char *>(base + pos), n);
    pos += n;
    return true;
  }
};

bool checkConsistent(const Trace &t, std::string &error) {
  auto fail = [&](const std::string &what) {
    error = "trace is inconsistent: " + what;
    return false;
  };
  if (t.nLayer == 0 || t.nFF == 0)
    return fail("n_layer and n_ff must be positive");
  if (t.fired.size() != t.nLayer)
    return fail("fired has " + std::to_string(t.fired.size()) +
                " layers, expected " + std::to_string(t.nLayer));
  for (uint32_t l = 0; l < t.nLayer; ++l) {
    if (t.fired[l].size() != t.nFF)
      return fail("fired[" + std::to_string(l) + "] has " +
                  std::to_string(t.fired[l].size()) + " neurons, expected " +
                  std::to_string(t.nFF));
    for (uint32_t i = 0; i < t.nFF; ++i)
      if (t.fired[l][i] > t.nTokens)
        return fail("layer " + std::to_string(l) + " neuron " +
                    std::to_string(i) + " fired " +
                    std::to_string(t.fired[l][i]) + " times in " +
                    std::to_string(t.nTokens) + " tokens");
  }
  if (!t.thresholds.empty() && t.thresholds.size() != t.nLayer)
    return fail("thresholds has " + std::to_string(t.thresholds.size()) +
                " entries, expected 0 or " + std::to_string(t.nLayer));
  if (t.activation.size() > kMaxString || t.modelIdentity.size() > kMaxString)
    return fail("activation or identity string too long");
  if (!t.samples.empty()) {
    if (t.samples.size() != t.nLayer)
      return fail("samples has " + std::to_string(t.samples.size()) +
                  " layers, expected 0 or " + std::to_string(t.nLayer));
    for (uint32_t l = 0; l < t.nLayer; ++l)
      for (const TraceSample &s : t.samples[l])
        if (s.input.size() != t.nEmbd || s.mask.size() != (uint64_t(t.nFF) + 7) / 8)
          return fail("a sample of layer " + std::to_string(l) +
                      " has the wrong input or mask length");
  }
  return true;
}

} // namespace

std::string modelIdentity(const GGUFFile &file) {
  constexpr uint64_t kEdge = 4096;
  Fnv64 h;
  for (const GGUFTensor &t : file.tensors()) {
    h.bytes(t.name.data(), t.name.size());
    h.value(uint32_t(t.type));
    h.value(t.nDims);
    for (int d = 0; d < 4; ++d)
      h.value(t.ne[d]);
    h.value(t.nbytes);
    if (!t.data)
      continue;
    uint64_t head = t.nbytes < kEdge ? t.nbytes : kEdge;
    h.bytes(t.data, head);
    if (t.nbytes > kEdge) {
      uint64_t tail = t.nbytes - kEdge < kEdge ? t.nbytes - kEdge : kEdge;
      h.bytes(t.data + t.nbytes - tail, tail);
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h.h);
  return hex;
}

bool writeTrace(const std::string &path, const Trace &trace,
                std::string &error) {
  if (!checkConsistent(trace, error)) {
    error = path + ": " + error;
    return false;
  }
  struct Section {
    uint32_t id;
    Out data;
  };
  std::vector<Section> sections;
  {
    Section s{kMeta, {}};
    s.data.put<uint32_t>(trace.nLayer);
    s.data.put<uint32_t>(trace.nFF);
    s.data.put<uint32_t>(trace.samples.empty() ? 0 : trace.nEmbd);
    s.data.put<uint32_t>(0);
    s.data.put<uint64_t>(trace.nTokens);
    s.data.put<float>(trace.targetSparsity);
    s.data.put<uint32_t>(0);
    s.data.putString(trace.activation);
    s.data.putString(trace.modelIdentity);
    sections.push_back(std::move(s));
  }
  {
    Section s{kFired, {}};
    s.data.buf.reserve(uint64_t(trace.nLayer) * trace.nFF * 8);
    for (const auto &layer : trace.fired)
      s.data.putBytes(layer.data(), layer.size() * sizeof(uint64_t));
    sections.push_back(std::move(s));
  }
  if (!trace.thresholds.empty()) {
    Section s{kThresholds, {}};
    s.data.putBytes(trace.thresholds.data(), trace.thresholds.size() * 4);
    sections.push_back(std::move(s));
  }
  if (!trace.samples.empty()) {
    Section s{kSamples, {}};
    for (const auto &layer : trace.samples)
      s.data.put<uint32_t>(uint32_t(layer.size()));
    for (const auto &layer : trace.samples)
      for (const TraceSample &x : layer) {
        s.data.putBytes(x.input.data(), x.input.size() * 4);
        s.data.putBytes(x.mask.data(), x.mask.size());
      }
    sections.push_back(std::move(s));
  }

  Out head;
  head.putBytes(kMagic, 8);
  head.put<uint32_t>(trace.version);
  head.put<uint32_t>(uint32_t(sections.size()));
  uint64_t offset = kHeaderBytes + kEntryBytes * sections.size();
  std::vector<uint64_t> offsets;
  for (const Section &s : sections) {
    offset = (offset + 7) & ~uint64_t(7); // keep payloads 8-byte aligned
    offsets.push_back(offset);
    head.put<uint32_t>(s.id);
    head.put<uint32_t>(0);
    head.put<uint64_t>(offset);
    head.put<uint64_t>(s.data.buf.size());
    offset += s.data.buf.size();
  }

  TempPath tmp;
  if (!makeTempBeside(path, tmp, error))
    return false;
  FILE *f = std::fopen(tmp.path().c_str(), "wb");
  if (!f) {
    error = path + ": cannot create: " + std::strerror(errno);
    return false;
  }
  bool ok = std::fwrite(head.buf.data(), 1, head.buf.size(), f) ==
            head.buf.size();
  uint64_t at = head.buf.size();
  static const uint8_t zeros[8] = {};
  for (size_t i = 0; ok && i < sections.size(); ++i) {
    ok = std::fwrite(zeros, 1, offsets[i] - at, f) == offsets[i] - at;
    const auto &b = sections[i].data.buf;
    ok = ok && std::fwrite(b.data(), 1, b.size(), f) == b.size();
    at = offsets[i] + b.size();
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    error = path + ": cannot write: " + std::strerror(errno);
    return false;
  }
  return commitOutputs({{&tmp, path}}, error);
}

bool readTraceFromMemory(const uint8_t *data, size_t size,
                         const std::string &name, Trace &trace,
                         std::string &error) {
  trace = Trace();
  Cursor c{data, 0, size, name, error};
  char magic[8];
  if (!c.need(8, "magic"))
    return false;
  std::memcpy(magic, data, 8);
  if (std::memcmp(magic, kMagic, 8) != 0)
    return c.fail("bad magic, expected \"PINFTRC\\0\" (not a pinferc trace)");
  c.pos = 8;
  uint32_t version, count;
  if (!c.get(version, "header") || !c.get(count, "header"))
    return false;
  if (version != Trace::kVersion) {
    c.pos -= 8;
    return c.fail("trace version " + std::to_string(version) +
                  ", expected " + std::to_string(Trace::kVersion));
  }
  if (count > kMaxSections) {
    c.pos -= 4;
    return c.fail("section count " + std::to_string(count) +
                  ", expected at most " + std::to_string(kMaxSections));
  }
  trace.version = version;
  struct Entry {
    uint64_t offset = 0, size = 0;
    bool present = false;
  };
  Entry entries[5];
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t at = c.pos;
    uint32_t id, flags;
    uint64_t off, sz;
    if (!c.get(id, "section table") || !c.get(flags, "section table") ||
        !c.get(off, "section table") || !c.get(sz, "section table"))
      return false;
    if (off > size || sz > size - off) {
      c.pos = at;
      return c.fail(std::string(sectionName(id)) + " section [" +
                    std::to_string(off) + ", +" + std::to_string(sz) +
                    ") runs past the end of the file (" +
                    std::to_string(size) + " bytes)");
    }
    if (id >= 1 && id <= 4) {
      if (entries[id].present) {
        c.pos = at;
        return c.fail(std::string("duplicate ") + sectionName(id) +
                      " section");
      }
      entries[id] = {off, sz, true};
    } // unknown sections come from newer writers; skip them
  }
  for (uint32_t id : {kMeta, kFired})
    if (!entries[id].present)
      return c.fail(std::string("no ") + sectionName(id) +
                    " section, expected one");

  // meta
  Cursor m{data, entries[kMeta].offset,
           entries[kMeta].offset + entries[kMeta].size, name, error};
  uint32_t reserved;
  float sparsity;
  if (!m.get(trace.nLayer, "meta") || !m.get(trace.nFF, "meta") ||
      !m.get(trace.nEmbd, "meta") || !m.get(reserved, "meta") ||
      !m.get(trace.nTokens, "meta") || !m.get(sparsity, "meta") ||
      !m.get(reserved, "meta") ||
      !m.getString(trace.activation, "activation name") ||
      !m.getString(trace.modelIdentity, "model identity"))
    return false;
  trace.targetSparsity = sparsity;
  m.pos = entries[kMeta].offset;
  if (trace.nLayer == 0 || trace.nFF == 0)
    return m.fail("n_layer " + std::to_string(trace.nLayer) + ", n_ff " +
                  std::to_string(trace.nFF) + ", expected both positive");
  if (!(sparsity >= 0 && sparsity < 1))
    return m.fail("target sparsity " + std::to_string(sparsity) +
                  ", expected a value in [0, 1)");

  // fired: the size must match exactly before anything is allocated.
  uint64_t cells = uint64_t(trace.nLayer) * trace.nFF;
  Cursor fc{data, entries[kFired].offset,
            entries[kFired].offset + entries[kFired].size, name, error};
  if (cells > size / 8 || entries[kFired].size != cells * 8)
    return fc.fail("fired section is " + std::to_string(entries[kFired].size) +
                   " bytes, expected " + std::to_string(cells) +
                   " counts (n_layer " + std::to_string(trace.nLayer) +
                   " x n_ff " + std::to_string(trace.nFF) + ") of 8 bytes");
  trace.fired.assign(trace.nLayer, std::vector<uint64_t>(trace.nFF));
  for (uint32_t l = 0; l < trace.nLayer; ++l) {
    std::memcpy(trace.fired[l].data(), data + fc.pos, uint64_t(trace.nFF) * 8);
    for (uint32_t i = 0; i < trace.nFF; ++i)
      if (trace.fired[l][i] > trace.nTokens) {
        fc.pos += uint64_t(i) * 8;
        return fc.fail("layer " + std::to_string(l) + " neuron " +
                       std::to_string(i) + " fired " +
                       std::to_string(trace.fired[l][i]) +
                       " times, expected at most the token count " +
                       std::to_string(trace.nTokens));
      }
    fc.pos += uint64_t(trace.nFF) * 8;
  }

  if (entries[kThresholds].present) {
    Cursor t{data, entries[kThresholds].offset,
             entries[kThresholds].offset + entries[kThresholds].size, name,
             error};
    if (entries[kThresholds].size != uint64_t(trace.nLayer) * 4)
      return t.fail("thresholds section is " +
                    std::to_string(entries[kThresholds].size) +
                    " bytes, expected " + std::to_string(trace.nLayer) +
                    " floats");
    trace.thresholds.resize(trace.nLayer);
    std::memcpy(trace.thresholds.data(), data + t.pos, trace.nLayer * 4ull);
  }

  if (entries[kSamples].present) {
    Cursor s{data, entries[kSamples].offset,
             entries[kSamples].offset + entries[kSamples].size, name, error};
    if (trace.nEmbd == 0)
      return s.fail("samples section present but n_embd is 0, expected the "
                    "length of a sample input");
    std::vector<uint32_t> counts(trace.nLayer);
    if (!s.need(uint64_t(trace.nLayer) * 4, "sample counts"))
      return false;
    std::memcpy(counts.data(), data + s.pos, trace.nLayer * 4ull);
    s.pos += trace.nLayer * 4ull;
    uint64_t maskBytes = (uint64_t(trace.nFF) + 7) / 8; // no 32-bit wrap
    uint64_t each = uint64_t(trace.nEmbd) * 4 + maskBytes;
    uint64_t total = 0;
    for (uint32_t n : counts)
      total += n; // at most 2^32 * n_layer, no overflow
    if (each == 0 || total > (s.end - s.pos) / each ||
        total * each != s.end - s.pos)
      return s.fail("samples section holds " + std::to_string(s.end - s.pos) +
                    " bytes of samples, expected " + std::to_string(total) +
                    " samples of " + std::to_string(each) + " bytes");
    trace.samples.resize(trace.nLayer);
    for (uint32_t l = 0; l < trace.nLayer; ++l) {
      trace.samples[l].resize(counts[l]);
      for (TraceSample &x : trace.samples[l]) {
        x.input.resize(trace.nEmbd);
        std::memcpy(x.input.data(), data + s.pos, trace.nEmbd * 4ull);
        s.pos += trace.nEmbd * 4ull;
        x.mask.assign(data + s.pos, data + s.pos + maskBytes);
        s.pos += maskBytes;
      }
    }
  }
  return true;
}

bool readTrace(const std::string &path, Trace &trace, std::string &error) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    error = path + ": cannot stat: " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    error = path + ": not a regular file, expected a pinferc trace";
    return false;
  }
  size_t size = size_t(st.st_size);
  if (size == 0) {
    ::close(fd);
    error = path + ": at offset 0: empty file, expected a pinferc trace";
    return false;
  }
  void *map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    error = path + ": cannot map: " + std::strerror(errno);
    return false;
  }
  bool ok = readTraceFromMemory(static_cast<const uint8_t *>(map), size, path,
                                trace, error);
  ::munmap(map, size);
  return ok;
}

bool checkTraceMatchesModel(const Trace &trace, const std::string &identity,
                            uint32_t nLayer, uint32_t nFF, std::string &error,
                            const std::string &traceName,
                            const std::string &modelName) {
  if (trace.nLayer != nLayer) {
    error = traceName + " was recorded for a model with " +
            std::to_string(trace.nLayer) + " layers; " + modelName + " has " +
            std::to_string(nLayer);
    return false;
  }
  if (trace.nFF != nFF) {
    error = traceName + " was recorded for a model with n_ff " +
            std::to_string(trace.nFF) + "; " + modelName + " has " +
            std::to_string(nFF);
    return false;
  }
  if (!identity.empty() && !trace.modelIdentity.empty() &&
      identity != trace.modelIdentity) {
    error = traceName + " was recorded for model " + trace.modelIdentity +
            "; " + modelName + " is " + identity +
            " (same shape, different weights: profile it again)";
    return false;
  }
  return true;
}

} // namespace pinfer
