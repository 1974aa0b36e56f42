// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-permute-neurons | FileCheck %s

// Tests that the row order (GPU neurons, then CPU neurons) lands on gate,
// up, down and fc2, and the halves become the ranges [0, 2) and [2, 4).
// CHECK-LABEL: func.func @mixed
func.func @mixed(%x: tensor<32xf32>) -> tensor<32xf32> {
  // CHECK: pinfer.weight "g" {neuron_order = array<i32: 3, 1, 0, 2>}
  // CHECK: pinfer.weight "u" {neuron_order = array<i32: 3, 1, 0, 2>}
  // CHECK: pinfer.weight "d" {neuron_order = array<i32: 3, 1, 0, 2>}
  // CHECK: pinfer.weight "fc1" : !pinfer.weight<f16, [32, 8]>
  // CHECK: pinfer.weight "fc2" {neuron_order = array<i32: 3, 1, 0, 2>}
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %u = pinfer.weight "u" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  %fc1 = pinfer.weight "fc1" : !pinfer.weight<f16, [32, 8]>
  %fc2 = pinfer.weight "fc2" : !pinfer.weight<f16, [8, 4]>
  %m = pinfer.predict %x, %fc1, %fc2 {device = #pinfer.device<gpu>, layer = 0 : i64, threshold = 0.0 : f32}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 8]>, !pinfer.weight<f16, [8, 4]> -> tensor<4xi1>
  // CHECK: pinfer.ffn_part {{.*}}count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 2 : i64}
  %c = pinfer.ffn_part %x, %g, %u, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 0, 2>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  // CHECK: pinfer.ffn_part {{.*}}count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<predicted>}
  %h = pinfer.ffn_part %x, %g, %u, %d mask %m : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 3, 1>, sparsity = #pinfer.sparsity<predicted>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %y = pinfer.merge %h, %c : tensor<32xf32>
  return %y : tensor<32xf32>
}

// Tests that an order that is already the identity records nothing.
// CHECK-LABEL: func.func @identity
func.func @identity(%x: tensor<32xf32>) -> tensor<32xf32> {
  // CHECK: pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: pinfer.ffn_part {{.*}}count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
  // CHECK: pinfer.ffn_part {{.*}}count = 3 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 1 : i64}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 0>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 3 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 1, 2, 3>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %y = pinfer.merge %h, %c : tensor<32xf32>
  return %y : tensor<32xf32>
}

// Tests that neurons no half owns (predicted sparsity dropped them) are
// placed after both halves.
// CHECK-LABEL: func.func @dropped
func.func @dropped(%x: tensor<32xf32>) -> tensor<32xf32> {
  // CHECK: pinfer.weight "g" {neuron_order = array<i32: 2, 0, 1, 3>}
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  %m = pinfer.predict %x, %g {layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 4]> -> tensor<4xi1>
  %h = pinfer.ffn_part %x, %g, %g, %d mask %m : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 2>, sparsity = #pinfer.sparsity<predicted>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %c = pinfer.ffn_part %x, %g, %g, %d mask %m : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 0>, sparsity = #pinfer.sparsity<predicted>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %y = pinfer.merge %h, %c : tensor<32xf32>
  return %y : tensor<32xf32>
}

// -----

// Tests that one weight cannot take two different orders.
func.func @shared_weight(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g0 = pinfer.weight "g0" : !pinfer.weight<f16, [32, 4]>
  %g1 = pinfer.weight "g1" : !pinfer.weight<f16, [32, 4]>
  // expected-error @+1 {{is used by two FFNs with different neuron orders}}
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  %a = pinfer.ffn_part %x, %g0, %g0, %d {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 3>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %b = pinfer.ffn_part %x, %g0, %g0, %d {activation = #pinfer.activation<relu>, count = 3 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 0, 1, 2>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %y0 = pinfer.merge %a, %b : tensor<32xf32>
  %c = pinfer.ffn_part %y0, %g1, %g1, %d {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<gpu>, layer = 1 : i64, neurons = array<i32: 2>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %e = pinfer.ffn_part %y0, %g1, %g1, %d {activation = #pinfer.activation<relu>, count = 3 : i64, device = #pinfer.device<cpu>, layer = 1 : i64, neurons = array<i32: 0, 1, 3>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %y1 = pinfer.merge %c, %e : tensor<32xf32>
  return %y1 : tensor<32xf32>
}
