//===- Driver.cpp - the verbs of pinferc ----------------------------------===//

#include "compiler/Driver.h"

#include "compiler/Inspect.h"
#include "runtime/gguf.h"

#include <iostream>

namespace pinfer {

static int fail(const std::string &error) {
  std::cerr << "pinferc: error: " << error << "\n";
  return 1;
}

int runInspect(const InspectArgs &args) {
  std::string error;
  auto file = GGUFFile::open(args.model, error);
  if (!file)
    return fail(error);
  if (!inspectModel(*file, args.json, std::cout, error))
    return fail(error);
  return 0;
}

} // namespace pinfer
