// libFuzzer target for the GGUF reader. Built with clang's
// -fsanitize=fuzzer,address,undefined: any out-of-bounds read, overflow or
// undefined behaviour while parsing an arbitrary buffer is a crash. A
// refusal must be one non-empty line; an accepted file is walked completely
// (every value, every tensor byte, every typed getter) so that anything the
// parser accepted but got wrong is touched too.
#include "runtime/gguf.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using namespace pinfer;

namespace {

volatile uint64_t gSink; // keeps the walk from being optimised away

uint64_t walk(const GGUFValue &v, int depth) {
  if (depth > 8) // the reader bounds nesting at 8 levels
    __builtin_trap();
  uint64_t h = static_cast<uint64_t>(v.type) + v.u + static_cast<uint64_t>(v.i);
  int64_t i;
  double d;
  if (v.asInt(i))
    h += static_cast<uint64_t>(i);
  if (v.asDouble(d))
    h += d == d ? 1 : 0;
  for (char c : v.s)
    h = h * 31 + static_cast<unsigned char>(c);
  if (v.type == GGUFValueType::ARRAY) {
    for (const GGUFValue &e : v.arr) {
      if (e.type != v.elemType)
        __builtin_trap();
      h += walk(e, depth + 1);
    }
  } else if (!v.arr.empty()) {
    __builtin_trap();
  }
  return h;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string err;
  auto f = GGUFFile::fromMemory(data, size, "fuzz.gguf", err);
  if (f == nullptr) {
    if (err.empty() || err.find('\n') != std::string::npos ||
        err.compare(0, 11, "fuzz.gguf: ") != 0)
      __builtin_trap();
    return 0;
  }
  if (f->alignment() == 0 || (f->alignment() & (f->alignment() - 1)) != 0)
    __builtin_trap();
  uint64_t h = f->version() + f->isPowerInfer() + f->dataOffset();
  for (const GGUFKV &kv : f->metadata()) {
    h += walk(kv.value, 0) + kv.key.size();
    if (f->find(kv.key) != &kv.value)
      __builtin_trap();
    // Every getter on every key: each either succeeds or says why.
    std::string e, s;
    uint32_t u = 0;
    float x = 0;
    bool b = false;
    std::vector<std::string> ss;
    std::vector<float> fs;
    std::vector<int32_t> is;
    h += f->getU32(kv.key, u, e) ? u : e.size();
    h += f->getF32(kv.key, x, e) ? 1 : e.size();
    h += f->getBool(kv.key, b, e) ? b : e.size();
    h += f->getString(kv.key, s, e) ? s.size() : e.size();
    h += f->getStringArray(kv.key, ss, e) ? ss.size() : e.size();
    h += f->getF32Array(kv.key, fs, e) ? fs.size() : e.size();
    h += f->getI32Array(kv.key, is, e) ? is.size() : e.size();
  }
  std::vector<float> row;
  for (const GGUFTensor &t : f->tensors()) {
    if (f->tensor(t.name) != &t)
      __builtin_trap();
    if (t.nDims < 1 || t.nDims > 4 || t.offset % f->alignment() != 0)
      __builtin_trap();
    if (t.data < data + f->dataOffset() || t.data + t.nbytes > data + size)
      __builtin_trap();
    h += t.shapeString().size() + static_cast<uint64_t>(t.nelements());
    // Every byte the reader vouched for must be readable (ASan checks).
    for (uint64_t k = 0; k < t.nbytes; ++k)
      h += t.data[k];
    const TypeTraits *info = typeTraits(t.type);
    if (info == nullptr)
      __builtin_trap();
    if (info->computable && rowBytes(t.type, t.ne[0]) <= t.nbytes &&
        t.ne[0] <= (int64_t(1) << 20)) {
      row.resize(static_cast<size_t>(t.ne[0]));
      if (!dequantizeRow(t.type, t.data, row.data(), t.ne[0]))
        __builtin_trap();
      h += row.empty() ? 0 : row[0] == row[0];
    }
  }
  gSink = h;
  return 0;
}
