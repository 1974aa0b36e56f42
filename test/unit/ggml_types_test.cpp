// Tests of the ggml type table and the conversions: half and bfloat16
// against independent oracles (the compiler's own _Float16 where it has one,
// exact double arithmetic otherwise), and Q8_0 / Q4_0 against blocks worked
// out by hand from ggml's reference quantiser.
#include "runtime/ggml_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float fromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

bool isHalfNaN(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

TEST(GGMLTypes, TableMatchesGGML) {
  struct Row {
    uint32_t id;
    const char *name;
    uint32_t block, bytes;
    bool computable;
  };
  // ggml.h numbering and ggml-common.h block struct sizes.
  const Row rows[] = {
      {0, "f32", 1, 4, true},          {1, "f16", 1, 2, true},
      {2, "q4_0", 32, 18, true},       {3, "q4_1", 32, 20, true},
      {6, "q5_0", 32, 22, true},      {7, "q5_1", 32, 24, true},
      {8, "q8_0", 32, 34, true},       {9, "q8_1", 32, 36, false},
      {10, "q2_K", 256, 84, true},    {11, "q3_K", 256, 110, true},
      {12, "q4_K", 256, 144, true},   {13, "q5_K", 256, 176, true},
      {14, "q6_K", 256, 210, true},   {15, "q8_K", 256, 292, false},
      {16, "iq2_xxs", 256, 66, false}, {17, "iq2_xs", 256, 74, false},
      {18, "iq3_xxs", 256, 98, false}, {19, "iq1_s", 256, 50, false},
      {20, "iq4_nl", 32, 18, false},   {21, "iq3_s", 256, 110, false},
      {22, "iq2_s", 256, 82, false},   {23, "iq4_xs", 256, 136, false},
      {24, "i8", 1, 1, false},         {25, "i16", 1, 2, false},
      {26, "i32", 1, 4, false},        {27, "i64", 1, 8, false},
      {28, "f64", 1, 8, false},        {29, "iq1_m", 256, 56, false},
      {30, "bf16", 1, 2, true},        {34, "tq1_0", 256, 54, false},
      {35, "tq2_0", 256, 66, false},   {39, "mxfp4", 32, 17, false},
      {40, "nvfp4", 64, 36, false},    {41, "q1_0", 128, 18, false},
  };
  size_t known = 0;
  for (uint32_t id = 0; id < 64; ++id)
    known += typeTraits(id) != nullptr;
  EXPECT_EQ(known, sizeof rows / sizeof rows[0]);
  for (const Row &r : rows) {
    const TypeTraits *info = typeTraits(r.id);
    ASSERT_NE(info, nullptr) << r.name;
    EXPECT_STREQ(info->name, r.name);
    EXPECT_EQ(info->blockSize, r.block) << r.name;
    EXPECT_EQ(info->typeSize, r.bytes) << r.name;
    EXPECT_EQ(info->computable, r.computable) << r.name;
    GGMLType parsed;
    ASSERT_TRUE(parseTypeName(r.name, parsed)) << r.name;
    EXPECT_EQ(static_cast<uint32_t>(parsed), r.id);
    EXPECT_STREQ(typeName(parsed), r.name);
  }
  for (uint32_t retired : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u})
    EXPECT_EQ(typeTraits(retired), nullptr) << retired;
  EXPECT_STREQ(typeName(static_cast<GGMLType>(5)), "unknown");
}

TEST(GGMLTypes, ParseTypeName) {
  GGMLType t = GGMLType::F32;
  EXPECT_TRUE(parseTypeName("Q8_0", t));
  EXPECT_EQ(t, GGMLType::Q8_0);
  EXPECT_TRUE(parseTypeName("BF16", t));
  EXPECT_EQ(t, GGMLType::BF16);
  EXPECT_TRUE(parseTypeName("Q4_k", t));
  EXPECT_EQ(t, GGMLType::Q4_K);
  t = GGMLType::F16;
  EXPECT_FALSE(parseTypeName("q8", t));
  EXPECT_FALSE(parseTypeName("q8_00", t));
  EXPECT_FALSE(parseTypeName("", t));
  EXPECT_FALSE(parseTypeName(nullptr, t));
  EXPECT_EQ(t, GGMLType::F16);
}

TEST(GGMLTypes, RowBytes) {
  EXPECT_EQ(rowBytes(GGMLType::F32, 4096), 16384u);
  EXPECT_EQ(rowBytes(GGMLType::F16, 3), 6u);
  EXPECT_EQ(rowBytes(GGMLType::Q8_0, 4096), 128u * 34);
  EXPECT_EQ(rowBytes(GGMLType::Q4_0, 64), 36u);
  EXPECT_EQ(rowBytes(GGMLType::Q4_K, 4096), 16u * 144);
  EXPECT_EQ(rowBytes(GGMLType::Q8_0, 33), 0u); // not a whole block
  EXPECT_EQ(rowBytes(static_cast<GGMLType>(4), 32), 0u);
}

// ---------------------------------------------------------------------------
// Half precision

TEST(GGMLTypes, Fp16KnownValues) {
  EXPECT_EQ(f32ToFp16(1.0f), 0x3c00);
  EXPECT_EQ(f32ToFp16(-2.0f), 0xc000);
  EXPECT_EQ(f32ToFp16(0.0f), 0x0000);
  EXPECT_EQ(f32ToFp16(-0.0f), 0x8000);
  EXPECT_EQ(f32ToFp16(65504.0f), 0x7bff);  // largest finite
  EXPECT_EQ(f32ToFp16(65519.99f), 0x7bff); // below the midpoint
  EXPECT_EQ(f32ToFp16(65520.0f), 0x7c00);  // midpoint: ties to inf
  EXPECT_EQ(f32ToFp16(1e10f), 0x7c00);
  EXPECT_EQ(f32ToFp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(f32ToFp16(std::ldexp(1.0f, -14)), 0x0400); // smallest normal
  EXPECT_EQ(f32ToFp16(std::ldexp(1.0f, -24)), 0x0001); // smallest subnormal
  EXPECT_EQ(f32ToFp16(std::ldexp(1.0f, -25)), 0x0000); // tie: to even (0)
  EXPECT_EQ(f32ToFp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32ToFp16(std::ldexp(3.0f, -25)), 0x0002);    // 1.5 ulp: tie to 2
  EXPECT_EQ(f32ToFp16(std::ldexp(5.0f, -25)), 0x0002);    // 2.5 ulp: tie to 2
  EXPECT_EQ(f32ToFp16(std::ldexp(1023.5f, -24)), 0x0400); // rounds up to normal
  // Ties to even in the normal range: 1 + 2^-11 is halfway to 1 + 2^-10.
  EXPECT_EQ(f32ToFp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32ToFp16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
  EXPECT_EQ(f32ToFp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)),
            0x3c01);
  EXPECT_EQ(fp16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16ToF32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16ToF32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(fp16ToF32(0x7c00)));
  EXPECT_TRUE(std::signbit(fp16ToF32(0x8000)));
  // NaN stays NaN both ways, sign and quietness kept, and a payload only in
  // the low f32 bits does not become infinity.
  EXPECT_TRUE(std::isnan(fp16ToF32(0x7e00)));
  EXPECT_TRUE(std::isnan(fp16ToF32(0x7c01)));
  EXPECT_TRUE(isHalfNaN(f32ToFp16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(isHalfNaN(f32ToFp16(fromBits(0x7f800001))));
  EXPECT_EQ(f32ToFp16(fromBits(0xffc00000)) & 0x8000, 0x8000);
}

TEST(GGMLTypes, Fp16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16ToF32(static_cast<uint16_t>(h));
    uint16_t back = f32ToFp16(f);
    if (isHalfNaN(static_cast<uint16_t>(h))) {
      EXPECT_TRUE(std::isnan(f)) << h;
      // Quiet NaNs come back bit for bit; signalling ones come back quiet.
      EXPECT_EQ(back, h | 0x200) << h;
    } else {
      ASSERT_EQ(back, h) << "half 0x" << std::hex << h;
    }
  }
}

// Reference f32 -> half by exact search: the nearest half by value (computed
// in double, which holds every f32 and half exactly), ties to the even
// encoding, overflowing to infinity past the midpoint above 65504.
uint16_t referenceFp16(float f) {
  double x = std::fabs(static_cast<double>(f));
  uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (x >= 65520.0)
    return sign | 0x7c00;
  // Halves are monotonic in their encoding: binary search the last one <= x.
  uint32_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    uint32_t mid = (lo + hi + 1) / 2;
    if (static_cast<double>(fp16ToF32(static_cast<uint16_t>(mid))) <= x)
      lo = mid;
    else
      hi = mid - 1;
  }
  double below = fp16ToF32(static_cast<uint16_t>(lo));
  if (below == x || lo == 0x7bff)
    return sign | static_cast<uint16_t>(lo);
  double above = fp16ToF32(static_cast<uint16_t>(lo + 1));
  double dl = x - below, du = above - x;
  uint32_t pick = dl < du ? lo : du < dl ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1);
  return sign | static_cast<uint16_t>(pick);
}

TEST(GGMLTypes, F32ToFp16MatchesExactRounding) {
  // Every f32 in the half range with a stride, plus random bit patterns.
  std::mt19937 rng(42);
  auto check = [](float f) {
    if (std::isnan(f))
      return;
    ASSERT_EQ(f32ToFp16(f), referenceFp16(f))
        << "f32 0x" << std::hex << bits(f);
  };
  for (uint32_t u = 0x33000000u; u < 0x47800000u; u += 0x1f1) {
    check(fromBits(u));
    check(fromBits(u | 0x80000000u));
  }
  for (int k = 0; k < 200000; ++k)
    check(fromBits(rng()));
}

#if defined(__FLT16_MAX__)
TEST(GGMLTypes, Fp16MatchesCompilerFloat16) {
  for (uint32_t u = 0; u < 0xffffffffu - 0x3ff; u += 0x3ff) {
    float f = fromBits(u);
    if (std::isnan(f))
      continue;
    _Float16 h = static_cast<_Float16>(f);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(f32ToFp16(f), hb) << "f32 0x" << std::hex << u;
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    if (isHalfNaN(static_cast<uint16_t>(h)))
      continue;
    uint16_t hb = static_cast<uint16_t>(h);
    _Float16 x;
    std::memcpy(&x, &hb, 2);
    ASSERT_EQ(bits(fp16ToF32(hb)), bits(static_cast<float>(x))) << h;
  }
}
#endif

// ---------------------------------------------------------------------------
// bfloat16

uint16_t referenceBf16(float f) {
  uint32_t u = bits(f);
  uint16_t lo = static_cast<uint16_t>(u >> 16);
  if ((u & 0xffff) == 0)
    return lo;
  // Candidates: truncation (toward zero) and the next encoding away from
  // zero; 0x7f80 above the largest finite counts as 2^128 for the midpoint.
  auto value = [](uint16_t h) {
    if ((h & 0x7fff) == 0x7f80)
      return std::ldexp(1.0, 128);
    return std::fabs(static_cast<double>(bf16ToF32(h)));
  };
  double x = std::fabs(static_cast<double>(f));
  double dl = x - value(lo), du = value(static_cast<uint16_t>(lo + 1)) - x;
  if (dl < du || (dl == du && lo % 2 == 0))
    return lo;
  return static_cast<uint16_t>(lo + 1);
}

TEST(GGMLTypes, Bf16) {
  EXPECT_EQ(f32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(f32ToBf16(-1.0f), 0xbf80);
  EXPECT_EQ(f32ToBf16(fromBits(0x3f808000)), 0x3f80); // tie, even stays
  EXPECT_EQ(f32ToBf16(fromBits(0x3f818000)), 0x3f82); // tie, odd rounds up
  EXPECT_EQ(f32ToBf16(fromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(f32ToBf16(std::numeric_limits<float>::max()), 0x7f80); // overflow
  EXPECT_EQ(f32ToBf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32ToBf16(fromBits(0x00000001)), 0x0000); // subnormal rounds down
  EXPECT_EQ(f32ToBf16(fromBits(0x00018000)), 0x0002);
  EXPECT_EQ(f32ToBf16(fromBits(0x7f800001)) & 0x7fc0, 0x7fc0); // quiet NaN
  EXPECT_EQ(f32ToBf16(fromBits(0xff800001)) & 0x8000, 0x8000);
  EXPECT_EQ(bf16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(bf16ToF32(0x0001), fromBits(0x00010000));
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f))
      continue;
    ASSERT_EQ(f32ToBf16(f), h) << h;
  }
  std::mt19937 rng(7);
  for (int k = 0; k < 500000; ++k) {
    float f = fromBits(rng());
    if (std::isnan(f))
      continue;
    ASSERT_EQ(f32ToBf16(f), referenceBf16(f)) << std::hex << bits(f);
  }
}

// ---------------------------------------------------------------------------
// Q8_0 and Q4_0

TEST(GGMLTypes, Q8_0HandWorkedBlock) {
  // amax 127 gives d = 1 exactly, so the quants are x rounded half away from
  // zero.
  float x[32];
  for (int j = 0; j < 32; ++j)
    x[j] = 0;
  x[0] = 127, x[1] = -127, x[2] = 63.5f, x[3] = -63.5f, x[4] = 0.49f,
  x[5] = 2.5f, x[6] = -0.5f;
  BlockQ8_0 b;
  ASSERT_TRUE(quantizeRow(GGMLType::Q8_0, x, &b, 32));
  EXPECT_EQ(b.d, 0x3c00);
  const int8_t want[7] = {127, -127, 64, -64, 0, 3, -1};
  for (int j = 0; j < 7; ++j)
    EXPECT_EQ(b.qs[j], want[j]) << j;
  for (int j = 7; j < 32; ++j)
    EXPECT_EQ(b.qs[j], 0);
  float y[32];
  ASSERT_TRUE(dequantizeRow(GGMLType::Q8_0, &b, y, 32));
  EXPECT_EQ(y[2], 64.0f);
  EXPECT_EQ(y[1], -127.0f);
}

TEST(GGMLTypes, Q8_0ScaleIsAmaxOver127) {
  float x[64];
  for (int j = 0; j < 64; ++j)
    x[j] = (j - 20) * 0.01f;
  BlockQ8_0 b[2];
  ASSERT_TRUE(quantizeRow(GGMLType::Q8_0, x, b, 64));
  EXPECT_EQ(b[0].d, f32ToFp16(std::fabs(x[0]) / 127.0f));
  EXPECT_EQ(b[1].d, f32ToFp16(std::fabs(x[63]) / 127.0f));
  EXPECT_EQ(b[0].qs[0], -127); // -0.2, the block's extreme
  EXPECT_EQ(b[1].qs[31], 127);
  // An all-zero block has d = 0 and zero quants, not NaN.
  float z[32] = {};
  BlockQ8_0 bz;
  ASSERT_TRUE(quantizeRow(GGMLType::Q8_0, z, &bz, 32));
  EXPECT_EQ(bz.d, 0);
  float y[32];
  ASSERT_TRUE(dequantizeRow(GGMLType::Q8_0, &bz, y, 32));
  for (float v : y)
    EXPECT_EQ(v, 0.0f);
}

TEST(GGMLTypes, Q4_0HandWorkedBlock) {
  // Largest magnitude is -8, so d = -8 / -8 = 1 and q = min(15, (int)(x
  // + 8.5)).
  float x[32];
  for (int j = 0; j < 32; ++j)
    x[j] = 0;
  x[0] = -8, x[1] = 7, x[2] = 7.9f, x[3] = -0.5f, x[4] = -0.6f, x[5] = 3.2f;
  x[16] = 1, x[17] = -3;
  BlockQ4_0 b;
  ASSERT_TRUE(quantizeRow(GGMLType::Q4_0, x, &b, 32));
  EXPECT_EQ(b.d, 0x3c00);
  // Low nibble: element j; high nibble: element j + 16.
  EXPECT_EQ(b.qs[0], 0 | (9 << 4));
  EXPECT_EQ(b.qs[1], 15 | (5 << 4));
  EXPECT_EQ(b.qs[2], 15 | (8 << 4)); // 16.4 clamps to 15
  EXPECT_EQ(b.qs[3], 8 | (8 << 4));
  EXPECT_EQ(b.qs[4], 7 | (8 << 4));
  EXPECT_EQ(b.qs[5], 11 | (8 << 4));
  float y[32];
  ASSERT_TRUE(dequantizeRow(GGMLType::Q4_0, &b, y, 32));
  EXPECT_EQ(y[0], -8.0f);
  EXPECT_EQ(y[1], 7.0f);
  EXPECT_EQ(y[4], -1.0f);
  EXPECT_EQ(y[16], 1.0f);
  EXPECT_EQ(y[17], -3.0f);
}

TEST(GGMLTypes, Q4_0PositiveExtremeGetsNegativeScale) {
  float x[32];
  for (int j = 0; j < 32; ++j)
    x[j] = 0;
  x[0] = 8, x[1] = -7;
  BlockQ4_0 b;
  ASSERT_TRUE(quantizeRow(GGMLType::Q4_0, x, &b, 32));
  EXPECT_EQ(b.d, f32ToFp16(-1.0f));
  EXPECT_EQ(b.qs[0] & 0xf, 0); // 8 * -1 + 8.5 = 0.5 -> 0
  EXPECT_EQ(b.qs[1] & 0xf, 15);
  float y[32];
  ASSERT_TRUE(dequantizeRow(GGMLType::Q4_0, &b, y, 32));
  EXPECT_EQ(y[0], 8.0f);
  EXPECT_EQ(y[1], -7.0f);
  EXPECT_EQ(y[2], -0.0f);
}

TEST(GGMLTypes, QuantisationErrorIsBounded) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  const int n = 32 * 64;
  std::vector<float> x(n), y(n);
  for (float &v : x)
    v = dist(rng);
  std::vector<uint8_t> q8(rowBytes(GGMLType::Q8_0, n)),
      q4(rowBytes(GGMLType::Q4_0, n));
  ASSERT_TRUE(quantizeRow(GGMLType::Q8_0, x.data(), q8.data(), n));
  ASSERT_TRUE(dequantizeRow(GGMLType::Q8_0, q8.data(), y.data(), n));
  for (int b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j)
      amax = std::max(amax, std::fabs(x[b * 32 + j]));
    float d = amax / 127;
    for (int j = 0; j < 32; ++j) // half a step, plus the f16 rounding of d
      ASSERT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]),
                d * 0.5f + amax * 1e-3f);
  }
  ASSERT_TRUE(quantizeRow(GGMLType::Q4_0, x.data(), q4.data(), n));
  ASSERT_TRUE(dequantizeRow(GGMLType::Q4_0, q4.data(), y.data(), n));
  for (int b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j)
      amax = std::max(amax, std::fabs(x[b * 32 + j]));
    float d = amax / 8;
    // Half a step, except the far side of the range which is clamped to 7
    // steps and so may be off by a whole step.
    for (int j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]), d + amax * 1e-3f);
  }
}

TEST(GGMLTypes, RowsOfEveryComputableType) {
  std::vector<float> x = {1.5f, -2.25f, 0.0f, 1e-5f, 3e4f, -65504.0f};
  std::vector<float> y(x.size());
  std::vector<uint8_t> buf(x.size() * 4);
  ASSERT_TRUE(quantizeRow(GGMLType::F32, x.data(), buf.data(), 6));
  ASSERT_TRUE(dequantizeRow(GGMLType::F32, buf.data(), y.data(), 6));
  EXPECT_EQ(x, y);
  ASSERT_TRUE(quantizeRow(GGMLType::F16, x.data(), buf.data(), 6));
  ASSERT_TRUE(dequantizeRow(GGMLType::F16, buf.data(), y.data(), 6));
  for (size_t k = 0; k < x.size(); ++k)
    EXPECT_EQ(y[k], fp16ToF32(f32ToFp16(x[k])));
  ASSERT_TRUE(quantizeRow(GGMLType::BF16, x.data(), buf.data(), 6));
  ASSERT_TRUE(dequantizeRow(GGMLType::BF16, buf.data(), y.data(), 6));
  for (size_t k = 0; k < x.size(); ++k)
    EXPECT_EQ(y[k], bf16ToF32(f32ToBf16(x[k])));
  // Unaligned source rows (blocks sit at any byte offset in a file).
  std::vector<float> v(32, 0.5f);
  std::vector<uint8_t> raw(1 + sizeof(BlockQ8_0));
  ASSERT_TRUE(quantizeRow(GGMLType::Q8_0, v.data(), raw.data() + 1, 32));
  BlockQ8_0 aligned;
  ASSERT_TRUE(quantizeRow(GGMLType::Q8_0, v.data(), &aligned, 32));
  EXPECT_EQ(std::memcmp(&aligned, raw.data() + 1, sizeof aligned), 0);
  std::vector<float> w(32), wa(32);
  ASSERT_TRUE(dequantizeRow(GGMLType::Q8_0, raw.data() + 1, w.data(), 32));
  ASSERT_TRUE(dequantizeRow(GGMLType::Q8_0, &aligned, wa.data(), 32));
  EXPECT_EQ(w, wa);
  EXPECT_NEAR(w[0], 0.5f, 1e-3f);
}

TEST(GGMLTypes, RefusesWhatItCannotCompute) {
  float x[256] = {};
  uint8_t buf[1024];
  EXPECT_FALSE(quantizeRow(GGMLType::IQ4_XS, x, buf, 256));
  EXPECT_FALSE(dequantizeRow(GGMLType::Q8_K, buf, x, 256));
  EXPECT_FALSE(dequantizeRow(GGMLType::Q4_K, buf, x, 128));
  EXPECT_FALSE(quantizeRow(GGMLType::Q8_0, x, buf, 33));
  EXPECT_FALSE(dequantizeRow(GGMLType::Q4_0, buf, x, 16));
  EXPECT_FALSE(dequantizeRow(static_cast<GGMLType>(5), buf, x, 32));
}

} // namespace
