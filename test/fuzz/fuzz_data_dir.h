// The layout every fuzzer's data directory has (seeds written at test time,
// the corpus kept between runs, crashes), made by the seed programs.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>

namespace pinfer::fuzz {

// Creates DIR, DIR/seeds, DIR/corpus and DIR/crashes (existing ones are
// fine). False after one line on stderr naming the one that failed.
inline bool makeFuzzDataDir(const std::string &dir) {
  for (const char *sub : {"", "/seeds", "/corpus", "/crashes"}) {
    const std::string p = dir + sub;
    if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "%s: cannot create: %s\n", p.c_str(),
                   std::strerror(errno));
      return false;
    }
  }
  return true;
}

} // namespace pinfer::fuzz
