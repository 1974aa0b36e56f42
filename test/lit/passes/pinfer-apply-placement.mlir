// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-apply-placement | FileCheck %s

// Tests that each ffn gets its layer's hot count and order, attention and
// lm_head their devices, and the plan attribute is consumed.
// CHECK-LABEL: module
// CHECK-NOT: pinfer.plan
module attributes {pinfer.plan = {lm_head = #pinfer.device<gpu>, layers = [
    {attention = #pinfer.device<gpu>, hot = 2 : i64, order = array<i32: 3, 1, 0, 2>},
    {hot = 0 : i64}]}} {
  // CHECK-LABEL: func.func @two_layers
  func.func @two_layers(%x: tensor<32xf32>, %pos: i32) -> tensor<32xf32> {
    %wq = pinfer.weight "wq" : !pinfer.weight<f16, [32, 32]>
    // CHECK: pinfer.attention {{.*}}device = #pinfer.device<gpu>{{.*}}layer = 0
    %a = pinfer.attention %x, %pos, %wq, %wq, %wq, %wq {layer = 0 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    // CHECK: pinfer.ffn {{.*}}hot_count = 2 : i64, layer = 0 : i64, neuron_order = array<i32: 3, 1, 0, 2>
    %f0 = pinfer.ffn %a, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    // CHECK: pinfer.ffn {{.*}}hot_count = 0 : i64, layer = 1 : i64}
    %f1 = pinfer.ffn %f0, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 1 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %n = pinfer.weight "n" : !pinfer.weight<f32, [32]>
    // CHECK: pinfer.lm_head {{.*}}device = #pinfer.device<gpu>
    %l = pinfer.lm_head %f1, %n, %g {epsilon = 1.0e-05 : f32}
        : tensor<32xf32>, !pinfer.weight<f32, [32]>, !pinfer.weight<f16, [32, 4]> -> tensor<4xf32>
    return %f1 : tensor<32xf32>
  }
}

// -----

// Tests that a module without a plan is rejected.
// expected-error @+1 {{no pinfer.plan attribute on the module}}
module {
  func.func @no_plan() {
    return
  }
}

// -----

// Tests that the plan's layer count must match the module's.
// expected-error @+1 {{pinfer.plan has 2 layers, the module has 1 ffn ops}}
module attributes {pinfer.plan = {layers = [{hot = 1 : i64}, {hot = 1 : i64}]}} {
  func.func @layer_count(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %f : tensor<32xf32>
  }
}

// -----

// Tests that more hot neurons than the layer has are rejected.
module attributes {pinfer.plan = {layers = [{hot = 5 : i64}]}} {
  func.func @too_hot(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    // expected-error @+1 {{plan puts 5 hot neurons in a layer of 4}}
    %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %f : tensor<32xf32>
  }
}

// -----

// Tests that an order that is not a permutation of the layer is rejected.
module attributes {pinfer.plan = {layers = [{hot = 1 : i64, order = array<i32: 0, 1, 1, 2>}]}} {
  func.func @bad_order(%x: tensor<32xf32>) -> tensor<32xf32> {
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    // expected-error @+1 {{plan order of layer 0 must be a permutation of the 4 neurons}}
    %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    return %f : tensor<32xf32>
  }
}
