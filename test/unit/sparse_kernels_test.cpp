// Tests the sparse FFN kernels against the dense kernels and against double
// precision sums over the dequantised weights, for every computable type.
#include "runtime/sparse_kernels.h"

#include "runtime/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace pinfer;

namespace {

// A quantised {cols, rows} matrix with its dequantised twin.
struct Matrix {
  std::vector<uint8_t> bytes;
  std::vector<float> deq; // [rows][cols]
  Weight w;
};

Matrix makeMatrix(GGMLType type, int64_t cols, int64_t rows, uint32_t seed) {
  Matrix m;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  size_t rb = rowBytes(type, cols);
  m.bytes.resize(rb * rows);
  m.deq.resize(size_t(cols) * rows);
  std::vector<float> src(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float &v : src)
      v = dist(rng);
    EXPECT_TRUE(quantizeRow(type, src.data(), m.bytes.data() + r * rb, cols));
    EXPECT_TRUE(dequantizeRow(type, m.bytes.data() + r * rb,
                              m.deq.data() + r * cols, cols));
  }
  m.w.type = type;
  m.w.cols = cols;
  m.w.rows = rows;
  m.w.rowBytes = rb;
  m.w.data = m.bytes.data();
  return m;
}

const GGMLType kTypes[] = {GGMLType::F32, GGMLType::F16, GGMLType::BF16,
                           GGMLType::Q8_0, GGMLType::Q4_0};

class SparseKernels : public ::testing::TestWithParam<GGMLType> {};

// Tests that gathered dot products are bitwise the dense kernel's values.
TEST_P(SparseKernels, DotsMatchDenseKernel) {
  const int64_t cols = 96, rows = 40;
  Matrix m = makeMatrix(GetParam(), cols, rows, 7);
  std::vector<float> x(cols);
  for (int64_t i = 0; i < cols; ++i)
    x[i] = std::sin(0.37f * float(i));
  std::vector<float> dense(rows);
  matvecRows(m.w, x.data(), dense.data(), 0, rows);

  std::vector<uint32_t> idx = {3, 0, 39, 17, 17, 22};
  std::vector<float> out(idx.size());
  sparseDots(m.w, idx.data(), 0, int64_t(idx.size()), x.data(), out.data());
  for (size_t k = 0; k < idx.size(); ++k)
    EXPECT_EQ(out[k], dense[idx[k]]) << "index " << k;

  std::vector<float> range(10);
  sparseDots(m.w, nullptr, 12, 10, x.data(), range.data());
  for (int k = 0; k < 10; ++k)
    EXPECT_EQ(range[k], dense[12 + k]) << "row " << 12 + k;
}

// Tests that the down accumulation equals the double-precision sum of the
// dequantised rows, skips zero coefficients, and honours column ranges.
TEST_P(SparseKernels, DownAxpyMatchesDouble) {
  const int64_t nEmbd = 128, nNeurons = 50;
  Matrix m = makeMatrix(GetParam(), nEmbd, nNeurons, 11);
  std::vector<uint32_t> idx = {1, 4, 9, 16, 25, 36, 49};
  std::vector<float> coef = {0.5f, -1.25f, 0.f, 2.f, 0.125f, -0.75f, 1.f};

  std::vector<double> want(nEmbd, 0.0);
  double norm = 0;
  for (size_t k = 0; k < idx.size(); ++k)
    for (int64_t c = 0; c < nEmbd; ++c)
      want[c] += double(coef[k]) * m.deq[idx[k] * nEmbd + c];
  for (double v : want)
    norm += v * v;
  norm = std::sqrt(norm);

  std::vector<float> y(nEmbd, 0.f);
  // Two column ranges, as two threads would split the output.
  sparseDownAxpy(m.w, idx.data(), 0, int64_t(idx.size()), coef.data(), y.data(),
                 0, 64);
  sparseDownAxpy(m.w, idx.data(), 0, int64_t(idx.size()), coef.data(), y.data(),
                 64, nEmbd);
  double err = 0;
  for (int64_t c = 0; c < nEmbd; ++c)
    err += (y[c] - want[c]) * (y[c] - want[c]);
  EXPECT_LT(std::sqrt(err) / norm, 1e-6);

  // A neuron whose coefficient is zero must not be read: NaN weights in it
  // would otherwise poison the output.
  Matrix nan = makeMatrix(GGMLType::F32, nEmbd, 2, 3);
  reinterpret_cast<float *>(nan.bytes.data())[5] = NAN;
  std::vector<float> c2 = {0.f, 1.f}, y2(nEmbd, 0.f);
  sparseDownAxpy(nan.w, nullptr, 0, 2, c2.data(), y2.data(), 0, nEmbd);
  EXPECT_FALSE(std::isnan(y2[5]));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SparseKernels, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<GGMLType> &info) {
                           return std::string(typeName(info.param));
                         });

// Tests that a type without kernels is refused rather than misread.
TEST(SparseKernelsTypes, RefusesUnknownType) {
  float y[32] = {};
  uint8_t row[64] = {};
  EXPECT_FALSE(axpyRow(GGMLType::IQ4_XS, row, 1.f, y, 32));
}

} // namespace
