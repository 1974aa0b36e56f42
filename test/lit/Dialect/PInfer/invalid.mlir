// RUN: pinfer-opt %s -split-input-file -verify-diagnostics

// Tests that a quantised weight's row length must be whole blocks.
func.func @q4_row_not_blocks() {
  // expected-error @+1 {{row length 48 of a q4_0 weight must be a multiple of 32}}
  %w = pinfer.weight "w" : !pinfer.weight<q4_0, [48, 4]>
  return
}

// -----

// Tests that weight dimensions must be positive.
func.func @zero_dim() {
  // expected-error @+1 {{weight dimensions must be positive, got 0}}
  %w = pinfer.weight "w" : !pinfer.weight<f32, [0, 4]>
  return
}

// -----

// Tests that a weight needs a tensor name.
func.func @empty_name() {
  // expected-error @+1 {{requires a non-empty tensor name}}
  %w = pinfer.weight "" : !pinfer.weight<f32, [4]>
  return
}

// -----

// Tests that the norm weight length must match the input.
func.func @norm_length(%x: tensor<64xf32>) {
  %w = pinfer.weight "n" : !pinfer.weight<f32, [32]>
  // expected-error @+1 {{weight must be a vector of length 64 to match the input}}
  %y = pinfer.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<64xf32>, !pinfer.weight<f32, [32]>
  return
}

// -----

// Tests that the norm epsilon must be positive.
func.func @norm_epsilon(%x: tensor<64xf32>) {
  %w = pinfer.weight "n" : !pinfer.weight<f32, [64]>
  // expected-error @+1 {{epsilon must be positive}}
  %y = pinfer.rms_norm %x, %w {epsilon = 0.0 : f32} : tensor<64xf32>, !pinfer.weight<f32, [64]>
  return
}

// -----

// Tests that the gate row length must be n_embd.
func.func @gate_shape(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f32, [32, 128]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [128, 64]>
  // expected-error @+1 {{gate must be [n_embd, n_ff] with n_embd = 64}}
  %y = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<f32, [32, 128]>, !pinfer.weight<f32, [32, 128]>, !pinfer.weight<f32, [128, 64]>
  return
}

// -----

// Tests that up must have the shape of gate.
func.func @up_shape(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f32, [64, 128]>
  %u = pinfer.weight "u" : !pinfer.weight<f32, [64, 96]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [128, 64]>
  // expected-error @+1 {{up must have the shape of gate [64, 128]}}
  %y = pinfer.ffn %x, %g, %u, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<f32, [64, 128]>, !pinfer.weight<f32, [64, 96]>, !pinfer.weight<f32, [128, 64]>
  return
}

// -----

// Tests that down must be [n_ff, n_embd].
func.func @down_shape(%x: tensor<64xf32>) {
  %g = pinfer.weight "g" : !pinfer.weight<f32, [64, 128]>
  %d = pinfer.weight "d" : !pinfer.weight<f32, [64, 128]>
  // expected-error @+1 {{down must be [n_ff, n_embd] = [128, 64]}}
  %y = pinfer.ffn %x, %g, %g, %d {activation = #pinfer.activation<relu>, layer = 0 : i64}
      : tensor<64xf32>, !pinfer.weight<f32, [64, 128]>, !pinfer.weight<f32, [64, 128]>, !pinfer.weight<f32, [64, 128]>
  return
}

// -----

// Tests that the embedding result must be a table row.
func.func @embedding_length(%t: i32) {
  %w = pinfer.weight "e" : !pinfer.weight<f16, [64, 100]>
  // expected-error @+1 {{result length 32 must equal the row length 64 of the table}}
  %x = pinfer.embedding %t, %w : !pinfer.weight<f16, [64, 100]> -> tensor<32xf32>
  return
}

// -----

// Tests that the embedding table is a matrix.
func.func @embedding_rank(%t: i32) {
  %w = pinfer.weight "e" : !pinfer.weight<f16, [64]>
  // expected-error @+1 {{table must be [n_embd, n_vocab]}}
  %x = pinfer.embedding %t, %w : !pinfer.weight<f16, [64]> -> tensor<64xf32>
  return
}
