// The CPU half's per-neuron gate/up loop as a template that generated
// executables instantiate once per layer, with the layer's width, weight
// types, activation and sparsity mode as constants, and compile for the
// target CPU (pinferc passes -march to the host compiler). The dot products
// are runtime/dot_kernels.h's, the very functions the runtime's generic
// loop calls through pointers, so a specialised neuron's activation is
// bitwise the generic one's (and the dense reference's); what the
// specialisation removes is the per-row dispatch, the mode and activation
// branches, and the loop bounds the compiler could not see.
#pragma once

#include "runtime/dot_kernels.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/program.h"

#include <cmath>
#include <cstdint>

namespace pinfer {

// Whether this translation unit may use the AVX2 kernels: the host compiler
// was told the target CPU has AVX2, FMA and F16C.
#if defined(PINFER_X86) && defined(__AVX2__) && defined(__FMA__) &&          \
    defined(__F16C__)
#define PINFER_FFN_AVX2 1
#else
#define PINFER_FFN_AVX2 0
#endif

// One row of weight type T (N elements) with the FFN input: Q8_0/Q4_0 rows
// with its 8-bit copy, the others with the f32 vector, as the runtime's
// products do.
template <GGMLType T, int64_t N>
inline float ffnDot(const uint8_t *row, const float *x, const BlockQ8Act *xq) {
#if PINFER_FFN_AVX2
  if constexpr (T == GGMLType::Q8_0)
    return dotk::dotQ8_0Q8Avx2(row, xq, N);
  else if constexpr (T == GGMLType::Q4_0)
    return dotk::dotQ4_0Q8Avx2(row, xq, N);
  else if constexpr (T == GGMLType::F16)
    return dotk::dotF16Avx2(row, x, N);
  else if constexpr (T == GGMLType::BF16)
    return dotk::dotBF16Avx2(row, x, N);
  else
    return dotk::dotF32Avx2(row, x, N);
#else
  if constexpr (T == GGMLType::Q8_0)
    return dotk::dotQ8_0Q8(row, xq, N);
  else if constexpr (T == GGMLType::Q4_0)
    return dotk::dotQ4_0Q8(row, xq, N);
  else if constexpr (T == GGMLType::F16)
    return dotk::dotF16(row, x, N);
  else if constexpr (T == GGMLType::BF16)
    return dotk::dotBF16(row, x, N);
  else
    return dotk::dotF32(row, x, N);
#endif
}

// Neurons [first + k0, first + k1): gate, activation, the mode's test, up
// and their product into h; with predictor scores (a.logits, the cold half
// of predicted mode) only the neurons the predictor chose. Skip: exact,
// threshold and predicted modes (|activation| <= skipAtOrBelow skips up);
// dense computes every up.
template <int64_t N, GGMLType Gate, GGMLType Up, FfnActivation Act, bool Skip>
void gateUpRows(const GateUpArgs &a, int64_t k0, int64_t k1) {
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t r = a.first + k;
    if (a.logits) {
      a.chosen[k] = a.logits[r] > a.predictorThreshold;
      if (!a.chosen[k]) {
        a.h[k] = 0.f;
        continue;
      }
    }
    const float g =
        ffnDot<Gate, N>(a.gate + size_t(r) * a.gateRowBytes, a.x, a.xq);
    const float act = Act == FfnActivation::SiLU ? silu(g) : relu(g);
    if (Skip && std::fabs(act) <= a.skipAtOrBelow) {
      a.h[k] = 0.f;
      continue;
    }
    const float u = ffnDot<Up, N>(a.up + size_t(r) * a.upRowBytes, a.x, a.xq);
    a.h[k] = act * (Act == FfnActivation::DReLU ? relu(u) : u);
  }
}

} // namespace pinfer
