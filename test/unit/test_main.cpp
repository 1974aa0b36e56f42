// The unit tests' main: every test process gets a private temporary
// directory (TEST_TMPDIR for testing::TempDir(), TMPDIR for the code under
// test and the programs it starts), removed when the process ends, so that
// no run leaves files behind in /tmp, passed or failed.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

int main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  const char *base = std::getenv("TMPDIR");
  std::string dir =
      std::string(base && *base ? base : "/tmp") + "/pinfer-unit-XXXXXX";
  const bool privateDir = ::mkdtemp(&dir[0]) != nullptr;
  if (privateDir) {
    ::setenv("TEST_TMPDIR", (dir + "/").c_str(), 1);
    ::setenv("TMPDIR", dir.c_str(), 1);
  }
  int rc = RUN_ALL_TESTS();
  if (privateDir) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return rc;
}
