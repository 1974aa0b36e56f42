// CPU kernels of the sparse FFN halves; see sparse_kernels.h.
#include "runtime/sparse_kernels.h"

#include "runtime/dot_kernels.h"
#include "runtime/kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pinfer {

void sparseDots(const Weight &w, const uint32_t *rows, int64_t first,
                int64_t nRows, const float *x, float *out) {
  if (DotQ8ActFn q8 = dotQ8ActKernel(w.type)) {
    // Quantised input, as the dense products use it (kernels.h).
    static thread_local std::vector<BlockQ8Act> xq;
    xq.resize(size_t(w.cols / QK8_0));
    quantizeActQ8(x, xq.data(), w.cols);
    for (int64_t k = 0; k < nRows; ++k)
      out[k] = q8(w.row(rows ? int64_t(rows[k]) : first + k), xq.data(),
                  w.cols);
    return;
  }
  for (int64_t k = 0; k < nRows; ++k) {
    int64_t r = rows ? int64_t(rows[k]) : first + k;
    out[k] = dotRow(w.type, w.row(r), x, w.cols);
  }
}

bool axpyRowRange(GGMLType type, const void *row, float a, float *y, int64_t c0,
                  int64_t c1) {
  const TypeTraits *t = typeTraits(type);
  if (!t || !t->computable)
    return false;
  t->axpy(row, a, y, c0, c1);
  return true;
}

bool axpyRow(GGMLType type, const void *row, float a, float *y, int64_t n) {
  return axpyRowRange(type, row, a, y, 0, n);
}

namespace {

// Rows four at a time through the type's AVX2 kernel (dot_kernels.h,
// axpyRowsAvx2): one indirect call per four rows, against 4 x (c1 - c0)
// fused multiply-adds inside it.
void downRowsGrouped(AxpyRowsFn axpyRows, const Weight &downT,
                     const uint32_t *rows, int64_t first, int64_t nRows,
                     const float *coef, float *y, int64_t c0, int64_t c1,
                     bool skipZero) {
  const void *r[4];
  float a[4];
  int n = 0;
  for (int64_t k = 0; k < nRows; ++k) {
    if (skipZero && coef[k] == 0.f)
      continue;
    r[n] = downT.row(rows ? int64_t(rows[k]) : first + k);
    a[n] = coef[k];
    if (++n == 4) {
      axpyRows(r, a, n, y, c0, c1);
      n = 0;
    }
  }
  if (n)
    axpyRows(r, a, n, y, c0, c1);
}

} // namespace

void sparseDownAxpy(const Weight &downT, const uint32_t *rows, int64_t first,
                    int64_t nRows, const float *coef, float *y, int64_t c0,
                    int64_t c1, bool skipZero) {
  const TypeTraits *t = typeTraits(downT.type);
  if (!t || !t->computable)
    return;
  if (kernelIsaIsAvx2() && t->avx2.axpyRows)
    return downRowsGrouped(t->avx2.axpyRows, downT, rows, first, nRows, coef, y,
                           c0, c1, skipZero);
  for (int64_t k = 0; k < nRows; ++k) {
    if (skipZero && coef[k] == 0.f)
      continue;
    int64_t r = rows ? int64_t(rows[k]) : first + k;
    t->axpy(downT.row(r), coef[k], y, c0, c1);
  }
}

namespace {

// The coefficients' sum of group gi, in order: what SplitK's mins multiply.
float groupCoefSum(const DownGroups &g, int64_t gi) {
  float sum = 0.f;
  for (uint32_t i = g.start[gi]; i < g.start[gi + 1]; ++i)
    sum += g.coef[i];
  return sum;
}

// SplitK's tables of group gi: its scales and mins, its block's d and dm.
struct SplitKRows {
  const int8_t *sc, *m;
  const float *d, *dm;
};
SplitKRows splitKRows(const SplitDown &d, const DownGroups &g, int64_t gi) {
  const size_t grp = g.block[gi], blk = grp / size_t(d.groupsPerBlock);
  const size_t n = size_t(d.nEmbd);
  return {
      d.groupScales + grp * n, d.groupMins ? d.groupMins + grp * n : nullptr,
      d.blockScales + blk * n, d.blockMins ? d.blockMins + blk * n : nullptr};
}

// y[c] += (d * sc) * acc[c] (+ (dm * m) * the coefficients' sum): the
// group's sums, scaled as the type's decoder scales each of its values.
void splitKScalar(const SplitDown &d, const DownGroups &g, int64_t gi,
                  const float *acc, float *y, int64_t c0, int64_t c1) {
  const SplitKRows t = splitKRows(d, g, gi);
  const float sum = t.m ? groupCoefSum(g, gi) : 0.f;
  for (int64_t c = c0; c < c1; ++c) {
    float u = (t.d[c] * float(t.sc[c])) * acc[c];
    if (t.m)
      u = std::fma(t.dm[c] * float(t.m[c]), sum, u);
    y[c] += u;
  }
}

void splitDownScalar(const SplitDown &d, const DownGroups &g, float *y,
                     int64_t c0, int64_t c1) {
  static thread_local std::vector<float> accBuf;
  accBuf.assign(size_t(c1 - c0), 0.f);
  float *acc = accBuf.data() - c0;
  for (int64_t gi = 0; gi < g.nGroups; ++gi) {
    std::fill(accBuf.begin(), accBuf.end(), 0.f);
    for (uint32_t i = g.start[gi]; i < g.start[gi + 1]; ++i) {
      const uint8_t *q = d.rows + size_t(g.rows[i]) * d.rowBytes;
      const float a = g.coef[i];
      if (!d.q4) {
        for (int64_t c = c0; c < c1; ++c)
          acc[c] += a * float(int8_t(q[c]));
        continue;
      }
      for (int64_t c = c0; c < c1; c += 32) {
        const uint8_t *b = q + c / 2;
        for (int j = 0; j < 16; ++j) {
          acc[c + j] += a * float(int(b[j] & 0x0F) - 8);
          acc[c + 16 + j] += a * float(int(b[j] >> 4) - 8);
        }
      }
    }
    if (!d.scales) {
      splitKScalar(d, g, gi, acc, y, c0, c1);
      continue;
    }
    const uint16_t *s = d.scales + size_t(g.block[gi]) * d.nEmbd;
    for (int64_t c = c0; c < c1; ++c)
      y[c] += fp16ToF32(s[c]) * acc[c];
  }
}

#ifdef PINFER_X86
// splitKScalar's operations on 8 columns at c + 8 * part: the
// multiplications, then the mins' FMA, then the add.
PINFER_AVX2 inline __m256 splitKTerm8(const SplitKRows &t, float sum,
                                      __m256 acc, int64_t c) {
  __m256 u = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_loadu_ps(t.d + c), dotk::load8BytesPs(t.sc + c)),
      acc);
  if (t.m)
    u = _mm256_fmadd_ps(
        _mm256_mul_ps(_mm256_loadu_ps(t.dm + c), dotk::load8BytesPs(t.m + c)),
        _mm256_set1_ps(sum), u);
  return u;
}

PINFER_AVX2 inline void splitKAvx2(const SplitKRows &t, float sum,
                                   const __m256 *acc, float *y, int64_t c) {
  for (int part = 0; part < 4; ++part) {
    float *yp = y + c + 8 * part;
    _mm256_storeu_ps(
        yp, _mm256_add_ps(_mm256_loadu_ps(yp),
                          splitKTerm8(t, sum, acc[part], c + 8 * part)));
  }
}

// Columns in chunks of 32 held in four registers while the group's rows
// stream past: each row is read once, the output once per group.
PINFER_AVX2 void splitDownAvx2(const SplitDown &d, const DownGroups &g,
                               float *y, int64_t c0, int64_t c1) {
  const __m128i mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  for (int64_t gi = 0; gi < g.nGroups; ++gi) {
    const uint32_t k0 = g.start[gi], k1 = g.start[gi + 1];
    const uint16_t *s =
        d.scales ? d.scales + size_t(g.block[gi]) * d.nEmbd : nullptr;
    const SplitKRows kt = s ? SplitKRows{} : splitKRows(d, g, gi);
    const float kSum = kt.m ? groupCoefSum(g, gi) : 0.f;
    for (int64_t c = c0; c < c1; c += 32) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (uint32_t i = k0; i < k1; ++i) {
        const uint8_t *q = d.rows + size_t(g.rows[i]) * d.rowBytes;
        const __m256 coef = _mm256_set1_ps(g.coef[i]);
        if (!d.q4) {
          // Sign extension straight from memory, 8 quants at a time.
          const int8_t *qs = reinterpret_cast<const int8_t *>(q) + c;
          a0 = _mm256_fmadd_ps(coef, dotk::load8BytesPs(qs), a0);
          a1 = _mm256_fmadd_ps(coef, dotk::load8BytesPs(qs + 8), a1);
          a2 = _mm256_fmadd_ps(coef, dotk::load8BytesPs(qs + 16), a2);
          a3 = _mm256_fmadd_ps(coef, dotk::load8BytesPs(qs + 24), a3);
          continue;
        }
        // Elements c..c+15 and c+16..c+31 as signed bytes.
        __m128i b = _mm_loadu_si128((const __m128i *)(q + c / 2));
        __m128i lo = _mm_sub_epi8(_mm_and_si128(b, mask), eight);
        __m128i hi =
            _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), mask), eight);
        a0 = _mm256_fmadd_ps(coef, dotk::bytesToPs(lo), a0);
        a1 = _mm256_fmadd_ps(coef, dotk::bytesToPs(_mm_srli_si128(lo, 8)), a1);
        a2 = _mm256_fmadd_ps(coef, dotk::bytesToPs(hi), a2);
        a3 = _mm256_fmadd_ps(coef, dotk::bytesToPs(_mm_srli_si128(hi, 8)), a3);
      }
      __m256 acc[4] = {a0, a1, a2, a3};
      if (!s) {
        splitKAvx2(kt, kSum, acc, y, c);
        continue;
      }
      for (int part = 0; part < 4; ++part) {
        __m256 sc = _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *)(s + c + 8 * part)));
        __m256 yv = _mm256_loadu_ps(y + c + 8 * part);
        _mm256_storeu_ps(y + c + 8 * part, _mm256_fmadd_ps(sc, acc[part], yv));
      }
    }
  }
}

PINFER_AVX512 inline __m512 bytesToPs512(__m128i bytes) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
}

// The same with 64 columns in four 512-bit registers: per column the same
// FMAs in the same order (bitwise splitDownAvx2); a last 32 columns go
// through splitDownAvx2.
PINFER_AVX512 void splitDownAvx512(const SplitDown &d, const DownGroups &g,
                                   float *y, int64_t c0, int64_t c1) {
  const __m256i mask = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  const int64_t c64 = c0 + (c1 - c0) / 64 * 64;
  for (int64_t gi = 0; gi < g.nGroups; ++gi) {
    const uint32_t k0 = g.start[gi], k1 = g.start[gi + 1];
    const uint16_t *s =
        d.scales ? d.scales + size_t(g.block[gi]) * d.nEmbd : nullptr;
    const SplitKRows kt = s ? SplitKRows{} : splitKRows(d, g, gi);
    const float kSum = kt.m ? groupCoefSum(g, gi) : 0.f;
    for (int64_t c = c0; c < c64; c += 64) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (uint32_t i = k0; i < k1; ++i) {
        const uint8_t *q = d.rows + size_t(g.rows[i]) * d.rowBytes;
        const __m512 coef = _mm512_set1_ps(g.coef[i]);
        if (!d.q4) {
          const __m128i *qs = reinterpret_cast<const __m128i *>(q + c);
          a0 = _mm512_fmadd_ps(coef, bytesToPs512(_mm_loadu_si128(qs)), a0);
          a1 = _mm512_fmadd_ps(coef, bytesToPs512(_mm_loadu_si128(qs + 1)), a1);
          a2 = _mm512_fmadd_ps(coef, bytesToPs512(_mm_loadu_si128(qs + 2)), a2);
          a3 = _mm512_fmadd_ps(coef, bytesToPs512(_mm_loadu_si128(qs + 3)), a3);
          continue;
        }
        // Bytes 0-15: columns c..c+15 (low nibbles) and c+16..c+31
        // (high); bytes 16-31 the next 32 columns the same way.
        const __m256i b = _mm256_loadu_si256((const __m256i *)(q + c / 2));
        const __m256i lo = _mm256_sub_epi8(_mm256_and_si256(b, mask), eight);
        const __m256i hi = _mm256_sub_epi8(
            _mm256_and_si256(_mm256_srli_epi16(b, 4), mask), eight);
        a0 =
            _mm512_fmadd_ps(coef, bytesToPs512(_mm256_castsi256_si128(lo)), a0);
        a1 =
            _mm512_fmadd_ps(coef, bytesToPs512(_mm256_castsi256_si128(hi)), a1);
        a2 = _mm512_fmadd_ps(coef,
                             bytesToPs512(_mm256_extracti128_si256(lo, 1)), a2);
        a3 = _mm512_fmadd_ps(coef,
                             bytesToPs512(_mm256_extracti128_si256(hi, 1)), a3);
      }
      const __m512 acc[4] = {a0, a1, a2, a3};
      if (!s) {
        for (int part = 0; part < 4; ++part) {
          float *yp = y + c + 16 * part;
          const int64_t cp = c + 16 * part;
          __m512 u = _mm512_mul_ps(
              _mm512_mul_ps(
                  _mm512_loadu_ps(kt.d + cp),
                  bytesToPs512(_mm_loadu_si128(
                      reinterpret_cast<const __m128i *>(kt.sc + cp)))),
              acc[part]);
          if (kt.m)
            u = _mm512_fmadd_ps(
                _mm512_mul_ps(
                    _mm512_loadu_ps(kt.dm + cp),
                    bytesToPs512(_mm_loadu_si128(
                        reinterpret_cast<const __m128i *>(kt.m + cp)))),
                _mm512_set1_ps(kSum), u);
          _mm512_storeu_ps(yp, _mm512_add_ps(_mm512_loadu_ps(yp), u));
        }
        continue;
      }
      for (int part = 0; part < 4; ++part) {
        const __m512 sc = _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)(s + c + 16 * part)));
        const __m512 yv = _mm512_loadu_ps(y + c + 16 * part);
        _mm512_storeu_ps(y + c + 16 * part, _mm512_fmadd_ps(sc, acc[part], yv));
      }
    }
  }
  if (c64 < c1)
    splitDownAvx2(d, g, y, c64, c1);
}
#endif

} // namespace

void splitDownAxpy(const SplitDown &down, const DownGroups &groups, float *y,
                   int64_t c0, int64_t c1) {
#ifdef PINFER_X86
  // Whole chunks of 32 columns in vectors; a SplitK layer's last
  // n_embd % 32 one by one.
  const int64_t whole = c0 + (c1 - c0) / 32 * 32;
  if (kernelLevel() == 2 || kernelIsaIsAvx2()) {
    if (whole > c0) {
      if (kernelLevel() == 2)
        splitDownAvx512(down, groups, y, c0, whole);
      else
        splitDownAvx2(down, groups, y, c0, whole);
    }
    if (whole < c1)
      splitDownScalar(down, groups, y, whole, c1);
    return;
  }
#endif
  splitDownScalar(down, groups, y, c0, c1);
}

} // namespace pinfer
