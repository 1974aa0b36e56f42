// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-verify-lowering

// Tests that a GPU predictor (never uploaded by the runtime) and a
// gate-magnitude predictor are refused.
module attributes {pinfer.memory = {context_length = 8 : i64}} {
  func.func @predictors(%x: tensor<32xf32>) -> (tensor<4xi1>, tensor<4xi1>) {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %fc1 = pinfer.weight "blk.0.fc1.weight" : !pinfer.weight<f16, [32, 8]>
    %fc2 = pinfer.weight "blk.0.fc2.weight" : !pinfer.weight<f16, [8, 4]>
    // expected-error @+1 {{on the GPU: the runtime predicts for the CPU half only}}
    %m0 = pinfer.predict %x, %fc1, %fc2 {device = #pinfer.device<gpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 8]>, !pinfer.weight<f16, [8, 4]> -> tensor<4xi1>
    // expected-error @+1 {{predicts from the gate magnitude}}
    %m1 = pinfer.predict %x, %g {device = #pinfer.device<cpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 4]> -> tensor<4xi1>
    return %m0, %m1 : tensor<4xi1>, tensor<4xi1>
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
