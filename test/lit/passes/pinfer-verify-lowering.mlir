// RUN: pinfer-opt %s -pinfer-verify-lowering | FileCheck %s

// Tests that lowered IR the runtime runs passes unchanged: a split layer
// (GPU half skipping exact zeros, CPU half with the model's predictor), one
// record with its one wait, attention and head on the CPU.
// CHECK-LABEL: func.func @runnable
// CHECK: pinfer.record
// CHECK: pinfer.wait
// CHECK: pinfer.merge
module attributes {pinfer.memory = {context_length = 8 : i64}} {
  func.func @runnable(%x: tensor<32xf32>, %pos: i32) -> tensor<32xf32> {
    %w = pinfer.weight "wq" : !pinfer.weight<f16, [32, 32]>
    %a = pinfer.attention %x, %pos, %w, %w, %w, %w {device = #pinfer.device<cpu>, layer = 0 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
    %r = pinfer.add %x, %a : tensor<32xf32>
    %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
    %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
    %fc1 = pinfer.weight "blk.0.fc1.weight" : !pinfer.weight<f16, [32, 8]>
    %fc2 = pinfer.weight "blk.0.fc2.weight" : !pinfer.weight<f16, [8, 4]>
    %rg = pinfer.transfer %r to <gpu> : tensor<32xf32>
    %h = pinfer.ffn_part %rg, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<exact>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %hc = pinfer.transfer %h to <cpu> : tensor<32xf32>
    %e = pinfer.record : !pinfer.event
    %m = pinfer.predict %r, %fc1, %fc2 {device = #pinfer.device<cpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 8]>, !pinfer.weight<f16, [8, 4]> -> tensor<4xi1>
    %c = pinfer.ffn_part %r, %g, %g, %d mask %m : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 2 : i64, sparsity = #pinfer.sparsity<predicted>}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    pinfer.wait %e
    %y = pinfer.merge %hc, %c : tensor<32xf32>
    return %y : tensor<32xf32>
  }
}
