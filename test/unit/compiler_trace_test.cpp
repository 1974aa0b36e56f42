// Tests of the trace format: round trips with and without samples, every
// truncation of a valid file, one crafted file per kind of malformation, the
// model-mismatch messages and the model identity hash.
#include "compiler/Trace.h"

#include "runtime/gguf.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

using namespace pinfer;

namespace {

std::string tempPath(const std::string &leaf) {
  return testing::TempDir() + "/pinfer_trace_" + std::to_string(getpid()) + "_" + leaf;
}

Trace smallTrace(bool withSamples) {
  Trace t;
  t.modelIdentity = "0123456789abcdef";
  t.nLayer = 3;
  t.nFF = 20;
  t.nTokens = 100;
  t.activation = "silu";
  t.targetSparsity = 0.9f;
  t.thresholds = {0.25f, 0.5f, 0.125f};
  std::mt19937 rng(7);
  t.fired.assign(t.nLayer, std::vector<uint64_t>(t.nFF));
  for (auto &layer : t.fired)
    for (auto &c : layer)
      c = rng() % (t.nTokens + 1);
  if (withSamples) {
    t.nEmbd = 8;
    t.samples.resize(t.nLayer);
    for (uint32_t l = 0; l < t.nLayer; ++l)
      for (uint32_t s = 0; s < l + 1; ++s) {
        TraceSample x;
        for (uint32_t i = 0; i < t.nEmbd; ++i)
          x.input.push_back(float(rng() % 1000) / 7.0f);
        x.mask.resize((t.nFF + 7) / 8);
        for (auto &b : x.mask)
          b = uint8_t(rng());
        x.mask.back() &= 0x0F; // 20 neurons: the top 4 bits are padding
        t.samples[l].push_back(x);
      }
  }
  return t;
}

std::vector<uint8_t> fileBytes(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

std::vector<uint8_t> encode(const Trace &t) {
  std::string path = tempPath("encode.trace"), err;
  EXPECT_TRUE(writeTrace(path, t, err)) << err;
  return fileBytes(path);
}

template <typename T> void poke(std::vector<uint8_t> &b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

std::string decodeError(const std::vector<uint8_t> &b) {
  Trace t;
  std::string err;
  EXPECT_FALSE(readTraceFromMemory(b.data(), b.size(), "bad.trace", t, err));
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  EXPECT_EQ(err.rfind("bad.trace: ", 0), 0u) << err;
  return err;
}

// Section table entry i starts at 16 + 24 * i: id, flags, offset, size.
size_t entry(int i) { return 16 + 24 * size_t(i); }

} // namespace

TEST(Trace, RoundTripWithSamples) {
  Trace t = smallTrace(true);
  std::string path = tempPath("rt.trace"), err;
  ASSERT_TRUE(writeTrace(path, t, err)) << err;
  Trace r;
  ASSERT_TRUE(readTrace(path, r, err)) << err;
  EXPECT_EQ(r.version, Trace::kVersion);
  EXPECT_EQ(r.modelIdentity, t.modelIdentity);
  EXPECT_EQ(r.nLayer, t.nLayer);
  EXPECT_EQ(r.nFF, t.nFF);
  EXPECT_EQ(r.nEmbd, t.nEmbd);
  EXPECT_EQ(r.nTokens, t.nTokens);
  EXPECT_EQ(r.activation, "silu");
  EXPECT_EQ(r.targetSparsity, 0.9f);
  EXPECT_EQ(r.thresholds, t.thresholds);
  EXPECT_EQ(r.fired, t.fired);
  ASSERT_EQ(r.samples.size(), 3u);
  for (uint32_t l = 0; l < 3; ++l) {
    ASSERT_EQ(r.samples[l].size(), l + 1);
    for (size_t s = 0; s < r.samples[l].size(); ++s) {
      EXPECT_EQ(r.samples[l][s].input, t.samples[l][s].input);
      EXPECT_EQ(r.samples[l][s].mask, t.samples[l][s].mask);
    }
  }
  EXPECT_EQ(r.samples[2][1].fired(3), t.samples[2][1].fired(3));
  EXPECT_DOUBLE_EQ(r.frequency(1, 4), double(t.fired[1][4]) / 100.0);
  // no temporary left behind
  EXPECT_TRUE(fileBytes(path + ".tmp").empty());
}

TEST(Trace, RoundTripWithoutSamplesOrThresholds) {
  Trace t = smallTrace(false);
  t.thresholds.clear();
  t.activation = "relu";
  t.targetSparsity = 0;
  std::string path = tempPath("plain.trace"), err;
  ASSERT_TRUE(writeTrace(path, t, err)) << err;
  Trace r;
  ASSERT_TRUE(readTrace(path, r, err)) << err;
  EXPECT_EQ(r.fired, t.fired);
  EXPECT_TRUE(r.thresholds.empty());
  EXPECT_TRUE(r.samples.empty());
  EXPECT_EQ(r.activation, "relu");
}

TEST(Trace, EveryTruncationFailsCleanly) {
  std::vector<uint8_t> b = encode(smallTrace(true));
  ASSERT_GT(b.size(), 100u);
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + n);
    Trace t;
    std::string err;
    EXPECT_FALSE(readTraceFromMemory(cut.data(), cut.size(), "cut.trace", t,
                                     err))
        << "prefix " << n;
    EXPECT_EQ(err.rfind("cut.trace: at offset ", 0), 0u) << err;
  }
}

TEST(Trace, BadMagic) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  b[0] = 'G';
  EXPECT_NE(decodeError(b).find("bad magic"), std::string::npos);
}

TEST(Trace, UnknownVersion) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  poke<uint32_t>(b, 8, 99);
  std::string err = decodeError(b);
  EXPECT_NE(err.find("at offset 8: trace version 99, expected 1"),
            std::string::npos)
      << err;
}

TEST(Trace, AbsurdSectionCount) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  poke<uint32_t>(b, 12, 0x7fffffff);
  EXPECT_NE(decodeError(b).find("section count"), std::string::npos);
}

TEST(Trace, SectionPastEndOfFile) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  poke<uint64_t>(b, entry(1) + 16, uint64_t(1) << 40); // fired size
  std::string err = decodeError(b);
  EXPECT_NE(err.find("fired section"), std::string::npos) << err;
  EXPECT_NE(err.find("runs past the end"), std::string::npos) << err;
}

TEST(Trace, OffsetOverflowDoesNotWrap) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  poke<uint64_t>(b, entry(1) + 8, ~uint64_t(0) - 4); // fired offset
  EXPECT_NE(decodeError(b).find("runs past the end"), std::string::npos);
}

TEST(Trace, DuplicateSection) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  poke<uint32_t>(b, entry(1), 1); // fired entry now claims to be meta
  EXPECT_NE(decodeError(b).find("duplicate meta section"), std::string::npos);
}

TEST(Trace, MissingFiredSection) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  poke<uint32_t>(b, entry(1), 77); // unknown ids are skipped
  EXPECT_NE(decodeError(b).find("no fired section"), std::string::npos);
}

TEST(Trace, HugeShapeClaimAllocatesNothing) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  uint64_t meta;
  std::memcpy(&meta, b.data() + entry(0) + 8, 8);
  poke<uint32_t>(b, meta, 0xffffffff);     // n_layer
  poke<uint32_t>(b, meta + 4, 0xffffffff); // n_ff
  std::string err = decodeError(b);
  EXPECT_NE(err.find("fired section is"), std::string::npos) << err;
  EXPECT_NE(err.find("n_layer 4294967295 x n_ff 4294967295"),
            std::string::npos)
      << err;
}

TEST(Trace, FiredCountAboveTokenCount) {
  Trace t = smallTrace(false);
  std::vector<uint8_t> b = encode(t);
  uint64_t fired;
  std::memcpy(&fired, b.data() + entry(1) + 8, 8);
  poke<uint64_t>(b, fired + 8 * (20 + 5), 101); // layer 1, neuron 5
  std::string err = decodeError(b);
  EXPECT_NE(err.find("layer 1 neuron 5 fired 101 times, expected at most the "
                     "token count 100"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("at offset " + std::to_string(fired + 8 * 25)),
            std::string::npos)
      << err;
}

TEST(Trace, ZeroLayers) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  uint64_t meta;
  std::memcpy(&meta, b.data() + entry(0) + 8, 8);
  poke<uint32_t>(b, meta, 0);
  EXPECT_NE(decodeError(b).find("expected both positive"), std::string::npos);
}

TEST(Trace, BadSparsity) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  uint64_t meta;
  std::memcpy(&meta, b.data() + entry(0) + 8, 8);
  poke<float>(b, meta + 24, 1.5f);
  EXPECT_NE(decodeError(b).find("target sparsity"), std::string::npos);
}

TEST(Trace, OverlongString) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  uint64_t meta;
  std::memcpy(&meta, b.data() + entry(0) + 8, 8);
  poke<uint32_t>(b, meta + 32, 1u << 30); // activation name length
  EXPECT_NE(decodeError(b).find("activation name length"), std::string::npos);
}

TEST(Trace, ThresholdCountMismatch) {
  std::vector<uint8_t> b = encode(smallTrace(false));
  poke<uint64_t>(b, entry(2) + 16, 8); // two floats for three layers
  EXPECT_NE(decodeError(b).find("expected 3 floats"), std::string::npos);
}

TEST(Trace, SampleBytesMismatch) {
  Trace t = smallTrace(true);
  std::vector<uint8_t> b = encode(t);
  uint64_t at;
  std::memcpy(&at, b.data() + entry(3) + 8, 8);
  poke<uint32_t>(b, at, 2); // layer 0 claims 2 samples, holds 1
  std::string err = decodeError(b);
  EXPECT_NE(err.find("expected 7 samples of 35 bytes"), std::string::npos)
      << err;
}

TEST(Trace, MissingFileAndEmptyFile) {
  Trace t;
  std::string err;
  EXPECT_FALSE(readTrace(tempPath("does-not-exist"), t, err));
  EXPECT_NE(err.find("cannot open"), std::string::npos);
  std::string empty = tempPath("empty.trace");
  std::ofstream(empty).close();
  EXPECT_FALSE(readTrace(empty, t, err));
  EXPECT_NE(err.find("empty file"), std::string::npos);
}

TEST(Trace, WriterRefusesInconsistentTraces) {
  std::string err;
  Trace t = smallTrace(false);
  t.fired[2][3] = t.nTokens + 1;
  EXPECT_FALSE(writeTrace(tempPath("bad.trace"), t, err));
  EXPECT_NE(err.find("layer 2 neuron 3 fired"), std::string::npos) << err;
  t = smallTrace(false);
  t.fired.pop_back();
  EXPECT_FALSE(writeTrace(tempPath("bad.trace"), t, err));
  EXPECT_NE(err.find("fired has 2 layers, expected 3"), std::string::npos);
  t = smallTrace(true);
  t.samples[1][0].mask.pop_back();
  EXPECT_FALSE(writeTrace(tempPath("bad.trace"), t, err));
  EXPECT_NE(err.find("a sample of layer 1"), std::string::npos);
}

TEST(Trace, MismatchMessages) {
  Trace t = smallTrace(false);
  t.nLayer = 32;
  std::string err;
  EXPECT_FALSE(checkTraceMatchesModel(t, "", 26, 20, err, "model.trace",
                                      "model.gguf"));
  EXPECT_EQ(err, "model.trace was recorded for a model with 32 layers; "
                 "model.gguf has 26");
  t.nLayer = 3;
  EXPECT_FALSE(checkTraceMatchesModel(t, "", 3, 64, err, "model.trace",
                                      "model.gguf"));
  EXPECT_EQ(err, "model.trace was recorded for a model with n_ff 20; "
                 "model.gguf has 64");
  EXPECT_FALSE(checkTraceMatchesModel(t, "ffffffffffffffff", 3, 20, err));
  EXPECT_NE(err.find("different weights"), std::string::npos);
  EXPECT_TRUE(checkTraceMatchesModel(t, t.modelIdentity, 3, 20, err));
  EXPECT_TRUE(checkTraceMatchesModel(t, "", 3, 20, err));
}

TEST(Trace, ModelIdentityTracksShapesAndBytes) {
  auto write = [](const std::string &path, float poke, int64_t rows,
                  size_t pokeAt) {
    GGUFWriter w;
    w.setString("general.architecture", "llama");
    std::vector<float> a(size_t(64) * rows, 1.0f);
    a[pokeAt] = poke;
    w.addTensorData("a.weight", GGMLType::F32, {64, rows}, a.data(),
                    a.size() * 4);
    std::vector<float> b(16, 2.0f);
    w.addTensorData("b.weight", GGMLType::F32, {16}, b.data(), 64);
    std::string err;
    EXPECT_TRUE(w.write(path, err)) << err;
  };
  std::string err;
  auto identity = [&](const std::string &path) {
    auto f = GGUFFile::open(path, err);
    EXPECT_NE(f, nullptr) << err;
    return f ? modelIdentity(*f) : std::string();
  };
  // 64 x 64 f32 = 16 KiB: the first and last 4 KiB are hashed.
  write(tempPath("m1.gguf"), 1.0f, 64, 0);
  write(tempPath("m2.gguf"), 1.0f, 64, 0);
  write(tempPath("m3.gguf"), 5.0f, 64, 0);      // first bytes differ
  write(tempPath("m4.gguf"), 5.0f, 64, 4095);   // last bytes differ
  write(tempPath("m5.gguf"), 1.0f, 65, 0);      // shape differs
  std::string i1 = identity(tempPath("m1.gguf"));
  EXPECT_EQ(i1.size(), 16u);
  EXPECT_EQ(i1.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(i1, identity(tempPath("m2.gguf")));
  EXPECT_NE(i1, identity(tempPath("m3.gguf")));
  EXPECT_NE(i1, identity(tempPath("m4.gguf")));
  EXPECT_NE(i1, identity(tempPath("m5.gguf")));
}
