// RUN: pinfer-opt %s | pinfer-opt | FileCheck %s

// Tests that a dense layer body round-trips through the printer and parser.
// CHECK-LABEL: func.func @dense_layer
func.func @dense_layer(%x: tensor<64xf32>) -> tensor<64xf32> {
  // CHECK: %[[NORM_W:.+]] = pinfer.weight "blk.0.ffn_norm.weight" : !pinfer.weight<f32, [64]>
  %nw = pinfer.weight "blk.0.ffn_norm.weight" : !pinfer.weight<f32, [64]>
  // CHECK: %[[GATE:.+]] = pinfer.weight "blk.0.ffn_gate.weight" : !pinfer.weight<q4_0, [64, 256]>
  %gate = pinfer.weight "blk.0.ffn_gate.weight" : !pinfer.weight<q4_0, [64, 256]>
  %up = pinfer.weight "blk.0.ffn_up.weight" : !pinfer.weight<q4_0, [64, 256]>
  %down = pinfer.weight "blk.0.ffn_down.weight" : !pinfer.weight<f16, [256, 64]>
  // CHECK: %[[N:.+]] = pinfer.rms_norm %{{.+}}, %[[NORM_W]] {epsilon = 9.99999974E-6 : f32} : tensor<64xf32>, !pinfer.weight<f32, [64]>
  %n = pinfer.rms_norm %x, %nw {epsilon = 1.0e-5 : f32} : tensor<64xf32>, !pinfer.weight<f32, [64]>
  // CHECK: %[[F:.+]] = pinfer.ffn %[[N]], %[[GATE]], %{{.+}}, %{{.+}} {activation = #pinfer.activation<relu>, layer = 0 : i64}
  %f = pinfer.ffn %n, %gate, %up, %down {activation = #pinfer.activation<relu>, layer = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<q4_0, [64, 256]>,
        !pinfer.weight<q4_0, [64, 256]>, !pinfer.weight<f16, [256, 64]>
  // CHECK: pinfer.add %{{.+}}, %[[F]] : tensor<64xf32>
  %h = pinfer.add %x, %f : tensor<64xf32>
  return %h : tensor<64xf32>
}

// Tests that every activation and stored type prints back as written.
// CHECK-LABEL: func.func @activations
func.func @activations(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<bf16, [32, 64]>
  %u = pinfer.weight "u" : !pinfer.weight<q8_0, [32, 64]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [64, 32]>
  // CHECK: #pinfer.activation<silu>
  %a = pinfer.ffn %x, %g, %u, %d {activation = #pinfer.activation<silu>, layer = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<bf16, [32, 64]>,
        !pinfer.weight<q8_0, [32, 64]>, !pinfer.weight<f32, [64, 32]>
  // CHECK: #pinfer.activation<drelu>
  %b = pinfer.ffn %a, %g, %u, %d {activation = #pinfer.activation<drelu>, layer = 1 : i64}
      : tensor<32xf32>, !pinfer.weight<bf16, [32, 64]>,
        !pinfer.weight<q8_0, [32, 64]>, !pinfer.weight<f32, [64, 32]>
  return %b : tensor<32xf32>
}

// Tests that the model-level ops of a whole forward pass round-trip, with
// grouped-query attention and a head tied to the embedding table.
// CHECK-LABEL: func.func @forward
func.func @forward(%token: i32, %pos: i32) -> tensor<100xf32> {
  // CHECK: %[[T:.+]] = pinfer.weight "token_embd.weight" : !pinfer.weight<q8_0, [64, 100]>
  %t = pinfer.weight "token_embd.weight" : !pinfer.weight<q8_0, [64, 100]>
  // CHECK: %[[X:.+]] = pinfer.embedding %{{.+}}, %[[T]] : !pinfer.weight<q8_0, [64, 100]> -> tensor<64xf32>
  %x = pinfer.embedding %token, %t : !pinfer.weight<q8_0, [64, 100]> -> tensor<64xf32>
  %wq = pinfer.weight "blk.0.attn_q.weight" : !pinfer.weight<f16, [64, 64]>
  %wk = pinfer.weight "blk.0.attn_k.weight" : !pinfer.weight<f16, [64, 32]>
  %wo = pinfer.weight "blk.0.attn_output.weight" : !pinfer.weight<f16, [64, 64]>
  // CHECK: pinfer.attention %[[X]], %{{.+}}, %{{.+}} {device = #pinfer.device<gpu>, head_dim = 16 : i64, layer = 0 : i64, n_head = 4 : i64, n_kv_head = 2 : i64, rope_base = 1.000000e+04 : f32, rope_dim = 16 : i64}
  %a = pinfer.attention %x, %pos, %wq, %wk, %wk, %wo {device = #pinfer.device<gpu>, head_dim = 16 : i64, layer = 0 : i64, n_head = 4 : i64, n_kv_head = 2 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 32]>, !pinfer.weight<f16, [64, 32]>, !pinfer.weight<f16, [64, 64]>
  %n = pinfer.weight "output_norm.weight" : !pinfer.weight<f32, [64]>
  // CHECK: pinfer.lm_head %{{.+}}, %{{.+}}, %[[T]] {epsilon = 9.99999974E-6 : f32} : tensor<64xf32>, !pinfer.weight<f32, [64]>, !pinfer.weight<q8_0, [64, 100]> -> tensor<100xf32>
  %l = pinfer.lm_head %a, %n, %t {epsilon = 1.0e-05 : f32} : tensor<64xf32>, !pinfer.weight<f32, [64]>, !pinfer.weight<q8_0, [64, 100]> -> tensor<100xf32>
  return %l : tensor<100xf32>
}
