// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-insert-predictors=mode=predicted | FileCheck %s --check-prefix=PRED
// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-insert-predictors=mode=exact | FileCheck %s --check-prefix=EXACT
// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-insert-predictors=mode=dense | FileCheck %s --check-prefix=DENSE
// RUN: not pinfer-opt %s -split-input-file -pinfer-insert-predictors=mode=sometimes 2>&1 | FileCheck %s --check-prefix=BAD

// Tests that with the model's predictors each half gets its own predictor
// on its device over the layer's fc1/fc2, of that layer's own rank (layers
// 0 and 1 have other ranks), both halves predicted; exact and dense only
// set the sparsity.
// BAD: mode must be dense, exact, predicted or threshold, got 'sometimes'
module attributes {pinfer.predictor = {fc1 = [!pinfer.weight<f16, [32, 5]>, !pinfer.weight<f16, [32, 6]>, !pinfer.weight<f16, [32, 8]>], fc2 = [!pinfer.weight<f16, [5, 4]>, !pinfer.weight<f16, [6, 4]>, !pinfer.weight<f16, [8, 4]>]}} {
  // PRED-LABEL: func.func @learned
  // EXACT-LABEL: func.func @learned
  // DENSE-LABEL: func.func @learned
  func.func @learned(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    // PRED: %[[FC1:.+]] = pinfer.weight "blk.2.fc1.weight" : !pinfer.weight<f16, [32, 8]>
    // PRED: %[[FC2:.+]] = pinfer.weight "blk.2.fc2.weight" : !pinfer.weight<f16, [8, 4]>
    // PRED: %[[M0:.+]] = pinfer.predict %[[X:.+]], %[[FC1]], %[[FC2]] {device = #pinfer.device<gpu>, layer = 2 : i64, threshold = 0.000000e+00 : f32}
    // PRED: pinfer.ffn_part %[[X]], {{.*}} mask %[[M0]] : tensor<4xi1> {{{.*}}device = #pinfer.device<gpu>{{.*}}sparsity = #pinfer.sparsity<predicted>
    // PRED: %[[M1:.+]] = pinfer.predict %[[X]], %[[FC1]], %[[FC2]] {device = #pinfer.device<cpu>, layer = 2 : i64, threshold = 0.000000e+00 : f32}
    // PRED: pinfer.ffn_part {{.*}} mask %[[M1]] : tensor<4xi1> {{{.*}}device = #pinfer.device<cpu>{{.*}}sparsity = #pinfer.sparsity<predicted>
    // EXACT-NOT: pinfer.predict
    // EXACT-COUNT-2: sparsity = #pinfer.sparsity<exact>
    // DENSE-NOT: {{pinfer.predict|sparsity<}}
    %h = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 2 : i64, neurons = array<i32: 3, 1>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 2 : i64, neurons = array<i32: 0, 2>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %y = pinfer.merge %h, %c : tensor<32xf32>
    return %y : tensor<32xf32>
  }
}

// -----

// Tests that a malformed pinfer.predictor attribute is rejected.
// expected-error @+1 {{pinfer.predictor must be {fc1 = [!pinfer.weight<...>, ...], fc2 = [...]}, one type per layer in each}}
module attributes {pinfer.predictor = {fc1 = [!pinfer.weight<f16, [32, 8]>]}} {
  func.func @bad_predictor() {
    return
  }
}
