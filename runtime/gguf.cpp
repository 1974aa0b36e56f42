// GGUF reader (over an mmap or a caller's buffer) and writer. The reader
// trusts nothing in the file: every count is checked against the bytes left
// before anything is reserved, every length before it is read, and every
// tensor against the file, the alignment and the other tensors, so a
// malformed file produces one error line naming the file, the offset (and
// key or tensor) and what was expected.
#include "runtime/gguf.h"
#include "runtime/output_files.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pinfer {

namespace {

// Arrays may nest (an array of arrays of ...); a bound keeps a crafted file
// from exhausting the stack through recursion.
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;

// Smallest encoding of one item, used to refuse counts the remaining bytes
// cannot possibly hold before anything is reserved for them.
// A key/value pair: key length (8) + value type (4) + a 1-byte value.
constexpr uint64_t kMinKVBytes = 8 + 4 + 1;
// A tensor info: name length (8) + n_dims (4) + one dim (8) + type (4) +
// offset (8).
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

uint64_t minValueBytes(GGUFValueType t) {
  switch (t) {
  case GGUFValueType::UINT8:
  case GGUFValueType::INT8:
  case GGUFValueType::BOOL:
    return 1;
  case GGUFValueType::UINT16:
  case GGUFValueType::INT16:
    return 2;
  case GGUFValueType::UINT32:
  case GGUFValueType::INT32:
  case GGUFValueType::FLOAT32:
    return 4;
  case GGUFValueType::UINT64:
  case GGUFValueType::INT64:
  case GGUFValueType::FLOAT64:
  case GGUFValueType::STRING: // the 8-byte length of an empty string
    return 8;
  case GGUFValueType::ARRAY: // element type (4) + count (8)
    return 12;
  }
  return 1;
}

bool knownValueType(uint32_t t) { return t <= 12; }

bool isPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Printable rendering of untrusted bytes for error messages (magic, names).
std::string printable(const uint8_t *p, size_t n, size_t limit = 64) {
  std::string out;
  for (size_t i = 0; i < n && i < limit; ++i) {
    unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (n > limit)
    out += "...";
  return out;
}

std::string quoted(const std::string &s) {
  return "'" +
         printable(reinterpret_cast<const uint8_t *>(s.data()), s.size()) + "'";
}

// Sequential little-endian reader over the whole file. Every read checks the
// remaining length first; failures are formatted once, here.
class Cursor {
public:
  Cursor(const uint8_t *data, size_t size, const std::string &name,
         std::string &error)
      : data_(data), size_(size), name_(name), error_(error) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const uint8_t *at(size_t off) const { return data_ + off; }

  // `context` names what is being read ("key 'x'", "tensor 'y'") or is
  // empty; it is prefixed to the message.
  bool fail(size_t offset, const std::string &context, const std::string &msg) {
    error_ = name_ + ": at offset " + std::to_string(offset) + ": " +
             (context.empty() ? "" : context + ": ") + msg;
    return false;
  }

  bool need(size_t n, const std::string &context, const char *what) {
    if (remaining() >= n)
      return true;
    return fail(pos_, context,
                std::string("file ends ") + std::to_string(remaining()) +
                    " byte(s) later, expected " + what + " (" +
                    std::to_string(n) + " bytes)");
  }

  template <typename T>
  bool read(T &out, const std::string &context, const char *what) {
    if (!need(sizeof(T), context, what))
      return false;
    std::memcpy(&out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  bool readString(std::string &out, const std::string &context,
                  const char *what) {
    size_t start = pos_;
    uint64_t len;
    if (!read(len, context, what))
      return false;
    if (len > remaining())
      return fail(start, context,
                  std::string(what) + " has length " + std::to_string(len) +
                      " but only " + std::to_string(remaining()) +
                      " byte(s) remain in the file");
    out.assign(reinterpret_cast<const char *>(data_ + pos_),
               static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return true;
  }

private:
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string &name_;
  std::string &error_;
};

bool readScalar(Cursor &c, GGUFValueType t, GGUFValue &v,
                const std::string &ctx) {
  switch (t) {
  case GGUFValueType::UINT8: {
    uint8_t x;
    if (!c.read(x, ctx, "a uint8 value"))
      return false;
    v.u = x;
    return true;
  }
  case GGUFValueType::INT8: {
    int8_t x;
    if (!c.read(x, ctx, "an int8 value"))
      return false;
    v.i = x;
    return true;
  }
  case GGUFValueType::UINT16: {
    uint16_t x;
    if (!c.read(x, ctx, "a uint16 value"))
      return false;
    v.u = x;
    return true;
  }
  case GGUFValueType::INT16: {
    int16_t x;
    if (!c.read(x, ctx, "an int16 value"))
      return false;
    v.i = x;
    return true;
  }
  case GGUFValueType::UINT32: {
    uint32_t x;
    if (!c.read(x, ctx, "a uint32 value"))
      return false;
    v.u = x;
    return true;
  }
  case GGUFValueType::INT32: {
    int32_t x;
    if (!c.read(x, ctx, "an int32 value"))
      return false;
    v.i = x;
    return true;
  }
  case GGUFValueType::FLOAT32: {
    float x;
    if (!c.read(x, ctx, "a float32 value"))
      return false;
    v.f = x;
    return true;
  }
  case GGUFValueType::BOOL: {
    size_t at = c.pos();
    uint8_t x;
    if (!c.read(x, ctx, "a bool value"))
      return false;
    if (x > 1)
      return c.fail(at, ctx,
                    "bool value is " + std::to_string(x) + ", expected 0 or 1");
    v.u = x;
    return true;
  }
  case GGUFValueType::STRING:
    return c.readString(v.s, ctx, "a string value");
  case GGUFValueType::UINT64:
    return c.read(v.u, ctx, "a uint64 value");
  case GGUFValueType::INT64:
    return c.read(v.i, ctx, "an int64 value");
  case GGUFValueType::FLOAT64:
    return c.read(v.f, ctx, "a float64 value");
  case GGUFValueType::ARRAY: // handled by readArray
    break;
  }
  return c.fail(c.pos(), ctx, "array where a scalar was expected");
}

bool readValue(Cursor &c, GGUFValueType t, GGUFValue &v, const std::string &ctx,
               int depth);

bool readArray(Cursor &c, GGUFValue &v, const std::string &ctx, int depth) {
  if (depth >= kMaxArrayDepth)
    return c.fail(c.pos(), ctx,
                  "arrays nested more than " + std::to_string(kMaxArrayDepth) +
                      " deep, expected at most " +
                      std::to_string(kMaxArrayDepth) + " levels");
  size_t typeAt = c.pos();
  uint32_t et;
  if (!c.read(et, ctx, "an array element type"))
    return false;
  if (!knownValueType(et))
    return c.fail(typeAt, ctx,
                  "array element type " + std::to_string(et) +
                      " is unknown, expected 0..12");
  v.elemType = static_cast<GGUFValueType>(et);
  size_t countAt = c.pos();
  uint64_t n;
  if (!c.read(n, ctx, "an array length"))
    return false;
  uint64_t minBytes = minValueBytes(v.elemType);
  if (n > c.remaining() / minBytes)
    return c.fail(countAt, ctx,
                  "array of " + std::to_string(n) + " " +
                      valueTypeName(v.elemType) + " needs at least " +
                      (n > std::numeric_limits<uint64_t>::max() / minBytes
                           ? std::string("2^64")
                           : std::to_string(n * minBytes)) +
                      " bytes, only " + std::to_string(c.remaining()) +
                      " remain in the file");
  v.arr.resize(static_cast<size_t>(n));
  for (uint64_t k = 0; k < n; ++k) {
    GGUFValue &e = v.arr[static_cast<size_t>(k)];
    e.type = v.elemType;
    if (!readValue(c, v.elemType, e, ctx, depth + 1))
      return false;
  }
  return true;
}

bool readValue(Cursor &c, GGUFValueType t, GGUFValue &v, const std::string &ctx,
               int depth) {
  v.type = t;
  if (t == GGUFValueType::ARRAY)
    return readArray(c, v, ctx, depth);
  return readScalar(c, t, v, ctx);
}

std::string dimsString(const int64_t *ne, uint32_t n) {
  std::string s = "[";
  for (uint32_t i = 0; i < n; ++i) {
    if (i)
      s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

} // namespace

// ---------------------------------------------------------------------------
// Values

const char *valueTypeName(GGUFValueType type) {
  switch (type) {
  case GGUFValueType::UINT8:
    return "uint8";
  case GGUFValueType::INT8:
    return "int8";
  case GGUFValueType::UINT16:
    return "uint16";
  case GGUFValueType::INT16:
    return "int16";
  case GGUFValueType::UINT32:
    return "uint32";
  case GGUFValueType::INT32:
    return "int32";
  case GGUFValueType::FLOAT32:
    return "float32";
  case GGUFValueType::BOOL:
    return "bool";
  case GGUFValueType::STRING:
    return "string";
  case GGUFValueType::ARRAY:
    return "array";
  case GGUFValueType::UINT64:
    return "uint64";
  case GGUFValueType::INT64:
    return "int64";
  case GGUFValueType::FLOAT64:
    return "float64";
  }
  return "unknown";
}

bool GGUFValue::isInteger() const {
  switch (type) {
  case GGUFValueType::UINT8:
  case GGUFValueType::INT8:
  case GGUFValueType::UINT16:
  case GGUFValueType::INT16:
  case GGUFValueType::UINT32:
  case GGUFValueType::INT32:
  case GGUFValueType::UINT64:
  case GGUFValueType::INT64:
    return true;
  default:
    return false;
  }
}

bool GGUFValue::asInt(int64_t &out) const {
  switch (type) {
  case GGUFValueType::UINT8:
  case GGUFValueType::UINT16:
  case GGUFValueType::UINT32:
  case GGUFValueType::UINT64:
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return false;
    out = static_cast<int64_t>(u);
    return true;
  case GGUFValueType::INT8:
  case GGUFValueType::INT16:
  case GGUFValueType::INT32:
  case GGUFValueType::INT64:
    out = i;
    return true;
  default:
    return false;
  }
}

bool GGUFValue::asDouble(double &out) const {
  switch (type) {
  case GGUFValueType::FLOAT32:
  case GGUFValueType::FLOAT64:
    out = f;
    return true;
  case GGUFValueType::UINT8:
  case GGUFValueType::UINT16:
  case GGUFValueType::UINT32:
  case GGUFValueType::UINT64:
    out = static_cast<double>(u);
    return true;
  case GGUFValueType::INT8:
  case GGUFValueType::INT16:
  case GGUFValueType::INT32:
  case GGUFValueType::INT64:
    out = static_cast<double>(i);
    return true;
  default:
    return false;
  }
}

GGUFValue GGUFValue::ofU32(uint32_t v) {
  GGUFValue r;
  r.type = GGUFValueType::UINT32;
  r.u = v;
  return r;
}

GGUFValue GGUFValue::ofI32(int32_t v) {
  GGUFValue r;
  r.type = GGUFValueType::INT32;
  r.i = v;
  return r;
}

GGUFValue GGUFValue::ofU64(uint64_t v) {
  GGUFValue r;
  r.type = GGUFValueType::UINT64;
  r.u = v;
  return r;
}

GGUFValue GGUFValue::ofF32(float v) {
  GGUFValue r;
  r.type = GGUFValueType::FLOAT32;
  r.f = v;
  return r;
}

GGUFValue GGUFValue::ofBool(bool v) {
  GGUFValue r;
  r.type = GGUFValueType::BOOL;
  r.u = v ? 1 : 0;
  return r;
}

GGUFValue GGUFValue::ofString(std::string v) {
  GGUFValue r;
  r.type = GGUFValueType::STRING;
  r.s = std::move(v);
  return r;
}

GGUFValue GGUFValue::ofStrings(const std::vector<std::string> &v) {
  GGUFValue r;
  r.type = GGUFValueType::ARRAY;
  r.elemType = GGUFValueType::STRING;
  r.arr.reserve(v.size());
  for (const std::string &s : v)
    r.arr.push_back(ofString(s));
  return r;
}

GGUFValue GGUFValue::ofF32s(const std::vector<float> &v) {
  GGUFValue r;
  r.type = GGUFValueType::ARRAY;
  r.elemType = GGUFValueType::FLOAT32;
  r.arr.reserve(v.size());
  for (float x : v)
    r.arr.push_back(ofF32(x));
  return r;
}

GGUFValue GGUFValue::ofI32s(const std::vector<int32_t> &v) {
  GGUFValue r;
  r.type = GGUFValueType::ARRAY;
  r.elemType = GGUFValueType::INT32;
  r.arr.reserve(v.size());
  for (int32_t x : v)
    r.arr.push_back(ofI32(x));
  return r;
}

std::string GGUFTensor::shapeString() const { return dimsString(ne, nDims); }

// ---------------------------------------------------------------------------
// Reader

GGUFFile::~GGUFFile() {
  // A view's mapping is its underlying file's, unmapped by that file.
  if (mapping_ != nullptr && !under_)
    munmap(mapping_, size_);
}

std::unique_ptr<GGUFFile>
GGUFFile::view(std::unique_ptr<GGUFFile> file,
               const std::function<bool(const GGUFTensor &)> &keepOwn,
               std::vector<GGUFTensor> added, std::vector<GGUFKV> kvs,
               std::shared_ptr<const void> keepAlive, std::string &error) {
  std::unique_ptr<GGUFFile> v(new GGUFFile());
  v->path_ = file->path_;
  v->base_ = file->base_;
  v->size_ = file->size_;
  v->mapping_ = file->mapping_;
  v->version_ = file->version_;
  v->powerInfer_ = file->powerInfer_;
  v->alignment_ = file->alignment_;
  v->dataOffset_ = file->dataOffset_;
  v->kvs_ = file->kvs_;
  v->kvIndex_ = file->kvIndex_;
  for (GGUFKV &kv : kvs) {
    auto it = v->kvIndex_.find(kv.key);
    if (it != v->kvIndex_.end()) {
      v->kvs_[it->second].value = std::move(kv.value);
      continue;
    }
    v->kvIndex_.emplace(kv.key, v->kvs_.size());
    v->kvs_.push_back(std::move(kv));
  }
  auto add = [&](GGUFTensor t) {
    if (!v->tensorIndex_.emplace(t.name, v->tensors_.size()).second) {
      error = v->path_ + ": tensor " + quoted(t.name) +
              " would be held twice by a view of the file";
      return false;
    }
    v->tensors_.push_back(std::move(t));
    return true;
  };
  for (const GGUFTensor &t : file->tensors_)
    if (keepOwn(t) && !add(t))
      return nullptr;
  for (GGUFTensor &t : added)
    if (!add(std::move(t)))
      return nullptr;
  v->under_ = std::move(file);
  v->keepAlive_ = std::move(keepAlive);
  return v;
}

std::unique_ptr<GGUFFile> GGUFFile::open(const std::string &path,
                                         std::string &error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    error = path + ": cannot stat: " + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file, expected a GGUF file";
    ::close(fd);
    return nullptr;
  }
  std::unique_ptr<GGUFFile> f(new GGUFFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ == 0) {
    ::close(fd);
    error = path + ": at offset 0: file is empty, expected the GGUF magic";
    return nullptr;
  }
  void *m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int mapErrno = errno;
  ::close(fd); // the mapping keeps the file alive
  if (m == MAP_FAILED) {
    error = path + ": cannot mmap " + std::to_string(f->size_) +
            " bytes: " + std::strerror(mapErrno);
    return nullptr;
  }
  f->mapping_ = m;
  f->base_ = static_cast<const uint8_t *>(m);
  if (!f->parse(error))
    return nullptr;
  return f;
}

void GGUFFile::releasePages(uint64_t offset, uint64_t n) const {
  if (!mapping_ || offset >= size_)
    return;
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const uint64_t end = std::min<uint64_t>(size_, offset + n) / page * page;
  const uint64_t begin = (offset + page - 1) / page * page;
  if (begin < end)
    madvise(static_cast<uint8_t *>(mapping_) + begin, size_t(end - begin),
            MADV_DONTNEED);
}

void GGUFFile::prefault() const {
  if (!mapping_)
    return;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 // Linux 5.14
#endif
  if (madvise(mapping_, size_, MADV_POPULATE_READ) != 0)
    madvise(mapping_, size_, MADV_WILLNEED);
}

std::unique_ptr<GGUFFile> GGUFFile::fromMemory(const uint8_t *data, size_t size,
                                               const std::string &name,
                                               std::string &error) {
  std::unique_ptr<GGUFFile> f(new GGUFFile());
  f->path_ = name;
  f->base_ = data;
  f->size_ = size;
  if (data == nullptr && size != 0) {
    error = name + ": null buffer of " + std::to_string(size) + " bytes";
    return nullptr;
  }
  if (!f->parse(error))
    return nullptr;
  return f;
}

bool GGUFFile::parse(std::string &error) {
  static const uint8_t kEmpty = 0;
  Cursor c(base_ ? base_ : &kEmpty, size_, path_, error);
  const std::string none;

  // Header: magic, version, tensor count, key/value count.
  if (!c.need(4, none, "the magic \"GGUF\""))
    return false;
  const uint8_t *magic = c.at(0);
  if (std::memcmp(magic, "GGUF", 4) == 0) {
    powerInfer_ = false;
  } else if (std::memcmp(magic, "PWRI", 4) == 0) {
    powerInfer_ = true;
  } else {
    return c.fail(0, none,
                  "magic is '" + printable(magic, 4) +
                      "', expected \"GGUF\" (or \"PWRI\" for PowerInfer)");
  }
  uint32_t magicWord;
  c.read(magicWord, none, "the magic");
  if (!c.read(version_, none, "the format version (uint32)"))
    return false;
  if (version_ != 2 && version_ != 3) {
    uint32_t swapped = __builtin_bswap32(version_);
    if (version_ == 1)
      return c.fail(4, none,
                    "format version 1 is not supported (it used 32-bit "
                    "counts and lengths), expected version 2 or 3");
    if (swapped >= 1 && swapped <= 3)
      return c.fail(4, none,
                    "format version reads " + std::to_string(version_) +
                        ", which is version " + std::to_string(swapped) +
                        " in big-endian byte order; expected a "
                        "little-endian file of version 2 or 3");
    return c.fail(4, none,
                  "format version " + std::to_string(version_) +
                      " is unknown, expected 2 or 3");
  }
  uint64_t nTensors = 0, nKV = 0;
  size_t nTensorsAt = c.pos();
  if (!c.read(nTensors, none, "the tensor count (uint64)"))
    return false;
  size_t nKVAt = c.pos();
  if (!c.read(nKV, none, "the metadata key/value count (uint64)"))
    return false;
  if (nKV > c.remaining() / kMinKVBytes)
    return c.fail(nKVAt, none,
                  "metadata count " + std::to_string(nKV) +
                      " cannot fit in the " + std::to_string(c.remaining()) +
                      " bytes left (each pair takes at least " +
                      std::to_string(kMinKVBytes) + ")");
  if (nTensors > c.remaining() / kMinTensorInfoBytes)
    return c.fail(nTensorsAt, none,
                  "tensor count " + std::to_string(nTensors) +
                      " cannot fit in the " + std::to_string(c.remaining()) +
                      " bytes left (each tensor info takes at least " +
                      std::to_string(kMinTensorInfoBytes) + ")");

  // Metadata.
  kvs_.clear();
  kvIndex_.clear();
  kvs_.reserve(static_cast<size_t>(nKV));
  for (uint64_t k = 0; k < nKV; ++k) {
    size_t keyAt = c.pos();
    GGUFKV kv;
    std::string ctx = "metadata entry " + std::to_string(k);
    if (!c.readString(kv.key, ctx, "a key"))
      return false;
    ctx = "key " + quoted(kv.key);
    if (kvIndex_.count(kv.key))
      return c.fail(keyAt, ctx,
                    "duplicate key (first defined as entry " +
                        std::to_string(kvIndex_[kv.key]) +
                        "), expected each key once");
    size_t typeAt = c.pos();
    uint32_t t;
    if (!c.read(t, ctx, "a value type (uint32)"))
      return false;
    if (!knownValueType(t))
      return c.fail(typeAt, ctx,
                    "value type " + std::to_string(t) +
                        " is unknown, expected 0..12");
    if (!readValue(c, static_cast<GGUFValueType>(t), kv.value, ctx, 0))
      return false;
    if (kv.key == "general.alignment") {
      if (kv.value.type != GGUFValueType::UINT32)
        return c.fail(typeAt, ctx,
                      std::string("has type ") + valueTypeName(kv.value.type) +
                          ", expected uint32");
      if (!isPowerOfTwo(kv.value.u))
        return c.fail(typeAt + 4, ctx,
                      "alignment " + std::to_string(kv.value.u) +
                          " is not a power of two, expected e.g. 32");
      alignment_ = kv.value.u;
    }
    kvIndex_.emplace(kv.key, kvs_.size());
    kvs_.push_back(std::move(kv));
  }

  // Tensor infos. Data checks need the data section offset, which is known
  // only after the last info, so offsets of the fields are remembered.
  struct InfoPos {
    size_t start, offsetField;
  };
  std::vector<InfoPos> infoPos;
  tensors_.clear();
  tensorIndex_.clear();
  tensors_.reserve(static_cast<size_t>(nTensors));
  infoPos.reserve(static_cast<size_t>(nTensors));
  for (uint64_t k = 0; k < nTensors; ++k) {
    InfoPos ip;
    ip.start = c.pos();
    GGUFTensor t;
    std::string ctx = "tensor info " + std::to_string(k);
    if (!c.readString(t.name, ctx, "a tensor name"))
      return false;
    ctx = "tensor " + quoted(t.name);
    if (tensorIndex_.count(t.name))
      return c.fail(ip.start, ctx,
                    "duplicate tensor name (first is tensor " +
                        std::to_string(tensorIndex_[t.name]) +
                        "), expected unique names");
    size_t dimsAt = c.pos();
    if (!c.read(t.nDims, ctx, "the dimension count (uint32)"))
      return false;
    if (t.nDims == 0 || t.nDims > kMaxDims)
      return c.fail(dimsAt, ctx,
                    "has " + std::to_string(t.nDims) +
                        " dimensions, expected 1 to " +
                        std::to_string(kMaxDims));
    int64_t elements = 1;
    for (uint32_t d = 0; d < t.nDims; ++d) {
      size_t dimAt = c.pos();
      if (!c.read(t.ne[d], ctx, "a dimension (int64)"))
        return false;
      if (t.ne[d] <= 0)
        return c.fail(dimAt, ctx,
                      "dimension " + std::to_string(d) + " is " +
                          std::to_string(t.ne[d]) + ", expected > 0");
      if (elements > std::numeric_limits<int64_t>::max() / t.ne[d])
        return c.fail(dimAt, ctx,
                      "shape " + dimsString(t.ne, d + 1) +
                          " has more elements than int64 can count, "
                          "expected a product below 2^63");
      elements *= t.ne[d];
    }
    size_t typeAt = c.pos();
    uint32_t type;
    if (!c.read(type, ctx, "the tensor type (uint32)"))
      return false;
    const TypeTraits *info = typeTraits(type);
    if (info == nullptr)
      return c.fail(typeAt, ctx,
                    "tensor type " + std::to_string(type) +
                        " is not a ggml type, expected a number from ggml's "
                        "type table (e.g. 0 f32, 1 f16, 8 q8_0)");
    t.type = static_cast<GGMLType>(type);
    if (t.ne[0] % info->blockSize != 0)
      return c.fail(dimsAt + 4, ctx,
                    "row length " + std::to_string(t.ne[0]) + " is not a " +
                        "multiple of the " + info->name + " block size " +
                        std::to_string(info->blockSize));
    uint64_t blocks = static_cast<uint64_t>(elements / info->blockSize);
    if (blocks > std::numeric_limits<uint64_t>::max() / 2 / info->typeSize)
      return c.fail(dimsAt + 4, ctx,
                    "shape " + t.shapeString() + " of " + info->name +
                        " takes more bytes than fit in 63 bits");
    t.nbytes = blocks * info->typeSize;
    ip.offsetField = c.pos();
    if (!c.read(t.offset, ctx, "the data offset (uint64)"))
      return false;
    if (t.offset % alignment_ != 0)
      return c.fail(ip.offsetField, ctx,
                    "data offset " + std::to_string(t.offset) +
                        " is not a multiple of the alignment " +
                        std::to_string(alignment_));
    tensorIndex_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
    infoPos.push_back(ip);
  }

  // The data section starts at the next multiple of the alignment. A file
  // without tensors may end before it.
  uint64_t end = c.pos();
  dataOffset_ = (end + alignment_ - 1) / alignment_ * alignment_;
  if (dataOffset_ < end) // wrapped: absurd alignment on a huge offset
    return c.fail(end, none, "data section offset overflows");
  uint64_t dataBytes = dataOffset_ <= size_ ? size_ - dataOffset_ : 0;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    GGUFTensor &t = tensors_[k];
    if (t.offset > dataBytes || t.nbytes > dataBytes - t.offset)
      return c.fail(infoPos[k].offsetField, "tensor " + quoted(t.name),
                    "data [" + std::to_string(t.offset) + ", +" +
                        std::to_string(t.nbytes) +
                        ") relative to the data section at " +
                        std::to_string(dataOffset_) + " ends past the " +
                        std::to_string(size_) +
                        "-byte file, expected it inside the file");
    t.data = base_ + dataOffset_ + t.offset;
  }
  // Overlap: sort by offset and compare neighbours.
  std::vector<size_t> order(tensors_.size());
  for (size_t k = 0; k < order.size(); ++k)
    order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors_[a].offset < tensors_[b].offset;
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const GGUFTensor &prev = tensors_[order[k - 1]];
    const GGUFTensor &cur = tensors_[order[k]];
    if (cur.offset < prev.offset + prev.nbytes)
      return c.fail(infoPos[order[k]].offsetField, "tensor " + quoted(cur.name),
                    "data at " + std::to_string(cur.offset) +
                        " overlaps tensor " + quoted(prev.name) + " at [" +
                        std::to_string(prev.offset) + ", " +
                        std::to_string(prev.offset + prev.nbytes) +
                        "), expected disjoint tensor data");
  }
  return true;
}

const GGUFValue *GGUFFile::find(const std::string &key) const {
  auto it = kvIndex_.find(key);
  return it == kvIndex_.end() ? nullptr : &kvs_[it->second].value;
}

const GGUFTensor *GGUFFile::tensor(const std::string &name) const {
  auto it = tensorIndex_.find(name);
  return it == tensorIndex_.end() ? nullptr : &tensors_[it->second];
}

namespace {

std::string typeDesc(const GGUFValue &v) {
  if (v.type == GGUFValueType::ARRAY)
    return std::string("array of ") + valueTypeName(v.elemType);
  return valueTypeName(v.type);
}

bool keyError(const std::string &path, const std::string &key,
              const std::string &msg, std::string &error) {
  error = path + ": key " + quoted(key) + ": " + msg;
  return false;
}

bool missing(const std::string &path, const std::string &key,
             const char *expected, std::string &error) {
  return keyError(path, key, std::string("missing, expected ") + expected,
                  error);
}

bool fitsU32(const GGUFValue &v, uint32_t &out) {
  int64_t x;
  if (!v.asInt(x) || x < 0 || x > std::numeric_limits<uint32_t>::max())
    return false;
  out = static_cast<uint32_t>(x);
  return true;
}

bool toF32(const GGUFValue &v, float &out) {
  double d;
  if (!v.asDouble(d))
    return false;
  // A float64 beyond the float range becomes infinity; converting it with a
  // plain cast is undefined behaviour.
  const double fmax = std::numeric_limits<float>::max();
  if (d > fmax)
    out = std::numeric_limits<float>::infinity();
  else if (d < -fmax)
    out = -std::numeric_limits<float>::infinity();
  else
    out = static_cast<float>(d);
  return true;
}

} // namespace

bool GGUFFile::getString(const std::string &key, std::string &out,
                         std::string &error) const {
  const GGUFValue *v = find(key);
  if (v == nullptr)
    return missing(path_, key, "a string", error);
  if (v->type != GGUFValueType::STRING)
    return keyError(path_, key,
                    "has type " + typeDesc(*v) + ", expected string", error);
  out = v->s;
  return true;
}

bool GGUFFile::getU32(const std::string &key, uint32_t &out,
                      std::string &error) const {
  const GGUFValue *v = find(key);
  if (v == nullptr)
    return missing(path_, key, "an integer", error);
  if (!v->isInteger())
    return keyError(path_, key,
                    "has type " + typeDesc(*v) + ", expected an integer",
                    error);
  if (!fitsU32(*v, out)) {
    std::string shown = v->type == GGUFValueType::UINT64 ||
                                v->type == GGUFValueType::UINT32 ||
                                v->type == GGUFValueType::UINT16 ||
                                v->type == GGUFValueType::UINT8
                            ? std::to_string(v->u)
                            : std::to_string(v->i);
    return keyError(path_, key,
                    "value " + shown + " does not fit, expected 0..4294967295",
                    error);
  }
  return true;
}

bool GGUFFile::getF32(const std::string &key, float &out,
                      std::string &error) const {
  const GGUFValue *v = find(key);
  if (v == nullptr)
    return missing(path_, key, "a number", error);
  if (!toF32(*v, out))
    return keyError(path_, key,
                    "has type " + typeDesc(*v) + ", expected a number", error);
  return true;
}

bool GGUFFile::getBool(const std::string &key, bool &out,
                       std::string &error) const {
  const GGUFValue *v = find(key);
  if (v == nullptr)
    return missing(path_, key, "a bool", error);
  if (v->type != GGUFValueType::BOOL)
    return keyError(path_, key, "has type " + typeDesc(*v) + ", expected bool",
                    error);
  out = v->u != 0;
  return true;
}

bool GGUFFile::getStringArray(const std::string &key,
                              std::vector<std::string> &out,
                              std::string &error) const {
  const GGUFValue *v = find(key);
  if (v == nullptr)
    return missing(path_, key, "an array of string", error);
  if (v->type != GGUFValueType::ARRAY || v->elemType != GGUFValueType::STRING)
    return keyError(path_, key,
                    "has type " + typeDesc(*v) + ", expected array of string",
                    error);
  out.clear();
  out.reserve(v->arr.size());
  for (const GGUFValue &e : v->arr)
    out.push_back(e.s);
  return true;
}

bool GGUFFile::getF32Array(const std::string &key, std::vector<float> &out,
                           std::string &error) const {
  const GGUFValue *v = find(key);
  if (v == nullptr)
    return missing(path_, key, "an array of numbers", error);
  if (v->type != GGUFValueType::ARRAY || v->elemType == GGUFValueType::ARRAY ||
      v->elemType == GGUFValueType::STRING ||
      v->elemType == GGUFValueType::BOOL)
    return keyError(path_, key,
                    "has type " + typeDesc(*v) + ", expected array of numbers",
                    error);
  std::vector<float> tmp(v->arr.size());
  for (size_t k = 0; k < v->arr.size(); ++k)
    toF32(v->arr[k], tmp[k]);
  out.swap(tmp);
  return true;
}

bool GGUFFile::getI32Array(const std::string &key, std::vector<int32_t> &out,
                           std::string &error) const {
  const GGUFValue *v = find(key);
  if (v == nullptr)
    return missing(path_, key, "an array of integers", error);
  GGUFValue probe;
  probe.type = v->elemType;
  if (v->type != GGUFValueType::ARRAY || !probe.isInteger())
    return keyError(path_, key,
                    "has type " + typeDesc(*v) + ", expected array of integers",
                    error);
  std::vector<int32_t> tmp(v->arr.size());
  for (size_t k = 0; k < v->arr.size(); ++k) {
    int64_t x;
    if (!v->arr[k].asInt(x) || x < std::numeric_limits<int32_t>::min() ||
        x > std::numeric_limits<int32_t>::max())
      return keyError(path_, key,
                      "element " + std::to_string(k) +
                          " does not fit in int32, expected -2^31..2^31-1",
                      error);
    tmp[k] = static_cast<int32_t>(x);
  }
  out.swap(tmp);
  return true;
}

bool GGUFFile::getOptU32(const std::string &key, uint32_t &out,
                         std::string &error) const {
  return find(key) == nullptr || getU32(key, out, error);
}

bool GGUFFile::getOptF32(const std::string &key, float &out,
                         std::string &error) const {
  return find(key) == nullptr || getF32(key, out, error);
}

bool GGUFFile::getOptString(const std::string &key, std::string &out,
                            std::string &error) const {
  return find(key) == nullptr || getString(key, out, error);
}

// ---------------------------------------------------------------------------
// Writer

void GGUFWriter::setAlignment(uint32_t a) {
  alignment_ = a;
  set("general.alignment", GGUFValue::ofU32(a));
}

void GGUFWriter::set(const std::string &key, GGUFValue value) {
  for (GGUFKV &kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back({key, std::move(value)});
}

void GGUFWriter::addTensor(const std::string &name, GGMLType type,
                           const std::vector<int64_t> &ne, Fill fill) {
  tensors_.push_back({name, type, ne, std::move(fill)});
}

void GGUFWriter::addTensorData(const std::string &name, GGMLType type,
                               const std::vector<int64_t> &ne, const void *src,
                               size_t nbytes) {
  PendingTensor t{name, type, ne, nullptr};
  t.srcBytes = nbytes;
  t.fill = [src, nbytes](uint8_t *dst, size_t n) {
    std::memcpy(dst, src, std::min(n, nbytes));
  };
  tensors_.push_back(std::move(t));
}

namespace {

// Serialises metadata into a byte buffer; the header is small next to the
// tensor data, so it is built in memory and written in one call.
class ByteSink {
public:
  std::vector<uint8_t> bytes;

  template <typename T> void put(T v) {
    size_t n = bytes.size();
    bytes.resize(n + sizeof(T));
    std::memcpy(bytes.data() + n, &v, sizeof(T));
  }
  void putString(const std::string &s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
};

bool checkValue(const GGUFValue &v, const std::string &key, int depth,
                std::string &why) {
  if (!knownValueType(static_cast<uint32_t>(v.type))) {
    why = "key " + quoted(key) + ": value type " +
          std::to_string(static_cast<uint32_t>(v.type)) + " is unknown";
    return false;
  }
  if (v.type == GGUFValueType::BOOL && v.u > 1) {
    why = "key " + quoted(key) + ": bool value " + std::to_string(v.u) +
          ", expected 0 or 1";
    return false;
  }
  if (v.type != GGUFValueType::ARRAY)
    return true;
  if (depth >= kMaxArrayDepth) {
    why = "key " + quoted(key) + ": arrays nested more than " +
          std::to_string(kMaxArrayDepth) + " deep";
    return false;
  }
  if (!knownValueType(static_cast<uint32_t>(v.elemType))) {
    why = "key " + quoted(key) + ": array element type " +
          std::to_string(static_cast<uint32_t>(v.elemType)) + " is unknown";
    return false;
  }
  for (size_t k = 0; k < v.arr.size(); ++k) {
    if (v.arr[k].type != v.elemType) {
      why = "key " + quoted(key) + ": array element " + std::to_string(k) +
            " has type " + valueTypeName(v.arr[k].type) + ", expected " +
            valueTypeName(v.elemType);
      return false;
    }
    if (!checkValue(v.arr[k], key, depth + 1, why))
      return false;
  }
  return true;
}

void putValue(ByteSink &out, const GGUFValue &v) {
  switch (v.type) {
  case GGUFValueType::UINT8:
    out.put(static_cast<uint8_t>(v.u));
    break;
  case GGUFValueType::INT8:
    out.put(static_cast<int8_t>(v.i));
    break;
  case GGUFValueType::UINT16:
    out.put(static_cast<uint16_t>(v.u));
    break;
  case GGUFValueType::INT16:
    out.put(static_cast<int16_t>(v.i));
    break;
  case GGUFValueType::UINT32:
    out.put(static_cast<uint32_t>(v.u));
    break;
  case GGUFValueType::INT32:
    out.put(static_cast<int32_t>(v.i));
    break;
  case GGUFValueType::FLOAT32:
    out.put(static_cast<float>(v.f));
    break;
  case GGUFValueType::BOOL:
    out.put(static_cast<uint8_t>(v.u ? 1 : 0));
    break;
  case GGUFValueType::STRING:
    out.putString(v.s);
    break;
  case GGUFValueType::UINT64:
    out.put(v.u);
    break;
  case GGUFValueType::INT64:
    out.put(v.i);
    break;
  case GGUFValueType::FLOAT64:
    out.put(v.f);
    break;
  case GGUFValueType::ARRAY:
    out.put(static_cast<uint32_t>(v.elemType));
    out.put(static_cast<uint64_t>(v.arr.size()));
    for (const GGUFValue &e : v.arr)
      putValue(out, e);
    break;
  }
}

bool writeAll(FILE *f, const void *p, size_t n) {
  return n == 0 || std::fwrite(p, 1, n, f) == n;
}

} // namespace

bool GGUFWriter::write(const std::string &path, std::string &error) const {
  // Validate everything before touching the file system.
  uint64_t align = alignment_;
  for (const GGUFKV &kv : kvs_) {
    std::string why;
    if (!checkValue(kv.value, kv.key, 0, why)) {
      error = path + ": cannot write: " + why;
      return false;
    }
    if (kv.key == "general.alignment") {
      if (kv.value.type != GGUFValueType::UINT32 || !isPowerOfTwo(kv.value.u)) {
        error = path +
                ": cannot write: key 'general.alignment' must be a uint32 "
                "power of two";
        return false;
      }
      align = kv.value.u;
    }
  }
  if (!isPowerOfTwo(align)) {
    error = path + ": cannot write: alignment " + std::to_string(align) +
            " is not a power of two";
    return false;
  }

  struct Layout {
    uint64_t offset, nbytes;
  };
  std::vector<Layout> layout;
  layout.reserve(tensors_.size());
  uint64_t dataSize = 0;
  std::map<std::string, size_t> seen;
  for (const PendingTensor &t : tensors_) {
    std::string ctx = path + ": cannot write: tensor " + quoted(t.name) + ": ";
    if (!seen.emplace(t.name, 0).second) {
      error = ctx + "duplicate tensor name";
      return false;
    }
    const TypeTraits *info = typeTraits(t.type);
    if (info == nullptr) {
      error = ctx + "type " + std::to_string(static_cast<uint32_t>(t.type)) +
              " is not a ggml type";
      return false;
    }
    if (t.ne.empty() || t.ne.size() > kMaxDims) {
      error =
          ctx + std::to_string(t.ne.size()) + " dimensions, expected 1 to 4";
      return false;
    }
    int64_t elements = 1;
    for (int64_t d : t.ne) {
      if (d <= 0 || elements > std::numeric_limits<int64_t>::max() / d) {
        error = ctx + "shape has a dimension <= 0 or too many elements";
        return false;
      }
      elements *= d;
    }
    if (t.ne[0] % info->blockSize != 0) {
      error = ctx + "row length " + std::to_string(t.ne[0]) +
              " is not a multiple of the " + info->name + " block size " +
              std::to_string(info->blockSize);
      return false;
    }
    uint64_t nbytes =
        static_cast<uint64_t>(elements / info->blockSize) * info->typeSize;
    if (t.srcBytes != kNoSrcBytes && t.srcBytes != nbytes) {
      error = ctx + "data has " + std::to_string(t.srcBytes) +
              " bytes, expected " + std::to_string(nbytes);
      return false;
    }
    layout.push_back({dataSize, nbytes});
    dataSize = (dataSize + nbytes + align - 1) / align * align;
  }

  ByteSink head;
  uint32_t magic;
  std::memcpy(&magic, powerInfer_ ? "PWRI" : "GGUF", 4);
  head.put(magic);
  head.put<uint32_t>(3);
  head.put<uint64_t>(tensors_.size());
  head.put<uint64_t>(kvs_.size());
  for (const GGUFKV &kv : kvs_) {
    head.putString(kv.key);
    head.put(static_cast<uint32_t>(kv.value.type));
    putValue(head, kv.value);
  }
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const PendingTensor &t = tensors_[k];
    head.putString(t.name);
    head.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne)
      head.put<int64_t>(d);
    head.put<uint32_t>(static_cast<uint32_t>(t.type));
    head.put<uint64_t>(layout[k].offset);
  }
  size_t pad = (align - head.bytes.size() % align) % align;
  head.bytes.resize(head.bytes.size() + pad, 0);

  TempPath tmpFile;
  if (!makeTempBeside(path, tmpFile, error))
    return false;
  const std::string &tmp = tmpFile.path();
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    error = tmp + ": cannot create: " + std::strerror(errno);
    return false;
  }
  auto abandon = [&](const std::string &what) {
    error = path + ": " + what + ": " + std::strerror(errno);
    std::fclose(f);
    return false;
  };
  if (!writeAll(f, head.bytes.data(), head.bytes.size()))
    return abandon("write failed");
  // One tensor's worth of buffer at a time; the largest tensor bounds memory.
  std::vector<uint8_t> buf;
  static const uint8_t kZeros[256] = {};
  uint64_t written = 0;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const Layout &l = layout[k];
    while (written < l.offset) { // alignment padding
      size_t n = static_cast<size_t>(
          std::min<uint64_t>(l.offset - written, sizeof kZeros));
      if (!writeAll(f, kZeros, n))
        return abandon("write failed");
      written += n;
    }
    buf.assign(static_cast<size_t>(l.nbytes), 0);
    if (tensors_[k].fill)
      tensors_[k].fill(buf.data(), buf.size());
    if (!writeAll(f, buf.data(), buf.size()))
      return abandon("write failed");
    written += l.nbytes;
    if (progress_)
      progress_(head.bytes.size() + written, head.bytes.size() + dataSize);
  }
  while (written < dataSize) { // trailing padding of the last tensor
    size_t n = static_cast<size_t>(
        std::min<uint64_t>(dataSize - written, sizeof kZeros));
    if (!writeAll(f, kZeros, n))
      return abandon("write failed");
    written += n;
  }
  if (std::fflush(f) != 0)
    return abandon("write failed");
  if (std::fclose(f) != 0) {
    error = path + ": close failed: " + std::strerror(errno);
    return false;
  }
  return commitOutputs({{&tmpFile, path}}, error);
}

} // namespace pinfer
