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
  bool nPredictGiven = false; // -n was on the command line
  // llama.cpp's escapes in -p, -r and -f's text (on unless --no-escape).
  bool escape = true;
  // Notes for the user about flags taken but without effect (-ngl).
  std::vector<std::string> notes;
  bool help = false;
  bool version = false;
  std::vector<std::string> positional; // arguments that are not flags
};

// Parses `args` (without the program name). Returns false with a one-line
// error naming the flag and what it expected. -p's text has its escapes
// (\n, \t, \r, \\, \", \', \xHH) turned into characters, as llama.cpp
// does unless --no-escape.
bool parseGenerateFlags(const std::vector<std::string> &args,
                        GenerateFlags &out, std::string &error);

// `text` with llama.cpp's escapes turned into the characters they name;
// any other backslash is kept.
std::string processEscapes(const std::string &text);

// The whole text of PATH ("-": standard input) into `text`; false with one
// line in `error` naming `what` (missing, unreadable, a directory).
bool readTextInput(const std::string &path, std::string &text,
                   std::string &error, const char *what = "the text file");

// The prompt of -f PATH ("-": standard input) into `prompt`, without its
// last newline, as llama.cpp's -f reads it (an editor or echo adds one).
// False with one line in `error` (missing, unreadable, a directory).
bool readPromptFile(const std::string &path, std::string &prompt,
                    std::string &error);

// The flag table for --help.
std::string generateFlagsHelp();

} // namespace pinfer
