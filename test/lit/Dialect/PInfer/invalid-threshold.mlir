// RUN: pinfer-opt %s -split-input-file -verify-diagnostics

// Tests that threshold sparsity needs a threshold.
func.func @missing(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{a threshold is required exactly when sparsity is threshold}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<threshold>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that another sparsity takes no threshold.
func.func @stray(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{a threshold is required exactly when sparsity is threshold}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<exact>, threshold = 0.5 : f32}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that a negative threshold is refused.
func.func @negative(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{threshold -1.000000e+00 must be finite and >= 0}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<threshold>, threshold = -1.0 : f32}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that a NaN threshold is refused.
func.func @nan(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{must be finite and >= 0}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<threshold>, threshold = 0x7FC00000 : f32}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}
