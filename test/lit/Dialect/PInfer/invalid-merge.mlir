// RUN: pinfer-opt %s -split-input-file -verify-diagnostics

// Tests that merge operands must come from FFN halves.
func.func @not_parts(%x: tensor<64xf32>) {
  // expected-error @+1 {{operands must be results of pinfer.ffn_part}}
  %y = pinfer.merge %x, %x : tensor<64xf32>
  return
}

// -----

// Tests that the halves of a merge must be on different devices.
func.func @same_device(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  %a = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 0, 1>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  %b = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 2, 3>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{halves must be on different devices}}
  %y = pinfer.merge %a, %b : tensor<64xf32>
  return
}

// -----

// Tests that the halves of a merge must share layer and weights.
func.func @other_layer(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  %a = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 0, 1>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  %b = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 1 : i64, neurons = array<i32: 2, 3>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{halves must be of the same layer and weights}}
  %y = pinfer.merge %a, %b : tensor<64xf32>
  return
}

// -----

// Tests that the halves must not share a neuron.
func.func @overlap(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  %a = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 0, 1>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  %b = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 3 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 1, 2, 3>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{neuron 1 is owned by both halves}}
  %y = pinfer.merge %a, %b : tensor<64xf32>
  return
}

// -----

// Tests that without predicted sparsity the halves must cover every neuron.
func.func @uncovered(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  %a = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  %b = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 1 : i64, sparsity = #pinfer.sparsity<exact>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{halves cover 3 of 4 neurons; all must be covered}}
  %y = pinfer.merge %a, %b : tensor<64xf32>
  return
}

// -----

// Tests that a table half and a range half cannot be merged.
func.func @mixed_forms(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 64]>
  %a = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  %b = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 2, 3>}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [64, 4]>, !pinfer.weight<f16, [4, 64]>
  // expected-error @+1 {{halves must both use neuron tables or both ranges}}
  %y = pinfer.merge %a, %b : tensor<64xf32>
  return
}

// -----

// Tests that a value is not copied to the device it already lives on.
func.func @transfer_same(%x: tensor<64xf32>) {
  // expected-error @+1 {{input already lives on the cpu}}
  %y = pinfer.transfer %x to <cpu> : tensor<64xf32>
  return
}
