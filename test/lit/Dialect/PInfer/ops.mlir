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
  // CHECK: %[[F:.+]] = pinfer.ffn %[[N]], %[[GATE]], %{{.+}}, %{{.+}} {activation = #pinfer.activation<relu>}
  %f = pinfer.ffn %n, %gate, %up, %down {activation = #pinfer.activation<relu>}
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
  %a = pinfer.ffn %x, %g, %u, %d {activation = #pinfer.activation<silu>}
      : tensor<32xf32>, !pinfer.weight<bf16, [32, 64]>,
        !pinfer.weight<q8_0, [32, 64]>, !pinfer.weight<f32, [64, 32]>
  // CHECK: #pinfer.activation<drelu>
  %b = pinfer.ffn %a, %g, %u, %d {activation = #pinfer.activation<drelu>}
      : tensor<32xf32>, !pinfer.weight<bf16, [32, 64]>,
        !pinfer.weight<q8_0, [32, 64]>, !pinfer.weight<f32, [64, 32]>
  return %b : tensor<32xf32>
}
