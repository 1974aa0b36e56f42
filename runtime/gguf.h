// GGUF reader and writer shared by the compiler and every generated
// executable. The reader maps the file and validates every count, offset and
// length against the file size before use, so a malformed file yields one
// error line instead of a crash. No exceptions: failures are reported through
// an error string so that the library can be called from MLIR code.
#pragma once

#include "runtime/ggml_types.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pinfer {

enum class GGUFValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

const char *valueTypeName(GGUFValueType type);

// One metadata value. Scalars are widened into `u`/`i`/`f`; arrays keep their
// element type and may nest.
struct GGUFValue {
  GGUFValueType type = GGUFValueType::UINT32;
  uint64_t u = 0;      // UINT8..UINT64, BOOL
  int64_t i = 0;       // INT8..INT64
  double f = 0;        // FLOAT32, FLOAT64
  std::string s;       // STRING
  GGUFValueType elemType = GGUFValueType::UINT8; // ARRAY
  std::vector<GGUFValue> arr;                    // ARRAY

  bool isInteger() const;
  // Integer value of any integer type (signed or unsigned); false otherwise.
  bool asInt(int64_t &out) const;
  // Numeric value of any integer or float type; false otherwise.
  bool asDouble(double &out) const;

  static GGUFValue ofU32(uint32_t v);
  static GGUFValue ofI32(int32_t v);
  static GGUFValue ofU64(uint64_t v);
  static GGUFValue ofF32(float v);
  static GGUFValue ofBool(bool v);
  static GGUFValue ofString(std::string v);
  static GGUFValue ofStrings(const std::vector<std::string> &v);
  static GGUFValue ofF32s(const std::vector<float> &v);
  static GGUFValue ofI32s(const std::vector<int32_t> &v);
};

struct GGUFKV {
  std::string key;
  GGUFValue value;
};

struct GGUFTensor {
  std::string name;
  GGMLType type = GGMLType::F32;
  uint32_t nDims = 0;
  int64_t ne[4] = {1, 1, 1, 1}; // ggml order: ne[0] is the row length
  uint64_t offset = 0;          // relative to the start of the data section
  uint64_t nbytes = 0;
  const uint8_t *data = nullptr; // into the mapping

  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
  std::string shapeString() const; // "[4096, 11008]"
};

class GGUFFile {
public:
  ~GGUFFile();
  GGUFFile(const GGUFFile &) = delete;
  GGUFFile &operator=(const GGUFFile &) = delete;

  // Maps and parses `path`. On failure returns null and sets `error` to one
  // line: "PATH: at offset N: what was found, what was expected".
  static std::unique_ptr<GGUFFile> open(const std::string &path,
                                        std::string &error);
  // Parses a buffer the caller keeps alive (fuzzing, tests). `name` is used
  // in error messages in place of a path.
  static std::unique_ptr<GGUFFile> fromMemory(const uint8_t *data, size_t size,
                                              const std::string &name,
                                              std::string &error);

  // A view of `file` that reads as the file would with `added` tensors
  // after those of its own that `keepOwn` keeps, and `kvs` set (each
  // replacing its key or added): what a copy carrying those tensors would
  // read, without writing one. The added tensors' data lie in memory that
  // `keepAlive` holds (another file's mapping, a buffer); the view owns
  // `file` and `keepAlive`. Path, mapping and data section are `file`'s,
  // so pages released through the view are its own. Null, with `error`,
  // for a name the view would hold twice.
  static std::unique_ptr<GGUFFile>
  view(std::unique_ptr<GGUFFile> file,
       const std::function<bool(const GGUFTensor &)> &keepOwn,
       std::vector<GGUFTensor> added, std::vector<GGUFKV> kvs,
       std::shared_ptr<const void> keepAlive, std::string &error);

  const std::string &path() const { return path_; }
  uint32_t version() const { return version_; }
  bool isPowerInfer() const { return powerInfer_; } // magic "PWRI"
  uint64_t alignment() const { return alignment_; }
  // Start of the tensor data section (aligned). A file without tensors may
  // end before it, so it can exceed fileSize().
  uint64_t dataOffset() const { return dataOffset_; }
  uint64_t fileSize() const { return size_; }
  const uint8_t *base() const { return base_; }
  // Drops the mapped pages of bytes [offset, offset + n) from the process's
  // resident set (whole pages inside the range; nothing for a caller's
  // buffer). The bytes stay readable: the next read maps them again from
  // the page cache or the file. For passes that stream through a large
  // file once (packing, hashing), whose pages would otherwise all count as
  // the compiler's memory.
  void releasePages(uint64_t offset, uint64_t n) const;
  void releasePages() const { releasePages(0, size_); }
  // Maps every page of the file in now (from the page cache, reading the
  // file where it is not there), for runs that read all weights anyway:
  // one pass at load time instead of a page fault at each first touch in
  // the prompt. Where the kernel cannot do that at once, asks it to read
  // ahead. Nothing for a caller's buffer.
  void prefault() const;

  const std::vector<GGUFKV> &metadata() const { return kvs_; }
  const std::vector<GGUFTensor> &tensors() const { return tensors_; }
  const GGUFValue *find(const std::string &key) const;
  const GGUFTensor *tensor(const std::string &name) const;

  // Typed lookups. Each returns false and sets `error` ("PATH: key K: ...")
  // when the key is missing or has an incompatible type. Integer getters
  // accept any integer type whose value fits.
  bool getString(const std::string &key, std::string &out,
                 std::string &error) const;
  bool getU32(const std::string &key, uint32_t &out, std::string &error) const;
  bool getF32(const std::string &key, float &out, std::string &error) const;
  bool getBool(const std::string &key, bool &out, std::string &error) const;
  bool getStringArray(const std::string &key, std::vector<std::string> &out,
                      std::string &error) const;
  bool getF32Array(const std::string &key, std::vector<float> &out,
                   std::string &error) const;
  bool getI32Array(const std::string &key, std::vector<int32_t> &out,
                   std::string &error) const;
  // Same as above but leave `out` untouched and return true when missing.
  bool getOptU32(const std::string &key, uint32_t &out,
                 std::string &error) const;
  bool getOptF32(const std::string &key, float &out, std::string &error) const;
  bool getOptString(const std::string &key, std::string &out,
                    std::string &error) const;

private:
  GGUFFile() = default;
  bool parse(std::string &error);

  std::string path_;
  const uint8_t *base_ = nullptr;
  size_t size_ = 0;
  void *mapping_ = nullptr; // non-null when we own an mmap
  uint32_t version_ = 0;
  bool powerInfer_ = false;
  uint64_t alignment_ = 32;
  uint64_t dataOffset_ = 0;
  std::vector<GGUFKV> kvs_;
  std::vector<GGUFTensor> tensors_;
  std::map<std::string, size_t> kvIndex_;
  std::map<std::string, size_t> tensorIndex_;
  // A view's (view()): the file whose mapping it reads, and the memory of
  // its added tensors.
  std::unique_ptr<GGUFFile> under_;
  std::shared_ptr<const void> keepAlive_;
};

// Writes GGUF v3 files (or PWRI with `setPowerInfer`). Tensor data is
// produced one tensor at a time by a fill callback, so multi-gigabyte models
// are written without holding them in memory. The file is written under a
// temporary name beside PATH (runtime/output_files.h) and renamed on
// success, so a failure or an interruption never leaves a half file under
// the user's name, nor a temporary.
class GGUFWriter {
public:
  using Fill = std::function<void(uint8_t *dst, size_t nbytes)>;

  void setPowerInfer(bool on) { powerInfer_ = on; }
  void setAlignment(uint32_t a); // also writes general.alignment
  void set(const std::string &key, GGUFValue value); // replaces if present
  void setU32(const std::string &key, uint32_t v) { set(key, GGUFValue::ofU32(v)); }
  void setF32(const std::string &key, float v) { set(key, GGUFValue::ofF32(v)); }
  void setBool(const std::string &key, bool v) { set(key, GGUFValue::ofBool(v)); }
  void setString(const std::string &key, const std::string &v) {
    set(key, GGUFValue::ofString(v));
  }

  // ne in ggml order. `fill` receives a zeroed buffer of exactly
  // rowBytes(type, ne[0]) * rows bytes.
  void addTensor(const std::string &name, GGMLType type,
                 const std::vector<int64_t> &ne, Fill fill);
  // Convenience: copies `nbytes` from `src` (must equal the tensor size).
  void addTensorData(const std::string &name, GGMLType type,
                     const std::vector<int64_t> &ne, const void *src,
                     size_t nbytes);

  // Called with the bytes written so far and the file's size after each
  // tensor (the main job's packing bar).
  void setProgress(std::function<void(uint64_t, uint64_t)> progress) {
    progress_ = std::move(progress);
  }

  bool write(const std::string &path, std::string &error) const;

private:
  static constexpr uint64_t kNoSrcBytes = ~uint64_t(0);
  struct PendingTensor {
    std::string name;
    GGMLType type;
    std::vector<int64_t> ne;
    Fill fill;
    // Byte count handed to addTensorData, checked against the shape when
    // writing; kNoSrcBytes for tensors filled by a callback.
    uint64_t srcBytes = kNoSrcBytes;
  };
  bool powerInfer_ = false;
  uint32_t alignment_ = 32;
  std::function<void(uint64_t, uint64_t)> progress_;
  std::vector<GGUFKV> kvs_;
  std::vector<PendingTensor> tensors_;
};

} // namespace pinfer
