// F16 token tiles; see f16_tiles.h.
#include "runtime/f16_tiles.h"

#include "runtime/dot_kernels.h"
#include "runtime/kernels.h"

#include <algorithm>

namespace pinfer {

#ifdef PINFER_X86

namespace {

// Tokens per register tile (16 accumulators, two weight and two activation
// registers), weights per K-block (eight tokens' activations: 8 KiB of
// L1), rows per row block (their K-blocks, 16 KiB, read from L2 once per
// token group).
constexpr int kTileTokens = 8;
constexpr int64_t kBlockK = 256;
constexpr int64_t kBlockRows = 32;

// One row times T tokens over weights [k0, k1), the accumulators (T pairs
// of 16 lanes) loaded from (zero at the row's start) and stored back to
// acc.
template <int T>
PINFER_AVX512 void rowTile(const uint16_t *w, const float *x, int64_t xStride,
                           int64_t k0, int64_t k1, float *acc) {
  __m512 a01[T], a23[T];
  for (int t = 0; t < T; ++t) {
    a01[t] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc + t * 32);
    a23[t] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc + t * 32 + 16);
  }
  for (int64_t i = k0; i < k1; i += 32) {
    const __m512 w01 =
        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i)));
    const __m512 w23 =
        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16)));
    for (int t = 0; t < T; ++t) {
      a01[t] =
          _mm512_fmadd_ps(w01, _mm512_loadu_ps(x + t * xStride + i), a01[t]);
      a23[t] = _mm512_fmadd_ps(w23, _mm512_loadu_ps(x + t * xStride + i + 16),
                               a23[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    _mm512_store_ps(acc + t * 32, a01[t]);
    _mm512_store_ps(acc + t * 32 + 16, a23[t]);
  }
}

// Rows [0, nRows) of a row block times T tokens.
template <int T>
PINFER_AVX512 void rowBlock(const uint8_t *row, int64_t rowBytes, int64_t nRows,
                            const float *x, int64_t xStride, int64_t n,
                            float *y, int64_t yStride) {
  alignas(64) float acc[kBlockRows * kTileTokens * 32];
  for (int64_t k0 = 0; k0 < n; k0 += kBlockK)
    for (int64_t r = 0; r < nRows; ++r)
      rowTile<T>(reinterpret_cast<const uint16_t *>(row + r * rowBytes), x,
                 xStride, k0, std::min(n, k0 + kBlockK), acc + r * T * 32);
  // dotF16Avx2's sum of its four eight-lane accumulators.
  for (int64_t r = 0; r < nRows; ++r)
    for (int t = 0; t < T; ++t) {
      const float *a = acc + (r * T + t) * 32;
      y[t * yStride + r] = dotk::hsum(_mm256_add_ps(
          _mm256_add_ps(_mm256_load_ps(a), _mm256_load_ps(a + 8)),
          _mm256_add_ps(_mm256_load_ps(a + 16), _mm256_load_ps(a + 24))));
    }
}

using RowBlockFn = void (*)(const uint8_t *, int64_t, int64_t, const float *,
                            int64_t, int64_t, float *, int64_t);
constexpr RowBlockFn kRowBlocks[kTileTokens] = {
    rowBlock<1>, rowBlock<2>, rowBlock<3>, rowBlock<4>,
    rowBlock<5>, rowBlock<6>, rowBlock<7>, rowBlock<8>};

} // namespace

bool f16TokenTiles(const uint8_t *row, int64_t rowBytes, int64_t nRows,
                   const float *x, int64_t xStride, int nTok, int64_t n,
                   float *y, int64_t yStride) {
  if (kernelLevel() != 2 || n % 32 != 0)
    return false;
  for (int64_t r0 = 0; r0 < nRows; r0 += kBlockRows)
    for (int t0 = 0; t0 < nTok; t0 += kTileTokens) {
      const int T = std::min(kTileTokens, nTok - t0);
      kRowBlocks[T - 1](row + r0 * rowBytes, rowBytes,
                        std::min(kBlockRows, nRows - r0), x + t0 * xStride,
                        xStride, n, y + t0 * yStride + r0, yStride);
    }
  return true;
}

bool f16FewTokens(const uint8_t *row, int64_t rowBytes, int64_t nRows,
                  const float *x, int64_t xStride, int nTok, int64_t n,
                  float *y, int64_t yStride) {
  if (kernelLevel() != 2)
    return false;
  float out[kFewRows];
  int64_t r = 0;
  for (; r + kFewRows <= nRows; r += kFewRows)
    for (int t = 0; t < nTok; ++t) {
      dotk::dotF16RowsAvx512<kFewRows, 1>(row + r * rowBytes, rowBytes,
                                          x + t * xStride, 0, n, out);
      for (int j = 0; j < kFewRows; ++j)
        y[t * yStride + r + j] = out[j];
    }
  for (; r < nRows; ++r)
    for (int t = 0; t < nTok; ++t)
      dotk::dotF16RowsAvx512<1, 1>(row + r * rowBytes, rowBytes,
                                   x + t * xStride, 0, n, y + t * yStride + r);
  return true;
}

#else

bool f16TokenTiles(const uint8_t *, int64_t, int64_t, const float *, int64_t,
                   int, int64_t, float *, int64_t) {
  return false;
}
bool f16FewTokens(const uint8_t *, int64_t, int64_t, const float *, int64_t,
                  int, int64_t, float *, int64_t) {
  return false;
}

#endif

} // namespace pinfer
