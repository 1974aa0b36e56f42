// AMX tile products; see amx_tiles.h.
#include "runtime/amx_tiles.h"

#include "runtime/dot_q8_blocks.h"
#include "runtime/kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(PINFER_X86) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define PINFER_HAS_AMX 1
#endif

namespace pinfer {

#ifdef PINFER_HAS_AMX

namespace {

// CPUID leaf 7: AMX-TILE is EDX bit 24, AMX-INT8 bit 25.
bool cpuHasAmx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
    return false;
  return (d >> 24 & 1) && (d >> 25 & 1);
}

// Linux hands out the 8 KiB of tile state only to a process that asks
// (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA); without it the first
// tile instruction faults.
bool osGrantsTiles() {
  constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
}

bool amxUsable() {
  static const bool usable = cpuHasAmx() && osGrantsTiles();
  return usable;
}

// PINFER_AMX=0 turns the tiles off, PINFER_AMX=vnni asks for the VNNI
// form where the CPU has AMX too (to compare); otherwise the best there is.
TileMode startMode() {
  const char *v = std::getenv("PINFER_AMX");
  if (v && std::strcmp(v, "0") == 0)
    return TileMode::Off;
  if (v && std::strcmp(v, "vnni") == 0)
    return TileMode::Vnni;
  return TileMode::Amx;
}

std::atomic<TileMode> gMode{startMode()};

#define PINFER_AMX                                                             \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,"         \
                        "avx512vnni,avx512dq,avx2,fma,f16c")))

// Palette 1. 32-value blocks (Q4_K/Q5_K, Q5_0, Q8_0): two sets of a block's
// operands, tiles 1, 2 and 3, 4 (16 rows x 32 bytes, 8 x 64), into results 0
// and 5 (16 x 16 int32), one set multiplying while the other's result is read.
// Q6_K (splitHalves): per block two A operands (tiles 1 and 3, the scaled
// values' high and low parts), B in 2 or 4, into results 0, 5 or 6, 7.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
constexpr TileConfig tileConfig(bool split) {
  TileConfig c;
  for (int t : {0, 5})
    c.colsb[t] = 64, c.rows[t] = 16;
  for (int t : {1, 3})
    c.colsb[t] = 32, c.rows[t] = 16;
  for (int t : {2, 4})
    c.colsb[t] = 64, c.rows[t] = 8;
  if (split)
    for (int t : {6, 7})
      c.colsb[t] = 64, c.rows[t] = 16;
  return c;
}

// One group of kAmxRows rows unpacked: their values as bytes, block by
// block, each block's 16 rows x 32 bytes together (an A operand is 512
// contiguous bytes, 8 cache lines, not 16 lines' halves), and their
// factors row by row within a super-block i: row m's for block j of it
// at [(i * 16 + m) * 8 + j] (Q6_K: d at [i * 16 + m]), each row's one
// vector store. Q6_K's values are its sub-block scale times (q - 32),
// split as 64 hi + lo: hi (signed) in u, lo (0..63) in lo.
struct RowGroup {
  std::vector<int8_t> u;
  std::vector<uint8_t> lo; // Q6_K
  // Signed values' sums per block and row, at [b * 16 + m] (Q5_0, Q8_0,
  // Q4_0): the VNNI tiles' offset correction.
  std::vector<int32_t> wsum;
  // Q6_K's VNNI form: the sub-block scales of block b, row m at
  // [(b * 16 + m) * 2 + h] (u holds the unsigned 6-bit values).
  std::vector<int32_t> sc32;
  std::vector<float> f1, f2; // Q4_K/Q5_K: d sc and dmin m per block;
                             // Q6_K: d per super-block
  // tilesBlocks' blocks lane by lane: j, j + 8, ... for j = 0..7.
  std::vector<int32_t> order;
};

// Where row m's values 32 b .. 32 b + 31 go in RowGroup::u (its data()
// held in a local by the unpackers: through the vectors, every byte store
// would make the compiler reload their pointers).
inline int8_t *blockRow(int8_t *u, int64_t b, int m) {
  return u + (b * kAmxRows + m) * QK8_0;
}

// The 16 rows are read super-block by super-block, 16 streams the
// hardware prefetchers follow poorly: each row's block two super-blocks
// ahead is asked for.
inline void prefetchAhead(const uint8_t *p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64)
    __builtin_prefetch(p + 2 * bytes + o);
}

template <bool Five>
PINFER_AMX void unpackK4K5Rows(const uint8_t *row, int64_t rowBytes, int64_t n,
                               RowGroup &g) {
  const int64_t nb = n / QK8_0;
  const size_t bytes = Five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  g.u.resize(size_t(kAmxRows) * n);
  g.f1.resize(size_t(kAmxRows) * nb);
  g.f2.resize(size_t(kAmxRows) * nb);
  int8_t *const u = g.u.data();
  float *const f1 = g.f1.data(), *const f2 = g.f2.data();
  // Super-block by super-block, so that the 16 rows' 4 KiB of unpacked
  // values are written while in L1.
  for (int64_t i = 0; i < n / QK_K; ++i)
    for (int m = 0; m < kAmxRows; ++m) {
      const uint8_t *p = row + m * rowBytes + i * bytes;
      // As dotK4K5Q8ActAvx512 computes them.
      const qblk::ScalesMinsK4 sm = qblk::scalesMinsK4(p + 4);
      _mm256_storeu_ps(
          &f1[(i * kAmxRows + m) * 8],
          _mm256_mul_ps(_mm256_set1_ps(dotk::halfAt(p)),
                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                            _mm_loadl_epi64((const __m128i *)sm.sc)))));
      _mm256_storeu_ps(
          &f2[(i * kAmxRows + m) * 8],
          _mm256_mul_ps(_mm256_set1_ps(dotk::halfAt(p + 2)),
                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                            _mm_loadl_epi64((const __m128i *)sm.m)))));
      prefetchAhead(p, bytes);
      for (int q = 0; q < 4; ++q) {
        const __m512i v = dotk::unpackK4K5Pair<Five>(p, q);
        _mm256_storeu_si256((__m256i *)blockRow(u, 8 * i + 2 * q, m),
                            _mm512_castsi512_si256(v));
        _mm256_storeu_si256((__m256i *)blockRow(u, 8 * i + 2 * q + 1, m),
                            _mm512_extracti64x4_epi64(v, 1));
      }
    }
}

// The sum of 32 signed bytes: their unsigned sum (each plus 128) less
// 32 * 128.
PINFER_AMX inline int32_t signedSum(__m256i v) {
  const __m256i s =
      _mm256_sad_epu8(_mm256_xor_si256(v, _mm256_set1_epi8(char(0x80))),
                      _mm256_setzero_si256());
  const __m128i h =
      _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return int32_t(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128;
}

// Q5_0, Q8_0 and Q4_0: each block's values less their offset, signed;
// with `sums` (the VNNI tiles) also their sums.
template <class B, int Offset>
PINFER_AMX void unpackBlockRows(const uint8_t *row, int64_t rowBytes, int64_t n,
                                bool sums, RowGroup &g) {
  const int64_t nb = n / QK8_0, groups = (nb + 7) / 8;
  g.u.resize(size_t(kAmxRows) * n);
  g.f1.assign(size_t(groups) * kAmxRows * 8, 0.f);
  g.wsum.resize(sums ? size_t(kAmxRows) * nb : 0);
  int8_t *const u = g.u.data();
  float *const f1 = g.f1.data();
  int32_t *const wsum = g.wsum.data();
  for (int64_t gi = 0; gi < groups; ++gi)
    for (int m = 0; m < kAmxRows; ++m) {
      const B *blk = reinterpret_cast<const B *>(row + m * rowBytes);
      for (int64_t b = 8 * gi; b < std::min(nb, 8 * gi + 8); ++b) {
        f1[(gi * kAmxRows + m) * 8 + b % 8] = dotk::halfToFloat(blk[b].d);
        const __m256i v = dotk::signedBytes<B, Offset>(blk[b]);
        _mm256_storeu_si256((__m256i *)blockRow(u, b, m), v);
        if (sums)
          wsum[b * kAmxRows + m] = signedSum(v);
      }
      prefetchAhead(reinterpret_cast<const uint8_t *>(blk + 8 * gi),
                    8 * sizeof(B));
    }
}

// Q6_K: a value times its sub-block's scale is within [-4064, 4096]
// (|sc| <= 128, q - 32 in [-32, 31]), so hi = floor(w / 64) fits a signed
// byte and lo = w mod 64 an unsigned one, and a block's two scaled
// sub-block sums are 64 (hi . x) + (lo . x) exactly.
PINFER_AMX void unpackQ6KRows(const uint8_t *row, int64_t rowBytes, int64_t n,
                              RowGroup &g) {
  const int64_t nsb = n / QK_K;
  g.u.resize(size_t(kAmxRows) * n);
  g.lo.resize(size_t(kAmxRows) * n);
  g.f1.resize(size_t(kAmxRows) * nsb);
  int8_t *const u = g.u.data();
  int8_t *const lo = reinterpret_cast<int8_t *>(g.lo.data());
  float *const f1 = g.f1.data();
  // Lane j of block b's scales: sub-block 2 b + (j >= 16).
  const __m512i half =
      _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0,
                       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i low6 = _mm512_set1_epi16(63);
  for (int64_t i = 0; i < nsb; ++i)
    for (int m = 0; m < kAmxRows; ++m) {
      const uint8_t *p = row + m * rowBytes + i * sizeof(BlockQ6_K);
      f1[i * kAmxRows + m] = dotk::halfAt(p + 208);
      const __m512i sc = _mm512_castsi256_si512(
          _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 192))));
      prefetchAhead(p, sizeof(BlockQ6_K));
      __m512i w[4];
      dotk::unpackQ6KHalf(p, 0, w);
      dotk::unpackQ6KHalf(p, 1, w);
      for (int b = 0; b < 8; ++b) {
        const __m256i v = b % 2 == 0 ? _mm512_castsi512_si256(w[b / 2])
                                     : _mm512_extracti64x4_epi64(w[b / 2], 1);
        const __m512i scaled = _mm512_mullo_epi16(
            _mm512_cvtepi8_epi16(v),
            _mm512_permutexvar_epi16(
                _mm512_add_epi16(half, _mm512_set1_epi16(short(2 * b))), sc));
        _mm256_storeu_si256((__m256i *)blockRow(u, 8 * i + b, m),
                            _mm512_cvtepi16_epi8(_mm512_srai_epi16(scaled, 6)));
        _mm256_storeu_si256(
            (__m256i *)blockRow(lo, 8 * i + b, m),
            _mm512_cvtepi16_epi8(_mm512_and_si512(scaled, low6)));
      }
    }
}

// Q6_K for the VNNI tiles: the unsigned 6-bit values as they are (the
// offset of 32 is taken out against the activations' sums) and the
// sub-block scales as integers.
PINFER_AMX void unpackQ6KRowsVnni(const uint8_t *row, int64_t rowBytes,
                                  int64_t n, RowGroup &g) {
  const int64_t nsb = n / QK_K;
  g.u.resize(size_t(kAmxRows) * n);
  g.f1.resize(size_t(kAmxRows) * nsb);
  g.sc32.resize(size_t(kAmxRows) * (n / 16));
  int8_t *const u = g.u.data();
  float *const f1 = g.f1.data();
  int32_t *const sc32 = g.sc32.data();
  for (int64_t i = 0; i < nsb; ++i)
    for (int m = 0; m < kAmxRows; ++m) {
      const uint8_t *p = row + m * rowBytes + i * sizeof(BlockQ6_K);
      f1[i * kAmxRows + m] = dotk::halfAt(p + 208);
      prefetchAhead(p, sizeof(BlockQ6_K));
      for (int h = 0; h < 2; ++h) {
        __m256i v[4];
        qblk::unpackQ6K(p, h, v);
        for (int q = 0; q < 4; ++q) {
          const int64_t b = 8 * i + 4 * h + q;
          _mm256_storeu_si256((__m256i *)blockRow(u, b, m), v[q]);
          for (int k = 0; k < 2; ++k)
            sc32[(b * kAmxRows + m) * 2 + k] =
                int8_t(p[192 + 2 * (4 * h + q) + k]);
        }
      }
    }
}

// The eight lanes of each row and token summed in hsum's order
// (runtime/dot_kernels.h): ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)).
// acc[j][m]: lane j of row m over the 16 tokens.
PINFER_AMX void finish(const __m512 (*acc)[kAmxRows], float *y, int64_t yStride,
                       int tokens) {
  for (int m = 0; m < kAmxRows; ++m) {
    const __m512 v =
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0][m], acc[4][m]),
                                    _mm512_add_ps(acc[2][m], acc[6][m])),
                      _mm512_add_ps(_mm512_add_ps(acc[1][m], acc[5][m]),
                                    _mm512_add_ps(acc[3][m], acc[7][m])));
    alignas(64) float out[kAmxTokens];
    _mm512_store_ps(out, v);
    for (int t = 0; t < tokens; ++t)
      y[t * yStride + m] = out[t];
  }
}

// The blocks of one row group and token group go in order of their lane j
// (block position in the super-block), then super-block i, so that each
// lane's sixteen rows accumulate in registers; the next block's tile
// multiply is issued before the current one's result is read.

// One row group times one token group of 32-value blocks. Q4_K/Q5_K
// (Mins): per block TDPBUSD (unsigned values, signed activations), then
// per row acc_j = fma(d sc_j * xd_j, I_j, acc_j) - dmin m_j * xs_j over
// the 16 tokens, as dotK4K5Q8ActAvx512 does lane j. Q5_0 and Q8_0:
// TDPBSSD (values less their offset, signed) and acc_j = fma(d * xd_j,
// I_j, acc_j), as dotBlocksIntAvx512; their blocks need not fill the last
// eight.
template <bool Mins>
PINFER_AMX void tilesBlocks(const RowGroup &g, const int8_t *xb,
                            const float *xf, float *y, int64_t yStride,
                            int tokens) {
  alignas(64) int32_t c[kAmxRows][kAmxTokens];
  alignas(64) __m512 acc[8][kAmxRows];
  for (int j = 0; j < 8; ++j)
    for (int m = 0; m < kAmxRows; ++m)
      acc[j][m] = _mm512_setzero_ps();
  const std::vector<int32_t> &order = g.order;
  const int8_t *u = g.u.data();
  auto multiply = [&](int64_t b, bool second) {
    if (second) {
      _tile_zero(5);
      _tile_loadd(3, u + b * 512, QK8_0);
      _tile_loadd(4, xb + b * 512, 64);
      if constexpr (Mins)
        _tile_dpbusd(5, 3, 4);
      else
        _tile_dpbssd(5, 3, 4);
    } else {
      _tile_zero(0);
      _tile_loadd(1, u + b * 512, QK8_0);
      _tile_loadd(2, xb + b * 512, 64);
      if constexpr (Mins)
        _tile_dpbusd(0, 1, 2);
      else
        _tile_dpbssd(0, 1, 2);
    }
  };
  multiply(order[0], false);
  __m512 a[kAmxRows];
  const size_t steps = order.size();
  for (size_t s = 0; s < steps; ++s) {
    const int64_t b = order[s];
    if (s == 0 || order[s - 1] % 8 != b % 8)
      for (int m = 0; m < kAmxRows; ++m)
        a[m] = _mm512_setzero_ps();
    // The next block's multiply runs while this one's result is read.
    if (s + 1 < steps)
      multiply(order[s + 1], s % 2 == 0);
    if (s % 2 == 0)
      _tile_stored(0, c, 64);
    else
      _tile_stored(5, c, 64);
    const __m512 xd = _mm512_loadu_ps(xf + b * 32);
    const float *f1 = g.f1.data() + (b / 8) * kAmxRows * 8 + b % 8;
    if constexpr (Mins) {
      const __m512 xs = _mm512_loadu_ps(xf + b * 32 + 16);
      const float *f2 = g.f2.data() + (b / 8) * kAmxRows * 8 + b % 8;
      for (int m = 0; m < kAmxRows; ++m) {
        a[m] =
            _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(f1[m * 8]), xd),
                            _mm512_cvtepi32_ps(_mm512_load_si512(c[m])), a[m]);
        a[m] = _mm512_fnmadd_ps(_mm512_set1_ps(f2[m * 8]), xs, a[m]);
      }
    } else {
      for (int m = 0; m < kAmxRows; ++m)
        a[m] =
            _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(f1[m * 8]), xd),
                            _mm512_cvtepi32_ps(_mm512_load_si512(c[m])), a[m]);
    }
    if (s + 1 == steps || order[s + 1] % 8 != b % 8)
      for (int m = 0; m < kAmxRows; ++m)
        acc[b % 8][m] = a[m];
  }
  finish(acc, y, yStride, tokens);
}

// Q6_K: per block TDPBSSD (hi parts, signed) and TDPBUSD (lo parts,
// unsigned) with the same activations, S = 64 Ih + Il as integers (the
// integer sum of the block's two scaled sub-block sums), then acc_j =
// fma(d * xd_j, S, acc_j), as dotQ6_KQ8ActAvx512 does lane j. Blocks lane
// by lane as in tilesBlocks (whole super-blocks here).
PINFER_AMX void tilesQ6K(const RowGroup &g, const int8_t *xb, const float *xf,
                         int64_t n, float *y, int64_t yStride, int tokens) {
  const int64_t nb = n / QK8_0, nsb = n / QK_K;
  alignas(64) int32_t ch[kAmxRows][kAmxTokens], cl[kAmxRows][kAmxTokens];
  alignas(64) __m512 acc[8][kAmxRows];
  auto block = [&](int64_t s) { return (s % nsb) * 8 + s / nsb; };
  const int8_t *u = g.u.data();
  const int8_t *lo = reinterpret_cast<const int8_t *>(g.lo.data());
  // Block b's two products into results 0 and 5, or (second) 6 and 7; the
  // operand tiles are reloaded once the previous multiplies have read them.
  // (The tile intrinsics paste their tile numbers into the instruction's
  // text, so each set is spelled out.)
  auto multiply = [&](int64_t b, bool second) {
    if (second) {
      _tile_zero(6);
      _tile_zero(7);
      _tile_loadd(4, xb + b * 512, 64);
      _tile_loadd(1, u + b * 512, QK8_0);
      _tile_dpbssd(6, 1, 4);
      _tile_loadd(3, lo + b * 512, QK8_0);
      _tile_dpbusd(7, 3, 4);
    } else {
      _tile_zero(0);
      _tile_zero(5);
      _tile_loadd(2, xb + b * 512, 64);
      _tile_loadd(1, u + b * 512, QK8_0);
      _tile_dpbssd(0, 1, 2);
      _tile_loadd(3, lo + b * 512, QK8_0);
      _tile_dpbusd(5, 3, 2);
    }
  };
  multiply(0, false);
  __m512 a[kAmxRows];
  for (int64_t s = 0; s < nb; ++s) {
    const int64_t b = block(s);
    if (s % nsb == 0)
      for (int m = 0; m < kAmxRows; ++m)
        a[m] = _mm512_setzero_ps();
    if (s + 1 < nb)
      multiply(block(s + 1), s % 2 == 0);
    if (s % 2 == 0) {
      _tile_stored(0, ch, 64);
      _tile_stored(5, cl, 64);
    } else {
      _tile_stored(6, ch, 64);
      _tile_stored(7, cl, 64);
    }
    const __m512 xd = _mm512_loadu_ps(xf + b * 32);
    const float *d = g.f1.data() + (b / 8) * kAmxRows;
    for (int m = 0; m < kAmxRows; ++m) {
      // Below 2^24 in magnitude (see dotQ6_KQ8ActAvx512): exact in f32.
      const __m512i sum =
          _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(ch[m]), 6),
                           _mm512_load_si512(cl[m]));
      a[m] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(d[m]), xd),
                             _mm512_cvtepi32_ps(sum), a[m]);
    }
    if ((s + 1) % nsb == 0)
      for (int m = 0; m < kAmxRows; ++m)
        acc[s / nsb][m] = a[m];
  }
  finish(acc, y, yStride, tokens);
}

// The tiles' products on AVX-512 VNNI registers, for CPUs without AMX:
// per block, one row's four values broadcast against the sixteen tokens'
// four activations (the B operand's rows as they are) in one VPDPBUSD, so
// eight instructions give a row's block sums for all sixteen tokens, the
// integers the tile multiply gives. VPDPBUSD multiplies unsigned by
// signed bytes: signed values go against the activations plus 128, less
// 128 times the values' sum (RowGroup::wsum); Q6_K's unsigned 6-bit
// values go against the activations as they are, per 16-value sub-block,
// less 32 times the activations' sums there, and the two sub-block sums
// meet their scales as integers. The f32 steps and their
// order are tilesBlocks' and tilesQ6K's, so the results are bitwise
// theirs. Rows go eight at a time, their sums and accumulators in
// registers.
enum class VnniKind { Mins, Signed, Q6K };

// Four bytes at p in every 32-bit lane.
PINFER_AMX inline __m512i bcast(const int8_t *p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

template <VnniKind Kind>
PINFER_AMX void tilesVnni(const RowGroup &g, const int8_t *xb, const float *xf,
                          int64_t nb, float *y, int64_t yStride, int tokens) {
  constexpr int kPass = 8;
  alignas(64) __m512 acc[8][kAmxRows];
  for (int j = 0; j < 8; ++j)
    for (int m = 0; m < kAmxRows; ++m)
      acc[j][m] = _mm512_setzero_ps();
  const int8_t *u = g.u.data();
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int m0 = 0; m0 < kAmxRows; m0 += kPass)
    for (int j = 0; j < 8; ++j) {
      __m512 a[kPass];
      for (int m = 0; m < kPass; ++m)
        a[m] = _mm512_setzero_ps();
      for (int64_t b = j; b < nb; b += 8) {
        const int8_t *A = u + b * 512 + m0 * QK8_0;
        const int8_t *B = xb + b * 512;
        // Q6_K: c for the first sub-block (k < 4), cl for the second, and
        // 32 times the tokens' activation sums over each.
        __m512i c[kPass], cl[kPass], x32[2];
        for (int m = 0; m < kPass; ++m)
          c[m] = cl[m] = _mm512_setzero_si512();
        if constexpr (Kind == VnniKind::Q6K) {
          const __m512i ones = _mm512_set1_epi8(1);
          for (int h = 0; h < 2; ++h) {
            __m512i sum = _mm512_setzero_si512();
            for (int k = 4 * h; k < 4 * h + 4; ++k)
              sum = _mm512_dpbusd_epi32(sum, ones,
                                        _mm512_loadu_si512(B + 64 * k));
            x32[h] = _mm512_slli_epi32(sum, 5);
          }
        }
        for (int k = 0; k < QK8_0 / 4; ++k) {
          const __m512i bk = _mm512_loadu_si512(B + 64 * k);
          const __m512i bu = _mm512_xor_si512(bk, flip);
          for (int m = 0; m < kPass; ++m) {
            if constexpr (Kind == VnniKind::Mins)
              c[m] =
                  _mm512_dpbusd_epi32(c[m], bcast(A + m * QK8_0 + 4 * k), bk);
            else if constexpr (Kind == VnniKind::Signed)
              c[m] =
                  _mm512_dpbusd_epi32(c[m], bu, bcast(A + m * QK8_0 + 4 * k));
            else if (k < 4)
              c[m] =
                  _mm512_dpbusd_epi32(c[m], bcast(A + m * QK8_0 + 4 * k), bk);
            else
              cl[m] =
                  _mm512_dpbusd_epi32(cl[m], bcast(A + m * QK8_0 + 4 * k), bk);
          }
        }
        const __m512 xd = _mm512_loadu_ps(xf + b * 32);
        const __m512 xs = _mm512_loadu_ps(xf + b * 32 + 16);
        for (int m = 0; m < kPass; ++m) {
          const int row = m0 + m;
          if constexpr (Kind == VnniKind::Mins) {
            const float *f =
                g.f1.data() + ((b / 8) * kAmxRows + row) * 8 + b % 8;
            const float *f2 =
                g.f2.data() + ((b / 8) * kAmxRows + row) * 8 + b % 8;
            a[m] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(*f), xd),
                                   _mm512_cvtepi32_ps(c[m]), a[m]);
            a[m] = _mm512_fnmadd_ps(_mm512_set1_ps(*f2), xs, a[m]);
            continue;
          }
          if constexpr (Kind == VnniKind::Signed) {
            const __m512i sum = _mm512_sub_epi32(
                c[m], _mm512_set1_epi32(128 * g.wsum[b * kAmxRows + row]));
            const float f = g.f1[((b / 8) * kAmxRows + row) * 8 + b % 8];
            a[m] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(f), xd),
                                   _mm512_cvtepi32_ps(sum), a[m]);
          } else {
            // sc0 (I0 - 32 X0) + sc1 (I1 - 32 X1): the block's two scaled
            // sub-block sums of (q - 32) x, as integers.
            const int32_t *sc = &g.sc32[(b * kAmxRows + row) * 2];
            const __m512i s = _mm512_add_epi32(
                _mm512_mullo_epi32(_mm512_sub_epi32(c[m], x32[0]),
                                   _mm512_set1_epi32(sc[0])),
                _mm512_mullo_epi32(_mm512_sub_epi32(cl[m], x32[1]),
                                   _mm512_set1_epi32(sc[1])));
            a[m] = _mm512_fmadd_ps(
                _mm512_mul_ps(_mm512_set1_ps(g.f1[(b / 8) * kAmxRows + row]),
                              xd),
                _mm512_cvtepi32_ps(s), a[m]);
          }
        }
      }
      for (int m = 0; m < kPass; ++m)
        acc[j][m0 + m] = a[m];
    }
  finish(acc, y, yStride, tokens);
}

PINFER_AMX void amxRowsOn(GGMLType type, const uint8_t *row, int64_t rowBytes,
                          int64_t nRows, const AmxActs &acts, int64_t n,
                          float *y, int64_t yStride) {
  static thread_local RowGroup g;
  static constexpr TileConfig kBlocks = tileConfig(false),
                              kSplit = tileConfig(true);
  const bool amx = tileMode() == TileMode::Amx;
  if (amx)
    _tile_loadconfig(type == GGMLType::Q6_K ? &kSplit : &kBlocks);
  // The order tilesBlocks takes the blocks in, the same for every group.
  g.order.clear();
  for (int j = 0; j < 8; ++j)
    for (int64_t b = j; b < n / QK8_0; b += 8)
      g.order.push_back(int32_t(b));
  for (int64_t r = 0; r < nRows; r += kAmxRows) {
    const uint8_t *rows = row + r * rowBytes;
    if (type == GGMLType::Q4_K)
      unpackK4K5Rows<false>(rows, rowBytes, n, g);
    else if (type == GGMLType::Q5_K)
      unpackK4K5Rows<true>(rows, rowBytes, n, g);
    else if (type == GGMLType::Q5_0)
      unpackBlockRows<BlockQ5_0, 16>(rows, rowBytes, n, !amx, g);
    else if (type == GGMLType::Q8_0)
      unpackBlockRows<BlockQ8_0, 128>(rows, rowBytes, n, !amx, g);
    else if (type == GGMLType::Q4_0)
      unpackBlockRows<BlockQ4_0, 8>(rows, rowBytes, n, !amx, g);
    else if (amx)
      unpackQ6KRows(rows, rowBytes, n, g);
    else
      unpackQ6KRowsVnni(rows, rowBytes, n, g);
    for (int G = 0; G < acts.groups; ++G) {
      const int8_t *xb = acts.bytes.data() + size_t(G) * acts.nb * 512;
      const float *xf = acts.scales.data() + size_t(G) * acts.nb * 32;
      float *yg = y + int64_t(G) * kAmxTokens * yStride + r;
      const int tokens = std::min(kAmxTokens, acts.tokens - G * kAmxTokens);
      const bool signedValues = type == GGMLType::Q5_0 ||
                                type == GGMLType::Q8_0 ||
                                type == GGMLType::Q4_0;
      if (!amx && type == GGMLType::Q6_K)
        tilesVnni<VnniKind::Q6K>(g, xb, xf, acts.nb, yg, yStride, tokens);
      else if (!amx && signedValues)
        tilesVnni<VnniKind::Signed>(g, xb, xf, acts.nb, yg, yStride, tokens);
      else if (!amx)
        tilesVnni<VnniKind::Mins>(g, xb, xf, acts.nb, yg, yStride, tokens);
      else if (type == GGMLType::Q6_K)
        tilesQ6K(g, xb, xf, n, yg, yStride, tokens);
      else if (signedValues)
        tilesBlocks<false>(g, xb, xf, yg, yStride, tokens);
      else
        tilesBlocks<true>(g, xb, xf, yg, yStride, tokens);
    }
  }
  if (amx)
    _tile_release();
}

} // namespace

TileMode tileMode() {
  const TileMode want = gMode.load(std::memory_order_relaxed);
  if (want == TileMode::Off || kernelLevel() != 2)
    return TileMode::Off;
  return want == TileMode::Amx && amxUsable() ? TileMode::Amx : TileMode::Vnni;
}

void setTileMode(TileMode mode) { gMode.store(mode); }

bool amxReads(GGMLType type) {
  return type == GGMLType::Q4_K || type == GGMLType::Q5_K ||
         type == GGMLType::Q6_K || type == GGMLType::Q5_0 ||
         type == GGMLType::Q8_0 || type == GGMLType::Q4_0;
}

bool amxRows(GGMLType type, const uint8_t *row, int64_t rowBytes, int64_t nRows,
             const AmxActs &acts, int64_t n, float *y, int64_t yStride) {
  const int64_t block =
      type == GGMLType::Q5_0 || type == GGMLType::Q8_0 || type == GGMLType::Q4_0
          ? QK8_0
          : QK_K;
  if (!tilesActive() || !amxReads(type) || nRows % kAmxRows != 0 ||
      n % block != 0 || acts.nb != n / QK8_0)
    return false;
  amxRowsOn(type, row, rowBytes, nRows, acts, n, y, yStride);
  return true;
}

#else // no AMX on this build's target

TileMode tileMode() { return TileMode::Off; }
void setTileMode(TileMode) {}
bool amxReads(GGMLType) { return false; }
bool amxRows(GGMLType, const uint8_t *, int64_t, int64_t, const AmxActs &,
             int64_t, float *, int64_t) {
  return false;
}

#endif

void amxPrepare(const BlockQ8Act *xq, int64_t nb, int nTok, AmxActs &out) {
  out.nb = nb;
  out.groups = nTok / kAmxTokens + (nTok % kAmxTokens >= kAmxPadFrom);
  out.tokens = std::min(nTok, out.groups * kAmxTokens);
  out.bytes.assign(size_t(out.groups) * size_t(nb) * 512, 0);
  out.scales.assign(size_t(out.groups) * size_t(nb) * 32, 0.f);
  for (int G = 0; G < out.groups; ++G)
    for (int64_t b = 0; b < nb; ++b) {
      int8_t *dst = out.bytes.data() + (size_t(G) * nb + b) * 512;
      float *f = out.scales.data() + (size_t(G) * nb + b) * 32;
      for (int t = 0; t < std::min(kAmxTokens, out.tokens - G * kAmxTokens);
           ++t) {
        const BlockQ8Act &x = xq[(int64_t(G) * kAmxTokens + t) * nb + b];
        // Row k of the B operand: every token's values 4k .. 4k + 3.
        for (int k = 0; k < QK8_0 / 4; ++k)
          std::memcpy(dst + k * 64 + t * 4, x.qs + 4 * k, 4);
        f[t] = x.d;
        f[16 + t] = x.s;
      }
    }
}

} // namespace pinfer
