//===- PInferDialect.td - the pinfer dialect ---------------*- tablegen -*-===//
//
// The pinfer dialect models a decoder-only language model at the level of
// its layers so that placement (which FFN neurons run on the GPU) and
// scheduling can be expressed as IR transformations.
//
//===----------------------------------------------------------------------===//

#ifndef PINFER_DIALECT_TD
#define PINFER_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def PInfer_Dialect : Dialect {
  let name = "pinfer";
  let cppNamespace = "::pinfer";
  let summary = "Model-level IR for sparsity-aware GPU/CPU LLM inference.";
  let description = [{
    Values are per-token activation tensors. Weights are never inlined: a
    `pinfer.weight` op names a GGUF tensor and carries its stored element
    type and shape (in ggml order, row length first), so the IR of a 7B
    model stays a few kilobytes and the packed-weights emitter can find the
    bytes later.
  }];
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

class PInfer_Op<string mnemonic, list<Trait> traits = []>
    : Op<PInfer_Dialect, mnemonic, traits>;

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

// The stored element type of a weight is the runtime's own GGMLType, one of
// the computable rows of the type table (runtime/type_table.h), written by
// its name (`q4_0`). The dialect keeps no list of types of its own, so a
// type added to the table is a dialect dtype with no edit here.
def PInfer_WeightDType : TypeParameter<"::pinfer::GGMLType",
                                       "stored weight element type"> {
  let parser = "::pinfer::parseWeightDType($_parser)";
  let printer = "::pinfer::printWeightDType($_printer, $_self)";
}

def PInfer_ActSilu : I32EnumAttrCase<"silu", 0>;
def PInfer_ActRelu : I32EnumAttrCase<"relu", 1>;
def PInfer_ActDRelu : I32EnumAttrCase<"drelu", 2>;
def PInfer_ActGelu : I32EnumAttrCase<"gelu", 3>;

def PInfer_Activation : I32EnumAttr<"Activation", "FFN activation",
    [PInfer_ActSilu, PInfer_ActRelu, PInfer_ActDRelu, PInfer_ActGelu]> {
  let cppNamespace = "::pinfer";
  let genSpecializedAttr = 0;
}

def PInfer_ActivationAttr : EnumAttr<PInfer_Dialect, PInfer_Activation,
                                     "activation"> {
  let assemblyFormat = "`<` $value `>`";
}

def PInfer_DeviceCPU : I32EnumAttrCase<"cpu", 0>;
def PInfer_DeviceGPU : I32EnumAttrCase<"gpu", 1>;

def PInfer_Device : I32EnumAttr<"Device", "where an op runs or a value lives",
    [PInfer_DeviceCPU, PInfer_DeviceGPU]> {
  let cppNamespace = "::pinfer";
  let genSpecializedAttr = 0;
}

def PInfer_DeviceAttr : EnumAttr<PInfer_Dialect, PInfer_Device, "device"> {
  let assemblyFormat = "`<` $value `>`";
}

// How an FFN half skips neurons: `dense` computes every neuron it owns,
// `exact` skips neurons whose activation is exactly zero (found from the
// gate product, so results equal dense), `predicted` skips neurons a
// predictor says will not fire (approximate), `threshold` skips neurons
// whose |activation| is at most a calibrated per-layer threshold (the
// SiLU-family counterpart of exact: approximate, no predictor needed).
def PInfer_SparsityDense : I32EnumAttrCase<"dense", 0>;
def PInfer_SparsityExact : I32EnumAttrCase<"exact", 1>;
def PInfer_SparsityPredicted : I32EnumAttrCase<"predicted", 2>;
def PInfer_SparsityThreshold : I32EnumAttrCase<"threshold", 3>;

def PInfer_Sparsity : I32EnumAttr<"Sparsity", "FFN neuron skipping mode",
    [PInfer_SparsityDense, PInfer_SparsityExact, PInfer_SparsityPredicted,
     PInfer_SparsityThreshold]> {
  let cppNamespace = "::pinfer";
  let genSpecializedAttr = 0;
}

def PInfer_SparsityAttr : EnumAttr<PInfer_Dialect, PInfer_Sparsity,
                                   "sparsity"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

def PInfer_WeightType : TypeDef<PInfer_Dialect, "Weight"> {
  let mnemonic = "weight";
  let summary = "A handle to a stored weight tensor.";
  let description = [{
    The stored element type, a computable ggml type by its name (f32, f16,
    q4_0, q8_0, bf16: the rows of runtime/type_table.h), and the shape in
    ggml order (`ne0` first, the row length). Quantised types store blocks
    (32 elements for q4_0 and q8_0), so `ne0` must be a multiple of the
    type's block size.

    ```mlir
    !pinfer.weight<q4_0, [4096, 11008]>
    ```
  }];
  let parameters = (ins
    PInfer_WeightDType:$dtype,
    ArrayRefParameter<"int64_t">:$shape);
  let assemblyFormat = "`<` $dtype `,` `[` $shape `]` `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Row length (ne0) and number of rows (product of the other dims).
    int64_t getRowLength() const { return getShape().front(); }
    int64_t getNumRows() const;
  }];
}

def PInfer_EventType : TypeDef<PInfer_Dialect, "Event"> {
  let mnemonic = "event";
  let summary = "Completion marker of the GPU work issued so far.";
  let description = [{
    Produced by `pinfer.record`, consumed by `pinfer.wait`.

    ```mlir
    %e = pinfer.record : !pinfer.event
    ```
  }];
}

#endif // PINFER_DIALECT_TD
