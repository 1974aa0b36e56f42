// Where tests make their directories: under TMPDIR, which the unit tests'
// main points at a private directory it removes when the process ends, so
// that a test that dies (a death test's child, a failed assertion in a
// suite's set-up) leaves nothing behind in /tmp.
#ifndef PINFER_TEST_UNIT_TEMP_DIR_H
#define PINFER_TEST_UNIT_TEMP_DIR_H

#include <cstdlib>
#include <string>

namespace pinfer::test {

// A mkdtemp template "<TMPDIR or /tmp>/<prefix>-XXXXXX".
inline std::string tempTemplate(const char *prefix) {
  const char *base = std::getenv("TMPDIR");
  return std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
}

} // namespace pinfer::test

#endif
