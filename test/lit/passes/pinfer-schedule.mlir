// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-schedule | FileCheck %s

// Tests that a split FFN issues GPU work first, runs the CPU half between
// the GPU half's record and the single wait, and merges on the host.
// CHECK-LABEL: func.func @split_layer
func.func @split_layer(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: %[[XG:.+]] = pinfer.transfer %[[X:.+]] to <gpu> : tensor<32xf32>
  // CHECK: %[[MG:.+]] = pinfer.predict %[[XG]], %{{.+}} {device = #pinfer.device<gpu>
  // CHECK: %[[HG:.+]] = pinfer.ffn_part %[[XG]], %{{.+}}, %{{.+}}, %{{.+}} mask %[[MG]]
  // CHECK: %[[HC:.+]] = pinfer.transfer %[[HG]] to <cpu> : tensor<32xf32>
  // CHECK: %[[EV:.+]] = pinfer.record : !pinfer.event
  // CHECK: %[[MC:.+]] = pinfer.predict %[[X]], %{{.+}} {device = #pinfer.device<cpu>
  // CHECK: %[[C:.+]] = pinfer.ffn_part %[[X]], %{{.+}}, %{{.+}}, %{{.+}} mask %[[MC]]
  // CHECK: pinfer.wait %[[EV]]
  // CHECK-NEXT: %[[Y:.+]] = pinfer.merge %[[HC]], %[[C]] : tensor<32xf32>
  // CHECK: return %[[Y]]
  %mc = pinfer.predict %x, %g {device = #pinfer.device<cpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 4]> -> tensor<4xi1>
  %c = pinfer.ffn_part %x, %g, %g, %d mask %mc : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 2 : i64, sparsity = #pinfer.sparsity<predicted>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %mg = pinfer.predict %x, %g {device = #pinfer.device<gpu>, layer = 0 : i64, threshold = 0.0 : f32} : tensor<32xf32>, !pinfer.weight<f16, [32, 4]> -> tensor<4xi1>
  %h = pinfer.ffn_part %x, %g, %g, %d mask %mg : tensor<4xi1> {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<predicted>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %y = pinfer.merge %h, %c : tensor<32xf32>
  return %y : tensor<32xf32>
}

// Tests that GPU attention and a wholly-GPU FFN each round-trip through one
// transfer pair and one sync before the host-side add when the head runs on
// the host (the residual stream then stays there).
// CHECK-LABEL: func.func @gpu_layer
func.func @gpu_layer(%x: tensor<32xf32>, %pos: i32) -> tensor<4xf32> {
  %wq = pinfer.weight "wq" : !pinfer.weight<f16, [32, 32]>
  // CHECK: %[[XG:.+]] = pinfer.transfer %[[X:.+]] to <gpu>
  // CHECK: %[[A:.+]] = pinfer.attention %[[XG]]
  // CHECK: %[[AH:.+]] = pinfer.transfer %[[A]] to <cpu>
  // CHECK: %[[E1:.+]] = pinfer.record
  // CHECK: pinfer.wait %[[E1]]
  // CHECK-NEXT: %[[R:.+]] = pinfer.add %[[X]], %[[AH]] :
  %a = pinfer.attention %x, %pos, %wq, %wq, %wq, %wq {device = #pinfer.device<gpu>, layer = 0 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
  %r = pinfer.add %x, %a : tensor<32xf32>
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: %[[RG:.+]] = pinfer.transfer %[[R]] to <gpu>
  // CHECK: %[[F:.+]] = pinfer.ffn_part %[[RG]]
  // CHECK: %[[FH:.+]] = pinfer.transfer %[[F]] to <cpu>
  // CHECK: %[[E2:.+]] = pinfer.record
  // CHECK: pinfer.wait %[[E2]]
  // CHECK-NEXT: %[[S:.+]] = pinfer.add %[[R]], %[[FH]] :
  %f = pinfer.ffn_part %r, %g, %g, %d {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %s = pinfer.add %r, %f : tensor<32xf32>
  %n = pinfer.weight "n" : !pinfer.weight<f32, [32]>
  // CHECK: %[[L:.+]] = pinfer.lm_head %[[S]]
  // CHECK-NEXT: return %[[L]]
  %l = pinfer.lm_head %s, %n, %g {device = #pinfer.device<cpu>, epsilon = 1.0e-05 : f32}
      : tensor<32xf32>, !pinfer.weight<f32, [32]>, !pinfer.weight<f16, [32, 4]> -> tensor<4xf32>
  return %l : tensor<4xf32>
}

// Tests that when the attention, the FFN and the head all run on the GPU,
// the norms and adds go there too: the residual stream goes up once, and
// the logits come back with the only sync.
// CHECK-LABEL: func.func @resident_layer
func.func @resident_layer(%x: tensor<32xf32>, %pos: i32) -> tensor<4xf32> {
  %wq = pinfer.weight "wq" : !pinfer.weight<f16, [32, 32]>
  %n = pinfer.weight "n" : !pinfer.weight<f32, [32]>
  // CHECK: %[[XG:.+]] = pinfer.transfer %[[X:.+]] to <gpu>
  // CHECK: %[[H:.+]] = pinfer.rms_norm %[[XG]], %{{.+}} {device = #pinfer.device<gpu>
  // CHECK-NEXT: %[[A:.+]] = pinfer.attention %[[H]]
  // CHECK-NEXT: %[[R:.+]] = pinfer.add %[[XG]], %[[A]] {device = #pinfer.device<gpu>}
  // CHECK-NOT: pinfer.transfer
  // CHECK: %[[L:.+]] = pinfer.lm_head
  // CHECK-NEXT: %[[LH:.+]] = pinfer.transfer %[[L]] to <cpu> : tensor<4xf32>
  // CHECK-NEXT: %[[E:.+]] = pinfer.record
  // CHECK-NEXT: pinfer.wait %[[E]]
  // CHECK-NEXT: return %[[LH]]
  %h = pinfer.rms_norm %x, %n {epsilon = 1.0e-05 : f32} : tensor<32xf32>, !pinfer.weight<f32, [32]>
  %a = pinfer.attention %h, %pos, %wq, %wq, %wq, %wq {device = #pinfer.device<gpu>, layer = 0 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
  %r = pinfer.add %x, %a : tensor<32xf32>
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  %h2 = pinfer.rms_norm %r, %n {epsilon = 1.0e-05 : f32} : tensor<32xf32>, !pinfer.weight<f32, [32]>
  %f = pinfer.ffn_part %h2, %g, %g, %d {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %s = pinfer.add %r, %f : tensor<32xf32>
  %l = pinfer.lm_head %s, %n, %g {device = #pinfer.device<gpu>, epsilon = 1.0e-05 : f32}
      : tensor<32xf32>, !pinfer.weight<f32, [32]>, !pinfer.weight<f16, [32, 4]> -> tensor<4xf32>
  return %l : tensor<4xf32>
}

// Tests that a layer wholly on the CPU gets no transfers or syncs.
// CHECK-LABEL: func.func @cpu_layer
func.func @cpu_layer(%x: tensor<32xf32>) -> tensor<32xf32> {
  // CHECK-NOT: pinfer.transfer
  // CHECK-NOT: pinfer.wait
  // CHECK: return
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  %f = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %s = pinfer.add %x, %f : tensor<32xf32>
  return %s : tensor<32xf32>
}

// -----

// Tests that a module cannot be scheduled twice.
// expected-error @+1 {{module is already scheduled}}
module attributes {pinfer.scheduled} {
  func.func @twice() {
    return
  }
}
