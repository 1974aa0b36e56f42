//===- Calibration.h - the built-in calibration text -------------*- C++ -*-===//
//
// A few kilobytes of varied English prose, code and Q&A (compiler/data/
// calibration.txt) used to profile a model when the user gives no trace.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace pinfer {
const std::string &calibrationText();
} // namespace pinfer
