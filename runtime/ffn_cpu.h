// The CPU half's per-neuron gate/up loop as a template that generated
// executables instantiate once per layer, with the layer's width, weight
// types, activation and sparsity mode as constants, and compile for the
// target CPU (pinferc passes -march to the host compiler). The dot products
// are runtime/dot_kernels.h's, named by the type table's rows
// (runtime/type_table.h), the very functions the runtime's generic loop
// calls through pointers, so a specialised neuron's activation is
// bitwise the generic one's (and the dense reference's); what the
// specialisation removes is the per-row dispatch, the mode and activation
// branches, and the loop bounds the compiler could not see.
#pragma once

#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/program.h"
#include "runtime/type_table.h"

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
// The kernel level (runtime/kernels.h, kernelLevel) this translation unit
// instantiates: AVX-512 VNNI where the target CPU has F, BW, VL and VNNI.
#if PINFER_FFN_AVX2 && defined(__AVX512F__) && defined(__AVX512BW__) &&      \
    defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define PINFER_FFN_LEVEL 2
#else
#define PINFER_FFN_LEVEL PINFER_FFN_AVX2
#endif

// One row of weight type T (N elements) with the FFN input, as the
// runtime's products multiply it: the kernel and the activation format come
// from T's row of the type table, read at compile time, so the call is a
// direct (inlinable) call of the very function the runtime reaches through
// the row.
template <GGMLType T, int64_t N>
inline float ffnDot(const uint8_t *row, const GateUpArgs &a) {
  constexpr const TypeTraits &t = traitsOf<T>();
  static_assert(t.computable, "gateUpRows needs a computable type");
  constexpr TypeKernels k = t.kernelsAt(PINFER_FFN_LEVEL);
  // Every computable row has the kernels its activation format needs
  // (compiler_type_traits_test); a function pointer's null test is not a
  // constant expression in a sanitised build, so it is not asserted here.
  if constexpr (t.act == ActFormat::Q8) {
    if constexpr (k.readsPairs)
      if (a.xp)
        return k.dotQ8Pairs(row, a.xp, a.xpScales, N);
    return k.dotQ8(row, a.xq, N);
  } else {
    return k.dot(row, a.x, N);
  }
}

// Neurons [first + k0, first + k1): gate, activation, the mode's test, up
// and their product into h; with predictor scores (a.logits, the cold half
// of predicted mode) only the neurons the predictor chose. Skip: exact,
// threshold and predicted modes (|activation| <= skipAtOrBelow skips up);
// dense computes every up.
template <int64_t N, GGMLType Gate, GGMLType Up, FfnActivation Act, bool Skip>
void gateUpRows(const GateUpArgs &a, int64_t k0, int64_t k1) {
  // With a predictor the rows read are scattered: the next chosen
  // neuron's gate row and this one's up row are asked for ahead.
  auto chosenFrom = [&](int64_t k) {
    return nextChosen(a.logits, a.first, a.predictorThreshold, k, k1);
  };
  int64_t next = a.logits ? chosenFrom(k0) : k0;
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t r = a.first + k;
    if (a.logits) {
      a.chosen[k] = k == next;
      if (!a.chosen[k]) {
        a.h[k] = 0.f;
        continue;
      }
      next = chosenFrom(k + 1);
      if (next < k1)
        dotk::prefetchRowStart(a.gate + size_t(a.first + next) * a.gateRowBytes,
                               a.gateRowBytes);
      dotk::prefetchRowStart(a.up + size_t(r) * a.upRowBytes, a.upRowBytes);
    }
    const float g = ffnDot<Gate, N>(a.gate + size_t(r) * a.gateRowBytes, a);
    const float act = ffnGate<Act>(g);
    if (Skip && std::fabs(act) <= a.skipAtOrBelow) {
      a.h[k] = 0.f;
      continue;
    }
    const float u = ffnDot<Up, N>(a.up + size_t(r) * a.upRowBytes, a);
    a.h[k] = act * ffnUp<Act>(u);
  }
}

} // namespace pinfer
