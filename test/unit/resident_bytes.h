// Resident memory as Linux counts it, for tests that check that mapped
// pages are let go: the process's resident set (/proc/self/statm), and the
// resident pages of one file's mappings (/proc/self/smaps), which the
// heap's own churn (an allocator's quarantine under ASan) does not move.
#ifndef PINFER_TEST_UNIT_RESIDENT_BYTES_H
#define PINFER_TEST_UNIT_RESIDENT_BYTES_H

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>

namespace pinfer::test {

inline int64_t residentBytes() {
  long size = 0, pages = 0;
  FILE *m = std::fopen("/proc/self/statm", "r");
  if (m && std::fscanf(m, "%ld %ld", &size, &pages) != 2)
    pages = 0;
  if (m)
    std::fclose(m);
  return int64_t(pages) * sysconf(_SC_PAGESIZE);
}

// The Rss of every mapping of `path` (as the mapping names it: an absolute
// path), in bytes; -1 where smaps cannot be read.
inline int64_t mappedResidentBytes(const std::string &path) {
  FILE *f = std::fopen("/proc/self/smaps", "r");
  if (!f)
    return -1;
  char line[4096];
  bool inFile = false;
  int64_t total = 0;
  while (std::fgets(line, sizeof line, f)) {
    char first[128] = {};
    if (std::sscanf(line, "%127s", first) != 1)
      continue;
    if (first[std::strlen(first) - 1] == ':') { // a field: "Rss:  12 kB"
      unsigned long long kb = 0;
      if (inFile && std::sscanf(line, "Rss: %llu kB", &kb) == 1)
        total += int64_t(kb) * 1024;
      continue;
    }
    // A mapping: "start-end perms offset dev inode [path]".
    char name[4096] = {};
    inFile = std::sscanf(line, "%*s %*s %*s %*s %*s %4095[^\n]", name) == 1 &&
             path == name;
  }
  std::fclose(f);
  return total;
}

} // namespace pinfer::test

#endif
