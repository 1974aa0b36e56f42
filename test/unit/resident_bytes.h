// The process's resident set in bytes, as /proc/self/statm counts it: for
// tests that check that mapped pages are let go.
#ifndef PINFER_TEST_UNIT_RESIDENT_BYTES_H
#define PINFER_TEST_UNIT_RESIDENT_BYTES_H

#include <cstdint>
#include <cstdio>
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

} // namespace pinfer::test

#endif
