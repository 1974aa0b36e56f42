// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-insert-predictors=mode=threshold | FileCheck %s

// Tests that threshold mode gives both halves of a layer that layer's entry
// of pinfer.act_thresholds, adds no predictor, and leaves the other layer's
// entry to its own part.
module attributes {pinfer.act_thresholds = array<f32: 0.25, 0.5, 0.125>} {
  // CHECK-LABEL: func.func @two_layers
  func.func @two_layers(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    // CHECK-NOT: pinfer.predict
    // CHECK: %[[H:.+]] = pinfer.ffn_part {{.*}}device = #pinfer.device<gpu>, layer = 1 : i64, neurons = array<i32: 3, 1>, sparsity = #pinfer.sparsity<threshold>, threshold = 5.000000e-01 : f32}
    // CHECK: %[[C:.+]] = pinfer.ffn_part {{.*}}device = #pinfer.device<cpu>, layer = 1 : i64, neurons = array<i32: 0, 2>, sparsity = #pinfer.sparsity<threshold>, threshold = 5.000000e-01 : f32}
    // CHECK: pinfer.ffn_part {{.*}}layer = 2 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<threshold>, threshold = 1.250000e-01 : f32}
    %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 1 : i64, neurons = array<i32: 3, 1>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 1 : i64, neurons = array<i32: 0, 2>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %y = pinfer.merge %h, %c : tensor<32xf32>
    %z = pinfer.ffn_part %y, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 2 : i64, offset = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %z : tensor<32xf32>
  }
}

// -----

// Tests that threshold mode without calibrated thresholds is refused.
// expected-error @+1 {{mode=threshold needs the module attribute pinfer.act_thresholds}}
module {
  func.func @no_thresholds(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %c : tensor<32xf32>
  }
}

// -----

// Tests that a layer beyond the thresholds table is refused.
module attributes {pinfer.act_thresholds = array<f32: 0.25>} {
  func.func @short_table(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    // expected-error @+1 {{layer 1 has no entry in pinfer.act_thresholds, which has 1; expected one per layer}}
    %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 1 : i64, offset = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %c : tensor<32xf32>
  }
}

// -----

// Tests that a negative calibrated threshold is refused by the verifier.
module attributes {pinfer.act_thresholds = array<f32: -0.5>} {
  func.func @negative(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    // expected-error @+1 {{threshold -5.000000e-01 must be finite and >= 0}}
    %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<silu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %c : tensor<32xf32>
  }
}
