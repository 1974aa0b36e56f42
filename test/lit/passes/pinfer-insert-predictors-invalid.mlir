// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-insert-predictors=mode=predicted

// Tests that predicted sparsity without the model's learned predictors is
// refused: the runtime has no gate-magnitude predictor, so none is made.
// expected-error @+1 {{mode=predicted needs the model's learned fc1/fc2 predictors}}
module {
  func.func @magnitude(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %c : tensor<32xf32>
  }
}
