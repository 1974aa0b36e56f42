//===- pinfer-opt.cpp - run pinfer passes on .mlir files ------------------===//
//
// The opt driver used by the lit tests. Registration goes through
// compiler/InitAll.h, the same point pinferc uses.
//
//===----------------------------------------------------------------------===//

#include "compiler/InitAll.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  pinfer::registerAllDialects(registry);
  pinfer::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "pinfer optimizer driver\n", registry));
}
