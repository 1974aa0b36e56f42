// Tests the AMX tile products (runtime/amx_tiles.h): each row and token
// bitwise the one-row, one-token AVX-512 kernel's, through matvecRows with
// tile groups, leftover tokens and leftover rows, and the same batch with
// the tiles turned off. Skipped with one line on a CPU without AMX.
#include "runtime/amx_tiles.h"
#include "runtime/ggml_types.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/quant_blocks.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

std::vector<float> randomVector(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

// Restores the tiles' switch however a test ends.
struct AmxSwitch {
  ~AmxSwitch() { setTileMode(TileMode::Amx); }
};

TEST(AmxTiles, BitwiseTheOneTokenKernel) {
  if (!tilesActive()) {
    std::printf("[ SKIPPED  ] no tiles here, AMX or VNNI (kernels: %s)\n",
                kernelIsaName());
    GTEST_SKIP();
  }
  if (tileMode() != TileMode::Amx)
    std::printf("[ NOTE     ] no AMX here: the VNNI tiles only\n");
  AmxSwitch restore;
  // 37 tokens: two tile groups and 5 left over for the vector kernels; 45:
  // a third group of 13 filled up with zeros; 7: one such group alone.
  // Rows 3..46 of 48: two tile groups of 16 from an unaligned start and 12
  // left over.
  const int64_t nRows = 48, r0 = 3, r1 = 47;
  // Q5_0, Q8_0 and Q4_0 also with 640 values (20 blocks: the last group of
  // eight lanes holds four).
  for (GGMLType type : {GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K,
                        GGMLType::Q5_0, GGMLType::Q8_0, GGMLType::Q4_0})
    for (int nTok : {37, 45, 7})
      for (int64_t cols : {int64_t(256), int64_t(768), int64_t(640)})
        for (bool raw : {false, true}) {
          if (cols % int64_t(typeTraits(type)->blockSize) != 0 ||
              (raw && type != GGMLType::Q6_K))
            continue;
          ASSERT_TRUE(amxReads(type));
          // Rows of mixed magnitudes, activations with outliers, so that
          // scales and mins differ from block to block.
          std::vector<float> values = randomVector(size_t(cols) * nRows, 7);
          for (size_t i = 0; i < values.size(); i += 97)
            values[i] *= 12.f;
          const size_t rb = rowBytes(type, cols);
          std::vector<uint8_t> data(rb * nRows);
          for (int64_t r = 0; r < nRows; ++r)
            ASSERT_TRUE(quantizeRow(type, values.data() + r * cols,
                                    data.data() + r * rb, cols));
          // Q6_K also from random bytes (each block's d kept): every scale,
          // -128 included, meets every quant, so the scaled values reach both
          // ends of their range (4096 and -4064) that the tiles split.
          if (raw) {
            std::mt19937 bytes(uint32_t(nTok * 1000 + cols));
            for (size_t b = 0; b < data.size(); b += sizeof(BlockQ6_K))
              for (size_t i = 0; i < 208; ++i)
                data[b + i] = uint8_t(bytes());
          }
          Weight w;
          w.type = type;
          w.rows = nRows;
          w.cols = cols;
          w.rowBytes = rb;
          w.data = data.data();
          std::vector<float> x = randomVector(size_t(cols) * nTok, 8);
          for (size_t i = 0; i < x.size(); i += 61)
            x[i] *= 20.f;

          // The AMX tiles where the CPU has them, and their VNNI form.
          std::vector<float> tiled(size_t(nRows) * nTok, 0.f),
              vnni(tiled.size(), 0.f), plain(tiled.size(), 0.f),
              single(tiled.size(), 0.f);
          setTileMode(TileMode::Amx);
          matvecRows(w, x.data(), cols, tiled.data(), nRows, nTok, r0, r1);
          setTileMode(TileMode::Vnni);
          ASSERT_EQ(tileMode(), TileMode::Vnni);
          matvecRows(w, x.data(), cols, vnni.data(), nRows, nTok, r0, r1);
          setTileMode(TileMode::Off);
          matvecRows(w, x.data(), cols, plain.data(), nRows, nTok, r0, r1);
          for (int t = 0; t < nTok; ++t)
            matvecRows(w, x.data() + t * cols, cols, single.data() + t * nRows,
                       nRows, 1, r0, r1);
          setTileMode(TileMode::Amx);
          int differ = 0;
          for (size_t i = 0; i < tiled.size(); ++i)
            if (std::memcmp(&tiled[i], &single[i], sizeof(float)) != 0 ||
                std::memcmp(&vnni[i], &single[i], sizeof(float)) != 0 ||
                std::memcmp(&plain[i], &single[i], sizeof(float)) != 0)
              if (differ++ < 3)
                ADD_FAILURE() << typeName(type) << " n=" << cols << " tokens "
                              << nTok << ": token " << i / nRows << " row "
                              << i % nRows << ": tiles " << tiled[i]
                              << ", VNNI tiles " << vnni[i] << ", AVX-512 rows "
                              << plain[i] << ", one token " << single[i];
          EXPECT_EQ(differ, 0) << typeName(type) << " n=" << cols << " tokens "
                               << nTok << (raw ? " (random bytes)" : "");
          // Against the dequantised rows in double: the tiles compute the
          // product, not just something consistent.
          std::vector<float> row(cols);
          std::vector<BlockQ8Act> xq(cols / QK8_0);
          double err = 0, norm = 0;
          for (int t = 0; t < nTok; ++t) {
            quantizeActQ8(x.data() + t * cols, xq.data(), cols);
            for (int64_t r = r0; r < r1; ++r) {
              rowToF32(type, w.row(r), row.data(), cols);
              double ref = 0;
              for (int64_t c = 0; c < cols; ++c) {
                const BlockQ8Act &b = xq[c / QK8_0];
                ref += double(row[c]) * b.d * b.qs[c % QK8_0];
              }
              err += std::abs(ref - tiled[size_t(t) * nRows + r]);
              norm += std::abs(ref);
            }
          }
          EXPECT_LT(err / norm, 1e-5) << typeName(type) << " n=" << cols;
        }
}

// Rows outside [r0, r1) and tokens of a batch are never written, by the
// AMX tiles (where the CPU has them) or their VNNI form.
TEST(AmxTiles, WritesOnlyItsRows) {
  if (!tilesActive()) {
    std::printf("[ SKIPPED  ] no tiles here, AMX or VNNI (kernels: %s)\n",
                kernelIsaName());
    GTEST_SKIP();
  }
  AmxSwitch restore;
  const int64_t cols = 512, nRows = 40;
  const int nTok = 16;
  std::vector<float> values = randomVector(size_t(cols) * nRows, 9);
  const size_t rb = rowBytes(GGMLType::Q4_K, cols);
  std::vector<uint8_t> data(rb * nRows);
  for (int64_t r = 0; r < nRows; ++r)
    ASSERT_TRUE(quantizeRow(GGMLType::Q4_K, values.data() + r * cols,
                            data.data() + r * rb, cols));
  Weight w;
  w.type = GGMLType::Q4_K;
  w.rows = nRows;
  w.cols = cols;
  w.rowBytes = rb;
  w.data = data.data();
  std::vector<float> x = randomVector(size_t(cols) * nTok, 10);
  const float kUntouched = -12345.f;
  for (TileMode mode : {TileMode::Amx, TileMode::Vnni}) {
    setTileMode(mode);
    std::vector<float> y(size_t(nRows + 3) * nTok, kUntouched);
    matvecRows(w, x.data(), cols, y.data(), nRows + 3, nTok, 4, 36);
    for (int t = 0; t < nTok; ++t)
      for (int64_t r = 0; r < nRows + 3; ++r) {
        const bool inside = r >= 4 && r < 36;
        EXPECT_EQ(y[size_t(t) * (nRows + 3) + r] == kUntouched, !inside)
            << "mode " << int(tileMode()) << " token " << t << " row " << r;
      }
  }
}

} // namespace
