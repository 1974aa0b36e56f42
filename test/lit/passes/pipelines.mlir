// RUN: pinfer-opt %s -pinfer-place="sparsity=exact" -pinfer-lower="context-length=8" | pinfer-opt | FileCheck %s

// Tests that pinfer-place followed by pinfer-lower (what pinferc runs) turns
// a dense two-layer model into verified, scheduled, memory-planned IR: layer
// 0 split and permuted, layer 1 wholly on the CPU, attention and the head on
// the CPU (the runtime has no GPU attention yet: pinfer-verify-lowering).
// CHECK-LABEL: module attributes
// CHECK-SAME: pinfer.memory = {context_length = 8 : i64
// CHECK-SAME: pinfer.scheduled
module attributes {pinfer.plan = {lm_head = #pinfer.device<cpu>, layers = [
    {attention = #pinfer.device<cpu>, hot = 1 : i64, order = array<i32: 2, 0, 1, 3>},
    {attention = #pinfer.device<cpu>, hot = 0 : i64}]}} {
  // CHECK-LABEL: func.func @forward
  func.func @forward(%token: i32, %pos: i32) -> tensor<8xf32> {
    %t = pinfer.weight "token_embd.weight" : !pinfer.weight<f16, [32, 8]>
    %x = pinfer.embedding %token, %t : !pinfer.weight<f16, [32, 8]> -> tensor<32xf32>
    %n0 = pinfer.weight "blk.0.attn_norm.weight" : !pinfer.weight<f32, [32]>
    %h0 = pinfer.rms_norm %x, %n0 {epsilon = 1.0e-5 : f32} : tensor<32xf32>, !pinfer.weight<f32, [32]>
    %w0 = pinfer.weight "blk.0.attn_q.weight" : !pinfer.weight<f16, [32, 32]>
    // CHECK: pinfer.attention {{.*}}device = #pinfer.device<cpu>, head_dim = 16 : i64, layer = 0 : i64
    %a0 = pinfer.attention %h0, %pos, %w0, %w0, %w0, %w0 {layer = 0 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
    %r0 = pinfer.add %x, %a0 : tensor<32xf32>
    // CHECK: pinfer.weight "blk.0.ffn_gate.weight" {neuron_order = array<i32: 2, 0, 1, 3>}
    // CHECK: pinfer.weight "blk.0.ffn_down.weight" {neuron_order = array<i32: 2, 0, 1, 3>}
    %g0 = pinfer.weight "blk.0.ffn_gate.weight" : !pinfer.weight<f16, [32, 4]>
    %d0 = pinfer.weight "blk.0.ffn_down.weight" : !pinfer.weight<f16, [4, 32]>
    // CHECK: %[[G:.+]] = pinfer.ffn_part {{.*}}count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, pinfer.offset = {{[0-9]+}} : i64, sparsity = #pinfer.sparsity<exact>}
    // CHECK: %[[GH:.+]] = pinfer.transfer %[[G]] to <cpu>
    // CHECK: %[[E:.+]] = pinfer.record
    // CHECK: %[[C:.+]] = pinfer.ffn_part {{.*}}count = 3 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 1 : i64
    // CHECK: pinfer.wait %[[E]]
    // CHECK: pinfer.merge %[[GH]], %[[C]]
    %f0 = pinfer.ffn %r0, %g0, %g0, %d0 {activation = #pinfer.activation<relu>, layer = 0 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %x1 = pinfer.add %r0, %f0 : tensor<32xf32>
    %w1 = pinfer.weight "blk.1.attn_q.weight" : !pinfer.weight<f16, [32, 32]>
    // CHECK: pinfer.attention {{.*}}device = #pinfer.device<cpu>, head_dim = 16 : i64, layer = 1 : i64
    %a1 = pinfer.attention %x1, %pos, %w1, %w1, %w1, %w1 {layer = 1 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
    %r1 = pinfer.add %x1, %a1 : tensor<32xf32>
    %g1 = pinfer.weight "blk.1.ffn_gate.weight" : !pinfer.weight<f16, [32, 4]>
    %d1 = pinfer.weight "blk.1.ffn_down.weight" : !pinfer.weight<f16, [4, 32]>
    // CHECK: pinfer.ffn_part {{.*}}count = 4 : i64, device = #pinfer.device<cpu>, layer = 1 : i64, offset = 0 : i64
    // CHECK-NOT: pinfer.transfer
    %f1 = pinfer.ffn %r1, %g1, %g1, %d1 {activation = #pinfer.activation<relu>, layer = 1 : i64}
        : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
    %x2 = pinfer.add %r1, %f1 : tensor<32xf32>
    %on = pinfer.weight "output_norm.weight" : !pinfer.weight<f32, [32]>
    // CHECK: pinfer.lm_head {{.*}}device = #pinfer.device<cpu>
    %l = pinfer.lm_head %x2, %on, %t {epsilon = 1.0e-05 : f32} : tensor<32xf32>, !pinfer.weight<f32, [32]>, !pinfer.weight<f16, [32, 8]> -> tensor<8xf32>
    return %l : tensor<8xf32>
  }
}
