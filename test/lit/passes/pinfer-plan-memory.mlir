// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-plan-memory=context-length=16 | FileCheck %s
// RUN: pinfer-opt %s -split-input-file -verify-diagnostics -pinfer-plan-memory="context-length=16 vram-budget=2097152" | FileCheck %s
// RUN: not pinfer-opt %s -split-input-file -pinfer-plan-memory="context-length=16 vram-budget=2097151" 2>&1 | FileCheck %s --check-prefix=OVER

// Tests the VRAM bill, which must fit a budget of exactly its size and not
// one byte less: attention weights whole and counted once by name (2048),
// the GPU half's 2 of 4 rows of gate, up and down (3 x 128), the f16 KV
// cache of GPU attention (K and V x 16 tokens x 2 heads x 16 x 2 bytes =
// 2048, 128 a position), and a 256-aligned GPU arena whose offsets are
// reused once values are dead (512); what the executable allocates beside
// them (runtime/vram_bill.h, gpuWorkspaceVram): for the FFN half, for a
// token and a chunk's 32, its input (32), output (32 + two counts + 4 neurons)
// and the partial sums of its down kernel's one block (128 x 4), 33 x 582
// floats, and the block's counter (4 bytes): 76828; for the attention, its
// input, RoPE tables, output, q, k, v, the output projection's input and
// 8-bit copy, 2 heads x 16 scores, 2 x 18 partial results (340 floats),
// two counters and the position (12 bytes), and the layer's biases and q/k
// norms at most (160 floats): 2012; and room for the alignment and guard of
// each buffer carved from the executable's one allocation (512 bytes each,
// 32 a layer and 64 beside: 49152). The weights and the arena do not grow
// with the context (2944). Their sum, 132984 bytes, is billed in whole
// 2 MiB pages: 2097152.
// OVER: error: VRAM bill of 2097152 bytes (weights 2432, KV cache 2048 for 16 tokens, arena 512, head selection 0, workspace 78840, buffers' alignment 49152, rounded up to whole 2 MiB pages) exceeds the budget of 2097151 bytes
// CHECK-LABEL: module attributes {pinfer.memory = {context_length = 16 : i64, cpu_arena = 512 : i64, gpu_arena = 512 : i64, host_kv_cache = 0 : i64, vram_buffers = 49152 : i64, vram_fixed = 2944 : i64, vram_head_select = 0 : i64, vram_kv_cache = 2048 : i64, vram_kv_per_position = 128 : i64, vram_total = 2097152 : i64, vram_weights = 2432 : i64, vram_workspace = 78840 : i64, vram_workspace_shape = {attention_layers = 1 : i64, head = 0 : i64, head_dim = 16 : i64, kv_dim = 32 : i64, max_rank = 0 : i64, n_embd = 32 : i64, n_ff = 4 : i64, n_head = 2 : i64, n_layer = 1 : i64, n_rot = 16 : i64, n_vocab = 0 : i64, q_dim = 32 : i64, resident = 0 : i64}}}
// CHECK-LABEL: func.func @bill
func.func @bill(%x: tensor<32xf32>, %pos: i32) -> tensor<32xf32> {
  %wq = pinfer.weight "wq" : !pinfer.weight<f16, [32, 32]>
  // CHECK: pinfer.transfer {{.*}}{pinfer.offset = 0 : i64}
  %xg = pinfer.transfer %x to <gpu> : tensor<32xf32>
  // CHECK: pinfer.attention {{.*}}pinfer.offset = 256 : i64
  %a = pinfer.attention %xg, %pos, %wq, %wq, %wq, %wq {device = #pinfer.device<gpu>, layer = 0 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
  // CHECK: pinfer.transfer {{.*}}{pinfer.offset = 0 : i64}
  %ah = pinfer.transfer %a to <cpu> : tensor<32xf32>
  %e = pinfer.record : !pinfer.event
  pinfer.wait %e
  // CHECK: %[[R:.+]] = pinfer.add {{.*}}{pinfer.offset = 128 : i64}
  %r = pinfer.add %x, %ah : tensor<32xf32>
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  // The input copy of %x is dead by now, so its offset is reused.
  // CHECK: pinfer.transfer {{.*}}{pinfer.offset = 0 : i64}
  %rg = pinfer.transfer %r to <gpu> : tensor<32xf32>
  // CHECK: pinfer.ffn_part {{.*}}pinfer.offset = 256 : i64
  %h = pinfer.ffn_part %rg, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  %hh = pinfer.transfer %h to <cpu> : tensor<32xf32>
  %e2 = pinfer.record : !pinfer.event
  %c = pinfer.ffn_part %r, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 2 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  pinfer.wait %e2
  %y = pinfer.merge %hh, %c : tensor<32xf32>
  // The sum reuses the first host copy's offset; %r is still live.
  // CHECK: pinfer.add %[[R]], %{{.+}} {pinfer.offset = 0 : i64}
  %s = pinfer.add %r, %y : tensor<32xf32>
  return %s : tensor<32xf32>
}

// -----

// Tests that a program wholly on the CPU bills no VRAM and keeps its KV
// cache on the host.
// CHECK-LABEL: module attributes {pinfer.memory = {context_length = 16 : i64, cpu_arena = 256 : i64, gpu_arena = 0 : i64, host_kv_cache = 2048 : i64, vram_buffers = 0 : i64, vram_fixed = 0 : i64, vram_head_select = 0 : i64, vram_kv_cache = 0 : i64, vram_kv_per_position = 0 : i64, vram_total = 0 : i64, vram_weights = 0 : i64, vram_workspace = 0 : i64, vram_workspace_shape = {{.*}}}}
func.func @cpu_only(%x: tensor<32xf32>, %pos: i32) -> tensor<32xf32> {
  %wq = pinfer.weight "wq" : !pinfer.weight<f16, [32, 32]>
  %a = pinfer.attention %x, %pos, %wq, %wq, %wq, %wq {layer = 0 : i64, n_head = 2 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>, !pinfer.weight<f16, [32, 32]>
  %r = pinfer.add %x, %a : tensor<32xf32>
  return %r : tensor<32xf32>
}

// -----

// Tests that a host buffer copied to the GPU keeps its offset until the
// next wait, since the copy reads it asynchronously: the CPU half may not
// reuse the normed input's slot.
// CHECK-LABEL: func.func @drain
func.func @drain(%x: tensor<32xf32>) -> tensor<32xf32> {
  %w = pinfer.weight "w" : !pinfer.weight<f32, [32]>
  // CHECK: pinfer.rms_norm {{.*}}pinfer.offset = 0 : i64
  %n = pinfer.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<32xf32>, !pinfer.weight<f32, [32]>
  %ng = pinfer.transfer %n to <gpu> : tensor<32xf32>
  %g = pinfer.weight "g" : !pinfer.weight<f16, [32, 4]>
  %d = pinfer.weight "d" : !pinfer.weight<f16, [4, 32]>
  %h = pinfer.ffn_part %ng, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  // CHECK: pinfer.transfer {{.*}} to <cpu> {pinfer.offset = 128 : i64}
  %hh = pinfer.transfer %h to <cpu> : tensor<32xf32>
  %e = pinfer.record : !pinfer.event
  // CHECK: pinfer.ffn_part {{.*}}device = #pinfer.device<cpu>{{.*}}pinfer.offset = 256 : i64
  %c = pinfer.ffn_part %x, %g, %g, %d {activation = #pinfer.activation<relu>, count = 2 : i64, device = #pinfer.device<cpu>, layer = 0 : i64, offset = 2 : i64}
      : tensor<32xf32>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [32, 4]>, !pinfer.weight<f16, [4, 32]>
  pinfer.wait %e
  // CHECK: pinfer.merge {{.*}}{pinfer.offset = 0 : i64}
  %y = pinfer.merge %hh, %c : tensor<32xf32>
  return %y : tensor<32xf32>
}

// -----

// Tests that a GPU half's quantised down rows are billed as packed: one
// row of n_embd = 32 one-byte quants per neuron (32 bytes), its original id
// (4 bytes) and the layer's block scales (32 / 32 blocks x 32 outputs, f16:
// 64 bytes), next to one q8_0 row each of gate and up (34 bytes): 168.
// CHECK-LABEL: module attributes {pinfer.memory = {{{.*}}vram_weights = 168 : i64, vram_workspace = {{[0-9]+}} : i64, vram_workspace_shape = {{.*}}}}
func.func @quantised_down(%x: tensor<32xf32>) -> tensor<32xf32> {
  %g = pinfer.weight "g" : !pinfer.weight<q8_0, [32, 32]>
  %d = pinfer.weight "d" : !pinfer.weight<q8_0, [32, 32]>
  %xg = pinfer.transfer %x to <gpu> : tensor<32xf32>
  %h = pinfer.ffn_part %xg, %g, %g, %d {activation = #pinfer.activation<relu>, count = 1 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<32xf32>, !pinfer.weight<q8_0, [32, 32]>, !pinfer.weight<q8_0, [32, 32]>, !pinfer.weight<q8_0, [32, 32]>
  %hh = pinfer.transfer %h to <cpu> : tensor<32xf32>
  %e = pinfer.record : !pinfer.event
  pinfer.wait %e
  return %hh : tensor<32xf32>
}

// -----

// Tests that a non-positive context length is rejected.
// RUN: not pinfer-opt %s -split-input-file -pinfer-plan-memory=context-length=0 2>&1 | FileCheck %s --check-prefix=CTX
// CTX: context-length must be positive, got 0
func.func @ctx() {
  return
}
