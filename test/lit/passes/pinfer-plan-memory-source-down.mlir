// RUN: pinfer-opt %s -split-input-file -pinfer-plan-memory=context-length=16 | FileCheck %s

// Tests that a dense layer wholly on the GPU whose down projection is a
// K-quant keeps the file's ffn_down (runtime/vram_bill.h): n_ff = n_embd =
// 256, one q4_K block (144 bytes) a row. Gate and up: 256 rows each; down:
// the source's 256 rows of n_ff, 256 x 144 = 36864 bytes where the neurons'
// SplitK rows would be 256 x 256 and the tables. 3 x 36864 = 110592.
// CHECK-LABEL: module attributes {pinfer.memory = {{{.*}}vram_weights = 110592 : i64, vram_workspace = {{[0-9]+}} : i64{{.*}}}}
func.func @dense_source_down(%x: tensor<256xf32>) -> tensor<256xf32> {
  %g = pinfer.weight "blk.0.ffn_gate.weight" : !pinfer.weight<q4_K, [256, 256]>
  %d = pinfer.weight "blk.0.ffn_down.weight" : !pinfer.weight<q4_K, [256, 256]>
  %xg = pinfer.transfer %x to <gpu> : tensor<256xf32>
  %h = pinfer.ffn_part %xg, %g, %g, %d {activation = #pinfer.activation<silu>, count = 256 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64}
      : tensor<256xf32>, !pinfer.weight<q4_K, [256, 256]>, !pinfer.weight<q4_K, [256, 256]>, !pinfer.weight<q4_K, [256, 256]>
  %hh = pinfer.transfer %h to <cpu> : tensor<256xf32>
  %e = pinfer.record : !pinfer.event
  pinfer.wait %e
  return %hh : tensor<256xf32>
}

// -----

// Tests that the same layer keeps SplitK down rows, and is billed them,
// where it is not dense (exact mode reads a neuron's row only when it
// fires): 256 x (144 + 144 + 256 + 4 (its id)) = 140288, and the tables:
// per output 8 group scales and mins, one block's d and dm: 256 x (16 + 8)
// = 6144. 146432.
// CHECK-LABEL: module attributes {pinfer.memory = {{{.*}}vram_weights = 146432 : i64, vram_workspace = {{[0-9]+}} : i64{{.*}}}}
func.func @exact_rows_down(%x: tensor<256xf32>) -> tensor<256xf32> {
  %g = pinfer.weight "blk.0.ffn_gate.weight" : !pinfer.weight<q4_K, [256, 256]>
  %d = pinfer.weight "blk.0.ffn_down.weight" : !pinfer.weight<q4_K, [256, 256]>
  %xg = pinfer.transfer %x to <gpu> : tensor<256xf32>
  %h = pinfer.ffn_part %xg, %g, %g, %d {activation = #pinfer.activation<relu>, count = 256 : i64, device = #pinfer.device<gpu>, layer = 0 : i64, offset = 0 : i64, sparsity = #pinfer.sparsity<exact>}
      : tensor<256xf32>, !pinfer.weight<q4_K, [256, 256]>, !pinfer.weight<q4_K, [256, 256]>, !pinfer.weight<q4_K, [256, 256]>
  %hh = pinfer.transfer %h to <cpu> : tensor<256xf32>
  %e = pinfer.record : !pinfer.event
  pinfer.wait %e
  return %hh : tensor<256xf32>
}
