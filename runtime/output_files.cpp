// Temporaries, signal-time cleanup and all-or-nothing outputs; see
// output_files.h.
#include "runtime/output_files.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

namespace pinfer {

namespace {

// The registry the signal handler reads: fixed storage, no allocation, so
// that the handler only reads memory and calls unlink/rmdir.
constexpr int kSlots = 64;
constexpr size_t kPathMax = 4096;
struct Slot {
  std::atomic<int> used{0};
  bool dir = false;
  char path[kPathMax];
};
Slot gSlots[kSlots];
std::mutex gRegistryMutex;

// While outputs are being renamed into place a cleanup signal is only
// noted, then re-raised once they are all in place (or all put back).
std::atomic<int> gCommitting{0};
std::atomic<int> gPendingSignal{0};

// Process groups of running children (the host compiler): a cleanup
// signal ends them too, or a `kill -INT` of pinferc alone (not its
// terminal's group) would leave the compiler running, writing its
// temporaries, after pinferc is gone.
constexpr int kChildSlots = 8;
std::atomic<int> gChildren[kChildSlots];

void removeRegistered() {
  // Files first, then the (by then empty) directories that held them.
  for (Slot &s : gSlots)
    if (s.used.load() && !s.dir)
      ::unlink(s.path);
  for (Slot &s : gSlots)
    if (s.used.load() && s.dir)
      ::rmdir(s.path);
}

void onSignal(int sig) {
  if (gCommitting.load()) {
    gPendingSignal.store(sig);
    return;
  }
  for (std::atomic<int> &c : gChildren)
    if (int pid = c.load())
      ::kill(-pid, SIGTERM);
  removeRegistered();
  // Die of the same signal, as the default action would have.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

int registerPath(const std::string &path, bool dir) {
  if (path.size() >= kPathMax)
    return -1; // still removed by the destructor, only not at signal time
  std::lock_guard<std::mutex> lock(gRegistryMutex);
  for (int i = 0; i < kSlots; ++i)
    if (!gSlots[i].used.load()) {
      std::memcpy(gSlots[i].path, path.c_str(), path.size() + 1);
      gSlots[i].dir = dir;
      gSlots[i].used.store(1);
      return i;
    }
  return -1;
}

void unregisterPath(int slot) {
  if (slot >= 0)
    gSlots[slot].used.store(0);
}

std::string dirOf(const std::string &path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool exists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Holds off the cleanup signals for its lifetime; one that arrives in the
// meantime is delivered when it ends.
struct SignalHold {
  SignalHold() { gCommitting.store(1); }
  ~SignalHold() {
    gCommitting.store(0);
    if (int sig = gPendingSignal.exchange(0))
      onSignal(sig);
  }
};

} // namespace

void installTempCleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
      ::sigaction(sig, &sa, nullptr);
    // A write past the file-size limit (ulimit -f) fails with EFBIG, to be
    // reported and cleaned up as a full disk is, instead of ending the
    // process with its temporaries left behind.
    ::signal(SIGXFSZ, SIG_IGN);
  });
}

ChildGroup::ChildGroup(int pid) {
  for (std::atomic<int> &c : gChildren) {
    int none = 0;
    if (c.compare_exchange_strong(none, pid)) {
      slot_ = int(&c - gChildren);
      return;
    }
  }
}

ChildGroup::~ChildGroup() {
  if (slot_ >= 0)
    gChildren[slot_].store(0);
}

void TempPath::adopt(const std::string &path, bool isDir) {
  remove();
  path_ = path;
  dir_ = isDir;
  slot_ = registerPath(path, isDir);
}

void TempPath::remove() {
  if (path_.empty())
    return;
  if (dir_)
    ::rmdir(path_.c_str());
  else
    ::unlink(path_.c_str());
  release();
}

std::string TempPath::release() {
  unregisterPath(slot_);
  slot_ = -1;
  std::string p = std::move(path_);
  path_.clear();
  return p;
}

bool makeTempBeside(const std::string &dest, TempPath &out,
                    std::string &error) {
  std::string name = dest + ".tmp-XXXXXX";
  int fd = ::mkstemp(&name[0]);
  if (fd < 0) {
    error = dest + ": cannot create a file in " + dirOf(dest) + ": " +
            std::strerror(errno);
    return false;
  }
  // mkstemp makes the file private (0600); the finished output gets the
  // permissions any new file of the user's would (0666 less the umask).
  static const mode_t umaskBits = [] {
    mode_t m = ::umask(0);
    ::umask(m);
    return m;
  }();
  ::fchmod(fd, 0666 & ~umaskBits);
  ::close(fd);
  out.adopt(name);
  return true;
}

std::string tempDirectory() {
  const char *env = std::getenv("TMPDIR");
  return env && *env ? env : "/tmp";
}

bool makeTempDir(const std::string &prefix, TempPath &out,
                 std::string &error) {
  std::string name = tempDirectory() + "/" + prefix + "-XXXXXX";
  if (!::mkdtemp(&name[0])) {
    error = "cannot create a temporary directory " + name + ": " +
            std::strerror(errno);
    return false;
  }
  out.adopt(name, /*isDir=*/true);
  return true;
}

namespace {

// A destination a rename may replace: absent, a regular file or a link
// (the rename replaces the link, not what it points to). A device or a
// pipe would be replaced by a regular file: /dev/null, for one.
bool replaceable(const std::string &dest, std::string &error) {
  struct stat st;
  if (::lstat(dest.c_str(), &st) != 0 || S_ISREG(st.st_mode) ||
      S_ISLNK(st.st_mode))
    return true;
  error = dest + (S_ISDIR(st.st_mode)
                      ? ": is a directory, expected a file path"
                      : ": exists and is not a regular file (a device, pipe "
                        "or socket); not replacing it, choose another path");
  return false;
}

} // namespace

bool commitOutputs(std::vector<std::pair<TempPath *, std::string>> outputs,
                   std::string &error) {
  for (auto &o : outputs)
    if (!replaceable(o.second, error)) {
      for (auto &p : outputs)
        p.first->remove();
      return false;
    }
  SignalHold hold;
  // Per output: the previous file's backup name ("" when there was none).
  std::vector<std::string> backups;
  auto rollBack = [&](size_t done) {
    for (size_t j = 0; j < done; ++j) {
      const std::string &dest = outputs[j].second;
      if (!backups[j].empty())
        ::rename(backups[j].c_str(), dest.c_str());
      else
        ::unlink(dest.c_str());
    }
    for (size_t j = done; j < backups.size(); ++j)
      if (!backups[j].empty())
        ::unlink(backups[j].c_str());
    for (auto &o : outputs)
      o.first->remove();
  };
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string &dest = outputs[i].second;
    std::string backup;
    if (exists(dest)) {
      // A hard link keeps the previous file reachable while the rename
      // below replaces it atomically.
      backup = dest + ".old-XXXXXX";
      int fd = ::mkstemp(&backup[0]);
      if (fd >= 0) {
        ::close(fd);
        ::unlink(backup.c_str());
      }
      if (fd < 0 || ::link(dest.c_str(), backup.c_str()) != 0) {
        error = dest + ": cannot keep the previous file while replacing it: " +
                std::strerror(errno);
        backups.push_back("");
        rollBack(i);
        return false;
      }
    }
    backups.push_back(backup);
    if (::rename(outputs[i].first->path().c_str(), dest.c_str()) != 0) {
      error = dest + ": cannot move " + outputs[i].first->path() +
              " into place: " + std::strerror(errno);
      rollBack(i);
      return false;
    }
    outputs[i].first->release();
  }
  for (const std::string &b : backups)
    if (!b.empty())
      ::unlink(b.c_str());
  return true;
}

bool checkOutputsAreNotInputs(
    const std::vector<std::pair<std::string, std::string>> &outputs,
    const std::vector<std::pair<std::string, std::string>> &inputs,
    std::string &error) {
  struct stat so, si;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto &[out, outWhat] = outputs[i];
    // A flag taken as the path (plan --json -q): no file of that name was
    // meant.
    if (!out.empty() && out[0] == '-') {
      error = outWhat + ": expected a file path, got '" + out + "' (write ./" +
              out + " for a file of that name)";
      return false;
    }
    for (size_t j = i + 1; j < outputs.size(); ++j)
      if (!out.empty() && out == outputs[j].first) {
        error = outWhat + " " + out + ": is also " + outputs[j].second +
                "; expected two different files";
        return false;
      }
    if (out.empty() || ::stat(out.c_str(), &so) != 0)
      continue;
    if (S_ISDIR(so.st_mode)) {
      error = outWhat + " " + out + ": is a directory, expected a file path";
      return false;
    }
    if (!replaceable(out, error)) {
      error = outWhat + " " + error;
      return false;
    }
    auto same = [&](const std::string &other) {
      return !other.empty() && ::stat(other.c_str(), &si) == 0 &&
             si.st_dev == so.st_dev && si.st_ino == so.st_ino;
    };
    for (const auto &[in, inWhat] : inputs)
      if (same(in)) {
        error = outWhat + " " + out + ": is " + inWhat + " (" + in +
                "), an input of this command; choose another path, no "
                "output replaces an input";
        return false;
      }
    for (size_t j = i + 1; j < outputs.size(); ++j)
      if (same(outputs[j].first)) {
        error = outWhat + " " + out + ": is also " + outputs[j].second + " (" +
                outputs[j].first + "); expected two different files";
        return false;
      }
  }
  return true;
}

bool writeTextFiles(const std::vector<std::pair<std::string, std::string>> &files,
                    std::string &error) {
  std::vector<TempPath> tmps(files.size());
  std::vector<std::pair<TempPath *, std::string>> outputs;
  for (size_t i = 0; i < files.size(); ++i) {
    const auto &[path, text] = files[i];
    if (!makeTempBeside(path, tmps[i], error))
      return false;
    FILE *f = std::fopen(tmps[i].path().c_str(), "wb");
    bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = (f && std::fclose(f) == 0) && ok;
    if (!ok) {
      error = path + ": cannot write: " + std::strerror(errno);
      return false;
    }
    outputs.push_back({&tmps[i], path});
  }
  return commitOutputs(std::move(outputs), error);
}

} // namespace pinfer
