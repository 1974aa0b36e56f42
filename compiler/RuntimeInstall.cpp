// Finding the runtime library and headers; see RuntimeInstall.h.
#include "compiler/RuntimeInstall.h"

#include <sys/stat.h>
#include <unistd.h>

// PINFER_INSTALL_LIBDIR and PINFER_INSTALL_INCLUDEDIR, the layout `cmake
// --install` writes under its prefix, and PINFER_RUNTIME_LIB /
// PINFER_INCLUDE_DIR, the build tree's, come from codegen/CMakeLists.txt, so
// that the install rules and this lookup cannot disagree.

namespace pinfer {

namespace {

constexpr const char *kLibraryName = "libpinfer_runtime.a";
// The header the generated main() includes; the others come with it.
constexpr const char *kProbeHeader = "runtime/exec_main.h";

bool isFile(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), R_OK) == 0;
}

std::string dirName(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

bool findRuntimeFrom(const std::string &exePath,
                     const std::string &buildLibrary,
                     const std::string &buildIncludeDir, RuntimeLocation &out,
                     std::string &error) {
  // The installed layout: PREFIX/bin/pinferc.
  std::string lib, inc;
  if (!exePath.empty()) {
    std::string prefix = dirName(dirName(exePath));
    if (prefix != "/")
      prefix += "/";
    lib = prefix + PINFER_INSTALL_LIBDIR + "/" + kLibraryName;
    inc = prefix + PINFER_INSTALL_INCLUDEDIR;
    if (isFile(lib) && isFile(inc + "/" + kProbeHeader)) {
      out = {lib, inc, true};
      return true;
    }
  }
  if (!buildLibrary.empty() && isFile(buildLibrary) &&
      isFile(buildIncludeDir + "/" + kProbeHeader)) {
    out = {buildLibrary, buildIncludeDir, false};
    return true;
  }
  // Name the file that is missing in each place looked at.
  std::string where;
  if (!exePath.empty())
    where = (isFile(lib) ? inc + "/" + kProbeHeader : lib) +
            " (installed beside " + exePath + ")";
  if (!buildLibrary.empty())
    where += (where.empty() ? "" : " nor ") +
             (isFile(buildLibrary) ? buildIncludeDir + "/" + kProbeHeader
                                   : buildLibrary) +
             " (the build tree)";
  error = "runtime library not found: neither " + where +
          " exists; reinstall pinferc with `cmake --install`";
  if (exePath.empty() || buildLibrary.empty())
    error = "runtime library not found: " + where +
            " does not exist; reinstall pinferc with `cmake --install`";
  return false;
}

bool findRuntime(RuntimeLocation &out, std::string &error) {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string exe = n > 0 ? std::string(buf, size_t(n)) : std::string();
  return findRuntimeFrom(exe, PINFER_RUNTIME_LIB, PINFER_INCLUDE_DIR, out,
                         error);
}

} // namespace pinfer
