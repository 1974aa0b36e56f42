// The files a command writes. Every output is first written under a unique
// temporary name beside its destination; temporaries are removed on every
// failure and on SIGINT, SIGTERM and SIGHUP; a command's outputs are renamed
// into place together, with those signals held off while they are, so that
// they are all replaced or none is. No output may be one of the command's
// inputs (compared by device and inode, so through symlinks and hard links).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pinfer {

// Installs, once, the handlers that remove the registered temporaries on
// SIGINT, SIGTERM and SIGHUP before the signal takes its default course.
void installTempCleanup();

// A child process that leads its own process group (setpgid), ended with
// SIGTERM, with its whole group, when a cleanup signal arrives while this
// lives.
class ChildGroup {
public:
  explicit ChildGroup(int pid);
  ChildGroup(const ChildGroup &) = delete;
  ChildGroup &operator=(const ChildGroup &) = delete;
  ~ChildGroup();

private:
  int slot_ = -1;
};

// A temporary file or directory that is removed when this goes out of scope
// (or the process is interrupted) unless it was committed or released.
class TempPath {
public:
  TempPath() = default;
  TempPath(const TempPath &) = delete;
  TempPath &operator=(const TempPath &) = delete;
  ~TempPath() { remove(); }

  // Takes charge of `path` (a directory when `isDir`): registers it.
  void adopt(const std::string &path, bool isDir = false);
  // Removes the file (or the empty directory) now.
  void remove();
  // Forgets it: it stays where it is.
  std::string release();
  const std::string &path() const { return path_; }
  bool empty() const { return path_.empty(); }

private:
  std::string path_;
  int slot_ = -1;
  bool dir_ = false;
};

// Creates an empty file DEST.tmp-XXXXXX beside `dest`. False with one line
// in `error` (naming the directory) when it cannot.
bool makeTempBeside(const std::string &dest, TempPath &out,
                    std::string &error);

// $TMPDIR, else /tmp.
std::string tempDirectory();

// Creates a private directory /tmp/PREFIX-XXXXXX (or under $TMPDIR).
bool makeTempDir(const std::string &prefix, TempPath &out, std::string &error);

// Renames each finished temporary onto its destination, in order, with the
// cleanup signals held off. When one rename fails, the destinations already
// replaced get their previous files back (or are removed when they had
// none), every temporary is removed, and `error` names the failure.
bool commitOutputs(std::vector<std::pair<TempPath *, std::string>> outputs,
                   std::string &error);

// Checks that no existing output is a directory or the same file as one of
// the inputs, and that no two outputs are one file. `inputs` and `outputs`
// are (path, what the user called it) pairs, e.g. {"m.gguf", "the model"};
// paths may be empty (not given).
bool checkOutputsAreNotInputs(
    const std::vector<std::pair<std::string, std::string>> &outputs,
    const std::vector<std::pair<std::string, std::string>> &inputs,
    std::string &error);

// Writes each (path, text) through a temporary beside it, then puts them
// all in place together (commitOutputs).
bool writeTextFiles(const std::vector<std::pair<std::string, std::string>> &files,
                    std::string &error);
inline bool writeTextFile(const std::string &path, const std::string &text,
                          std::string &error) {
  return writeTextFiles({{path, text}}, error);
}

} // namespace pinfer
