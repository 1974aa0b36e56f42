// Where pinferc finds what it links generated executables with: the runtime
// library (libpinfer_runtime.a) and the runtime headers the generated host
// C++ includes. An installed pinferc (`cmake --install`) finds them beside
// itself, PREFIX/bin/pinferc -> PREFIX/lib/pinfer and PREFIX/include/pinfer;
// a pinferc run from its build tree uses the paths of that tree, fixed at
// configure time. So the install can be moved as a whole.
#pragma once

#include <string>

namespace pinfer {

struct RuntimeLocation {
  std::string library;    // .../libpinfer_runtime.a
  std::string includeDir; // holds runtime/exec_main.h
  bool installed = false; // found beside the executable, not in a build tree
};

// Looks beside `exePath` first (its directory's parent as PREFIX), then at
// `buildLibrary` / `buildIncludeDir`. False with one line in `error` naming
// the paths looked at when neither has both the library and the headers.
bool findRuntimeFrom(const std::string &exePath,
                     const std::string &buildLibrary,
                     const std::string &buildIncludeDir, RuntimeLocation &out,
                     std::string &error);

// findRuntimeFrom for the running executable (/proc/self/exe) and the build
// tree pinferc was configured in.
bool findRuntime(RuntimeLocation &out, std::string &error);

} // namespace pinfer
