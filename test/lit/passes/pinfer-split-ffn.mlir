// RUN: pinfer-opt %s -pinfer-split-ffn | FileCheck %s

// Tests that a layer split between devices becomes a GPU half owning the
// hottest neurons, a CPU half owning the rest, and their merge.
// CHECK-LABEL: func.func @mixed
func.func @mixed(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: %[[GPU:.+]] = pinfer.ffn_part %{{.+}} {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, neurons = array<i32: 3, 1>}
  // CHECK: %[[CPU:.+]] = pinfer.ffn_part %{{.+}} {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, neurons = array<i32: 0, 2>}
  // CHECK: %[[SUM:.+]] = pinfer.merge %[[GPU]], %[[CPU]] : tensor<32xf32>
  // CHECK: return %[[SUM]]
  %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, hot_count = 2 : i64, layer = 0 : i64, neuron_order = array<i32: 3, 1, 0, 2>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  return %f : tensor<32xf32>
}

// Tests that without an order the first hot_count neurons go to the GPU.
// CHECK-LABEL: func.func @identity_order
func.func @identity_order(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: pinfer.ffn_part {{.*}}count = 1 : i64, device = #pinfer.device<gpu>{{.*}}neurons = array<i32: 0>
  // CHECK: pinfer.ffn_part {{.*}}count = 3 : i64, device = #pinfer.device<cpu>{{.*}}neurons = array<i32: 1, 2, 3>
  %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<silu>, hot_count = 1 : i64, layer = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  return %f : tensor<32xf32>
}

// Tests that a layer wholly on the GPU stays whole: one part, no merge.
// CHECK-LABEL: func.func @all_gpu
func.func @all_gpu(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: %[[P:.+]] = pinfer.ffn_part {{.*}}count = 4 : i64, device = #pinfer.device<gpu>, layer = 3 : i64, offset = 0 : i64
  // CHECK-NOT: pinfer.merge
  // CHECK: return %[[P]]
  %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, hot_count = 4 : i64, layer = 3 : i64, neuron_order = array<i32: 3, 1, 0, 2>}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  return %f : tensor<32xf32>
}

// Tests that a layer with zero hot neurons stays whole on the CPU.
// CHECK-LABEL: func.func @zero_hot
func.func @zero_hot(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: pinfer.ffn_part {{.*}}count = 4 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 0 : i64
  // CHECK-NOT: pinfer.merge
  %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, hot_count = 0 : i64, layer = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  return %f : tensor<32xf32>
}

// Tests that an ffn without a placement is left alone.
// CHECK-LABEL: func.func @unplaced
func.func @unplaced(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // CHECK: pinfer.ffn %{{.+}} {activation = #pinfer.activation<relu>, layer = 0 : i64}
  // CHECK-NOT: pinfer.ffn_part
  %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  return %f : tensor<32xf32>
}

// Tests that tables longer than 256 entries go to a resource blob.
// CHECK-LABEL: func.func @big_table
func.func @big_table(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 300]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [300, 32]>
  // CHECK: pinfer.ffn_part {{.*}}count = 10 : i64, device = #pinfer.device<gpu>{{.*}}neurons = array<i32: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9>
  // CHECK: pinfer.ffn_part {{.*}}count = 290 : i64, device = #pinfer.device<cpu>{{.*}}neurons = dense_resource<blk.5.cpu_neurons> : tensor<290xi32>
  %f = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, hot_count = 10 : i64, layer = 5 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 300]>, !pinfer.weight<f16, [32, 300]>, !pinfer.weight<f16, [300, 32]>
  return %f : tensor<32xf32>
}
// CHECK: dialect_resources
// CHECK: blk.5.cpu_neurons: "0x040000000A0000000B000000
