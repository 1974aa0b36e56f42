// Tests that the one escaping function of the emitters turns every byte
// value into a literal that the host compiler reads back byte for byte, on
// one line, inside and outside comments, with trigraphs on or off; and that
// a model name built to end a comment and inject code reaches the generated
// host source only as data.
#include "codegen/HostEmitter.h"
#include "codegen/SourceText.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace pinfer;

namespace {

std::string hostCompiler() {
  const char *cxx = std::getenv("CXX");
  return cxx && *cxx ? cxx : "c++";
}

// Strings that stress the escaping: every byte value alone, and sequences
// that mean something to a C++ lexer.
std::vector<std::string> hostileStrings() {
  std::vector<std::string> v;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    v.push_back(std::string(1, char(b)));
    all += char(b);
  }
  v.push_back(all);
  for (const char *s : {"??/", "??=define x", "*/ int x; /*", "\\\n#include",
                        "\"; system(\"touch pwned\"); \"", "\\x41\\101",
                        "\r\n#define A 1\r\n", "a\\", "\\", "R\"(x)\"",
                        "\xe2\x80\xae", "\xff\xfe\x00z"})
    v.push_back(std::string(s, std::strlen(s) + (s[0] == '\xff' ? 3 : 0)));
  return v;
}

// Compiles and runs a program that prints each literal's bytes in hex, one
// per line, and returns what it printed.
std::string roundTrip(const std::vector<std::string> &strings,
                      const std::string &flags) {
  std::string dirBuf = pinfer::test::tempTemplate("pinfer-src-text");
  char *dir = dirBuf.data();
  EXPECT_NE(::mkdtemp(dir), nullptr);
  const std::string cpp = std::string(dir) + "/t.cpp";
  const std::string exe = std::string(dir) + "/t";
  {
    std::ofstream out(cpp);
    out << "#include <cstdio>\n";
    for (size_t i = 0; i < strings.size(); ++i)
      // A comment holding the literal comes first on the line: were the
      // literal able to end the line or splice the next one, the
      // declaration would vanish and the program would not compile.
      out << "// " << cppStringLiteral(strings[i]) << "\n"
          << "static const char s" << i << "[] = "
          << cppStringLiteral(strings[i]) << ";\n";
    out << "static void hex(const char *s, unsigned long n) {\n"
           "  for (unsigned long i = 0; i < n; ++i)\n"
           "    std::printf(\"%02x\", (unsigned char)s[i]);\n"
           "  std::printf(\"\\n\");\n}\n"
           "int main() {\n";
    for (size_t i = 0; i < strings.size(); ++i)
      out << "  hex(s" << i << ", sizeof s" << i << " - 1);\n";
    out << "}\n";
  }
  std::string cmd = hostCompiler() + " -std=c++17 " + flags + " " + cpp +
                    " -o " + exe + " 2>&1 && " + exe;
  std::string got;
  if (FILE *p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
      got.append(buf, n);
    ::pclose(p);
  }
  std::remove(cpp.c_str());
  std::remove(exe.c_str());
  ::rmdir(dir);
  return got;
}

std::string expectedHex(const std::vector<std::string> &strings) {
  std::ostringstream os;
  for (const std::string &s : strings) {
    char b[3];
    for (unsigned char c : s) {
      std::snprintf(b, sizeof b, "%02x", c);
      os << b;
    }
    os << "\n";
  }
  return os.str();
}

TEST(SourceText, EveryByteValueReadsBackExactly) {
  const auto strings = hostileStrings();
  for (const std::string &s : strings) {
    std::string lit = cppStringLiteral(s);
    EXPECT_EQ(lit.find('\n'), std::string::npos);
    EXPECT_EQ(lit.find('\r'), std::string::npos);
    EXPECT_EQ(lit.find("??"), std::string::npos);
    for (unsigned char c : lit)
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
  }
  EXPECT_EQ(roundTrip(strings, ""), expectedHex(strings));
  // Trigraphs on (a compiler in an older mode) change nothing.
  EXPECT_EQ(roundTrip(strings, "-trigraphs"), expectedHex(strings));
}

TEST(SourceText, FloatLiteralsCompileForEveryClass) {
  EXPECT_EQ(floatLiteral(1.f), "1.0f");
  EXPECT_EQ(floatLiteral(0.5f), "0.5f");
  EXPECT_EQ(floatLiteral(NAN), "__builtin_nanf(\"\")");
  EXPECT_EQ(floatLiteral(INFINITY), "__builtin_inff()");
  EXPECT_EQ(floatLiteral(-INFINITY), "(-__builtin_inff())");
  EXPECT_EQ(std::strtof(floatLiteral(1e-38f).c_str(), nullptr), 1e-38f);
}

// The name that made pinferc build an executable running the model's code:
// it ended the header comment of main.cpp with a newline.
TEST(SourceText, ModelNameReachesHostCodeOnlyAsData) {
  ProgramDesc d;
  d.params.nEmbd = 32;
  d.params.nFF = 64;
  d.params.nLayer = 1;
  d.params.activation = FfnActivation::ReLU;
  d.modelName = "x\n#include <cstdlib>\nstatic int pwn = "
                "std::system(\"touch /tmp/PWNED\");\n//";
  d.target = "cpu\n#error target";
  d.layers.resize(1);
  for (uint32_t i = 0; i < 64; ++i)
    d.layers[0].cold.push_back(i);
  HostInputs in;
  in.weightsFile = "w\n.gguf";
  const std::string cpp = emitHostCpp(d, in);
  EXPECT_EQ(cpp.find("\nstatic int pwn"), std::string::npos);
  EXPECT_EQ(cpp.find("\n#error"), std::string::npos);
  EXPECT_NE(cpp.find(cppStringLiteral(d.modelName)), std::string::npos);
  EXPECT_NE(cpp.find(cppStringLiteral(d.target)), std::string::npos);
  EXPECT_NE(cpp.find(cppStringLiteral(in.weightsFile)), std::string::npos);
}

} // namespace
