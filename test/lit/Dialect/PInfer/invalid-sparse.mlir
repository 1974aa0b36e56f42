// RUN: pinfer-opt %s -split-input-file -verify-diagnostics

// Tests that a part's count must be within the layer.
func.func @count(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{count 0 must be in [1, 4]}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 0 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that a part names its neurons exactly one way.
func.func @both_forms(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{needs exactly one of offset and neurons}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, neurons = array<i32: 0>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that a range must stay within n_ff.
func.func @range(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{range [3, 5) exceeds n_ff = 4}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 3 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that a table must hold count entries.
func.func @table_size(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{neurons has 1 entries, count is 2}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 0>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that table indices must be in [0, n_ff).
func.func @table_range(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{neurons: index 4 at position 1 is outside [0, 4)}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 0, 4>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that a table held in a missing resource is reported.
func.func @table_no_data(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{neurons resource has no data}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = dense_resource<gone> : tensor<2xi32>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that predicted sparsity needs a mask.
func.func @no_mask(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{a mask is required exactly when sparsity is predicted}}
  %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<predicted>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that the mask has one bit per neuron.
func.func @mask_length(%x: tensor<64xf32>, %m: tensor<3xi1>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{mask must have n_ff = 4 bits}}
  %h = pinfer.ffn_part %x, %g, %g, %d mask %m : tensor<3xi1> {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<predicted>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  return
}

// -----

// Tests that a learned predictor's fc2 must map rank to n_ff.
func.func @predict_fc2(%x: tensor<64xf32>) {
  %a = pinfer.weight "fc1" : !pinfer.weight<f16, [64, 16]>
  %b = pinfer.weight "fc2" : !pinfer.weight<f16, [8, 4]>
  // expected-error @+1 {{fc2 must be [16, 4]}}
  %m = pinfer.predict %x, %a, %b {layer = 0 : i64, threshold = 0.0 : f32} : tensor<64xf32>, !pinfer.weight<f16, [64, 16]>, !pinfer.weight<f16, [8, 4]> -> tensor<4xi1>
  return
}

// -----

// Tests that a magnitude predictor's gate must match input and mask.
func.func @predict_gate(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 8]>
  // expected-error @+1 {{gate must be [64, 4]}}
  %m = pinfer.predict %x, %g {layer = 0 : i64, threshold = 0.0 : f32} : tensor<64xf32>, !pinfer.weight<f16, [64, 8]> -> tensor<4xi1>
  return
}

// -----

// Tests that a predictor takes one or two weights.
func.func @predict_arity(%x: tensor<64xf32>) {
  // expected-error @+1 {{takes the gate or fc1 and fc2, got 0 weights}}
  %m = "pinfer.predict"(%x) {layer = 0 : i64, threshold = 0.0 : f32} : (tensor<64xf32>) -> tensor<4xi1>
  return
}
