//===- Passes.td - pinfer passes ---------------------------*- tablegen -*-===//
//
// The passes that turn a dense model module into a placed, split, predicted,
// permuted, scheduled and memory-planned one. Each pass has one file in
// passes/ and one lit test in test/lit/passes/ named after its flag.
//
//===----------------------------------------------------------------------===//

#ifndef PINFER_PASSES_TD
#define PINFER_PASSES_TD

include "mlir/Pass/PassBase.td"

def ApplyPlacementPass : Pass<"pinfer-apply-placement", "mlir::ModuleOp"> {
  let summary = "Attaches the placement plan's hot-neuron count and order to each ffn";
  let description = [{
    Reads the plan from the module attribute `pinfer.plan`:

    ```mlir
    module attributes {pinfer.plan = {lm_head = #pinfer.device<gpu>,
        layers = [{attention = #pinfer.device<gpu>, hot = 2 : i64,
                   order = array<i32: 3, 0, 1, 2>} ]}} { ... }
    ```

    `layers[l]` belongs to the ffn with `layer = l`; `hot` neurons go to the
    GPU, taken from `order` (hottest first; identity when absent). Attention
    and lm_head get the stated device (CPU when absent). The plan attribute
    is removed once applied. Fails when the plan and the module disagree on
    the layer count or a layer's neuron count.
  }];
  let dependentDialects = ["::pinfer::PInferDialect"];
}

def SplitFFNPass : Pass<"pinfer-split-ffn", "mlir::ModuleOp"> {
  let summary = "Splits each placed ffn into a GPU half, a CPU half and a merge";
  let description = [{
    A placed `pinfer.ffn` with `0 < hot_count < n_ff` becomes two
    `pinfer.ffn_part` ops owning `order[0, hot)` (GPU) and `order[hot, n_ff)`
    (CPU) and a `pinfer.merge`. A layer wholly on one device (hot_count 0 or
    n_ff) becomes a single ffn_part over the range `[0, n_ff)`. Unplaced ffn
    ops are left alone.
  }];
  let dependentDialects = ["::pinfer::PInferDialect"];
}

def InsertPredictorsPass : Pass<"pinfer-insert-predictors", "mlir::ModuleOp"> {
  let summary = "Chooses how FFN halves skip neurons and adds predictors where asked";
  let description = [{
    `mode=dense` leaves every ffn_part dense; `mode=exact` marks them to skip
    neurons whose activation is exactly zero; `mode=predicted` adds a
    `pinfer.predict` before each CPU part and feeds its mask to the part,
    while GPU parts skip exactly-zero activations (hot neurons fire often:
    predicting them saves little, and no predictor goes to VRAM). The
    predictor uses the model's `blk.N.fc1.weight`/`blk.N.fc2.weight`,
    which the module attribute `pinfer.predictor = {fc1 = type, fc2 =
    type}` says the file has; without it `mode=predicted` fails (the
    runtime has no other predictor). `mode=threshold` gives each part the `threshold`
    of its layer from the module attribute `pinfer.act_thresholds =
    array<f32: ...>` (one per layer, calibrated by the profiler), so that
    neurons with `|act(gate x)| <= threshold` are skipped.
  }];
  let options = [
    Option<"mode", "mode", "std::string", /*default=*/"\"exact\"",
           "dense, exact, predicted or threshold">,
    Option<"threshold", "threshold", "float", /*default=*/"0.0f",
           "firing threshold of the predictor score">,
  ];
  let dependentDialects = ["::pinfer::PInferDialect"];
}

def PermuteNeuronsPass : Pass<"pinfer-permute-neurons", "mlir::ModuleOp"> {
  let summary = "Makes each layer's GPU and CPU neurons contiguous rows of the packed weights";
  let description = [{
    For a layer split into halves with neuron tables, records the row order
    (GPU neurons, then CPU neurons, then any neuron neither owns) as
    `neuron_order` on the gate, up, down and fc2 weights, and rewrites the
    halves to the contiguous ranges `[0, hot)` and `[hot, hot + cold)`.
    Identity orders record nothing.
  }];
  let dependentDialects = ["::pinfer::PInferDialect"];
}

def SchedulePass : Pass<"pinfer-schedule", "mlir::ModuleOp"> {
  let summary = "Orders GPU and CPU work to overlap and inserts transfers and syncs";
  let description = [{
    The residual stream lives on the host. Every GPU op gets its vector
    inputs through a `pinfer.transfer` to the GPU (one per value) and hands
    results needed on the host back through a transfer to the CPU followed
    by a `pinfer.record`; the `pinfer.wait` goes right before the first host
    use. The CPU half of a split FFN is moved after the GPU half's record so
    it runs while the GPU works: one sync per FFN.
  }];
  let dependentDialects = ["::pinfer::PInferDialect"];
}

def PlanMemoryPass : Pass<"pinfer-plan-memory", "mlir::ModuleOp"> {
  let summary = "Assigns static arena offsets and checks the VRAM bill against the budget";
  let description = [{
    Each vector or mask value gets `pinfer.offset` in the arena of the
    device it lives on (first fit over live ranges; 256-byte alignment on
    the GPU, 64 on the CPU). A host value copied to the GPU stays live up
    to the next `pinfer.wait`, because the copy reads it asynchronously.
    The module gets `pinfer.memory` with both arena
    sizes and the VRAM bill: GPU weights in their stored type (the owned
    rows of split FFNs; downs as packed, transposed and f32 when
    quantised), the f16 KV cache of GPU attention for `context-length`
    tokens, and the GPU arena. Fails when the bill exceeds
    `vram-budget` bytes (0: no limit).
  }];
  let options = [
    Option<"vramBudget", "vram-budget", "int64_t", /*default=*/"0",
           "VRAM available to the program in bytes (0: unlimited)">,
    Option<"contextLength", "context-length", "int64_t", /*default=*/"512",
           "tokens of KV cache to reserve">,
  ];
  let dependentDialects = ["::pinfer::PInferDialect"];
}

def VerifyLoweringPass : Pass<"pinfer-verify-lowering", "mlir::ModuleOp"> {
  let summary = "Checks that the lowered IR holds only what the runtime runs";
  let description = [{
    Closes pinfer-lower: what passes this is what the executable runs,
    step for step, and what pinfer-plan-memory billed. It fails on any op
    the runtime has no routine for yet: attention or the output head on
    the GPU, a predictor on the GPU or one that is not the model's fc1/fc2
    pair, a GPU ffn_part with predicted sparsity, a `pinfer.record` without
    exactly one `pinfer.wait`, and a module without `pinfer.memory` (the
    memory plan did not run).

    ```mlir
    // Fails: the runtime has no GPU attention.
    %a = pinfer.attention %x, %pos, %w, %w, %w, %w {device = #pinfer.device<gpu>, ...}
    ```
  }];
  let dependentDialects = ["::pinfer::PInferDialect"];
}

#endif // PINFER_PASSES_TD
