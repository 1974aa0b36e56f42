// RUN: pinfer-opt %s | pinfer-opt | FileCheck %s

// Tests that placed and predicted FFN halves, their merge, a permuted
// weight and a resource-held neuron table round-trip.
// CHECK-LABEL: func.func @placed
func.func @placed(%x: tensor<64xf32>) -> tensor<64xf32> {
  // CHECK: pinfer.weight "g" {neuron_order = array<i32: 2, 0, 1, 3, 4, 5, 6, 7>} : !pinfer.weight<q4_0, [64, 8]>
  %g = pinfer.weight "g" {neuron_order = array<i32: 2, 0, 1, 3, 4, 5, 6, 7>} : !pinfer.weight<q4_0, [64, 8]>
  %d = pinfer.weight "d" : !pinfer.weight<bf16, [8, 64]>
  %fc1 = pinfer.weight "fc1" : !pinfer.weight<f16, [64, 16]>
  %fc2 = pinfer.weight "fc2" : !pinfer.weight<f16, [16, 8]>
  // CHECK: %[[M:.+]] = pinfer.predict %{{.+}}, %{{.+}}, %{{.+}} {device = #pinfer.device<gpu>, layer = 0 : i64, threshold = 5.000000e-01 : f32} : tensor<64xf32>, !pinfer.weight<f16, [64, 16]>, !pinfer.weight<f16, [16, 8]> -> tensor<8xi1>
  %m = pinfer.predict %x, %fc1, %fc2 {device = #pinfer.device<gpu>, layer = 0 : i64, threshold = 0.5 : f32}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 16]>, !pinfer.weight<f16, [16, 8]> -> tensor<8xi1>
  // CHECK: %[[H:.+]] = pinfer.ffn_part %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} mask %[[M]] : tensor<8xi1> {activation = #pinfer.activation<drelu>, count = 3 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 2, 0, 1>, sparsity = #pinfer.sparsity<predicted>}
  %h = pinfer.ffn_part %x, %g, %g, %d mask %m : tensor<8xi1> {activation = #pinfer.activation<drelu>, count = 3 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 2, 0, 1>, sparsity = #pinfer.sparsity<predicted>}
      : tensor<64xf32>, !pinfer.weight<q4_0, [64, 8]>, !pinfer.weight<q4_0, [64, 8]>, !pinfer.weight<bf16, [8, 64]>
  // CHECK: %[[C:.+]] = pinfer.ffn_part {{.*}}neurons = dense_resource<cold> : tensor<5xi32>, sparsity = #pinfer.sparsity<exact>}
  %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<drelu>, count = 5 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = dense_resource<cold> : tensor<5xi32>, sparsity = #pinfer.sparsity<exact>}
      : tensor<64xf32>, !pinfer.weight<q4_0, [64, 8]>, !pinfer.weight<q4_0, [64, 8]>, !pinfer.weight<bf16, [8, 64]>
  // CHECK: pinfer.merge %[[H]], %[[C]] : tensor<64xf32>
  %y = pinfer.merge %h, %c : tensor<64xf32>
  return %y : tensor<64xf32>
}

// Tests that transfers, events and waits round-trip and that a merge may
// take a half through a transfer.
// CHECK-LABEL: func.func @scheduled
func.func @scheduled(%x: tensor<64xf32>) -> tensor<64xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [64, 8]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [8, 64]>
  // CHECK: %[[XG:.+]] = pinfer.transfer %{{.+}} to <gpu> : tensor<64xf32>
  %xg = pinfer.transfer %x to <gpu> : tensor<64xf32>
  %h = pinfer.ffn_part %xg, %g, %g, %d {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [8, 64]>
  // CHECK: %[[HH:.+]] = pinfer.transfer %{{.+}} to <cpu> : tensor<64xf32>
  %hh = pinfer.transfer %h to <cpu> : tensor<64xf32>
  // CHECK: %[[E:.+]] = pinfer.record : !pinfer.event
  %e = pinfer.record : !pinfer.event
  %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 4 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [8, 64]>
  // CHECK: pinfer.wait %[[E]]
  pinfer.wait %e
  // CHECK: pinfer.merge %[[HH]], %{{.+}} : tensor<64xf32>
  %y = pinfer.merge %hh, %c : tensor<64xf32>
  return %y : tensor<64xf32>
}

{-#
  dialect_resources: {
    builtin: {
      cold: "0x040000000300000004000000050000000600000007000000"
    }
  }
#-}
