// Tests where pinferc looks for the runtime library and headers: beside an
// installed pinferc (PREFIX/bin/pinferc -> PREFIX/lib/pinfer,
// PREFIX/include/pinfer), else in the build tree, else one error line
// naming what is missing. Uses made-up trees in a temporary directory.
#include "compiler/RuntimeInstall.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace pinfer;

namespace {

class RuntimeInstall : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmplBuf = pinfer::test::tempTemplate("pinfer-runtime-install");
    char *tmpl = tmplBuf.data();
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    // An installed tree and a build tree, each complete.
    touch("prefix/bin/pinferc");
    touch("prefix/lib/pinfer/libpinfer_runtime.a");
    touch("prefix/include/pinfer/runtime/exec_main.h");
    touch("build/runtime/libpinfer_runtime.a");
    touch("src/runtime/exec_main.h");
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // Creates the file `rel` under the temporary directory, with its parents.
  void touch(const std::string &rel) {
    size_t at = 0;
    while ((at = rel.find('/', at)) != std::string::npos) {
      ::mkdir((dir_ + "/" + rel.substr(0, at)).c_str(), 0755);
      ++at;
    }
    std::ofstream(dir_ + "/" + rel) << "x";
  }
  std::string p(const std::string &rel) const { return dir_ + "/" + rel; }

  bool find(RuntimeLocation &out, std::string &error) {
    return findRuntimeFrom(p("prefix/bin/pinferc"),
                           p("build/runtime/libpinfer_runtime.a"), p("src"),
                           out, error);
  }

  std::string dir_;
};

// Tests that an installed pinferc takes the library and headers beside it,
// wherever the prefix is.
TEST_F(RuntimeInstall, InstalledTreeFirst) {
  RuntimeLocation loc;
  std::string error;
  ASSERT_TRUE(find(loc, error)) << error;
  EXPECT_TRUE(loc.installed);
  EXPECT_EQ(loc.library, p("prefix/lib/pinfer/libpinfer_runtime.a"));
  EXPECT_EQ(loc.includeDir, p("prefix/include/pinfer"));
}

// Tests that a pinferc outside an install (its build tree) falls back to
// the build tree's paths, also when the install lacks its headers.
TEST_F(RuntimeInstall, BuildTreeFallback) {
  RuntimeLocation loc;
  std::string error;
  ASSERT_TRUE(findRuntimeFrom(p("build/tools/pinferc/pinferc"),
                              p("build/runtime/libpinfer_runtime.a"), p("src"),
                              loc, error))
      << error;
  EXPECT_FALSE(loc.installed);
  EXPECT_EQ(loc.library, p("build/runtime/libpinfer_runtime.a"));
  EXPECT_EQ(loc.includeDir, p("src"));

  ASSERT_EQ(::unlink(p("prefix/include/pinfer/runtime/exec_main.h").c_str()),
            0);
  ASSERT_TRUE(find(loc, error)) << error;
  EXPECT_FALSE(loc.installed);
  EXPECT_EQ(loc.library, p("build/runtime/libpinfer_runtime.a"));
}

// Tests that with neither tree complete the error is one line naming the
// missing file of each.
TEST_F(RuntimeInstall, MissingLibraryIsOneLine) {
  ASSERT_EQ(::unlink(p("prefix/lib/pinfer/libpinfer_runtime.a").c_str()), 0);
  ASSERT_EQ(::unlink(p("build/runtime/libpinfer_runtime.a").c_str()), 0);
  RuntimeLocation loc;
  std::string error;
  EXPECT_FALSE(find(loc, error));
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_EQ(error.rfind("runtime library not found: ", 0), 0u) << error;
  EXPECT_NE(error.find(p("prefix/lib/pinfer/libpinfer_runtime.a")),
            std::string::npos)
      << error;
  EXPECT_NE(error.find(p("build/runtime/libpinfer_runtime.a")),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("cmake --install"), std::string::npos) << error;

  // A library present but its headers absent names the header.
  touch("prefix/lib/pinfer/libpinfer_runtime.a");
  ASSERT_EQ(::unlink(p("prefix/include/pinfer/runtime/exec_main.h").c_str()),
            0);
  EXPECT_FALSE(find(loc, error));
  EXPECT_NE(error.find(p("prefix/include/pinfer/runtime/exec_main.h")),
            std::string::npos)
      << error;
}

// Tests that a directory where the library should be is not taken for it.
TEST_F(RuntimeInstall, DirectoryIsNotALibrary) {
  ASSERT_EQ(::unlink(p("prefix/lib/pinfer/libpinfer_runtime.a").c_str()), 0);
  ASSERT_EQ(::mkdir(p("prefix/lib/pinfer/libpinfer_runtime.a").c_str(), 0755),
            0);
  RuntimeLocation loc;
  std::string error;
  ASSERT_TRUE(find(loc, error)) << error;
  EXPECT_FALSE(loc.installed);
}

} // namespace
