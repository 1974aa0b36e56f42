// Tests of the GGUF reader and writer: one hand-crafted file per kind of
// malformation (checking that the one-line error names the offset, the key
// or tensor and what was expected), write/read round trips of every value
// and tensor type, version 2 files, PowerInfer magic, the typed getters and
// the writer's own validation.
#include "resident_bytes.h"
#include "runtime/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace pinfer;

namespace {

// Little-endian byte builder for crafting files by hand.
struct Bytes {
  std::vector<uint8_t> b;

  size_t size() const { return b.size(); }
  Bytes &raw(const void *p, size_t n) {
    const uint8_t *q = static_cast<const uint8_t *>(p);
    b.insert(b.end(), q, q + n);
    return *this;
  }
  template <typename T> Bytes &put(T v) { return raw(&v, sizeof v); }
  Bytes &u8(uint8_t v) { return put(v); }
  Bytes &u32(uint32_t v) { return put(v); }
  Bytes &u64(uint64_t v) { return put(v); }
  Bytes &i64(int64_t v) { return put(v); }
  Bytes &str(const std::string &s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Bytes &zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  Bytes &padTo(size_t align) {
    while (b.size() % align)
      b.push_back(0);
    return *this;
  }
  // key + value type; the value follows.
  Bytes &key(const std::string &k, GGUFValueType t) {
    str(k);
    return u32(static_cast<uint32_t>(t));
  }
  Bytes &tensorInfo(const std::string &name, std::vector<int64_t> ne,
                    uint32_t type, uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(ne.size()));
    for (int64_t d : ne)
      i64(d);
    u32(type);
    return u64(offset);
  }
};

Bytes header(uint64_t nTensors, uint64_t nKV, uint32_t version = 3,
             const char *magic = "GGUF") {
  Bytes h;
  h.raw(magic, 4).u32(version).u64(nTensors).u64(nKV);
  return h;
}

const char *kName = "crafted.gguf";

std::unique_ptr<GGUFFile> parse(const Bytes &b, std::string &err) {
  return GGUFFile::fromMemory(b.b.data(), b.b.size(), kName, err);
}

// Parses `b`, which must fail with a one-line error at `offset` containing
// every string of `parts`.
void expectError(const Bytes &b, size_t offset,
                 std::initializer_list<const char *> parts) {
  std::string err;
  auto f = parse(b, err);
  ASSERT_EQ(f, nullptr) << "parsed a malformed file";
  std::string prefix =
      std::string(kName) + ": at offset " + std::to_string(offset) + ": ";
  EXPECT_EQ(err.compare(0, prefix.size(), prefix), 0)
      << "error: " << err << "\nexpected prefix: " << prefix;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  for (const char *p : parts)
    EXPECT_NE(err.find(p), std::string::npos)
        << "error: " << err << "\nmissing: " << p;
}

std::string tempPath(const std::string &leaf) {
  std::string dir = testing::TempDir();
  if (!dir.empty() && dir.back() != '/')
    dir += '/';
  return dir + "pinfer_gguf_" + std::to_string(getpid()) + "_" + leaf;
}

bool fileExists(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::vector<uint8_t> readFile(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Deep equality of two values, including float bit patterns (so NaN payloads
// and -0 are compared exactly).
::testing::AssertionResult sameValue(const GGUFValue &a, const GGUFValue &b) {
  if (a.type != b.type)
    return ::testing::AssertionFailure() << "type " << valueTypeName(a.type)
                                         << " vs " << valueTypeName(b.type);
  switch (a.type) {
  case GGUFValueType::FLOAT32: {
    float x = static_cast<float>(a.f), y = static_cast<float>(b.f);
    if (std::memcmp(&x, &y, 4) != 0)
      return ::testing::AssertionFailure() << "f32 " << x << " vs " << y;
    break;
  }
  case GGUFValueType::FLOAT64:
    if (std::memcmp(&a.f, &b.f, 8) != 0)
      return ::testing::AssertionFailure() << "f64 " << a.f << " vs " << b.f;
    break;
  case GGUFValueType::STRING:
    if (a.s != b.s)
      return ::testing::AssertionFailure()
             << "'" << a.s << "' vs '" << b.s << "'";
    break;
  case GGUFValueType::ARRAY:
    if (a.elemType != b.elemType || a.arr.size() != b.arr.size())
      return ::testing::AssertionFailure()
             << "array of " << a.arr.size() << " " << valueTypeName(a.elemType)
             << " vs " << b.arr.size() << " " << valueTypeName(b.elemType);
    for (size_t k = 0; k < a.arr.size(); ++k) {
      auto r = sameValue(a.arr[k], b.arr[k]);
      if (!r)
        return r << " (element " << k << ")";
    }
    break;
  case GGUFValueType::INT8:
  case GGUFValueType::INT16:
  case GGUFValueType::INT32:
  case GGUFValueType::INT64:
    if (a.i != b.i)
      return ::testing::AssertionFailure() << a.i << " vs " << b.i;
    break;
  default:
    if (a.u != b.u)
      return ::testing::AssertionFailure() << a.u << " vs " << b.u;
  }
  return ::testing::AssertionSuccess();
}

GGUFValue scalar(GGUFValueType t) {
  GGUFValue v;
  v.type = t;
  return v;
}

GGUFValue arrayOf(GGUFValueType et, std::vector<GGUFValue> elems) {
  GGUFValue v;
  v.type = GGUFValueType::ARRAY;
  v.elemType = et;
  v.arr = std::move(elems);
  return v;
}

// ---------------------------------------------------------------------------
// Header

TEST(GGUFMalformed, EmptyBuffer) {
  expectError(Bytes(), 0, {"file ends", "magic"});
}

TEST(GGUFMalformed, WrongMagic) {
  Bytes b = header(0, 0, 3, "GGML");
  expectError(b, 0, {"magic is 'GGML'", "expected \"GGUF\""});
}

TEST(GGUFMalformed, BinaryMagicIsEscaped) {
  Bytes b = header(0, 0, 3,
                   "\x7f"
                   "ELF");
  expectError(b, 0, {"magic is '\\x7fELF'"});
}

TEST(GGUFMalformed, Version1Refused) {
  expectError(header(0, 0, 1), 4, {"version 1 is not supported", "2 or 3"});
}

TEST(GGUFMalformed, UnknownVersion) {
  expectError(header(0, 0, 4), 4, {"version 4 is unknown", "expected 2 or 3"});
  expectError(header(0, 0, 0), 4, {"version 0 is unknown"});
}

TEST(GGUFMalformed, BigEndianRefused) {
  expectError(header(0, 0, 0x03000000), 4, {"big-endian", "little-endian"});
}

TEST(GGUFMalformed, TruncatedVersion) {
  Bytes b;
  b.raw("GGUF", 4).u8(3);
  expectError(b, 4, {"file ends 1 byte(s) later", "format version"});
}

TEST(GGUFMalformed, TruncatedTensorCount) {
  Bytes b;
  b.raw("GGUF", 4).u32(3).u32(0);
  expectError(b, 8, {"tensor count"});
}

TEST(GGUFMalformed, TruncatedKVCount) {
  Bytes b;
  b.raw("GGUF", 4).u32(3).u64(0).u8(0);
  expectError(b, 16, {"key/value count"});
}

TEST(GGUFMalformed, KVCountTooLargeForFile) {
  // Must be refused before anything is reserved for 2^60 entries.
  Bytes b = header(0, uint64_t(1) << 60);
  b.zeros(64);
  expectError(b, 16, {"metadata count 1152921504606846976", "64 bytes left"});
  Bytes m = header(0, std::numeric_limits<uint64_t>::max());
  expectError(m, 16, {"metadata count 18446744073709551615"});
}

TEST(GGUFMalformed, TensorCountTooLargeForFile) {
  Bytes b = header(3, 0);
  b.zeros(95); // 3 infos need at least 96 bytes
  expectError(b, 8, {"tensor count 3", "95 bytes left"});
}

// ---------------------------------------------------------------------------
// Keys and values

TEST(GGUFMalformed, TruncatedSecondKeyLength) {
  Bytes b = header(0, 2);
  b.key("a", GGUFValueType::STRING).str(std::string(20, 'x'));
  size_t at = b.size();
  b.u8(1).u8(0).u8(0);
  expectError(b, at, {"metadata entry 1", "expected a key"});
}

TEST(GGUFMalformed, KeyLengthPastEnd) {
  Bytes b = header(0, 1);
  size_t at = b.size();
  b.u64(1000).zeros(10);
  expectError(b, at, {"metadata entry 0", "length 1000", "10 byte(s) remain"});
}

TEST(GGUFMalformed, HugeKeyLength) {
  Bytes b = header(0, 1);
  size_t at = b.size();
  b.u64(uint64_t(1) << 63).zeros(10);
  expectError(b, at, {"length 9223372036854775808"});
}

TEST(GGUFMalformed, TruncatedValueType) {
  Bytes b = header(0, 1);
  b.str("abcdefgh");
  size_t at = b.size();
  b.u8(4).u8(0);
  expectError(b, at, {"key 'abcdefgh'", "value type"});
}

TEST(GGUFMalformed, UnknownValueType) {
  Bytes b = header(0, 1);
  b.str("general.name");
  size_t at = b.size();
  b.u32(13).u32(0);
  expectError(b, at,
              {"key 'general.name'", "value type 13 is unknown", "0..12"});
}

TEST(GGUFMalformed, TruncatedScalarValue) {
  Bytes b = header(0, 1);
  b.key("big.number", GGUFValueType::UINT64);
  size_t at = b.size();
  b.u32(7);
  expectError(b, at, {"key 'big.number'", "uint64 value", "file ends 4"});
}

TEST(GGUFMalformed, StringValuePastEnd) {
  Bytes b = header(0, 1);
  b.key("general.name", GGUFValueType::STRING);
  size_t at = b.size();
  b.u64(50).raw("short", 5);
  expectError(
      b, at,
      {"key 'general.name'", "string value has length 50", "5 byte(s) remain"});
}

TEST(GGUFMalformed, BoolValueNotZeroOrOne) {
  Bytes b = header(0, 1);
  b.key("flag", GGUFValueType::BOOL);
  size_t at = b.size();
  b.u8(2);
  expectError(b, at, {"key 'flag'", "bool value is 2", "0 or 1"});
}

TEST(GGUFMalformed, TruncatedArrayLength) {
  Bytes b = header(0, 1);
  b.key("arr.key", GGUFValueType::ARRAY).u32(4);
  size_t at = b.size();
  b.u32(1);
  expectError(b, at, {"key 'arr.key'", "array length"});
}

TEST(GGUFMalformed, UnknownArrayElementType) {
  Bytes b = header(0, 1);
  b.key("arr.key", GGUFValueType::ARRAY);
  size_t at = b.size();
  b.u32(42).u64(0);
  expectError(b, at, {"key 'arr.key'", "array element type 42 is unknown"});
}

TEST(GGUFMalformed, ArrayLengthTooLargeForFile) {
  // 2^40 uint32 elements must be refused before reserving anything.
  Bytes b = header(0, 1);
  b.key("tokenizer.ggml.scores", GGUFValueType::ARRAY).u32(4);
  size_t at = b.size();
  b.u64(uint64_t(1) << 40).zeros(16);
  expectError(b, at,
              {"key 'tokenizer.ggml.scores'", "array of 1099511627776 uint32",
               "only 16 remain"});
}

TEST(GGUFMalformed, ArrayByteCountOverflows) {
  Bytes b = header(0, 1);
  b.key("k", GGUFValueType::ARRAY).u32(10); // uint64 elements
  size_t at = b.size();
  b.u64(std::numeric_limits<uint64_t>::max()).zeros(8);
  expectError(b, at, {"array of 18446744073709551615 uint64", "2^64"});
}

TEST(GGUFMalformed, StringArrayCountTooLarge) {
  // Each string takes at least 8 bytes (its length): 3 cannot fit in 20.
  Bytes b = header(0, 1);
  b.key("tokenizer.ggml.tokens", GGUFValueType::ARRAY).u32(8);
  size_t at = b.size();
  b.u64(3).zeros(20);
  expectError(b, at, {"array of 3 string", "needs at least 24 bytes"});
}

TEST(GGUFMalformed, ArrayStringElementPastEnd) {
  Bytes b = header(0, 1);
  b.key("tokenizer.ggml.tokens", GGUFValueType::ARRAY).u32(8).u64(2);
  b.str("ok");
  size_t at = b.size();
  b.u64(100).zeros(4);
  expectError(b, at, {"key 'tokenizer.ggml.tokens'", "length 100"});
}

TEST(GGUFMalformed, TruncatedArrayElement) {
  // The count fits (2 x 8 bytes of remaining data) but the second string's
  // bytes are missing.
  Bytes b = header(0, 1);
  b.key("k", GGUFValueType::ARRAY).u32(8).u64(2).str("abcdefgh");
  size_t at = b.size();
  b.u32(0);
  expectError(b, at, {"key 'k'", "string value"});
}

TEST(GGUFMalformed, ArrayNestingDepthBounded) {
  auto nested = [](int levels) {
    Bytes b = header(0, 1);
    b.key("deep", GGUFValueType::ARRAY);
    size_t innermost = 0;
    for (int l = 1; l < levels; ++l) {
      b.u32(static_cast<uint32_t>(GGUFValueType::ARRAY)).u64(1);
    }
    innermost = b.size();
    b.u32(static_cast<uint32_t>(GGUFValueType::UINT8)).u64(1).u8(7);
    return std::make_pair(b, innermost);
  };
  // 8 levels are accepted.
  auto ok = nested(8);
  std::string err;
  auto f = parse(ok.first, err);
  ASSERT_NE(f, nullptr) << err;
  const GGUFValue *v = f->find("deep");
  ASSERT_NE(v, nullptr);
  for (int l = 1; l < 8; ++l) {
    ASSERT_EQ(v->type, GGUFValueType::ARRAY);
    ASSERT_EQ(v->arr.size(), 1u);
    v = &v->arr[0];
  }
  ASSERT_EQ(v->elemType, GGUFValueType::UINT8);
  EXPECT_EQ(v->arr.at(0).u, 7u);
  // 9 are refused where the ninth array starts.
  auto bad = nested(9);
  expectError(bad.first, bad.second, {"key 'deep'", "nested more than 8"});
}

TEST(GGUFMalformed, DuplicateKey) {
  Bytes b = header(0, 2);
  b.key("general.name", GGUFValueType::STRING).str("one");
  size_t at = b.size();
  b.key("general.name", GGUFValueType::STRING).str("two");
  expectError(b, at, {"key 'general.name'", "duplicate key", "entry 0"});
}

TEST(GGUFMalformed, AlignmentWrongType) {
  Bytes b = header(0, 1);
  b.str("general.alignment");
  size_t at = b.size();
  b.u32(static_cast<uint32_t>(GGUFValueType::UINT64)).u64(32);
  expectError(
      b, at, {"key 'general.alignment'", "has type uint64", "expected uint32"});
}

TEST(GGUFMalformed, AlignmentNotPowerOfTwo) {
  Bytes b = header(0, 1);
  b.key("general.alignment", GGUFValueType::UINT32);
  size_t at = b.size();
  b.u32(48);
  expectError(b, at, {"key 'general.alignment'", "48 is not a power of two"});
}

TEST(GGUFMalformed, AlignmentZero) {
  Bytes b = header(0, 1);
  b.key("general.alignment", GGUFValueType::UINT32);
  size_t at = b.size();
  b.u32(0);
  expectError(b, at, {"alignment 0 is not a power of two"});
}

// ---------------------------------------------------------------------------
// Tensor infos and data

TEST(GGUFMalformed, TruncatedTensorName) {
  Bytes b = header(1, 0);
  size_t at = b.size();
  b.u64(40).raw("blk.0.attn_q.weight", 19).zeros(16);
  expectError(b, at, {"tensor info 0", "tensor name has length 40"});
}

TEST(GGUFMalformed, TruncatedTensorDims) {
  Bytes b = header(1, 0);
  b.str("a_rather_long_tensor_name.weight").u32(2).i64(64);
  size_t at = b.size();
  b.u32(0);
  expectError(
      b, at,
      {"tensor 'a_rather_long_tensor_name.weight'", "dimension (int64)"});
}

TEST(GGUFMalformed, TruncatedTensorType) {
  Bytes b = header(1, 0);
  b.str("a_rather_long_tensor_name.weight").u32(1).i64(64);
  size_t at = b.size();
  b.u8(0).u8(0);
  expectError(b, at, {"tensor type (uint32)"});
}

TEST(GGUFMalformed, TruncatedTensorOffset) {
  Bytes b = header(1, 0);
  b.str("a_rather_long_tensor_name.weight").u32(1).i64(64).u32(0);
  size_t at = b.size();
  b.u32(0);
  expectError(b, at, {"data offset (uint64)"});
}

TEST(GGUFMalformed, ZeroDims) {
  Bytes b = header(1, 0);
  b.str("t");
  size_t at = b.size();
  b.u32(0).zeros(32);
  expectError(b, at, {"tensor 't'", "has 0 dimensions", "expected 1 to 4"});
}

TEST(GGUFMalformed, FiveDims) {
  Bytes b = header(1, 0);
  b.str("t");
  size_t at = b.size();
  b.u32(5).zeros(64);
  expectError(b, at, {"has 5 dimensions", "expected 1 to 4"});
}

TEST(GGUFMalformed, DimZero) {
  Bytes b = header(1, 0);
  b.str("t").u32(2).i64(32);
  size_t at = b.size();
  b.i64(0).u32(0).u64(0);
  expectError(b, at, {"tensor 't'", "dimension 1 is 0", "expected > 0"});
}

TEST(GGUFMalformed, DimNegative) {
  Bytes b = header(1, 0);
  b.str("t").u32(1);
  size_t at = b.size();
  b.i64(-32).u32(0).u64(0);
  expectError(b, at, {"dimension 0 is -32"});
}

TEST(GGUFMalformed, ElementCountOverflows) {
  Bytes b = header(1, 0);
  b.str("t").u32(3).i64(int64_t(1) << 32).i64(int64_t(1) << 30);
  size_t at = b.size();
  b.i64(4).u32(0).u64(0);
  expectError(
      b, at, {"shape [4294967296, 1073741824, 4]", "more elements than int64"});
}

TEST(GGUFMalformed, ByteSizeOverflows) {
  // 2^62 f32 elements count fine in int64 but take 2^64 bytes.
  Bytes b = header(1, 0);
  b.str("t").u32(2);
  size_t at = b.size();
  b.i64(int64_t(1) << 31).i64(int64_t(1) << 31).u32(0).u64(0);
  expectError(b, at,
              {"shape [2147483648, 2147483648] of f32", "more bytes than fit"});
}

TEST(GGUFMalformed, UnknownTensorType) {
  for (uint32_t type : {4u, 31u, 36u, 99u, 0xffffffffu}) {
    Bytes b = header(1, 0);
    b.str("t").u32(1).i64(32);
    size_t at = b.size();
    b.u32(type).u64(0);
    expectError(b, at,
                {("tensor type " + std::to_string(type)).c_str(),
                 "is not a ggml type"});
  }
}

TEST(GGUFMalformed, RowNotMultipleOfBlockSize) {
  Bytes b = header(1, 0);
  b.str("q").u32(2);
  size_t at = b.size();
  b.i64(33).i64(2).u32(static_cast<uint32_t>(GGMLType::Q8_0)).u64(0);
  expectError(b, at, {"tensor 'q'", "row length 33", "q8_0 block size 32"});
}

TEST(GGUFMalformed, OffsetNotAligned) {
  Bytes b = header(1, 0);
  b.str("t").u32(1).i64(4).u32(0);
  size_t at = b.size();
  b.u64(8);
  b.padTo(32).zeros(64);
  expectError(b, at, {"tensor 't'", "data offset 8", "alignment 32"});
}

TEST(GGUFMalformed, OffsetNotAlignedToCustomAlignment) {
  Bytes b = header(1, 1);
  b.key("general.alignment", GGUFValueType::UINT32).u32(64);
  b.str("t").u32(1).i64(4).u32(0);
  size_t at = b.size();
  b.u64(32);
  b.padTo(64).zeros(128);
  expectError(b, at, {"data offset 32", "alignment 64"});
}

TEST(GGUFMalformed, TensorDataPastEndOfFile) {
  Bytes b = header(1, 0);
  b.str("w").u32(1).i64(16).u32(0);
  size_t at = b.size();
  b.u64(0);
  b.padTo(32).zeros(63); // 64 bytes needed
  expectError(b, at,
              {"tensor 'w'", "data [0, +64)", "ends past the",
               "expected it inside the file"});
}

TEST(GGUFMalformed, TensorDataSectionMissing) {
  // The file ends right after the tensor infos: not even the padding.
  Bytes b = header(1, 0);
  b.str("w").u32(1).i64(1).u32(0);
  size_t at = b.size();
  b.u64(0);
  expectError(b, at, {"tensor 'w'", "ends past the"});
}

TEST(GGUFMalformed, TensorOffsetHuge) {
  Bytes b = header(1, 0);
  b.str("w").u32(1).i64(1).u32(0);
  size_t at = b.size();
  b.u64(std::numeric_limits<uint64_t>::max() - 31); // aligned, out of file
  b.padTo(32).zeros(32);
  expectError(b, at, {"tensor 'w'", "ends past the"});
}

TEST(GGUFMalformed, OverlappingTensors) {
  Bytes b = header(2, 0);
  b.str("first").u32(1).i64(16).u32(0).u64(0); // [0, 64)
  b.str("second").u32(1).i64(16).u32(0);
  size_t at = b.size();
  b.u64(32); // [32, 96)
  b.padTo(32).zeros(128);
  expectError(
      b, at,
      {"tensor 'second'", "overlaps tensor 'first'", "[0, 64)", "disjoint"});
}

TEST(GGUFMalformed, OverlapFoundWhateverTheInfoOrder) {
  Bytes b = header(2, 0);
  b.str("late").u32(1).i64(16).u32(0);
  size_t at = b.size();
  b.u64(32);
  b.str("early").u32(1).i64(16).u32(0).u64(0);
  b.padTo(32).zeros(128);
  expectError(b, at, {"tensor 'late'", "overlaps tensor 'early'"});
}

TEST(GGUFMalformed, DuplicateTensorName) {
  Bytes b = header(2, 0);
  b.str("w").u32(1).i64(8).u32(0).u64(0);
  size_t at = b.size();
  b.str("w").u32(1).i64(8).u32(0).u64(32);
  b.padTo(32).zeros(64);
  expectError(b, at, {"tensor 'w'", "duplicate tensor name"});
}

TEST(GGUFMalformed, NamesWithControlBytesAreEscaped) {
  Bytes b = header(1, 0);
  b.str(std::string("bad\nname", 8)).u32(0).zeros(32);
  std::string err;
  ASSERT_EQ(parse(b, err), nullptr);
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  EXPECT_NE(err.find("bad\\x0aname"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------
// Well-formed files, crafted by hand

TEST(GGUFRead, HandCraftedV3) {
  Bytes b = header(2, 3);
  b.key("general.architecture", GGUFValueType::STRING).str("llama");
  b.key("llama.block_count", GGUFValueType::UINT32).u32(2);
  b.key("tokenizer.ggml.scores", GGUFValueType::ARRAY).u32(6).u64(2);
  b.put(0.5f).put(-1.25f);
  b.tensorInfo("a", {4, 2}, 0, 0);
  b.tensorInfo("b", {32}, static_cast<uint32_t>(GGMLType::Q8_0), 32);
  b.padTo(32);
  size_t data = b.size();
  for (int k = 0; k < 8; ++k)
    b.put(static_cast<float>(k));
  b.zeros(34); // one q8_0 block, then no trailing padding
  std::string err;
  auto f = parse(b, err);
  ASSERT_NE(f, nullptr) << err;
  EXPECT_EQ(f->version(), 3u);
  EXPECT_FALSE(f->isPowerInfer());
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->dataOffset(), data);
  ASSERT_EQ(f->metadata().size(), 3u);
  EXPECT_EQ(f->metadata()[0].key, "general.architecture");
  EXPECT_EQ(f->metadata()[1].key, "llama.block_count");
  const GGUFTensor *a = f->tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->nDims, 2u);
  EXPECT_EQ(a->ne[0], 4);
  EXPECT_EQ(a->ne[1], 2);
  EXPECT_EQ(a->ne[2], 1);
  EXPECT_EQ(a->nelements(), 8);
  EXPECT_EQ(a->nrows(), 2);
  EXPECT_EQ(a->nbytes, 32u);
  EXPECT_EQ(a->shapeString(), "[4, 2]");
  EXPECT_EQ(a->data, b.b.data() + data);
  float x5;
  std::memcpy(&x5, a->data + 5 * 4, 4);
  EXPECT_EQ(x5, 5.0f);
  const GGUFTensor *q = f->tensor("b");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GGMLType::Q8_0);
  EXPECT_EQ(q->nbytes, 34u);
  EXPECT_EQ(q->data, b.b.data() + data + 32);
  EXPECT_EQ(f->tensor("c"), nullptr);
  EXPECT_EQ(f->find("missing"), nullptr);
}

// Version 2 has the same layout as version 3 (v3 only added big-endian
// files, which carry a byte-swapped version); v1 differed by 32-bit counts
// and lengths.
TEST(GGUFRead, HandCraftedV2) {
  Bytes b = header(1, 2, 2);
  b.key("general.architecture", GGUFValueType::STRING).str("llama");
  b.key("tokenizer.ggml.tokens", GGUFValueType::ARRAY).u32(8).u64(3);
  b.str("<unk>").str("<s>").str("</s>");
  b.tensorInfo("token_embd.weight", {2, 3}, 1, 0);
  b.padTo(32);
  for (uint16_t h : {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600})
    b.put(h); // 1 2 3 4 5 6 in f16
  std::string err;
  auto f = parse(b, err);
  ASSERT_NE(f, nullptr) << err;
  EXPECT_EQ(f->version(), 2u);
  std::vector<std::string> toks;
  ASSERT_TRUE(f->getStringArray("tokenizer.ggml.tokens", toks, err)) << err;
  EXPECT_EQ(toks, (std::vector<std::string>{"<unk>", "<s>", "</s>"}));
  const GGUFTensor *t = f->tensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, GGMLType::F16);
  float row[2];
  ASSERT_TRUE(dequantizeRow(t->type, t->data + 2 * 2, row, 2));
  EXPECT_EQ(row[0], 3.0f);
  EXPECT_EQ(row[1], 4.0f);
}

TEST(GGUFRead, PowerInferMagic) {
  Bytes b = header(0, 1, 3, "PWRI");
  b.key("powerinfer.sparse_threshold", GGUFValueType::FLOAT32).put(0.5f);
  std::string err;
  auto f = parse(b, err);
  ASSERT_NE(f, nullptr) << err;
  EXPECT_TRUE(f->isPowerInfer());
  float th = 0;
  ASSERT_TRUE(f->getF32("powerinfer.sparse_threshold", th, err)) << err;
  EXPECT_EQ(th, 0.5f);
}

TEST(GGUFRead, EmptyArraysAndStrings) {
  Bytes b = header(0, 3);
  b.key("empty.string", GGUFValueType::STRING).str("");
  b.key("empty.array", GGUFValueType::ARRAY).u32(4).u64(0);
  b.key("empty.nested", GGUFValueType::ARRAY).u32(9).u64(1).u32(8).u64(0);
  std::string err;
  auto f = parse(b, err);
  ASSERT_NE(f, nullptr) << err;
  EXPECT_EQ(f->find("empty.string")->s, "");
  EXPECT_EQ(f->find("empty.array")->arr.size(), 0u);
  EXPECT_EQ(f->find("empty.array")->elemType, GGUFValueType::UINT32);
  const GGUFValue *n = f->find("empty.nested");
  ASSERT_EQ(n->arr.size(), 1u);
  EXPECT_EQ(n->arr[0].type, GGUFValueType::ARRAY);
  EXPECT_EQ(n->arr[0].elemType, GGUFValueType::STRING);
}

// ---------------------------------------------------------------------------
// Writer round trips

struct TensorSpec {
  std::string name;
  GGMLType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> bytes;
};

std::vector<uint8_t>
makeTensorBytes(GGMLType type, const std::vector<int64_t> &ne, uint32_t seed) {
  int64_t n = 1;
  for (int64_t d : ne)
    n *= d;
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(rowBytes(type, ne[0]) * (n / ne[0]));
  if (typeTraits(type)->computable) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (float &v : x)
      v = dist(rng);
    EXPECT_TRUE(quantizeRow(type, x.data(), out.data(), n));
  } else {
    for (uint8_t &v : out)
      v = static_cast<uint8_t>(rng());
  }
  return out;
}

TEST(GGUFWrite, RoundTripEveryValueType) {
  GGUFWriter w;
  std::vector<GGUFKV> expect;
  auto add = [&](const std::string &k, GGUFValue v) {
    w.set(k, v);
    expect.push_back({k, v});
  };
  GGUFValue v;
  v = scalar(GGUFValueType::UINT8), v.u = 255, add("t.u8", v);
  v = scalar(GGUFValueType::INT8), v.i = -128, add("t.i8", v);
  v = scalar(GGUFValueType::UINT16), v.u = 65535, add("t.u16", v);
  v = scalar(GGUFValueType::INT16), v.i = -32768, add("t.i16", v);
  add("t.u32", GGUFValue::ofU32(4000000000u));
  add("t.i32", GGUFValue::ofI32(std::numeric_limits<int32_t>::min()));
  add("t.f32", GGUFValue::ofF32(-3.5e-7f));
  add("t.f32.nan", GGUFValue::ofF32(std::numeric_limits<float>::quiet_NaN()));
  add("t.bool.t", GGUFValue::ofBool(true));
  add("t.bool.f", GGUFValue::ofBool(false));
  add("t.string", GGUFValue::ofString("h\xc3\xa9llo \xe2\x96\x81world"));
  add("t.string.empty", GGUFValue::ofString(""));
  add("t.string.nul", GGUFValue::ofString(std::string("a\0b", 3)));
  add("t.u64", GGUFValue::ofU64(std::numeric_limits<uint64_t>::max()));
  v = scalar(GGUFValueType::INT64), v.i = std::numeric_limits<int64_t>::min(),
  add("t.i64", v);
  v = scalar(GGUFValueType::FLOAT64), v.f = 1.0 / 3.0, add("t.f64", v);
  add("t.strings", GGUFValue::ofStrings({"<unk>", "", "\xe2\x96\x81the"}));
  add("t.f32s", GGUFValue::ofF32s({0.0f, -0.0f, 1e30f, -1e-30f}));
  add("t.i32s",
      GGUFValue::ofI32s({0, -1, std::numeric_limits<int32_t>::max()}));
  // An array of each scalar type, and arrays of arrays.
  for (uint32_t t = 0; t <= 12; ++t) {
    GGUFValueType et = static_cast<GGUFValueType>(t);
    if (et == GGUFValueType::ARRAY)
      continue;
    std::vector<GGUFValue> elems;
    for (int k = 0; k < 3; ++k) {
      GGUFValue e = scalar(et);
      e.u = static_cast<uint64_t>(k) & (et == GGUFValueType::BOOL ? 1 : ~0u);
      e.i = -k;
      e.f = k * 0.25;
      e.s = std::string(static_cast<size_t>(k), 'x');
      elems.push_back(e);
    }
    add(std::string("t.arr.") + valueTypeName(et), arrayOf(et, elems));
  }
  add("t.nested",
      arrayOf(
          GGUFValueType::ARRAY,
          {arrayOf(GGUFValueType::UINT8, {}),
           arrayOf(GGUFValueType::STRING, {GGUFValue::ofString("a")}),
           arrayOf(GGUFValueType::ARRAY,
                   {arrayOf(GGUFValueType::INT32,
                            {GGUFValue::ofI32(-5), GGUFValue::ofI32(9)})})}));
  // set() replaces in place.
  add("t.replaced", GGUFValue::ofU32(1));
  w.setU32("t.replaced", 2);
  expect.back().value = GGUFValue::ofU32(2);

  std::string path = tempPath("values.gguf"), err;
  ASSERT_TRUE(w.write(path, err)) << err;
  EXPECT_FALSE(fileExists(path + ".tmp"));
  auto f = GGUFFile::open(path, err);
  ASSERT_NE(f, nullptr) << err;
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->path(), path);
  ASSERT_EQ(f->metadata().size(), expect.size());
  for (size_t k = 0; k < expect.size(); ++k) {
    EXPECT_EQ(f->metadata()[k].key, expect[k].key);
    EXPECT_TRUE(sameValue(f->metadata()[k].value, expect[k].value))
        << expect[k].key;
  }
  EXPECT_TRUE(f->tensors().empty());
  std::remove(path.c_str());
}

TEST(GGUFWrite, RoundTripEveryTensorType) {
  std::vector<TensorSpec> specs;
  uint32_t seed = 1;
  for (GGMLType t : {GGMLType::F32, GGMLType::F16, GGMLType::BF16,
                     GGMLType::Q8_0, GGMLType::Q4_0, GGMLType::Q4_K,
                     GGMLType::Q6_K, GGMLType::I32, GGMLType::IQ4_NL}) {
    const TypeTraits *info = typeTraits(t);
    std::vector<int64_t> ne = {info->blockSize * 2, 3};
    if (t == GGMLType::F32)
      ne = {5, 1, 2, 3}; // 4 dims, odd sizes: exercises padding
    std::string name = std::string("tensor.") + info->name;
    specs.push_back({name, t, ne, makeTensorBytes(t, ne, seed++)});
  }
  GGUFWriter w;
  w.setString("general.architecture", "llama");
  std::vector<size_t> fillSizes;
  for (const TensorSpec &s : specs) {
    const TensorSpec *sp = &s;
    w.addTensor(s.name, s.type, s.ne, [sp, &fillSizes](uint8_t *dst, size_t n) {
      fillSizes.push_back(n);
      // The buffer arrives zeroed.
      for (size_t k = 0; k < n; ++k)
        ASSERT_EQ(dst[k], 0);
      std::memcpy(dst, sp->bytes.data(), n);
    });
  }
  std::string path = tempPath("tensors.gguf"), err;
  ASSERT_TRUE(w.write(path, err)) << err;
  ASSERT_EQ(fillSizes.size(), specs.size());
  auto f = GGUFFile::open(path, err);
  ASSERT_NE(f, nullptr) << err;
  ASSERT_EQ(f->tensors().size(), specs.size());
  for (size_t k = 0; k < specs.size(); ++k) {
    const TensorSpec &s = specs[k];
    const GGUFTensor &t = f->tensors()[k];
    EXPECT_EQ(t.name, s.name);
    EXPECT_EQ(t.type, s.type);
    EXPECT_EQ(t.nDims, s.ne.size());
    for (size_t d = 0; d < 4; ++d)
      EXPECT_EQ(t.ne[d], d < s.ne.size() ? s.ne[d] : 1) << s.name;
    EXPECT_EQ(t.nbytes, s.bytes.size()) << s.name;
    EXPECT_EQ(fillSizes[k], s.bytes.size()) << s.name;
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ((t.data - f->base()) % 32, 0);
    EXPECT_EQ(std::memcmp(t.data, s.bytes.data(), s.bytes.size()), 0) << s.name;
  }
  // The computable ones decode to what was quantised.
  const GGUFTensor *q = f->tensor("tensor.q8_0");
  ASSERT_NE(q, nullptr);
  std::vector<float> a(64), b(64);
  ASSERT_TRUE(dequantizeRow(q->type, q->data, a.data(), 64));
  ASSERT_TRUE(
      dequantizeRow(GGMLType::Q8_0, specs[3].bytes.data(), b.data(), 64));
  EXPECT_EQ(a, b);
  std::remove(path.c_str());
}

TEST(GGUFWrite, CustomAlignmentAndPowerInfer) {
  GGUFWriter w;
  w.setPowerInfer(true);
  w.setAlignment(256);
  w.setF32("powerinfer.sparse_threshold", 0.25f);
  std::vector<float> x(40, 1.0f);
  w.addTensorData("blk.0.fc1.weight", GGMLType::F32, {8, 5}, x.data(), 160);
  w.addTensorData("blk.0.fc2.weight", GGMLType::F32, {5, 8}, x.data(), 160);
  std::string path = tempPath("pwri.gguf"), err;
  ASSERT_TRUE(w.write(path, err)) << err;
  std::vector<uint8_t> raw = readFile(path);
  ASSERT_GE(raw.size(), 4u);
  EXPECT_EQ(std::string(raw.begin(), raw.begin() + 4), "PWRI");
  auto f = GGUFFile::open(path, err);
  ASSERT_NE(f, nullptr) << err;
  EXPECT_TRUE(f->isPowerInfer());
  EXPECT_EQ(f->alignment(), 256u);
  uint32_t a = 0;
  ASSERT_TRUE(f->getU32("general.alignment", a, err)) << err;
  EXPECT_EQ(a, 256u);
  EXPECT_EQ(f->dataOffset() % 256, 0u);
  EXPECT_EQ(f->tensor("blk.0.fc1.weight")->offset, 0u);
  EXPECT_EQ(f->tensor("blk.0.fc2.weight")->offset, 256u);
  // Every tensor is padded to the alignment, the last one included.
  EXPECT_EQ(raw.size(), f->dataOffset() + 512);
  std::remove(path.c_str());
}

// Released pages leave the process's resident set (as /proc/self/statm
// counts it) and read back the same bytes.
TEST(GGUFWrite, ReleasedPagesLeaveTheResidentSetAndReadTheSame) {
  const int64_t n = int64_t(8) << 20; // 32 MiB of f32
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    x[size_t(i)] = float(i % 1009) * 0.5f;
  GGUFWriter w;
  w.addTensorData("t", GGMLType::F32, {n}, x.data(), size_t(n) * 4);
  std::string path = tempPath("release.gguf"), err;
  ASSERT_TRUE(w.write(path, err)) << err;
  std::vector<float>().swap(x);
  auto f = GGUFFile::open(path, err);
  ASSERT_NE(f, nullptr) << err;
  auto resident = test::residentBytes;
  const float *v = reinterpret_cast<const float *>(f->base() + f->dataOffset());
  auto sum = [&] {
    double s = 0;
    for (int64_t i = 0; i < n; ++i)
      s += v[i];
    return s;
  };
  const double first = sum();
  const int64_t touched = resident();
  f->releasePages();
  const int64_t released = resident();
  EXPECT_LT(released, touched - (int64_t(24) << 20))
      << "resident " << touched << " -> " << released << " bytes";
  EXPECT_EQ(sum(), first);
  std::remove(path.c_str());
}

TEST(GGUFWrite, EveryTruncationIsRefusedWithOneLine) {
  GGUFWriter w;
  w.setString("general.architecture", "llama");
  w.set("tokenizer.ggml.tokens", GGUFValue::ofStrings({"a", "bb", "ccc"}));
  w.set("tokenizer.ggml.scores", GGUFValue::ofF32s({0, 1, 2}));
  w.setBool("flag", true);
  std::vector<uint8_t> q = makeTensorBytes(GGMLType::Q4_0, {64, 2}, 7);
  w.addTensorData("q", GGMLType::Q4_0, {64, 2}, q.data(), q.size());
  std::vector<uint8_t> h = makeTensorBytes(GGMLType::F16, {3}, 8);
  w.addTensorData("h", GGMLType::F16, {3}, h.data(), h.size());
  std::string path = tempPath("trunc.gguf"), err;
  ASSERT_TRUE(w.write(path, err)) << err;
  std::vector<uint8_t> raw = readFile(path);
  std::remove(path.c_str());
  auto full = GGUFFile::fromMemory(raw.data(), raw.size(), kName, err);
  ASSERT_NE(full, nullptr) << err;
  const GGUFTensor *last = full->tensor("h");
  size_t needed = static_cast<size_t>(last->data - full->base()) + last->nbytes;
  for (size_t n = 0; n < raw.size(); ++n) {
    // A private copy of exactly n bytes so that a read past it is caught by
    // sanitizers and valgrind.
    std::vector<uint8_t> cut(raw.begin(), raw.begin() + n);
    std::string e;
    auto f = GGUFFile::fromMemory(cut.data(), cut.size(), kName, e);
    if (n < needed) {
      ASSERT_EQ(f, nullptr) << "prefix of " << n << " bytes parsed";
      ASSERT_EQ(e.rfind(std::string(kName) + ": at offset ", 0), 0u) << e;
      ASSERT_EQ(e.find('\n'), std::string::npos) << e;
    } else {
      ASSERT_NE(f, nullptr) << "prefix of " << n << " bytes: " << e;
    }
  }
}

TEST(GGUFWrite, RandomCorruptionNeverCrashes) {
  GGUFWriter w;
  w.setString("general.architecture", "llama");
  w.set("nested", arrayOf(GGUFValueType::ARRAY,
                          {arrayOf(GGUFValueType::UINT16,
                                   {scalar(GGUFValueType::UINT16)})}));
  w.set("tokens", GGUFValue::ofStrings({"x", "yy"}));
  std::vector<uint8_t> d = makeTensorBytes(GGMLType::Q8_0, {32, 2}, 3);
  w.addTensorData("w", GGMLType::Q8_0, {32, 2}, d.data(), d.size());
  std::string path = tempPath("corrupt.gguf"), err;
  ASSERT_TRUE(w.write(path, err)) << err;
  std::vector<uint8_t> raw = readFile(path);
  std::remove(path.c_str());
  std::mt19937 rng(1234);
  int refused = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> m = raw;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k)
      m[rng() % m.size()] = static_cast<uint8_t>(rng());
    std::string e;
    auto f = GGUFFile::fromMemory(m.data(), m.size(), kName, e);
    if (f == nullptr) {
      ++refused;
      ASSERT_EQ(e.rfind(std::string(kName) + ": at offset ", 0), 0u) << e;
      ASSERT_EQ(e.find('\n'), std::string::npos) << e;
      continue;
    }
    for (const GGUFTensor &t : f->tensors()) {
      ASSERT_GE(t.data, f->base() + f->dataOffset());
      ASSERT_LE(t.data + t.nbytes, f->base() + f->fileSize());
    }
  }
  EXPECT_GT(refused, 1000); // most mutations hit a checked field
}

TEST(GGUFWrite, RefusesInvalidInput) {
  std::string path = tempPath("invalid.gguf"), err;
  auto refused = [&](GGUFWriter &w, const char *what) {
    err.clear();
    EXPECT_FALSE(w.write(path, err)) << what;
    EXPECT_NE(err.find(what), std::string::npos) << err;
    EXPECT_EQ(err.rfind(path, 0), 0u) << err;
    EXPECT_FALSE(fileExists(path));
    EXPECT_FALSE(fileExists(path + ".tmp"));
  };
  {
    GGUFWriter w;
    w.setAlignment(48);
    refused(w, "general.alignment");
  }
  {
    GGUFWriter w;
    w.addTensor("a", GGMLType::F32, {4}, nullptr);
    w.addTensor("a", GGMLType::F32, {4}, nullptr);
    refused(w, "duplicate tensor name");
  }
  {
    GGUFWriter w;
    w.addTensor("q", GGMLType::Q4_0, {48}, nullptr);
    refused(w, "row length 48 is not a multiple of the q4_0 block size 32");
  }
  {
    GGUFWriter w;
    w.addTensor("z", GGMLType::F32, {4, 0}, nullptr);
    refused(w, "dimension <= 0");
  }
  {
    GGUFWriter w;
    w.addTensor("five", GGMLType::F32, {1, 1, 1, 1, 1}, nullptr);
    refused(w, "5 dimensions");
  }
  {
    GGUFWriter w;
    w.addTensor("t", static_cast<GGMLType>(4), {32}, nullptr);
    refused(w, "not a ggml type");
  }
  {
    GGUFWriter w;
    float x[3] = {};
    w.addTensorData("d", GGMLType::F32, {4}, x, sizeof x);
    refused(w, "data has 12 bytes, expected 16");
  }
  {
    GGUFWriter w;
    w.set("mixed", arrayOf(GGUFValueType::UINT32,
                           {GGUFValue::ofU32(1), GGUFValue::ofI32(2)}));
    refused(w, "array element 1 has type int32, expected uint32");
  }
  {
    GGUFWriter w;
    GGUFValue v = scalar(GGUFValueType::BOOL);
    v.u = 3;
    w.set("b", v);
    refused(w, "bool value 3");
  }
}

TEST(GGUFWrite, FailureKeepsExistingFile) {
  std::string path = tempPath("keep.gguf"), err;
  GGUFWriter good;
  good.setString("general.name", "first");
  ASSERT_TRUE(good.write(path, err)) << err;
  GGUFWriter bad;
  bad.setAlignment(3);
  EXPECT_FALSE(bad.write(path, err));
  auto f = GGUFFile::open(path, err);
  ASSERT_NE(f, nullptr) << err;
  std::string name;
  ASSERT_TRUE(f->getString("general.name", name, err)) << err;
  EXPECT_EQ(name, "first");
  std::remove(path.c_str());
}

TEST(GGUFWrite, UnwritableDirectory) {
  GGUFWriter w;
  std::string err;
  EXPECT_FALSE(w.write("/nonexistent-dir/x/out.gguf", err));
  EXPECT_NE(err.find("/nonexistent-dir/x/out.gguf: cannot create a file in "
                     "/nonexistent-dir/x: No such file"),
            std::string::npos)
      << err;
}

// ---------------------------------------------------------------------------
// open() errors and typed getters

TEST(GGUFOpen, Errors) {
  std::string err;
  EXPECT_EQ(GGUFFile::open("/nonexistent/model.gguf", err), nullptr);
  EXPECT_NE(err.find("/nonexistent/model.gguf: cannot open"), std::string::npos)
      << err;
  EXPECT_EQ(GGUFFile::open(testing::TempDir(), err), nullptr);
  EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
  std::string empty = tempPath("empty.gguf");
  { std::ofstream(empty, std::ios::binary); }
  EXPECT_EQ(GGUFFile::open(empty, err), nullptr);
  EXPECT_EQ(err,
            empty + ": at offset 0: file is empty, expected the GGUF magic");
  std::remove(empty.c_str());
  // A malformed file on disk names its path.
  std::string bad = tempPath("bad.gguf");
  {
    std::ofstream out(bad, std::ios::binary);
    out << "GGUF\x01";
  }
  EXPECT_EQ(GGUFFile::open(bad, err), nullptr);
  EXPECT_EQ(err.rfind(bad + ": at offset 4: ", 0), 0u) << err;
  std::remove(bad.c_str());
}

class GGUFGetters : public ::testing::Test {
protected:
  void SetUp() override {
    Bytes b = header(0, 11);
    b.key("u8", GGUFValueType::UINT8).u8(200);
    b.key("neg", GGUFValueType::INT32).put<int32_t>(-3);
    b.key("big", GGUFValueType::UINT64).u64(uint64_t(1) << 40);
    b.key("f64", GGUFValueType::FLOAT64).put(2.5);
    b.key("name", GGUFValueType::STRING).str("llama");
    b.key("on", GGUFValueType::BOOL).u8(1);
    b.key("toks", GGUFValueType::ARRAY).u32(8).u64(2).str("a").str("b");
    b.key("ids", GGUFValueType::ARRAY)
        .u32(10)
        .u64(2)
        .u64(7)
        .u64(uint64_t(1) << 33);
    b.key("small", GGUFValueType::ARRAY)
        .u32(2)
        .u64(2)
        .put<uint16_t>(3)
        .put<uint16_t>(4);
    b.key("halfs", GGUFValueType::ARRAY).u32(12).u64(1).put(0.5);
    b.key("huge", GGUFValueType::FLOAT64).put(-1e300);
    bytes = b;
    std::string err;
    f = parse(bytes, err);
    ASSERT_NE(f, nullptr) << err;
  }
  Bytes bytes;
  std::unique_ptr<GGUFFile> f;
};

TEST_F(GGUFGetters, Integers) {
  std::string err;
  uint32_t u = 0;
  EXPECT_TRUE(f->getU32("u8", u, err));
  EXPECT_EQ(u, 200u);
  EXPECT_FALSE(f->getU32("neg", u, err));
  EXPECT_EQ(err, "crafted.gguf: key 'neg': value -3 does not fit, expected "
                 "0..4294967295");
  EXPECT_FALSE(f->getU32("big", u, err));
  EXPECT_NE(err.find("value 1099511627776 does not fit"), std::string::npos)
      << err;
  EXPECT_FALSE(f->getU32("name", u, err));
  EXPECT_EQ(err,
            "crafted.gguf: key 'name': has type string, expected an integer");
  EXPECT_FALSE(f->getU32("absent", u, err));
  EXPECT_EQ(err, "crafted.gguf: key 'absent': missing, expected an integer");
  u = 77;
  EXPECT_TRUE(f->getOptU32("absent", u, err));
  EXPECT_EQ(u, 77u);
  EXPECT_FALSE(f->getOptU32("name", u, err));
}

TEST_F(GGUFGetters, FloatsStringsBools) {
  std::string err, s;
  float x = 0;
  EXPECT_TRUE(f->getF32("f64", x, err));
  EXPECT_EQ(x, 2.5f);
  EXPECT_TRUE(f->getF32("neg", x, err));
  EXPECT_EQ(x, -3.0f);
  EXPECT_FALSE(f->getF32("on", x, err));
  EXPECT_NE(err.find("has type bool, expected a number"), std::string::npos);
  EXPECT_TRUE(f->getF32("huge", x, err)); // beyond float: -inf, not UB
  EXPECT_EQ(x, -std::numeric_limits<float>::infinity());
  x = 9;
  EXPECT_TRUE(f->getOptF32("absent", x, err));
  EXPECT_EQ(x, 9.0f);
  EXPECT_TRUE(f->getString("name", s, err));
  EXPECT_EQ(s, "llama");
  EXPECT_FALSE(f->getString("u8", s, err));
  EXPECT_NE(err.find("has type uint8, expected string"), std::string::npos);
  s = "kept";
  EXPECT_TRUE(f->getOptString("absent", s, err));
  EXPECT_EQ(s, "kept");
  bool on = false;
  EXPECT_TRUE(f->getBool("on", on, err));
  EXPECT_TRUE(on);
  EXPECT_FALSE(f->getBool("u8", on, err));
}

TEST_F(GGUFGetters, Arrays) {
  std::string err;
  std::vector<std::string> toks;
  EXPECT_TRUE(f->getStringArray("toks", toks, err));
  EXPECT_EQ(toks, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(f->getStringArray("ids", toks, err));
  EXPECT_NE(err.find("has type array of uint64, expected array of string"),
            std::string::npos)
      << err;
  std::vector<int32_t> ids;
  EXPECT_TRUE(f->getI32Array("small", ids, err));
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 4}));
  EXPECT_FALSE(f->getI32Array("ids", ids, err));
  EXPECT_NE(err.find("element 1 does not fit in int32"), std::string::npos)
      << err;
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 4})); // untouched on failure
  EXPECT_FALSE(f->getI32Array("toks", ids, err));
  std::vector<float> fl;
  EXPECT_TRUE(f->getF32Array("halfs", fl, err));
  EXPECT_EQ(fl, (std::vector<float>{0.5f}));
  EXPECT_TRUE(f->getF32Array("small", fl, err));
  EXPECT_EQ(fl, (std::vector<float>{3.0f, 4.0f}));
  EXPECT_FALSE(f->getF32Array("toks", fl, err));
  EXPECT_FALSE(f->getF32Array("name", fl, err));
  EXPECT_NE(err.find("has type string, expected array of numbers"),
            std::string::npos);
}

TEST(GGUFValueTest, Conversions) {
  int64_t i = 0;
  double d = 0;
  EXPECT_TRUE(GGUFValue::ofU32(7).asInt(i));
  EXPECT_EQ(i, 7);
  EXPECT_FALSE(GGUFValue::ofU64(std::numeric_limits<uint64_t>::max()).asInt(i));
  EXPECT_TRUE(GGUFValue::ofI32(-2).asDouble(d));
  EXPECT_EQ(d, -2.0);
  EXPECT_FALSE(GGUFValue::ofString("1").asInt(i));
  EXPECT_FALSE(GGUFValue::ofBool(true).isInteger());
  EXPECT_TRUE(GGUFValue::ofU64(1).isInteger());
  EXPECT_FALSE(GGUFValue::ofF32(1).isInteger());
  EXPECT_STREQ(valueTypeName(GGUFValueType::FLOAT64), "float64");
  EXPECT_STREQ(valueTypeName(static_cast<GGUFValueType>(77)), "unknown");
}

// A view reads as its file with tensors dropped, added or replaced and keys
// set, owns what its added tensors' bytes lie in, and refuses a name twice.
TEST(GGUFView, AddsTensorsAndKeys) {
  GGUFWriter w;
  w.setString("general.architecture", "llama");
  w.setF32("k.f", 1.5f);
  const std::vector<float> a = {1, 2, 3, 4}, b = {5, 6};
  w.addTensorData("a", GGMLType::F32, {4}, a.data(), sizeof(float) * 4);
  w.addTensorData("b", GGMLType::F32, {2}, b.data(), sizeof(float) * 2);
  std::string path = tempPath("view.gguf"), err;
  ASSERT_TRUE(w.write(path, err)) << err;
  auto keep = std::make_shared<std::vector<float>>(std::vector<float>{7, 8});
  GGUFTensor c;
  c.name = "c";
  c.nDims = 1;
  c.ne[0] = 2;
  c.nbytes = 8;
  c.data = reinterpret_cast<const uint8_t *>(keep->data());
  std::vector<GGUFKV> kvs{{"k.f", GGUFValue::ofF32(0.f)},
                          {"k.new", GGUFValue::ofU32(9)}};
  auto f = GGUFFile::open(path, err);
  ASSERT_TRUE(f) << err;
  const uint8_t *mapped = f->base();
  auto v = GGUFFile::view(
      std::move(f), [](const GGUFTensor &t) { return t.name != "b"; }, {c}, kvs,
      keep, err);
  ASSERT_TRUE(v) << err;
  keep.reset();              // the view holds the added bytes
  std::remove(path.c_str()); // and the mapping of its file
  EXPECT_EQ(v->path(), path);
  EXPECT_EQ(v->base(), mapped);
  ASSERT_EQ(v->tensors().size(), 2u);
  EXPECT_EQ(v->tensors()[0].name, "a");
  EXPECT_EQ(v->tensors()[1].name, "c");
  EXPECT_EQ(v->tensor("b"), nullptr);
  ASSERT_TRUE(v->tensor("a") && v->tensor("c"));
  EXPECT_EQ(std::memcmp(v->tensor("a")->data, a.data(), 16), 0);
  EXPECT_EQ(reinterpret_cast<const float *>(v->tensor("c")->data)[1], 8.f);
  float x = -1;
  uint32_t u = 0;
  std::string arch;
  EXPECT_TRUE(v->getF32("k.f", x, err) && x == 0.f) << err;
  EXPECT_TRUE(v->getU32("k.new", u, err) && u == 9) << err;
  EXPECT_TRUE(v->getString("general.architecture", arch, err)) << err;
  EXPECT_EQ(v->metadata().size(), 3u); // architecture, k.f, k.new
  // A view of a view, adding a name it holds: refused.
  auto twice = GGUFFile::view(
      std::move(v), [](const GGUFTensor &) { return true; }, {c}, {}, nullptr,
      err);
  EXPECT_EQ(twice, nullptr);
  EXPECT_NE(err.find("tensor 'c' would be held twice"), std::string::npos)
      << err;
}

} // namespace
