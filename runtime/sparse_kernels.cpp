// CPU kernels of the sparse FFN halves; see sparse_kernels.h.
#include "runtime/sparse_kernels.h"

#include "runtime/kernels.h"

namespace pinfer {

void sparseDots(const Weight &w, const uint32_t *rows, int64_t first,
                int64_t nRows, const float *x, float *out) {
  for (int64_t k = 0; k < nRows; ++k) {
    int64_t r = rows ? int64_t(rows[k]) : first + k;
    out[k] = dotRow(w.type, w.row(r), x, w.cols);
  }
}

bool axpyRowRange(GGMLType type, const void *rowv, float a, float *y,
                  int64_t c0, int64_t c1) {
  switch (type) {
  case GGMLType::F32: {
    const float *row = static_cast<const float *>(rowv);
    for (int64_t i = c0; i < c1; ++i)
      y[i] += a * row[i];
    return true;
  }
  case GGMLType::F16: {
    const uint16_t *row = static_cast<const uint16_t *>(rowv);
    for (int64_t i = c0; i < c1; ++i)
      y[i] += a * fp16ToF32(row[i]);
    return true;
  }
  case GGMLType::BF16: {
    const uint16_t *row = static_cast<const uint16_t *>(rowv);
    for (int64_t i = c0; i < c1; ++i)
      y[i] += a * bf16ToF32(row[i]);
    return true;
  }
  case GGMLType::Q8_0: {
    const BlockQ8_0 *b = static_cast<const BlockQ8_0 *>(rowv);
    for (int64_t blk = c0 / QK8_0; blk < c1 / QK8_0; ++blk) {
      // Scale once per block: a * d * q.
      float s = a * fp16ToF32(b[blk].d);
      float *yb = y + blk * QK8_0;
      for (int j = 0; j < QK8_0; ++j)
        yb[j] += s * float(b[blk].qs[j]);
    }
    return true;
  }
  case GGMLType::Q4_0: {
    const BlockQ4_0 *b = static_cast<const BlockQ4_0 *>(rowv);
    for (int64_t blk = c0 / QK4_0; blk < c1 / QK4_0; ++blk) {
      float s = a * fp16ToF32(b[blk].d);
      float *yb = y + blk * QK4_0;
      for (int j = 0; j < QK4_0 / 2; ++j) {
        yb[j] += s * float((b[blk].qs[j] & 0xF) - 8);
        yb[j + QK4_0 / 2] += s * float((b[blk].qs[j] >> 4) - 8);
      }
    }
    return true;
  }
  default:
    return false;
  }
}

bool axpyRow(GGMLType type, const void *row, float a, float *y, int64_t n) {
  return axpyRowRange(type, row, a, y, 0, n);
}

void sparseDownAxpy(const Weight &downT, const uint32_t *rows, int64_t first,
                    int64_t nRows, const float *coef, float *y, int64_t c0,
                    int64_t c1, bool skipZero) {
  for (int64_t k = 0; k < nRows; ++k) {
    if (skipZero && coef[k] == 0.f)
      continue;
    int64_t r = rows ? int64_t(rows[k]) : first + k;
    axpyRowRange(downT.type, downT.row(r), coef[k], y, c0, c1);
  }
}

} // namespace pinfer
