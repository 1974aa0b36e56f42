// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-verify-lowering

// Tests that a predictor must run on its half's device (the runtime runs
// each half's predictor where the half runs, a GPU half's on the GPU), and
// that a gate-magnitude predictor is refused; a GPU half's own predictor
// on the GPU is accepted.
module attributes {pinfer.memory = {context_length = 8 : i64}} {
  func.func @predictors(%x: tensor<32xf32>) -> (tensor<32xf32>, tensor<32xf32>, tensor<32xf32>) {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    %fc1 = pinfer.weight "blk.0.fc1.weight" : !pinfer.weight<f16, [32, 8]>
    %fc2 = pinfer.weight "blk.0.fc2.weight" : !pinfer.weight<f16, [8, 4]>
    // expected-error @+1 {{feeds an op on another device: the runtime runs a half's predictor where the half runs}}
    %m0 = pinfer.predict %x, %fc1, %fc2 {device = #pinfer.device<gpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 8]>, !pinfer.weight<f16, [8, 4]> -> tensor<4xi1>
    %h0 = pinfer.ffn_part %x, %g, %g, %d mask %m0 : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<predicted>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    // expected-error @+1 {{predicts from the gate magnitude}}
    %m1 = pinfer.predict %x, %g {device = #pinfer.device<cpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 4]> -> tensor<4xi1>
    %h1 = pinfer.ffn_part %x, %g, %g, %d mask %m1 : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<predicted>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %m2 = pinfer.predict %x, %fc1, %fc2 {device = #pinfer.device<gpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 8]>, !pinfer.weight<f16, [8, 4]> -> tensor<4xi1>
    %h2 = pinfer.ffn_part %x, %g, %g, %d mask %m2 : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<predicted>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %h0, %h1, %h2 : tensor<32xf32>, tensor<32xf32>, tensor<32xf32>
  }
}

// -----

// Tests that an event must be waited for exactly once.
module attributes {pinfer.memory = {context_length = 8 : i64}} {
  func.func @unwaited() {
    // expected-error @+1 {{has 0 waits}}
    %e = pinfer.record : !pinfer.event
    return
  }
}

// -----

// Tests that IR whose memory was not planned is refused.
// expected-error @+1 {{has no pinfer.memory}}
module {
  func.func @unplanned() {
    return
  }
}
