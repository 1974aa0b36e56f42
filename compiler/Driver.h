//===- Driver.h - the verbs of pinferc --------------------------*- C++ -*-===//
//
// Each verb of the pinferc command line is one function here; tools/pinferc
// only parses flags into these structs. Every function prints its own
// one-line error ("pinferc: error: ...") and returns the process exit code.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace pinfer {

struct InspectArgs {
  std::string model;
  bool json = false;
};
int runInspect(const InspectArgs &args);

} // namespace pinfer
