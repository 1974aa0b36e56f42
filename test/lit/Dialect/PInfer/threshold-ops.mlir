// RUN: pinfer-opt %s | pinfer-opt | FileCheck %s

// Tests that halves with threshold sparsity and their per-layer threshold
// round-trip.
// CHECK-LABEL: func.func @thresholded
func.func @thresholded(%x: tensor<64xf32>) -> tensor<64xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 8]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [8, 64]>
  // CHECK: %[[H:.+]] = pinfer.ffn_part {{.*}}device = #pinfer.device<gpu>, layer = 3 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<threshold>, threshold = 1.250000e-01 : f32}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 3 : i64, device = #pinfer.device<gpu>, layer = 3 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<threshold>, threshold = 0.125 : f32}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [8, 64]>
  // CHECK: %[[C:.+]] = pinfer.ffn_part {{.*}}device = #pinfer.device<cpu>, layer = 3 : i64, offset = 3 : i64, sparsity = #pinfer.sparsity<threshold>, threshold = 0.000000e+00 : f32}
  %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 5 : i64, device = #pinfer.device<cpu>, layer = 3 : i64, offset = 3 : i64, sparsity = #pinfer.sparsity<threshold>, threshold = 0.0 : f32}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [8, 64]>
  // CHECK: pinfer.merge %[[H]], %[[C]] : tensor<64xf32>
  %y = pinfer.merge %h, %c : tensor<64xf32>
  return %y : tensor<64xf32>
}
