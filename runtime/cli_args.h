// The llama.cpp-style generation flags shared by `pinferc run` and every
// generated executable, parsed by hand so that executables need no
// command-line library and both accept exactly the same flags.
#pragma once

#include "runtime/generate.h"

#include <string>
#include <vector>

namespace pinfer {

struct GenerateFlags {
  GenerateOptions gen;
  std::string promptFile; // -f
  bool help = false;
  bool version = false;
  std::vector<std::string> positional; // arguments that are not flags
};

// Parses `args` (without the program name). Returns false with a one-line
// error naming the flag and what it expected.
bool parseGenerateFlags(const std::vector<std::string> &args,
                        GenerateFlags &out, std::string &error);

// The flag table for --help.
std::string generateFlagsHelp();

} // namespace pinfer
