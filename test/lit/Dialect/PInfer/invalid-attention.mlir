// RUN: pinfer-opt %s -split-input-file -verify-diagnostics

// Tests that query heads must be a multiple of KV heads.
func.func @gqa(%x: tensor<64xf32>, %p: i32) {
  %w = pinfer.weight "w" : !pinfer.weight<f16, [64, 64]>
  // expected-error @+1 {{n_head 4 must be a multiple of n_kv_head 3}}
  %a = pinfer.attention %x, %p, %w, %w, %w, %w {layer = 0 : i64, n_head = 4 : i64, n_kv_head = 3 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>
  return
}

// -----

// Tests that head counts must be positive.
func.func @heads(%x: tensor<64xf32>, %p: i32) {
  %w = pinfer.weight "w" : !pinfer.weight<f16, [64, 64]>
  // expected-error @+1 {{n_head, n_kv_head and head_dim must be positive}}
  %a = pinfer.attention %x, %p, %w, %w, %w, %w {layer = 0 : i64, n_head = 0 : i64, n_kv_head = 1 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>
  return
}

// -----

// Tests that the rotated dimensions are an even part of a head.
func.func @rope_dim(%x: tensor<64xf32>, %p: i32) {
  %w = pinfer.weight "w" : !pinfer.weight<f16, [64, 64]>
  // expected-error @+1 {{rope_dim 18 must be even and in (0, head_dim = 16]}}
  %a = pinfer.attention %x, %p, %w, %w, %w, %w {layer = 0 : i64, n_head = 4 : i64, n_kv_head = 4 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 18 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>
  return
}

// -----

// Tests that the rope base must be positive.
func.func @rope_base(%x: tensor<64xf32>, %p: i32) {
  %w = pinfer.weight "w" : !pinfer.weight<f16, [64, 64]>
  // expected-error @+1 {{rope_base must be positive}}
  %a = pinfer.attention %x, %p, %w, %w, %w, %w {layer = 0 : i64, n_head = 4 : i64, n_kv_head = 4 : i64, head_dim = 16 : i64, rope_base = 0.0 : f32, rope_dim = 16 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>
  return
}

// -----

// Tests that wk must be [n_embd, n_kv_head * head_dim].
func.func @wk_shape(%x: tensor<64xf32>, %p: i32) {
  %w = pinfer.weight "w" : !pinfer.weight<f16, [64, 64]>
  // expected-error @+1 {{wk must be [64, 32]}}
  %a = pinfer.attention %x, %p, %w, %w, %w, %w {layer = 0 : i64, n_head = 4 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>
  return
}

// -----

// Tests that a layer index cannot be negative.
func.func @layer(%x: tensor<64xf32>, %p: i32) {
  %w = pinfer.weight "w" : !pinfer.weight<f16, [64, 64]>
  // expected-error @+1 {{layer must be non-negative}}
  %a = pinfer.attention %x, %p, %w, %w, %w, %w {layer = -1 : i64, n_head = 4 : i64, n_kv_head = 4 : i64, head_dim = 16 : i64, rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
      : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 64]>
  return
}

// -----

// Tests that the head's norm must be an f32 vector of n_embd.
func.func @head_norm(%x: tensor<64xf32>) {
  %n = pinfer.weight "n" : !pinfer.weight<f16, [64]>
  %o = pinfer.weight "o" : !pinfer.weight<f16, [64, 100]>
  // expected-error @+1 {{norm must be an f32 vector of length 64}}
  %l = pinfer.lm_head %x, %n, %o {epsilon = 1.0e-05 : f32} : tensor<64xf32>, !pinfer.weight<f16, [64]>, !pinfer.weight<f16, [64, 100]> -> tensor<100xf32>
  return
}

// -----

// Tests that the head's output matrix must produce the logits.
func.func @head_output(%x: tensor<64xf32>) {
  %n = pinfer.weight "n" : !pinfer.weight<f32, [64]>
  %o = pinfer.weight "o" : !pinfer.weight<f16, [64, 100]>
  // expected-error @+1 {{output must be [64, 50]}}
  %l = pinfer.lm_head %x, %n, %o {epsilon = 1.0e-05 : f32} : tensor<64xf32>, !pinfer.weight<f32, [64]>, !pinfer.weight<f16, [64, 100]> -> tensor<50xf32>
  return
}

// -----

// Tests that the head's epsilon must be positive.
func.func @head_epsilon(%x: tensor<64xf32>) {
  %n = pinfer.weight "n" : !pinfer.weight<f32, [64]>
  %o = pinfer.weight "o" : !pinfer.weight<f16, [64, 100]>
  // expected-error @+1 {{epsilon must be positive}}
  %l = pinfer.lm_head %x, %n, %o {epsilon = 0.0 : f32} : tensor<64xf32>, !pinfer.weight<f32, [64]>, !pinfer.weight<f16, [64, 100]> -> tensor<100xf32>
  return
}
