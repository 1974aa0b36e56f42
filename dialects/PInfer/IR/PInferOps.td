//===- PInferOps.td - pinfer operations --------------------*- tablegen -*-===//
//
// Model-level operations. Activations are `tensor<Nxf32>` values for one
// token; weights are `!pinfer.weight` handles produced by `pinfer.weight`.
//
//===----------------------------------------------------------------------===//

#ifndef PINFER_OPS_TD
#define PINFER_OPS_TD

include "dialects/PInfer/IR/PInferDialect.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributes.td"

def PInfer_Vector : 1DTensorOf<[F32]>;
def PInfer_Mask : 1DTensorOf<[I1]>;

// A list of neuron indices: `array<i32: ...>` when small enough to read, or
// a `dense_resource<name> : tensor<Nxi32>` blob for the tens of thousands of
// indices of a large model (the blob is hex in the file's resource section,
// which parses far faster than a long integer list).
def PInfer_NeuronTable : Attr<CPred<"::pinfer::isNeuronTable($_self)">,
    "neuron index table (array<i32> or dense_resource of i32)"> {
  let storageType = "::mlir::Attribute";
  let returnType = "::mlir::Attribute";
  let convertFromStorage = "$_self";
}

def PInfer_WeightOp : PInfer_Op<"weight", [Pure]> {
  let summary = "References a weight tensor of the model file by name.";
  let description = [{
    Produces a handle to the GGUF tensor `name`. The bytes are never part of
    the IR; the result type states how they are stored.

    `neuron_order`, set by `pinfer-permute-neurons` on FFN and predictor
    weights, tells the packed-weights emitter to store neuron `i` of the
    packed tensor from neuron `neuron_order[i]` of the file (neurons are the
    rows of gate, up and fc2 and the columns of down), so hot neurons are
    contiguous.

    ```mlir
    %w = pinfer.weight "blk.0.ffn_gate.weight" : !pinfer.weight<f16, [64, 256]>
    %p = pinfer.weight "blk.0.ffn_up.weight" {neuron_order = array<i32: 1, 0>}
        : !pinfer.weight<f16, [64, 2]>
    ```
  }];
  let arguments = (ins StrAttr:$name,
                       OptionalAttr<PInfer_NeuronTable>:$neuron_order);
  let results = (outs PInfer_WeightType:$result);
  let assemblyFormat = "$name attr-dict `:` qualified(type($result))";
  let hasVerifier = 1;
}

def PInfer_RmsNormOp : PInfer_Op<"rms_norm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "RMS normalisation scaled by a weight vector.";
  let description = [{
    `y = x / sqrt(mean(x^2) + epsilon) * w`. The weight is a vector of the
    same length as `x`. `device` (set by pinfer-schedule when every layer
    runs on the GPU, so that the residual stream stays there): where it
    runs; absent, on the host.

    ```mlir
    %y = pinfer.rms_norm %x, %w {epsilon = 1.0e-05 : f32}
        : tensor<64xf32>, !pinfer.weight<f32, [64]>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, PInfer_WeightType:$weight,
                       F32Attr:$epsilon,
                       OptionalAttr<PInfer_DeviceAttr>:$device);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` qualified(type($weight))
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$weight,
                   "float":$epsilon), [{
      build($_builder, $_state, input.getType(), input, weight,
            $_builder.getF32FloatAttr(epsilon), DeviceAttr());
    }]>];
  let hasVerifier = 1;
}

def PInfer_AddOp : PInfer_Op<"add", [Pure, SameOperandsAndResultType]> {
  let summary = "Element-wise sum of two activations (the residual add).";
  let description = [{
    ```mlir
    %h = pinfer.add %x, %y : tensor<64xf32>
    ```
    `device`: as pinfer.rms_norm's.
  }];
  let arguments = (ins PInfer_Vector:$lhs, PInfer_Vector:$rhs,
                       OptionalAttr<PInfer_DeviceAttr>:$device);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def PInfer_FFNOp : PInfer_Op<"ffn", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Gated feed-forward block of one layer.";
  let description = [{
    `down(act(gate x) * up x)`, or for `drelu` `down(relu(gate x) *
    relu(up x))`. Neuron `i` is row `i` of `gate` and `up` and column `i` of
    `down`; `n_ff` is the number of rows of `gate`.

    A placed ffn (after `pinfer-apply-placement`) carries `hot_count`, the
    number of neurons that go to the GPU, and optionally `neuron_order`, a
    permutation of `[0, n_ff)` listing neurons hottest first; without it the
    order is the identity.

    ```mlir
    %y = pinfer.ffn %x, %gate, %up, %down {activation = #pinfer.activation<relu>, layer = 0 : i64}
        : tensor<64xf32>, !pinfer.weight<f16, [64, 256]>,
          !pinfer.weight<f16, [64, 256]>, !pinfer.weight<f16, [256, 64]>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, PInfer_WeightType:$gate,
                       PInfer_WeightType:$up, PInfer_WeightType:$down,
                       PInfer_ActivationAttr:$activation, I64Attr:$layer,
                       OptionalAttr<I64Attr>:$hot_count,
                       OptionalAttr<PInfer_NeuronTable>:$neuron_order);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = [{
    $input `,` $gate `,` $up `,` $down attr-dict `:` type($input) `,`
    qualified(type($gate)) `,` qualified(type($up)) `,` qualified(type($down))
  }];
  let extraClassDeclaration = [{
    int64_t getNumNeurons();
  }];
  let hasVerifier = 1;
}

def PInfer_EmbeddingOp : PInfer_Op<"embedding", [Pure]> {
  let summary = "Looks up the embedding row of a token.";
  let description = [{
    Row `token` of the table `[n_embd, n_vocab]` (ggml order) as an f32
    vector of length `n_embd`. Runs on the CPU: only one row is read per
    token, so the table never needs to be in VRAM.

    ```mlir
    %x = pinfer.embedding %token, %table
        : !pinfer.weight<q4_0, [64, 1000]> -> tensor<64xf32>
    ```
  }];
  let arguments = (ins I32:$token, PInfer_WeightType:$table);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = [{
    $token `,` $table attr-dict `:` qualified(type($table)) `->` type($result)
  }];
  let hasVerifier = 1;
}

def PInfer_AttentionOp : PInfer_Op<"attention",
    [AllTypesMatch<["input", "result"]>]> {
  let summary = "Self-attention of one layer with rotary positions and its own KV cache.";
  let description = [{
    `wo(softmax(rope(q) rope(k)^T / sqrt(head_dim)) v)` for the token at
    position `pos`, with `q = wq x`, `k = wk x`, `v = wv x`. Grouped-query
    attention when `n_kv_head < n_head`. The KV cache is implicit: each
    attention op owns the cache of layer `layer`, `[2][n_ctx][n_kv_head *
    head_dim]` f16, sized by the context length when memory is planned. The
    input is already normalised; the residual add is a separate op. Not
    `Pure`: it reads and appends to its cache.

    ```mlir
    %a = pinfer.attention %x, %pos, %wq, %wk, %wv, %wo {layer = 0 : i64,
        n_head = 4 : i64, n_kv_head = 2 : i64, head_dim = 16 : i64,
        rope_base = 1.0e+04 : f32, rope_dim = 16 : i64}
        : tensor<64xf32>, !pinfer.weight<f16, [64, 64]>, !pinfer.weight<f16, [64, 32]>,
          !pinfer.weight<f16, [64, 32]>, !pinfer.weight<f16, [64, 64]>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, I32:$pos,
                       PInfer_WeightType:$wq, PInfer_WeightType:$wk,
                       PInfer_WeightType:$wv, PInfer_WeightType:$wo,
                       I64Attr:$layer, I64Attr:$n_head, I64Attr:$n_kv_head,
                       I64Attr:$head_dim, F32Attr:$rope_base, I64Attr:$rope_dim,
                       OptionalAttr<PInfer_DeviceAttr>:$device);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = [{
    $input `,` $pos `,` $wq `,` $wk `,` $wv `,` $wo attr-dict `:` type($input)
    `,` qualified(type($wq)) `,` qualified(type($wk)) `,` qualified(type($wv))
    `,` qualified(type($wo))
  }];
  let hasVerifier = 1;
}

def PInfer_LMHeadOp : PInfer_Op<"lm_head", [Pure]> {
  let summary = "Final RMS norm and output projection to vocabulary logits.";
  let description = [{
    `logits = output (rms_norm(x) * norm)`. With tied embeddings `output`
    is the token embedding table itself (same tensor name).

    ```mlir
    %l = pinfer.lm_head %x, %norm, %out {epsilon = 1.0e-05 : f32}
        : tensor<64xf32>, !pinfer.weight<f32, [64]>,
          !pinfer.weight<q8_0, [64, 1000]> -> tensor<1000xf32>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, PInfer_WeightType:$norm,
                       PInfer_WeightType:$output, F32Attr:$epsilon,
                       OptionalAttr<PInfer_DeviceAttr>:$device);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = [{
    $input `,` $norm `,` $output attr-dict `:` type($input) `,`
    qualified(type($norm)) `,` qualified(type($output)) `->` type($result)
  }];
  let hasVerifier = 1;
}

def PInfer_PredictOp : PInfer_Op<"predict", [Pure]> {
  let summary = "Predicts which FFN neurons of a layer will fire.";
  let description = [{
    With two weights `fc1 [n_embd, R]` and `fc2 [R, n_ff]` (a PowerInfer
    predictor): `mask = fc2 relu(fc1 x) > threshold`. With one weight, the
    layer's gate `[n_embd, n_ff]`: `mask = |gate x| > threshold` (the
    magnitude rule for models shipped without predictors). Bit `i` is
    neuron `i`; only the bits of the neurons owned by the consuming
    `pinfer.ffn_part` are computed, on that part's device.

    ```mlir
    %m = pinfer.predict %x, %fc1, %fc2 {layer = 0 : i64, threshold = 0.0 : f32,
        device = #pinfer.device<gpu>}
        : tensor<64xf32>, !pinfer.weight<f16, [64, 16]>, !pinfer.weight<f16, [16, 256]>
        -> tensor<256xi1>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, Variadic<PInfer_WeightType>:$weights,
                       I64Attr:$layer, F32Attr:$threshold,
                       OptionalAttr<PInfer_DeviceAttr>:$device);
  let results = (outs PInfer_Mask:$mask);
  let assemblyFormat = [{
    $input `,` $weights attr-dict `:` type($input) `,` qualified(type($weights))
    `->` type($mask)
  }];
  let hasVerifier = 1;
}

def PInfer_FFNPartOp : PInfer_Op<"ffn_part", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "The share of one layer's FFN neurons that runs on one device.";
  let description = [{
    The gated FFN restricted to `count` neurons: `sum over owned i of
    down[:, i] * act(gate[i] x) * up[i] x`. The owned neurons are either a
    table `neurons` of `count` distinct indices in `[0, n_ff)` or, after
    `pinfer-permute-neurons`, the contiguous range `[offset, offset +
    count)` of the permuted weights. `sparsity` says which owned neurons may
    be skipped; `predicted` takes the mask of a `pinfer.predict`;
    `threshold` skips neurons with `|act(gate[i] x)| <= threshold`, the
    layer's calibrated `threshold` attribute (present exactly in that mode,
    non-negative and finite; 0 skips what exact skips). Down
    projections are stored transposed in the packed weights (as f32 when
    the file has them quantised), so a neuron's down row is contiguous.

    ```mlir
    %h = pinfer.ffn_part %x, %gate, %up, %down {activation = #pinfer.activation<relu>,
        count = 2 : i64, device = #pinfer.device<gpu>, layer = 0 : i64,
        neurons = array<i32: 5, 1>, sparsity = #pinfer.sparsity<exact>}
        : tensor<64xf32>, !pinfer.weight<f16, [64, 8]>,
          !pinfer.weight<f16, [64, 8]>, !pinfer.weight<f16, [8, 64]>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, PInfer_WeightType:$gate,
                       PInfer_WeightType:$up, PInfer_WeightType:$down,
                       Optional<PInfer_Mask>:$mask,
                       PInfer_ActivationAttr:$activation,
                       PInfer_DeviceAttr:$device,
                       DefaultValuedAttr<PInfer_SparsityAttr,
                           "::pinfer::Sparsity::dense">:$sparsity,
                       I64Attr:$layer, I64Attr:$count,
                       OptionalAttr<I64Attr>:$offset,
                       OptionalAttr<PInfer_NeuronTable>:$neurons,
                       OptionalAttr<F32Attr>:$threshold);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = [{
    $input `,` $gate `,` $up `,` $down (`mask` $mask^ `:` type($mask))?
    attr-dict `:` type($input) `,` qualified(type($gate)) `,`
    qualified(type($up)) `,` qualified(type($down))
  }];
  let extraClassDeclaration = [{
    int64_t getNumNeurons();
    /// The owned neuron indices (the table, or the range expanded).
    /// Empty when a resource table's data is missing.
    ::llvm::SmallVector<int32_t> getOwnedNeurons();
  }];
  let hasVerifier = 1;
}

def PInfer_MergeOp : PInfer_Op<"merge", [Pure, SameOperandsAndResultType]> {
  let summary = "Sums the GPU and CPU halves of one layer's FFN.";
  let description = [{
    Both operands come from `pinfer.ffn_part` ops of the same layer and
    weights (possibly through `pinfer.transfer`), one per device, naming
    their neurons the same way (both tables, which index the file's order,
    or both ranges, which index the permuted order). Their neuron sets are
    disjoint and, unless a half uses predicted sparsity
    (which may drop neurons that never fire), together cover all `n_ff`
    neurons, so the sum equals the whole FFN.

    ```mlir
    %y = pinfer.merge %gpu_half, %cpu_half : tensor<64xf32>
    ```
  }];
  let arguments = (ins PInfer_Vector:$lhs, PInfer_Vector:$rhs);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def PInfer_TransferOp : PInfer_Op<"transfer", [Pure, SameOperandsAndResultType]> {
  let summary = "Copies a value between host and GPU memory.";
  let description = [{
    Enqueued on the GPU stream in program order. A copy to the CPU is only
    complete once a `pinfer.wait` on an event recorded after it returns;
    `pinfer-schedule` places that wait before the first CPU use.

    ```mlir
    %g = pinfer.transfer %x to <gpu> : tensor<64xf32>
    ```
  }];
  let arguments = (ins AnyTypeOf<[PInfer_Vector, PInfer_Mask]>:$input,
                       PInfer_DeviceAttr:$to);
  let results = (outs AnyTypeOf<[PInfer_Vector, PInfer_Mask]>:$result);
  let assemblyFormat = "$input `to` $to attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def PInfer_RecordOp : PInfer_Op<"record", [MemoryEffects<[MemWrite]>]> {
  let summary = "Records an event after all GPU work issued so far.";
  let description = [{
    ```mlir
    %e = pinfer.record : !pinfer.event
    ```
  }];
  let results = (outs PInfer_EventType:$event);
  let assemblyFormat = "attr-dict `:` qualified(type($event))";
}

def PInfer_WaitOp : PInfer_Op<"wait", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "Blocks the host until an event's GPU work has finished.";
  let description = [{
    The one synchronisation point between host and GPU; everything
    recorded before the event (kernels and copies to the host) is complete
    afterwards.

    ```mlir
    pinfer.wait %e
    ```
  }];
  let arguments = (ins PInfer_EventType:$event);
  let assemblyFormat = "$event attr-dict";
}

#endif // PINFER_OPS_TD
