//===- Calibration.cpp - the built-in calibration text --------------------===//

#include "compiler/Calibration.h"

namespace pinfer {

const std::string &calibrationText() {
  static const unsigned char bytes[] = {
#include "compiler/CalibrationText.inc"
  };
  static const std::string text(reinterpret_cast<const char *>(bytes),
                                sizeof(bytes));
  return text;
}

} // namespace pinfer
