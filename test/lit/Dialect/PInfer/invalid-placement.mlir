// RUN: pinfer-opt %s -split-input-file -verify-diagnostics

// Tests that a placed ffn cannot have more hot neurons than it has.
func.func @hot_count(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f32, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [4, 64]>
  // expected-error @+1 {{hot_count 5 must be in [0, 4]}}
  %y = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64, hot_count = 5 : i64}
      : tensor<64xf32>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [4, 64]>
  return
}

// -----

// Tests that an ffn's neuron order must be a permutation.
func.func @ffn_order(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f32, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [4, 64]>
  // expected-error @+1 {{neuron_order is not a permutation: index 1 appears twice}}
  %y = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64, hot_count = 1 : i64, neuron_order = array<i32: 1, 1, 2, 3>}
      : tensor<64xf32>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [4, 64]>
  return
}

// -----

// Tests that an ffn's neuron order must list every neuron.
func.func @ffn_order_length(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f32, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [4, 64]>
  // expected-error @+1 {{neuron_order must list all 4 neurons, has 3}}
  %y = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64, hot_count = 1 : i64, neuron_order = array<i32: 1, 0, 2>}
      : tensor<64xf32>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [4, 64]>
  return
}

// -----

// Tests that a neuron order without a hot count is rejected.
func.func @order_without_hot(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f32, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [4, 64]>
  // expected-error @+1 {{neuron_order needs hot_count}}
  %y = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64, neuron_order = array<i32: 1, 0, 2, 3>}
      : tensor<64xf32>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [64, 4]>, !pinfer.weight<f32, [4, 64]>
  return
}

// -----

// Tests that a weight's neuron order must match one of its axes.
func.func @weight_order_axis() {
  // expected-error @+1 {{neuron_order of 3 entries matches no neuron axis of the weight}}
  %g = pinfer.weight "g" {neuron_order = array<i32: 0, 1, 2>} : !pinfer.weight<f32, [64, 4]>
  return
}

// -----

// Tests that a weight's neuron order must be a permutation.
func.func @weight_order_range() {
  // expected-error @+1 {{neuron_order is not a permutation: index 7 at position 0 is outside [0, 4)}}
  %g = pinfer.weight "g" {neuron_order = array<i32: 7, 1, 2, 3>} : !pinfer.weight<f32, [64, 4]>
  return
}

// -----

// Tests that a neuron table held in a missing resource is reported.
func.func @weight_order_no_data() {
  // expected-error @+1 {{neuron_order resource has no data}}
  %g = pinfer.weight "g" {neuron_order = dense_resource<gone> : tensor<4xi32>} : !pinfer.weight<f32, [64, 4]>
  return
}
