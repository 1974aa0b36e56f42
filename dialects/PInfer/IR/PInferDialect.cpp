//===- PInferDialect.cpp - pinfer dialect registration --------------------===//
//
// Registers the types, attributes and ops, and implements the type
// verifiers. Op verifiers live in PInferOps.cpp.
//
//===----------------------------------------------------------------------===//

#include "dialects/PInfer/IR/PInferOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace pinfer;

#include "dialects/PInfer/IR/PInferDialect.cpp.inc"
#include "dialects/PInfer/IR/PInferEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/PInfer/IR/PInferAttrs.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/PInfer/IR/PInferTypes.cpp.inc"

void PInferDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/PInfer/IR/PInferAttrs.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "dialects/PInfer/IR/PInferTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/PInfer/IR/PInferOps.cpp.inc"
      >();
}

FailureOr<GGMLType> pinfer::parseWeightDType(AsmParser &parser) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef name;
  if (parser.parseKeyword(&name))
    return failure();
  // Exactly the table's spelling, so that printing gives back the input.
  GGMLType dtype;
  if (!parseTypeName(name.str().c_str(), dtype) || !isComputable(dtype) ||
      name != typeName(dtype))
    return parser.emitError(loc)
           << "expected a weight dtype (" << computableTypeNames() << "), got '"
           << name << "'";
  return dtype;
}

void pinfer::printWeightDType(AsmPrinter &printer, GGMLType dtype) {
  printer << typeName(dtype);
}

LogicalResult WeightType::verify(function_ref<InFlightDiagnostic()> emitError,
                                 GGMLType dtype, ArrayRef<int64_t> shape) {
  // The parser admits computable types only; C++ builders are held to the
  // same.
  const TypeTraits *traits = typeTraits(dtype);
  if (!traits || !traits->computable)
    return emitError() << "weight dtype " << typeName(dtype)
                       << " is not computable, expected "
                       << computableTypeNames();
  if (shape.empty() || shape.size() > 4)
    return emitError() << "weight must have 1 to 4 dimensions, got "
                       << shape.size();
  for (int64_t dim : shape)
    if (dim <= 0)
      return emitError() << "weight dimensions must be positive, got " << dim;
  // Quantised rows are stored as whole blocks.
  if (shape.front() % traits->blockSize != 0)
    return emitError() << "row length " << shape.front() << " of a "
                       << typeName(dtype) << " weight must be a multiple of "
                       << traits->blockSize;
  return success();
}

int64_t WeightType::getNumRows() const {
  int64_t rows = 1;
  for (int64_t dim : getShape().drop_front())
    rows *= dim;
  return rows;
}
