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

def PInfer_WeightOp : PInfer_Op<"weight", [Pure]> {
  let summary = "References a weight tensor of the model file by name.";
  let description = [{
    Produces a handle to the GGUF tensor `name`. The bytes are never part of
    the IR; the result type states how they are stored.

    ```mlir
    %w = pinfer.weight "blk.0.ffn_gate.weight" : !pinfer.weight<f16, [64, 256]>
    ```
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs PInfer_WeightType:$result);
  let assemblyFormat = "$name attr-dict `:` qualified(type($result))";
  let hasVerifier = 1;
}

def PInfer_RmsNormOp : PInfer_Op<"rms_norm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "RMS normalisation scaled by a weight vector.";
  let description = [{
    `y = x / sqrt(mean(x^2) + epsilon) * w`. The weight is a vector of the
    same length as `x`.

    ```mlir
    %y = pinfer.rms_norm %x, %w {epsilon = 1.0e-05 : f32}
        : tensor<64xf32>, !pinfer.weight<f32, [64]>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, PInfer_WeightType:$weight,
                       F32Attr:$epsilon);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` qualified(type($weight))
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$weight,
                   "float":$epsilon), [{
      build($_builder, $_state, input.getType(), input, weight,
            $_builder.getF32FloatAttr(epsilon));
    }]>];
  let hasVerifier = 1;
}

def PInfer_AddOp : PInfer_Op<"add", [Pure, SameOperandsAndResultType]> {
  let summary = "Element-wise sum of two activations (the residual add).";
  let description = [{
    ```mlir
    %h = pinfer.add %x, %y : tensor<64xf32>
    ```
  }];
  let arguments = (ins PInfer_Vector:$lhs, PInfer_Vector:$rhs);
  let results = (outs PInfer_Vector:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def PInfer_FFNOp : PInfer_Op<"ffn", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Gated feed-forward block of one layer.";
  let description = [{
    `down(act(gate x) * up x)`, or for `drelu` `down(relu(gate x) *
    relu(up x))`. Neuron `i` is row `i` of `gate` and `up` and column `i` of
    `down`; `n_ff` is the number of rows of `gate`.

    ```mlir
    %y = pinfer.ffn %x, %gate, %up, %down {activation = #pinfer.activation<relu>}
        : tensor<64xf32>, !pinfer.weight<f16, [64, 256]>,
          !pinfer.weight<f16, [64, 256]>, !pinfer.weight<f16, [256, 64]>
    ```
  }];
  let arguments = (ins PInfer_Vector:$input, PInfer_WeightType:$gate,
                       PInfer_WeightType:$up, PInfer_WeightType:$down,
                       PInfer_ActivationAttr:$activation);
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

#endif // PINFER_OPS_TD
