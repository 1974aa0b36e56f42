// The main logic of every generated executable: parse the llama.cpp-style
// flags (runtime/cli_args.h) plus the executable's own (--weights, --cpu),
// find the packed weights beside the executable, check their content hash
// against the one compiled in, and run the generation loop with the
// specialised decoder (runtime/executor.h). The generated main() only calls
// execMain with its constant program tables.
#pragma once

#include "runtime/program.h"

namespace pinfer {

// Returns the process exit code.
int execMain(int argc, char **argv, const Program &program);

// One line on stderr: the executable was compiled for a CPU with `feature`
// (pinferc --march), which this one lacks. Returns 1, the exit code.
int cpuLacks(const char *argv0, const char *feature);

} // namespace pinfer
